"""XTREME's metrics, giving the same numbers as XTREME's ``evaluate.py`` and its third-party scorers.

Conventions shared by every function here, all taken from XTREME:

* scores are percentages (0-100), never fractions: XTREME multiplies each fraction by 100;
* the arithmetic runs in XTREME's order (``correct / n * 100`` for accuracy, ``100 * sum / n`` for QA,
  left-to-right sums), so results agree to the last bit, not just to rounding;
* metric names are XTREME's: ``accuracy``, ``f1``, ``precision``, ``recall``, ``exact_match``.

Bad input (mismatched lengths, nothing to score, an unsupported MLQA language) raises :class:`UserError`.
"""
from __future__ import annotations

import re
import string
import sys
import unicodedata
import warnings
from collections import Counter
from functools import lru_cache
from typing import Callable, Hashable, Iterable, Mapping, Sequence

from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

from .errors import UserError


def mean(values: Iterable[float]) -> float:
    """Plain mean as XTREME averages languages: ``sum(values) / len(values)``, summed left to right.

    The explicit loop keeps the rounding of ``sum()`` before Python 3.12 (which XTREME's published
    numbers used); 3.12's ``sum()`` compensates rounding errors and can differ in the last bit.
    """
    values = list(values)
    if not values:
        raise UserError("cannot average an empty list of scores")
    total = 0.0
    for value in values:
        total += value
    return total / len(values)


def _check_same_length(preds: Sequence, golds: Sequence, unit: str = "labels") -> None:
    if len(preds) != len(golds):
        raise UserError(f"{len(preds)} predicted {unit} for {len(golds)} gold {unit}")
    if not golds:
        raise UserError(f"no gold {unit} to score")


def accuracy(preds: Sequence[Hashable], golds: Sequence[Hashable]) -> dict[str, float]:
    """``{"accuracy": %}``: the percentage of ``preds[i] == golds[i]`` (XNLI, PAWS-X), as XTREME."""
    _check_same_length(preds, golds)
    correct = sum(int(p == g) for p, g in zip(preds, golds))
    return {"accuracy": float(correct) / len(preds) * 100}


def tatoeba_accuracy(pred_indices: Sequence[Hashable], gold_indices: Sequence[Hashable]) -> dict[str, float]:
    """``{"accuracy": %}`` of retrieved sentence indices (Tatoeba), as :func:`accuracy`; XTREME compares
    them as the text of its files' lines."""
    return accuracy(pred_indices, gold_indices)


def tagging_f1(pred_seqs: Sequence[Sequence[str]], gold_seqs: Sequence[Sequence[str]]) -> dict[str, float]:
    """``{"f1", "precision", "recall"}`` (%) of chunks, by the installed seqeval's default (conlleval) mode.

    This is what XTREME's ``evaluate.py`` calls for UD-POS and PAN-X, and it follows the installed
    seqeval (>= 1.2; 1.2.2 here). Tags without a ``B-``/``I-`` prefix, i.e. all UD-POS tags, are chunked
    differently by the seqeval 0.0.12 that XTREME's published test expectations used: 1.2.x takes the
    first letter as the chunk prefix and the rest as the type (``SCONJ`` -> ``S`` + ``CONJ``, the same
    type as ``CCONJ``), 0.0.12 keeps the whole tag as the type. UD-POS F1 can therefore differ slightly
    from numbers computed in 2020; PAN-X (IOB2 tags) scores the same under both.
    """
    golds = [list(s) for s in gold_seqs]
    preds = [list(s) for s in pred_seqs]
    _check_same_length(preds, golds, "sentences")
    for i, (p, g) in enumerate(zip(preds, golds), 1):
        if len(p) != len(g):
            raise UserError(f"sentence {i}: {len(p)} predicted tags for {len(g)} gold tags")
    with warnings.catch_warnings():  # seqeval warns for every non-IOB tag (all of UD-POS) and for 0/0
        warnings.simplefilter("ignore")
        # one pass over the chunks for all three: seqeval's f1_score, precision_score and recall_score each chunk
        # every sentence again (PAN-X, 40 languages x 10,000 sentences: 14 s instead of 32 s)
        precision, recall, f1, _ = precision_recall_fscore_support(golds, preds, average="micro")
    return {"f1": float(f1) * 100, "precision": float(precision) * 100, "recall": float(recall) * 100}


def bucc_f1(pred_pairs: Iterable[Sequence[str]], gold_pairs: Iterable[Sequence[str]]) -> dict[str, float]:
    """``{"f1", "precision", "recall"}`` (%) over *sets* of (source id, target id) pairs, as XTREME's BUCC.

    Duplicated pairs count once; with no correct pair all three are 0.
    """
    golds = {tuple(p) for p in gold_pairs}
    preds = {tuple(p) for p in pred_pairs}
    correct = len(golds & preds)
    if correct == 0:
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    precision = correct / len(preds)
    recall = correct / len(golds)
    f1 = 2 * precision * recall / (precision + recall)
    return {"f1": f1 * 100, "precision": precision * 100, "recall": recall * 100}


# --- extractive QA -------------------------------------------------------------------------------


def normalize_squad(text: str) -> str:
    """Official SQuAD v1.1 normalisation: lower-case, drop ASCII punctuation and English articles,
    squeeze whitespace.

    XTREME applies it to XQuAD and TyDiQA in every language (no Unicode punctuation, no segmentation).
    """
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


