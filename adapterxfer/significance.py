"""Paired bootstrap over evaluation examples: is a row's change against the baseline more than the luck
of which examples the test set holds?

Every task score is written here as a ratio of per-example sums, ``100 * sum(num) / sum(den)``:
accuracy (XNLI, PAWS-X, Tatoeba) and QA (per question the mean of exact match and F1) have ``den = 1``;
tagging F1 (UD-POS, PAN-X) has per sentence ``num = 2 * correct chunks`` and ``den = predicted + gold
chunks``, so a resample's F1 comes from its sentences' summed counts (seqeval's micro F1 on those
sentences, chunked by seqeval itself) rather than from seqeval per resample. BUCC's F1 is over pairs
mined from the whole candidate set, with no per-example unit shared by two systems: it is not bootstrapped.

One resample draws, per language, example indices with replacement and applies the same indices to both
rows (paired) and to every seed of each: its statistic is the row's seed-mean score minus the baseline's,
averaged over languages as XTREME averages them. Seeds are averaged, not resampled: the interval measures
example-sampling noise for these trained modules (the table's ``± std`` shows the seed noise), and at the
full sample the statistic is the table's delta. The 95% interval is the 2.5 and 97.5 percentiles of
the resampled deltas (percentile bootstrap); a delta is significant when the interval excludes zero.
"""
from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .metrics import qa_per_question
from .score import scorer
from .tasks import get_task

NO_BOOTSTRAP = {"bucc2018": "BUCC's F1 is over pairs mined from the whole candidate set: no per-example unit"}
_CHUNK = 100  # resamples drawn at once (memory: CHUNK x examples counts)


@dataclass
class Interval:
    """A row's delta against the baseline with its bootstrap interval, or why there is none."""

    delta: float | None = None
    low: float | None = None
    high: float | None = None
    samples: int = 0
    reason: str | None = None

    @property
    def significant(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)


def tagging_counts(pred_seqs, gold_seqs, gold_chunks: list[set] | None = None) -> np.ndarray:
    """Per sentence ``(correct, predicted, gold)`` chunk counts, chunked by seqeval's ``get_entities`` in
    the default mode that :func:`~adapterxfer.metrics.tagging_f1` uses; shape ``(sentences, 3)``.
    ``gold_chunks``: the gold sentences' chunks, where :func:`read_gold` has them already."""
    gold_chunks = _chunks(gold_seqs) if gold_chunks is None else gold_chunks
    return np.array([(len(p & g), len(p), len(g)) for p, g in zip(_chunks(pred_seqs), gold_chunks)],
                    dtype=np.int64).reshape(-1, 3)


def _chunks(seqs) -> list[set]:
    from seqeval.metrics.sequence_labeling import get_entities

    with warnings.catch_warnings():  # seqeval warns for every tag without a B-/I- prefix
        warnings.simplefilter("ignore")
        return [set(get_entities(list(seq))) for seq in seqs]


def read_gold(task: str, gold_path: Path) -> tuple:
    """One language's gold labels as :func:`example_scores` reads them (tagging: with each sentence's chunks).
    A report compares every cell (row and seed) with the same labels: read them once and pass them on."""
    golds = scorer(task).read_gold(gold_path)
    return golds, _chunks(golds) if get_task(task).format == "tagging" else None


