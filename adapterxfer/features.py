"""Tokenisation per format, an on-disk cache of tokenised data, length-grouped batches, padding.

Features are plain dicts of lists (``input_ids`` plus the format's targets); attention masks are
made at collation, so padding is never stored and every batch is padded only to its own longest row.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import torch

from . import __version__
from .fileio import sha256_json, shared

IGNORE = -100
CHUNK = 1000  # examples tokenised at once: the tokenizer's output for all of MNLI's 393k pairs held 2.5 GB, for 3,000
# long QA contexts (11,000 windows) 0.6 GB


def tokenize(fmt: str, examples: list[dict], tokenizer, max_length: int, *, label2id=None,
             doc_stride: int = 128, train: bool = True) -> list[dict]:
    """Tokenise normalised examples of one format into features, :data:`CHUNK` examples at a time."""
    if len(examples) > CHUNK:
        return [f for i in range(0, len(examples), CHUNK) for f in tokenize(
            fmt, examples[i:i + CHUNK], tokenizer, max_length, label2id=label2id, doc_stride=doc_stride, train=train)]
    if fmt == "classification":
        enc = tokenizer([e["text_a"] for e in examples],
                        [e["text_b"] for e in examples] if examples[0]["text_b"] is not None else None,
                        truncation=True, max_length=max_length)
        return [{"input_ids": ids, "labels": e["label"], **segments(enc, i)}
                for i, (ids, e) in enumerate(zip(enc["input_ids"], examples))]
    if fmt == "multiple_choice":
        feats = []
        for e in examples:
            first = f"{e['context']} {e['question']}".strip()
            enc = tokenizer([first] * len(e["choices"]), e["choices"], truncation=True, max_length=max_length)
            feats.append({"input_ids": enc["input_ids"], "labels": e["label"],
                          **({"token_type_ids": enc["token_type_ids"]} if "token_type_ids" in enc else {})})
        return feats
    if fmt == "tagging":  # every word labelled: long sentences become several windows, none is cut short
        feats = []
        for n, start, ids, words in word_windows([e["tokens"] for e in examples], tokenizer, max_length):
            tags = examples[n]["tags"]
            feats.append({"input_ids": ids, "labels": [label2id[tags[start + w]] if w is not None else IGNORE
                                                       for w in first_sub_words(words)]})
        return feats
    if fmt == "span_qa":
        from . import qa

        if train:
            return qa.prepare_train_features(examples, tokenizer, max_length=max_length, doc_stride=doc_stride)
        return qa.prepare_eval_features(examples, tokenizer, max_length=max_length, doc_stride=doc_stride)
    raise ValueError(f"unknown format {fmt}")


def word_windows(sentences: list[list[str]], tokenizer, max_length: int) -> list[tuple[int, int, list, list]]:
    """``(sentence, first word, input_ids, word_ids)`` per window of pre-split ``sentences``: a sentence whole,
    or, longer than ``max_length`` tokens, consecutive windows of whole words (as XTREME's preprocessing
    splits them); ``word_ids`` count from the window's first word. A word of which the tokenizer keeps
    nothing (a lone space or U+00A0) is read as the unknown token, as XTREME's preprocessing does, so every
    word has a first sub-word to label and tag."""
    if len(sentences) > CHUNK:  # the tokenizer's output for all of a large treebank at once: 0.5 GB for 20,000
        return [(n + i, *window) for i in range(0, len(sentences), CHUNK)
                for n, *window in word_windows(sentences[i:i + CHUNK], tokenizer, max_length)]
    whole = tokenizer(sentences, is_split_into_words=True)  # one call for all
    budget = max_length - tokenizer.num_special_tokens_to_add()
    windows = []
    for n, words in enumerate(sentences):
        ids, word_ids = whole["input_ids"][n], whole.word_ids(n)
        if len(seen := set(word_ids) - {None}) < len(words):
            words = [w if i in seen else tokenizer.unk_token for i, w in enumerate(words)]
            enc = tokenizer([words], is_split_into_words=True)
            ids, word_ids = enc["input_ids"][0], enc.word_ids(0)
        if len(ids) <= max_length:
            windows.append((n, 0, ids, word_ids))
            continue
        for start, stop in _word_ranges(word_ids, len(words), budget):
            enc = tokenizer([words[start:stop]], is_split_into_words=True, truncation=True, max_length=max_length)
            windows.append((n, start, enc["input_ids"][0], enc.word_ids(0)))
    return windows


def _word_ranges(word_ids: list, n_words: int, budget: int) -> list[tuple[int, int]]:
    """``(start, stop)`` word ranges whose sub-words fit ``budget``, from the sentence's ``word_ids``."""
    sizes = [0] * n_words
    for word in word_ids:
        if word is not None:
            sizes[word] += 1
    ranges, start, used = [], 0, 0
    for w, size in enumerate(sizes):  # every word has a sub-word (word_windows reads a dropped one as <unk>)
        if w > start and used + size > budget:
            ranges.append((start, w))
            start, used = w, 0
        used += size
    return ranges + [(start, n_words)]


