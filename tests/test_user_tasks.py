"""Tasks from a task file (``adapterxfer --tasks FILE``, ADAPTERXFER_TASKS, a recipe's ``tasks:``): trained,
evaluated and scored like the built-in ones, listed, part of grid cells' identity; every mistake one error."""
import json
import statistics
import textwrap

import pytest
from click.testing import CliRunner
from seqeval.metrics import f1_score

from adapterxfer import tasks
from adapterxfer.cli import main
from adapterxfer.fileio import sha256_file
from adapterxfer.grid import plan, write_plan
from adapterxfer.recipes import load_recipe

FAST = ["--batch-size", "16", "--lr", "2e-3", "--max-length", "64", "--seed", "0", "--log-steps", "5", "--quiet"]

NER = """\
tasks:
  - name: myner
    format: tagging
    metric: seqeval
    languages: [en, de]     # en: the training language
    description: PAN-X's files, as a user's own NER task
    sources:
      - local_format: conll
        files: {train: "panx/train-en.tsv", dev: "panx/dev-{lang}.tsv", test: "panx/test-{lang}.tsv"}
        splits: {train: [train], dev: [dev], test: [test]}
        unlabelled: [test]
"""


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    """Each test registers its own tasks: the registry and ADAPTERXFER_TASKS (which --tasks sets) as they were."""
    saved, saved_list = dict(tasks.TASKS), list(tasks.TASK_LIST)
    monkeypatch.setenv("ADAPTERXFER_TASKS", "")
    yield
    tasks.TASKS.clear()
    tasks.TASKS.update(saved)
    tasks.TASK_LIST[:] = saved_list


