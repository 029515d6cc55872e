"""Seeded, reproducible noise on evaluation inputs (never on labels), for robustness studies.

``--perturb NAME:RATE`` (repeatable). Character-level operations work on grapheme clusters (``\\X``),
so a Thai vowel sign, a Devanagari conjunct or an accent is never split from its base letter and the
text stays valid Unicode; they touch letters inside words only, never spaces. Word-level operations
work on whitespace-separated words (text in scripts written without spaces, Thai or Chinese, is one
word to them). Of a text's n letters (or words), RATE * n change on average: the whole part always,
the fraction with that probability, so short texts get their share too.

* ``char_swap``: swap a cluster with its right neighbour in the same word
* ``char_drop``: delete a cluster (never a word's last one)
* ``char_insert``: repeat a cluster of the same word in place (a typed-twice key)
* ``char_keyboard``: replace a Latin letter by a QWERTY neighbour; other scripts: by another cluster
  of the same word
* ``word_drop``, ``word_swap`` (with the next word), ``word_dup``: on words

Where an input carries per-token labels (tagging), a token keeps its label: word operations move,
drop or copy the token together with its tag. In QA only the question is perturbed, so answer offsets
in the context stay valid.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import regex

from .errors import UserError

CHAR_OPS = ("char_swap", "char_drop", "char_insert", "char_keyboard")
WORD_OPS = ("word_drop", "word_swap", "word_dup")
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEYS = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}


@dataclass(frozen=True)
class Perturbation:
    name: str
    rate: float

    def __str__(self):
        return f"{self.name}:{self.rate:g}"


def parse(specs) -> list[Perturbation]:
    """``["char_swap:0.1", ...]`` -> perturbations; one clear error for a bad one."""
    out = []
    for spec in specs or ():
        name, _, rate = spec.partition(":")
        if name not in CHAR_OPS + WORD_OPS:
            raise UserError(f"--perturb {spec}: unknown operation '{name}' (choose from "
                            f"{', '.join(CHAR_OPS + WORD_OPS)})")
        try:
            value = float(rate)
        except ValueError:
            raise UserError(f"--perturb {spec}: expected NAME:RATE with RATE between 0 and 1") from None
        if not 0 <= value <= 1:
            raise UserError(f"--perturb {spec}: RATE must be between 0 and 1")
        if Perturbation(name, value) in out:  # the same seeded draw again: char_swap would swap back
            raise UserError(f"--perturb {spec}: given twice; give one rate for {name}")
        out.append(Perturbation(name, value))
    return out


def _rng(seed: int, op: Perturbation, key: str) -> random.Random:
    return random.Random(f"{seed}|{op}|{key}")


def _count(rate: float, n: int, rng: random.Random) -> int:
    whole = int(rate * n)
    return min(n, whole + (rng.random() < rate * n - whole))


def _neighbour(cluster: str, word: list[str], rng: random.Random) -> str:
    lower = cluster.lower()
    if lower in _KEYS:
        r, i = _KEYS[lower]
        options = [row[j] for row_index, row in enumerate(_ROWS) for j in range(len(row))
                   if abs(row_index - r) <= 1 and abs(j - i) <= 1 and row[j] != lower]
        choice = rng.choice(options)
        return choice.upper() if cluster.isupper() else choice
    others = [c for c in word if c != cluster]
    return rng.choice(others) if others else cluster


def perturb_chars(text: str, op: Perturbation, rng: random.Random) -> str:
    """Apply a character-level operation to about ``rate`` of the letter clusters of ``text``."""
    return " ".join(_perturb_words(text.split(" "), op, rng))


def _perturb_words(words: list[str], op: Perturbation, rng: random.Random) -> list[str]:
    """:func:`perturb_chars` on a list of space-free words, which keep their number and order."""
    words = [regex.findall(r"\X", w) for w in words]
    slots = [(w, i) for w, clusters in enumerate(words) for i, c in enumerate(clusters)
             if regex.match(r"\p{L}|\p{M}|\p{N}", c)]
    for w, i in sorted(rng.sample(slots, _count(op.rate, len(slots), rng)), reverse=True):  # right to left: indices stay valid
        word = words[w]
        if i >= len(word):
            continue
        if op.name == "char_swap" and i + 1 < len(word):
            word[i], word[i + 1] = word[i + 1], word[i]
        elif op.name == "char_drop" and len(word) > 1:
            del word[i]
        elif op.name == "char_insert":
            word.insert(i, word[i])
        elif op.name == "char_keyboard":
            word[i] = _neighbour(word[i], word, rng)
    return ["".join(w) for w in words]


def perturb_words(items: list, op: Perturbation, rng: random.Random) -> list:
    """Apply a word-level operation to about ``rate`` of the items (words, or (token, tag) pairs)."""
    items = list(items)
    for i in sorted(rng.sample(range(len(items)), _count(op.rate, len(items), rng)), reverse=True):
        if op.name == "word_drop" and len(items) > 1:
            del items[i]
        elif op.name == "word_swap" and i + 1 < len(items):
            items[i], items[i + 1] = items[i + 1], items[i]
        elif op.name == "word_dup":
            items.insert(i, items[i])
    return items


def perturb_text(text: str, ops: list[Perturbation], seed: int, key: str) -> str:
    for op in ops:
        rng = _rng(seed, op, key)
        text = perturb_chars(text, op, rng) if op.name in CHAR_OPS else " ".join(
            perturb_words(text.split(" "), op, rng))
    return text


def perturb_example(ex: dict, fmt: str, ops: list[Perturbation], seed: int, key: str) -> dict:
    """A perturbed copy of one normalised example; labels, contexts and answers are left alone."""
    if not ops:
        return ex
    ex = dict(ex)
    if fmt == "classification":
        ex["text_a"] = perturb_text(ex["text_a"], ops, seed, key + "/a")
        if ex.get("text_b") is not None:
            ex["text_b"] = perturb_text(ex["text_b"], ops, seed, key + "/b")
    elif fmt == "span_qa":
        ex["question"] = perturb_text(ex["question"], ops, seed, key + "/q")
    elif fmt == "multiple_choice":  # the premise and every choice; the template's question stays
        ex["context"] = perturb_text(ex["context"], ops, seed, key + "/c")
        ex["choices"] = [perturb_text(c, ops, seed, f"{key}/{i}") for i, c in enumerate(ex["choices"])]
    elif fmt == "tagging":
        pairs = list(zip(ex["tokens"], ex["tags"] if ex["tags"] is not None else [None] * len(ex["tokens"])))
        for op in ops:
            rng = _rng(seed, op, key)
            if op.name in WORD_OPS:
                pairs = perturb_words(pairs, op, rng)
            else:  # on the sentence's words at once; a token may hold spaces (Vietnamese UD's "Hà Nội")
                parts = [t.split(" ") for t, _ in pairs]
                words = iter(_perturb_words([w for part in parts for w in part], op, rng))
                pairs = [(" ".join(next(words) for _ in part), tag) for part, (_, tag) in zip(parts, pairs)]
        ex["tokens"] = [t for t, _ in pairs]
        ex["tags"] = None if ex["tags"] is None else [tag for _, tag in pairs]
    else:
        raise ValueError(fmt)
    return ex