def first_sub_words(word_ids: list) -> list:
    """Per position, its word where it is the word's first sub-word, else None."""
    previous, firsts = None, []
    for word in word_ids:
        firsts.append(word if word is not None and word != previous else None)
        previous = word
    return firsts


def segments(enc, i: int) -> dict:
    """Row ``i``'s segment ids (the second text of a pair is segment 1) where the tokenizer gives them,
    as mBERT's does; XLM-R's gives none."""
    return {"token_type_ids": enc["token_type_ids"][i]} if "token_type_ids" in enc else {}


def tokenizer_fingerprint(tokenizer) -> str:
    """The tokenizer's vocabulary and rules, without the truncation and padding that its last call left set
    (every call here passes its own): else a cache key would depend on what the process tokenised before."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None), state.pop("padding", None)
    return sha256_json(state)[:16]


def cached_tokenize(cache_dir: str | Path | None, key: dict, fmt: str, examples: list[dict], tokenizer,
                    max_length: int, **kw) -> list[dict]:
    """:func:`tokenize`, memoised on disk under a hash of ``key`` and every tokenisation setting."""
    if cache_dir is None:
        return tokenize(fmt, examples, tokenizer, max_length, **kw)
    import datasets

    datasets.disable_progress_bars()
    ident = sha256_json({**key, "fmt": fmt, "n": len(examples), "max_length": max_length,
                         "tokenizer": tokenizer_fingerprint(tokenizer), "version": __version__, "segments": 1,
                         "windows": 2, "examples": _examples_digest(examples),
                         **kw})[:20]
    path = Path(cache_dir) / f"{key.get('task', 'task')}-{key.get('split', '')}-{ident}"
    if (path / "dataset_info.json").is_file():
        return datasets.load_from_disk(str(path)).to_list()
    feats = tokenize(fmt, examples, tokenizer, max_length, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)  # a folder of its own even beside a process of the same pid
    tmp = shared(Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent)))  # (another node, a container)
    try:
        datasets.Dataset.from_list(feats).save_to_disk(str(tmp))
        with contextlib.suppress(OSError):  # another process (a grid cell on the same data) published them first
            os.rename(tmp, path)  # never over a finished entry, which another process may be reading
    finally:  # left: the features another process published first, or a save interrupted (Ctrl-C, a full disk)
        shutil.rmtree(tmp, ignore_errors=True)
    return feats


def _examples_digest(examples: list[dict]) -> str:
    h = hashlib.sha256()
    for e in examples:
        h.update(repr(sorted(e.items())).encode())
    return h.hexdigest()


def feature_length(feat: dict) -> int:
    ids = feat["input_ids"]
    return max(map(len, ids)) if ids and isinstance(ids[0], list) else len(ids)


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random,
                           group: int = 50) -> list[list[int]]:
    """Shuffle, sort by length inside mega-batches of ``group`` batches, then shuffle the batches.

    Batches hold rows of similar length (little padding) while the order stays random.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mega = batch_size * group
    batches = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start:start + mega], key=lambda i: -lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: list[int], batch_size: int, pack: bool = False) -> list[list[int]]:
    """Evaluation batches: longest first, so padding is minimal and memory peaks early.

    ``pack``: each batch holds up to ``batch_size`` x the longest length in padded tokens, so the first
    has ``batch_size`` rows and batches of shorter rows more, and none needs more memory than the
    first. For a GPU, where a forward pass costs the host about the same time whatever its size; on
    a CPU larger batches of short rows ran slower (BENCHMARKS.md, "On a GPU").
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if not pack:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    budget = batch_size * max(lengths, default=0)
    batches, start = [], 0
    while start < len(order):
        rows = max(batch_size, budget // max(1, lengths[order[start]]))  # a batch's first row is its longest
        batches.append(order[start:start + rows])
        start += rows
    return batches


def collate(feats: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest row; multiple-choice rows become ``[batch, choices, length]``."""
    multi = isinstance(feats[0]["input_ids"][0], list)
    rows = [r for f in feats for r in f["input_ids"]] if multi else [f["input_ids"] for f in feats]
    width = max(map(len, rows))
    lengths = torch.tensor([len(r) for r in rows])
    batch = {"input_ids": _padded(rows, width, pad_id),
             "attention_mask": (torch.arange(width) < lengths[:, None]).long()}
    first = feats[0]
    if "token_type_ids" in first:
        batch["token_type_ids"] = _padded([r for f in feats for r in (f["token_type_ids"] if multi
                                                                     else [f["token_type_ids"]])], width, 0)
    if multi:
        batch = {k: v.view(len(feats), -1, width) for k, v in batch.items()}
    if "labels" in first:
        if isinstance(first["labels"], list):
            batch["labels"] = _padded([f["labels"] for f in feats], width, IGNORE)
        else:
            batch["labels"] = torch.tensor([f["labels"] for f in feats])
    if "start_positions" in first:
        batch["start_positions"] = torch.tensor([f["start_positions"] for f in feats])
        batch["end_positions"] = torch.tensor([f["end_positions"] for f in feats])
    return batch


def _padded(rows: list[list[int]], width: int, value: int) -> torch.Tensor:
    """One ``[rows, width]`` long tensor of ``rows`` right-padded with ``value`` (a single copy from lists)."""
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)
