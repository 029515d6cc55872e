"""XTREME-R (benchmark language sets, XCOPA), the COPA and ARC intermediate tasks, and non-English
intermediate data: readers on files in the real formats, scoring, training and zero-shot evaluation."""
import json

import pytest
from click.testing import CliRunner

from adapterxfer import synthetic
from adapterxfer.cli import main
from adapterxfer.data import available_languages, load_examples
from adapterxfer.errors import UserError
from adapterxfer.recipes import load_recipe
from adapterxfer.score import score_folder
from adapterxfer.tasks import BENCHMARKS, MULTI_MEMBERS, get_benchmark, get_task
from adapterxfer.training import TrainConfig, train

NEW = ["az", "gu", "ht", "lt", "pa", "pl", "qu", "ro", "uk", "wo"]


def cli(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def test_xtreme_r_language_sets_as_its_sources_count_them():
    r, x = BENCHMARKS["xtreme-r"], BENCHMARKS["xtreme"]
    assert r.tasks == ("xnli", "xcopa", "udpos", "panx", "xquad", "mlqa", "tydiqa", "tatoeba")
    counts = {"xnli": 15, "xcopa": 11, "udpos": 38, "panx": 48, "xquad": 12, "mlqa": 7, "tydiqa": 9, "tatoeba": 41}
    assert {t: len(set(r.languages(t))) for t in r.tasks} == counts
    assert len(r.all_languages) == 50 and sorted(set(r.all_languages) - set(x.all_languages)) == NEW
    assert r.languages("panx")[:40] == x.languages("panx")  # XTREME's order first, then XTREME-R's additions
    assert get_task("xcopa").languages_in("xtreme-r") == ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi",
                                                          "zh")
    assert get_benchmark("XTREME_R") is r
    with pytest.raises(UserError, match="unknown benchmark 'xtreme-s' \\(known: xtreme, xtreme-r\\)"):
        get_benchmark("xtreme-s")
    # the new intermediate tasks are in the registry but not in multi (the paper's nine)
    assert {get_task(t).num_choices for t in ("copa", "arc-easy", "arc_c")} == {2, 5}
    assert not {"copa", "arc_easy", "arc_challenge"} & set(MULTI_MEMBERS)


def test_tasks_command_lists_the_benchmark(capsys):
    out = cli("tasks", "--benchmark", "xtreme-r")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:-1]}
    assert rows["xcopa"][1:4] == ["multiple_choice", "accuracy", "11"] and rows["panx"][3] == "48"
    assert "pawsx" not in rows and {"copa", "arc_easy", "arc_challenge"} <= set(rows)
    assert out.splitlines()[-1] == "XTREME-R: 8 target tasks, 50 languages"
    assert "xcopa" not in cli("tasks")


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_arc_keys_letters_or_digits_and_3_or_5_choices(tmp_path):
    def q(i, texts, keys, answer):
        return {"id": f"q{i}", "question": f"question {i}", "choices": {"text": texts, "label": list(keys)},
                "answerKey": answer}

    _jsonl(tmp_path / "train.jsonl", [q(1, ["a", "b", "c", "d"], "ABCD", "C"), q(2, ["a", "b", "c", "d"], "1234", "4"),
                                      q(3, ["a", "b", "c"], "ABC", "A"), q(4, list("abcde"), "ABCDE", "E")])
    ex = load_examples(get_task("arc_easy"), "train", tmp_path)
    assert [e["label"] for e in ex] == [2, 3, 0, 4]
    # three or four choices: padded to five with copies of the first wrong one, after the real ones
    assert [e["choices"] for e in ex] == [["a", "b", "c", "d", "a"], ["a", "b", "c", "d", "a"],
                                          ["a", "b", "c", "b", "b"], list("abcde")]
    _jsonl(tmp_path / "bad" / "train.jsonl", [q(1, list("abcdef"), "ABCDEF", "A")])
    with pytest.raises(UserError, match=r"train\.jsonl:1: expected 2-5 choices"):
        load_examples(get_task("arc_challenge"), "train", tmp_path / "bad")
    _jsonl(tmp_path / "key" / "train.jsonl", [q(1, ["a", "b", "c", "d"], "ABCD", "5")])
    with pytest.raises(UserError, match=r"train\.jsonl:1: 'answerKey' = '5' is not one of"):
        load_examples(get_task("arc_challenge"), "train", tmp_path / "key")