_ASCII_PUNCT = frozenset(string.punctuation)

#: MLQA's per-language articles (``None``: the language has none). Arabic is copied verbatim from
#: MLQA's script: the first branch can never match, so every "ال" is removed, even inside a word.
_MLQA_ARTICLES: dict[str, str | None] = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "hi": None,
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "ar": r"\sال^|ال",
    "zh": None,
}
_MLQA_MIXED_SEGMENTATION = frozenset({"zh"})  # the others split on whitespace
_CJK = re.compile(r"[\u4e00-\u9fa5]")


@lru_cache(maxsize=None)
def _unicode_punct() -> frozenset[str]:
    """MLQA's ``PUNCT``: every Unicode ``P*`` character plus ASCII punctuation (built once, ~0.3 s)."""
    return frozenset(chr(i) for i in range(sys.maxunicode)
                     if unicodedata.category(chr(i)).startswith("P")) | _ASCII_PUNCT


def _mixed_segmentation(text: str) -> list[str]:
    """MLQA's Chinese tokens: each CJK character (or punctuation mark) alone, other runs split on spaces."""
    punct = _unicode_punct()
    tokens, run = [], ""
    for ch in text:
        if _CJK.search(ch) or ch in punct:
            tokens.extend(run.split())
            run = ""
            tokens.append(ch)
        else:
            run += ch
    tokens.extend(run.split())
    return tokens


def normalize_mlqa(text: str, lang: str) -> str:
    """MLQA's normalisation (``evaluate_mlqa.py``): lower-case, drop Unicode punctuation, drop the
    language's articles, then split on whitespace (``zh``: mixed segmentation) and re-join with spaces."""
    if lang not in _MLQA_ARTICLES:
        raise UserError(f"MLQA scoring has no normalisation for language '{lang}' "
                        f"(known: {', '.join(_MLQA_ARTICLES)})")
    punct = _unicode_punct()
    text = "".join(ch for ch in text.lower() if ch not in punct)
    if _MLQA_ARTICLES[lang]:
        text = re.sub(_MLQA_ARTICLES[lang], " ", text)
    tokens = _mixed_segmentation(text) if lang in _MLQA_MIXED_SEGMENTATION else text.split()
    return " ".join(t for t in tokens if t.strip())


def _token_f1(pred: str, gold: str) -> float:
    """SQuAD v1.1 token F1 of two normalised answers (0 when they share no token)."""
    pred_tokens, gold_tokens = pred.split(), gold.split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def _qa_per_question(predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]],
                     normalize: Callable[[str], str]) -> list[tuple[int, float]]:
    if not gold:
        raise UserError("no gold questions to score")
    scores = []
    for qid, answers in gold.items():
        if qid not in predictions:  # unanswered: scores 0 but still counts (list them with missing_ids)
            scores.append((0, 0))
            continue
        pred = normalize(predictions[qid])
        if not answers:  # unanswerable (SQuAD v2.0): right only when the prediction is empty
            scores.append((int(pred == ""), int(pred == "")))
            continue
        golds = [normalize(a) for a in answers]
        scores.append((max(pred == g for g in golds), max(_token_f1(pred, g) for g in golds)))
    return scores


def _qa_scores(predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]],
               normalize: Callable[[str], str]) -> dict[str, float]:
    exact_match = f1 = 0
    for em, f in _qa_per_question(predictions, gold, normalize):
        exact_match += em
        f1 += f
    return {"exact_match": 100.0 * exact_match / len(gold), "f1": 100.0 * f1 / len(gold)}


def qa_per_question(predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]],
                    lang: str | None = None) -> list[tuple[int, float]]:
    """``(exact match, F1)`` as 0/1 and a fraction for each gold question, in ``gold``'s order, as
    :func:`squad_scores` (``lang`` None) or :func:`mlqa_scores` (``lang``) count them."""
    if lang is None:
        return _qa_per_question(predictions, gold, normalize_squad)
    normalize_mlqa("", lang)
    return _qa_per_question(predictions, gold, lambda text: normalize_mlqa(text, lang))


def squad_scores(predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``{"exact_match", "f1"}`` (%) as the official SQuAD v1.1 script (XTREME's XQuAD and TyDiQA scorer).

    ``gold`` maps each question id to its gold answer texts; the score is the best over them. Every gold
    question counts: an id missing from ``predictions`` scores 0 (:func:`missing_ids` lists them), ids
    not in ``gold`` are ignored. An empty answer list marks an unanswerable question (SQuAD v2.0): it
    scores 100% exactly when the prediction normalises to "" (XTREME's v1.1 scorer has no such case).
    """
    return _qa_scores(predictions, gold, normalize_squad)


def mlqa_scores(predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]],
                lang: str) -> dict[str, float]:
    """``{"exact_match", "f1"}`` (%) as :func:`squad_scores` but with MLQA's normalisation for ``lang``
    (one of en, es, hi, vi, de, ar, zh; the answer language), as XTREME scores MLQA."""
    normalize_mlqa("", lang)  # reject an unknown language even when nothing would be normalised
    return _qa_scores(predictions, gold, lambda text: normalize_mlqa(text, lang))


def missing_ids(predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]]) -> list[str]:
    """The gold question ids without a prediction (in gold order): QA scorers count them as wrong."""
    return [qid for qid in gold if qid not in predictions]
