"""BUCC-scale margin scoring on synthetic embeddings: time and peak memory of chunked mining.

    python benchmarks/retrieval.py --n 20000                    # CPU
    python benchmarks/retrieval.py --n 400000 --device cuda     # BUCC scale (a few hundred thousand per side)

Memory stays bounded by the chunk size (chunk x N similarities at a time), never a full N x N matrix:
the table shows the peak next to what one N x N float32 matrix would take. With faiss installed
(``pip install faiss-cpu``), ``--faiss`` also times its exact inner-product index (``IndexFlatIP``) on
the same k-NN searches, both directions, against ours.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device, machine, peak_memory_bytes, reset_peak_memory, table  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="sentences per side")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--chunks", default="1024,4096")
    parser.add_argument("--device", type=device, default="cpu")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per chunk size (median)")
    parser.add_argument("--faiss", action="store_true", help="also time faiss's exact k-NN (CPU)")
    args = parser.parse_args(argv)

    from adapterxfer.retrieval import mine_candidates

    g = torch.Generator().manual_seed(0)
    src = torch.randn(args.n, args.dim, generator=g)
    tgt = src + 0.5 * torch.randn(args.n, args.dim, generator=g)  # noisy translations: i pairs with i
    src, tgt = src.to(args.device), tgt.to(args.device)
    base = peak_memory_bytes(args.device)
    mine_candidates(src[:2048], tgt[:2048], k=4, chunk_size=512)  # warm-up (on a GPU: library set-up)
    rows = []
    for chunk in map(int, args.chunks.split(",")):
        reset_peak_memory(args.device)  # each chunk size its own peak
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            candidates = mine_candidates(src, tgt, k=4, chunk_size=chunk)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        right = sum(1 for (i, j) in candidates if i == j)
        rows.append({"chunk": chunk, "seconds": round(seconds, 2), "sentences_s": round(args.n / seconds, 1),
                     "peak_gb": round(peak_memory_bytes(args.device) / 1e9, 3),
                     "candidates": len(candidates), "correct": right})
    full = args.n * args.n * 4 / 1e9
    print(f"retrieval: margin mining (ratio margin, k=4), {args.n} x {args.n} sentences of dim {args.dim}, "
          f"{args.device} ({machine()}), median of {args.repeat} run(s) per chunk size; inputs {2 * args.n * args.dim * 4 / 1e9:.2f} GB, "
          f"before mining {base / 1e9:.2f} GB peak; a full N x N float32 matrix would be {full:.1f} GB")
    print(table(rows, ["chunk", "seconds", "sentences_s", "peak_gb", "candidates", "correct"]))
    if args.faiss:
        print(compare_faiss(src.cpu(), tgt.cpu(), chunk=int(args.chunks.split(",")[0])))


def compare_faiss(src, tgt, chunk: int, k: int = 4) -> str:
    """Seconds of the k-NN searches of margin mining (both directions): ours against faiss's exact index."""
    import faiss

    from adapterxfer.retrieval import _knn, _pair

    x, y = _pair(src, tgt)
    start = time.perf_counter()
    ours = [_knn(x, y, k, chunk)[1], _knn(y, x, k, chunk)[1]]
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs = []
    for a, b in ((x, y), (y, x)):
        index = faiss.IndexFlatIP(b.shape[1])
        index.add(b.numpy())
        theirs.append(torch.from_numpy(index.search(a.numpy(), k)[1]))
    faiss_s = time.perf_counter() - start
    agree = sum(int((o == t).all(1).sum()) for o, t in zip(ours, theirs)) / (2 * len(x))
    return table([{"k-NN (both directions)": "ours (chunked matmul + top-k)", "seconds": round(ours_s, 2)},
                  {"k-NN (both directions)": f"faiss {faiss.__version__} IndexFlatIP", "seconds": round(faiss_s, 2),
                   "ours / faiss": round(ours_s / faiss_s, 2), "same neighbours": f"{100 * agree:.2f}%"}],
                 ["k-NN (both directions)", "seconds", "ours / faiss", "same neighbours"])


if __name__ == "__main__":
    main()
