"""The report's arithmetic on a hand-made run folder: mean ± std over seeds, deltas, XTREME's average,
missing cells named and never averaged over, the cost beside full fine-tuning, the CSV and heatmap."""
import csv
import json
import statistics
from dataclasses import asdict

import pytest
from click.testing import CliRunner

from adapterxfer.cli import main
from adapterxfer.grid import FULL_FT_TIME, Cell
from adapterxfer.report import write_report
from adapterxfer.tasks import BENCHMARKS

XTREME = BENCHMARKS["xtreme"].tasks

SEEDS = [1, 2]
RETRIEVAL = ("bucc2018", "tatoeba")


def score(row: str, task: str, seed) -> float:
    """A distinct, known score for every evaluation cell."""
    return 50 + 3 * list(XTREME).index(task) + (5 if row == "mnli" else 0) + (seed or 0) * 1.5


def make_run(out, targets=tuple(XTREME), skip=(), unlabelled=(), partial=()):
    """A finished grid run folder: baseline and mnli rows, ``targets`` columns, two seeds; ``skip`` names
    (row, task, seed) evaluations left unfinished, ``unlabelled`` ones done without scores, ``partial``
    ones scored on fewer languages."""
    cells = []

    def add(kind, row, task, seed, deps=(), record=None):
        cell = Cell(f"{kind}-{row}-{task}-s{seed}", kind, row, task, seed, [d.id for d in deps], {"hash": "h"}, {})
        cells.append(cell)
        folder = cell.folder(out)
        folder.mkdir(parents=True)
        if kind == "evaluate" and (row, task, seed) in skip:
            return cell
        done = {"id": cell.id, "kind": kind, "task": task, "row": row, "seed": seed, "device": "cpu", **(record or {})}
        if kind == "evaluate":
            scores = {} if (row, task, seed) in unlabelled else {"avg_metric": score(row, task, seed)}
            (folder / "eval").mkdir()
            (folder / "eval" / "results.json").write_text(json.dumps(
                {"task": task, "split": "dev", "scores": scores, "languages": ["de"],
                 "missing_languages": ["fr"] if (row, task, seed) in partial else []}))
            done.update(seconds=60.0, disk_bytes=100)
        (folder / "done.json").write_text(json.dumps(done))
        return cell

    train = {"seconds": 3600.0, "trainable_parameters": 1000, "base_parameters": 100_000, "disk_bytes": 4000}
    for task in targets:
        if task in RETRIEVAL:
            add("evaluate", "baseline", task, None)
    for seed in SEEDS:
        inter = add("intermediate", "mnli", "mnli", seed, record=train)
        for row, on in (("baseline", None), ("mnli", inter)):
            for task in targets:
                if task in RETRIEVAL:
                    if on:
                        add("evaluate", row, task, seed, [on])
                else:
                    target = add("target", row, task, seed, [on] if on else [], record=train)
                    add("evaluate", row, task, seed, [target])
    recipe = {"name": "t", "path": "r.yaml", "model": "m", "seeds": SEEDS, "baseline": True,
              "intermediates": {"mnli": {}}, "targets": {t: {} for t in targets}, "module": {"method": "seq_bn"},
              "evaluate": {"split": "dev", "languages": "all"}}
    (out / "plan.json").write_text(json.dumps({"recipe": recipe, "cells": [asdict(c) for c in cells]}))
    return cells


def rows(out):
    return {r["row"]: r for r in csv.DictReader((out / "report" / "table.csv").open())}


def test_every_number_is_the_mean_std_and_delta_of_the_seeds(tmp_path):
    make_run(tmp_path)
    result = write_report(tmp_path)
    table = rows(tmp_path)
    for task in XTREME:
        for row in ("baseline", "mnli"):
            seeds = [None] if (row, task in RETRIEVAL) == ("baseline", True) else SEEDS
            values = [score(row, task, s) for s in seeds]
            assert float(table[row][f"{task}_mean"]) == pytest.approx(statistics.mean(values))
            assert table[row][f"{task}_std"] == ("" if len(values) == 1 else repr(statistics.stdev(values)))
        base = [score("baseline", task, s) for s in ([None] if task in RETRIEVAL else SEEDS)]
        delta = statistics.mean(score("mnli", task, s) for s in SEEDS) - statistics.mean(base)
        assert float(table["mnli"][f"{task}_delta"]) == pytest.approx(delta)
    # XTREME's average: per seed the mean of the nine task scores (the bare model's retrieval counts for each)
    per_seed = [statistics.mean(score("baseline", t, None if t in RETRIEVAL else s) for t in XTREME) for s in SEEDS]
    assert float(table["baseline"]["xtreme_avg_mean"]) == pytest.approx(statistics.mean(per_seed))
    assert float(table["baseline"]["xtreme_avg_std"]) == pytest.approx(statistics.stdev(per_seed))
    md = result["markdown"]
    assert "| intermediate task | PAWS-X acc | XNLI acc | PAN-X F1 |" in md and "XTREME avg |" in md
    assert f"| mnli | {statistics.mean(score('mnli', 'pawsx', s) for s in SEEDS):.1f} ± 1.1 (+5.0) |" in md
    assert not result["notes"] and (tmp_path / "report" / "deltas.png").stat().st_size > 1000


def test_the_csv_average_column_is_named_for_the_benchmark(tmp_path):
    make_run(tmp_path, targets=("xnli", "panx"))
    plan = json.loads((tmp_path / "plan.json").read_text())
    plan["recipe"]["benchmark"] = "xtreme-r"
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    write_report(tmp_path)
    row = rows(tmp_path)["baseline"]
    assert "xtreme_avg_mean" not in row
    assert float(row["xtreme_r_avg_mean"]) == pytest.approx(statistics.mean(
        statistics.mean(score("baseline", t, s) for t in ("xnli", "panx")) for s in SEEDS))


