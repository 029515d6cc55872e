"""The language table, ``report --group-by`` and ``report --significance`` on a hand-made run folder whose
evaluation cells hold real prediction and label files, scored by adapterxfer's XTREME scorer."""
import csv
import json
import statistics
from dataclasses import asdict

import numpy as np
import pytest
from click.testing import CliRunner

from adapterxfer import languages
from adapterxfer.cli import main
from adapterxfer.grid import Cell
from adapterxfer.metrics import tagging_f1
from adapterxfer.report import write_report
from adapterxfer.score import TASKS as XTREME, score_folder
from adapterxfer.significance import paired_bootstrap, tagging_counts
from adapterxfer.tasks import BENCHMARKS, TASKS

SEEDS = [1, 2]
LANGS = {"xnli": ["de", "fr", "ru", "sw"], "udpos": ["de", "fr", "ja"], "xquad": ["de", "el", "th"],
         "tatoeba": ["de", "fr"], "bucc2018": ["de", "fr"]}
POS = ["NOUN", "VERB", "ADJ", "SCONJ", "CCONJ"]


def test_every_task_language_is_in_the_table():
    for spec in TASKS.values():
        for bench in BENCHMARKS:
            missing = [lang for lang in spec.languages_in(bench) if lang not in languages.LANGUAGES]
            assert not missing, (spec.name, bench)
    assert set("az gu ht lt pa pl qu ro uk wo".split()) <= set(languages.LANGUAGES)  # XTREME-R's additions
    assert len(BENCHMARKS["xtreme-r"].all_languages) == 50
    xtreme = set(BENCHMARKS["xtreme"].all_languages)
    assert len(xtreme) == 40
    # XTREME's paper: its 40 languages span 12 families and two isolates (Basque, Korean)
    assert len(languages.group_languages(sorted(xtreme), "family")[0]) == 14
    assert all(0 <= l.resource <= 5 and l.script and l.name for l in languages.LANGUAGES.values())


def _gold(task, lang, n, rng):
    if task == "xnli":
        return [str(rng.choice(["entailment", "neutral", "contradiction"])) for _ in range(n)]
    if task == "udpos":
        return [[str(t) for t in rng.choice(POS, size=rng.integers(1, 6))] for _ in range(n)]
    if task == "xquad":
        return {f"{lang}-{i}": [f"answer number {i}", f"number {i}"] for i in range(n)}
    if task == "tatoeba":
        return [str(i) for i in range(n)]
    return [(f"{lang}-s{i}", f"en-t{i}") for i in range(n)]


def _predict(task, gold, quality, rng):
    """Predictions right with probability ``quality`` (QA: sometimes partly right)."""
    if task == "xnli":
        return [g if rng.random() < quality else "neutral" for g in gold]
    if task == "udpos":
        return [[t if rng.random() < quality else str(rng.choice(POS)) for t in s] for s in gold]
    if task == "xquad":
        return {q: a[0] if rng.random() < quality else ("number" if rng.random() < 0.5 else "nothing")
                for q, a in gold.items()}
    if task == "tatoeba":
        return [g if rng.random() < quality else "0" for g in gold]
    return [p for p in gold if rng.random() < quality]


def _write(task, path, value, gold_side):
    path.parent.mkdir(parents=True, exist_ok=True)
    if task == "xquad":
        if gold_side:
            value = {"data": [{"paragraphs": [{"context": "", "qas": [
                {"id": q, "question": "", "answers": [{"text": a, "answer_start": 0} for a in answers]}]}
                for q, answers in value.items()]}]}
        path.write_text(json.dumps(value))
    elif task == "udpos":
        path.write_text("".join("".join(f"{t}\n" for t in s) + "\n" for s in value))
    elif task == "bucc2018":
        path.write_text("".join(f"{a}\t{b}\n" for a, b in value))
    else:
        path.write_text("".join(f"{v}\n" for v in value))


