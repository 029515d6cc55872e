"""Training-step cost of full fine-tuning (the study's setting) against frozen-base modules.

    python benchmarks/train_step.py --size large --batch 8 --seq 128          # CPU, XLM-R Large shape
    python benchmarks/train_step.py --size base --device cuda --batch 32

Each method runs in its own process (so peak memory is its own): median step time over --steps after
--warmup, examples/s, peak memory (CUDA max allocated, or peak RSS), trainable parameters, optimizer
state, saved module size, and ratios against full fine-tuning and against two forward passes of the
same batch (a frozen-base step needs one forward and one activation-gradient pass).

Variants add options to a method: ``+ckpt`` gradient checkpointing, ``+bf16base`` the frozen base weights
in bf16 under bf16 autocast (on the CPU too), ``+compile`` torch.compile (inductor) as ``--compile`` does,
``+cudagraphs`` inductor with CUDA graphs (``mode="reduce-overhead"``, not a training option yet), e.g. ``--methods full,seq_bn,seq_bn+ckpt,seq_bn+bf16base,seq_bn+bf16base+compile``.
Peak memory is counted from after the model is built (and cast), so it is the training's own.

Model FLOP utilisation (``mfu``) is the step's model FLOPs (``common.step_flops``: 6 per weight and token
for full fine-tuning, 4 for a frozen base) per second over the device's dense bf16 peak, looked up by
GPU name or given with ``--peak-tflops``; ``tflops`` is the achieved rate either way.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (machine, median_time, model_arguments, model_dir, peak_memory_bytes, peak_tflops,  # noqa: E402
                    reset_peak_memory, run_isolated, step_flops, table)

METHODS = ("full", "seq_bn", "lora", "lora_peft", "stack", "fusion_dynamic", "fusion_light")
VARIANTS = ("ckpt", "bf16base", "compile", "cudagraphs")


def make_intermediate(base: Path, folder: Path, name: str) -> Path:
    """A finished seq_bn module folder with its card, as train-intermediate writes it (weights untrained)."""
    from adapterxfer import basemodel, modules
    from adapterxfer.fileio import sha256_file, write_json

    backend = modules.build(str(base), name, modules.MethodConfig(), [modules.HeadSpec(name, "classification", ["a", "b"])])
    out = folder / name
    backend.save(out)
    config = basemodel.load_config(str(base))
    write_json(out / "adapterxfer.json", {
        "task": name, "kind": "intermediate", "method": modules.MethodConfig().describe(),
        "base_model": {"id": str(base), "config_sha256": basemodel.config_hash(config)},
        "files": {p.name: sha256_file(p) for p in out.iterdir()}})
    return out


def method_list(text: str) -> list[str]:
    """``--methods``: comma-separated METHODS, each with optional ``+variant`` parts (VARIANTS)."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    for name in names:
        method, *variants = name.split("+")
        if method not in METHODS or set(variants) - set(VARIANTS):
            raise argparse.ArgumentTypeError(f"{name!r}: methods are {', '.join(METHODS)}, each with optional "
                                             f"+variants ({', '.join(VARIANTS)})")
    if not names:
        raise argparse.ArgumentTypeError("give one or more methods")
    return names


def build(name: str, base: Path, work: Path):
    """(model, loss function, save function, fusion parameters) of a method with its ``+variants``."""
    import torch

    from adapterxfer import modules

    method, *variants = name.split("+")
    if set(variants) - set(VARIANTS):
        raise SystemExit(f"unknown variant in {name} (variants: {', '.join(VARIANTS)})")
    head = [modules.HeadSpec("task", "classification", ["a", "b", "c"])]
    if method == "full":
        if "bf16base" in variants:
            raise SystemExit("full fine-tuning has no frozen base to store in bf16")
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=3)
        if "ckpt" in variants:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return compiled(model, variants), lambda batch: model(**batch).loss, lambda d: model.save_pretrained(d), 0
    if method in ("seq_bn", "lora", "lora_peft"):
        config = modules.MethodConfig(method="lora" if method.startswith("lora") else "seq_bn",
                                      backend="peft" if method == "lora_peft" else "adapters")
        backend = modules.build(str(base), "task", config, head)
    else:
        inters = [modules.read_module(make_intermediate(base, work, n)) for n in ("inter_a", "inter_b")]
        kw = {}
        if method.startswith("fusion"):
            import inspect
            if "fusion" in inspect.signature(modules.build).parameters:
                kw["fusion"] = method.split("_")[1]
            elif method == "fusion_light":
                raise SystemExit(json.dumps({"method": method, "skipped": "light fusion not available"}))
        backend = modules.build(str(base), "task", modules.MethodConfig(), head,
                                inters[:1] if method == "stack" else inters,
                                "stack" if method == "stack" else "fuse", **kw)
    if "ckpt" in variants:
        backend.gradient_checkpointing()
    if "bf16base" in variants:
        backend.cast_frozen(torch.bfloat16)
    return (compiled(backend.model, variants), lambda batch: backend.forward("task", batch).loss, backend.save,
            backend.fusion_parameters())


