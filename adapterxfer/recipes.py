"""Recipes: a study's whole grid in one YAML file (``recipes/*.yaml``), checked before any work starts.

A recipe names the base model, the module, the seeds, the intermediate tasks (rows of the paper's
table, plus the no-intermediate baseline) and the XTREME target tasks (its columns), each with its
own training settings, and how to evaluate. Every error names the file, the line and the key::

    recipes/xstilts.yaml:41: targets.tasks.xnli.epocs: unknown key (did you mean epochs?)

Setting keys are those of ``adapterxfer train-intermediate`` (``TrainConfig``) with ``_`` for ``-``.
The value ``demo`` for ``model``, a ``data_dir`` or ``evaluate.labels_dir`` means the embedded tiny
model and synthetic data (:mod:`adapterxfer.synthetic`), built on first use.
"""
from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import UserError
from .tasks import get_task
from .training import TrainConfig

DEMO = "demo"
#: TrainConfig keys the grid sets itself, per cell.
CONTROLLED = ("task", "output", "model", "data_dir", "stack", "fuse", "fusion", "seed")
#: TrainConfig keys that describe the module; they live under ``module:`` and are the same in every cell.
MODULE_KEYS = ("method", "backend", "reduction_factor", "lora_r", "lora_alpha", "lora_dropout", "lora_targets")
#: Settings that change how a run is carried out, not what it computes: left out of cell identities.
NOT_IDENTITY = ("output", "cache_dir", "log_steps", "save_steps")


@dataclass
class Evaluate:
    split: str = "dev"  # dev: labelled dev sets (tasks without one use their test set); test
    languages: Any = "all"  # "all", or {task: [languages]}
    batch_size: int = 64
    layer: int | None = None  # retrieval: hidden layer to pool [the default of adapterxfer evaluate]
    labels_dir: str | None = None  # XTREME-layout labels for tasks whose evaluated files carry none


@dataclass
class Cost:
    tokens_per_second: float = 8000.0  # padded training tokens/s assumed until a cell has been measured
    eval_minutes: float = 10.0  # minutes per evaluation cell assumed until one has been measured


@dataclass
class Slurm:
    partition: str | None = None
    account: str | None = None
    time: str = "24:00:00"
    cpus_per_task: int = 8
    mem: str = "64G"
    gpus_per_cell: int | None = None  # the older place of the top-level gpus_per_cell
    max_parallel: int | None = None  # at most this many array tasks at once (``--array=...%N``)
    sbatch: list = field(default_factory=list)  # extra ``#SBATCH`` options, e.g. "--qos=high"
    setup: list = field(default_factory=list)  # shell lines run before the cell, e.g. "module load cuda"


@dataclass
class Recipe:
    path: str
    name: str
    model: str
    seeds: list
    module: dict
    train: dict
    intermediate_data: str | None
    baseline: bool
    intermediates: dict  # task -> settings, in row order
    target_data: str | None
    targets: dict  # task -> settings, in column order
    evaluate: Evaluate
    cost: Cost
    slurm: Slurm
    description: str = ""
    gpus_per_cell: int = 1  # GPUs (accelerate launch processes) per training cell, for --devices and --slurm

    def settings(self, task: str) -> dict:
        """The TrainConfig values of a training cell for ``task`` (module, shared, then per-task settings);
        a per-task ``data_dir`` stays in it."""
        per_task = self.intermediates.get(task, self.targets.get(task, {}))
        return {**self.module, **self.train, **per_task}

    def to_dict(self) -> dict:
        return asdict(self)


_SECTIONS = {"name": str, "description": str, "model": str, "seeds": list, "gpus_per_cell": int, "module": dict,
             "train": dict, "intermediate": dict, "targets": dict, "evaluate": dict, "cost": dict, "slurm": dict}
_TRAIN_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; a :class:`UserError` names the file, line and key of any problem."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"recipe {path} not found") from None
    try:
        data, node = yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise UserError(f"{path}:{mark.line + 1 if mark else '?'}: not valid YAML ({getattr(e, 'problem', e)})") \
            from None
    return _Reader(path, _lines(node)).recipe(data)


