"""Training a module on a frozen base: one loop, readable top to bottom (in the spirit of nanoGPT).

``train(cfg)`` builds everything from a :class:`TrainConfig`, runs the loop with checkpoints every
``save_steps`` optimizer steps, keeps the best dev state, and publishes the finished module folder
atomically. While it runs, all state lives in ``<output>.partial/``; ``--resume`` continues from its
newest checkpoint and reaches the same final state as an uninterrupted run with the same seed.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from . import __version__, basemodel, distributed, modules, tasks
from .data import load_examples
from .errors import UserError
from .features import cached_tokenize, collate, feature_length, length_grouped_batches
from .fileio import atomic_path, replace_dir, sha256_file, write_json
from .sampling import subsample

CARD = "adapterxfer.json"
DEFAULT_LR = {"lora": 5e-4, "full": 2e-5}  # adapters: 1e-4
DEFAULT_CACHE = Path.home() / ".cache" / "adapterxfer" / "features"
#: Settings that change speed and memory, not the method: the numbers only by rounding (a bf16 base under bf16
#: autocast feeds the matrix products the same bf16 weights, and rounds its layer-norm weights and embeddings
#: too; compiled dropout draws other masks of the same distribution): a run may resume with others, and grid
#: cells ignore them.
SPEED_SETTINGS = ("base_dtype", "gradient_checkpointing", "compile")


#: the lowest and highest value of each number setting (nothing else: finite numbers only)
AT_LEAST = {"warmup_ratio": 0, "lora_dropout": 0, "weight_decay": 0, "max_grad_norm": 0, "max_steps": 0,
            "eval_steps": 0, "save_steps": 0, "batch_size": 1, "grad_accum": 1, "eval_batch_size": 1, "log_steps": 1,
            "reduction_factor": 1, "lora_r": 1, "lora_alpha": 1, "doc_stride": 1, "max_length": 8}
ABOVE_ZERO = ("lr", "epochs", "multi_temperature")
AT_MOST = {"warmup_ratio": 1, "lora_dropout": 1}


@dataclass
class TrainConfig:
    """Every setting of a training run; settable by flag or YAML file (``--config``)."""

    task: str = ""
    output: str = ""
    model: str = "xlm-roberta-large"
    data_dir: str | None = None
    method: str = "seq_bn"
    backend: str = "adapters"
    reduction_factor: int = 16
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: str = "query,value"
    lr: float | None = None  # default: 1e-4 for adapters, 5e-4 for LoRA, 2e-5 for full fine-tuning
    epochs: float = 3.0
    max_steps: int = 0  # > 0: stop after this many optimizer steps (overrides epochs)
    batch_size: int = 32
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int | None = None  # default: the task's (256; 384 for QA)
    doc_stride: int = 128
    seed: int = 42
    eval_steps: int = 0  # 0: evaluate on dev at the end of each epoch
    save_steps: int = 500
    log_steps: int = 10
    eval_batch_size: int = 64
    mixed_precision: str = "auto"  # auto (bf16 on a GPU that has it), no, bf16, fp16
    base_dtype: str = "auto"  # frozen base weights: auto (bf16 when training in bf16 on a GPU), bf16, fp32
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, more time
    compile: bool = False  # torch.compile the model's forward
    multi_sampling: str = "proportional"  # multi-task mixing: proportional or temperature
    multi_temperature: float = 2.0
    cache_dir: str | None = None
    train_size: int | None = None  # seeded subsample of the training data (stratified by label)
    train_fraction: float | None = None
    stack: str | None = None  # target training: a finished module to stack under the new one
    fuse: str | None = None  # target training: comma-separated modules to fuse under the new one
    fusion: str = "light"  # --fuse: light (learned mixing weights per layer) or dynamic (AdapterFusion)
    train_language: str = "en"  # the language of the training data (non-English: local files, e.g. translated MNLI)

    @classmethod
    def load(cls, file: str | None = None, **overrides) -> "TrainConfig":
        """Defaults, then the YAML ``file``, then explicit ``overrides`` (``None`` = not given)."""
        from .recipes import read_settings

        values = read_settings(file) if file else {}
        values.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**values)
        cfg.validate(file)
        return cfg

    def validate(self, file=None):
        where = f"{file}: " if file else ""
        for f in fields(self):
            value = getattr(self, f.name)
            kind = f.type.split(" ")[0]
            ok = (value is None and "None" in f.type) or {
                "str": isinstance(value, str), "bool": isinstance(value, bool),
                "int": isinstance(value, int) and not isinstance(value, bool),
                "float": isinstance(value, (int, float)) and not isinstance(value, bool)}[kind]
            if not ok:
                raise UserError(f"{where}{f.name} must be {kind}, got {value!r}")
        if not self.task or not self.output:
            raise UserError("a task and --output are required")
        for name in [*AT_LEAST, *ABOVE_ZERO]:
            value = getattr(self, name)
            if value is None:
                continue
            low, high = AT_LEAST.get(name, 0), AT_MOST.get(name, math.inf)
            if not (math.isfinite(value) and (value > 0 if name in ABOVE_ZERO else value >= low) and value <= high):
                bound = ("above 0" if name in ABOVE_ZERO else f"at least {low}") + \
                        (f" and at most {high}" if name in AT_MOST else "")
                raise UserError(f"{where}--{name.replace('_', '-')} must be {bound}, got {value}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise UserError(f"{where}mixed_precision must be auto, no, bf16 or fp16")
        if self.base_dtype not in ("auto", "bf16", "fp32"):
            raise UserError(f"{where}base_dtype must be auto, bf16 or fp32")
        if self.base_dtype == "bf16" and self.method == "full":
            raise UserError("--base-dtype bf16 stores a frozen base in bf16; --method full trains every weight "
                            "(use --mixed-precision bf16 for bf16 compute)")
        # torch.compile cannot trace adapters' checkpoints (they carry its forward context), and with peft's
        # the compiled run trained other weights than the eager one
        if self.compile and self.gradient_checkpointing:
            raise UserError("--compile and --gradient-checkpointing cannot be combined: choose one")
        if self.multi_sampling not in ("proportional", "temperature"):
            raise UserError(f"{where}multi_sampling must be proportional or temperature")
        if self.stack and self.fuse:
            raise UserError("give either --stack or --fuse, not both")
        fused = [p if p.startswith("hub:") else str(Path(p).resolve()) for p in self.intermediates]
        if self.fuse and (len(fused) < 2 or len(set(fused)) < len(fused)):
            raise UserError(f"--fuse {self.fuse}: give two or more different modules (one module: --stack)")
        if self.method == "full" and (self.stack or self.fuse):
            raise UserError("--method full fine-tunes the whole base: there is nothing frozen to stack or fuse on")
        if self.fusion not in modules.FUSIONS:
            raise UserError(f"{where}fusion must be {' or '.join(modules.FUSIONS)}")
        if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)*", self.train_language):
            raise UserError(f"{where}train_language must be a language code such as en, de or pt-BR, "
                            f"got {self.train_language!r}")
        if self.train_language != "en" and not self.data_dir:
            raise UserError(f"{where}train_language {self.train_language}: non-English training data comes from "
                            f"local files; pass --data-dir with them (the task's columns and file names)")
        spec = tasks.get_task(self.task)
        if spec.is_target and self.train_language != "en":
            raise UserError(f"{spec.name} is a target task: it trains on its English data for zero-shot transfer "
                            f"(--train-language en, not {self.train_language})")
        for member in tasks.members(spec):
            if member.format == "span_qa" and self.doc_stride >= (self.max_length or member.max_length):
                raise UserError(f"--doc-stride ({self.doc_stride}) must be smaller than --max-length "
                                f"({self.max_length or member.max_length}) for {member.name}")

    @property
    def intermediates(self) -> list[str]:
        return [p.strip() for p in (self.stack or self.fuse or "").split(",") if p.strip()]

    @property
    def compose(self) -> str:
        return "fuse" if self.fuse else "stack"

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR.get(self.method, 1e-4)

    def precision(self) -> tuple[str, str]:
        """(mixed precision, base dtype) with ``auto`` resolved for this machine."""
        bf16_gpu = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        mixed = self.mixed_precision
        if mixed == "auto":
            mixed = "bf16" if bf16_gpu else "no"
        if mixed == "fp16" and not torch.cuda.is_available():  # accelerate would train in fp32 without a word
            raise UserError("--mixed-precision fp16 needs a CUDA GPU (its loss scaling is CUDA's); on the CPU use "
                            "bf16 or no")
        base = self.base_dtype
        if base == "auto":
            base = "bf16" if mixed == "bf16" and bf16_gpu and self.method != "full" else "fp32"
        if base == "bf16" and mixed != "bf16":
            raise UserError(f"--base-dtype bf16 needs bf16 autocast, but mixed precision is '{mixed}' here; "
                            f"add --mixed-precision bf16 or use --base-dtype fp32")
        return mixed, base

    def method_config(self) -> modules.MethodConfig:
        return modules.MethodConfig(self.method, self.backend, self.reduction_factor, self.lora_r,
                                    self.lora_alpha, self.lora_dropout, self.lora_targets)


# ---------------------------------------------------------------- data

@dataclass
class TaskData:
    spec: tasks.TaskSpec
    head: modules.HeadSpec
    train: list[dict]
    dev_examples: list[dict]
    dev: list[dict]


def prepare_data(cfg: TrainConfig, spec: tasks.TaskSpec, tokenizer, log) -> dict[str, TaskData]:
    out = {}
    for member in tasks.members(spec):
        data_dir = cfg.data_dir
        if data_dir and spec.members:
            data_dir = str(Path(data_dir) / member.name)
        every = load_examples(member, "train", data_dir)
        train_ex = subsample(every, cfg.train_size, cfg.train_fraction, cfg.seed)
        if cfg.train_size and cfg.train_size > len(every):
            log(f"--train-size {cfg.train_size} is more than the {len(every)} training examples of {member.name}: "
                f"all of them train")
        has_dev = any("dev" in s.splits for s in member.sources)
        dev_ex = load_examples(member, "dev", data_dir) if has_dev else []  # TyDiQA: keep the last state
        labels = list(member.labels or [])
        if member.format == "tagging" and not labels:  # tag set read from the data (CCG)
            labels = sorted({t for e in train_ex + dev_ex for t in e["tags"]})
        head = modules.HeadSpec(member.name, member.format, labels, member.num_choices)
        max_length = cfg.max_length or member.max_length
        kw = {"label2id": {n: i for i, n in enumerate(labels)}, "doc_stride": cfg.doc_stride}
        cache = cfg.cache_dir or DEFAULT_CACHE
        train_f = cached_tokenize(cache, {"task": member.name, "split": "train"}, member.format, train_ex,
                                  tokenizer, max_length, train=True, **kw)
        dev_f = cached_tokenize(cache, {"task": member.name, "split": "dev"}, member.format, dev_ex,
                                tokenizer, max_length, train=False, **kw) if dev_ex else []
        log(f"{member.name}: {len(train_ex)} train examples ({len(train_f)} features), {len(dev_ex)} dev")
        out[member.name] = TaskData(member, head, train_f, dev_ex, dev_f)
    return out


def epoch_plan(data: dict[str, TaskData], cfg: TrainConfig, epoch: int) -> list[tuple[str, list[int]]]:
    """The micro-batches of one epoch, a pure function of (seed, epoch): resuming replays it exactly."""
    rng = random.Random(f"{cfg.seed}-{epoch}")
    per_task = {name: length_grouped_batches([feature_length(f) for f in d.train], cfg.batch_size, rng)
                for name, d in data.items()}
    if len(per_task) == 1 or cfg.multi_sampling == "proportional":
        plan = [(name, b) for name, batches in per_task.items() for b in batches]
        if len(per_task) > 1:
            rng.shuffle(plan)
        return plan
    # temperature sampling: task i drawn with p ~ n_i^(1/T), its batches cycled when used up
    names = list(per_task)
    weights = [len(per_task[n]) ** (1 / cfg.multi_temperature) for n in names]
    cursor = dict.fromkeys(names, 0)
    plan = []
    for _ in range(sum(map(len, per_task.values()))):
        name = rng.choices(names, weights)[0]
        batches = per_task[name]
        plan.append((name, batches[cursor[name] % len(batches)]))
        cursor[name] += 1
    return plan


# ---------------------------------------------------------------- the run folder

def partial_dir(output) -> Path:
    """Where a run for ``output`` works until it publishes: ``<output>.partial``."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def prepare_output(cfg: TrainConfig, overwrite: bool, resume: bool, world_size: int = 1) -> tuple[Path, Path]:
    out = Path(cfg.output)
    partial = partial_dir(out)
    if out.exists() and not overwrite:
        if (out / CARD).is_file() and resume:
            raise UserError(f"{out} is already a finished module; nothing to resume (use --overwrite to retrain)")
        raise UserError(f"output {out} already exists; pass --overwrite to replace it")
    if partial.exists() and not resume:
        if not overwrite and (checkpoints(partial) or (partial / CARD).is_file()):  # else it holds no progress
            raise UserError(f"an unfinished run is in {partial}; pass --resume to continue it or --overwrite "
                            f"to start again")
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("cache_dir", "log_steps", *SPEED_SETTINGS)}
    if world_size > 1:  # another world size means other optimizer steps: no resuming across it
        settings["world_size"] = world_size
    run_file = partial / "run.json"
    if resume and run_file.is_file():
        before = json.loads(run_file.read_text())
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            raise UserError(f"--resume: settings differ from the unfinished run in {partial}: "
                            f"{', '.join(changed)}; use the same settings or --overwrite")
    write_json(run_file, settings)
    return out, partial