def example_scores(task: str, pred_path: Path, gold_path: Path, lang: str, gold: tuple | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(num, den)`` per example of one language's prediction file: ``100 * num.sum() / den.sum()`` is the
    task score that :mod:`adapterxfer.score` gives the file (for QA, the mean of exact match and F1).
    ``gold``: what :func:`read_gold` gives for ``gold_path``, read once for many prediction files."""
    if task in NO_BOOTSTRAP:
        raise UserError(f"{task}: {NO_BOOTSTRAP[task]}")
    x, spec = scorer(task), get_task(task)
    preds, (golds, gold_chunks) = x.read_pred(pred_path), gold or read_gold(task, gold_path)
    x.check(preds, golds, pred_path, gold_path)
    if spec.format == "tagging":
        counts = tagging_counts(preds, golds, gold_chunks)
        return 2.0 * counts[:, 0], (counts[:, 1] + counts[:, 2]).astype(float)
    if spec.format == "span_qa":
        per_question = qa_per_question(preds, golds, lang if spec.metric == "mlqa" else None)
        return np.array([(em + f1) / 2 for em, f1 in per_question], dtype=float), np.ones(len(per_question))
    return np.array([p == g for p, g in zip(preds, golds)], dtype=float), np.ones(len(golds))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``100 * num / den`` elementwise, 0 where ``den`` is 0 (seqeval's F1 with no chunk at all)."""
    return np.divide(100 * num, den, out=np.zeros_like(num, dtype=float), where=den != 0)


def _seed_mean(num: np.ndarray, den: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The score of every seed (rows of ``num``/``den``) under every resample (rows of ``weights``: how
    often each example was drawn), averaged over seeds: shape ``(resamples,)``."""
    return _ratio(num @ weights.T, den @ weights.T).mean(axis=0)


def paired_bootstrap(rows: dict, base: dict, samples: int = 1000, seed: int | list[int] = 0) -> dict:
    """``{name: Interval}``: the bootstrap interval of each row minus ``base``. ``rows`` maps a row name
    to ``{language: [(num, den) per seed]}`` (:func:`example_scores`), ``base`` is one such mapping, on the
    same examples. Per language one set of resamples, drawn in ``base``'s language order from ``seed``,
    serves every row: each comparison is paired, and a row's interval does not depend on the others."""
    if samples < 1:
        raise UserError(f"--bootstrap-samples must be at least 1, not {samples}")
    with _one_blas_thread():
        return _bootstrap(rows, base, samples, np.random.default_rng(seed))


def _one_blas_thread():
    """The products here are small: on a busy machine BLAS threads wait on each other for far longer than
    they compute (20x slower measured on 2 shared cores), so use one."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def _bootstrap(rows: dict, base: dict, samples: int, rng: np.random.Generator) -> dict:
    deltas = {name: np.zeros(samples) for name in rows}
    observed = dict.fromkeys(rows, 0.0)
    langs = {name: [lang for lang in base if lang in runs] for name, runs in rows.items()}
    stacked = {name: {lang: _stack(runs[lang]) for lang in langs[name]} for name, runs in rows.items()}
    bases = {lang: _stack(runs) for lang, runs in base.items()}
    unpaired = {name: f"{lang}: {x[0].shape[1]} examples against the baseline's {bases[lang][0].shape[1]}"
                for name in rows for lang, x in stacked[name].items() if x[0].shape[1] != bases[lang][0].shape[1]}
    for lang, (b_num, b_den) in bases.items():
        n = b_num.shape[1]
        users = [name for name in rows if lang in stacked[name] and name not in unpaired]
        for name in users:
            observed[name] += float(_seed_mean(*stacked[name][lang], np.ones((1, n)))[0]
                                    - _seed_mean(b_num, b_den, np.ones((1, n)))[0])
        for start in range(0, samples, _CHUNK):
            size = min(_CHUNK, samples - start)
            drawn = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
            weights = np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n).astype(float)
            base_scores = _seed_mean(b_num, b_den, weights) if users else None
            for name in users:
                deltas[name][start:start + size] += _seed_mean(*stacked[name][lang], weights) - base_scores
    intervals = {}
    for name in rows:
        if name in unpaired:
            intervals[name] = Interval(reason=unpaired[name])
        elif not langs[name]:
            intervals[name] = Interval(reason="no language scored by both this row and the baseline")
        else:
            low, high = np.percentile(deltas[name] / len(langs[name]), [2.5, 97.5])
            intervals[name] = Interval(observed[name] / len(langs[name]), float(low), float(high), samples)
    return intervals


def _stack(runs: list) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([num for num, _ in runs]), np.stack([den for _, den in runs])


def stable_seed(seed: int, *keys: str) -> list[int]:
    """A generator seed for one table entry that does not depend on which other entries were computed."""
    return [seed, *(zlib.crc32(k.encode()) for k in keys)]