def invoke(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def ok(result):
    assert result.exit_code == 0, result.output
    return result.output


def write(path, text):
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_classification_intermediate_task_from_local_jsonl(tmp_path, tiny_model_dir, synthetic_data, one_thread):
    names = ["entailment", "neutral", "contradiction"]
    data = tmp_path / "pairs"
    data.mkdir()
    for split, source in (("train", "train"), ("dev", "validation_matched")):
        rows = [json.loads(l) for l in (synthetic_data / "mnli" / f"{source}.jsonl").read_text().splitlines()]
        (data / f"{split}.jsonl").write_text("".join(json.dumps({"first": r["premise"], "second": r["hypothesis"],
                                                                 "gold": names[r["label"]]}) + "\n" for r in rows))
    task_file = write(tmp_path / "mine.yaml", """\
        tasks:
          - name: pairs
            format: classification
            metric: accuracy
            labels: [entailment, neutral, contradiction]
            fields: {text_a: first, text_b: second, label: gold}
            sources:
              - splits: {train: train, dev: dev}
        """)
    out = tmp_path / "module"
    ok(invoke("--tasks", task_file, "train-intermediate", "pairs", "--model", tiny_model_dir, "--data-dir", data,
              "--output", out, "--epochs", 4, "--cache-dir", tmp_path / "cache", *FAST))
    curve = [e["loss"] for e in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in e]
    assert sum(curve[-3:]) / 3 < 0.8 * sum(curve[:3]) / 3, curve
    card = json.loads((out / "adapterxfer.json").read_text())
    assert card["task"] == "pairs" and card["heads"]["pairs"]["labels"] == names
    assert card["task_file"] == {"path": str(task_file.resolve()), "sha256": sha256_file(task_file)}
    assert card["dev_metrics"]["pairs"]["accuracy"] > 100 / 3 + 15
    listed = [l for l in ok(invoke("--tasks", task_file, "tasks")).splitlines() if l.startswith("pairs ")]
    assert listed and "classification" in listed[0] and str(task_file.resolve()) in listed[0]


def test_tagging_target_task_trains_on_english_and_scores_zero_shot(tmp_path, tiny_model_dir, xtreme, one_thread,
                                                                    monkeypatch):
    download, _ = xtreme
    task_file = write(tmp_path / "ner.yaml", NER)
    monkeypatch.setenv("ADAPTERXFER_TASKS", str(task_file))  # the environment variable, for every command
    listed = [l for l in ok(invoke("tasks")).splitlines() if l.startswith("myner ")]
    assert listed and listed[0].split()[1:4] == ["tagging", "seqeval", "2"]
    run = tmp_path / "run"
    ok(invoke("train-target", "myner", "--intermediate", "none", "--model", tiny_model_dir, "--data-dir", download,
              "--output", run, "--epochs", 2, "--cache-dir", tmp_path / "cache", *FAST))
    out = tmp_path / "results"
    ok(invoke("evaluate", run, "--data-dir", download, "--output", out, "--cache-dir", tmp_path / "cache"))
    results = json.loads((out / "results.json").read_text())
    assert results["languages"] == ["en", "de"] and results["split"] == "dev"
    assert results["task_file"]["sha256"] == sha256_file(task_file)

    def sentences(path):
        return [s.split("\n") for s in path.read_text().strip("\n").split("\n\n")]

    for lang in ("en", "de"):
        preds = sentences(out / "predictions" / "myner" / f"test-{lang}.tsv")
        gold = sentences(out / "labels" / "myner" / f"test-{lang}.tsv")
        assert len(gold) == 6 and all(len(p) == len(g) for p, g in zip(preds, gold))
        assert results["scores"][lang]["f1"] == pytest.approx(100 * f1_score(gold, preds))
    scored = json.loads(ok(invoke("score", out / "predictions", out / "labels", "--json")))  # found without --task
    assert scored["myner"]["avg_f1"] == pytest.approx(results["scores"]["avg_f1"])


def test_a_module_of_a_task_file_evaluated_without_it_names_the_file(tmp_path, tiny_model_dir, xtreme, one_thread,
                                                                    monkeypatch):
    download, _ = xtreme
    task_file = write(tmp_path / "ner.yaml", NER)
    run = tmp_path / "run"
    ok(invoke("--tasks", task_file, "train-target", "myner", "--intermediate", "none", "--model", tiny_model_dir,
              "--data-dir", download, "--output", run, "--max-steps", 2, "--cache-dir", tmp_path / "cache", *FAST))
    monkeypatch.setenv("ADAPTERXFER_TASKS", "")  # as in a fresh process without --tasks (a pulled module)
    del tasks.TASKS["myner"]
    tasks.TASK_LIST[:] = [t for t in tasks.TASK_LIST if t.name != "myner"]
    result = invoke("evaluate", run, "--data-dir", download, "--output", tmp_path / "results")
    assert result.exit_code != 0 and not (tmp_path / "results").exists()
    assert f"task file {task_file.resolve()} (sha256 {sha256_file(task_file)}): pass that file" in result.output


def test_score_without_the_task_file_says_which_folders_it_left_unscored(tmp_path):
    preds, labels = tmp_path / "predictions", tmp_path / "labels"
    for folder in (preds, labels):
        (folder / "myner").mkdir(parents=True)
        (folder / "myner" / "test-en.tsv").write_text("B-PER\nO\n")
    lost = "myner: no known task (a task file's task: adapterxfer --tasks FILE score ...)"
    result = invoke("score", preds, labels)
    assert result.exit_code != 0 and lost in result.output
    for folder in (preds, labels):
        (folder / "xnli").mkdir()
        (folder / "xnli" / "test-en.tsv").write_text("entailment\nneutral\n")
    scored = ok(invoke("score", preds, labels))
    assert "| en | 100.00 |" in scored and f"warning: {preds / lost.replace(': no', ': not scored, no')}" in scored


def test_a_task_file_task_without_data_dir_says_which_files_to_pass(tmp_path, tiny_model_dir):
    from adapterxfer.errors import UserError
    from adapterxfer.zeroshot import _languages
    task_file = write(tmp_path / "ner.yaml", NER)
    result = invoke("--tasks", task_file, "train-target", "myner", "--intermediate", "none", "--model", tiny_model_dir,
                    "--output", tmp_path / "run", *FAST)
    assert result.exit_code != 0 and "no online source. Pass --data-dir, a folder with panx/train-en.tsv" in result.output
    with pytest.raises(UserError, match="pass --data-dir, the folder its task file's patterns start from$"):
        _languages(tasks.TASKS["myner"], "all", "dev", None, lambda message: None, "xtreme")


def test_an_extra_language_of_a_task_file_task_is_outside_the_files_languages(tmp_path, xtreme):
    from adapterxfer.errors import UserError
    from adapterxfer.zeroshot import _languages
    download, _ = xtreme
    (tmp_path / "panx").mkdir()
    for lang, source in (("en", "en"), ("ha", "de")):
        (tmp_path / "panx" / f"dev-{lang}.tsv").write_text((download / "panx" / f"dev-{source}.tsv").read_text())
    spec, said = tasks.use_task_files([write(tmp_path / "ner.yaml", NER)])[0], []
    assert _languages(spec, "en,ha", "dev", str(tmp_path), said.append, "xtreme") == (["en"], ["ha"])
    assert said == ["myner: ha outside its task file's languages, scored apart (not in its average)"]
    with pytest.raises(UserError, match="a folder with panx/dev-ha.tsv$"):
        _languages(spec, "en,ha", "dev", None, said.append, "xtreme")
    spec = tasks.use_task_files([write(tmp_path / "ner.yaml", NER.replace("[en, de]", "[de]"))])[0]
    with pytest.raises(UserError, match=r"myner has no en \(its task file's languages: de\)$"):
        _languages(spec, "de,en", "dev", str(tmp_path), said.append, "xtreme")


def test_a_partial_task_file_task_is_partial_against_its_own_languages(tmp_path):
    tasks.use_task_files([write(tmp_path / "ner.yaml", NER)])
    preds, labels = tmp_path / "predictions" / "myner", tmp_path / "labels" / "myner"
    for folder in (preds, labels):
        folder.mkdir(parents=True)
        (folder / "test-en.tsv").write_text("B-PER\nO\n")
    scored = ok(invoke("score", preds.parent, labels.parent))
    assert "warning: myner: no predictions for de; averages cover 1 of 2 languages, unlike its task file's" in scored


ERRORS = [
    ("tasks:\n  - name: x\n    formt: tagging\n", 3, "tasks[0].formt: unknown key (did you mean format?)"),
    ("tasks:\n  - name: x\n    format: parsing\n    metric: accuracy\n    sources: [{splits: {train: t}}]\n", 3,
     "unknown format 'parsing'"),
    ("tasks:\n  - name: x\n    format: tagging\n    metric: bleu\n    sources: [{splits: {train: t}}]\n", 4,
     "unknown metric 'bleu'"),
    ("tasks:\n  - name: x\n    format: tagging\n    metric: accuracy\n    sources: [{splits: {train: t}}]\n", 4,
     "accuracy cannot score tagging predictions (it takes seqeval or token_accuracy)"),
    ("tasks:\n  - name: mnli\n    format: tagging\n    metric: seqeval\n    sources: [{splits: {train: t}}]\n", 2,
     "'mnli' is a built-in task"),
    ("tasks:\n  - name: x\n    format: classification\n    metric: accuracy\n"
     "    fields: {text_a: a, label: b}\n    sources: [{splits: {train: t}}]\n", 2, "needs labels"),
    ("tasks:\n  - name: x\n    format: tagging\n    metric: seqeval\n    languages: [en, de]\n    sources:\n"
     "      - local_format: conll\n        splits: {train: [train], dev: [dev]}\n"
     "        files: {train: train-en.tsv, dev: dev.tsv}\n", 9, "put {lang} in the pattern"),
    ("tasks:\n  - name: x\n    name: y\n", 3, "tasks[0].name: given twice"),
]


@pytest.mark.parametrize("text, line, message", ERRORS)
def test_each_mistake_is_one_error_naming_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = invoke("--tasks", path, "tasks")
    assert result.exit_code == 2, result.output
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path.resolve()}:{line}: "), lines
    assert message in lines[0]