def resumed(output: str | None, given: dict) -> dict:
    """``given`` (a command's settings, None where not given) filled from the unfinished run in
    ``<output>.partial``: what it was started with (its ``run.json``), so ``--output DIR --resume``
    alone continues it."""
    run = partial_dir(output) / "run.json" if output else None
    if run is None or not run.is_file():
        return given
    started = json.loads(run.read_text())
    return {k: started.get(k) if v is None and k in started else v for k, v in given.items()}


def rng_state(device) -> dict:
    """This process's random state: the CPU's and its GPU's."""
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else []}


def set_rng_state(saved: dict, device) -> None:
    torch.set_rng_state(saved["torch_rng"])
    if saved["cuda_rng"] and device.type == "cuda":
        torch.cuda.set_rng_state(saved["cuda_rng"][0], device)


def save_checkpoint(partial: Path, step: int, params, optimizer, scheduler, state: dict, rng: list[dict],
                    keep: int = 2):
    """``rng``: the random state of every process (one in a single-process run)."""
    root = partial / "checkpoints"
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    from safetensors.torch import save_file

    save_file({n: p.detach().cpu().contiguous() for n, p in params.items()}, str(tmp / "trainable.safetensors"))
    if state.get("best_state") is not None:
        save_file(state["best_state"], str(tmp / "best.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), **rng[0],
                **({"ranks": rng} if len(rng) > 1 else {})}, tmp / "training_state.pt")
    meta = {k: v for k, v in state.items() if k != "best_state"}
    meta["files"] = {p.name: sha256_file(p) for p in tmp.iterdir()}
    write_json(tmp / "state.json", meta)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in checkpoints(partial)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def checkpoints(partial: Path) -> list[Path]:
    """The checkpoint folders of an unfinished run, oldest first."""
    return sorted((partial / "checkpoints").glob("step-*"))


