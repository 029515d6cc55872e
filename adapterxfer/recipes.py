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
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import UserError
from .tasks import BENCHMARKS, get_benchmark, get_task
from .training import SPEED_SETTINGS, TrainConfig

DEMO = "demo"
#: TrainConfig keys the grid sets itself, per cell.
CONTROLLED = ("task", "output", "model", "data_dir", "stack", "fuse", "fusion", "seed")
#: TrainConfig keys that describe the module; they live under ``module:`` and are the same in every cell.
MODULE_KEYS = ("method", "backend", "reduction_factor", "lora_r", "lora_alpha", "lora_dropout", "lora_targets")
#: Settings that change how a run is carried out, not what it computes: left out of cell identities.
NOT_IDENTITY = ("output", "cache_dir", "log_steps", "save_steps", *SPEED_SETTINGS)


@dataclass
class Evaluate:
    split: str = "dev"  # dev: labelled dev sets (tasks without one use their test set); test
    languages: Any = "all"  # "all", or {task: [languages]}
    batch_size: int = 64
    layer: int | None = None  # retrieval: hidden layer to pool [the default of adapterxfer evaluate]
    labels_dir: str | None = None  # XTREME-layout labels for tasks whose evaluated files carry none
    perturb: list = field(default_factory=list)  # a ladder: steps, each a list of NAME:RATE, one cell per step
    perturb_seed: int = 0  # the noise's seed, the same for every module (paired comparisons)


@dataclass
class Cost:
    tokens_per_second: float = 8000.0  # padded training tokens/s assumed until a cell has been measured
    eval_minutes: float = 10.0  # minutes per evaluation cell assumed until one has been measured


@dataclass
class Slurm:
    partition: str | None = None
    account: str | None = None
    time: str = "24:00:00"
    cpus_per_task: int = 8  # per GPU: a job of N GPUs per task asks N times these two
    mem: str = "64G"  # Slurm's --mem: a whole number with an optional K, M, G or T
    gpus_per_cell: int | None = None  # the older place of the top-level gpus_per_cell
    max_parallel: int | None = None  # at most this many array tasks at once (``--array=...%N``)
    sbatch: list = field(default_factory=list)  # extra ``#SBATCH`` options, e.g. "--qos=high"
    setup: list = field(default_factory=list)  # shell lines run before the cell, e.g. "module load cuda"

    def mem_for(self, gpus: int) -> str | None:
        """``--mem`` of a job with ``gpus`` GPUs per task: ``gpus`` times ``mem`` (None if ``mem`` is malformed)."""
        amount = re.fullmatch(r"(\d+)([KMGT]?)", str(self.mem))
        return amount and f"{gpus * int(amount[1])}{amount[2]}"


@dataclass
class Recipe:
    path: str
    name: str
    model: Any  # one base model, or a list of them (a model sweep)
    seeds: list
    module: dict
    train: dict
    intermediate_data: str | None
    baseline: bool
    intermediates: dict  # row -> settings (``task``: the row's task when the row is named otherwise), in row order
    target_data: str | None
    targets: dict  # task -> settings, in column order
    evaluate: Evaluate
    cost: Cost
    slurm: Slurm
    description: str = ""
    gpus_per_cell: int = 1  # GPUs (accelerate launch processes) per training cell, for --devices and --slurm
    benchmark: str = "xtreme"  # whose target tasks and language sets: xtreme or xtreme-r

    @property
    def models(self) -> list[str]:
        return models_of(self.model)

    @property
    def ladder(self) -> list[list[str]]:
        """The perturbation ladder's steps, each as a list of ``NAME:RATE`` strings."""
        return [[step] if isinstance(step, str) else list(step) for step in self.evaluate.perturb]

    def settings(self, task: str) -> dict:
        """The TrainConfig values of a training cell for ``task`` (a target task or an intermediate row:
        module, shared, then per-task settings); a per-task ``data_dir`` stays in it."""
        per_task = self.intermediates.get(task, self.targets.get(task, {}))
        return {**self.module, **self.train, **{k: v for k, v in per_task.items() if k != "task"}}

    def task_of(self, row: str) -> str:
        """The intermediate task a row trains: the row's name, or its ``task:`` (e.g. row ``mnli_de``,
        ``task: mnli`` with ``train_language: de`` and its own ``data_dir``)."""
        return self.intermediates[row].get("task", row)

    def to_dict(self) -> dict:
        return asdict(self)


def models_of(model) -> list[str]:
    """The base models of a recipe's ``model`` value (one name or a list)."""
    return list(model) if isinstance(model, list) else [model]


