"""The grid runner on the tiny model: the demo recipe end to end, resume after kill -9, reruns of only what
a change touches, recorded failures, a Slurm script that names every cell once, recipe errors."""
import collections
import contextlib
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from adapterxfer import synthetic
from adapterxfer.cli import main
from adapterxfer.errors import UserError
from adapterxfer.grid import Cell, plan, read_plan, run_devices
from adapterxfer.recipes import load_recipe
from adapterxfer.tasks import BENCHMARKS, get_task

RECIPES = Path(__file__).parent.parent / "recipes"
#: Few languages per task and a handful of steps keep the demo grid to seconds per cell.
LANGUAGES = {"xnli": ["en", "de", "zh"], "panx": ["en", "ru"], "bucc2018": ["de", "fr"], "tatoeba": ["de", "ja"]}


def grid(*args):
    return CliRunner().invoke(main, ["grid", *map(str, args)])


def demo_recipe(tmp_path, tiny_model_dir, synthetic_data, xtreme, **edit) -> Path:
    """recipes/demo.yaml on the session's tiny model and data, with few steps and languages; ``edit``
    replaces top-level sections (``targets={...}``)."""
    r = yaml.safe_load((RECIPES / "demo.yaml").read_text())
    r["model"] = str(tiny_model_dir)
    r["intermediate"]["data_dir"] = str(synthetic_data)
    r["targets"]["data_dir"], r["evaluate"]["labels_dir"] = map(str, xtreme)
    r["train"].update(save_steps=2, eval_steps=100, batch_size=8, cache_dir=str(tmp_path.parent / "features"))
    for section in ("intermediate", "targets"):
        for settings in r[section]["tasks"].values():
            if settings:
                settings["max_steps"] = 3
    r["evaluate"]["languages"] = LANGUAGES
    r.update(edit)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(r, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, tiny_model_dir, synthetic_data, xtreme):
    root = tmp_path_factory.mktemp("demo")
    recipe = demo_recipe(root, tiny_model_dir, synthetic_data, xtreme)
    result = grid(recipe, "--out", root / "run")
    assert result.exit_code == 0, result.output
    return recipe, root / "run"


def done_files(out: Path) -> dict:
    return {p.parent.name: p.read_text() for p in (out / "cells").glob("*/done.json")}


def test_demo_recipe_end_to_end_and_the_report_equals_the_results_files(demo_run):
    recipe, out = demo_run
    _, cells = read_plan(out)
    kinds = [c.kind for c in cells]
    # 2 seeds x (mnli module; xnli, panx targets on baseline and mnli) + retrieval on mnli (2x2) and the bare model (2)
    assert (kinds.count("intermediate"), kinds.count("target"), kinds.count("evaluate")) == (2, 8, 14)
    assert all((c.folder(out) / "done.json").is_file() for c in cells)
    inter = json.loads(next((out / "cells").glob("inter-mnli-s0-*/done.json")).read_text())
    assert inter["train"]["steps"] == 3 and 0 < inter["trainable_parameters"] < inter["base_parameters"]
    target = json.loads(next((out / "cells").glob("target-mnli-xnli-s0-*/cell.json")).read_text())
    assert target["run"]["config"]["stack"].endswith(f"{next((out / 'cells').glob('inter-mnli-s0-*')).name}/module")

    again = grid(recipe, "--out", out)
    assert again.exit_code == 0 and "24 of 24 cells done (0 in this run)" in again.output

    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert "| baseline |" in result.stdout and "| mnli |" in result.stdout and "## Cost" in result.stdout
    assert (out / "report" / "deltas.png").stat().st_size > 1000
    rows = {r["row"]: r for r in csv.DictReader((out / "report" / "table.csv").open())}
    scores = {}  # (row, task) -> [avg_metric of each seed's results.json]
    for cell in cells:
        if cell.kind == "evaluate":
            results = json.loads((cell.folder(out) / "eval" / "results.json").read_text())
            scores.setdefault((cell.row, cell.task), []).append(results["scores"]["avg_metric"])
    for (row, task), values in scores.items():
        assert float(rows[row][f"{task}_mean"]) == pytest.approx(statistics.mean(values), abs=1e-9)
        if len(values) > 1:
            assert float(rows[row][f"{task}_std"]) == pytest.approx(statistics.stdev(values), abs=1e-9)
        if row == "mnli":
            delta = statistics.mean(values) - statistics.mean(scores[("baseline", task)])
            assert float(rows[row][f"{task}_delta"]) == pytest.approx(delta, abs=1e-9)
    # the average of each seed: the bare model's retrieval cells count for every seed
    per_seed = [statistics.mean([scores[("baseline", t)][i if len(scores[("baseline", t)]) > 1 else 0]
                                 for t in ("xnli", "panx", "bucc2018", "tatoeba")]) for i in range(2)]
    assert float(rows["baseline"]["xtreme_avg_mean"]) == pytest.approx(statistics.mean(per_seed), abs=1e-9)

    dry = grid(recipe, "--out", out, "--dry-run")
    assert dry.exit_code == 0 and "24 of 24 cells done; 0 to run" in dry.output and "measured" in dry.output