def load_checkpoint(partial: Path):
    """The newest checkpoint: (trainable, best or None, training_state, meta); corrupt ones are refused."""
    from safetensors.torch import load_file

    found = checkpoints(partial)
    if not found:
        return None
    ckpt = found[-1]
    try:
        meta = json.loads((ckpt / "state.json").read_text())
        for name, digest in meta["files"].items():
            if sha256_file(ckpt / name) != digest:
                raise ValueError(f"{name} does not match its checksum")
        trainable = load_file(str(ckpt / "trainable.safetensors"))
        best = load_file(str(ckpt / "best.safetensors")) if "best.safetensors" in meta["files"] else None
        training = torch.load(ckpt / "training_state.pt", weights_only=True)
    except Exception as e:
        raise UserError(f"--resume: checkpoint {ckpt} is corrupt ({e}); delete that folder to resume from an "
                        f"earlier checkpoint, or start again with --overwrite") from None
    return trainable, best, training, meta


# ---------------------------------------------------------------- the loop

def train(cfg: TrainConfig, *, overwrite: bool = False, resume: bool = False, progress: bool = True,
          log=print) -> Path:
    """Train a module as ``cfg`` says and return the finished module folder.

    Under ``accelerate launch``/``torchrun`` with W processes, one optimizer step takes ``grad_accum x W``
    micro-batches of the same plan (process r the r-th, (r+W)-th, ...) and sums the gradients over the
    processes: the same steps as one process with ``grad_accum x W``. Only the main process writes.
    A run that stops before its first checkpoint leaves no ``.partial`` folder: it held no progress."""
    try:
        return _train(cfg, overwrite, resume, progress, log)
    except BaseException:
        partial = partial_dir(cfg.output)
        if os.environ.get("RANK", "0") == "0" and partial.is_dir() and not checkpoints(partial) \
                and not (partial / CARD).is_file():
            shutil.rmtree(partial, ignore_errors=True)
        raise