_SECTIONS = {"name": str, "description": str, "benchmark": str, "model": (str, list), "seeds": list,
             "gpus_per_cell": int, "module": dict, "train": dict, "intermediate": dict, "targets": dict, "evaluate": dict, "cost": dict,
             "slurm": dict}
_TRAIN_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; a :class:`UserError` names the file, line and key of any problem."""
    path = Path(path)
    data, lines = _load_yaml(path, "recipe")
    return _Reader(path, lines).recipe(data)


def read_settings(path: str | Path) -> dict:
    """The training settings of a ``--config`` YAML file (keys as the flags, with ``_``; the task is the
    command's argument), each key and type checked as in a recipe's ``train:``, errors naming the file,
    line and key."""
    path = Path(path)
    data, lines = _load_yaml(path, "config file")
    return _Reader(path, lines).settings(data, (), [k for k in _TRAIN_TYPES if k != "task"])


def _load_yaml(path: Path, what: str) -> tuple:
    """(the document, ``{key path: line}``) of a YAML file; a key given twice in a mapping is refused."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} {path} not found") from None
    try:
        data, node = yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise UserError(f"{path}:{mark.line + 1 if mark else '?'}: not valid YAML ({getattr(e, 'problem', e)})") \
            from None
    try:
        return data, _lines(node)
    except _Twice as e:
        at, line = e.args
        raise UserError(f"{path}:{line}: {'.'.join(map(str, at))}: given twice (the last would win)") from None