def test_a_changed_value_reruns_only_the_cells_that_depend_on_it(demo_run, tmp_path):
    recipe, original = demo_run
    out = tmp_path / "run"
    shutil.copytree(original, out)
    before = done_files(out)
    r = yaml.safe_load(recipe.read_text())
    r["targets"]["tasks"]["xnli"]["lr"] = 1.0e-3
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(r, sort_keys=False))

    dry = grid(changed, "--out", out, "--dry-run")
    pending = {line.split()[1] for line in dry.output.splitlines() if " pending " in line}
    assert len(pending) == 8 and all("-xnli-" in p and p.startswith(("target-", "eval-")) for p in pending), pending

    result = grid(changed, "--out", out)
    assert result.exit_code == 0 and "(8 in this run)" in result.output, result.output
    after = done_files(out)
    assert set(after) - set(before) == pending
    assert all(after[k] == v for k, v in before.items())  # nothing finished before was redone

    # an intermediate task's value changes its module, and so every cell built on it, but no baseline cell
    r["intermediate"]["tasks"]["mnli"]["max_steps"] = 4
    changed.write_text(yaml.safe_dump(r, sort_keys=False))
    new = {c.id for c in plan(load_recipe(changed), out)} - set(after)
    assert new and all(c.split("-")[1] == "mnli" for c in new)
    assert len(new) == 2 + 4 + 4 + 4  # modules, targets, their evaluations, retrieval evaluations

    # where every training task sets max_steps, epochs does nothing: no cell changes
    r["train"]["epochs"] = 7
    changed.write_text(yaml.safe_dump(r, sort_keys=False))
    assert {c.id for c in plan(load_recipe(changed), out)} - set(after) == new


def test_kill_9_in_the_middle_of_a_cell_then_a_rerun_resumes_it(tmp_path, tiny_model_dir, synthetic_data, xtreme):
    recipe = demo_recipe(tmp_path, tiny_model_dir, synthetic_data, xtreme, seeds=[0],
                         intermediate={"baseline": False, "data_dir": str(synthetic_data),
                                       "tasks": {"mnli": {"max_steps": 40}}},
                         targets={"data_dir": str(xtreme[0]), "tasks": {"bucc2018": None}},
                         evaluate={"languages": {"bucc2018": ["de"]}})
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "adapterxfer.cli", "grid", str(recipe), "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(out.glob("cells/inter-mnli-*/module.partial/checkpoints/step-*")) and time.time() < deadline:
        assert proc.poll() is None, "the grid ended before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    inter = next(out.glob("cells/inter-mnli-*"))
    assert not (inter / "done.json").exists() and not (inter / "module").exists()
    # a half-written evaluation (no done.json) is not taken as done either
    evaluation = next(out.glob("cells/eval-mnli-bucc2018-*"))
    (evaluation / "eval").mkdir(parents=True)
    (evaluation / "eval" / "results.json").write_text('{"half": "written"}')

    for bad in ("a,b", "0,,1", "-1"):
        result = grid(recipe, "--out", out, "--devices", bad)
        assert result.exit_code == 2 and "is not a GPU here" in result.stderr, result.output
    result = grid(recipe, "--out", out, "--devices", "0")  # one cell process per device
    assert result.exit_code == 0, result.output
    assert "no CUDA GPU is visible here; the cells run on the CPU" in result.stderr
    record = json.loads((inter / "done.json").read_text())
    assert record["train"]["resumed_from"] > 0 and record["train"]["steps"] == 40
    assert (inter / "log.txt").read_text().count("resuming") == 1  # written once, not also echoed into it
    assert json.loads((evaluation / "eval" / "results.json").read_text())["languages"] == ["de"]