def _train(cfg: TrainConfig, overwrite: bool, resume: bool, progress: bool, log) -> Path:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from .evaluation import predict, score

    cfg.validate()
    spec = tasks.get_task(cfg.task)
    method = cfg.method_config()
    modules.check(method, len(tasks.members(spec)))
    base_config = basemodel.load_config(cfg.model)
    if method.method != "full":
        basemodel.check_backend(base_config, method.backend)
    tokenizer = basemodel.load_tokenizer(cfg.model)
    inters = [modules.read_module(p) for p in cfg.intermediates]
    modules.check_fits(inters, basemodel.config_hash(base_config), cfg.model, method.backend)
    mixed, base_dtype = cfg.precision()
    if distributed.world_size() > 1:
        distributed.state()  # join the launch's process group
    AcceleratorState._reset_state()  # accelerate keeps one precision per process: each run sets its own
    accelerator = Accelerator(mixed_precision=mixed, cpu=distributed.use_cpu())
    device, world, rank = accelerator.device, accelerator.num_processes, accelerator.process_index
    is_main = accelerator.is_main_process
    if not is_main:
        log, progress = (lambda *_: None), False

    def output() -> tuple:
        out, partial = prepare_output(cfg, overwrite, resume, world)
        finished = resume and (partial / CARD).is_file()
        if finished:  # interrupted while publishing: the module is complete
            shutil.rmtree(partial / "checkpoints", ignore_errors=True)
            replace_dir(partial, out)
            log(f"saved {out} (finished before the interruption)")
        return out, partial, finished

    out, partial, finished = distributed.from_main(output)  # only the main process writes
    if finished:
        return out
    ckpt = load_checkpoint(partial) if resume else None  # refuse a corrupt checkpoint before any work

    torch.manual_seed(cfg.seed)
    data = distributed.main_first(lambda: prepare_data(cfg, spec, tokenizer, log))  # it fills the features cache
    backend = modules.build(cfg.model, spec.name, method, [d.head for d in data.values()], inters, cfg.compose,
                            cfg.fusion)
    if rank:  # the same initial weights everywhere, but each process its own dropout
        torch.manual_seed(cfg.seed + rank)
    params = backend.trainable_parameters()
    n_train, n_fusion = backend.trainable_count(), backend.fusion_parameters()
    log(f"trainable parameters: {n_train:,} ({100 * n_train / backend.base_parameters:.2f}% of the "
        f"{backend.base_parameters:,} {'' if method.method == 'full' else 'frozen '}base parameters)"
        + (f", of which the fusion layers {n_fusion:,}" if n_fusion else ""))
    per_step = cfg.grad_accum * world  # micro-batches per optimizer step, over all processes
    if world > 1:
        log(f"{world} processes: {cfg.batch_size} x {cfg.grad_accum} x {world} = {cfg.batch_size * per_step} "
            f"examples per optimizer step")

    if cfg.gradient_checkpointing:
        backend.gradient_checkpointing()
    if base_dtype == "bf16":
        backend.cast_frozen(torch.bfloat16)  # before the move: the device never holds an fp32 copy
    backend.model.to(device)
    if cfg.compile:
        backend.model.compile()  # in place: parameter names, saving and keep-best are unchanged
    elif device.type == "cuda" and not cfg.gradient_checkpointing:
        log("hint: --compile made XLM-R Large steps 2.8x faster on a GPU, where an eager step waits on the "
            "host's Python (BENCHMARKS.md, 'On a GPU')")
    optimizer = torch.optim.AdamW(decay_groups(backend.model, params, cfg.weight_decay), lr=cfg.learning_rate,
                                  fused=device.type == "cuda")
    if accelerator.scaler is not None:  # fp16: backward scales the loss, so steps go through the scaler (unscale,
        optimizer = accelerator.prepare_optimizer(optimizer, device_placement=False)  # skip overflowing steps)
    steps_per_epoch = math.ceil(len(epoch_plan(data, cfg, 0)) / per_step)
    total = cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)

    state = {"step": 0, "best_metric": None, "best_step": None, "best_state": None, "history": []}
    log_file = partial / "train_log.jsonl"
    if ckpt is not None:
        trainable, best, training, meta = ckpt
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(trainable[n])
        try:
            optimizer.load_state_dict(training["optimizer"])
        except ValueError as e:  # another grouping of the parameters: written by an older adapterxfer
            raise UserError(f"--resume: the checkpoint's optimizer state does not fit this version's ({e}); start "
                            f"again with --overwrite") from None
        scheduler.load_state_dict(training["scheduler"])
        set_rng_state(training["ranks"][rank] if "ranks" in training else training, device)
        state.update({k: meta[k] for k in ("step", "best_metric", "best_step", "history")}, best_state=best)
        if is_main:
            _truncate_log(log_file, state["step"])
        log(f"resuming {partial} from step {state['step']}")
    elif resume and is_main:
        _truncate_log(log_file, 0)

    def evaluate_dev(step):
        results = {}
        if not any(d.dev for d in data.values()):
            return None
        for name, d in data.items():
            outputs = predict(backend, name, d.dev, cfg.eval_batch_size, tokenizer.pad_token_id, device,
                              accelerator.autocast)
            results[name] = score(d.spec.format, d.spec.metric, d.dev_examples, d.dev, outputs,
                                  allow_impossible=d.spec.name == "squad_v2", labels=d.head.labels)
        main = sum(results[n][d.spec.metric_key] for n, d in data.items()) / len(data)
        entry = {"step": step, "epoch": round(step / steps_per_epoch, 3), "dev": results, "dev_main": main}
        state["history"].append(entry)
        _append_log(log_file, entry)
        if state["best_metric"] is None or main > state["best_metric"]:
            state.update(best_metric=main, best_step=step,
                         best_state={n: p.detach().cpu().clone() for n, p in params.items()})
        return main

    plans: dict[int, list] = {}
    bar = tqdm(total=total, initial=state["step"], disable=not progress, desc=f"train {spec.name}", unit="step")
    running, seen, t0 = torch.zeros((), device=device), 0, time.perf_counter()
    logged = state["step"]  # the step of the last loss logged: a resumed run sums its losses from there
    backend.model.train()
    while state["step"] < total:
        epoch, k = divmod(state["step"], steps_per_epoch)
        if epoch not in plans:
            plans = {epoch: epoch_plan(data, cfg, epoch)}
        micro = plans[epoch][k * per_step:(k + 1) * per_step]
        for name, idx in micro[rank::world]:
            batch = to_device(collate([data[name].train[i] for i in idx], tokenizer.pad_token_id), device)
            with accelerator.autocast():
                loss = backend.forward(name, batch).loss / len(micro)
            accelerator.backward(loss)
            running += loss.detach()
            seen += len(idx)
        distributed.sum_gradients(list(params.values()))
        if cfg.max_grad_norm:
            accelerator.clip_grad_norm_(list(params.values()), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        step = state["step"]
        bar.update(1)
        if step % cfg.log_steps == 0 or step == total:
            n, logged = step - logged, step
            elapsed = time.perf_counter() - t0
            loss_sum, seen_sum = distributed.total(torch.stack([running, torch.tensor(float(seen), device=device)]))
            entry = {"step": step, "epoch": round(step / steps_per_epoch, 3), "loss": loss_sum.item() / n,
                     "lr": scheduler.get_last_lr()[0], "examples_per_s": round(seen_sum.item() / elapsed, 2),
                     "seconds": round(elapsed, 3)}
            if not math.isfinite(entry["loss"]) and accelerator.scaler is None:  # fp16's scaler skips such steps
                raise UserError(f"the training loss is {entry['loss']} at step {step}: training diverged; start "
                                f"again with a lower --lr (--overwrite)")
            if is_main:
                _append_log(log_file, entry)
            bar.set_postfix(loss=f"{entry['loss']:.4f}", ex_s=f"{entry['examples_per_s']:.1f}")
            running, seen, t0 = torch.zeros((), device=device), 0, time.perf_counter()
        if is_main and ((cfg.eval_steps and step % cfg.eval_steps == 0) or
                     (not cfg.eval_steps and step % steps_per_epoch == 0) or step == total):
            # the other processes wait for it at the next step's gradient sum
            if (not state["history"] or state["history"][-1]["step"] != step) and evaluate_dev(step) is not None:
                bar.write(f"step {step}: dev {state['history'][-1]['dev_main']:.4f} (best "
                          f"{state['best_metric']:.4f} at step {state['best_step']})")
        if cfg.save_steps and step % cfg.save_steps == 0 and step < total:
            rng = gather_object([rng_state(device)])
            if is_main:
                save_checkpoint(partial, step, params, optimizer, scheduler, state, rng)
    bar.close()

    if is_main:
        if state["best_state"] is not None:
            with torch.no_grad():  # keep-best: the module published is the best dev state
                for n, p in params.items():
                    p.copy_(state["best_state"][n].to(p.device))
            best = next(h for h in state["history"] if h["step"] == state["best_step"])
        else:  # no dev set: the last state
            best = {"step": state["step"], "dev": {}}
        backend.save(partial)
        write_json(partial / CARD, module_card(cfg, spec, method, base_config, backend, data, best, partial, inters,
                                               world))
        shutil.rmtree(partial / "checkpoints", ignore_errors=True)
        replace_dir(partial, out)
        log(f"saved {out} " + (f"(best dev {state['best_metric']:.4f} at step {state['best_step']})"
                               if state["best_metric"] is not None else "(no dev set: the last state)"))
    accelerator.wait_for_everyone()  # the others return once the module is published
    return out


def decay_groups(model: torch.nn.Module, params: dict[str, torch.nn.Parameter], weight_decay: float) -> list[dict]:
    """AdamW's parameter groups as Hugging Face's Trainer makes them: biases and layer-norm weights without
    weight decay, every other trainable weight (adapter, LoRA, head, fusion) with ``weight_decay``."""
    norms = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters(recurse=False)}
    exempt = {n for n, p in params.items() if n.endswith("bias") or id(p) in norms}
    return [{"params": [p for n, p in params.items() if n not in exempt], "weight_decay": weight_decay},
            {"params": [p for n, p in params.items() if n in exempt], "weight_decay": 0.0}]


