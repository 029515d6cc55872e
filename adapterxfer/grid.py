"""The grid runner: a recipe as cells (units of work) with dependencies and content hashes.

Three kinds of cell: train an intermediate module; train a target module stacked on one (or on the
bare base, the baseline row); evaluate a target module, or for BUCC/Tatoeba an intermediate module or
the bare model, on every language. Intermediate modules are trained once (per seed) and reused by
every target cell of their row.

A cell's id ends in a hash of everything that determines its result: its settings, the content of
its data and base model, library versions, and the hashes of the cells it builds on. So a rerun skips
finished cells, and a changed value gives new ids, and reruns, only for the cells that depend on it.
``--out`` holds::

    plan.json               the last plan: the recipe and every cell in order
    cells/<id>/cell.json    what the cell is and how to run it (``adapterxfer grid run-cell`` reads it)
    cells/<id>/module/      a training cell's finished module (``module.partial/`` while it trains)
    cells/<id>/eval/        an evaluation cell's predictions/, labels/ and results.json
    cells/<id>/log.txt      what every attempt logged
    cells/<id>/done.json    written last and atomically: only then is the cell finished
    cells/<id>/failed.json  the last attempt's error; the next run tries the cell again

A cell killed at any moment (``kill -9`` too) leaves no ``done.json``; the next run resumes a training
cell from its newest checkpoint and redoes an evaluation. A lock per cell keeps two runners (a second
``grid`` call, Slurm tasks) from working on the same cell.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

from . import __version__, distributed
from .errors import UserError, friendly
from .fileio import sha256_file, sha256_json, write_json, write_text
from .recipes import DEMO, NOT_IDENTITY, Recipe, load_recipe
from .sampling import sample_size
from .tasks import get_task, use_task_files
from .training import checkpoints, partial_dir

KINDS = {"intermediate": "inter", "target": "target", "evaluate": "eval"}
BUSY = 75  # run-cell's exit status when another process holds the cell
VERSIONED = ("torch", "transformers", "adapters", "peft", "accelerate", "datasets", "tokenizers")


@dataclass
class Cell:
    """One unit of work. ``row`` is the report's row (``baseline`` or an intermediate task), ``task`` the
    task trained or evaluated; ``run`` holds what the runner needs (settings, absolute paths)."""

    id: str
    kind: str
    row: str
    task: str
    seed: int | None
    deps: list[str]
    identity: dict
    run: dict
    stage: int = 0
    model: str | None = None  # the recipe's name of the cell's base model (a sweep has several)

    def folder(self, out: str | Path) -> Path:
        return Path(out) / "cells" / self.id


def is_done(out: str | Path, cell_id: str) -> bool:
    return (Path(out) / "cells" / cell_id / "done.json").is_file()


# ---------------------------------------------------------------- fingerprints

class Fingerprints:
    """Content hashes of files and folders; a file's sha256 is cached by (path, size, mtime) under
    ``~/.cache/adapterxfer/fingerprints.json`` so that a rerun does not read big data again."""

    def __init__(self, strict: bool = True):
        self.strict = strict  # False (dry runs): a missing local path is noted, not refused
        cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "adapterxfer"
        self.file = cache_root / "fingerprints.json"
        try:
            self.cache = json.loads(self.file.read_text())
        except (OSError, ValueError):
            self.cache = {}
        self.changed = False

    def sha(self, path: Path) -> str:
        st = path.stat()
        key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if key not in self.cache:
            self.cache[key], self.changed = sha256_file(path), True
        return self.cache[key]

    def files(self, root: Path, patterns: list[str], what: str) -> str:
        """One hash of the files under ``root`` matching glob ``patterns`` (``**`` for a whole folder)."""
        found = sorted({p for pat in patterns for p in root.glob(pat) if p.is_file()})
        if not found:
            if self.strict:
                raise UserError(f"{what}: no files under {root} ({', '.join(patterns)})")
            return f"missing:{root}"
        return sha256_json([(str(p.relative_to(root)), self.sha(p)) for p in found])

    def save(self) -> None:
        """Write the cache back, without the entries of files that no longer exist."""
        if self.changed:
            keep = {k: v for k, v in self.cache.items() if not k.startswith("/") or Path(k.rsplit(":", 2)[0]).exists()}
            with contextlib.suppress(OSError):
                write_json(self.file, keep)


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"adapterxfer": __version__}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _row_folder(root: Path, row: str, task: str, settings: dict) -> str:
    """An intermediate row's data under the recipe's ``data_dir``: ``root/<row>``; a renamed row of English data
    (``mnli_10k: {task: mnli, train_size: 10000}``) without such a folder reads ``root/<task>``, a row of
    another language (``train_language``) never does."""
    if row != task and not (root / row).exists() and settings.get("train_language", "en") == "en":
        return str(root / task)
    return str(root / row)


def _split_files(spec, split: str, lang: str | None) -> list[str]:
    """Glob patterns of a target task's local files for ``split``: one language, or every one (None)."""
    patterns = []
    for source in spec.sources:
        if split in source.files:
            pattern = source.files[split]
            if lang is not None:
                pattern = pattern.replace("{lang}", lang)
            patterns.append(re.sub(r"\{[a-z]+\}", "*", pattern))
    return patterns


# ---------------------------------------------------------------- planning

@dataclass
class Paths:
    model: str
    intermediate: str | None
    target: str | None
    labels: str | None