def test_a_failed_cell_is_recorded_the_others_go_on_and_the_report_names_it(tmp_path, tiny_model_dir,
                                                                           synthetic_data, xtreme):
    broken = tmp_path / "broken-mnli"
    shutil.copytree(synthetic_data / "mnli", broken)
    (broken / "train.jsonl").write_text('{"premise": "a", "hypothesis": "b", "label": 7}\n')
    recipe = demo_recipe(tmp_path, tiny_model_dir, synthetic_data, xtreme, seeds=[0],
                         intermediate={"data_dir": str(synthetic_data),
                                       "tasks": {"mnli": {"max_steps": 3, "data_dir": str(broken)}}},
                         targets={"data_dir": str(xtreme[0]), "tasks": {"bucc2018": None}},
                         evaluate={"languages": {"bucc2018": ["de"]}})
    out = tmp_path / "run"
    result = grid(recipe, "--out", out)
    assert result.exit_code == 1
    assert "1 of 3 cells done" in result.output and "1 failed, 1 skipped" in result.output
    failed = json.loads(next(out.glob("cells/inter-mnli-*/failed.json")).read_text())
    assert "label" in failed["error"]
    assert next(out.glob("cells/eval-baseline-bucc2018-*/done.json")).is_file()

    report = CliRunner().invoke(main, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert "| mnli | missing |" in report.stdout and "needs inter-mnli-s0-" in report.stdout
    assert "which failed: " in report.stdout


def test_slurm_script_is_valid_and_names_every_cell_once(tmp_path, tiny_model_dir, synthetic_data, xtreme):
    recipe = demo_recipe(tmp_path, tiny_model_dir, synthetic_data, xtreme)
    out = tmp_path / "run"
    result = grid(recipe, "--out", out, "--slurm")
    assert result.exit_code == 0, result.output
    script = tmp_path / "grid.sbatch"
    script.write_text(result.stdout)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "#SBATCH --gres=gpu:1" in result.stdout and (out / "slurm").is_dir()  # for sbatch THIS_FILE too
    spaced = grid(recipe, "--out", tmp_path / "r s", "--slurm")
    assert spaced.exit_code == 2 and "cannot name a folder with spaces" in spaced.stderr
    assert not (tmp_path / "r s").exists()
    _, cells = read_plan(out)

    bin_dir = tmp_path / "bin"  # a fake sbatch records each submission and answers a job id
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/bash\necho "$@" >> "$SUBMITTED"\n'
                                    'echo $((1000 + $(wc -l < "$SUBMITTED")))\n')
    (bin_dir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SUBMITTED": str(tmp_path / "submitted")}
    subprocess.run(["bash", f"{tmp_path.name}/grid.sbatch"], env=env, check=True, capture_output=True,
                   cwd=tmp_path.parent)  # submitted by a relative path from elsewhere: it resubmits itself
    submissions = (tmp_path / "submitted").read_text().splitlines()
    assert all(line.endswith(f" {script}") for line in submissions)
    indices = []
    for n, line in enumerate(submissions):
        array = line.split("--array=")[1].split()[0]
        first, last = map(int, array.split("-"))
        indices += range(first, last + 1)
        assert (f"--dependency=afterany:{1000 + n}" in line) == (n > 0)
    assert indices == list(range(len(cells)))

    named = []  # each array task runs `XF grid run-cell --out OUT CELL`
    for i in indices:
        run = subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": str(i), "XF": "echo"},
                             check=True, capture_output=True, text=True)
        args = run.stdout.split()
        assert args[:4] == ["grid", "run-cell", "--out", str(out.resolve())]
        named.append(args[4])
    assert sorted(named) == sorted(c.id for c in cells) and len(set(named)) == len(named)
    stage = {c.id: c.stage for c in cells}  # a cell's stage comes after the stages of the cells it needs
    assert all(stage[d] < c.stage for c in cells for d in c.deps)


def test_shipped_recipes_plan_the_full_replication():
    for path in RECIPES.glob("*.yaml"):
        load_recipe(path)
    result = grid(RECIPES / "xstilts.yaml", "--out", "/nonexistent/xstilts", "--dry-run")
    assert result.exit_code == 0, result.output
    # 3 seeds x (10 modules + 11 rows x 7 targets x (train + evaluate) + 10 x 2 retrieval) + 2 bare-model cells
    assert "554 cells" in result.output and "GPU-hours" in result.output and "data not found" in result.output
    assert "model not found" not in result.output  # xlm-roberta-large: a hub id
    recipe = load_recipe(RECIPES / "xstilts-lora.yaml")
    assert recipe.module["method"] == "lora"
    assert list(recipe.targets) == list(load_recipe(RECIPES / "xstilts.yaml").targets)


