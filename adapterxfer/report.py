"""``adapterxfer report RUN_DIR``: the paper's table from a grid run, a heatmap of the deltas, the cost.

Rows are the baseline (no intermediate task), each intermediate task and the multi-task module, in the
recipe's order; columns are the XTREME target tasks in XTREME's order, each with its metric (XTREME's
task score: accuracy, F1, or for QA the mean of F1 and EM), then the XTREME average: per seed the plain
mean of the nine task scores, as XTREME averages tasks. A cell is ``mean ± std`` over the seeds (sample
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
from .grid import FULL_FT_TIME, Cell, _du, _size, base_parameters, read_plan
from .metrics import mean
from .score import TASKS as XTREME_ORDER
from .tasks import get_task

NAMES = {"pawsx": "PAWS-X", "xnli": "XNLI", "panx": "PAN-X", "udpos": "UD-POS", "bucc2018": "BUCC",
         "tatoeba": "Tatoeba", "xquad": "XQuAD", "mlqa": "MLQA", "tydiqa": "TyDiQA"}
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

    def delta(self, row: str, column: str) -> float | None:
        base, here = self.entries.get(("baseline", column)), self.entries.get((row, column))
        if row == "baseline" or not base or not here or base.mean is None or here.mean is None:
            return None
        return here.mean - base.mean


def collect(out: str | Path) -> tuple[dict, list[Cell], Table]:
    """The table of a run folder, read from its plan and its cells' results files."""
    out = Path(out)
    recipe, cells = read_plan(out)
    rows = (["baseline"] if recipe["baseline"] else []) + list(recipe["intermediates"])
    columns = [t for t in XTREME_ORDER if t in recipe["targets"]]
    entries = {(r, c): Entry() for r in rows for c in columns}
    by_id = {c.id: c for c in cells}

    def why(cell: Cell) -> str | None:
        """None if done, else why not: its failure, the failure of a cell it needs, or not run yet."""
        folder = cell.folder(out)
        if (folder / "done.json").is_file():
            return None
        if (folder / "failed.json").is_file():
            return "failed: " + json.loads((folder / "failed.json").read_text())["error"]
        for dep in cell.deps:
            reason = why(by_id[dep])
            if reason and reason != "not run yet":
                return f"needs {dep}, which {reason}" if reason.startswith("failed") else reason
        return "not run yet"

    for cell in cells:
        if cell.kind != "evaluate":
            continue
        entry = entries[(cell.row, cell.task)]
        folder = cell.folder(out)
        reason = why(cell)
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
            parts = [entries[(row, c)] for c in columns]
            if all(p.complete for p in parts):
                entry.scores[seed] = mean(p.scores.get(seed, p.scores.get(None)) for p in parts)
        entry.missing = [m for c in columns for m in entries[(row, c)].missing]
    table = Table(recipe["name"], rows, columns + [AVERAGE], recipe["seeds"], entries, recipe["evaluate"]["split"])
    return recipe, cells, table


def _header(column: str, n_columns: int) -> str:
    if column == AVERAGE:
        return "XTREME avg" if n_columns == len(XTREME_ORDER) else f"avg ({n_columns} of {len(XTREME_ORDER)} tasks)"
    return f"{NAMES[column]} {METRICS[get_task(column).metric]}"


