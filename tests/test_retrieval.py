import numpy as np
import pytest
import torch

from adapterxfer.errors import UserError
from adapterxfer.retrieval import (mean_pool, mine_candidates, mine_pairs, nearest_neighbors, retrieval_layer,
                                   tune_threshold)


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                           [[1.0, 1.0], [2.0, 2.0], [6.0, 3.0]]], dtype=torch.bfloat16)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    pooled = mean_pool(hidden, mask)
    assert pooled.dtype == torch.float32
    assert pooled.tolist() == [[2.0, 3.0], [3.0, 2.0]]


@pytest.mark.parametrize("layers,expected", [(24, 14), (12, 7), (6, 4), (18, 11), (1, 1)])
def test_retrieval_layer_keeps_depth_fraction(layers, expected):
    # 14/24 of the depth, half up: 12 -> 7, 6 -> 3.5 -> 4, 18 -> 10.5 -> 11, 1 -> 0.58 -> 1
    assert retrieval_layer(layers) == expected


def test_retrieval_layer_rejects_no_layers():
    with pytest.raises(UserError):
        retrieval_layer(0)


def test_nearest_neighbors_uses_cosine_not_dot_product():
    src = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    tgt = torch.tensor([[5.0, 5.0], [0.9, 0.1], [0.1, 2.0]])
    # cosines: src0 -> (0.707, 0.994, 0.050); src1 -> (0.707, 0.110, 0.999); src2 -> (1.0, 0.78, 0.74)
    # (dot products would send src0 and src1 to the long target 0)
    assert nearest_neighbors(src, tgt, chunk_size=2).tolist() == [1, 2, 0]


def test_nearest_neighbors_recovers_a_permutation():
    rng = np.random.default_rng(0)
    src = rng.standard_normal((50, 32)).astype(np.float32)
    perm = rng.permutation(50)
    tgt = src[perm] * rng.uniform(0.5, 3.0, (50, 1)) + 0.05 * rng.standard_normal((50, 32))
    # tgt[j] is a rescaled, noisy src[perm[j]]: src i's neighbour is the j with perm[j] == i
    assert nearest_neighbors(src, tgt.astype(np.float32), chunk_size=7).tolist() == np.argsort(perm).tolist()


