"""Host time of a training step: what a GPU cannot hide when the batch is small.

    python benchmarks/host_overhead.py --size large                  # CPU kernels: a proxy
    python benchmarks/host_overhead.py --size large --device cuda    # the host time of a CUDA step

Builds an encoder with the depth and heads of ``--size`` but tiny widths (hidden 4 per head), so that
a step on 1 x 4 tokens is almost all Python, dispatch and autograd bookkeeping: the same number of
operations as the real model, next to no arithmetic. One thread, bf16 autocast as on a GPU, the
median over ``--steps`` after warm-up (compilation happens there). A step of the real model cannot
take less host time than this, so on a GPU it bounds model FLOP utilisation from above: ``mfu
ceiling`` = the real model's FLOPs at ``--batch`` x ``--seq`` (``common.step_flops``, the module's own
left out) / host time / ``--peak-tflops`` (default: an H100 SXM's dense bf16 989.4). Where MFU
reaches the ceiling, the host, not the GPU, limits the step. On a CPU this times CPU kernels, a
proxy; ``--device cuda`` times the real launches.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SIZES, device, machine, model_dir, step_flops, table  # noqa: E402
from train_step import build, method_list  # noqa: E402


def host_ms(method: str, base: Path, steps: int, warmup: int, device: str) -> tuple[float, float]:
    """Median host milliseconds of a whole step and of its forward alone (until the loss is returned)."""
    torch.manual_seed(0)
    model, loss_fn, _, _ = build(method, base, Path(tempfile.mkdtemp()))
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = {"input_ids": torch.randint(5, 100, (1, 4)), "attention_mask": torch.ones(1, 4, dtype=torch.long),
             "labels": torch.tensor([1])}
    batch = {k: v.to(device) for k, v in batch.items()}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times, forwards = [], []
    for n in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16):  # as training runs on a GPU
            loss = loss_fn(batch)
        forward = time.perf_counter()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        if n >= warmup:
            times.append(time.perf_counter() - start)
            forwards.append(forward - start)
    return 1e3 * statistics.median(times), 1e3 * statistics.median(forwards)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=tuple(SIZES), default="large")
    parser.add_argument("--methods", type=method_list,
                        default="seq_bn,seq_bn+bf16base,seq_bn+bf16base+compile,lora_peft+bf16base")
    parser.add_argument("--device", type=device, default="cpu",
                        help="cuda: the host time of CUDA launches themselves (the GPU idles at this size)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32, help="the real batch, for the MFU ceiling")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--peak-tflops", type=float, default=989.4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    base = model_dir(args.size, small_vocab=True, narrow=True)
    rows = []
    for method in args.methods:
        ms, forward_ms = host_ms(method, base, args.steps, args.warmup, args.device)
        flops = step_flops(args.size, args.batch, args.seq, 0, frozen_base=not method.startswith("full"))
        rows.append({"method": method, "host ms/step": f"{ms:.1f}", "of it forward": f"{forward_ms:.1f}",
                     "model TFLOP": f"{flops / 1e12:.2f}",
                     "mfu ceiling": f"{100 * flops / (ms / 1e3) / (args.peak_tflops * 1e12):.0f}%"})
        print(rows[-1], flush=True)  # as each finishes: a run cut short keeps what it measured
    print(f"host_overhead: XLM-R {args.size} depth at tiny widths, 1 x 4 tokens, one thread, {args.device} "
          f"({machine()}), median of {args.steps} steps after {args.warmup}; "
          f"MFU ceiling of the real model at {args.batch} x {args.seq} and {args.peak_tflops:g} TFLOP/s")
    print(table(rows, ["method", "host ms/step", "of it forward", "model TFLOP", "mfu ceiling"]))


if __name__ == "__main__":
    main()