#: The paper's rows (arXiv 2005.13013: nine English intermediate tasks, then all nine multi-task) and the
#: target settings of jiant's XTREME runs (guides/benchmarks/xtreme.md's d_write_configs.sh: epochs, and
#: train_batch_size x gradient_accumulation_steps; tokenize_and_cache.sh: max_seq_length).
PAPER_ROWS = ["anli_plus", "mnli", "qqp", "squad_v2", "hellaswag", "commonsenseqa", "cosmosqa", "socialiqa", "ccg"]
JIANT_TARGETS = {"xnli": (2, 32, 256), "pawsx": (5, 32, 256), "udpos": (10, 32, 256), "panx": (10, 32, 256),
                 "xquad": (2, 16, 384), "mlqa": (2, 16, 384), "tydiqa": (2, 16, 384)}


@pytest.mark.parametrize("name", ["xstilts.yaml", "xstilts-lora.yaml"])
def test_shipped_replication_plans_every_cell_of_the_papers_grid(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the recipe's relative data folders: absent here, noted by a non-strict plan
    recipe = load_recipe(RECIPES / name)
    assert recipe.model == "xlm-roberta-large" and recipe.baseline and recipe.evaluate.split == "dev"
    assert list(recipe.intermediates) == PAPER_ROWS + ["multi"] and recipe.evaluate.languages == "all"
    assert get_task("multi").members == tuple(PAPER_ROWS)
    assert set(recipe.targets) == set(BENCHMARKS["xtreme"].tasks)
    cells = plan(recipe, tmp_path / "run", strict=False)
    by = collections.defaultdict(list)
    for c in cells:
        by[c.kind, c.row, c.task, c.seed].append(c)
    assert all(len(v) == 1 for v in by.values())
    for task in ("bucc2018", "tatoeba"):  # the bare model once; never a target module
        assert by["evaluate", "baseline", task, None][0].deps == []
        assert not any(k[0] == "target" and k[2] == task for k in by)
    for seed in recipe.seeds:
        for row in ["baseline"] + PAPER_ROWS + ["multi"]:
            inter = None if row == "baseline" else by["intermediate", row, row, seed][0]
            for task in BENCHMARKS["xtreme"].tasks:
                evaluation = by["evaluate", row, task, None if row == "baseline" and task in ("bucc2018", "tatoeba")
                                else seed][0]
                assert evaluation.run["languages"] == list(get_task(task).languages)
                if task in JIANT_TARGETS:
                    target = by["target", row, task, seed][0]
                    assert evaluation.deps == [target.id] and target.deps == ([inter.id] if inter else [])
                    cfg = target.run["config"]
                    assert (cfg["epochs"], cfg["batch_size"] * cfg["grad_accum"], cfg["max_length"]) == \
                        JIANT_TARGETS[task]
                elif inter:
                    assert evaluation.deps == [inter.id]
    assert len(cells) == len(by) == 2 + len(recipe.seeds) * (10 + 11 * 7 * 2 + 10 * 2)


def test_demo_recipe_as_shipped_uses_the_embedded_assets(tmp_path, monkeypatch, tiny_model_dir, synthetic_data):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # demo_assets() finds them built already
    demo = tmp_path / "cache" / "adapterxfer" / f"demo-v{synthetic.DEMO_VERSION}"
    shutil.copytree(tiny_model_dir, demo / "model")
    shutil.copytree(synthetic_data, demo / "data")
    result = grid(RECIPES / "demo.yaml", "--out", tmp_path / "run", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "24 cells" in result.output and "data not found" not in result.output
    assert "model not found" not in result.output and "carry no labels" not in result.output
    typo = tmp_path / "typo.yaml"
    typo.write_text((RECIPES / "demo.yaml").read_text().replace("model: demo", f"model: {tmp_path / 'no-model'}")
                    .replace("labels_dir: demo", "labels_dir:"))
    result = grid(typo, "--out", tmp_path / "run", "--dry-run")
    assert result.exit_code == 0 and "model not found (a run needs it" in result.output, result.output
    assert "test files of tatoeba from a local download/ carry no labels" in result.output
    assert "(evaluate.labels_dir can name XTREME's labels)" in result.output
    assert (demo / "data" / "xtreme" / "xnli" / "train-en.tsv").is_file()  # synthetic XTREME data
    assert (demo / "xtreme-labels" / "tatoeba" / "test-de.tsv").is_file()  # and Tatoeba's gold
    assert not (tmp_path / "run").exists()  # a dry run writes nothing to --out


def test_gpus_per_cell_in_its_older_place_still_counts(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("model: m\ntargets:\n  tasks: [xnli]\nslurm:\n  gpus_per_cell: 2\n")
    assert load_recipe(path).gpus_per_cell == 2
    path.write_text("model: m\ntargets:\n  tasks: [xnli]\n")
    assert load_recipe(path).gpus_per_cell == 1


@pytest.mark.parametrize("text, message", [
    ("model: m\ntargets:\n  tasks: [xnli]\ntrain:\n  epocs: 2\n",
     ":5: train.epocs: unknown key (did you mean epochs?)"),
    ("model: m\ntargets:\n  tasks:\n    xnly: {}\n", ":4: targets.tasks.xnly: unknown task 'xnly'; did you mean xnli"),
    ("model: m\ntargets:\n  tasks:\n    xnli: {epochs: two}\n",
     ":4: targets.tasks.xnli.epochs: expected float, got text 'two'"),
    ("model: m\nseeds: [1, x]\ntargets:\n  tasks: [xnli]\n", ":2: seeds[1]: expected int"),
    ("model: m\nintermediate:\n  tasks: [xnli]\ntargets:\n  tasks: [xnli]\n",
     ":3: intermediate.tasks.xnli: 'xnli' is not an intermediate task"),
    ("model: m\ntargets:\n  tasks: [xnli]\nevaluate:\n  languages: {xnli: [xx]}\n",
     ":5: evaluate.languages.xnli: --languages: xnli has no xx"),
    ("model: m\nintermediate:\n  tasks: [multi]\nmodule: {method: lora, backend: peft}\ntargets:\n  tasks: [xnli]\n",
     ":3: intermediate.tasks.multi: multi-task training needs one head per task"),
    ("model: m\ntargets:\n  tasks: [bucc2018]\n  data-dir: 3\n", ":4: targets.data_dir: expected str, got a number 3"),
    ("model: m\nintermediate:\n  tasks:\n    mnli_de: {task: mnlii}\ntargets:\n  tasks: [xnli]\n",
     ":4: intermediate.tasks.mnli_de.task: unknown task 'mnlii'"),
    ("model: m\nintermediate:\n  tasks:\n    mnli_de: {task: mnli, train_language: de}\ntargets:\n  tasks: [xnli]\n",
     ":4: intermediate.tasks.mnli_de: train_language de: non-English training data comes from local files"),
    ("model: m\ntargets:\n  tasks:\n    xnli_2: {task: xnli}\n", ":4: targets.tasks.xnli_2: unknown task"),
    ("model: m\ngpus_per_cell: 0\ntargets:\n  tasks: [xnli]\n", ":2: gpus_per_cell: must be at least 1"),
    ("model: m\ngpus_per_cell: 2\ntargets:\n  tasks: [xnli]\nslurm:\n  gpus_per_cell: 4\n",
     ":6: slurm.gpus_per_cell: differs from gpus_per_cell (2)"),
    ("model: m\ntargets:\n  tasks: [xnli]\nslurm:\n  mem: 64 GB\n",
     ":5: slurm.mem: '64 GB' is not a Slurm --mem value"),
    ("model: m\ntargets:\n  tasks: [xnli]\nslurm:\n  max_parallel: 0\n", ":5: slurm.max_parallel: must be at least 1"),
    ("model: m\ntargets:\n  tasks: [xnli]\nslurm:\n  cpus_per_task: -2\n", ":5: slurm.cpus_per_task: must be at least 1"),
    ("model: m\ntargets:\n  tasks: [xnli]\nslurm:\n  time: forever\n", ":5: slurm.time: 'forever' is not a Slurm --time"),
    ("model: m\ntargets:\n  tasks: [xnli]\ntrain:\n  lr: 1.0e-4\n  lr: 2.0e-4\n", ":6: train.lr: given twice"),
    # a setting wrong for every row is reported where it was given, not at the first row
    ("model: m\nmodule: {method: seqbn}\nintermediate:\n  tasks: [mnli]\ntargets:\n  tasks: [xnli]\n",
     ":2: module.method: --method seqbn is not available"),
    ("model: m\nintermediate:\n  tasks: [mnli]\ntargets:\n  tasks: [xnli]\ntrain:\n  batch_size: 0\n",
     ":7: train.batch_size: --batch-size must be at least 1"),
    ("model: m\ntargets:\n  tasks: [xnli]\ntrain:\n  lr: -1\n", ":5: train.lr: --lr must be above 0"),
    ("model: m\ntargets:\n  tasks:\n    xnli: {warmup_ratio: 1.5}\n",
     ":4: targets.tasks.xnli.warmup_ratio: --warmup-ratio must be at least 0 and at most 1"),
    ("model: m\ntargets:\n  tasks:\n    pawsx: {train_language: de, data_dir: pawsx-de}\n",
     ":4: targets.tasks.pawsx: pawsx is a target task: it trains on its English data"),
])
def test_recipe_errors_name_the_file_line_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = grid(path, "--out", tmp_path / "run", "--dry-run")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}{message}"), result.stderr


def test_a_row_can_train_its_task_on_other_data_beside_the_english_row(tmp_path, tiny_model_dir, synthetic_data,
                                                                         xtreme):
    """English MNLI and a "German" MNLI (here: the English data less one line) as two rows of one grid."""
    german = tmp_path / "mnli-de"
    shutil.copytree(synthetic_data / "mnli", german)
    train = next(german.glob("train.*"))
    train.write_text("".join(train.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]), encoding="utf-8")
    path = demo_recipe(tmp_path, tiny_model_dir, synthetic_data, xtreme)
    r = yaml.safe_load(path.read_text())
    r["intermediate"]["tasks"]["mnli_de"] = {"task": "mnli", "train_language": "de", "data_dir": str(german),
                                             "max_steps": 3}
    path.write_text(yaml.safe_dump(r, sort_keys=False))
    recipe = load_recipe(path)
    assert list(recipe.intermediates) == ["mnli", "mnli_de"] and recipe.task_of("mnli_de") == "mnli"
    cells = plan(recipe, tmp_path / "run")
    inter = {c.row: c for c in cells if c.kind == "intermediate" and c.seed == recipe.seeds[0]}
    en, de = inter["mnli"], inter["mnli_de"]
    assert en.id.startswith("inter-mnli-s") and de.id.startswith("inter-mnli_de-s")
    assert de.task == en.task == "mnli" and de.run["config"]["task"] == "mnli"
    assert de.run["config"]["train_language"] == "de" and en.run["config"]["train_language"] == "en"
    assert de.run["config"]["data_dir"] == str(german) and en.identity["data"] != de.identity["data"]
    targets = [c for c in cells if c.kind == "target" and c.row == "mnli_de"]
    assert targets and all(c.deps[0].startswith("inter-mnli_de-") for c in targets if c.seed == recipe.seeds[0])
    # the English row's cells are those of the recipe without the German row
    r["intermediate"]["tasks"].pop("mnli_de")
    path.write_text(yaml.safe_dump(r, sort_keys=False))
    assert {c.id for c in plan(load_recipe(path), tmp_path / "run")} < {c.id for c in cells}


def test_slurm_script_launches_training_cells_on_several_gpus(tmp_path, tiny_model_dir, synthetic_data, xtreme):
    recipe = demo_recipe(tmp_path, tiny_model_dir, synthetic_data, xtreme, gpus_per_cell=2)
    out = tmp_path / "run"
    result = grid(recipe, "--out", out, "--slurm")
    assert result.exit_code == 0, result.output
    script = tmp_path / "grid.sbatch"
    script.write_text(result.stdout)
    assert "accelerate.commands.launch" in result.stdout
    _, cells = read_plan(out)
    kind = {c.id: c.kind for c in cells}
    stage = {c.id: c.stage for c in cells}
    assert all(c.identity.get("processes") == (None if c.kind == "evaluate" else 2) for c in cells)

    bin_dir = tmp_path / "bin"  # a fake sbatch records each submission and answers a job id
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/bash\necho "$@" >> "$SUBMITTED"\n'
                                    'echo $((1000 + $(wc -l < "$SUBMITTED")))\n')
    (bin_dir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SUBMITTED": str(tmp_path / "submitted"),
           "XF": "echo plain", "LAUNCH": "echo launch"}
    subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True)
    jobs = {}  # job id -> (indices, GPUs per task, dependencies)
    for n, line in enumerate((tmp_path / "submitted").read_text().splitlines()):
        first, last = map(int, line.split("--array=")[1].split()[0].split("-"))
        after = line.split("--dependency=afterany:")[1].split()[0].split(":") if "--dependency" in line else []
        jobs[str(1001 + n)] = (range(first, last + 1), int(line.split("--gres=gpu:")[1].split()[0]), after)
        n_gpus = jobs[str(1001 + n)][1]  # the recipe's CPUs and memory per GPU (the default 8 and 64G)
        assert f"--cpus-per-task={8 * n_gpus} --mem={64 * n_gpus}G" in line, line

    named = {}  # cell id -> (its array job, the command its task runs)
    for job, (indices, _, _) in jobs.items():
        for i in indices:
            run = subprocess.run(["bash", str(script)], env={**env, "SLURM_ARRAY_TASK_ID": str(i)},
                                 check=True, capture_output=True, text=True)
            args = run.stdout.split()
            assert args[-4:-1] == ["run-cell", "--out", str(out.resolve())] and args[-1] not in named
            named[args[-1]] = (job, args[:-4])
    assert sorted(named) == sorted(kind)
    for cell_id, (job, command) in named.items():
        if kind[cell_id] == "evaluate":
            assert jobs[job][1] == 1 and command == ["plain", "grid"]
        else:  # training: 2 GPUs, 2 processes through accelerate's launcher
            assert jobs[job][1] == 2 and command == ["launch", "--num_processes", "2", "-m", "adapterxfer.cli", "grid"]
    job_stage = {job: {stage[c] for c, (j, _) in named.items() if j == job} for job in jobs}
    assert all(len(s) == 1 for s in job_stage.values())  # an array job holds one stage
    job_stage = {job: s.pop() for job, s in job_stage.items()}
    assert any(len([j for j in jobs if job_stage[j] == s]) == 2 for s in job_stage.values())  # 2 and 1 GPU
    for job, (_, _, after) in jobs.items():  # each job waits for every job of the stage before
        assert set(after) == {j for j in jobs if job_stage[j] == job_stage[job] - 1}