def resolve_paths(recipe: Recipe, model: str | None = None) -> Paths:
    """Absolute paths of ``model`` (default: the recipe's first) and the data; ``demo`` builds the tiny
    model and synthetic data."""
    def local(value: str | None) -> str | None:
        return None if value is None else str(Path(value).expanduser().resolve())

    name = recipe.models[0] if model is None else model
    values = (name, recipe.intermediate_data, recipe.target_data, recipe.evaluate.labels_dir)
    if DEMO not in values:
        model = local(name) if Path(name).expanduser().is_dir() else name
        return Paths(model, local(recipe.intermediate_data), local(recipe.target_data),
                     local(recipe.evaluate.labels_dir))
    from . import synthetic

    model_dir, data_root = synthetic.demo_assets()
    xtreme, labels = data_root / "xtreme", data_root.parent / "xtreme-labels"
    if recipe.target_data == DEMO and not xtreme.is_dir():
        synthetic.write_xtreme(xtreme)
    if recipe.evaluate.labels_dir == DEMO and not labels.is_dir():
        tmp = labels.with_name(f".{labels.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        synthetic.write_tatoeba_labels(xtreme, tmp)
        os.replace(tmp, labels)
    pick = lambda value, demo: str(demo) if value == DEMO else local(value)  # noqa: E731
    model = str(model_dir) if name == DEMO else (local(name) if Path(name).expanduser().is_dir() else name)
    return Paths(model, pick(recipe.intermediate_data, data_root), pick(recipe.target_data, xtreme),
                 pick(recipe.evaluate.labels_dir, labels))


def _slug(text: str) -> str:
    """A cell-name-safe form of a model name: its last path part (``facebook/xlm-roberta-xl``: xlm-roberta-xl)."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", Path(text).name or text).strip("-") or "model"


def ladder_step(step: list[str]) -> tuple[list[str], str]:
    """A ladder step's operations in canonical ``NAME:RATE`` form, and its part of a cell name."""
    from .perturb import parse

    ops = parse(step)
    return [str(op) for op in ops], "+".join(f"{op.name}{op.rate:g}" for op in ops)


def plan(recipe: Recipe, out: str | Path, strict: bool = True) -> list[Cell]:
    """Every cell of the recipe in a runnable order: per model, seed and row, the intermediate module,
    then per target its training and evaluation, clean and at each step of the perturbation ladder; the
    bare model's retrieval cells come first. A sweep's cell names carry the model; a ladder step's
    cells reuse the clean cell's module (new evaluations only)."""
    from .training import TrainConfig

    out = Path(out).resolve()
    fp = Fingerprints(strict)
    versions = library_versions()
    ladder = [ladder_step(step) for step in recipe.ladder]
    sweep = len(recipe.models) > 1
    cells: list[Cell] = []

    def add(kind, row, task, seed, deps, identity, run, step: str = "") -> Cell:
        if get_task(task).origin:  # a task file's task: as the file says now
            identity = {**identity, "task_file": get_task(task).origin[1]}
        h = sha256_json({**identity, "versions": versions})[:12]
        name = f"inter-{row}" if kind == "intermediate" else f"{KINDS[kind]}-{row}-{task}"
        name += f"-{_slug(model)}" if sweep else ""
        name += f"-{step}" if step else ""
        name += f"-s{seed}" if seed is not None else ""
        cell = Cell(f"{name}-{h}", kind, row, task, seed, [d.id for d in deps], {**identity, "hash": h}, run,
                    stage=1 + max((d.stage for d in deps), default=-1), model=model)
        cells.append(cell)
        return cell

    def train_cell(kind, row, task, seed, on: Cell | None) -> Cell:
        spec = get_task(task)
        settings = recipe.settings(row if kind == "intermediate" else task)
        data_dir = settings.pop("data_dir", None)
        root = paths.intermediate if kind == "intermediate" else paths.target
        if data_dir is None and root is not None:
            data_dir = root if kind == "target" or spec.members else _row_folder(Path(root), row, task, settings)
        data_dir = data_dir and str(Path(data_dir).expanduser().resolve())
        cfg = TrainConfig(**settings, task=task, model=paths.model, data_dir=data_dir, seed=seed, output="-")
        if data_dir is None:
            data = [[s.hf_path, s.hf_config] for m in ([spec] if not spec.members else
                                                        [get_task(n) for n in spec.members]) for s in m.sources]
        elif kind == "target":
            data = fp.files(Path(data_dir), [p for split in ("train", "dev") for p in _split_files(spec, split, "en")],
                            f"{task} training data")
        else:
            data = fp.files(Path(data_dir), [f"{m}/**/*" for m in spec.members] or ["**/*"], f"{task} data")
        values = {k: v for k, v in asdict(cfg).items()
                  if k not in NOT_IDENTITY + ("task", "model", "data_dir", "seed", "stack", "fuse")
                  and not (k == "epochs" and cfg.max_steps)}  # max_steps overrides epochs
        identity = {"kind": kind, "task": task, "seed": seed, "settings": values, "model": model_fp, "data": data,
                    "on": on.identity["hash"] if on else None}
        if recipe.gpus_per_cell > 1:  # W processes take W x the examples per step: another module
            identity["processes"] = recipe.gpus_per_cell
        cell = add(kind, row, task, seed, [on] if on else [], identity, {})
        cfg.output = str(cell.folder(out) / "module")
        cfg.stack = str(on.folder(out) / "module") if on else None
        cell.run = {"config": asdict(cfg), "processes": recipe.gpus_per_cell, "task_files": recipe.task_files}
        return cell

    def eval_cell(row, task, seed, of: Cell | None, step: tuple | None = None, clean: Cell | None = None) -> Cell:
        """The evaluation of ``of`` (None: the bare model); ``step``: a ladder step, whose clean scores are
        those of the ``clean`` cell."""
        from .zeroshot import _split_for, languages_list

        spec = get_task(task)
        split = _split_for(spec, recipe.evaluate.split, lambda *_: None)
        langs = recipe.evaluate.languages
        langs = languages_list(spec, langs.get(task, "all") if isinstance(langs, dict) else langs, recipe.benchmark)
        labels = paths.labels if paths.labels and (Path(paths.labels) / task).is_dir() else None
        data_dir = recipe.targets[task].get("data_dir") or paths.target
        data_dir = data_dir and str(Path(data_dir).expanduser().resolve())
        data = fp.files(Path(data_dir), _split_files(spec, split, None), f"{task} {split} data") \
            if data_dir else [s.hf_path for s in spec.sources]
        identity = {"kind": "evaluate", "task": task, "split": split, "languages": langs, "data": data,
                    "labels": fp.files(Path(labels), [f"{task}/*"], f"{task} labels") if labels else None,
                    "batch_size": recipe.evaluate.batch_size,
                    "layer": recipe.evaluate.layer if spec.format == "retrieval" else None,
                    "of": of.identity["hash"] if of else None, "model": None if of else model_fp}
        if step:  # a clean cell's identity stays as it was before ladders existed
            identity.update(perturb=step[0], perturb_seed=recipe.evaluate.perturb_seed)
        deps = ([of] if of else []) + ([clean] if step else [])
        cell = add("evaluate", row, task, seed, deps, identity, {}, step[1] if step else "")
        cell.run = {"module": str(of.folder(out) / "module") if of else None, "task": task, "split": split,
                    "languages": langs, "data_dir": data_dir, "labels_dir": labels, "model": paths.model,
                    "batch_size": recipe.evaluate.batch_size, "layer": recipe.evaluate.layer,
                    "benchmark": recipe.benchmark, "task_files": recipe.task_files,
                    "cache_dir": recipe.train.get("cache_dir"), "output": str(cell.folder(out) / "eval")}
        if step:
            cell.run.update(perturbations=step[0], seed=recipe.evaluate.perturb_seed,
                            clean_results=str(clean.folder(out) / "eval" / "results.json"))
        return cell

    def evaluations(row, task, seed, of: Cell | None) -> None:
        clean = eval_cell(row, task, seed, of)
        for step in ladder:
            eval_cell(row, task, seed, of, step, clean)

    retrieval = [t for t in recipe.targets if get_task(t).format == "retrieval"]
    for model in recipe.models:  # the closures above read model, paths and model_fp
        paths = resolve_paths(recipe, model)
        model_fp = fp.files(Path(paths.model), ["**/*"], "model") if Path(paths.model).is_dir() else paths.model
        if recipe.baseline:
            for task in retrieval:  # the bare model: deterministic, one cell whatever the seeds
                evaluations("baseline", task, None, None)
        for seed in recipe.seeds:
            for row in (["baseline"] if recipe.baseline else []) + list(recipe.intermediates):
                inter = train_cell("intermediate", row, recipe.task_of(row), seed, None) if row != "baseline" else None
                for task in recipe.targets:
                    if task in retrieval:
                        if inter is not None:
                            evaluations(row, task, seed, inter)
                    else:
                        evaluations(row, task, seed, train_cell("target", row, task, seed, inter))
    fp.save()
    return cells


def write_plan(recipe: Recipe, out: str | Path, cells: list[Cell]) -> None:
    """``plan.json`` and each cell's ``cell.json`` (unchanged ones are left alone)."""
    out = Path(out)
    for cell in cells:
        path = cell.folder(out) / "cell.json"
        text = json.dumps(asdict(cell), indent=2, sort_keys=True) + "\n"
        if not path.is_file() or path.read_text() != text:
            write_text(path, text)
    write_json(out / "plan.json", {"recipe": recipe.to_dict(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                                   "cells": [asdict(c) for c in cells]})


def read_plan(out: str | Path) -> tuple[dict, list[Cell]]:
    path = Path(out) / "plan.json"
    if not path.is_file():
        raise UserError(f"{out} holds no grid run (no plan.json): run adapterxfer grid RECIPE --out {out} first")
    plan_ = json.loads(path.read_text())
    return plan_["recipe"], [Cell(**c) for c in plan_["cells"]]


# ---------------------------------------------------------------- running one cell

@contextlib.contextmanager
def _lock(folder: Path):
    """An exclusive lock on the cell (released by the OS when its holder dies); yields False if held."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def execute(cell: Cell, out: str | Path, echo=None) -> str:
    """Run one cell here, in this process: ``done``, ``failed`` (recorded in failed.json) or ``busy``
    (another process holds it). ``echo`` also receives the cell's log lines.

    Under ``accelerate launch`` (a training cell on several GPUs) the main process does all of this and
    tells the others whether to train; they only train alongside it."""
    out = Path(out)
    folder = cell.folder(out)
    if not distributed.is_main():
        return _follow(cell)
    tell = _Once(distributed.broadcast if distributed.world_size() > 1 else lambda _: None)
    try:
        return _execute(cell, out, folder, echo, tell)
    finally:
        tell(None)  # not training after all (held elsewhere, done, failed before training)


def _execute(cell: Cell, out: Path, folder: Path, echo, tell) -> str:
    with _lock(folder) as mine:
        if not mine:
            return "busy"
        if is_done(out, cell.id):
            return "done"
        (folder / "failed.json").unlink(missing_ok=True)
        start = time.perf_counter()
        with open(folder / "log.txt", "a", encoding="utf-8") as log_file:
            def log(*parts):
                line = " ".join(str(p) for p in parts)
                log_file.write(line + "\n")
                log_file.flush()
                if echo:
                    echo(line)

            log(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {cell.id} on {_device()}")
            try:
                missing = [d for d in cell.deps if not is_done(out, d)]
                if missing:
                    raise UserError(f"needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                                    f"not done")
                with contextlib.redirect_stdout(log_file):  # what the libraries print goes to the log too
                    record = _run_eval(cell, log) if cell.kind == "evaluate" else _run_training(cell, log, tell)
            except Exception as e:  # noqa: BLE001 - one cell's failure is recorded; the grid goes on
                message = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
                log(traceback.format_exc() if not isinstance(e, UserError) else f"error: {message}")
                write_json(folder / "failed.json", {"id": cell.id, "error": message, "time": time.time(),
                                                    "seconds": time.perf_counter() - start})
                return "failed"
            finally:
                _free_memory()
        record.update(id=cell.id, kind=cell.kind, row=cell.row, task=cell.task, seed=cell.seed,
                      hash=cell.identity["hash"], device=_device(),
                      seconds=round(time.perf_counter() - start, 3), finished=time.strftime("%Y-%m-%d %H:%M:%S"))
        write_json(folder / "done.json", record)
        return "done"


class _Once:
    """Calls ``fn`` the first time only."""

    def __init__(self, fn):
        self.fn, self.done = fn, False

    def __call__(self, value):
        if not self.done:
            self.done = True
            self.fn(value)


def _writes_to(file: Path) -> bool:
    """Whether this process's standard output is ``file``."""
    try:
        return file.exists() and os.path.samestat(os.fstat(sys.stdout.fileno()), file.stat())
    except (OSError, ValueError, AttributeError):  # no file behind stdout (a test's runner, a closed stream)
        return False


def _follow(cell: Cell) -> str:
    """A non-main process of a launched training cell: train alongside the main process if it says so."""
    from .training import TrainConfig, train

    order = distributed.broadcast()
    if order is not None:
        train(TrainConfig(**cell.run["config"]), resume=order["resume"], overwrite=not order["resume"],
              progress=False, log=lambda *_: None)
    return "done"


def _run_training(cell: Cell, log, tell=lambda _: None) -> dict:
    """``tell``: passes the decision to train (and how) to the other processes of a launch."""
    from .training import CARD, TrainConfig, train

    cfg = TrainConfig(**cell.run["config"])
    cfg.validate()
    module = Path(cfg.output)
    partial = partial_dir(module)
    resumed_from = _checkpoint_step(partial)
    start = time.perf_counter()
    trained = not (module / CARD).is_file()  # else: finished just before an interruption
    if trained:
        resume = partial.exists()
        tell({"resume": resume})
        train(cfg, resume=resume, overwrite=not resume, progress=False, log=log)
    seconds = time.perf_counter() - start
    card = json.loads((module / CARD).read_text())
    steps = _last_step(module / "train_log.jsonl")
    spec = get_task(cfg.task)
    max_length = cfg.max_length or max(m.max_length for m in ([spec] if not spec.members else
                                                              [get_task(n) for n in spec.members]))
    world = distributed.world_size()
    tokens = (steps - resumed_from) * cfg.batch_size * cfg.grad_accum * world * max_length
    return {"train": {"steps": steps, "resumed_from": resumed_from, "batch_size": cfg.batch_size,
                      "grad_accum": cfg.grad_accum, "processes": world, "max_length": max_length,
                      "tokens_per_second": round(tokens / seconds / world, 2) if trained and tokens else None},
            "gpus": world,
            "trainable_parameters": card["trainable_parameters"], "base_parameters": card["base_parameters"],
            "method": card["method"]["method"], "disk_bytes": _du(module)}


def _run_eval(cell: Cell, log) -> dict:
    from .zeroshot import evaluate_run

    from .training import DEFAULT_CACHE

    run = dict(cell.run)
    output = run.pop("output")
    run.pop("task_files", None)  # registered by run-cell
    run["cache_dir"] = run["cache_dir"] or str(DEFAULT_CACHE)
    shutil.rmtree(output, ignore_errors=True)  # an interrupted evaluation starts again
    results = evaluate_run(run.pop("module"), output, **run, log=log)
    return {"scored": bool(results["scores"]), "avg_metric": results["scores"].get("avg_metric"),
            "languages": len(results["languages"]), "missing_languages": results["missing_languages"],
            "disk_bytes": _du(Path(output))}


def _checkpoint_step(partial: Path) -> int:
    found = checkpoints(partial)
    return int(found[-1].name.split("-")[1]) if found else 0


def _last_step(log_file: Path) -> int:
    steps = [json.loads(line).get("step", 0) for line in log_file.read_text().splitlines() if line.strip()]
    return max(steps, default=0)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


@functools.cache
def _device() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- running the grid

@dataclass
class Outcome:
    state: dict = field(default_factory=dict)  # cell id -> done | failed | blocked | busy
    ran: list = field(default_factory=list)  # ids finished by this run
    errors: dict = field(default_factory=dict)  # cell id -> message


def _blocked_by(cell: Cell, state: dict) -> str | None:
    return next((d for d in cell.deps if state.get(d) in ("failed", "blocked", "busy")), None)


def run_here(cells: list[Cell], out: Path, echo, verbose: bool = False) -> Outcome:
    """Run the cells one after another in this process."""
    result = Outcome({c.id: "done" for c in cells if is_done(out, c.id)})
    todo = [c for c in cells if c.id not in result.state]
    for n, cell in enumerate(todo, 1):
        blocker = _blocked_by(cell, result.state)
        if blocker:
            result.state[cell.id] = "blocked"
            echo(f"[{n}/{len(todo)}] {cell.id}: blocked ({blocker} did not finish)")
            continue
        echo(f"[{n}/{len(todo)}] {cell.id} ...")
        start = time.perf_counter()
        if gpus(cell) == 1:
            state = execute(cell, out, echo if verbose else None)
        else:  # accelerate launch on the visible GPUs
            with open(cell.folder(out) / "log.txt", "a", encoding="utf-8") as log:
                proc = subprocess.Popen(cell_command(cell, out), stdout=log, stderr=subprocess.STDOUT)
                state = _exit_state(cell, out, proc.wait())
        _settle(cell, state, out, result, echo, f"{time.perf_counter() - start:.1f} s")
    return result


def gpus(cell: Cell) -> int:
    """GPUs (processes) the cell runs on: the recipe's ``gpus_per_cell`` for training, 1 for evaluation."""
    return cell.run.get("processes", 1)


def cell_command(cell: Cell, out: Path) -> list[str]:
    """``adapterxfer grid run-cell``, under ``accelerate launch`` for a cell on several GPUs."""
    prefix = distributed.launch_command(gpus(cell)) if gpus(cell) > 1 else [sys.executable]
    return prefix + ["-m", "adapterxfer.cli", "grid", "run-cell", "--out", str(out), cell.id]


def _exit_state(cell: Cell, out: Path, returncode: int) -> str:
    """A cell process's outcome; a process that died before recording its failure gets one."""
    state = "done" if is_done(out, cell.id) else "busy" if returncode == BUSY else "failed"
    if state == "failed" and not (cell.folder(out) / "failed.json").is_file():
        write_json(cell.folder(out) / "failed.json",
                   {"id": cell.id, "error": f"the cell's process exited with status {returncode} (see its log.txt)",
                    "time": time.time()})
    return state


def device_ids(devices: str) -> list[str]:
    """``--devices`` as a list: indices among the GPUs this process sees (as ``CUDA_VISIBLE_DEVICES``
    takes them, or GPU-/MIG- UUIDs), a GPU named k times holding k cells."""
    import torch

    ids = [d.strip() for d in devices.split(",")]
    seen = torch.cuda.device_count()
    for d in ids:
        if not (d.isdigit() and (not seen or int(d) < seen) or d.startswith(("GPU-", "MIG-"))):
            raise UserError(f"--devices {devices}: {d!r} is not a GPU here (" +
                            (f"indices 0 to {seen - 1}" if seen else "no CUDA GPU is visible") + ")")
    if not seen:
        click.echo(f"warning: --devices {devices}: no CUDA GPU is visible here; the cells run on the CPU", err=True)
    return ids


def run_devices(cells: list[Cell], out: Path, devices: list[str], echo, command=cell_command) -> Outcome:
    """Run independent cells in parallel, each on its own free devices (one, or the recipe's
    ``gpus_per_cell`` for training: ``CUDA_VISIBLE_DEVICES`` set to them) as ``command(cell, out)``;
    a cell starts once the cells it needs are done. A device named k times holds up to k cells at once
    (a multi-GPU cell's devices are distinct)."""
    result = Outcome({c.id: "done" for c in cells if is_done(out, c.id)})
    pending = [c for c in cells if c.id not in result.state]
    wanted = max((gpus(c) for c in pending), default=1)
    if wanted > len(set(devices)):
        raise UserError(f"a training cell runs on {wanted} GPUs (gpus_per_cell) but --devices gives "
                        f"{len(set(devices))}: {','.join(dict.fromkeys(devices))}")
    free = list(range(len(devices)))  # slots: a device's id once per cell it may hold

    def take(n: int) -> list[int] | None:
        """``n`` free slots on distinct devices, the least busy devices first, or None."""
        busy = collections.Counter(devices[s] for s in range(len(devices)) if s not in free)
        group = []
        for slot in sorted(free, key=lambda s: (busy[devices[s]], s)):
            if devices[slot] not in {devices[g] for g in group}:
                group.append(slot)
        return group[:n] if len(group) >= n else None

    running: list[tuple] = []
    stop = signal.signal(signal.SIGTERM, _terminated)  # kill PID, Slurm's preemption: stop the cells too
    try:
        while pending or running:
            for cell in list(pending):
                blocker = _blocked_by(cell, result.state)
                if blocker:
                    pending.remove(cell)
                    result.state[cell.id] = "blocked"
                    echo(f"{cell.id}: blocked ({blocker} did not finish)")
            for cell in [c for c in pending if all(result.state.get(d) == "done" for d in c.deps)]:
                slots = take(gpus(cell))
                if slots is None:
                    continue  # a smaller cell may fit meanwhile
                free = [f for f in free if f not in slots]
                group = [devices[g] for g in slots]
                pending.remove(cell)
                log = open(cell.folder(out) / "log.txt", "a", encoding="utf-8")
                proc = subprocess.Popen(command(cell, out), stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(group)})
                running.append((proc, cell, log, time.perf_counter(), slots))
                echo(f"{cell.id} ... (device{'s' * (len(group) > 1)} {','.join(group)})")
            if not running and pending:  # what is left waits on cells that another process holds
                for cell in pending:
                    result.state[cell.id] = "blocked"
                break
            time.sleep(0.2)
            for entry in list(running):
                proc, cell, log, start, slots = entry
                if proc.poll() is None:
                    continue
                log.close()
                running.remove(entry)
                free = sorted(free + slots)
                _settle(cell, _exit_state(cell, out, proc.returncode), out, result, echo,
                        f"{time.perf_counter() - start:.1f} s, device{'s' * (len(slots) > 1)} "
                        f"{','.join(devices[g] for g in slots)}")
    finally:
        signal.signal(signal.SIGTERM, stop)
        for proc, *_ in running:
            proc.terminate()
        for proc, *_ in running:
            proc.wait()
    return result


def _terminated(signum, _frame):
    raise SystemExit(128 + signum)


def _settle(cell: Cell, state: str, out: Path, result: Outcome, echo, how: str) -> None:
    result.state[cell.id] = state
    if state == "done":
        result.ran.append(cell.id)
        echo(f"  done: {cell.id} ({how})")
    elif state == "busy":
        echo(f"  skipped: {cell.id} is being run by another process")
    else:
        error = json.loads((cell.folder(out) / "failed.json").read_text())["error"]
        result.errors[cell.id] = error
        echo(f"  FAILED: {cell.id}: {error} (log: {cell.folder(out) / 'log.txt'})")


# ---------------------------------------------------------------- cost model

#: Training examples of each task as published (used when the data is read from the Hugging Face hub):
#: ANLI+ = ANLI r1-r3 (162,865) + MNLI (392,702) + labelled SNLI (549,367); CCG: CCGbank sections 02-21.
PUBLISHED_TRAIN = {"anli_plus": 1104934, "mnli": 392702, "qqp": 363846, "squad_v1": 87599, "squad_v2": 130319,
                   "hellaswag": 39905, "commonsenseqa": 9741, "cosmosqa": 25262, "socialiqa": 33410,
                   "ccg": 39604, "xnli": 392702, "pawsx": 49401, "udpos": 21253, "panx": 20000,
                   "xquad": 87599, "mlqa": 87599, "tydiqa": 3696, "copa": 400, "arc_easy": 2251,
                   "arc_challenge": 1119, "xcopa": 400}
#: (hidden size, layers, vocabulary) of hub models whose config may not be at hand offline, from their
#: config.json files (XL: transformers' XLMRobertaXLConfig defaults, written for facebook/xlm-roberta-xl).
KNOWN_SHAPES = {"xlm-roberta-large": (1024, 24, 250002), "xlm-roberta-base": (768, 12, 250002),
                "facebook/xlm-roberta-large": (1024, 24, 250002), "FacebookAI/xlm-roberta-large": (1024, 24, 250002),
                "FacebookAI/xlm-roberta-base": (768, 12, 250002),
                "facebook/xlm-roberta-xl": (2560, 36, 250880), "facebook/xlm-roberta-xxl": (4096, 48, 250880),
                "bert-base-multilingual-cased": (768, 12, 119547),
                "google-bert/bert-base-multilingual-cased": (768, 12, 119547)}
#: Full fine-tuning does a training step's work plus the weight gradients of the whole base (about a
#: third of a step: forward 1, backward 2 of which weight gradients 1); a frozen base skips them.
FULL_FT_TIME = 1.5


@dataclass
class Estimate:
    seconds: float
    disk: int  # bytes the finished cell keeps


def model_shape(model: str) -> tuple[int, int, int]:
    """(hidden, layers, vocabulary) of the base model; XLM-R Large's where it cannot be read."""
    config = Path(model) / "config.json"
    if config.is_file():
        c = json.loads(config.read_text())
        return c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    return KNOWN_SHAPES.get(model, KNOWN_SHAPES["xlm-roberta-large"])


def layer_work(model: str) -> int:
    """Per-token compute of the encoder's layers, ``layers x 12 h^2`` (what training speed scales with)."""
    h, layers, _ = model_shape(model)
    return layers * 12 * h * h


def base_parameters(model: str) -> int:
    """Embeddings plus 12 h^2 per layer (attention 4 h^2, feed-forward 8 h^2): XLM-R Large 558M of 560M."""
    h, layers, vocab = model_shape(model)
    return vocab * h + layers * 12 * h * h


def module_parameters(cfg: dict, model: str, heads: int = 1) -> int:
    """Trainable parameters of a module on ``model``: adapters 2 h (h/rf) per adapter and layer, LoRA
    r (in + out) per adapted matrix and layer, plus about h^2 per head."""
    h, layers, _ = model_shape(model)
    method = cfg["method"]
    if method == "full":
        return base_parameters(model) + heads * h * h
    if method == "lora":
        dims = {"query": 2 * h, "key": 2 * h, "value": 2 * h, "intermediate": 5 * h, "output": 7 * h}
        targets = cfg["lora_targets"].split(",") if isinstance(cfg["lora_targets"], str) else cfg["lora_targets"]
        per_layer = sum(cfg["lora_r"] * dims[t.strip()] for t in targets)
    else:
        b = h // cfg["reduction_factor"]
        per_layer = (2 * h * b + b + h) * (2 if method == "double_seq_bn" else 1)
    return layers * per_layer + heads * h * h


class CostModel:
    """GPU-seconds and disk of each cell, from measurements of this run where it has them.

    Training: steps (``max_steps``, else ``epochs`` x batches of the training set, counted from local
    files or the published sizes) x batch size x grad accumulation x GPUs x max length = padded tokens,
    over the run's median measured tokens/s per GPU (or ``cost.tokens_per_second``). Evaluation: the median time of
    the run's finished evaluations of the same task (or ``cost.eval_minutes``). Disk: a finished module
    of the same task and method, else 4 bytes per trainable parameter. ``tokens_per_second`` and
    ``full_tokens_per_second`` (measured elsewhere, e.g. by benchmarks/grid_cost.py) replace the recipe's
    and the run's own speeds; both are the first model's.
    """

    def __init__(self, recipe: Recipe, out: Path, model: str, tokens_per_second: float | None = None,
                 full_tokens_per_second: float | None = None):
        self.recipe, self.model = recipe, model  # model: the shape the speeds were measured on
        self.first = resolve_paths(recipe).model  # the shape cost.eval_minutes is for: the recipe's first model
        self.done, self.group = {}, {}
        for path in (out / "cells").glob("*/done.json"):
            with contextlib.suppress(ValueError, OSError, TypeError, KeyError):
                record, cell = json.loads(path.read_text()), Cell(**json.loads((path.parent / "cell.json").read_text()))
                self.done[path.parent.name], self.group[path.parent.name] = record, _group(cell)
        speeds = [d["train"]["tokens_per_second"] for d in self.done.values()
                  if d.get("train", {}).get("tokens_per_second")]
        self.override = tokens_per_second
        self.tokens_per_second = tokens_per_second or (statistics.median(speeds) if speeds
                                                       else recipe.cost.tokens_per_second)
        self.full_tokens_per_second = full_tokens_per_second  # None: FULL_FT_TIME x the module's time
        self.measured = bool(speeds)
        self.measured_on = sorted({d["device"] for d in self.done.values() if d.get("train")})
        self.sizes = Fingerprints(strict=False)

    def _like(self, cell: Cell, key: str) -> list:
        """``key`` of the finished cells of the same kind, task and base model (evaluations: with or
        without perturbed inputs)."""
        return [d[key] for i, d in self.done.items() if d.get(key) is not None and self.group.get(i) == _group(cell)]

    def speed(self, model: str) -> float:
        """Padded training tokens/s on ``model``: measured on it, else a measured (or the assumed) speed of
        another model scaled by their per-token compute; ``cost.tokens_per_second`` is the first model's."""
        measured = {}
        for i, d in self.done.items():
            if d.get("train", {}).get("tokens_per_second"):
                measured.setdefault(self.group[i][2], []).append(d["train"]["tokens_per_second"])
        if model in measured and not self.override:
            return statistics.median(measured[model])
        ref, tps = next(((m, statistics.median(v)) for m, v in measured.items()), (self.model, self.tokens_per_second)) \
            if not self.override else (self.model, self.override)
        return tps * layer_work(ref) / layer_work(model)

    def train_examples(self, task: str, data_dir: str | None, data_hash, size: int | None = None,
                       fraction: float | None = None) -> int:
        """The examples a training cell trains on: each member task's, subsampled as ``--train-size`` /
        ``--train-fraction`` subsample it."""
        spec = get_task(task)
        parts = [get_task(m) for m in spec.members] if spec.members else [spec]
        published = [PUBLISHED_TRAIN.get(m.name, 0) for m in parts]
        key = f"examples-per-task:{task}:{data_hash}"
        if data_dir is not None and key not in self.sizes.cache:
            from .data import load_examples

            try:
                self.sizes.cache[key] = [len(load_examples(m, "train", str(Path(data_dir) / m.name)
                                                           if spec.members else data_dir)) for m in parts]
                self.sizes.changed = True
            except UserError:
                pass
        counts = self.sizes.cache.get(key, published) if data_dir is not None else published
        return sum(sample_size(n, size, fraction) for n in counts)

    def estimate(self, cell: Cell) -> Estimate:
        done = self.done.get(cell.id)
        if cell.kind == "evaluate":
            if done:
                return Estimate(done["seconds"], done.get("disk_bytes", 0))
            like = self._like(cell, "seconds")
            clean = 60 * self.recipe.cost.eval_minutes * layer_work(cell.run["model"]) / layer_work(self.first)
            return Estimate(statistics.median(like) if like else clean, 0)
        if done:
            return Estimate(done["seconds"] * done.get("gpus", 1), done["disk_bytes"])
        cfg = cell.run["config"]
        spec = get_task(cell.task)
        seconds = self.padded_tokens(cell) / self.speed(cfg["model"])
        disks = self._like(cell, "disk_bytes")
        return Estimate(seconds, statistics.median(disks) if disks else
                        4 * module_parameters(cfg, cfg["model"], len(spec.members) or 1))

    def padded_tokens(self, cell: Cell) -> int:
        """Steps x batch size x grad accumulation x GPUs x max length of a training cell (padded tokens)."""
        cfg = cell.run["config"]
        if cfg["max_steps"]:
            steps = cfg["max_steps"]
        else:
            examples = self.train_examples(cell.task, cfg["data_dir"], cell.identity["data"], cfg["train_size"],
                                           cfg["train_fraction"])
            batches = math.ceil(examples / cfg["batch_size"])
            steps = max(1, math.ceil(math.ceil(batches / (cfg["grad_accum"] * gpus(cell))) * cfg["epochs"]))
        return steps * cfg["batch_size"] * cfg["grad_accum"] * gpus(cell) * \
            (cfg["max_length"] or get_task(cell.task).max_length)

    def full_finetuning(self, cells: list[Cell], estimates: dict) -> dict:
        """The same grid with every training cell fine-tuning the whole base: its padded tokens at the
        measured full fine-tuning speed if given (scaled to each model's compute), else its time x
        FULL_FT_TIME; a full checkpoint (4 bytes per parameter) per training cell."""
        def base(model: str) -> int:
            return next((d["base_parameters"] for i, d in self.done.items()
                         if d.get("base_parameters") and self.group[i][2] == model), None) or base_parameters(model)

        factor = 1 if self.recipe.module.get("method") == "full" else FULL_FT_TIME

        def seconds(c: Cell) -> float:
            if c.kind == "evaluate":
                return estimates[c.id].seconds
            if self.full_tokens_per_second:
                model = c.run["config"]["model"]
                return self.padded_tokens(c) / (self.full_tokens_per_second * layer_work(self.model) / layer_work(model))
            return estimates[c.id].seconds * factor
        return {"seconds": sum(map(seconds, cells)),
                "disk": sum(4 * base(c.run["config"]["model"]) for c in cells if c.kind != "evaluate")}


def _group(cell: Cell) -> tuple:
    """Cells whose cost is alike: kind, task, base model (as run), and for evaluations whether perturbed."""
    model = cell.run["config"]["model"] if "config" in cell.run else cell.run.get("model")
    return cell.kind, cell.task, model, bool(cell.identity.get("perturb"))


@dataclass
class Projection:
    """What a grid costs: each cell, the cells still to run, and full fine-tuning of the same grid."""
    costs: CostModel
    estimates: dict[str, Estimate]
    seconds: float
    seconds_left: float
    disk: int
    full: dict  # seconds, disk


def project(recipe: Recipe, cells: list[Cell], out: Path, model: str | None = None,
            tokens_per_second: float | None = None, full_tokens_per_second: float | None = None) -> Projection:
    """The cost model of ``grid --dry-run`` and ``benchmarks/grid_cost.py``: ``model`` (default: the
    recipe's first) sets the reference shape; the speeds, if given, replace the recipe's and the run's own."""
    costs = CostModel(recipe, out, model or resolve_paths(recipe).model, tokens_per_second, full_tokens_per_second)
    estimates = {c.id: costs.estimate(c) for c in cells}
    costs.sizes.save()
    return Projection(costs, estimates, seconds=sum(e.seconds for e in estimates.values()),
                      seconds_left=sum(estimates[c.id].seconds for c in cells if not is_done(out, c.id)),
                      disk=sum(e.disk for e in estimates.values()), full=costs.full_finetuning(cells, estimates))


# ---------------------------------------------------------------- dry run and Slurm

def status(cell: Cell, out: Path) -> str:
    folder = cell.folder(out)
    if (folder / "done.json").is_file():
        return "done"
    if (folder / "failed.json").is_file():
        return "failed"
    step = _checkpoint_step(partial_dir(folder / "module"))
    return f"partial (step {step})" if step else "pending"


def describe(recipe: Recipe, cells: list[Cell], out: Path, echo) -> None:
    """The plan, its order and state, and what it will cost."""
    projection = project(recipe, cells, out)
    costs, estimates = projection.costs, projection.estimates
    index = {c.id: n for n, c in enumerate(cells, 1)}
    echo(f"plan: {recipe.path} -> {out}: {len(cells)} cells ({recipe.module.get('method', 'seq_bn')} modules on "
         f"{', '.join(recipe.models)}, seeds {', '.join(map(str, recipe.seeds))}"
         + (f", {len(recipe.ladder)} perturbation steps" if recipe.ladder else "") + ")")
    rows = [("#", "cell", "after", "state", "GPU-h", "disk")]
    for c in cells:
        e = estimates[c.id]
        rows.append((str(index[c.id]), c.id, ",".join(str(index[d]) for d in c.deps) or "-", status(c, out),
                     f"{e.seconds / 3600:.3f}", _size(e.disk)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        echo("  ".join(v.rjust(w) if i in (0, 4, 5) else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))))
    todo = [c for c in cells if not is_done(out, c.id)]
    left, total = projection.seconds_left / 3600, projection.seconds / 3600
    speed = (f"measured {costs.tokens_per_second:,.0f} padded tokens/s per GPU on {', '.join(costs.measured_on)}"
             if costs.measured else f"assumed {costs.tokens_per_second:,.0f} padded tokens/s (cost.tokens_per_second;"
                                    f" nothing measured yet)")
    echo(f"\n{len(cells) - len(todo)} of {len(cells)} cells done; {len(todo)} to run: about {left:.2f} GPU-hours "
         f"of {total:.2f} in all ({speed})")
    disk, full = projection.disk, projection.full
    how = ("" if costs.full_tokens_per_second or costs.recipe.module.get("method") == "full" else
           f" (training at {FULL_FT_TIME}x the module's time, for a step the GPU bounds; where the host bounds"
           f" it, as eager at batch 32 on an H200, full fine-tuning is as fast or faster: BENCHMARKS.md)")
    echo(f"disk: about {_size(disk)} for the finished grid; full fine-tuning of the same grid: about "
         f"{full['seconds'] / 3600:.2f} GPU-hours and {_size(full['disk'])} of checkpoints{how}")
    missing = sorted({c.identity["data"][len("missing:"):] for c in cells
                      if isinstance(c.identity["data"], str) and c.identity["data"].startswith("missing:")})
    if missing:
        echo(f"data not found (a run needs it; sizes above assume the published ones): {', '.join(missing)}")
    unlabelled = sorted({c.task for c in cells if c.kind == "evaluate" and c.run["split"] == "test"
                         and c.run["data_dir"] and not c.run["labels_dir"]})
    if unlabelled:  # XTREME's download/ withholds test labels (Tatoeba's English side is even sorted)
        fix = (f"evaluate.labels_dir has no {'/, '.join(unlabelled)}/ folder" if recipe.evaluate.labels_dir else
               "evaluate.labels_dir can name XTREME's labels")
        echo(f"test files of {', '.join(unlabelled)} from a local download/ carry no labels: their cells will write "
             f"predictions but no scores ({fix})")
    absent = [m for m in recipe.models if m.startswith(("/", ".", "~")) and not Path(m).expanduser().exists()]
    if absent:  # a path, not a hub id: a typo would otherwise be costed as XLM-R Large
        echo(f"model not found (a run needs it; costs above assume XLM-R Large's shape): {', '.join(absent)}")
    stale = [p.name for p in (out / "cells").glob("*") if p.is_dir() and p.name not in index]
    if stale:
        echo(f"{len(stale)} cell folder(s) in {out / 'cells'} belong to no cell of this plan (earlier settings)")


def slurm_script(recipe: Recipe, cells: list[Cell], out: Path) -> str:
    """A script that submits one Slurm array job per stage and GPU count (each stage after the one before,
    ``afterany``); each array task runs one unfinished cell with ``adapterxfer grid run-cell``, under
    ``accelerate launch`` for a training cell on several GPUs, with the recipe's CPUs and memory per GPU."""
    todo = sorted((c for c in cells if not is_done(out, c.id)), key=lambda c: (c.stage, -gpus(c)))
    jobs = []  # "stage first-last[%max] gpus cpus mem": one array job each
    for stage, n in dict.fromkeys((c.stage, gpus(c)) for c in todo):
        idx = [i for i, c in enumerate(todo) if (c.stage, gpus(c)) == (stage, n)]
        limit = f"%{recipe.slurm.max_parallel}" if recipe.slurm.max_parallel else ""
        jobs.append(f'"{stage} {idx[0]}-{idx[-1]}{limit} {n} {n * recipe.slurm.cpus_per_task} '
                    f'{recipe.slurm.mem_for(n)}"')
    s = recipe.slurm
    options = [f"--job-name=adapterxfer-{recipe.name}", "--gres=gpu:1",
               f"--cpus-per-task={s.cpus_per_task}", f"--mem={s.mem}", f"--time={s.time}",
               f"--output={out / 'slurm'}/%x-%A_%a.out"]
    options += [f"--partition={s.partition}"] * bool(s.partition) + [f"--account={s.account}"] * bool(s.account)
    options += list(s.sbatch)
    lines = ["#!/bin/bash",
             f"# adapterxfer grid {recipe.path} --out {out}: {len(todo)} unfinished cells of {len(cells)}, "
             f"{len({c.stage for c in todo})} stage(s).",
             "# Submit: bash THIS_FILE (sbatch THIS_FILE works too). Outside an array task it submits one array",
             "# job per stage (and GPUs per cell: --gres below), each after the one before (afterany: a failed cell",
             "# is recorded in its folder and blocks only the cells that need it); each array task runs one cell,",
             "# a training cell on several GPUs through accelerate launch. Rerun `adapterxfer grid ... --slurm`",
             "# for a new script after changes or failures: finished cells are left out.",
             *(f"#SBATCH {o}" for o in options),
             "set -euo pipefail",
             'SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"  # before the cd: what sbatch resubmits',
             f"cd {shlex.quote(os.getcwd())}",
             f"OUT={shlex.quote(str(out))}",
             f"XF=${{XF:-{shlex.quote(sys.executable)} -m adapterxfer.cli}}",
             f"LAUNCH=${{LAUNCH:-{shlex.join(distributed.launcher())}}}",
             "CELLS=(", *(f"  {c.id}  # {n}: stage {c.stage}" + (f", {gpus(c)} GPUs" if gpus(c) > 1 else "")
                          for n, c in enumerate(todo)), ")",
             f"GPUS=({' '.join(str(gpus(c)) for c in todo)})",
             f"JOBS=({' '.join(jobs)})  # stage, array indices, GPUs, CPUs and memory per task",
             'if [[ -z "${SLURM_ARRAY_TASK_ID:-}" ]]; then',
             '  mkdir -p "$OUT/slurm"',
             '  stage="" before="" current=""',
             '  for job in "${JOBS[@]}"; do',
             '    read -r s range n cpus mem <<< "$job"',
             '    [[ "$s" == "$stage" ]] || { stage=$s; before=$current; current=""; }',
             '    id=$(sbatch --parsable --array="$range" --gres="gpu:$n" --cpus-per-task="$cpus" --mem="$mem" \\',
             '         ${before:+--dependency=afterany$before} "$SELF")',
             '    current="$current:${id%%;*}"',
             '    echo "cells $range ($n GPU(s) each): job ${id%%;*}"',
             "  done",
             "  exit 0",
             "fi",
             *s.setup,
             'cell=${CELLS[$SLURM_ARRAY_TASK_ID]} n=${GPUS[$SLURM_ARRAY_TASK_ID]}',
             'if (( n > 1 )); then',
             '  exec $LAUNCH --num_processes "$n" -m adapterxfer.cli grid run-cell --out "$OUT" "$cell"',
             "fi",
             'exec $XF grid run-cell --out "$OUT" "$cell"']
    return "\n".join(lines) + "\n"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


# ---------------------------------------------------------------- command line

class _GridGroup(click.Group):
    """``adapterxfer grid RECIPE ...`` means ``adapterxfer grid run RECIPE ...``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("grid", cls=_GridGroup)
def grid_cmd():
    """Run a recipe's grid of cells: intermediate modules, target modules on them, zero-shot evaluations.

    A rerun skips finished cells and resumes interrupted ones; a changed value reruns only the cells
    that depend on it. `adapterxfer grid RECIPE --out DIR` is short for `adapterxfer grid run RECIPE --out DIR`
    (options: --dry-run, --devices, --slurm, --verbose; see `adapterxfer grid run --help`).

    \b
    Examples:
      adapterxfer grid recipes/xstilts.yaml --out runs/xstilts --dry-run   # the plan, and what it will cost
      adapterxfer grid recipes/xstilts.yaml --out runs/xstilts             # runs it; rerun resumes
      adapterxfer grid recipes/xstilts.yaml --out runs/xstilts --devices 0,1,2,3
      adapterxfer grid recipes/xstilts.yaml --out runs/xstilts --slurm > xstilts.sbatch
      adapterxfer report runs/xstilts                                      # table + heatmap
    """


@grid_cmd.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="The run folder (cells/, plan.json).")
@click.option("--dry-run", is_flag=True, help="Print the plan, what is done, and the estimated cost; run nothing.")
@click.option("--devices", help="Comma-separated GPU ids: cells in parallel, each on its own free GPU (a training "
                                "cell on the recipe's gpus_per_cell of them) (e.g. 0,1,2,3); an id given k times "
                                "holds k cells at once (0,0,1,1).")
@click.option("--slurm", is_flag=True, help="Print a Slurm array script whose tasks each run one cell.")
@click.option("--verbose", "-v", is_flag=True, help="Show each cell's log, not only its outcome.")
@friendly
def run_cmd(recipe, out, dry_run, devices, slurm, verbose):
    """Plan RECIPE's cells and run the unfinished ones in order (in this process, or --devices/--slurm).

    Failed cells are recorded in cells/<id>/failed.json and reported; the cells that need them are
    skipped, all others go on. The exit status is 1 if a cell failed or was skipped.

    \b
    Examples:
      adapterxfer grid run recipes/demo.yaml --out runs/demo --dry-run
      adapterxfer grid run recipes/demo.yaml --out runs/demo
      adapterxfer grid run recipes/xstilts.yaml --out runs/xstilts --devices 0,1
      adapterxfer grid run recipes/xstilts.yaml --out runs/xstilts --slurm > xstilts.sbatch && bash xstilts.sbatch
    """
    if sum(map(bool, (dry_run, devices, slurm))) > 1:
        raise UserError("give at most one of --dry-run, --devices and --slurm")
    ids = device_ids(devices) if devices else None
    loaded = load_recipe(recipe)
    out = Path(out).resolve()
    if slurm and any(c.isspace() for c in str(out)):
        raise UserError(f"--out {out}: a Slurm script's #SBATCH --output cannot name a folder with spaces")
    cells = plan(loaded, out, strict=not dry_run)
    if dry_run:
        describe(loaded, cells, out, click.echo)
        return
    write_plan(loaded, out, cells)
    if slurm:
        (out / "slurm").mkdir(parents=True, exist_ok=True)  # Slurm writes the tasks' output there, not makes it
        click.echo(slurm_script(loaded, cells, out), nl=False)
        return
    err = functools.partial(click.echo, err=True)
    try:
        if ids:
            result = run_devices(cells, out, ids, err)
        else:
            result = run_here(cells, out, err, verbose)
    except KeyboardInterrupt:
        err("interrupted: rerun the same command to continue (finished cells are kept, training resumes)")
        sys.exit(130)
    counts = {s: sum(1 for v in result.state.values() if v == s) for s in ("done", "failed", "blocked", "busy")}
    err(f"{counts['done']} of {len(cells)} cells done ({len(result.ran)} in this run), {counts['failed']} failed, "
        f"{counts['blocked']} skipped because a cell they need did not finish, {counts['busy']} run elsewhere")
    for cell_id, error in result.errors.items():
        err(f"  failed: {cell_id}: {error}")
    if counts["done"] < len(cells):
        err(f"rerun the same command to retry; adapterxfer report {out} shows what is there")
        sys.exit(1)
    err(f"all done: adapterxfer report {out}")


@grid_cmd.command("run-cell", hidden=True)
@click.argument("cell_id")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@friendly
def run_cell_cmd(cell_id, out):
    """Run one planned cell (used by --devices and --slurm; under accelerate launch for a training cell on
    several GPUs): exit 0 done, 1 failed, 75 held elsewhere.

    \b
    Example:
      adapterxfer grid run-cell --out runs/xstilts inter-mnli-s1-0123456789ab
    """
    path = Path(out) / "cells" / cell_id / "cell.json"
    if not path.is_file():
        raise UserError(f"no cell {cell_id} in {out} (no {path}); plan it with adapterxfer grid RECIPE --out {out}")
    cell = Cell(**json.loads(path.read_text()))
    use_task_files(cell.run.get("task_files", []))
    if cell.identity.get("task_file") and cell.identity["task_file"] != get_task(cell.task).origin[1]:
        raise UserError(f"{get_task(cell.task).origin[0]} changed since {cell_id} was planned: rerun adapterxfer grid "
                        f"RECIPE --out {out} to plan its cells anew")
    state = execute(cell, Path(out), None if _writes_to(path.parent / "log.txt")
                    else click.echo)  # --devices points this process's output at the log already
    if distributed.is_main():  # under accelerate launch, the main process speaks for the cell
        click.echo(f"{cell_id}: {state}")
    sys.exit({"done": 0, "failed": 1, "busy": BUSY}[state])
