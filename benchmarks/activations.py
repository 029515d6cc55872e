"""What one training step keeps for its backward pass: the tensors autograd saved, by operation.

    python benchmarks/activations.py --size large --methods full,seq_bn,seq_bn+bf16base

Runs one forward pass of each method (as ``train_step.py`` builds it) and walks the autograd graph,
summing each saved tensor's storage once (weights excluded; they are counted apart). This is the
profile behind the peak-memory figures of BENCHMARKS.md: which operations hold the memory.
"""
from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, model_arguments, model_dir, table  # noqa: E402
from train_step import build, method_list  # noqa: E402


def saved_by_operation(loss: torch.Tensor, weights: set[int]) -> collections.Counter:
    """Bytes of the distinct tensor storages the graph behind ``loss`` saved, by ``Node.attribute``."""
    totals, seen, stack, visited = collections.Counter(), set(), [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in visited:
            continue
        visited.add(node)
        for name in dir(node):
            if not name.startswith("_saved_"):
                continue
            value = getattr(node, name)
            for t in value if isinstance(value, (tuple, list)) else [value]:
                if torch.is_tensor(t):
                    storage = t.untyped_storage()
                    if storage.data_ptr() not in seen | weights:
                        seen.add(storage.data_ptr())
                        totals[f"{type(node).__name__.removesuffix('0')}.{name[7:]}"] += storage.nbytes()
        stack.extend(fn for fn, _ in node.next_functions)
    return totals


def without_checkpointing(text: str) -> list[str]:
    """``--methods`` as train_step.py takes them, less ``+ckpt``: under checkpointing, reading a node's saved
    tensors recomputes them, so the walk would count what the step does not keep."""
    methods = method_list(text)
    if any("ckpt" in m.split("+") for m in methods):
        raise argparse.ArgumentTypeError("+ckpt cannot be profiled here (reading what checkpointed layers saved "
                                         "recomputes it); train_step.py's peak memory measures it")
    return methods


def main(argv=None):
    parser = model_arguments(__doc__, batch=8, seq=128)
    parser.add_argument("--methods", type=without_checkpointing, default="full,seq_bn")
    parser.add_argument("--top", type=int, default=8, help="operations listed per method")
    args = parser.parse_args(argv)
    base = model_dir(args.size, args.small_vocab)
    print(f"activations: XLM-R {args.size} shape, batch {args.batch} x {args.seq}, {args.device} ({machine()}); "
          f"saved tensors of one training forward pass, in MB")
    for method in args.methods:
        torch.manual_seed(0)
        model, loss_fn, _, _ = build(method, base, Path(tempfile.mkdtemp()))
        model.to(args.device).train()
        batch = {"input_ids": torch.randint(5, model.config.vocab_size, (args.batch, args.seq), device=args.device),
                 "attention_mask": torch.ones(args.batch, args.seq, dtype=torch.long, device=args.device),
                 "labels": torch.randint(0, 3, (args.batch,), device=args.device)}
        bf16 = args.device == "cuda" or "bf16base" in method
        with torch.autocast(args.device, dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = loss_fn(batch)
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
        totals = saved_by_operation(loss, weights)
        weight_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
        rows = [{"operation.saved": op, "MB": round(b / 1e6, 1)} for op, b in totals.most_common(args.top)]
        rows.append({"operation.saved": "all saved tensors", "MB": round(sum(totals.values()) / 1e6, 1)})
        rows.append({"operation.saved": "weights (not saved tensors)", "MB": round(weight_mb, 1)})
        print(f"\n{method}\n" + table(rows, ["operation.saved", "MB"]))
        del model, loss


if __name__ == "__main__":
    main()