def test_missing_cells_are_named_not_averaged_over(tmp_path):
    make_run(tmp_path, skip={("mnli", "xnli", 2)}, unlabelled={("mnli", "tatoeba", 1)},
             partial={("baseline", "udpos", 1)})
    (tmp_path / "cells" / "evaluate-mnli-xnli-s2" / "failed.json").write_text(json.dumps({"error": "out of memory"}))
    result = write_report(tmp_path)
    table = rows(tmp_path)
    assert (table["mnli"]["xnli_mean"], table["mnli"]["xnli_seeds"], table["mnli"]["xnli_missing"]) == ("", "1", "1")
    assert table["mnli"]["xtreme_avg_mean"] == "" and table["baseline"]["xtreme_avg_mean"] != ""
    assert "missing (1 of 2 seeds)" in result["markdown"]
    notes = "\n".join(result["notes"])
    assert "mnli / xnli: evaluate-mnli-xnli-s2: failed: out of memory" in notes
    assert "mnli / tatoeba: evaluate-mnli-tatoeba-s1: no labels" in notes
    assert "† baseline / udpos" in notes and " †" in result["markdown"]


def test_cost_beside_full_finetuning(tmp_path):
    cells = make_run(tmp_path, targets=("xnli", "bucc2018"))
    c = write_report(tmp_path)["cost"]
    training = [x for x in cells if x.kind != "evaluate"]
    evals = [x for x in cells if x.kind == "evaluate"]
    assert c["hours"] == pytest.approx(len(training) + len(evals) * 60 / 3600)
    assert c["full_hours"] == pytest.approx(len(training) * FULL_FT_TIME + len(evals) * 60 / 3600)
    assert c["trainable"] == {"intermediate": 1000, "target": 1000}
    assert c["module_disk"] == 4000 * len(training) and c["full_disk"] == 4 * 100_000 * len(training)
    assert c["optimizer_state"]["target"] == 8000 and c["full_optimizer_state"] == 800_000
    assert "avg (2 of 9 tasks)" in (tmp_path / "report" / "table.md").read_text()


def test_fewer_languages_are_noted_per_task_and_all_is_all(tmp_path):
    make_run(tmp_path, targets=("xnli", "panx"))
    plan = json.loads((tmp_path / "plan.json").read_text())
    plan["recipe"]["evaluate"]["languages"] = {"xnli": "all", "panx": ["en", "de", "fr"]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    text = write_report(tmp_path)["markdown"]
    assert "not comparable to its averages: panx 3 of 40." in text


def test_a_sweep_over_same_named_model_folders_keeps_every_heatmap_and_grouped_csvs_name_the_model(tmp_path):
    out, cells = tmp_path / "run", []
    models = ["/models/a/model", "/models/b/model"]  # two folders, one last name
    for n, model in enumerate(models):
        for c in make_run(tmp_path / str(n), targets=("xnli",)):
            c.id, c.deps, c.model = f"{c.id}-m{n}", [f"{d}-m{n}" for d in c.deps], model
            (out / "cells").mkdir(parents=True, exist_ok=True)
            (tmp_path / str(n) / "cells" / c.id[:-3]).rename(c.folder(out))
            cells.append(c)
    plan = json.loads((tmp_path / "0" / "plan.json").read_text())
    plan.update(cells=[asdict(c) for c in cells])
    plan["recipe"]["model"] = models
    (out / "plan.json").write_text(json.dumps(plan))
    for c in cells:  # the cells' results as written: scores under the model's own cells
        if c.kind == "evaluate":
            results = json.loads((c.folder(out) / "eval" / "results.json").read_text())
            results["scores"] = {**results["scores"], "de": {"accuracy": 1.0}}
            (c.folder(out) / "eval" / "results.json").write_text(json.dumps(results))
    result = write_report(out, group_by=("resource",))
    assert sorted(p.name for p in result["files"] if p.suffix == ".png") == ["deltas-1-model.png",
                                                                              "deltas-2-model.png"]
    groups = list(csv.DictReader((out / "report" / "by-resource.csv").open()))
    assert {r["model"] for r in groups} == set(models)


def test_grouping_a_task_without_language_scores_names_it_instead_of_an_empty_table(tmp_path):
    make_run(tmp_path, targets=("xnli",))  # results with an average only, no per-language scores
    text = write_report(tmp_path, group_by=("family",))["groups"]["family"]["markdown"]
    assert "xnli: no language scored (see the main table), so no groups" in text and "|---|\n" not in text


def test_a_delta_just_below_zero_reads_minus(tmp_path):
    make_run(tmp_path, targets=("xnli",))
    for seed in SEEDS:
        results = tmp_path / "cells" / f"evaluate-mnli-xnli-s{seed}" / "eval" / "results.json"
        r = json.loads(results.read_text())
        r["scores"]["avg_metric"] = score("baseline", "xnli", seed) - 0.03
        results.write_text(json.dumps(r))
    assert "(-0.0)" in write_report(tmp_path)["markdown"]


def test_report_command(tmp_path):
    make_run(tmp_path / "run", targets=("xnli",))
    result = CliRunner().invoke(main, ["report", str(tmp_path / "run"), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "| baseline |" in result.stdout and (tmp_path / "out" / "table.csv").is_file()
    missing = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert missing.exit_code == 2 and "no plan.json" in missing.stderr
    assert "Examples:" in CliRunner().invoke(main, ["report", "--help"]).output
    assert "Examples:" in CliRunner().invoke(main, ["grid", "--help"]).output
    assert "--devices" in CliRunner().invoke(main, ["grid", "run", "--help"]).output