def make_run(out, n=40, quality=None, rows=("baseline", "mnli", "same")):
    """A finished run: ``rows`` x the tasks of LANGS x two seeds, each evaluation cell with predictions,
    labels and the results.json that the scorer gives them. Row ``same`` predicts exactly as the
    baseline; ``quality`` maps a row to how often its predictions are right."""
    quality = quality or {"baseline": 0.5, "mnli": 0.7}
    rng = np.random.default_rng(0)
    gold = {(t, lang): _gold(t, lang, n, rng) for t, langs in LANGS.items() for lang in langs}
    preds = {}
    cells = []
    for task in LANGS:
        for seed in SEEDS:
            for row in rows:
                retrieval_base = row == "baseline" and task in ("tatoeba", "bucc2018")
                if retrieval_base and seed != SEEDS[0]:
                    continue
                cell = Cell(f"eval-{row}-{task}-s{seed}", "evaluate", row, task, None if retrieval_base else seed,
                            [], {"hash": "h"}, {})
                cells.append(cell)
                folder = cell.folder(out) / "eval"
                ext = XTREME[task].ext
                for lang in LANGS[task]:
                    same_as_base = row == "same" and task in ("tatoeba", "bucc2018")  # the bare model's
                    key = (task, lang, "baseline" if row == "same" else row, None if same_as_base else cell.seed)
                    preds.setdefault(key, _predict(task, gold[(task, lang)], quality[key[2]], rng))
                    _write(task, folder / "predictions" / task / f"test-{lang}.{ext}", preds[key], False)
                    _write(task, folder / "labels" / task / f"test-{lang}.{ext}", gold[(task, lang)], True)
                scores = score_folder(folder / "predictions", folder / "labels", [task])[task]
                (folder / "results.json").write_text(json.dumps(
                    {"task": task, "split": "dev", "scores": scores, "languages": LANGS[task],
                     "missing_languages": []}))
                (cell.folder(out) / "done.json").write_text(json.dumps({"kind": "evaluate", "seconds": 1.0,
                                                                        "device": "cpu"}))
    recipe = {"name": "t", "path": "r.yaml", "model": "m", "seeds": SEEDS, "baseline": True,
              "intermediates": {r: {} for r in rows if r != "baseline"}, "targets": {t: {} for t in LANGS},
              "module": {"method": "seq_bn"}, "evaluate": {"split": "dev", "languages": "all"}}
    (out / "plan.json").write_text(json.dumps({"recipe": recipe, "cells": [asdict(c) for c in cells]}))
    return cells


def _results(out, row, task):
    """{seed: per-language task scores} read straight from the results.json files."""
    found = {}
    for folder in (out / "cells").glob(f"eval-{row}-{task}-s*"):
        scores = json.loads((folder / "eval" / "results.json").read_text())["scores"]
        found[folder.name] = {lang: (v["exact_match"] + v["f1"]) / 2 if task == "xquad" else
                              v.get("f1", v.get("accuracy")) for lang, v in scores.items() if isinstance(v, dict)}
    return found


