"""Seeded subsampling of training data (``--train-size N`` / ``--train-fraction F``), stratified by label."""
from __future__ import annotations

import random
from collections import defaultdict

from .errors import UserError


def subsample(examples: list[dict], size: int | None = None, fraction: float | None = None,
              seed: int = 0) -> list[dict]:
    """``size`` examples (or ``fraction`` of them), the same for a seed; classification and multiple
    choice keep each label's share (largest remainders), other formats sample uniformly. Order kept."""
    if size is None and fraction is None:
        return examples
    if size is not None and fraction is not None:
        raise UserError("give --train-size or --train-fraction, not both")
    if fraction is not None and not 0 < fraction <= 1:
        raise UserError(f"--train-fraction must be in (0, 1], got {fraction}")
    if size is not None and size < 1:
        raise UserError(f"--train-size must be at least 1, got {size}")
    n = sample_size(len(examples), size, fraction)
    if n >= len(examples):
        return examples
    rng = random.Random(seed)
    groups: dict = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[ex.get("label") if isinstance(ex.get("label"), int) else None].append(i)
    quotas = {k: n * len(v) / len(examples) for k, v in groups.items()}
    take = {k: int(q) for k, q in quotas.items()}
    for k in sorted(quotas, key=lambda k: (take[k] - quotas[k], str(k)))[:n - sum(take.values())]:
        take[k] += 1
    chosen = sorted(i for k in sorted(groups, key=str) for i in rng.sample(groups[k], take[k]))
    return [examples[i] for i in chosen]


def sample_size(n: int, size: int | None = None, fraction: float | None = None) -> int:
    """How many of ``n`` examples :func:`subsample` keeps."""
    if fraction is not None:
        return min(n, max(1, round(fraction * n)))
    return n if size is None else min(n, size)