#: A stand-in for a cell's process: records its devices and times, then marks the cell done.
FAKE_CELL = """import json, os, sys, time
out, cell = sys.argv[1:]
start = time.time()
time.sleep(0.3)
with open(os.path.join(out, "record.jsonl"), "a") as f:
    f.write(json.dumps({"cell": cell, "devices": os.environ["CUDA_VISIBLE_DEVICES"], "start": start,
                        "end": time.time()}) + "\\n")
open(os.path.join(out, "cells", cell, "done.json"), "w").write("{}")
"""


def test_devices_run_training_cells_on_groups_of_free_devices(tmp_path):
    def cell(name, kind, deps=()):
        c = Cell(name, kind, "r", "t", 0, list(deps), {}, {} if kind == "evaluate" else {"processes": 2})
        c.folder(tmp_path).mkdir(parents=True)
        return c

    cells = [cell("t1", "target"), cell("t2", "target"), cell("e0", "evaluate"), cell("e1", "evaluate", ["t1"]),
             cell("e2", "evaluate", ["t2"]), cell("t3", "target", ["e1"])]
    commands = []

    def command(c, out):  # what would run: accelerate launch for training cells (inspected below)
        from adapterxfer.grid import cell_command
        commands.append(cell_command(c, out))
        return [sys.executable, "-c", FAKE_CELL, str(out), c.id]

    result = run_devices(cells, tmp_path, ["0", "1", "2"], lambda *_: None, command=command)
    assert all(v == "done" for v in result.state.values()) and len(result.state) == 6
    runs = {r["cell"]: r for r in map(json.loads, (tmp_path / "record.jsonl").read_text().splitlines())}
    for name, r in runs.items():
        assert len(r["devices"].split(",")) == (1 if name.startswith("e") else 2)
    for a in runs.values():  # cells that ran at the same time had disjoint devices
        for b in runs.values():
            if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
                assert not set(a["devices"].split(",")) & set(b["devices"].split(","))
    assert runs["e1"]["start"] >= runs["t1"]["end"] and runs["t3"]["start"] >= runs["e1"]["end"]
    assert runs["e0"]["start"] < runs["t2"]["start"]  # e0 used the device t2 could not
    launched = [c for c in commands if "accelerate.commands.launch" in c]
    assert len(launched) == 3 and all(c[c.index("--num_processes") + 1] == "2" for c in launched)

    with pytest.raises(UserError, match="2 GPUs"):
        run_devices([cell("t4", "target")], tmp_path, ["0"], lambda *_: None)