def test_grid_cells_of_a_task_file_change_with_it(tmp_path, tiny_model_dir, xtreme):
    download, _ = xtreme
    (tmp_path / "recipes").mkdir()
    task_file = write(tmp_path / "recipes" / "ner.yaml", NER)
    recipe = write(tmp_path / "recipes" / "mine.yaml", f"""\
        tasks: ner.yaml
        model: {tiny_model_dir}
        seeds: [1]
        intermediate: {{baseline: true}}
        targets: {{data_dir: {download}, tasks: [myner, xnli]}}
        """)
    out = tmp_path / "out"
    before = plan(load_recipe(recipe), out, strict=False)
    mine = [c for c in before if c.task == "myner"]
    assert [c.kind for c in mine] == ["target", "evaluate"]
    assert all(c.run["task_files"] == [str(task_file.resolve())] for c in mine)
    write_plan(load_recipe(recipe), out, before)
    write(task_file, NER.replace("as a user's own NER task", "edited"))
    after = plan(load_recipe(recipe), out, strict=False)
    assert {c.id for c in after if c.task == "xnli"} == {c.id for c in before if c.task == "xnli"}
    assert not {c.id for c in after if c.task == "myner"} & {c.id for c in mine}
    stale = invoke("grid", "run-cell", "--out", out, mine[0].id)  # planned before the edit: refused
    assert stale.exit_code == 2 and "changed since" in stale.output, stale.output
    ok(invoke("grid", recipe, "--out", tmp_path / "dry", "--dry-run"))
    write(recipe, recipe.read_text().replace("tasks: ner.yaml", "tasks: [ner.yaml, missing.yaml]"))
    result = invoke("grid", recipe, "--out", out, "--dry-run")
    assert result.exit_code == 2 and f"{recipe}:1: tasks[1]: task file" in result.output, result.output


