"""Shared pieces of the benchmarks: XLM-R shapes, a random model folder, timing, peak memory."""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

#: XLM-R architecture shapes (hidden, layers, heads, FFN); vocab 250002 unless --small-vocab.
SIZES = {"tiny": (64, 4, 4, 128), "base": (768, 12, 12, 3072), "large": (1024, 24, 16, 4096)}


def device(name: str) -> str:
    """``--device``: cpu, or cuda where this machine sees a CUDA GPU (refused here otherwise, not a traceback)."""
    if name not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{name!r}: cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("cuda: no CUDA GPU is visible here")
    return name


def model_arguments(doc: str, batch: int, seq: int | None = None,
                    seq_help: str | None = None) -> argparse.ArgumentParser:
    """A parser with the options every model benchmark takes: ``--size`` (one of SIZES), ``--device``,
    ``--batch``, ``--seq`` (where ``seq`` gives its default) and ``--small-vocab``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=tuple(SIZES), default="tiny")
    parser.add_argument("--device", type=device, default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=batch)
    if seq is not None:
        parser.add_argument("--seq", type=int, default=seq, help=seq_help)
    parser.add_argument("--small-vocab", action="store_true", help="the synthetic 10k vocabulary, not 250k")
    return parser


def model_dir(size: str, small_vocab: bool, root: str | None = None, narrow: bool = False) -> Path:
    """A randomly initialised XLM-R of ``size`` with the tiny synthetic tokenizer, saved once and reused.

    ``narrow``: ``size``'s layers and heads at hidden 4 per head (the same operations, next to no arithmetic).
    """
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from adapterxfer import synthetic

    kind = "narrow" if narrow else "small" if small_vocab else "full"
    root = Path(root or tempfile.gettempdir()) / f"adapterxfer-bench-{size}-{kind}"
    if (root / "config.json").is_file():
        return root
    hidden, layers, heads, ffn = SIZES[size]
    if narrow:
        hidden, ffn = 4 * heads, 16 * heads
    tokenizer = synthetic.build_tokenizer()
    vocab = len(tokenizer) if small_vocab or narrow else 250002
    config = XLMRobertaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                              num_attention_heads=heads, intermediate_size=ffn, max_position_embeddings=514,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2)
    tmp = Path(tempfile.mkdtemp(dir=root.parent))
    XLMRobertaModel(config).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, root)
    return root


def median_time(fn, steps: int, warmup: int, sync) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reset_peak_memory(device: str) -> None:
    """Start the peak-memory count afresh (CUDA's counter; on Linux, the process's peak RSS)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def peak_memory_bytes(device: str) -> int:
    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run_isolated(script: str, args: list[str]) -> dict:
    """Run one measurement in a fresh process (so peak memory is its own) and read its JSON line."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"cpu ({os.cpu_count()} cores)"


#: Dense bf16 tensor-core peaks in TFLOP/s (no sparsity), from NVIDIA's data sheets; the first name
#: contained in the device name wins, so the specific ones come first.
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200": 989.4, "GH200": 989.4,
                    "B200": 2250.0, "A100": 312.0, "L40S": 362.1, "A6000": 154.8, "L4": 121.0, "A10": 125.0}


def peak_tflops(device: str, given: float | None = None) -> float | None:
    """The device's dense bf16 peak: ``given`` (``--peak-tflops``) or looked up by GPU name; None on a CPU."""
    if given or device != "cuda":
        return given
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def step_flops(size: str, batch: int, seq: int, trainable: int, frozen_base: bool) -> float:
    """Model FLOPs of one training step of an XLM-R ``size`` encoder on ``batch x seq`` tokens.

    Per token and layer the forward takes 2 FLOPs per weight of the 12 h^2 matrix weights and
    4 s h in attention (scores and the weighted sum). Full fine-tuning's backward takes twice the
    forward (gradients of activations and of weights: 6N, as PaLM's MFU). A frozen base needs only
    activation gradients: 2 FLOPs per frozen weight, but twice the attention forward, since both
    operands of its products are activations; trainable weights count 6 each (negligible).
    Recomputation under gradient checkpointing is not model FLOPs and is not counted; the embedding
    lookup costs none.
    """
    hidden, layers, _, ffn = SIZES[size]
    matrix = layers * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = layers * 4 * seq * hidden
    per_token = 6 * matrix + 3 * attention if not frozen_base else 4 * matrix + 3 * attention + 6 * trainable
    return batch * seq * per_token