def to_device(batch: dict, device: torch.device) -> dict:
    """A batch on ``device``; to a GPU from pinned memory without waiting, so that the next batch is collated
    while the GPU computes (collation is cheap: no loader workers are needed)."""
    if device.type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


def module_card(cfg, spec, method, base_config, backend, data, best, folder: Path, inters=(),
                world_size: int = 1) -> dict:
    """The ``adapterxfer.json`` beside the module: what it is, how it was made, checksums."""
    import accelerate
    import adapters
    import datasets
    import peft
    import transformers

    weights = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in ("train_log.jsonl", "run.json")
                     and p.relative_to(folder).parts[0] != "checkpoints")
    return {
        "adapterxfer_version": __version__,
        "kind": "target" if spec.is_target else "intermediate",
        "task": spec.name,
        "composition": {"compose": cfg.compose if inters else "none",
                        "intermediates": [m.reference() for m in inters]},
        "members": [m for m in data] if spec.members else [],
        "base_model": {"id": cfg.model, "model_type": base_config.model_type,
                       "config_sha256": basemodel.config_hash(base_config)},
        "method": method.describe(),
        "heads": {n: {"format": d.head.format, "labels": d.head.labels, "num_choices": d.head.num_choices}
                  for n, d in data.items()},
        "hyperparameters": {k: v for k, v in asdict(cfg).items()
                            if k not in ("task", "output", "model", "data_dir", "cache_dir", "method", "backend",
                                         "stack", "fuse", "train_language")
                            and not k.startswith(("lora_", "reduction"))}
        | {"lr": cfg.learning_rate, "world_size": world_size}
        | dict(zip(("mixed_precision", "base_dtype"), cfg.precision())),  # as run: "auto" resolved
        **({"task_file": spec.task_file} if spec.origin else {}),
        "training_data": cfg.data_dir or "huggingface",
        "training_language": cfg.train_language,
        "dev_metrics": best["dev"],
        "best_step": best["step"],
        "trainable_parameters": backend.trainable_count(),
        "fusion_parameters": backend.fusion_parameters(),
        "base_parameters": backend.base_parameters,
        "library_versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                             "adapters": adapters.__version__, "peft": peft.__version__,
                             "datasets": datasets.__version__, "accelerate": accelerate.__version__},
        "files": {str(p.relative_to(folder)): sha256_file(p) for p in weights},
    }


def _append_log(path: Path, entry: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from (the interrupted tail)."""
    if not path.is_file():
        return
    lines = [l for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    kept = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            pass  # a line cut by the interruption
    with atomic_path(path) as tmp:
        tmp.write_text("".join(l + "\n" for l in kept), encoding="utf-8")