def test_report_puts_a_task_file_column_after_the_benchmark_and_outside_its_average(tmp_path):
    from dataclasses import asdict

    from test_report import SEEDS, make_run, rows, score

    from adapterxfer.grid import Cell
    from adapterxfer.report import write_report

    task_file = write(tmp_path / "ner.yaml", NER)
    out = tmp_path / "run"
    cells = make_run(out, targets=("xnli", "panx"))
    for seed in SEEDS:
        for row in ("baseline", "mnli"):
            cell = Cell(f"evaluate-{row}-myner-s{seed}", "evaluate", row, "myner", seed, [], {"hash": "h"}, {})
            (cell.folder(out) / "eval").mkdir(parents=True)
            (cell.folder(out) / "eval" / "results.json").write_text(json.dumps(
                {"task": "myner", "split": "dev", "scores": {"avg_metric": 10.0 + seed}, "languages": ["de"],
                 "missing_languages": []}))
            (cell.folder(out) / "done.json").write_text(json.dumps(
                {"id": cell.id, "kind": "evaluate", "task": "myner", "row": row, "seed": seed, "device": "cpu",
                 "seconds": 60.0, "disk_bytes": 100}))
            cells.append(cell)
    plan_ = json.loads((out / "plan.json").read_text())
    plan_["recipe"].update(targets={"xnli": {}, "panx": {}, "myner": {}}, task_files=[str(task_file)])
    plan_["cells"] = [asdict(c) for c in cells]
    (out / "plan.json").write_text(json.dumps(plan_))
    md = write_report(out)["markdown"]
    assert "| intermediate task | XNLI acc | PAN-X F1 | myner F1 | avg (2 of 9 tasks) |" in md
    row = rows(out)["baseline"]
    assert float(row["myner_mean"]) == pytest.approx(statistics.mean(10.0 + s for s in SEEDS))
    assert float(row["xtreme_avg_mean"]) == pytest.approx(statistics.mean(
        statistics.mean(score("baseline", t, s) for t in ("xnli", "panx")) for s in SEEDS))
