"""Evaluation throughput: our path (length-sorted batches, dynamic padding, inference mode) against a
plain loop that pads every batch to the maximum length in file order.

Our path runs twice: with ``--batch`` rows per batch (the CPU default) and packed (the GPU default:
batches of short rows filled up to the first batch's padded tokens, fewer forward passes).

    python benchmarks/evaluate.py --size base --examples 2000
    python benchmarks/evaluate.py --size large --device cuda --examples 20000

The inputs mix realistic lengths: XNLI-like sentence pairs, PAN-X-like sentences and QA contexts
(lengths drawn from the ranges in LENGTHS). Tokens/s counts real (non-padding) tokens only. Both paths
first run once on a few batches (warm-up: on a GPU, library and kernel set-up), then the median of
``--repeat`` timed passes over all inputs.
"""
from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, model_arguments, model_dir, table  # noqa: E402

#: (share of the examples, min tokens, max tokens, padded length of the plain loop)
LENGTHS = {"xnli_pairs": (0.4, 20, 80, 128), "panx_sentences": (0.4, 8, 40, 128), "qa_contexts": (0.2, 120, 384, 384)}


def features(n: int, vocab: int, seed: int = 0) -> list[tuple[str, list[int]]]:
    """``n`` inputs of the mix (the last kind takes what rounding left)."""
    rng = random.Random(seed)
    out = []
    counts = [round(n * share) for share, *_ in LENGTHS.values()][:-1]
    for (kind, (_, low, high, _)), count in zip(LENGTHS.items(), counts + [n - sum(counts)]):
        for _ in range(count):
            out.append((kind, [0] + [rng.randrange(5, vocab) for _ in range(rng.randint(low, high) - 2)] + [2]))
    rng.shuffle(out)
    return out


def main(argv=None):
    parser = model_arguments(__doc__, batch=32)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1, help="timed passes per path (median)")
    args = parser.parse_args(argv)
    if args.examples < 2 * len(LENGTHS):
        parser.error(f"--examples must be at least {2 * len(LENGTHS)} (each kind of input of the mix at least once)")

    from adapterxfer import modules
    from adapterxfer.evaluation import inference_autocast, predict

    base = model_dir(args.size, args.small_vocab)
    backend = modules.build(str(base), "task", modules.MethodConfig(),
                            [modules.HeadSpec("task", "tagging", [str(i) for i in range(7)])])
    backend.model.to(args.device).eval()
    feats = features(args.examples, backend.model.config.vocab_size)
    real_tokens = sum(len(ids) for _, ids in feats)
    autocast = inference_autocast(args.device)  # as evaluate runs: bf16 (fp16 on older GPUs), none on a CPU
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    def ours(feats=feats, pack=False):
        predict(backend, "task", [{"input_ids": ids} for _, ids in feats], args.batch, 1, args.device, autocast,
                pack=pack)

    def plain(feats=feats):  # pad to the task's maximum length, file order, as the peer's example scripts do
        with torch.inference_mode():
            for start in range(0, len(feats), args.batch):
                chunk = feats[start:start + args.batch]
                width = max(LENGTHS[kind][3] for kind, _ in chunk)
                ids = torch.ones(len(chunk), width, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for i, (_, row) in enumerate(chunk):
                    ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row), 1
                with autocast():
                    backend.forward("task", {"input_ids": ids.to(args.device), "attention_mask": mask.to(args.device)})

    rows = []
    for name, fn in (("plain padded loop", plain), ("adapterxfer predict", ours),
                     ("adapterxfer predict, packed", lambda feats=feats: ours(feats, pack=True))):
        fn(feats[:4 * args.batch])  # warm-up
        times = []
        for _ in range(args.repeat):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        rows.append({"path": name, "seconds": round(seconds, 2), "sentences_s": round(len(feats) / seconds, 1),
                     "tokens_s": round(real_tokens / seconds, 1)})
    for row in rows[1:]:
        row["x_plain"] = round(row["tokens_s"] / rows[0]["tokens_s"], 2)
    print(f"evaluate: XLM-R {args.size} shape + seq_bn adapter, {len(feats)} inputs ({real_tokens} tokens; "
          f"{', '.join(f'{k} {int(100 * v[0])}%' for k, v in LENGTHS.items())}), batch {args.batch}, "
          f"{args.device} ({machine()}), median of {args.repeat} pass(es) per path after a warm-up")
    print(table(rows, ["path", "seconds", "sentences_s", "tokens_s", "x_plain"]))


if __name__ == "__main__":
    main()
