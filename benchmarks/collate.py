"""Host-side cost of one training batch: collation (padding to the longest row) and, on a GPU, the
pinned copy, which the training loop does in its own thread between steps instead of in loader workers.

    python benchmarks/collate.py --batch 32 --seq 128

Rows have random lengths up to ``--seq`` (uniform from a quarter of it); the median over ``--repeat``
batches after a warm-up. Compare with a step's time in train_step.py: while it is far below, the
GPU does not wait for its next batch (copies are non-blocking).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device, machine  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--device", type=device, default="cpu")
    args = parser.parse_args(argv)

    from adapterxfer.features import collate
    from adapterxfer.training import to_device

    rng = random.Random(0)
    feats = [{"input_ids": [0] + [rng.randrange(5, 250000) for _ in range(rng.randint(args.seq // 4, args.seq - 2))]
              + [2], "labels": rng.randrange(3)} for _ in range(args.batch)]
    target = torch.device(args.device)
    timings = {"collate": [], "collate + copy": []}
    for n in range(args.repeat + 20):
        start = time.perf_counter()
        batch = collate(feats, 1)
        middle = time.perf_counter()
        to_device(batch, target)  # the copy is issued, not waited for: the loop goes on meanwhile
        end = time.perf_counter()
        if n >= 20:
            timings["collate"].append(middle - start)
            timings["collate + copy"].append(end - start)
    print(f"collate: batch {args.batch}, rows up to {args.seq} tokens, {args.device} ({machine()}), "
          f"median of {args.repeat}")
    for name, values in timings.items():
        print(f"{name:15s} {1e3 * statistics.median(values):.3f} ms per batch")


if __name__ == "__main__":
    main()