def test_copa_and_xcopa_read_as_xtreme_r_phrases_them(tmp_path):
    row = {"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.",
           "choice2": "Water flowed from the spout.", "question": "effect", "label": 1, "idx": 1}
    _jsonl(tmp_path / "copa" / "train.jsonl", [row])
    [ex] = load_examples(get_task("copa"), "train", tmp_path / "copa")
    assert ex == {"context": "The man turned on the faucet.", "question": "What was the effect?",
                  "choices": [row["choice1"], row["choice2"]], "label": 1}
    _jsonl(tmp_path / "copa2" / "train.jsonl", [{**row, "question": ""}])
    with pytest.raises(UserError, match=r"train\.jsonl:1: field 'question' must be non-empty text"):
        load_examples(get_task("copa"), "train", tmp_path / "copa2")

    download = synthetic.write_xtreme(tmp_path / "download", tasks=["xcopa"], n_train=6, n_dev=4, n_test=5)
    spec = get_task("xcopa")
    assert available_languages(spec, "test", download, "xtreme-r") == (list(spec.languages), [])
    assert available_languages(spec, "train", download) == (["en"], [])
    english_dev = load_examples(spec, "dev", download)  # COPA's val: the dev set of training
    assert len(english_dev) == 4 and english_dev[0]["question"] in ("What was the cause?", "What was the effect?")
    qu = load_examples(spec, "test", download, "qu")
    assert len(qu) == 5 and all(e["label"] in (0, 1) for e in qu)
    with pytest.raises(UserError, match="task 'xcopa' has no language 'de'"):
        load_examples(spec, "test", download, "de")


def test_score_uses_the_benchmark_language_sets(tmp_path):
    preds, labels = tmp_path / "preds", tmp_path / "labels"
    files = {preds: {"et": "0\n1\n1\n0\n", "ht": "1\n1\n1\n1\n"}, labels: dict.fromkeys(("et", "ht"), "0\n1\n0\n0\n")}
    for folder, langs in files.items():
        for lang, lines in langs.items():
            (folder / "xcopa").mkdir(parents=True, exist_ok=True)
            (folder / "xcopa" / f"test-{lang}.tsv").write_text(lines)
        (folder / "panx").mkdir()
        (folder / "panx" / "test-az.tsv").write_text("B-PER\nO\n\n")
    scores = score_folder(preds, labels, benchmark="xtreme-r")
    assert list(scores) == ["xcopa", "panx"]  # XTREME-R's order
    et, ht = 100 * 3 / 4, 100 * 1 / 4  # by hand: 3 of 4 and 1 of 4 choices right
    assert scores["xcopa"]["et"]["accuracy"] == et and scores["xcopa"]["ht"]["accuracy"] == ht
    assert scores["xcopa"]["avg_metric"] == (et + ht) / 2
    assert any("no predictions for id, it, qu" in w for w in scores.warnings)
    with pytest.raises(UserError, match=r"test-az\.tsv: 'az' is not an XTREME panx language"):
        score_folder(preds, labels, ["panx"])  # az is XTREME-R's only
    out = cli("score", preds, labels, "--benchmark", "xtreme-r", "--task", "xcopa", "--json")
    assert json.loads(out.splitlines()[0])["xcopa"]["avg_accuracy"] == (et + ht) / 2