def test_a_device_named_twice_holds_two_cells_at_once(tmp_path):
    def cell(name, kind):
        c = Cell(name, kind, "r", "t", 0, [], {}, {} if kind == "evaluate" else {"processes": 2})
        c.folder(tmp_path).mkdir(parents=True)
        return c

    cells = [cell(f"e{i}", "evaluate") for i in range(6)] + [cell("t0", "target")]
    result = run_devices(cells, tmp_path, ["0", "0", "1"], lambda *_: None,
                         command=lambda c, out: [sys.executable, "-c", FAKE_CELL, str(out), c.id])
    assert all(v == "done" for v in result.state.values()) and len(result.state) == 7
    runs = list(map(json.loads, (tmp_path / "record.jsonl").read_text().splitlines()))
    assert next(r for r in runs if r["cell"] == "t0")["devices"] == "0,1"  # distinct devices, never 0,0

    def at_once(r):  # cells running when r started, r included, by device
        return collections.Counter(d for o in runs if o["start"] <= r["start"] < o["end"]
                                   for d in o["devices"].split(","))
    assert max(at_once(r)["0"] for r in runs) == 2 and max(at_once(r)["1"] for r in runs) == 1
    device = {r["cell"]: r["devices"] for r in runs}
    assert {device["e0"], device["e1"]} == {"0", "1"}  # the first two started: the least busy device first

    with pytest.raises(UserError, match="2 GPUs.*gives 1: 0$"):
        run_devices([cell("t1", "target")], tmp_path, ["0", "0"], lambda *_: None)