def test_grouped_values_are_means_of_the_per_language_results(tmp_path):
    make_run(tmp_path)
    result = write_report(tmp_path, group_by=("family", "resource", "script"))
    table = list(csv.DictReader((tmp_path / "report" / "by-family.csv").open()))
    got = {(r["task"], r["group"], r["row"]): r for r in table}
    families = {"xnli": {"Indo-European": ["de", "fr", "ru"], "Niger-Congo": ["sw"]},
                "udpos": {"Indo-European": ["de", "fr"], "Japonic": ["ja"]},
                "xquad": {"Indo-European": ["de", "el"], "Kra-Dai": ["th"]}}
    for task, groups in families.items():
        for group, langs in groups.items():
            means = {}
            for row in ("baseline", "mnli"):
                per_seed = [statistics.mean(s[lang] for lang in langs) for s in _results(tmp_path, row, task).values()]
                means[row] = statistics.mean(per_seed)
                r = got[(task, group, row)]
                assert (int(r["n_languages"]), r["languages"].split()) == (len(langs), langs)
                assert float(r["mean"]) == pytest.approx(means[row])
                assert float(r["std"]) == pytest.approx(statistics.stdev(per_seed))
            assert float(got[(task, group, "mnli")]["delta"]) == pytest.approx(means["mnli"] - means["baseline"])
    # the bare model's retrieval cell counts for every seed of the baseline
    base = _results(tmp_path, "baseline", "tatoeba")
    assert float(got[("tatoeba", "Indo-European", "baseline")]["mean"]) == pytest.approx(
        statistics.mean(next(iter(base.values())).values()))
    resource = {(r["task"], r["group"]) for r in csv.DictReader((tmp_path / "report" / "by-resource.csv").open())}
    assert ("xnli", "class 2") in resource and ("xnli", "class 5") in resource  # sw; de, fr
    md = result["groups"]["family"]["markdown"]
    assert "| intermediate task | Indo-European (3) | Niger-Congo (1) |" in md
    assert not result["groups"]["family"]["notes"]


def test_a_language_missing_from_the_table_is_reported(tmp_path, monkeypatch):
    make_run(tmp_path, n=5)
    monkeypatch.delitem(languages.LANGUAGES, "sw")
    result = write_report(tmp_path, group_by=("family",))
    notes = result["groups"]["family"]["notes"]
    assert notes == ["xnli: sw not in the language table (adapterxfer/languages.py): grouped as 'unlisted'"]
    assert "unlisted (1)" in result["groups"]["family"]["markdown"]
    rows = [r for r in csv.DictReader((tmp_path / "report" / "by-family.csv").open()) if r["group"] == "unlisted"]
    assert {r["languages"] for r in rows} == {"sw"} and all(r["mean"] for r in rows)


def test_bootstrap_identical_superset_and_exact_cases():
    rng = np.random.default_rng(1)
    scores = ((rng.random(30) < 0.5).astype(float), np.ones(30))
    same = paired_bootstrap({"r": {"de": [scores]}}, {"de": [scores]}, samples=200)["r"]
    assert (same.delta, same.low, same.high, same.significant) == (0, 0, 0, False)
    # the row is right wherever the baseline is, and on 10 more of 30 examples
    base = np.zeros(30)
    base[:10] = 1
    better = base.copy()
    better[10:20] = 1
    sup = paired_bootstrap({"r": {"de": [(better, np.ones(30))]}}, {"de": [(base, np.ones(30))]}, samples=500)["r"]
    assert sup.delta == pytest.approx(100 / 3) and sup.low > 0 and sup.significant
    # two examples, the row right on one more: a resample's delta is 0, 50 or 100 with p = 1/4, 1/2, 1/4
    row, base = {"de": [(np.array([1.0, 0.0]), np.ones(2))]}, {"de": [(np.zeros(2), np.ones(2))]}
    iv = paired_bootstrap({"r": row}, base, samples=4000)["r"]
    assert (iv.delta, iv.low, iv.high, iv.significant) == (50, 0, 100, False)
    # averaged over two languages, the second with no change: deltas are 0, 25 or 50
    flat = {"fr": [(np.ones(2), np.ones(2))]}
    both = paired_bootstrap({"r": {**row, **flat}, "s": {"de": [scores]}}, {**base, **flat}, samples=4000)
    assert (both["r"].delta, both["r"].low, both["r"].high) == (25, 0, 50)
    assert both["s"].reason  # 30 examples against the baseline's 2: no interval, and the others still get theirs
    # a row's interval does not depend on which other rows are compared
    alone = paired_bootstrap({"r": {**row, **flat}}, {**base, **flat}, samples=300, seed=7)["r"]
    assert alone == paired_bootstrap({"r": {**row, **flat}, "t": {**row}}, {**base, **flat}, samples=300, seed=7)["r"]