def _recipe(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text("model: m\n" + text)
    return path


def test_recipe_benchmark_key(tmp_path):
    r = load_recipe(_recipe(tmp_path, "benchmark: xtreme-r\ntargets:\n  tasks: [xcopa, panx]\n"
                                      "evaluate:\n  languages: {panx: [az, en]}\nintermediate:\n  data_dir: d\n"
                                      "  tasks:\n    socialiqa:\n    mnli: {train_language: de}\n"))
    assert r.benchmark == "xtreme-r" and r.intermediates["mnli"] == {"train_language": "de"}
    from adapterxfer.grid import plan
    evaluations = [c for c in plan(r, tmp_path / "run", strict=False) if c.kind == "evaluate"]
    assert evaluations and all(c.run["benchmark"] == "xtreme-r" for c in evaluations)  # its scoring and warnings
    assert load_recipe(_recipe(tmp_path, "targets:\n  tasks: [xnli]\n")).benchmark == "xtreme"
    for text, error in [
        ("benchmark: xtreme2\ntargets:\n  tasks: [xnli]\n", r":2: benchmark: unknown benchmark 'xtreme2'"),
        ("benchmark: xtreme-r\ntargets:\n  tasks: [pawsx]\n", r":4: targets.tasks.pawsx: 'pawsx' is not a XTREME-R"),
        ("targets:\n  tasks: [xcopa]\n", r":3: targets.tasks.xcopa: 'xcopa' is not a XTREME task"),
        ("targets:\n  tasks: [panx]\nevaluate:\n  languages: {panx: [az]}\n", r":5: evaluate.languages.panx: panx has no az in XTREME \(see benchmark:\)"),
        ("targets:\n  tasks: [xnli]\nintermediate:\n  tasks:\n    mnli: {train_language: de}\n",
         r"intermediate.tasks.mnli: train_language de: non-English training data comes from local files"),
    ]:
        with pytest.raises(UserError, match=error):
            load_recipe(_recipe(tmp_path, text))


FAST = {"epochs": 3, "batch_size": 16, "lr": 2e-3, "max_length": 64, "seed": 0, "log_steps": 1}


@pytest.mark.parametrize("task", ["copa", "arc_challenge"])
def test_intermediate_multiple_choice_training_lowers_the_loss(tmp_path, tiny_model_dir, task, one_thread):
    data = synthetic.write_task_data(task, tmp_path / task, n_train=96, n_dev=32)
    cfg = TrainConfig.load(None, task=task, model=str(tiny_model_dir), data_dir=str(data), output=str(tmp_path / "m"),
                           cache_dir=str(tmp_path / "cache"), **FAST)
    out = train(cfg, progress=False, log=lambda *_: None)
    losses = [e["loss"] for e in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in e]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first, losses
    card = json.loads((out / "adapterxfer.json").read_text())
    assert card["kind"] == "intermediate" and card["heads"][task]["num_choices"] == get_task(task).num_choices
    assert card["training_language"] == "en" and "train_language" not in card["hyperparameters"]


def test_non_english_intermediate_data_is_recorded(tmp_path, tiny_model_dir, synthetic_data, one_thread):
    settings = ["--model", tiny_model_dir, "--cache-dir", tmp_path / "cache", "--max-steps", 2, "--batch-size", 8,
                "--max-length", 64, "--quiet"]
    out = cli("train-intermediate", "mnli", "--train-language", "de", "--output", tmp_path / "x", *settings, code=2)
    assert "train_language de: non-English training data comes from local files" in out
    assert "train_language must be a language code" in cli(
        "train-intermediate", "mnli", "--train-language", "German", "--data-dir", synthetic_data / "mnli",
        "--output", tmp_path / "x", *settings, code=2)
    cli("train-intermediate", "mnli", "--train-language", "de", "--data-dir", synthetic_data / "mnli",
        "--output", tmp_path / "mnli-de", *settings)
    card = json.loads((tmp_path / "mnli-de" / "adapterxfer.json").read_text())
    assert card["training_language"] == "de" and card["training_data"] == str(synthetic_data / "mnli")
    from adapterxfer.hub.card import describe_data
    assert describe_data(card) == "local files (mnli), language de"
    with pytest.raises(UserError, match="xnli is a target task: it trains on its English data"):
        train(TrainConfig.load(None, task="xnli", model=str(tiny_model_dir), data_dir=str(tmp_path),
                               output=str(tmp_path / "t"), train_language="de"), progress=False)


def test_synthetic_data_covers_every_xtreme_r_language(tmp_path):
    """The demo's data (the tiny model's world has XTREME-R's 50 languages) has each task's XTREME-R languages."""
    tasks = ["udpos", "panx", "xquad", "tatoeba"]
    download = synthetic.write_xtreme(tmp_path / "download", tasks=tasks, n_train=4, n_dev=2, n_test=2)
    for task in tasks:
        spec = get_task(task)
        split = "test" if task in ("xquad", "tatoeba") else "dev"
        assert available_languages(spec, split, download, "xtreme-r") == (list(spec.languages_in("xtreme-r")), [])
    labels = synthetic.write_tatoeba_labels(download, tmp_path / "labels")
    assert {p.stem for p in (labels / "tatoeba").iterdir()} == {f"test-{l}" for l in get_task("tatoeba").all_languages}

def test_evaluating_another_benchmarks_language_names_the_benchmark(tmp_path):
    """PAN-X's az is XTREME-R's: under XTREME, evaluate says so instead of calling its data missing."""
    download = synthetic.write_xtreme(tmp_path / "download", tasks=["panx"], n_train=4, n_dev=2, n_test=2)
    out = cli("evaluate", "--task", "panx", "--model", "m", "--languages", "az,en", "--data-dir", download,
              "--output", tmp_path / "res", code=2)
    assert "--languages: panx has no az in XTREME: add --benchmark xtreme-r" in out and "missing" not in out
    assert not (tmp_path / "res").exists()

def test_xcopa_module_evaluates_every_xcopa_language(tmp_path, tiny_model_dir, one_thread):
    download = synthetic.write_xtreme(tmp_path / "download", tasks=["xcopa"], n_train=64, n_dev=8, n_test=12)
    cli("train-target", "xcopa", "--intermediate", "none", "--data-dir", download, "--output", tmp_path / "xcopa",
        "--model", tiny_model_dir, "--cache-dir", tmp_path / "cache", "--max-steps", 4, "--batch-size", 16,
        "--max-length", 64, "--quiet")
    cli("evaluate", tmp_path / "xcopa", "--benchmark", "xtreme-r", "--split", "test", "--data-dir", download,
        "--output", tmp_path / "res", "--cache-dir", tmp_path / "cache")
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    langs = list(get_task("xcopa").languages)
    assert results["languages"] == langs and results["missing_languages"] == []
    for lang in langs:  # each score by hand: predicted choice against the label in XCOPA's own file
        preds = (tmp_path / "res" / "predictions" / "xcopa" / f"test-{lang}.tsv").read_text().split()
        gold = [json.loads(l)["label"] for l in (download / "xcopa" / f"test.{lang}.jsonl").read_text().splitlines()]
        assert len(preds) == len(gold) == 12
        assert results["scores"][lang]["accuracy"] == 100 * sum(int(p) == g for p, g in zip(preds, gold)) / 12