def markdown(table: Table) -> tuple[str, list[str]]:
    """The table in markdown and the list of what is missing or partial."""
    n = len(table.columns) - 1
    lines = ["| intermediate task | " + " | ".join(_header(c, n) for c in table.columns) + " |",
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
            text = f"{e.mean:.1f}" + (f" ± {e.std:.1f}" if e.std is not None else "")
            delta = table.delta(row, column)
            text += f" ({round(delta, 1) + 0.0:+.1f})" if delta is not None else ""  # no "-0.0"
            cells.append(text + (" †" if e.partial else ""))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    for (row, column), e in table.entries.items():
        if column == AVERAGE:
            continue
        notes += [f"{row} / {column}: {cell_id}: {why}" for cell_id, why in e.missing]
        notes += [f"† {row} / {column}: {cell_id} scored fewer languages than planned (see its results.json)"
                  for cell_id in e.partial]
    return "\n".join(lines), notes


def csv_text(table: Table) -> str:
    """One line per row; per column its mean, std, delta against the baseline, seeds scored and missing."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row"] + [f"{c}_{k}" for c in table.columns for k in ("mean", "std", "delta", "seeds", "missing")])
    for row in table.rows:
        values = [row]
        for column in table.columns:
            e = table.entries[(row, column)]
            values += [_num(e.mean), _num(e.std), _num(table.delta(row, column)), len(e.scores), len(e.missing)]
        w.writerow(values)
    return buf.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else repr(value)


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
    ax.set_xticks(range(len(table.columns)), [_header(c, len(table.columns) - 1) for c in table.columns],
                  rotation=40, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(table.columns)):
            dark = not np.isnan(values[i, j]) and abs(values[i, j]) > span / 2
            label = "n/a" if np.isnan(values[i, j]) else f"{round(values[i, j], 1) + 0.0:+.1f}"
            ax.text(j, i, label, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_title(f"{table.name}: change against the baseline ({table.split} sets, mean over seeds)")
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
    base = next((d["base_parameters"] for d in training), None) or base_parameters(recipe["model"])
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


def write_report(out: str | Path, output: str | Path | None = None) -> dict:
    """Write table.md (with the cost), table.csv and deltas.png to ``output`` (default RUN_DIR/report)."""
    out = Path(out)
    output = Path(output) if output else out / "report"
    recipe, cells, table = collect(out)
    text, notes = markdown(table)
    c = cost(recipe, cells, out)
    png = output / "deltas.png"
    has_png = heatmap(table, png)
    seeds = ", ".join(map(str, table.seeds))
    langs = recipe["evaluate"]["languages"]
    fewer = "" if langs == "all" else " Fewer languages than XTREME's, so not comparable to its averages: " + \
        ", ".join(f"{t} {len(v)} of {len(get_task(t).languages)}" for t, v in langs.items()) + "."
    md = [f"# {table.name}: zero-shot cross-lingual transfer after English intermediate-task training", "",
          f"{recipe['module'].get('method', 'seq_bn')} modules on a frozen "
          f"{'tiny demo model' if recipe['model'] == 'demo' else recipe['model']}. Scores (%) on the "
          f"{table.split} set of each language (tasks without one: their test set), averaged over languages as "
          f"XTREME does (QA: the mean of F1 and EM); mean ± std over seeds {seeds}; in brackets the change "
          f"against the baseline.{fewer}", "", text, ""]
    if notes:
        md += [f"Missing or partial ({len(notes)}); rerun `adapterxfer grid {recipe['path']} --out {out}`:", "",
               *(f"- {n}" for n in notes), ""]
    md += ["## Cost", "", f"{c['cells_done']} of {c['cells']} cells finished.", "", cost_markdown(c), ""]
    if has_png:
        md += [f"![deltas]({png.name})", ""]
    write_text(output / "table.md", "\n".join(md))
    write_text(output / "table.csv", csv_text(table))
    return {"markdown": "\n".join(md), "table": table, "cost": c, "notes": notes, "files":
            [output / "table.md", output / "table.csv"] + ([png] if has_png else [])}


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--output", "-o", type=click.Path(file_okay=False), help="Where to write the report [RUN_DIR/report].")
@friendly
def report_cmd(run_dir, output):
    """Summarise a grid run: the paper's table (markdown, CSV), a heatmap of the deltas, and the cost.

    Every entry is the mean ± std over seeds of the cells' results.json scores and its change against
    the baseline; an entry with a seed not finished says "missing" and is listed, never averaged over
    fewer seeds.

    \b
    Examples:
      adapterxfer report runs/xstilts
      adapterxfer report runs/xstilts --output paper/tables
    """
    if not Path(run_dir).is_dir():
        raise UserError(f"run folder {run_dir} does not exist")
    result = write_report(run_dir, output)
    click.echo(result["markdown"])
    click.echo("wrote " + ", ".join(str(f) for f in result["files"]), err=True)