def _lines(node, at: tuple = (), out: dict | None = None) -> dict:
    """``{key path: line}`` for every value of a composed YAML document (keys with ``-`` read as ``_``)."""
    import yaml

    out = {} if out is None else out
    if node is None:
        return out
    out.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = at + (str(key.value).replace("-", "_"),)
            out[here] = key.start_mark.line + 1
            _lines(value, here, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _lines(value, at + (i,), out)
    return out


class _Reader:
    def __init__(self, path: Path, lines: dict):
        self.path, self.lines = path, lines

    def error(self, at: tuple, message: str) -> UserError:
        line = next((self.lines[at[:n]] for n in range(len(at), -1, -1) if at[:n] in self.lines), "?")
        key = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in at).lstrip(".")
        return UserError(f"{self.path}:{line}: {key + ': ' if key else ''}{message}")

    def mapping(self, value, at: tuple, known) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(at, f"expected a mapping of keys, got {_kind(value)}")
        out = {}
        for key, v in value.items():
            name = str(key).replace("-", "_")
            if name not in known:
                close = difflib.get_close_matches(name, list(known), n=1)
                raise self.error(at + (name,), "unknown key" + (f" (did you mean {close[0]}?)" if close else
                                                                 f" (known: {', '.join(known)})"))
            out[name] = v
        return out

    def typed(self, value, kind: str, at: tuple):
        """``value`` checked against a type written as in a dataclass (``int``, ``float | None``, ...)."""
        base, optional = kind.split(" ")[0], "None" in kind
        if value is None:
            if optional:
                return None
            raise self.error(at, f"expected {base}, got nothing")
        if base == "float" and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as text
            try:
                return float(value)
            except ValueError:
                pass
        ok = {"str": isinstance(value, str), "bool": isinstance(value, bool),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "list": isinstance(value, list)}[base]
        if not ok:
            raise self.error(at, f"expected {base}, got {_kind(value)} {value!r}")
        return float(value) if base == "float" else value

    def settings(self, value, at: tuple, allowed) -> dict:
        out = {}
        for key, v in self.mapping(value, at, allowed).items():
            out[key] = self.typed(v, _TRAIN_TYPES[key], at + (key,))
        return out

    def tasks(self, value, at: tuple, target: bool) -> dict:
        """``tasks:`` as a list of names or a mapping ``name: {settings}``, in the order given."""
        if isinstance(value, list):
            value = dict.fromkeys(value)
        value = self.mapping(value, at, _AnyKey())
        train_keys = [k for k in _TRAIN_TYPES if k not in CONTROLLED + MODULE_KEYS] + ["data_dir"]
        out = {}
        for name, settings in value.items():
            here = at + (name,)
            try:
                spec = get_task(str(name))
            except UserError as e:
                raise self.error(here, str(e)) from None
            if spec.is_target != target:
                want = "an XTREME target task" if target else "an intermediate task"
                raise self.error(here, f"'{spec.name}' is not {want}")
            if spec.name in out:
                raise self.error(here, f"'{spec.name}' is listed twice")
            if spec.format == "retrieval" and settings:
                raise self.error(here, f"{spec.name} is evaluated by retrieval, without training: give it no "
                                       f"settings (evaluate.layer chooses the layer)")
            out[spec.name] = self.settings(settings, here, train_keys)
        if not out:
            raise self.error(at, "no tasks")
        return out

    def section(self, cls, value, at: tuple):
        types = {f.name: f.type for f in fields(cls)}
        values = self.mapping(value, at, list(types))
        return cls(**{k: v if types[k] == "Any" else self.typed(v, types[k], at + (k,)) for k, v in values.items()})

    def recipe(self, data) -> Recipe:
        top = self.mapping(data, (), _SECTIONS)
        for key, kind in _SECTIONS.items():
            if key in top and top[key] is not None and not isinstance(top[key], kind):
                raise self.error((key,), f"expected {kind.__name__}, got {_kind(top[key])}")
        if not top.get("model"):
            raise self.error(("model",), "required: the base model (hub id, local folder, or 'demo')")
        seeds = top.get("seeds", [42])
        for i, seed in enumerate(seeds):
            self.typed(seed, "int", ("seeds", i))
        if not seeds or len(set(seeds)) != len(seeds):
            raise self.error(("seeds",), "give one or more different seeds")

        module = self.settings(top.get("module"), ("module",), MODULE_KEYS)
        train_keys = [k for k in _TRAIN_TYPES if k not in CONTROLLED]
        for key in self.mapping(top.get("train"), ("train",), train_keys):
            if key in MODULE_KEYS:
                raise self.error(("train", key), "a module setting: put it under module:")
        train = self.settings(top.get("train"), ("train",), train_keys)
        inter = self.mapping(top.get("intermediate"), ("intermediate",), ("data_dir", "baseline", "tasks"))
        targ = self.mapping(top.get("targets"), ("targets",), ("data_dir", "tasks"))
        if "tasks" not in targ:
            raise self.error(("targets",), "required: tasks (the XTREME target tasks)")
        recipe = Recipe(
            path=str(self.path), name=self.typed(top.get("name", self.path.stem), "str", ("name",)),
            description=top.get("description") or "", model=top["model"], seeds=list(seeds),
            module=module, train=train,
            intermediate_data=self.typed(inter.get("data_dir"), "str | None", ("intermediate", "data_dir")),
            baseline=self.typed(inter.get("baseline", True), "bool", ("intermediate", "baseline")),
            intermediates=self.tasks(inter["tasks"], ("intermediate", "tasks"), False) if inter.get("tasks") else {},
            target_data=self.typed(targ.get("data_dir"), "str | None", ("targets", "data_dir")),
            targets=self.tasks(targ["tasks"], ("targets", "tasks"), True),
            evaluate=self.section(Evaluate, top.get("evaluate"), ("evaluate",)),
            cost=self.section(Cost, top.get("cost"), ("cost",)),
            slurm=self.section(Slurm, top.get("slurm"), ("slurm",)),
            gpus_per_cell=self.typed(top.get("gpus_per_cell", 1), "int", ("gpus_per_cell",)),
        )
        if recipe.slurm.gpus_per_cell is not None:  # the older spelling
            if "gpus_per_cell" in top and top["gpus_per_cell"] != recipe.slurm.gpus_per_cell:
                raise self.error(("slurm", "gpus_per_cell"), f"differs from gpus_per_cell "
                                                             f"({top['gpus_per_cell']}): give it once, at the top")
            recipe.gpus_per_cell = recipe.slurm.gpus_per_cell
        if recipe.gpus_per_cell < 1:
            where = ("slurm", "gpus_per_cell") if recipe.slurm.gpus_per_cell is not None else ("gpus_per_cell",)
            raise self.error(where, "must be at least 1")
        self.check(recipe)
        return recipe

    def check(self, r: Recipe) -> None:
        """What only makes sense across keys: method/backend pairs, multi-task heads, languages, limits."""
        from . import modules
        from .zeroshot import languages_list

        if not r.intermediates and not r.baseline:
            raise self.error(("intermediate",), "no rows: list intermediate tasks or set baseline: true")
        if r.intermediates and r.module.get("method") == "full":
            raise self.error(("module", "method"), "a fully fine-tuned module cannot be stacked under a target "
                                                   "module: method full goes with the baseline row only")
        for task in [*r.intermediates, *(t for t in r.targets if get_task(t).format != "retrieval")]:
            at = ("intermediate" if task in r.intermediates else "targets", "tasks", task)
            try:
                cfg = TrainConfig(**{**r.settings(task), "task": task, "output": "-"})
                cfg.validate()
                modules.check(cfg.method_config(), len(get_task(task).members) or 1)
            except UserError as e:
                raise self.error(at, str(e)) from None
        if r.evaluate.split not in ("dev", "test"):
            raise self.error(("evaluate", "split"), "must be dev or test")
        langs = r.evaluate.languages
        if langs != "all":
            if not isinstance(langs, dict):
                raise self.error(("evaluate", "languages"), "expected 'all' or a mapping {task: [languages]}")
            for task, chosen in langs.items():
                at = ("evaluate", "languages", task)
                if task not in r.targets:
                    raise self.error(at, f"'{task}' is not one of the targets ({', '.join(r.targets)})")
                try:
                    languages_list(get_task(task), chosen)
                except UserError as e:
                    raise self.error(at, str(e)) from None
        for key in ("sbatch", "setup"):
            for i, line in enumerate(getattr(r.slurm, key)):
                self.typed(line, "str", ("slurm", key, i))


class _AnyKey:
    """Accepts every key (task names are checked against the registry instead)."""

    def __contains__(self, key) -> bool:
        return True


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)
