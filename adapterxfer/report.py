"""``adapterxfer report RUN_DIR``: the paper's table from a grid run, a heatmap of the deltas, the cost.

Rows are the baseline (no intermediate task), each intermediate task and the multi-task module, in the
recipe's order; columns are the target tasks of the recipe's benchmark (XTREME, or XTREME-R) in its
order, each with its metric (the benchmark's task score: accuracy, F1, or for QA the mean of F1 and EM),
then the benchmark's average: per seed the plain mean of the task scores, as XTREME averages tasks. A cell is ``mean ± std`` over the seeds (sample
standard deviation) and its delta against the baseline's mean. Every number comes from a finished
cell's ``eval/results.json``; a table entry with a missing seed says so and is not averaged.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import click

from .errors import UserError, friendly
from .fileio import write_text
from .grid import FULL_FT_TIME, Cell, _du, _size, _slug, base_parameters, read_plan
from .metrics import mean
from .languages import GROUPINGS, group_languages
from .recipes import models_of
from .score import scorer
from .tasks import BENCHMARKS, get_task, use_task_files
from .zeroshot import languages_list

NAMES = {"pawsx": "PAWS-X", "xnli": "XNLI", "panx": "PAN-X", "udpos": "UD-POS", "bucc2018": "BUCC",
         "tatoeba": "Tatoeba", "xquad": "XQuAD", "mlqa": "MLQA", "tydiqa": "TyDiQA", "xcopa": "XCOPA"}
METRICS = {"accuracy": "acc", "seqeval": "F1", "bucc_f1": "F1", "squad": "F1·EM", "mlqa": "F1·EM"}
AVERAGE = "xtreme_avg"


@dataclass
class Entry:
    """One table entry: the score of each seed that finished (``None`` keys a seed-independent cell)."""

    scores: dict = field(default_factory=dict)  # seed -> score
    missing: list = field(default_factory=list)  # (cell id, why)
    partial: list = field(default_factory=list)  # cell ids scored on fewer languages than planned

    @property
    def complete(self) -> bool:
        return bool(self.scores) and not self.missing

    @property
    def mean(self) -> float | None:
        return mean(self.scores.values()) if self.complete else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.scores.values()) if self.complete and len(self.scores) > 1 else None


@dataclass
class Table:
    name: str
    rows: list
    columns: list
    seeds: list
    entries: dict  # (row, column) -> Entry
    split: str
    benchmark: str = "xtreme"

    @property
    def averaged(self) -> list:
        """The columns the average is over: the benchmark's (a task file's target task is in none)."""
        return [c for c in self.columns if c in BENCHMARKS[self.benchmark].tasks]

    def delta(self, row: str, column: str) -> float | None:
        base, here = self.entries.get(("baseline", column)), self.entries.get((row, column))
        if row == "baseline" or not base or not here or base.mean is None or here.mean is None:
            return None
        return here.mean - base.mean


def _why(cell: Cell, out: Path, by_id: dict) -> str | None:
    """None if done, else why not: its failure, the failure of a cell it needs, or not run yet."""
    folder = cell.folder(out)
    if (folder / "done.json").is_file():
        return None
    if (folder / "failed.json").is_file():
        return "failed: " + json.loads((folder / "failed.json").read_text())["error"]
    for dep in cell.deps:
        reason = _why(by_id[dep], out, by_id)
        if reason and reason != "not run yet":
            return f"needs {dep}, which {reason}" if reason.startswith("failed") else reason
    return "not run yet"


def _evaluations(recipe: dict, cells: list[Cell], model: str | None) -> list[Cell]:
    """The evaluation cells of ``model`` (a sweep's; None: the first model), clean and perturbed."""
    models = models_of(recipe["model"])
    model = model or models[0]
    return [c for c in cells if c.kind == "evaluate" and (len(models) == 1 or c.model == model)]


def collect(out: str | Path, model: str | None = None) -> tuple[dict, list[Cell], Table]:
    """The table of a run folder (of ``model`` in a model sweep; default: its first), read from its plan
    and its cells' results files; evaluations of perturbed inputs are left to :func:`robustness`."""
    out = Path(out)
    recipe, cells = read_plan(out)
    rows = (["baseline"] if recipe["baseline"] else []) + list(recipe["intermediates"])
    benchmark = BENCHMARKS[recipe.get("benchmark", "xtreme")]  # plans written before benchmarks: XTREME
    use_task_files(recipe.get("task_files", []))  # the grid's own tasks: its columns after the benchmark's
    columns = [t for t in benchmark.tasks if t in recipe["targets"]] + [t for t in recipe["targets"] if get_task(t).origin]
    entries = {(r, c): Entry() for r in rows for c in columns}
    by_id = {c.id: c for c in cells}

    for cell in _evaluations(recipe, cells, model):
        if cell.identity.get("perturb"):
            continue
        entry = entries[(cell.row, cell.task)]
        folder = cell.folder(out)
        reason = _why(cell, out, by_id)
        if reason:
            entry.missing.append((cell.id, reason))
            continue
        results = json.loads((folder / "eval" / "results.json").read_text())
        if not results["scores"]:
            entry.missing.append((cell.id, f"no labels for its {results['split']} files: pass evaluate.labels_dir"))
            continue
        entry.scores[cell.seed] = results["scores"]["avg_metric"]
        if results["missing_languages"]:
            entry.partial.append(cell.id)
    for row in rows:  # per seed, the mean of the task scores; a seed-independent cell counts for every seed
        entry = entries[(row, AVERAGE)] = Entry()
        for seed in recipe["seeds"]:
            parts = [entries[(row, c)] for c in columns if c in benchmark.tasks]
            if parts and all(p.complete for p in parts):
                entry.scores[seed] = mean(p.scores.get(seed, p.scores.get(None)) for p in parts)
        entry.missing = [m for c in columns if c in benchmark.tasks for m in entries[(row, c)].missing]
    table = Table(recipe["name"], rows, columns + [AVERAGE], recipe["seeds"], entries, recipe["evaluate"]["split"],
                  benchmark.name)
    return recipe, cells, table


@dataclass
class Robustness:
    """A ladder's results: per (row, task, step) the perturbed score and the drop (clean − perturbed,
    as zeroshot's ``drop``, in the table's metric) of each seed, read from the step cells' results.json."""

    table: Table  # the clean table of the same model
    steps: list  # each step's name, e.g. "char_swap:0.1" or "char_swap:0.1 + word_drop:0.1"
    perturbed: dict  # (row, task, step) -> Entry
    drop: dict  # (row, task, step) -> Entry


def robustness(out: str | Path, model: str | None = None) -> Robustness | None:
    """The perturbation ladder of a run folder (of ``model`` in a sweep); None without a ladder."""
    out = Path(out)
    recipe, cells, table = collect(out, model)
    by_id = {c.id: c for c in cells}
    mine = [c for c in _evaluations(recipe, cells, model) if c.identity.get("perturb")]
    if not mine:
        return None
    steps = list(dict.fromkeys(" + ".join(c.identity["perturb"]) for c in mine))
    keys = [(r, t, s) for r in table.rows for t in table.columns[:-1] for s in steps]
    perturbed, drop = {k: Entry() for k in keys}, {k: Entry() for k in keys}
    for cell in mine:
        key = (cell.row, cell.task, " + ".join(cell.identity["perturb"]))
        reason = _why(cell, out, by_id)
        if not reason:
            results = json.loads((cell.folder(out) / "eval" / "results.json").read_text())
            clean, noisy = results["scores"].get("avg_metric"), results.get("perturbed_scores", {}).get("avg_metric")
            reason = None if clean is not None and noisy is not None else \
                f"no labels for its {results['split']} files: pass evaluate.labels_dir"
        if reason:
            perturbed[key].missing.append((cell.id, reason))
            drop[key].missing.append((cell.id, reason))
            continue
        perturbed[key].scores[cell.seed] = noisy
        drop[key].scores[cell.seed] = clean - noisy
    return Robustness(table, steps, perturbed, drop)


def _header(column: str, n_columns: int, benchmark: str = "xtreme") -> str:
    if column == AVERAGE:
        bench = BENCHMARKS[benchmark]
        return f"{bench.title} avg" if n_columns == len(bench.tasks) else f"avg ({n_columns} of {len(bench.tasks)} tasks)"
    return f"{NAMES.get(column, column)} {METRICS.get(get_task(column).metric, 'acc')}"


def markdown(table: Table, intervals: dict | None = None) -> tuple[str, list[str]]:
    """The table in markdown and the list of what is missing or partial; with ``intervals`` (from
    :func:`bootstrap`), a delta whose 95% interval excludes zero gets a ``*``."""
    n = len(table.averaged)
    lines = ["| intermediate task | " + " | ".join(_header(c, n, table.benchmark) for c in table.columns) + " |",
             "|---|" + "---:|" * len(table.columns)]
    notes = []
    for row in table.rows:
        cells = []
        for column in table.columns:
            e = table.entries[(row, column)]
            if not e.complete:
                have = len(e.scores)
                cells.append(f"missing ({have} of {len(table.seeds)} seeds)" if have else "missing")
                continue
            star = "*" if intervals and intervals.get((row, column)) and intervals[(row, column)].significant else ""
            cells.append(_entry_text(e, table.delta(row, column), star))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    for (row, column), e in table.entries.items():
        if column == AVERAGE:
            continue
        notes += [f"{row} / {column}: {cell_id}: {why}" for cell_id, why in e.missing]
        notes += [f"† {row} / {column}: {cell_id} scored fewer languages than planned (see its results.json)"
                  for cell_id in e.partial]
    return "\n".join(lines), notes


def _mean_std(e: Entry) -> str:
    return f"{e.mean:.1f}" + (f" ± {e.std:.1f}" if e.std is not None else "")


def _entry_text(e: Entry, delta: float | None, star: str = "") -> str:
    """``mean ± std (delta)`` of a table entry, ``†`` when scored on fewer languages than planned."""
    text = _mean_std(e) + (f" ({delta:+.1f}{star})" if delta is not None else "")  # -0.0: below, if barely
    return text + (" †" if e.partial else "")


def csv_text(table: Table, intervals: dict | None = None, model: str | None = None) -> str:
    """One line per row; per column its mean, std, delta against the baseline, seeds scored and missing;
    with ``intervals``, the delta's 95% bootstrap interval and whether it excludes zero; with ``model``
    (a sweep), a first column naming it."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    keys = ("mean", "std", "delta", "seeds", "missing") + (("ci_low", "ci_high", "significant") if intervals else ())
    names = [f"{table.benchmark.replace('-', '_')}_avg" if c == AVERAGE else c for c in table.columns]
    w.writerow(["model"] * bool(model) + ["row"] + [f"{c}_{k}" for c in names for k in keys])
    for row in table.rows:
        values = [model] * bool(model) + [row]
        for column in table.columns:
            e = table.entries[(row, column)]
            values += [_num(e.mean), _num(e.std), _num(table.delta(row, column)), len(e.scores), len(e.missing)]
            if intervals:
                iv = intervals.get((row, column))
                values += [_num(iv.low), _num(iv.high), int(iv.significant)] if iv and iv.low is not None \
                    else ["", "", ""]
        w.writerow(values)
    return buf.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else repr(value)


def robustness_markdown(r: Robustness) -> tuple[str, list[str]]:
    """Per task: each row's clean score and, per ladder step, the perturbed score and the drop
    (clean − perturbed, mean ± std over seeds); and what is missing."""
    parts, notes = [], []
    for task in r.table.columns[:-1]:
        lines = [f"**{_header(task, 0)}**", "", "| intermediate task | clean | " + " | ".join(r.steps) + " |",
                 "|---|" + "---:|" * (len(r.steps) + 1)]
        for row in r.table.rows:
            e = r.table.entries[(row, task)]
            cells = [_mean_std(e) if e.complete else "missing"]
            for step in r.steps:
                p, d = r.perturbed[(row, task, step)], r.drop[(row, task, step)]
                cells.append(f"{p.mean:.1f} (drop {_mean_std(d)})" if p.complete else "missing")
                notes += [f"{row} / {task} / {step}: {cell_id}: {why}" for cell_id, why in p.missing]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts), notes


def robustness_csv(ladders: dict) -> str:
    """One line per model, row, task and step: clean, perturbed and drop (mean, std), seeds, missing."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "row", "task", "step", "clean_mean", "perturbed_mean", "perturbed_std", "drop_mean",
                "drop_std", "seeds", "missing"])
    for model, r in ladders.items():
        for row in r.table.rows:
            for task in r.table.columns[:-1]:
                for step in r.steps:
                    p, d = r.perturbed[(row, task, step)], r.drop[(row, task, step)]
                    w.writerow([model, row, task, step, _num(r.table.entries[(row, task)].mean), _num(p.mean),
                                _num(p.std), _num(d.mean), _num(d.std), len(p.scores), len(p.missing)])
    return buf.getvalue()