class _Twice(Exception):
    """A mapping of a YAML document has a key twice: (key path, line)."""


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
            if here in out:
                raise _Twice(here, key.start_mark.line + 1)
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
            alias = not target and isinstance(settings, dict) and "task" in settings
            if alias:  # a second row of the same task, e.g. translated data: mnli_de: {task: mnli, ...}
                settings = dict(settings)
                task = self.typed(settings.pop("task"), "str", here + ("task",))
                if not re.fullmatch(r"[A-Za-z0-9][\w.+-]*", str(name)):
                    raise self.error(here, "a row name is letters, digits and _ . + (it names folders)")
            try:
                spec = get_task(task if alias else str(name))
            except UserError as e:
                raise self.error(here + (("task",) if alias else ()), str(e)) from None
            if spec.is_target != target:
                want = "an XTREME target task" if target else "an intermediate task"
                raise self.error(here, f"'{spec.name}' is not {want}")
            row = str(name) if alias else spec.name
            if row in out:
                raise self.error(here, f"'{row}' is listed twice")
            if spec.format == "retrieval" and settings:
                raise self.error(here, f"{spec.name} is evaluated by retrieval, without training: give it no "
                                       f"settings (evaluate.layer chooses the layer)")
            out[row] = self.settings(settings, here, train_keys) | ({"task": spec.name} if alias else {})
        if not out:
            raise self.error(at, "no tasks")
        return out

    def benchmark(self, value) -> str:
        try:
            return get_benchmark(value).name
        except UserError as e:
            raise self.error(("benchmark",), str(e)) from None

    def section(self, cls, value, at: tuple):
        types = {f.name: f.type for f in fields(cls)}
        values = self.mapping(value, at, list(types))
        return cls(**{k: v if types[k] == "Any" else self.typed(v, types[k], at + (k,)) for k, v in values.items()})

    def recipe(self, data) -> Recipe:
        top = self.mapping(data, (), _SECTIONS)
        for key, kind in _SECTIONS.items():
            if key in top and top[key] is not None and not isinstance(top[key], kind):
                names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
                raise self.error((key,), f"expected {names}, got {_kind(top[key])}")
        if not top.get("model"):
            raise self.error(("model",), "required: the base model (hub id, local folder, or 'demo'), or a list "
                                         "of them")
        model = top["model"]
        if isinstance(model, list):
            for i, name in enumerate(model):
                if not self.typed(name, "str", ("model", i)):
                    raise self.error(("model", i), "empty model name")
            if len(set(model)) != len(model):
                raise self.error(("model",), "a model is listed twice")
            model = model[0] if len(model) == 1 else model  # [m] plans the same cells as m
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
            description=top.get("description") or "", benchmark=self.benchmark(top.get("benchmark")),
            model=model, seeds=list(seeds),
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
        for row in [*r.intermediates, *(t for t in r.targets if get_task(t).format != "retrieval")]:
            at = ("intermediate" if row in r.intermediates else "targets", "tasks", row)
            task = r.task_of(row) if row in r.intermediates else row
            try:
                data_dir = r.settings(row).get("data_dir") or \
                    (r.intermediate_data if row in r.intermediates else r.target_data)
                cfg = TrainConfig(**{**r.settings(row), "task": task, "output": "-", "data_dir": data_dir})
                cfg.validate()
                modules.check(cfg.method_config(), len(get_task(task).members) or 1)
            except UserError as e:
                raise self.error(self.blame(r, row, at, str(e)), str(e)) from None
        bench = BENCHMARKS[r.benchmark]
        for task in r.targets:
            if task not in bench.tasks:
                raise self.error(("targets", "tasks", task), f"'{task}' is not a {bench.title} task "
                                                             f"({', '.join(bench.tasks)}; see benchmark:)")
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
                    chosen = languages_list(get_task(task), chosen, r.benchmark)
                except UserError as e:
                    raise self.error(at, str(e)) from None
                other = [l for l in chosen if l not in bench.languages(task)]
                if other:
                    raise self.error(at, f"{task} has no {', '.join(other)} in {bench.title} (see benchmark:)")
        self.check_ladder(r)
        self.check_models(r)
        for key in ("sbatch", "setup"):
            for i, line in enumerate(getattr(r.slurm, key)):
                self.typed(line, "str", ("slurm", key, i))
        for key in ("cpus_per_task", "max_parallel"):
            if getattr(r.slurm, key) is not None and getattr(r.slurm, key) < 1:
                raise self.error(("slurm", key), f"must be at least 1, got {getattr(r.slurm, key)}")
        if not re.fullmatch(r"\d+(-\d+)?(:\d+){0,2}|UNLIMITED|infinite", r.slurm.time):
            raise self.error(("slurm", "time"), f"{r.slurm.time!r} is not a Slurm --time value: minutes, "
                                                f"HH:MM:SS or D-HH:MM:SS, as \"24:00:00\"")
        if not r.slurm.mem_for(1):
            raise self.error(("slurm", "mem"), f"{r.slurm.mem!r} is not a Slurm --mem value: a whole number with "
                                               f"an optional unit K, M, G or T, as 64G")


    def blame(self, r: Recipe, row: str, at: tuple, message: str) -> tuple:
        """Where the setting a ``message`` is about (``--batch-size ...``) was given: the row's own settings,
        else ``module:``, else ``train:``; the row for a message about something else."""
        own = (r.intermediates if row in r.intermediates else r.targets)[row]
        flag = re.match(r"--([a-z][a-z-]*)", message)
        key = flag and flag.group(1).replace("-", "_")
        if key in own:
            return at + (key,)
        return next(((section, key) for section in ("module", "train") if key in getattr(r, section)), at)

    def check_ladder(self, r: Recipe) -> None:
        """Each step of ``evaluate.perturb``: NAME:RATE operations as ``adapterxfer evaluate --perturb`` takes."""
        from .perturb import parse

        seen = set()
        for i, step in enumerate(r.evaluate.perturb):
            at = ("evaluate", "perturb", i)
            ops = [step] if isinstance(step, str) else step
            if not isinstance(ops, list) or not ops:
                raise self.error(at, f"a ladder step is a list of NAME:RATE (e.g. [char_swap:0.1]), got {_kind(step)}")
            for j, op in enumerate(ops):
                here = at + (j,) if ops is step else at
                if not isinstance(op, str):
                    raise self.error(here, f"expected NAME:RATE, got {_kind(op)} {op!r}")
                try:
                    parse([op])
                except UserError as e:
                    raise self.error(here, str(e).removeprefix("--perturb ")) from None
            key = tuple(str(p) for p in parse(ops))
            if key in seen:
                raise self.error(at, f"step {', '.join(key)} is listed twice")
            seen.add(key)

    def check_models(self, r: Recipe) -> None:
        """A sweep's models: no fixed retrieval layer across depths, and a backend that takes each model."""
        from .basemodel import ADAPTERS_TYPES, known_type

        if len(r.models) > 1 and r.evaluate.layer is not None:
            raise self.error(("evaluate", "layer"), "one layer cannot fit models of different depths: leave it "
                                                    "unset (each model pools 14/24 of its depth, as XTREME)")
        if r.module.get("backend", "adapters") != "adapters" or r.module.get("method") == "full":
            return
        for i, model in enumerate(r.models):
            kind = known_type(model)
            if kind is not None and kind not in ADAPTERS_TYPES:
                at = ("model", i) if isinstance(r.model, list) else ("model",)
                raise self.error(at, f"{model} (model type {kind}) has no model class in the adapters library "
                                     f"(it has {', '.join(ADAPTERS_TYPES)}): use module.backend: peft with "
                                     f"method: lora")


class _AnyKey:
    """Accepts every key (task names are checked against the registry instead)."""

    def __contains__(self, key) -> bool:
        return True


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)
