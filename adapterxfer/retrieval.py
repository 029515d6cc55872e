"""Sentence retrieval with mean-pooled hidden states: Tatoeba (nearest neighbour) and BUCC 2018
(margin-based bitext mining), as XTREME's ``third_party/utils_retrieve.py`` (after LASER).

Everything here takes embeddings as torch tensors or numpy arrays, one row per sentence, and works
on the device of the source embeddings. Similarities are cosines, computed ``chunk_size`` query rows
at a time against all candidates, so memory stays ``chunk_size x N`` and results do not depend on
the chunk size.
"""
from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError

Pair = tuple[Hashable, Hashable]


def mean_pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``[batch, tokens, dim]`` hidden states over the tokens whose mask is 1 (``<s>`` and
    ``</s>`` included, as XTREME), in float32."""
    mask = attention_mask.unsqueeze(-1).to(torch.float32)
    return (hidden_states.float() * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def retrieval_layer(num_hidden_layers: int) -> int:
    """Index into a model's ``hidden_states`` (0 = embeddings) of the layer to pool.

    Layer 14 of XLM-R Large's 24 (XTREME's Tatoeba setting, ``--specific_layer 13`` counted from
    the first layer's output); other depths take the same fraction, 14/24, rounded half up:
    7 of 12 (XLM-R Base), 4 of 6.
    """
    if num_hidden_layers < 1:
        raise UserError(f"a model needs at least one layer for retrieval, got {num_hidden_layers}")
    return (14 * num_hidden_layers + 12) // 24  # floor(14 L / 24 + 1/2)


def _unit(x, device=None) -> torch.Tensor:
    x = torch.as_tensor(x, device=device)
    if x.dim() != 2 or not len(x):
        raise UserError(f"expected a non-empty [sentences, dim] embedding matrix, got shape {tuple(x.shape)}")
    return F.normalize(x.float(), dim=1)


def _pair(src, tgt) -> tuple[torch.Tensor, torch.Tensor]:
    x = _unit(src)
    y = _unit(tgt, device=x.device)
    if x.shape[1] != y.shape[1]:
        raise UserError(f"source and target embeddings differ in size: {x.shape[1]} vs {y.shape[1]}")
    return x, y


def _knn(x: torch.Tensor, y: torch.Tensor, k: int, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and indices of the ``k`` nearest rows of unit ``y`` for each row of unit ``x``."""
    sims, idx = zip(*(torch.topk(x[i:i + chunk_size] @ y.T, k, dim=1) for i in range(0, len(x), chunk_size)))
    return torch.cat(sims), torch.cat(idx)


def nearest_neighbors(src, tgt, chunk_size: int = 1024) -> np.ndarray:
    """For each ``src`` row, the index of the ``tgt`` row with the highest cosine (Tatoeba).

    XTREME queries with the English side: pass English as ``src`` to match its numbers.
    """
    x, y = _pair(src, tgt)
    return _knn(x, y, 1, chunk_size)[1][:, 0].cpu().numpy()


def _best_margin(sims, idx, mean, other_mean) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the highest ratio margin among its k nearest neighbours and that neighbour's index."""
    score, pick = (sims / ((mean[:, None] + other_mean[idx]) / 2)).max(1)
    return score, idx.gather(1, pick[:, None])[:, 0]


def mine_candidates(src, tgt, k: int = 4, chunk_size: int = 1024) -> dict[tuple[int, int], float]:
    """BUCC candidate pairs ``{(src_index, tgt_index): margin}`` by ratio-margin scoring.

    ``margin(x, y) = cos(x, y) / ((sum of x's k-NN cosines) / 2k + (sum of y's k-NN cosines) / 2k)``,
    k-NN taken in the other language. Each source keeps its best-margin pair among its k nearest
    targets (forward) and each target likewise (backward); as LASER's ``mine_bitexts`` default used
    by XTREME (``retrieval='max'``), the union is taken best margin first, a pair is dropped when its
    source or target is already paired, and pairs with margin 0 or less are dropped. Equal margins
    keep forward-then-backward, index order. Pass each distinct sentence once, as XTREME mines them.
    """
    x, y = _pair(src, tgt)
    x_sims, x_idx = _knn(x, y, min(k, len(y)), chunk_size)
    y_sims, y_idx = _knn(y, x, min(k, len(x)), chunk_size)
    x_mean, y_mean = x_sims.mean(1), y_sims.mean(1)
    fwd_score, fwd_tgt = _best_margin(x_sims, x_idx, x_mean, y_mean)
    bwd_score, bwd_src = _best_margin(y_sims, y_idx, y_mean, x_mean)

    src_ids = torch.cat([torch.arange(len(x), device=x.device), bwd_src]).tolist()
    tgt_ids = torch.cat([fwd_tgt, torch.arange(len(y), device=x.device)]).tolist()
    scores = torch.cat([fwd_score, bwd_score]).cpu().numpy()
    seen_src, seen_tgt, candidates = set(), set(), {}
    for n in np.argsort(-scores, kind="stable"):
        i, j = src_ids[n], tgt_ids[n]
        if i not in seen_src and j not in seen_tgt:
            seen_src.add(i)
            seen_tgt.add(j)
            if scores[n] > 0:
                candidates[(i, j)] = float(scores[n])
    return candidates


def tune_threshold(candidates: Mapping[Pair, float], gold_pairs: Collection[Pair]) -> float:
    """The margin threshold with the best F1 of :func:`mine_pairs` against ``gold_pairs`` (BUCC dev).

    As XTREME's ``bucc_optimize``: candidates are ranked by score and the threshold is the midpoint
    between the last kept and the first dropped score (the last score when all are kept), but cuts
    are only tried between different scores, so tied candidates are kept or dropped together. The
    highest of equally good thresholds wins; with no gold pair among the candidates it is 0.0.
    """
    gold = set(gold_pairs)
    if not gold:
        raise UserError("BUCC threshold tuning needs at least one gold pair")
    ranked = sorted(candidates.items(), key=lambda item: -item[1])
    best_f1, threshold, correct = 0.0, 0.0, 0
    for n, (pair, score) in enumerate(ranked, 1):
        correct += pair in gold
        following = ranked[n][1] if n < len(ranked) else None
        if following == score or not correct:
            continue
        precision, recall = correct / n, correct / len(gold)
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best_f1:
            best_f1, threshold = f1, score if following is None else (score + following) / 2
    return threshold


def mine_pairs(candidates: Mapping[Pair, float], threshold: float) -> set[Pair]:
    """The candidate pairs scoring at least ``threshold`` (BUCC test predictions)."""
    return {pair for pair, score in candidates.items() if score >= threshold}