def heatmap(table: Table, path: Path) -> bool:
    """The deltas against the baseline as a PNG (rows: intermediate tasks; grey: missing); False without
    a baseline row or intermediate rows."""
    rows = [r for r in table.rows if r != "baseline"]
    if "baseline" not in table.rows or not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    values = np.array([[np.nan if table.delta(r, c) is None else table.delta(r, c) for c in table.columns]
                       for r in rows])
    span = max(1.0, float(np.nanmax(np.abs(values)))) if np.isfinite(values).any() else 1.0
    fig, ax = plt.subplots(figsize=(1.1 * len(table.columns) + 2, 0.5 * len(rows) + 1.6))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#dddddd")
    ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=TwoSlopeNorm(0, -span, span), aspect="auto")
    ax.set_xticks(range(len(table.columns)), [_header(c, len(table.averaged), table.benchmark) for c in table.columns],
                  rotation=40, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(table.columns)):
            dark = not np.isnan(values[i, j]) and abs(values[i, j]) > span / 2
            label = "n/a" if np.isnan(values[i, j]) else f"{values[i, j]:+.1f}"
            ax.text(j, i, label, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_title(f"{table.name}: change against the baseline\n({table.split} sets, mean over seeds)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def cost(recipe: dict, cells: list[Cell], out: Path) -> dict:
    """What the run used (finished cells' wall time x their GPUs, trainable parameters, disk) beside
    what full fine-tuning of the same grid would need (grid.FULL_FT_TIME x the training time, a full
    checkpoint per training cell, Adam's 8 bytes of state per parameter)."""
    files = [c.folder(out) / "done.json" for c in cells]
    done = [json.loads(f.read_text()) for f in files if f.is_file()]
    training = [d for d in done if d["kind"] != "evaluate"]
    base = next((d["base_parameters"] for d in training), None) or base_parameters(models_of(recipe["model"])[0])
    seconds = {k: sum(d["seconds"] * d.get("gpus", 1) for d in done if (d["kind"] == "evaluate") == (k == "evaluate"))
               for k in ("training", "evaluate")}
    trainable = {k: round(statistics.mean(d["trainable_parameters"] for d in training if d["kind"] == k))
                 for k in ("intermediate", "target") if any(d["kind"] == k for d in training)}
    full = recipe["module"].get("method") == "full"
    n_training = sum(1 for c in cells if c.kind != "evaluate")
    return {"cells_done": len(done), "cells": len(cells), "devices": sorted({d["device"] for d in done}),
            "hours": (seconds["training"] + seconds["evaluate"]) / 3600,
            "full_hours": (seconds["training"] * (1 if full else FULL_FT_TIME) + seconds["evaluate"]) / 3600,
            "trainable": trainable, "base_parameters": base,
            "module_disk": sum(d.get("disk_bytes", 0) for d in training), "run_disk": _du(out / "cells"),
            "full_disk": len(training) * 4 * base, "full_disk_planned": n_training * 4 * base,
            "optimizer_state": {k: 8 * v for k, v in trainable.items()}, "full_optimizer_state": 8 * base}


def cost_markdown(c: dict) -> str:
    def params(n):
        return f"{n:,} ({100 * n / c['base_parameters']:.2f}% of the base)"

    rows = [("GPU-hours (wall time of the finished cells)", f"{c['hours']:.3f} on {', '.join(c['devices']) or '-'}",
             f"{c['full_hours']:.3f} (training x {FULL_FT_TIME})"),
            *((f"trainable parameters, {k} module", params(v), f"{c['base_parameters']:,} (every weight)")
              for k, v in c["trainable"].items()),
            ("disk of the trained modules", _size(c["module_disk"]),
             f"{_size(c['full_disk'])} (a full checkpoint per training cell; {_size(c['full_disk_planned'])} "
             f"for the whole grid)"),
            *((f"optimizer state per {k} cell (Adam, fp32)", _size(v), _size(c["full_optimizer_state"]))
              for k, v in c["optimizer_state"].items()),
            ("disk used by the run folder (modules, predictions, logs)", _size(c["run_disk"]), "")]
    return "\n".join(["| | this run | full fine-tuning of the same grid (estimate) |", "|---|---|---|",
                      *(f"| {a} | {b} | {d} |" for a, b, d in rows)])


# ---------------------------------------------------------------- per-language views

def _scored(out: Path, cells: list[Cell]) -> dict:
    """``{(row, task): {seed: (cell, results)}}`` of the finished evaluation cells that have scores."""
    found: dict = {}
    for cell in cells:
        folder = cell.folder(out)
        if cell.kind != "evaluate" or not (folder / "done.json").is_file():
            continue
        results = json.loads((folder / "eval" / "results.json").read_text())
        if results["scores"]:
            found.setdefault((cell.row, cell.task), {})[cell.seed] = (cell, results)
    return found


def _language_score(task: str, metrics: dict) -> float:
    """A language's task score as XTREME's average counts it (QA: the mean of exact match and F1)."""
    if "exact_match" in metrics:  # QA
        return (metrics["exact_match"] + metrics["f1"]) / 2
    return metrics["f1"] if "f1" in metrics else metrics["accuracy"]


def grouped(table: Table, scored: dict, by: str, model: str | None = None) -> tuple[str, str, list[str]]:
    """Per target task, each row's score averaged over the languages of each group (``by``: family,
    script or resource class): markdown, CSV and notes. Per seed the plain mean of the group's language
    scores, then mean ± std over seeds and the delta against the baseline, as in the main table;
    languages missing from the language table form an ``unlisted`` group and are named in the notes.
    With ``model`` (a sweep's), the CSV's first column names it."""
    blocks, notes = [], []
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    first = ["model"] * bool(model)
    w.writerow(first + ["task", "group", "n_languages", "languages", "row", "mean", "std", "delta", "seeds"])
    for task in table.columns[:-1]:
        runs = {row: scored.get((row, task), {}) for row in table.rows}
        scored_langs = {lang for r in runs.values() for _, res in r.values() for lang in res["scores"]
                        if isinstance(res["scores"][lang], dict)}
        order = [lang for lang in get_task(task).languages_in(table.benchmark) if lang in scored_langs]
        if not order:
            notes.append(f"{task}: no language scored (see the main table), so no groups")
            continue
        groups, unlisted = group_languages(order, by)
        if unlisted:
            groups["unlisted"] = unlisted
            notes.append(f"{task}: {', '.join(unlisted)} not in the language table (adapterxfer/languages.py): "
                         f"grouped as 'unlisted'")
        entries = {}
        for row in table.rows:
            main = table.entries[(row, task)]
            for group, langs in groups.items():
                e = entries[(row, group)] = Entry(missing=list(main.missing))
                for seed, (cell, res) in runs[row].items():
                    have = [lang for lang in langs if isinstance(res["scores"].get(lang), dict)]
                    if len(have) < len(langs):
                        e.partial.append(cell.id)
                    if have:
                        e.scores[seed] = mean(_language_score(task, res["scores"][lang]) for lang in have)
                    else:
                        e.missing.append((cell.id, f"no {group} language scored"))
        lines = [f"### {NAMES.get(task, task)} {METRICS.get(get_task(task).metric, 'acc')} by {by}", "",
                 "| intermediate task | " + " | ".join(f"{g} ({len(v)})" for g, v in groups.items()) + " |",
                 "|---|" + "---:|" * len(groups)]
        for row in table.rows:
            cells_ = []
            for group, langs in groups.items():
                e, base = entries[(row, group)], entries.get(("baseline", group))
                delta = e.mean - base.mean if row != "baseline" and base and base.mean is not None and \
                    e.mean is not None else None
                w.writerow([model] * bool(model) + [task, group, len(langs), " ".join(langs), row, _num(e.mean),
                                                     _num(e.std), _num(delta), len(e.scores)])
                if e.mean is None:
                    cells_.append("missing")
                    continue
                cells_.append(_entry_text(e, delta))
            lines.append(f"| {row} | " + " | ".join(cells_) + " |")
        lines += ["", "; ".join(f"{g}: {' '.join(v)}" for g, v in groups.items())]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks), buf.getvalue(), notes


def bootstrap(out: Path, table: Table, scored: dict, samples: int = 1000, seed: int = 0) -> dict:
    """``{(row, task): Interval}``: each row's delta against the baseline with its paired-bootstrap 95%
    interval (:mod:`adapterxfer.significance`) over the evaluation examples, read from the cells'
    prediction files and the gold labels they were scored against, on the languages that every cell of
    both rows scored; an entry that cannot be bootstrapped says why."""
    from .significance import NO_BOOTSTRAP, Interval, example_scores, paired_bootstrap, read_gold, stable_seed

    intervals = {}
    for task in table.columns[:-1]:
        rows = [r for r in table.rows if r != "baseline"]
        if task in NO_BOOTSTRAP or "baseline" not in table.rows or not table.entries[("baseline", task)].complete:
            why = NO_BOOTSTRAP.get(task, "the baseline is missing cells")
            intervals.update({(row, task): Interval(reason=why) for row in rows})
            continue

        def read(runs: dict, langs: list, gold: dict) -> dict:
            """{lang: [(num, den) per seed]}, checking that every cell was scored against the same gold."""
            per_lang: dict = {}
            for cell, _ in runs.values():
                for lang in langs:
                    pred, gold_path = _example_files(out, cell, task, lang)
                    data = gold_path.read_bytes()
                    if gold.setdefault(lang, data) != data:
                        raise UserError(f"{cell.id} was scored against other {lang} labels ({gold_path}) than "
                                        f"the baseline")
                    if lang not in parsed:  # the same labels for every cell: parsed (and chunked) once
                        parsed[lang] = read_gold(task, gold_path)
                    per_lang.setdefault(lang, []).append(example_scores(task, pred, gold_path, lang, parsed[lang]))
            return per_lang

        def common(runs: dict, langs) -> list:
            return [lang for lang in langs if all(lang in res["languages"] for _, res in runs.values())]

        gold: dict = {}
        parsed: dict = {}
        base_runs = scored[("baseline", task)]
        try:
            base = read(base_runs, common(base_runs, get_task(task).languages_in(table.benchmark)), gold)
        except UserError as e:
            intervals.update({(row, task): Interval(reason=f"baseline: {e}") for row in rows})
            continue
        compared = {}
        for row in rows:
            runs = scored.get((row, task), {})
            if not table.entries[(row, task)].complete:
                intervals[(row, task)] = Interval(reason="missing cells")
                continue
            try:
                compared[row] = read(runs, common(runs, base), gold)
            except UserError as e:
                intervals[(row, task)] = Interval(reason=str(e))
        for row, iv in paired_bootstrap(compared, base, samples, stable_seed(seed, task)).items():
            intervals[(row, task)] = iv
    return intervals


def _example_files(out: Path, cell: Cell, task: str, lang: str) -> tuple[Path, Path]:
    """An evaluation cell's prediction file for ``lang`` and the gold file it was scored against."""
    name = f"test-{lang}.{scorer(task).ext}"
    folder, labels = cell.folder(out) / "eval", cell.run.get("labels_dir")
    files = folder / "predictions" / task / name, (Path(labels) if labels else folder / "labels") / task / name
    for path in files:
        if not path.is_file():
            raise UserError(f"{cell.id}: no {path}")
    return files


def write_report(out: str | Path, output: str | Path | None = None, group_by=(), significance: bool = False,
                 samples: int = 1000, seed: int = 0) -> dict:
    """Write table.md (with the cost), table.csv and deltas.png to ``output`` (default RUN_DIR/report);
    per ``group_by`` grouping (family, script, resource) by-<grouping>.md and .csv; with ``significance``,
    paired-bootstrap intervals (``samples`` resamples, seeded by ``seed``) in both table files."""
    out = Path(out)
    output = Path(output) if output else out / "report"
    recipe, cells, table = collect(out)
    models = models_of(recipe["model"])
    sweep = len(models) > 1
    tables = {m: collect(out, m)[2] for m in models} if sweep else {models[0]: table}
    ladders = {m: r for m in models if (r := robustness(out, m if sweep else None))}
    scored = {m: _scored(out, [c for c in _evaluations(recipe, cells, m) if not c.identity.get("perturb")])
              for m in tables} if group_by or significance else {}
    intervals = {m: bootstrap(out, t, scored[m], samples, seed) for m, t in tables.items()} if significance else {}
    c = cost(recipe, cells, out)
    seeds = ", ".join(map(str, table.seeds))
    langs = recipe["evaluate"]["languages"]
    title = BENCHMARKS[table.benchmark].title
    counts = {} if langs == "all" else {t: (len(languages_list(get_task(t), v, table.benchmark)),
                                             len(get_task(t).languages_in(table.benchmark))) for t, v in langs.items()}
    fewer = [f"{t} {n} of {of}" for t, (n, of) in counts.items() if n < of]  # "all" for a task is all of them
    fewer = f" Fewer languages than {title}'s, so not comparable to its averages: {', '.join(fewer)}." if fewer else ""
    base = "frozen base models, one table each" if sweep else \
        f"a frozen {'tiny demo model' if recipe['model'] == 'demo' else recipe['model']}"
    md = [f"# {table.name}: zero-shot cross-lingual transfer after English intermediate-task training", "",
          f"{recipe['module'].get('method', 'seq_bn')} modules on {base}. Scores (%) on the "
          f"{table.split} set of each language (tasks without one: their test set), averaged over languages as "
          f"XTREME does (QA: the mean of F1 and EM); mean ± std over seeds {seeds}; in brackets the change "
          f"against the baseline.{fewer}", ""]
    if significance:
        md += [f"\\* the 95% interval of the delta excludes zero (paired bootstrap over evaluation examples, "
               f"{samples} resamples per language, seeds averaged; intervals in table.csv).", ""]
    notes, pngs = [], []
    slugs = [_slug(m) for m in tables]
    if len(set(slugs)) < len(slugs):  # models in folders of the same name: numbered, so no heatmap is lost
        slugs = [f"{n}-{slug}" for n, slug in enumerate(slugs, 1)]
    for (model, t), slug in zip(tables.items(), slugs):
        text, missing = markdown(t, intervals.get(model))
        png = output / (f"deltas-{slug}.png" if sweep else "deltas.png")
        if heatmap(t, png):
            pngs.append(png)
        md += ([f"## {model}", ""] if sweep else []) + [text, ""]
        reasons = [f"- no interval for {row} / {task}: {iv.reason}"
                   for (row, task), iv in intervals.get(model, {}).items() if iv.reason]
        md += reasons + ([""] if reasons else [])
        notes += [f"{model}: {n}" for n in missing] if sweep else missing
    if notes:
        md += [f"Missing or partial ({len(notes)}), each with its reason (cells not run yet: `adapterxfer grid "
               f"{recipe['path']} --out {out}`):", "",
               *(f"- {n}" for n in notes), ""]
    if ladders:
        md += ["## Robustness", "", f"Inputs perturbed with seed {recipe['evaluate'].get('perturb_seed', 0)} (the "
               f"same noise for every module; labels untouched): per ladder step the perturbed score and, in "
               f"brackets, the drop, clean − perturbed, mean ± std over seeds.", ""]
        for model, r in ladders.items():
            text, missing = robustness_markdown(r)
            md += ([f"### {model}", ""] if sweep else []) + [text, ""]
            if missing:
                md += [f"Missing ({len(missing)}):", "", *(f"- {n}" for n in missing), ""]
            notes += missing
    md += ["## Cost", "", f"{c['cells_done']} of {c['cells']} cells finished.", "", cost_markdown(c), ""]
    md += [f"![deltas]({png.name})" for png in pngs] + ([""] if pngs else [])
    write_text(output / "table.md", "\n".join(md))
    write_text(output / "table.csv", _concat_csv([csv_text(t, intervals.get(m), m if sweep else None)
                                                  for m, t in tables.items()]))
    files = [output / "table.md", output / "table.csv"]
    if ladders:
        write_text(output / "robustness.csv", robustness_csv(ladders))
        files.append(output / "robustness.csv")
    result = {"markdown": "\n".join(md), "table": table, "tables": tables, "robustness": ladders, "cost": c,
              "notes": notes, "intervals": intervals.get(models[0]) if significance else None, "groups": {}}
    for by in group_by:
        blocks, csvs, group_notes = [], [], []
        for model, t in tables.items():
            text, csv_, found = grouped(t, scored[model], by, model if sweep else None)
            blocks += ([f"## {model}", ""] if sweep else []) + [text, ""]
            csvs.append(csv_)
            group_notes += [f"{model}: {x}" for x in found] if sweep else found
        text = "\n".join([f"# {table.name} by language {by}", "", _GROUPED_INTRO[by], "", *blocks,
                          *(f"- {x}" for x in group_notes + notes), ""])
        write_text(output / f"by-{by}.md", text)
        write_text(output / f"by-{by}.csv", _concat_csv(csvs))
        result["groups"][by] = {"markdown": text, "notes": group_notes}
        files += [output / f"by-{by}.md", output / f"by-{by}.csv"]
    return {**result, "files": files + pngs}


def _concat_csv(texts: list[str]) -> str:
    """CSV texts with the same header as one: the first whole, the others without their header line."""
    return "".join(t if n == 0 else t.split("\n", 1)[1] for n, t in enumerate(texts))


_GROUPED_INTRO = {by: f"Per task, each row's score averaged over the languages of each {what} (in brackets how many "
                      f"languages), per seed, then mean ± std over seeds and the change against the baseline. "
                      f"Groups come from adapterxfer's language table (`adapterxfer languages`)."
                  for by, what in (("family", "language family"), ("script", "script"),
                                   ("resource", "resource class of Joshi et al. (2020)"))}


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--output", "-o", type=click.Path(file_okay=False), help="Where to write the report [RUN_DIR/report].")
@click.option("--group-by", type=click.Choice(GROUPINGS), multiple=True,
              help="Also tables per task averaged by language family, script or resource class (repeatable).")
@click.option("--significance", is_flag=True,
              help="Mark deltas whose 95% paired-bootstrap interval over evaluation examples excludes zero.")
@click.option("--bootstrap-samples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Resamples per language for --significance.")
@click.option("--bootstrap-seed", type=int, default=0, show_default=True, help="Seed of the resampling.")
@friendly
def report_cmd(run_dir, output, group_by, significance, bootstrap_samples, bootstrap_seed):
    """Summarise a grid run: the paper's table (markdown, CSV), a heatmap of the deltas, and the cost.

    Every entry is the mean ± std over seeds of the cells' results.json scores and its change against
    the baseline; an entry with a seed not finished says "missing" and is listed, never averaged over
    fewer seeds. --group-by writes by-<grouping>.md/.csv; --significance adds bootstrap intervals
    (seeds averaged; BUCC has none) to table.csv and a * to significant deltas.

    \b
    Examples:
      adapterxfer report runs/xstilts
      adapterxfer report runs/xstilts --output paper/tables
      adapterxfer report runs/xstilts --group-by family --group-by resource --significance
    """
    if not Path(run_dir).is_dir():
        raise UserError(f"run folder {run_dir} does not exist")
    result = write_report(run_dir, output, group_by, significance, bootstrap_samples, bootstrap_seed)
    click.echo(result["markdown"])
    for group in result["groups"].values():
        click.echo(group["markdown"])
    click.echo("wrote " + ", ".join(str(f) for f in result["files"]), err=True)