def compiled(model, variants: list[str]):
    """``model``, compiled in place for ``+compile`` (as training's --compile) or ``+cudagraphs`` (inductor with
    CUDA graphs: fewer kernel launches at a fixed shape)."""
    if "compile" in variants:
        model.compile()
    elif "cudagraphs" in variants:
        model.compile(mode="reduce-overhead")
    return model


def measure(args) -> dict:
    torch.manual_seed(0)
    device = args.device
    base = model_dir(args.size, args.small_vocab)
    work = Path(tempfile.mkdtemp())
    model, loss_fn, save, fusion = build(args.one, base, work)
    model.to(device).train()
    reset_peak_memory(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=device == "cuda")
    vocab = model.config.vocab_size
    batch = {"input_ids": torch.randint(5, vocab, (args.batch, args.seq), device=device),
             "attention_mask": torch.ones(args.batch, args.seq, dtype=torch.long, device=device),
             "labels": torch.randint(0, 3, (args.batch,), device=device)}
    bf16 = device == "cuda" or "bf16base" in args.one
    autocast = (lambda: torch.autocast(device, dtype=torch.bfloat16)) if bf16 else nullcontext
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step():
        with autocast():
            loss = loss_fn(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def forward():
        with torch.no_grad(), autocast():
            loss_fn(batch)

    step_s = median_time(step, args.steps, args.warmup, sync)
    peak = peak_memory_bytes(device)
    forward_s = median_time(forward, args.steps, 1, sync)
    state_bytes = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
                      if torch.is_tensor(t))
    save(str(work / "saved"))
    saved = sum(p.stat().st_size for p in (work / "saved").rglob("*") if p.is_file())
    shutil.rmtree(work, ignore_errors=True)
    trainable = sum(p.numel() for p in params)
    tflops = step_flops(args.size, args.batch, args.seq, trainable, not args.one.startswith("full")) / step_s / 1e12
    peak_rate = peak_tflops(device, args.peak_tflops)
    return {"tflops": round(tflops, 2), "mfu": f"{100 * tflops / peak_rate:.1f}%" if peak_rate else "",
            "method": args.one, "step_s": round(step_s, 4), "examples_s": round(args.batch / step_s, 2),
            "peak_gb": round(peak / 1e9, 3), "x_2fwd": round(step_s / (2 * forward_s), 3),
            "trainable": trainable, "fusion": fusion, "optim_mb": round(state_bytes / 1e6, 2),
            "saved_mb": round(saved / 1e6, 2)}


def main(argv=None):
    parser = model_arguments(__doc__, batch=8, seq=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--methods", type=method_list, default=",".join(METHODS))
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, for MFU (default: "
                        "looked up by GPU name)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args)))
        return
    model_dir(args.size, args.small_vocab)  # build once, outside the timed processes
    peak_rate = peak_tflops(args.device, args.peak_tflops)
    print(f"train_step: XLM-R {args.size} shape, batch {args.batch} x {args.seq}, {args.device} ({machine()}), "
          f"vocab {'small' if args.small_vocab else '250k'}, median of {args.steps} steps after {args.warmup}"
          + (f"; MFU against a dense bf16 peak of {peak_rate:g} TFLOP/s" if peak_rate else ""))
    rows = []
    for method in args.methods:
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                 if k not in ("one", "methods", "small_vocab") and v is not None]
        try:
            row = run_isolated(__file__, flags + ["--small-vocab"] * args.small_vocab + ["--one", method])
        except RuntimeError as e:
            row = {"method": method, "skipped": str(e).strip().splitlines()[-1][:80]}
        rows.append(row)
        print(json.dumps(row), flush=True)  # as each finishes: a run cut short keeps what it measured
    full = next((r for r in rows if r["method"] == "full" and "step_s" in r), None)
    for r in rows:
        if full and "step_s" in r:
            r["x_full_time"] = round(r["step_s"] / full["step_s"], 3)
            r["x_full_mem"] = round(r["peak_gb"] / full["peak_gb"], 3)
            r["x_full_size"] = round(r["saved_mb"] / full["saved_mb"], 4)
            r["share"] = f"{100 * r['trainable'] / full['trainable']:.2f}%"
    print(table(rows, ["method", "step_s", "examples_s", "tflops", "mfu", "peak_gb", "x_2fwd", "x_full_time", "x_full_mem",
                       "trainable", "share", "fusion", "optim_mb", "saved_mb", "x_full_size", "skipped"]))


if __name__ == "__main__":
    main()
