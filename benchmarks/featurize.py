"""Data preparation at MNLI's size: reading the training file, tokenising it into features and writing
them to the features cache (a grid's first cell on the data), against reading them back from the cache
(every later cell on the same data, and reruns).

    python benchmarks/featurize.py --examples 393000

Synthetic MNLI-like pairs in the local file layout (``train.jsonl``), the synthetic tokenizer of the
tests (XLM-R's own sentencepiece tokenizer cannot be downloaded here). Each phase runs in a fresh
process, so its peak RSS is its own: ``read`` only reads the file, ``featurise`` reads and tokenises
into an empty cache, ``cached`` reads and finds the features in that cache.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_memory_bytes, run_isolated, table  # noqa: E402

PHASES = ("read", "featurise", "cached")


def write_data(folder: Path, n: int) -> None:
    """``n`` distinct MNLI-like rows (2,000 generated ones, each repeated with a numbered premise)."""
    from adapterxfer import synthetic

    base = synthetic.nli_rows(random.Random(0), 2000, "train", facts=(2, 4))
    with open(folder / "train.jsonl", "w") as f:
        for i in range(n):
            row = dict(base[i % len(base)], idx=i)
            row["premise"] += f" {i // len(base)}"
            f.write(json.dumps(row) + "\n")


def phase(name: str, data: Path, cache: Path, max_length: int) -> dict:
    from adapterxfer import synthetic
    from adapterxfer.data import load_examples
    from adapterxfer.features import cached_tokenize
    from adapterxfer.tasks import get_task

    tokenizer = synthetic.build_tokenizer()
    start = time.perf_counter()
    examples = load_examples(get_task("mnli"), "train", data)
    read = time.perf_counter() - start
    n = 0
    if name != "read":
        feats = cached_tokenize(cache, {"task": "mnli", "split": "train"}, "classification",
                                examples, tokenizer, max_length, train=True, label2id=None)
        n = len(feats)
    return {"phase": name, "read s": round(read, 2), "features s": round(time.perf_counter() - start - read, 2),
            "features": n, "peak RSS GB": round(peak_memory_bytes("cpu") / 1e9, 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=393000)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error("--examples: at least 1")
    if args.phase:  # one measurement, in its own process
        print(json.dumps(phase(args.phase, args.dir / "mnli", args.dir / "cache", args.max_length)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "mnli").mkdir()
        write_data(tmp / "mnli", args.examples)
        rows = [run_isolated(__file__, ["--phase", p, "--dir", str(tmp), "--max-length", str(args.max_length)])
                for p in PHASES]
        cache_bytes = sum(f.stat().st_size for f in (tmp / "cache").rglob("*") if f.is_file())
    print(f"featurize: {args.examples} MNLI-like pairs, max length {args.max_length}, {machine()}")
    print(table(rows, ["phase", "read s", "features s", "features", "peak RSS GB"]))
    cold, warm = rows[1]["features s"], rows[2]["features s"]
    print(f"features cache on disk: {cache_bytes / 1e6:.1f} MB; from the cache: {warm / cold:.2f}x the time of "
          f"featurising ({cold / warm:.1f}x faster)")


if __name__ == "__main__":
    main()
