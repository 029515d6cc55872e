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
from .fileio import sha256_file
from .tasks import ALIASES, BENCHMARKS, FORMATS, METRIC_KEYS, TASKS, Source, TaskSpec, get_benchmark, get_task
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
    task_files: list = field(default_factory=list)  # the recipe's task files (absolute paths), for every cell
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


_SECTIONS = {"name": str, "description": str, "benchmark": str, "tasks": (str, list), "model": (str, list), "seeds": list,
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


#: What a task file's task may say: TaskSpec's fields (``sources``: a list of Source's), less the built-ins' own.
_TASK_KEYS = [f.name for f in fields(TaskSpec) if f.name not in ("benchmark_languages", "members", "origin")]
_SOURCE_KEYS = [f.name for f in fields(Source)]
#: The formats a task file may use, and the metrics that can score each (retrieval is by built-in tasks only).
_FORMAT_METRICS = {"classification": ("accuracy",), "multiple_choice": ("accuracy",), "tagging": ("seqeval",
                   "token_accuracy"), "span_qa": ("squad", "mlqa")}
_REQUIRED_FIELDS = {"classification": ("text_a", "label"), "multiple_choice": ("context", "choices", "label"),
                    "tagging": (), "span_qa": ("id", "question", "context", "answers")}
_LOCAL_FORMATS = {"table": None, "tsv": None, "conll": "tagging", "squad": "span_qa"}  # -> the one format it reads


def load_task_file(path: str | Path) -> list[TaskSpec]:
    """The tasks of a task file: ``tasks:``, a list of :class:`~adapterxfer.tasks.TaskSpec` fields whose
    ``sources:`` are lists of :class:`~adapterxfer.tasks.Source` fields, each checked; a :class:`UserError` names
    the file, line and key of any problem. Each spec's ``origin`` is the file's path and content hash."""
    path = Path(path).expanduser().resolve()
    data, lines = _load_yaml(path, "task file")
    return _Reader(path, lines).task_file(data, sha256_file(path))


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
        raise UserError(f"{path}:{line}: {_key(at)}: given twice (the last would win)") from None


def _key(at: tuple) -> str:
    """A key path as written: ``tasks[0].name``."""
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in at).lstrip(".")


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
        return UserError(f"{self.path}:{line}: {_key(at) + ': ' if at else ''}{message}")

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

    def task_file(self, data, sha: str) -> list[TaskSpec]:
        entries = self.mapping(data, (), ("tasks",)).get("tasks")
        if not isinstance(entries, list) or not entries:
            raise self.error(("tasks",), "expected a list of tasks, each with name, format, metric and sources")
        specs: dict[str, TaskSpec] = {}
        for i, entry in enumerate(entries):
            spec = self.user_task(entry, ("tasks", i), (str(self.path), sha))
            if spec.name in specs:
                raise self.error(("tasks", i, "name"), f"task '{spec.name}' is defined twice in this file")
            specs[spec.name] = spec
        return list(specs.values())

    def user_task(self, entry, at: tuple, origin: tuple) -> TaskSpec:
        """One task of a task file; every check that needs only the file is made here, with its line."""
        v = self.mapping(entry, at, _TASK_KEYS)
        for key in ("name", "format", "metric", "sources"):
            if v.get(key) is None:
                raise self.error(at, f"required: {key}")
        name = self.typed(v["name"], "str", at + ("name",))
        known = TASKS.get(name)
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise self.error(at + ("name",), f"'{name}': a task name is lower-case letters, digits and _")
        if name in ALIASES or (known and not known.origin):
            raise self.error(at + ("name",), f"'{name}' is a built-in task (or its alias): give yours another name")
        if known and known.origin[0] != origin[0]:
            raise self.error(at + ("name",), f"task '{name}' is defined in {known.origin[0]} already")
        fmt, metric = (self.typed(v[k], "str", at + (k,)) for k in ("format", "metric"))
        if fmt not in _FORMAT_METRICS:
            raise self.error(at + ("format",), f"unknown format '{fmt}' (a task file's: {', '.join(_FORMAT_METRICS)})")
        if metric not in METRIC_KEYS:
            raise self.error(at + ("metric",), f"unknown metric '{metric}' (known: {', '.join(METRIC_KEYS)})")
        if metric not in _FORMAT_METRICS[fmt]:
            raise self.error(at + ("metric",), f"{metric} cannot score {fmt} predictions (it takes "
                                               f"{' or '.join(_FORMAT_METRICS[fmt])})")
        labels = v.get("labels")
        if labels is not None:
            if fmt not in ("classification", "tagging"):
                raise self.error(at + ("labels",), f"a {fmt} task has no label list")
            labels = self.strings(labels, at + ("labels",))
        if fmt == "classification" and (labels is None or len(labels) < 2):
            raise self.error(at + (("labels",) if "labels" in v else ()),
                             "a classification task needs labels: its label names, in the order of label ids 0, 1, ...")
        choices = v.get("num_choices")
        if (choices is None) == (fmt == "multiple_choice"):
            raise self.error(at + (("num_choices",) if choices is not None else ()),
                             "a multiple_choice task needs num_choices" if choices is None else
                             f"a {fmt} task has no num_choices")
        if choices is not None and self.typed(choices, "int", at + ("num_choices",)) < 2:
            raise self.error(at + ("num_choices",), "must be at least 2")
        languages = self.strings(v.get("languages", ["en"]), at + ("languages",))
        fields_ = self.field_map(v.get("fields"), at + ("fields",), fmt)
        sources = v["sources"]
        if not isinstance(sources, list) or not sources:
            raise self.error(at + ("sources",), "expected a list of sources, each with splits")
        sources = tuple(self.user_source(s, at + ("sources", i), fmt, fields_, languages != ("en",))
                        for i, s in enumerate(sources))
        if not any("train" in s.splits for s in sources):
            raise self.error(at + ("sources",), "no source has a train split: a task is trained on it")
        return TaskSpec(name=name, format=fmt, metric=metric, sources=sources, fields=fields_, labels=labels,
                        num_choices=choices, languages=languages, origin=origin,
                        description=self.typed(v.get("description", ""), "str", at + ("description",)),
                        note=self.typed(v.get("note", ""), "str", at + ("note",)),
                        max_length=self.typed(v.get("max_length", 256), "int", at + ("max_length",)),
                        pad_choices=self.typed(v.get("pad_choices", False), "bool", at + ("pad_choices",)),
                        no_dev=self.strings(v.get("no_dev", []), at + ("no_dev",)))

    def user_source(self, entry, at: tuple, fmt: str, task_fields: dict, target: bool) -> Source:
        v = self.mapping(entry, at, _SOURCE_KEYS)
        splits = self.mapping(v.get("splits"), at + ("splits",), ("train", "dev", "test"))
        if not splits:
            raise self.error(at + ("splits",), "required: our split names (train, dev, test), each with the "
                                               "source's split names")
        splits = {k: self.strings([n] if isinstance(n, str) else n, at + ("splits", k)) for k, n in splits.items()}
        local = self.typed(v.get("local_format", "table"), "str", at + ("local_format",))
        if local not in _LOCAL_FORMATS:
            raise self.error(at + ("local_format",), f"unknown local format '{local}' (known: "
                                                     f"{', '.join(_LOCAL_FORMATS)})")
        if _LOCAL_FORMATS[local] not in (None, fmt):
            raise self.error(at + ("local_format",), f"{local} files hold {_LOCAL_FORMATS[local]} data, not {fmt}")
        files = self.mapping(v.get("files"), at + ("files",), list(splits))
        for split, pattern in files.items():
            self.typed(pattern, "str", at + ("files", split))
            if target and split != "train" and "{lang}" not in pattern:
                raise self.error(at + ("files", split), f"a target task's {split} files are per language: put "
                                                        f"{{lang}} in the pattern (e.g. {split}-{{lang}}.tsv)")
        hf_path = self.typed(v.get("hf_path"), "str | None", at + ("hf_path",))
        if target and not files and not hf_path:
            raise self.error(at, "a target task's local files need a files: pattern per split, with {lang}")
        columns = self.strings(v.get("columns", []), at + ("columns",))
        if local == "tsv" and not columns:
            raise self.error(at + ("local_format",), "header-less tsv files need columns: (names for the fields)")
        fields_ = self.field_map(v.get("fields"), at + ("fields",), fmt) if v.get("fields") is not None else None
        missing = [k for k in _REQUIRED_FIELDS[fmt] if k not in (fields_ or task_fields)]
        if missing:
            raise self.error(at + (("fields",) if fields_ else ()), f"fields: a {fmt} task needs "
                                                                     f"{', '.join(missing)} (see adapterxfer.tasks)")
        unlabelled = self.strings(v.get("unlabelled", []), at + ("unlabelled",))
        where = v.get("hf_where")
        if where is not None and (len(self.strings(where, at + ("hf_where",))) != 2):
            raise self.error(at + ("hf_where",), "expected [column, pattern]")
        names = self.mapping(v.get("lang_names"), at + ("lang_names",), _AnyKey())
        return Source(hf_path=hf_path, hf_config=self.typed(v.get("hf_config"), "str | None", at + ("hf_config",)),
                      splits=splits, subdir=self.typed(v.get("subdir", ""), "str", at + ("subdir",)),
                      skip_labels=tuple(self.typed(v.get("skip_labels", []), "list", at + ("skip_labels",))),
                      local_format=local, files=files, columns=columns, fields=fields_, unlabelled=unlabelled,
                      hf_where=tuple(where) if where else None,
                      lang_names={k: self.typed(n, "str", at + ("lang_names", k)) for k, n in names.items()})

    def strings(self, value, at: tuple) -> tuple[str, ...]:
        """A list of distinct texts, as a tuple."""
        for i, item in enumerate(self.typed(value, "list", at)):
            self.typed(item, "str", at + (i,))
        if len(set(value)) != len(value):
            raise self.error(at, "an item is listed twice")
        return tuple(value)

    def field_map(self, value, at: tuple, fmt: str) -> dict:
        """Field expressions (see :mod:`adapterxfer.tasks`): a column, a list of columns, or a mapping
        {column, offset}, {index_of, in} or {template}."""
        out = self.mapping(value, at, FORMATS[fmt])
        shapes = ({"column"}, {"column", "offset"}, {"index_of", "in"}, {"template"})
        for key, expr in out.items():
            ok = isinstance(expr, str) or (isinstance(expr, list) and expr and all(isinstance(c, str) for c in expr)) \
                or (isinstance(expr, dict) and set(expr) in shapes)
            if not ok:
                raise self.error(at + (key,), f"not a field expression: a column, a list of columns, or "
                                              f"{{column, offset}}, {{index_of, in}} or {{template}}; got {expr!r}")
        return out

    def task_files(self, value) -> list[str]:
        """``tasks:``, one task file or a list, relative to the recipe: registered, as absolute paths."""
        from .tasks import use_task_files

        files = []
        for i, name in enumerate([value] if isinstance(value, str) else value or []):
            at = ("tasks",) if isinstance(value, str) else ("tasks", i)
            path = (self.path.parent / Path(self.typed(name, "str", at)).expanduser()).resolve()
            if not path.is_file():
                raise self.error(at, f"task file {path} not found")
            files.append(str(path))
        use_task_files(files)
        return files

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
        task_files = self.task_files(top.get("tasks"))
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
            gpus_per_cell=self.typed(top.get("gpus_per_cell", 1), "int", ("gpus_per_cell",)), task_files=task_files,
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
            if task not in bench.tasks and not get_task(task).origin:  # a task file's are in no benchmark
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
