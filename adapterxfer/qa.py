"""Extractive span QA: sliding-window features and n-best answer decoding.

Used for the SQuAD intermediate tasks and for zero-shot XQuAD, MLQA and TyDiQA-GoldP. The logic
follows transformers' ``examples/pytorch/question-answering`` (``run_qa.py``, ``utils_qa.py``):
the question comes first, the context is cut into windows of ``max_length`` tokens that overlap by
``doc_stride`` tokens, and position 0 (``<s>``) stands for "no answer in this window".

Examples are dicts ``{"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}}``;
empty answer lists mark an unanswerable question (SQuAD v2.0).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .errors import UserError
from .features import segments

CLS = 0  # index of <s>: the target and the score of "no answer"


def _windows(examples: list[dict], tokenizer, max_length: int, doc_stride: int, max_query_length: int):
    """Tokenise question/context pairs into overlapping windows over the context."""
    questions = [e["question"].lstrip() for e in examples]  # some SQuAD questions start with spaces
    # A question longer than max_query_length tokens is cut (as XTREME does), and shorter where the window
    # would otherwise leave the context no more than doc_stride tokens, which the tokenizer rejects (a panic).
    limit = min(max_query_length, max_length - tokenizer.num_special_tokens_to_add(pair=True) - doc_stride - 1)
    if limit < 1:
        raise UserError(f"QA windows of {max_length} tokens (--max-length) overlapping by {doc_stride} (--doc-stride) "
                        f"leave no room for the question: use a smaller --doc-stride or a larger --max-length")
    todo = range(len(questions))
    while todo:  # a cut question may tokenise into more tokens than it had: cut again, shorter each round
        enc = tokenizer([questions[i] for i in todo], add_special_tokens=False, return_offsets_mapping=True)
        todo = [i for i, offsets in zip(todo, enc["offset_mapping"]) if len(offsets) > limit]
        for i, offsets in zip(todo, (o for o in enc["offset_mapping"] if len(o) > limit)):
            questions[i] = questions[i][:min(offsets[limit - 1][1], len(questions[i]) - 1)]
    return tokenizer(questions, [e["context"] for e in examples], truncation="only_second",
                     max_length=max_length, stride=doc_stride, return_overflowing_tokens=True,
                     return_offsets_mapping=True)


def prepare_train_features(examples: list[dict], tokenizer, max_length: int = 384, doc_stride: int = 128,
                           max_query_length: int = 64) -> list[dict]:
    """Training windows with ``input_ids``, ``attention_mask``, ``start_positions``, ``end_positions``.

    The target is the first answer's token span when the window holds all of it, else :data:`CLS`
    for both positions (also for unanswerable questions). Rows are unpadded.
    """
    enc = _windows(examples, tokenizer, max_length, doc_stride, max_query_length)
    feats = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        answers = examples[enc["overflow_to_sample_mapping"][i]]["answers"]
        start = end = CLS
        if answers["answer_start"]:
            first_char = answers["answer_start"][0]
            end_char = first_char + len(answers["text"][0])
            context = [t for t, s in enumerate(enc.sequence_ids(i)) if s == 1]
            if offsets[context[0]][0] <= first_char and offsets[context[-1]][1] >= end_char:
                # Context offsets increase, so these are the tokens holding the answer's first and
                # last characters (a SentencePiece token's span may include its leading space; a lone
                # "▁" token shares the span of the character after it, so the end is sought from the start).
                start = max(t for t in context if offsets[t][0] <= first_char)
                end = min(t for t in context if t >= start and offsets[t][1] >= end_char)
        feats.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                      "start_positions": start, "end_positions": end, **segments(enc, i)})
    return feats


def prepare_eval_features(examples: list[dict], tokenizer, max_length: int = 384, doc_stride: int = 128,
                          max_query_length: int = 64) -> list[dict]:
    """Evaluation windows with ``input_ids``, ``attention_mask``, ``example_id`` and ``offset_mapping``:
    the ``(start, end)`` character span of each context token in the context, ``None`` for question
    and special tokens."""
    enc = _windows(examples, tokenizer, max_length, doc_stride, max_query_length)
    return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
             "example_id": examples[enc["overflow_to_sample_mapping"][i]]["id"],
             "offset_mapping": [o if s == 1 else None for o, s in zip(offsets, enc.sequence_ids(i))],
             **segments(enc, i)}
            for i, offsets in enumerate(enc["offset_mapping"])]


def postprocess(examples: list[dict], features: list[dict], start_logits, end_logits, n_best: int = 20,
                max_answer_length: int = 30, allow_impossible: bool = False) -> dict[str, str]:
    """Answer text per example id from per-feature start/end logits.

    Over all windows of an example, the answer is the best-scoring span (start logit + end logit)
    whose start is among the ``n_best`` highest start logits of the context tokens of its window,
    whose end is among the ``n_best`` highest end logits, and which is at most ``max_answer_length``
    tokens long. Its text is cut from the original context by the token offsets and stripped of
    surrounding whitespace. With ``allow_impossible`` (SQuAD v2.0), the answer is ``""`` when the null
    score, the lowest ``<s>`` score over the windows, beats the best span (threshold 0, as
    ``utils_qa.py``). Logit rows may be longer than their feature (padding); the excess is ignored.
    An example with no valid span gets ``""``.
    """
    if not len(features) == len(start_logits) == len(end_logits):
        raise ValueError(f"{len(features)} features but {len(start_logits)} start and "
                         f"{len(end_logits)} end logit rows")
    windows = defaultdict(list)
    for feat, start, end in zip(features, start_logits, end_logits):
        windows[feat["example_id"]].append((feat["offset_mapping"], start, end))

    answers = {}
    for example in examples:
        best_score, best_span, null_score = -np.inf, None, np.inf
        for offsets, start, end in windows[example["id"]]:
            start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
            null_score = min(null_score, start[CLS] + end[CLS])
            context = np.array([t for t, o in enumerate(offsets) if o is not None], dtype=np.int64)
            starts = context[np.argsort(-start[context], kind="stable")[:n_best]]
            ends = context[np.argsort(-end[context], kind="stable")[:n_best]]
            scores = start[starts][:, None] + end[ends][None, :]
            length = ends[None, :] - starts[:, None] + 1
            scores[(length < 1) | (length > max_answer_length)] = -np.inf
            i, j = np.unravel_index(np.argmax(scores), scores.shape)
            if scores[i, j] > best_score:
                best_score, best_span = scores[i, j], (offsets[starts[i]][0], offsets[ends[j]][1])
        text = example["context"][best_span[0]:best_span[1]].strip() if best_span else ""
        answers[example["id"]] = "" if allow_impossible and null_score > best_score else text
    return answers