def test_resampled_tagging_f1_from_counts_is_seqevals():
    rng = np.random.default_rng(2)
    for tags in (POS, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]):
        gold = [[str(t) for t in rng.choice(tags, size=rng.integers(1, 8))] for _ in range(25)]
        pred = [[t if rng.random() < 0.6 else str(rng.choice(tags)) for t in s] for s in gold]
        counts = tagging_counts(pred, gold)
        for _ in range(5):
            idx = rng.integers(0, len(gold), size=len(gold))
            tp, npred, ngold = counts[idx].sum(axis=0)
            f1 = 100 * 2 * tp / (npred + ngold) if npred + ngold else 0.0
            assert f1 == pytest.approx(tagging_f1([pred[i] for i in idx], [gold[i] for i in idx])["f1"])


def test_significance_in_the_report(tmp_path):
    make_run(tmp_path, quality={"baseline": 0.3, "mnli": 0.9})
    result = write_report(tmp_path, significance=True, samples=200)
    intervals, table = result["intervals"], result["table"]
    for task in ("xnli", "udpos", "xquad", "tatoeba"):
        mnli, same = intervals[("mnli", task)], intervals[("same", task)]
        assert mnli.delta == pytest.approx(table.delta("mnli", task))  # at the full sample: the table's delta
        assert mnli.low > 0 and mnli.significant, task
        assert (same.delta, same.low, same.high, same.significant) == (0, 0, 0, False)
    assert intervals[("mnli", "bucc2018")].reason.startswith("BUCC")
    row = {r["row"]: r for r in csv.DictReader((tmp_path / "report" / "table.csv").open())}["mnli"]
    assert float(row["xnli_ci_low"]) == intervals[("mnli", "xnli")].low and row["xnli_significant"] == "1"
    assert row["bucc2018_ci_low"] == "" and row["xtreme_avg_significant"] == ""
    delta = round(table.delta("mnli", "xnli"), 1)
    assert f"({delta:+.1f}*)" in result["markdown"] and "no interval for mnli / bucc2018: BUCC" in result["markdown"]
    # the same seed gives the same intervals
    again = write_report(tmp_path, significance=True, samples=200)["intervals"]
    assert again[("mnli", "udpos")] == intervals[("mnli", "udpos")]


def test_significance_reads_each_languages_gold_once(tmp_path, monkeypatch):
    """Every cell (row and seed) is compared with the same labels: a grid of PAN-X's 40 languages x 10,000
    sentences spent half its bootstrap reading in parsing and chunking them again for each cell."""
    import dataclasses

    make_run(tmp_path, quality={"baseline": 0.3, "mnli": 0.9})
    expected = write_report(tmp_path, significance=True, samples=200)["intervals"]
    reads = []
    for task in LANGS:
        counting = lambda path, read=XTREME[task].read_gold: reads.append(path) or read(path)  # noqa: E731
        monkeypatch.setitem(XTREME, task, dataclasses.replace(XTREME[task], read_gold=counting))
    assert write_report(tmp_path, significance=True, samples=200)["intervals"] == expected
    langs = [(task, path.stem) for path in reads for task in LANGS if path.parent.name == task]
    assert sorted(langs) == sorted((t, f"test-{lang}") for t in LANGS if t != "bucc2018" for lang in LANGS[t])


def test_command_and_language_listing(tmp_path):
    make_run(tmp_path / "run", n=5)
    r = CliRunner().invoke(main, ["report", str(tmp_path / "run"), "--group-by", "script", "--significance",
                                  "--bootstrap-samples", "50"])
    assert r.exit_code == 0, r.output
    assert "### XNLI acc by script" in r.stdout and (tmp_path / "run" / "report" / "by-script.csv").is_file()
    bad = CliRunner().invoke(main, ["report", str(tmp_path / "run"), "--group-by", "genus"])
    assert bad.exit_code == 2 and "genus" in bad.output
    listing = CliRunner().invoke(main, ["languages"])
    assert listing.exit_code == 0
    assert "| sw | Swahili | Niger-Congo | Latin (Latn) | 2 (The Hopefuls) |" in listing.output
