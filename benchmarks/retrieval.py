"""BUCC-scale margin scoring on synthetic embeddings: time and peak memory of chunked mining.

    python benchmarks/retrieval.py --n 20000                    # CPU
    python benchmarks/retrieval.py --n 400000 --device cuda     # BUCC scale (a few hundred thousand per side)

Memory stays bounded by the chunk size (chunk x N similarities at a time), never a full N x N matrix:
the table shows the peak next to what one N x N float32 matrix would take.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_memory_bytes, table  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="sentences per side")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--chunks", default="1024,4096")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)

    from adapterxfer.retrieval import mine_candidates

    g = torch.Generator().manual_seed(0)
    src = torch.randn(args.n, args.dim, generator=g)
    tgt = src + 0.5 * torch.randn(args.n, args.dim, generator=g)  # noisy translations: i pairs with i
    src, tgt = src.to(args.device), tgt.to(args.device)
    base = peak_memory_bytes(args.device)
    rows = []
    for chunk in map(int, args.chunks.split(",")):
        start = time.perf_counter()
        candidates = mine_candidates(src, tgt, k=4, chunk_size=chunk)
        seconds = time.perf_counter() - start
        right = sum(1 for (i, j) in candidates if i == j)
        rows.append({"chunk": chunk, "seconds": round(seconds, 2), "pairs_s": round(args.n / seconds, 1),
                     "peak_gb": round(peak_memory_bytes(args.device) / 1e9, 3),
                     "candidates": len(candidates), "correct": right})
    full = args.n * args.n * 4 / 1e9
    print(f"retrieval: margin mining (ratio margin, k=4), {args.n} x {args.n} sentences of dim {args.dim}, "
          f"{args.device} ({machine()}); inputs {2 * args.n * args.dim * 4 / 1e9:.2f} GB, "
          f"before mining {base / 1e9:.2f} GB peak; a full N x N float32 matrix would be {full:.1f} GB")
    print(table(rows, ["chunk", "seconds", "pairs_s", "peak_gb", "candidates", "correct"]))


if __name__ == "__main__":
    main()