def dyadic_rows(n, seed):
    """Integer rows whose norm is 16 or 32: after normalisation every entry is a multiple of 1/32,
    so all cosines are exact in float32 and cannot depend on how a matmul is blocked."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(-15, 16, size=(400_000, 8))
    rows = rows[np.isin((rows ** 2).sum(1), [256, 1024])]
    assert len(rows) >= n
    return rows[:n].astype(np.float32)


def test_chunked_results_equal_unchunked():
    src, tgt = dyadic_rows(40, 1), dyadic_rows(33, 2)
    whole_nn = nearest_neighbors(src, tgt, chunk_size=10_000)
    whole = mine_candidates(src, tgt, k=4, chunk_size=10_000)
    assert len(whole) > 20
    for chunk in (1, 3, 7, 32):
        assert nearest_neighbors(src, tgt, chunk_size=chunk).tolist() == whole_nn.tolist()
        assert mine_candidates(src, tgt, k=4, chunk_size=chunk) == whole


def test_margin_scores_hand_computed():
    # Unit directions (lengths do not matter for cosines): x0 = (1, 0), x1 = (0, 1);
    # y0 = (1, 0), y1 = (0.6, 0.8), y2 = (0, 1).
    # cos(x0, .) = 1, 0.6, 0     cos(x1, .) = 0, 0.8, 1
    # k = 2 nearest-neighbour means: x0: (1 + 0.6)/2 = 0.8   x1: (1 + 0.8)/2 = 0.9
    #                                y0: (1 + 0)/2 = 0.5     y1: (0.8 + 0.6)/2 = 0.7   y2: (1 + 0)/2 = 0.5
    # margin = cos / ((mean_x + mean_y) / 2):
    #   forward x0: y0 1/0.65 = 1.538 (best), y1 0.6/0.75 = 0.8
    #   forward x1: y2 1/0.70 = 1.429 (best), y1 0.8/0.80 = 1.0
    #   backward y0 -> x0 1.538, y1 -> x1 1.0, y2 -> x1 1.429
    # Union, best first: (0,0) 1.538, (1,2) 1.429, then (1,1) 1.0 is dropped: x1 is already paired.
    src = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    tgt = np.array([[2.0, 0.0], [3.0, 4.0], [0.0, 7.0]], dtype=np.float32)
    got = mine_candidates(src, tgt, k=2, chunk_size=1)
    assert got.keys() == {(0, 0), (1, 2)}
    assert got[(0, 0)] == pytest.approx(1 / 0.65, rel=1e-6)
    assert got[(1, 2)] == pytest.approx(1 / 0.7, rel=1e-6)
    # The margin is symmetric: swapping the languages swaps forward and backward search.
    swapped = mine_candidates(tgt, src, k=2)
    assert swapped == pytest.approx({(j, i): score for (i, j), score in got.items()}, rel=1e-6)


def test_margin_prefers_a_farther_target_over_a_hub():
    # x0 = (1, 0), x1 = (0.6, 0.8), x2 = (0.28, 0.96); hub = (0.96, 0.28), t = (0.8, -0.6), y2 = (0.28, 0.96)
    #          hub     t      y2
    #   x0    0.96    0.8    0.28
    #   x1    0.8     0      0.936
    #   x2    0.5376 -0.352  1
    # k = 2 means: x0 0.88, x1 0.868, x2 0.7688; hub (0.96 + 0.8)/2 = 0.88, t (0.8 + 0)/2 = 0.4, y2 0.968
    # forward x0: hub 0.96/0.88 = 1.0909, t 0.8/0.64 = 1.25 -> t, although hub has the higher cosine
    # forward x1: y2 0.936/0.918 = 1.0196, hub 0.8/0.874 = 0.915    forward x2: y2 1/0.8684 = 1.1515
    # backward: hub -> x0 1.0909, t -> x0 1.25, y2 -> x2 1.1515
    # best first: (x0, t) 1.25, (x2, y2) 1.1515; (x0, hub) and (x1, y2) reuse a paired sentence
    src = np.array([[1.0, 0.0], [0.6, 0.8], [0.28, 0.96]], dtype=np.float32)
    tgt = np.array([[0.96, 0.28], [0.8, -0.6], [0.28, 0.96]], dtype=np.float32)
    assert mine_candidates(src, tgt, k=2) == pytest.approx({(0, 1): 1.25, (2, 2): 1 / 0.8684}, rel=1e-5)


def test_embedding_shape_errors():
    with pytest.raises(UserError):
        nearest_neighbors(np.zeros((0, 4)), np.ones((3, 4)))
    with pytest.raises(UserError):
        mine_candidates(np.ones((2, 4)), np.ones((3, 5)))


CANDIDATES = {("a", "A"): 0.9, ("b", "B"): 0.8, ("c", "C"): 0.7, ("d", "D"): 0.6, ("e", "E"): 0.5}
GOLD = {("a", "A"), ("c", "C"), ("f", "F")}


def test_tune_threshold_maximises_f1():
    # 3 gold pairs, one never proposed. Keeping the top n candidates:
    # n=1: P 1/1, R 1/3, F1 0.5    n=2: P 1/2, R 1/3, F1 0.4    n=3: P 2/3, R 2/3, F1 0.667 (best)
    # n=4: P 2/4, R 2/3, F1 0.571  n=5: P 2/5, R 2/3, F1 0.5
    # -> threshold halfway between the 3rd and 4th scores: (0.7 + 0.6) / 2 = 0.65
    threshold = tune_threshold(CANDIDATES, GOLD)
    assert threshold == pytest.approx(0.65)
    assert mine_pairs(CANDIDATES, threshold) == {("a", "A"), ("b", "B"), ("c", "C")}


def test_tune_threshold_keeps_ties_together():
    # Cutting inside the tie at 0.5 (keeping a, b: F1 1.0) cannot be realised by a threshold.
    # Realisable: keep {a}: P 1, R 1/2, F1 0.667; keep all four: P 1/2, R 1, F1 0.667 (not better)
    # -> threshold (0.9 + 0.5) / 2 = 0.7
    candidates = {("a", "A"): 0.9, ("b", "B"): 0.5, ("c", "C"): 0.5, ("d", "D"): 0.5}
    assert tune_threshold(candidates, {("a", "A"), ("b", "B")}) == pytest.approx(0.7)


def test_tune_threshold_all_correct_keeps_everything():
    # Every candidate is gold: F1 grows to the last one, whose score is the (inclusive) threshold.
    threshold = tune_threshold(CANDIDATES, set(CANDIDATES))
    assert threshold == 0.5
    assert mine_pairs(CANDIDATES, threshold) == set(CANDIDATES)


def test_tune_threshold_without_hits_and_without_gold():
    assert tune_threshold(CANDIDATES, {("z", "Z")}) == 0.0
    with pytest.raises(UserError):
        tune_threshold(CANDIDATES, set())