#: A grid runner whose two cells sleep, each writing its pid first; it is stopped with SIGTERM.
SLEEPING_GRID = """import os, sys
from pathlib import Path
from adapterxfer.grid import Cell, run_devices
out = Path(sys.argv[1])
cells = [Cell(f"e{i}", "evaluate", "r", "t", 0, [], {}, {}) for i in range(2)]
for c in cells:
    c.folder(out).mkdir(parents=True)
sleep = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
run_devices(cells, out, ["0", "0"], lambda *_: None,
            command=lambda c, out: [sys.executable, "-c", sleep, str(out / f"{c.id}.pid")])
"""


def test_a_terminated_grid_stops_its_cell_processes(tmp_path):
    """``kill PID`` (SIGTERM, as Slurm's preemption sends it) stops the grid and the cells it started, so that
    none goes on in the background holding its lock (a rerun would skip it as run elsewhere)."""
    proc = subprocess.Popen([sys.executable, "-c", SLEEPING_GRID, str(tmp_path)])
    pid_files = [tmp_path / f"e{i}.pid" for i in range(2)]
    deadline = time.time() + 60
    while not all(f.is_file() and f.read_text() for f in pid_files) and time.time() < deadline:
        assert proc.poll() is None
        time.sleep(0.05)
    pids = [int(f.read_text()) for f in pid_files]
    proc.terminate()
    assert proc.wait(timeout=30) != 0
    try:
        alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}") and
                 Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"]
        assert not alive, "cell processes left running"
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_training_cell_runs_under_accelerate_launch_on_two_processes(tmp_path, tiny_model_dir, synthetic_data,
                                                                      xtreme):
    recipe = demo_recipe(tmp_path, tiny_model_dir, synthetic_data, xtreme, seeds=[0], gpus_per_cell=2,
                         intermediate={"baseline": False, "data_dir": str(synthetic_data),
                                       "tasks": {"mnli": {"max_steps": 4}}},
                         targets={"data_dir": str(xtreme[0]), "tasks": {"bucc2018": None}},
                         evaluate={"languages": {"bucc2018": ["de"]}})
    out = tmp_path / "run"
    result = grid(recipe, "--out", out)  # no --devices: the launcher takes this machine's GPUs (here: 2 CPUs)
    assert result.exit_code == 0, result.output
    inter = next(out.glob("cells/inter-mnli-*"))
    record = json.loads((inter / "done.json").read_text())
    assert record["gpus"] == 2 and record["train"]["processes"] == 2 and record["train"]["steps"] == 4
    card = json.loads((inter / "module" / "adapterxfer.json").read_text())
    assert card["hyperparameters"]["world_size"] == 2
    log = (inter / "log.txt").read_text()
    # the main process alone logs, each line once (its output is the file already), and speaks for the cell
    assert log.count("== ") == 1 and log.count("saved ") == 1 and log.count(f"{inter.name}: done") == 1
    assert sorted(p.name for p in inter.iterdir()) == [".lock", "cell.json", "done.json", "log.txt", "module"]
    assert next(out.glob("cells/eval-mnli-bucc2018-*/done.json")).is_file()
