"""An offline stand-in for XLM-R and the intermediate-task data sets: the default of ``adapterxfer demo``
and of the tests.

A small synthetic world (people and firms doing things to objects in places) has one surface form per
concept in each of XTREME-R's 50 languages, XTREME's 40 and ten more (Latin, Cyrillic, Greek, Arabic, Hebrew,
Devanagari, Gujarati, Thai, Chinese, ... scripts). From it come

* a BPE tokenizer with XLM-R's special tokens, in which every lexicon word is one token;
* a tiny XLM-R (4 layers, hidden 64) "pretrained" for a few seconds on code-switched feature tasks
  (does the second text add content the first lacks, does it negate, the category of each word, which
  words answer a question), so that a FROZEN encoder gives adapters something to work with. Its word
  embeddings are tied across translations (concept vector + a fixed per-language offset), so English
  training can transfer zero-shot to the other languages;
* English data for every intermediate task, with the Hugging Face columns and local file layout of
  :mod:`adapterxfer.tasks`, whose labels follow from the input by rules the pretrained features expose;
* data for XTREME's nine target tasks in its download/ layout (:func:`write_xtreme`): English training
  data and every language's dev and test sets, translated word for word, so the rules transfer zero-shot.
"""
from __future__ import annotations

import csv
import functools
import json
import os
import random
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torch import nn
from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

from .errors import UserError
from .fileio import replace_dir
from .tasks import TASKS, get_task

#: Bump when the model or the data change, so cached demo assets are rebuilt.
DEMO_VERSION = 4
#: Pretraining steps of :func:`build_model_dir` (about 15 s on two idle cores).
PRETRAIN_STEPS = 600

LANGUAGES = ("en", "af", "ar", "bg", "bn", "de", "el", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu",
             "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms", "my", "nl", "pt", "ru", "sw", "ta",
             "te", "th", "tl", "tr", "ur", "vi", "yo", "zh",
             "az", "gu", "ht", "lt", "pa", "pl", "qu", "ro", "uk", "wo")  # XTREME-R's ten more

#: The English lexicon by category; each word is a concept with a surface form in every language.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "PER": ("Anna", "Tom", "Maria", "Ali", "Chen", "Ravi", "Sara", "Omar", "Lena", "Ivan", "Yuki", "Kofi",
            "Nina", "Paul", "Mei", "Juan"),
    "LOC": ("Paris", "Lagos", "Delhi", "Tokyo", "Cairo", "Lima", "Oslo", "Seoul", "Dubai", "Perth", "Quito",
            "Hanoi"),
    "ORG": ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Soylent", "Cyberdyne"),
    "NOUN": ("apple", "ball", "book", "car", "house", "dog", "cat", "tree", "boat", "bread", "letter", "phone",
             "chair", "table", "song", "bird", "cake", "door", "ship", "key", "lamp", "shirt", "horse", "clock"),
    "ADJ": ("red", "blue", "green", "big", "small", "old", "new", "cold", "warm", "dark", "bright", "heavy"),
    "VERB": ("eating", "reading", "buying", "painting", "holding", "selling", "watching", "cleaning",
             "carrying", "cooking", "finding", "making"),
    "DET": ("the",), "AUX": ("is",), "PART": ("not",), "CCONJ": ("and",), "ADP": ("in",),
    "PRON": ("who", "what", "where"), "ADV": ("today", "again", "now", "later", "often", "then"),
}
CATEGORY = {word: cat for cat, words in CATEGORIES.items() for word in words}
CONTENT = ("PER", "LOC", "ORG", "NOUN", "ADJ", "VERB")  # categories that carry meaning
TAGS = tuple(CATEGORIES)  # the pretraining tag set (coarse POS with name types)
CCG_TAGS = {"PER": "NP", "LOC": "NP", "ORG": "NP", "NOUN": "N", "ADJ": "N/N", "VERB": "(S[ng]\\NP)/NP",
            "DET": "NP/N", "AUX": "(S[dcl]\\NP)/(S[ng]\\NP)", "PART": "(S\\NP)\\(S\\NP)", "CCONJ": "conj",
            "ADP": "((S\\NP)\\(S\\NP))/NP", "ADV": "(S\\NP)\\(S\\NP)"}

# ---------------------------------------------------------------------------------------------- lexicon

_LATIN = ("af", "de", "es", "et", "eu", "fi", "fr", "hu", "id", "it", "jv", "ms", "nl", "pt", "sw", "tl",
          "tr", "vi", "yo", "az", "ht", "lt", "pl", "qu", "ro", "wo")
_LATIN_EXTRA = {"de": "äöü", "es": "ñá", "et": "õä", "fi": "äö", "fr": "éèç", "hu": "őű", "pt": "ãç",
                "tr": "ğış", "vi": "ơưđ", "yo": "ẹọṣ", "az": "əçş", "ht": "èò", "lt": "ąčė", "pl": "łńś",
                "ro": "ăîș", "wo": "ëñ"}
_ALPHABETS = {  # (consonants, vowels) for cased scripts, syllable by syllable
    "latin": ("bdfgklmnprstvz", "aeiou"),
    "cyrillic": ("бвгдзклмнпрст", "аеиоуя"),
    "greek": ("βγδζθκλμνπρστφχ", "αεηιουω"),
}
_SCRIPT_RANGES = {  # (first, last code point, letters per word) for the others, letter by letter
    "ar": (0x0621, 0x064A, 4), "fa": (0x0621, 0x064A, 4), "ur": (0x0621, 0x064A, 4),
    "he": (0x05D0, 0x05EA, 4), "hi": (0x0915, 0x0939, 3), "mr": (0x0915, 0x0939, 3),
    "bn": (0x0995, 0x09B9, 3), "ka": (0x10D0, 0x10F0, 4), "ml": (0x0D15, 0x0D39, 3),
    "my": (0x1000, 0x1020, 3), "ta": (0x0B95, 0x0BB9, 3), "te": (0x0C15, 0x0C39, 3),
    "th": (0x0E01, 0x0E2E, 4), "ja": (0x3042, 0x3093, 3), "ko": (0xAC00, 0xD7A3, 2), "zh": (0x4E00, 0x62FF, 2),
    "gu": (0x0A95, 0x0AB9, 3), "pa": (0x0A15, 0x0A38, 3),
}


@functools.cache
def _letters(lang: str) -> list[str]:
    first, last, _ = _SCRIPT_RANGES[lang]
    return [chr(c) for c in range(first, last + 1) if unicodedata.category(chr(c)) in ("Lo", "Ll")]


def _pseudo_word(rng: random.Random, lang: str) -> str:
    if lang in _SCRIPT_RANGES:
        return "".join(rng.choice(_letters(lang)) for _ in range(_SCRIPT_RANGES[lang][2]))
    script = {"bg": "cyrillic", "kk": "cyrillic", "ru": "cyrillic", "uk": "cyrillic", "el": "greek"}.get(lang, "latin")
    consonants, vowels = _ALPHABETS[script]
    vowels += _LATIN_EXTRA.get(lang, "")
    return "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.choice((2, 3))))


def _build_lexicon() -> dict[str, dict[str, str]]:
    """``{lang: {English word: surface form}}``; forms are unique across all languages."""
    lexicon = {"en": {w: w for w in CATEGORY}}
    seen = set(CATEGORY)
    for lang in LANGUAGES[1:]:
        rng, forms = random.Random(f"lexicon/{lang}"), {}
        for word, cat in CATEGORY.items():
            form = None
            while form is None or form in seen:
                form = _pseudo_word(rng, lang)
                if cat in ("PER", "LOC", "ORG"):
                    form = form.capitalize()
            seen.add(form)
            forms[word] = form
        lexicon[lang] = forms
    return lexicon


LEXICON = _build_lexicon()


def render(words: list[str], lang: str = "en") -> list[str]:
    """The surface forms of English lexicon words in ``lang``."""
    return [LEXICON[lang][w] for w in words]


def translate(text: str, lang: str) -> str:
    """A synthetic English text in ``lang``, word for word."""
    return " ".join(render(text.split(), lang))


# ------------------------------------------------------------------------------------------- tokenizer

def build_tokenizer() -> XLMRobertaTokenizerFast:
    """A fast XLM-R tokenizer (BPE, ``<s>=0 <pad>=1 </s>=2 <unk>=3``, ``<mask>`` last) in which every
    lexicon word of every language is one token; other text falls back to characters."""
    words = sorted({form for forms in LEXICON.values() for form in forms.values()})
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    alphabet = [chr(c) for c in range(33, 127)] + sorted({ch for w in words for ch in w})
    trainer = trainers.BpeTrainer(vocab_size=1_000_000, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(words, trainer)
    tok.add_special_tokens(["<mask>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return XLMRobertaTokenizerFast(tokenizer_object=tok, model_max_length=512)


# ----------------------------------------------------------------------------------------------- world

@dataclass(frozen=True)
class Fact:
    """``subj is [not] verb the [adj] obj [in place]``."""

    subj: str
    verb: str
    obj: str
    adj: str | None = None
    place: str | None = None

    @property
    def thing(self) -> list[str]:
        """The object and its adjective, if any."""
        return [*_maybe(self.adj), self.obj]

    def words(self, negated: bool = False, adverb: str | None = None) -> list[str]:
        return [self.subj, "is", *_maybe("not" if negated else None), self.verb, "the", *self.thing,
                *_maybe("in", self.place), *_maybe(adverb)]


def _maybe(*words: str | None) -> list[str]:
    """``words`` if none is missing, else nothing."""
    return list(words) if all(words) else []


def _facts(rng: random.Random, n: int) -> list[Fact]:
    """``n`` facts with distinct subjects, objects and places, so that questions have one answer."""
    subjects = rng.sample(CATEGORIES["PER"] + CATEGORIES["ORG"], n)
    objects, places = rng.sample(CATEGORIES["NOUN"], n), rng.sample(CATEGORIES["LOC"], n)
    return [Fact(s, rng.choice(CATEGORIES["VERB"]), o, rng.choice(CATEGORIES["ADJ"]) if rng.random() < 0.5 else None,
                 p if rng.random() < 0.5 else None) for s, o, p in zip(subjects, objects, places)]


def _join(facts: list[Fact]) -> list[str]:
    words = facts[0].words()
    for fact in facts[1:]:
        words += ["and", *fact.words()]
    return words


def _novel(rng: random.Random, category: str, used: set[str]) -> str:
    return rng.choice([w for w in CATEGORIES[category] if w not in used])


def _swap(rng: random.Random, fact: Fact, used: set[str]) -> Fact:
    """``fact`` with one content word replaced by a word of the same category absent from ``used``."""
    slot = rng.choice([s for s in ("subj", "verb", "obj", "adj", "place") if getattr(fact, s)])
    category = {"subj": CATEGORY[fact.subj], "verb": "VERB", "obj": "NOUN", "adj": "ADJ", "place": "LOC"}[slot]
    return replace(fact, **{slot: _novel(rng, category, used)})


def _shorten(rng: random.Random, fact: Fact) -> Fact:
    """Drop optional modifiers: what is left is still entailed."""
    return replace(fact, adj=fact.adj if rng.random() < 0.5 else None,
                   place=fact.place if rng.random() < 0.5 else None)


def _wrong(rng: random.Random, words: list[str], used: set[str]) -> list[str]:
    """``words`` with every content word replaced by one of its category absent from ``used``."""
    return [_novel(rng, CATEGORY[w], used) if CATEGORY[w] in CONTENT else w for w in words]


def _question(rng: random.Random, fact: Fact) -> tuple[list[str], list[str]]:
    """A who/what/where question about ``fact`` and the words that answer it."""
    kinds = ["who", "what", *_maybe("where" if fact.place else None)]
    kind = rng.choice(kinds)
    where = ["in", fact.place] if fact.place and rng.random() < 0.5 and kind != "where" else []
    if kind == "who":
        return ["who", "is", fact.verb, "the", *fact.thing, *where], [fact.subj]
    if kind == "what":
        return ["what", "is", fact.subj, fact.verb, *where], fact.thing
    return ["where", "is", fact.subj, fact.verb, "the", fact.obj], [fact.place]


def _adverb(rng: random.Random) -> str | None:
    return rng.choice(CATEGORIES["ADV"]) if rng.random() < 0.3 else None


def _content(words: list[str]) -> set[str]:
    return {w for w in words if CATEGORY[w] in CONTENT}


# --------------------------------------------------------------------------------------- pretraining
# A frozen random encoder gives adapters nothing to work with, so the encoder is first trained (all of it)
# on tasks that expose the features the intermediate tasks' rules need, with other heads and label sets.

def _relation_example(rng: random.Random) -> tuple[list[str], list[str], int]:
    """A pair ``a``, ``b`` and its class: 2 if ``b`` names content missing from ``a``, plus 1 if it is negated."""
    facts = _facts(rng, rng.randint(1, 3))
    a = _join(facts)
    fact = rng.choice(facts)
    if rng.random() < 0.5:
        fact = _swap(rng, fact, _content(a))
    kind = rng.random()
    negated = kind < 0.5 and rng.random() < 0.5
    if kind < 0.5:
        b = _shorten(rng, fact).words(negated, _adverb(rng))
    elif kind < 0.75:
        b, _ = _question(rng, fact)
    else:
        b = rng.choice([[fact.subj], ["the", fact.obj], fact.thing, [fact.verb]])
    if rng.random() < 0.3:  # a question after the context, as multiple-choice inputs pack it
        a += _question(rng, rng.choice(facts))[0]
    return a, b, 2 * bool(_content(b) - _content(a)) + negated


def _span_example(rng: random.Random, answerable: bool) -> tuple[list[str], list[str], tuple[int, int] | None]:
    """A question, a context, and the word span ``[start, end)`` answering it (None: unanswerable, the
    question names something the context lacks)."""
    facts = _facts(rng, rng.randint(1, 4))
    context = _join(facts)
    question, answer = _question(rng, rng.choice(facts))
    if not answerable:
        i = rng.choice([i for i, w in enumerate(question) if CATEGORY[w] in CONTENT])
        question[i] = _novel(rng, CATEGORY[question[i]], set(context))
        return question, context, None
    start = context.index(answer[-1]) - len(answer) + 1
    return question, context, (start, start + len(answer))


def _tagging_example(rng: random.Random) -> list[str]:
    facts = _facts(rng, rng.randint(1, 2))
    return rng.choice([_join(facts), _question(rng, facts[0])[0], facts[0].words(True, _adverb(rng))])


def _language(rng: random.Random) -> str:
    return "en" if rng.random() < 0.5 else rng.choice(LANGUAGES[1:])


class _TiedEmbedding(nn.Module):
    """Word embeddings tied across translations, used while pretraining: a lexicon word's row is its
    concept's vector plus a fixed random offset for its language; other tokens keep their own rows."""

    def __init__(self, base: nn.Embedding, tokenizer, generator: torch.Generator):
        super().__init__()
        concepts = {w: i for i, w in enumerate(CATEGORY)}
        concept_of = torch.full((base.num_embeddings,), -1)
        language_of = torch.zeros(base.num_embeddings, dtype=torch.long)
        for i, lang in enumerate(LANGUAGES):
            ids = tokenizer.convert_tokens_to_ids(["▁" + form for form in LEXICON[lang].values()])
            concept_of[ids] = torch.tensor([concepts[w] for w in LEXICON[lang]])
            language_of[ids] = i
        dim = base.embedding_dim
        # offsets from English: small for Latin-script languages, larger for the other scripts
        scale = torch.tensor([0.0 if lang == "en" else 0.005 if lang in _LATIN else 0.01 for lang in LANGUAGES])
        self.base = base
        self.concept = nn.Parameter(torch.randn(len(concepts), dim, generator=generator) * 0.02)
        self.register_buffer("language", torch.randn(len(LANGUAGES), dim, generator=generator) * scale[:, None])
        self.register_buffer("concept_of", concept_of)
        self.register_buffer("language_of", language_of)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        c = self.concept_of[ids]
        # embedding() rather than indexing: its backward is deterministic on CPU
        tied = nn.functional.embedding(c.clamp(min=0), self.concept) + self.language[self.language_of[ids]]
        return torch.where((c >= 0).unsqueeze(-1), tied, self.base(ids))

    def merged(self) -> nn.Embedding:
        """The plain embedding holding every row, to save."""
        with torch.no_grad():
            self.base.weight.copy_(self(torch.arange(self.base.num_embeddings)))
        return self.base


def _encode(tokenizer, a: list[list[str]], b: list[list[str]] | None, rng: random.Random):
    """Tokenize word lists, each segment rendered in a language of its own (code-switched pairs)."""
    a = [render(words, _language(rng)) for words in a]
    b = b and [render(words, _language(rng)) for words in b]
    return tokenizer(a, b, is_split_into_words=True, padding=True, return_tensors="pt")


def _pair_loss(model, heads, enc, a: list[list[str]], b: list[list[str]]):
    """Encode a pair batch; return the last hidden states and auxiliary losses that make matching across
    segments learnable in seconds: which segment each token is in; whether a content word occurs in the
    other segment; and two supervised attention heads: layer 0's first head attends to the other copies of
    a token, the last layer's first head attends from ``<s>`` to the content words of ``b`` missing in ``a``
    (or to ``<s>`` itself when there are none)."""
    out = model(**enc, output_hidden_states=True)
    segment = torch.tensor([[-100 if s is None else s for s in enc.sequence_ids(i)] for i in range(len(a))])
    match = []
    for i, segments in enumerate(zip(a, b)):
        others = (set(segments[1]), set(segments[0]))
        match.append([-100 if w is None or CATEGORY[segments[s][w]] not in CONTENT else int(segments[s][w] in others[s])
                      for w, s in zip(enc.word_ids(i), enc.sequence_ids(i))])
    match = torch.tensor(match)
    hidden = out.last_hidden_state
    loss = (nn.functional.cross_entropy(heads["segment"](hidden).flatten(0, 1), segment.flatten())
            + nn.functional.cross_entropy(heads["match"](hidden).flatten(0, 1), match.flatten()))
    ids, content = enc["input_ids"], match >= 0
    copies = (ids[:, :, None] == ids[:, None, :]) & content[:, :, None] & content[:, None, :]
    copies &= ~torch.eye(ids.shape[1], dtype=torch.bool)
    novel = torch.zeros_like(copies)
    novel[:, 0] = (segment == 1) & (match == 0)
    novel[:, 0, 0] = ~novel[:, 0].any(-1)
    layers = model.config.num_hidden_layers
    return hidden, (loss + _attention_loss(model, 0, out.hidden_states[0], enc["attention_mask"], copies)
                    + _attention_loss(model, layers - 1, out.hidden_states[layers - 1], enc["attention_mask"], novel))


def _attention_loss(model, layer: int, inputs, attention_mask, targets):
    """-log of the attention mass that ``layer``'s first head puts on ``targets`` (batch x query x key),
    for the queries that have a target."""
    attention = model.encoder.layer[layer].attention.self
    size = attention.attention_head_size
    q, k = attention.query(inputs)[..., :size], attention.key(inputs)[..., :size]
    scores = (q @ k.transpose(1, 2)) / size ** 0.5
    probs = scores.masked_fill(~attention_mask.bool()[:, None, :], -1e4).softmax(-1)
    rows = targets.any(-1)
    return -((probs * targets).sum(-1).clamp_min(1e-6).log() * rows).sum() / rows.sum().clamp_min(1)


def _relation_loss(model, heads, tokenizer, rng, size):
    examples = [_relation_example(rng) for _ in range(size)]
    a, b = [a for a, _, _ in examples], [b for _, b, _ in examples]
    hidden, aux = _pair_loss(model, heads, _encode(tokenizer, a, b, rng), a, b)
    logits = heads["relation"](hidden[:, 0])
    return nn.functional.cross_entropy(logits, torch.tensor([y for *_, y in examples])) + aux


def _tagging_loss(model, heads, tokenizer, rng, size):
    sentences = [_tagging_example(rng) for _ in range(size)]
    enc = _encode(tokenizer, sentences, None, rng)
    labels = torch.tensor([[-100 if w is None else TAGS.index(CATEGORY[words[w]]) for w in enc.word_ids(i)]
                           for i, words in enumerate(sentences)])
    logits = heads["tag"](model(**enc).last_hidden_state)
    return nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())


def _span_loss(model, heads, tokenizer, rng, size):
    examples = [_span_example(rng, rng.random() < 0.7) for _ in range(size)]
    questions, contexts = [q for q, _, _ in examples], [c for _, c, _ in examples]
    enc = _encode(tokenizer, questions, contexts, rng)
    targets = torch.tensor([(0, 0) if span is None else
                            (enc.word_to_tokens(i, span[0], 1).start, enc.word_to_tokens(i, span[1] - 1, 1).end - 1)
                            for i, (_, _, span) in enumerate(examples)])
    hidden, aux = _pair_loss(model, heads, enc, questions, contexts)
    logits = heads["span"](hidden).masked_fill(~enc["attention_mask"].bool()[..., None], -1e4)
    return (nn.functional.cross_entropy(logits[..., 0], targets[:, 0])
            + nn.functional.cross_entropy(logits[..., 1], targets[:, 1])) / 2 + aux


def _pretrain(model, tokenizer, steps: int, seed: int, batch_size: int = 32, lr: float = 2e-3) -> None:
    """Train all of ``model`` on the feature tasks in turn (span extraction, the slowest to learn, most
    often); leaves plain word embeddings in place of the tied ones."""
    rng = random.Random(f"pretrain/{seed}")
    dim = model.config.hidden_size
    heads = nn.ModuleDict({"relation": nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 4)),
                           "tag": nn.Linear(dim, len(TAGS)), "span": nn.Linear(dim, 2), "match": nn.Linear(dim, 2),
                           "segment": nn.Linear(dim, 2)})
    tied = _TiedEmbedding(model.embeddings.word_embeddings, tokenizer, torch.Generator().manual_seed(seed))
    model.embeddings.word_embeddings = tied
    params = [p for p in [*model.parameters(), *heads.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, foreach=True)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, (steps - s) / max(1, steps - warmup + 1)))
    losses = (_relation_loss, _span_loss, _span_loss, _relation_loss, _span_loss, _tagging_loss)
    model.eval()  # no dropout: every batch is fresh data
    for step in range(steps):
        loss = losses[step % len(losses)](model, heads, tokenizer, rng, batch_size)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.embeddings.word_embeddings = tied.merged()


# ---------------------------------------------------------------------------------------------- model

def tiny_config(vocab_size: int) -> XLMRobertaConfig:
    """The tiny XLM-R shape: 4 layers, hidden 64, 4 heads, XLM-R's 514 positions (512 tokens)."""
    return XLMRobertaConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                            intermediate_size=128, max_position_embeddings=514, type_vocab_size=1,
                            pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)


def _atomic_dir(path: Path, fill) -> Path:
    """Run ``fill(tmp)`` on a fresh folder beside ``path``, then move it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        fill(tmp)
        replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def build_model_dir(path: str | os.PathLike, seed: int = 0, steps: int = PRETRAIN_STEPS) -> Path:
    """Write a pretrained tiny XLM-R (``model.safetensors``, config, tokenizer) to ``path``, atomically.

    Loadable with ``AutoModel``/``AutoTokenizer``/``AutoModelForSequenceClassification`` and
    ``adapters.XLMRobertaAdapterModel``; the same ``seed`` and ``steps`` give the same weights on one machine.
    """
    tokenizer = build_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = XLMRobertaModel(tiny_config(len(tokenizer)))
        _pretrain(model, tokenizer, steps, seed)

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return _atomic_dir(Path(path), fill)


# ------------------------------------------------------------------------------------------ task data

def _text(words: list[str]) -> str:
    return " ".join(words)


def nli_rows(rng: random.Random, n: int, split: str, facts: tuple[int, int] = (1, 2), unlabeled: float = 0.0):
    """Entailment: a premise fact, maybe shortened; contradiction: the same, negated; neutral: a fact about
    things the premise does not mention, negated or not. Labels as in GLUE/ANLI/SNLI (0, 1, 2; -1: none)."""
    rows = []
    for i in range(n):
        premise_facts = _facts(rng, rng.randint(*facts))
        premise = _join(premise_facts)
        label = rng.randrange(3)
        fact = _shorten(rng, rng.choice(premise_facts))
        hypothesis = fact.words(label == 2 or (label == 1 and rng.random() < 0.5), _adverb(rng))
        if label == 1:
            hypothesis = _wrong(rng, hypothesis, _content(premise))
        rows.append({"premise": _text(premise), "hypothesis": _text(hypothesis),
                     "label": -1 if rng.random() < unlabeled else label, "idx": i})
    return rows


def _qqp_rows(rng: random.Random, n: int, split: str):
    """Duplicates differ at most by an adverb; non-duplicates also change one content word."""
    rows = []
    for i in range(n):
        q1, _ = _question(rng, _facts(rng, 1)[0])
        q2, label = list(q1), rng.randrange(2)
        if not label:
            j = rng.choice([j for j, w in enumerate(q1) if CATEGORY[w] in CONTENT])
            q2[j] = _novel(rng, CATEGORY[q1[j]], set(q1))
        if rng.random() < 0.5:
            q2.append(rng.choice(CATEGORIES["ADV"]))
        rows.append({"question1": _text(q1), "question2": _text(q2), "label": label, "idx": i})
    return rows


def _squad_rows(rng: random.Random, n: int, split: str, unanswerable: float = 0.0):
    """Who/what/where questions over 1-4 facts; unanswerable ones name something the context lacks.
    Dev answers to multi-word spans also accept the last word, as SQuAD dev lists several answers."""
    rows = []
    for i in range(n):
        question, context, span = _span_example(rng, rng.random() >= unanswerable)
        answers = {"text": [], "answer_start": []}
        if span is not None:
            starts = [span[0]] + [span[1] - 1] * (split != "train" and span[1] - span[0] > 1)
            for start in starts:
                answers["text"].append(_text(context[start:span[1]]))
                answers["answer_start"].append(len(_text(context[:start])) + bool(start))
        rows.append({"id": f"{split}-{i:06d}", "title": context[0], "context": _text(context),
                     "question": _text(question), "answers": answers})
    return rows


def _choices(rng: random.Random, answer: list[str], used: set[str], n: int) -> tuple[list[str], int]:
    """``n`` distinct choices: ``answer`` and wrong ones, shuffled; returns them and the answer's index."""
    choices = {_text(answer)}
    while len(choices) < n:
        choices.add(_text(_wrong(rng, answer, used)))
    choices = sorted(choices)
    rng.shuffle(choices)
    return choices, choices.index(_text(answer))


def _hellaswag_rows(rng: random.Random, n: int, split: str):
    """The context ends with a subject; the right ending repeats what the context says it does."""
    rows = []
    for i in range(n):
        facts = _facts(rng, rng.randint(1, 3))
        fact = rng.choice(facts)
        ctx_a, ctx_b = _join(facts), ["then", fact.subj]
        ending = ["is", fact.verb, "the", fact.obj, *_maybe(_adverb(rng))]
        endings, label = _choices(rng, ending, _content(ctx_a), 4)
        rows.append({"ind": i, "activity_label": fact.verb, "ctx_a": _text(ctx_a), "ctx_b": _text(ctx_b),
                     "ctx": _text(ctx_a + ctx_b), "endings": endings, "label": str(label)})
    return rows


def _commonsenseqa_rows(rng: random.Random, n: int, split: str):
    """Facts then "what is X verb": the right choice is X's object."""
    rows = []
    for i in range(n):
        facts = _facts(rng, rng.randint(1, 3))
        fact = rng.choice(facts)
        question = _join(facts) + ["what", "is", fact.subj, fact.verb]
        texts, label = _choices(rng, [fact.obj], set(question), 5)
        rows.append({"id": f"{split}-{i:06d}", "question": _text(question), "question_concept": fact.subj,
                     "choices": {"label": list("ABCDE"), "text": texts}, "answerKey": "ABCDE"[label]})
    return rows


def _cosmosqa_rows(rng: random.Random, n: int, split: str):
    """A who/what/where question over facts; the right answer is in the context."""
    rows = []
    for i in range(n):
        facts = _facts(rng, rng.randint(1, 3))
        context = _join(facts)
        question, answer = _question(rng, rng.choice(facts))
        answers, label = _choices(rng, answer, set(context), 4)
        rows.append({"id": f"{split}-{i:06d}", "context": _text(context), "question": _text(question),
                     **{f"answer{j}": a for j, a in enumerate(answers)}, "label": label})
    return rows


def _socialiqa_rows(rng: random.Random, n: int, split: str):
    """"Who is verb-ing the object": the right person is in the context (labels "1"-"3" as in the source)."""
    rows = []
    for i in range(n):
        facts = _facts(rng, rng.randint(1, 3))
        fact = rng.choice(facts)
        context = _join(facts)
        question = ["who", "is", fact.verb, "the", fact.obj]
        answers, label = _choices(rng, [fact.subj], set(context), 3)
        rows.append({"context": _text(context), "question": _text(question),
                     **{f"answer{c}": a for c, a in zip("ABC", answers)}, "label": str(label + 1)})
    return rows


def _copa_items(rng: random.Random, n: int) -> list[tuple[list[str], str, list[list[str]], int]]:
    """(premise, cause|effect, two choices, label): the right choice restates part of the premise, the other
    names things it lacks."""
    items = []
    for _ in range(n):
        facts = _facts(rng, rng.randint(1, 2))
        premise = _join(facts)
        right = _shorten(rng, rng.choice(facts)).words(adverb=_adverb(rng))
        wrong, label = _wrong(rng, right, _content(premise)), rng.randrange(2)
        items.append((premise, rng.choice(("cause", "effect")), [wrong, right] if label else [right, wrong], label))
    return items


def _copa_row(item, i: int, lang: str = "en") -> dict:
    """A COPA/XCOPA jsonl row; the question stays English ("cause"/"effect"), as in XCOPA's files."""
    premise, question, choices, label = item
    return {"premise": " ".join(render(premise, lang)), "choice1": " ".join(render(choices[0], lang)),
            "choice2": " ".join(render(choices[1], lang)), "question": question, "label": label, "idx": i}


def _arc_rows(rng: random.Random, n: int, split: str):
    """Facts then "what is X verb": the right choice is X's object. As in ARC, most questions have 4 choices,
    some 3 or 5, and keys are letters or (some questions) digits."""
    rows = []
    for i in range(n):
        facts = _facts(rng, rng.randint(1, 3))
        fact = rng.choice(facts)
        question = _join(facts) + ["what", "is", fact.subj, fact.verb]
        texts, label = _choices(rng, [fact.obj], set(question), rng.choice((3, 4, 4, 4, 5)))
        keys = "1234" if len(texts) == 4 and rng.random() < 0.2 else "ABCDE"[:len(texts)]
        rows.append({"id": f"{split}-{i:06d}", "question": _text(question),
                     "choices": {"text": texts, "label": list(keys)}, "answerKey": keys[label]})
    return rows


def _ccg_sentences(rng: random.Random, n: int, split: str):
    """Sentences of 1-2 facts, some negated, tagged with supertags by word category."""
    sentences = []
    for _ in range(n):
        facts = _facts(rng, rng.randint(1, 2))
        words = facts[0].words(rng.random() < 0.3, _adverb(rng))
        for fact in facts[1:]:
            words += ["and", *fact.words(rng.random() < 0.3, _adverb(rng))]
        sentences.append([(w, CCG_TAGS[CATEGORY[w]]) for w in words])
    return sentences


#: Row makers by data set (a source's subdir, else the task's name): ``(rng, n, split) -> rows``.
_MAKERS = {
    "mnli": nli_rows,
    "anli": lambda rng, n, split: nli_rows(rng, n, split, facts=(2, 3)),
    "snli": lambda rng, n, split: nli_rows(rng, n, split, facts=(1, 1), unlabeled=0.05),
    "qqp": _qqp_rows,
    "squad_v1": _squad_rows,
    "squad_v2": lambda rng, n, split: _squad_rows(rng, n, split, unanswerable=1 / 3),
    "hellaswag": _hellaswag_rows,
    "commonsenseqa": _commonsenseqa_rows,
    "cosmosqa": _cosmosqa_rows,
    "socialiqa": _socialiqa_rows,
    "copa": lambda rng, n, split: [_copa_row(item, i) for i, item in enumerate(_copa_items(rng, n))],
    "arc_easy": _arc_rows,
    "arc_challenge": _arc_rows,
    "ccg": _ccg_sentences,
}


#: The tasks that :func:`write_all` writes: every single intermediate task.
INTERMEDIATE_TASKS = tuple(spec for spec in TASKS.values() if not spec.members and not spec.is_target)


def _write_rows(path: Path, rows: list, local_format: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if local_format == "conll":
        text = "".join("".join(f"{tok}\t{tag}\n" for tok, tag in sentence) + "\n" for sentence in rows)
        path.with_suffix(".conll").write_text(text, encoding="utf-8")
    else:
        path.with_suffix(".jsonl").write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def _write_task(spec, data_dir: Path, n_train: int, n_dev: int, seed: int) -> None:
    for source in spec.sources:
        make = _MAKERS[source.subdir or spec.name]
        for split, names in source.splits.items():
            n = max(1, (n_train if split == "train" else n_dev) // len(names))
            for name in names:
                rng = random.Random(f"{spec.name}/{source.subdir}/{name}/{seed}")
                _write_rows(data_dir / source.subdir / name, make(rng, n, split), source.local_format)


def write_task_data(task_name: str, data_dir: str | os.PathLike, n_train: int = 400, n_dev: int = 200,
                    seed: int = 0) -> Path:
    """Write English synthetic data for one intermediate task to ``data_dir`` in the local layout its
    :class:`~adapterxfer.tasks.Source` entries name (``[subdir/]<split>.jsonl`` or ``.conll``), atomically.
    Tasks with several source splits (ANLI's rounds) share ``n_train``/``n_dev`` among them."""
    spec = get_task(task_name)
    if spec not in INTERMEDIATE_TASKS:
        raise UserError(f"no synthetic data for '{spec.name}': only for the single intermediate tasks "
                        f"({', '.join(t.name for t in INTERMEDIATE_TASKS)})")
    return _atomic_dir(Path(data_dir), lambda tmp: _write_task(spec, tmp, n_train, n_dev, seed))


def write_all(data_dir: str | os.PathLike, n_train: int = 400, n_dev: int = 200, seed: int = 0) -> Path:
    """Write every single task's data to ``data_dir/<task>/``, atomically as a whole."""
    def fill(tmp: Path) -> None:
        for spec in INTERMEDIATE_TASKS:
            _write_task(spec, tmp / spec.name, n_train, n_dev, seed)
    return _atomic_dir(Path(data_dir), fill)


# ---------------------------------------------------------------------------------- XTREME target data
# Every file that a target task's ``files`` patterns name, with the same English examples translated word
# for word into each language (labels kept): a rule learnt on English holds in every language.

#: UD part-of-speech tags of the word categories that are not UD tags already.
UD_TAGS = {"PER": "PROPN", "LOC": "PROPN", "ORG": "PROPN"}
_NAMES = ("PER", "ORG", "LOC")


def _paws_pairs(rng: random.Random, n: int) -> list[tuple[list[str], list[str], int]]:
    """Paraphrases (1) repeat a fact, maybe with another adverb; the others (0) also change one content word
    or negate the fact: high word overlap either way, as PAWS."""
    pairs = []
    for _ in range(n):
        fact, label = _facts(rng, 1)[0], rng.randrange(2)
        a = fact.words(adverb=_adverb(rng))
        negated = not label and rng.random() < 0.3
        if not label and not negated:
            fact = _swap(rng, fact, _content(a))
        pairs.append((a, fact.words(negated, _adverb(rng)), label))
    return pairs


def _nli_pairs(rng: random.Random, n: int) -> list[tuple[list[str], list[str], int]]:
    """MNLI's rules (:func:`nli_rows`), as word lists."""
    return [(r["premise"].split(), r["hypothesis"].split(), r["label"]) for r in nli_rows(rng, n, "")]


def _pos_sentence(rng: random.Random) -> list[tuple[str, str]]:
    return [(w, UD_TAGS.get(CATEGORY[w], CATEGORY[w])) for w in _tagging_example(rng)]


def _ner_sentence(rng: random.Random) -> list[tuple[str, str]]:
    """Names are entities (IOB2 tags); some span two words of their category ("Anna Chen": B-PER I-PER)."""
    words = _tagging_example(rng)
    used, tagged = set(words), []
    for w in words:
        cat = CATEGORY[w]
        if cat not in _NAMES:
            tagged.append((w, "O"))
            continue
        tagged.append((w, f"B-{cat}"))
        if rng.random() < 0.3:
            second = _novel(rng, cat, used)
            used.add(second)
            tagged.append((second, f"I-{cat}"))
    return tagged


def _qa_items(rng: random.Random, n: int) -> list[tuple[list[str], list[str], tuple[int, int]]]:
    """Answerable who/what/where questions: (question, context, answer word span)."""
    return [_span_example(rng, True) for _ in range(n)]


#: English examples of each non-retrieval target task: ``(rng, n) -> examples``.
_XTREME_MAKERS = {
    "pawsx": _paws_pairs,
    "xnli": _nli_pairs,
    "udpos": lambda rng, n: [_pos_sentence(rng) for _ in range(n)],
    "panx": lambda rng, n: [_ner_sentence(rng) for _ in range(n)],
    "xquad": _qa_items, "mlqa": _qa_items, "tydiqa": _qa_items,
    "xcopa": _copa_items,
}


def _write_tsv(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)


def _write_examples(path: Path, spec, source, examples, lang: str, split: str, alternatives: bool) -> None:
    """``examples`` rendered in ``lang``, in the source's local format; labelled unless ``split`` is one of
    the source's unlabelled splits."""
    labelled = split not in source.unlabelled
    path.parent.mkdir(parents=True, exist_ok=True)
    if source.local_format == "tsv":  # xnli/, pawsx/: sentence1<TAB>sentence2[<TAB>label]
        _write_tsv(path, [[" ".join(render(a, lang)), " ".join(render(b, lang))] + [spec.labels[y]] * labelled
                          for a, b, y in examples])
    elif source.local_format == "table":  # xcopa/: XCOPA's jsonl rows, labelled also in test as XCOPA's
        path.write_text("".join(json.dumps(_copa_row(item, i, lang), ensure_ascii=False) + "\n"
                                for i, item in enumerate(examples)), encoding="utf-8")
    elif source.local_format == "conll":  # udpos/, panx/: token<TAB>tag lines (tokens only in tests)
        lines = []
        for sentence in examples:
            words = render([w for w, _ in sentence], lang)
            lines += [f"{w}\t{tag}" if labelled else w for w, (_, tag) in zip(words, sentence)] + [""]
        path.write_text("\n".join(lines), encoding="utf-8")
    else:  # SQuAD JSON; unlabelled as XTREME's remove_qa_test_annotations leaves it (one empty answer)
        paragraphs = []
        for i, (question, context, (start, end)) in enumerate(examples):
            words = render(context, lang)
            answers = [{"text": "", "answer_start": 0}]
            if labelled:  # SQuAD's dev lists several answers: the last word of a longer span is one too
                starts = [start] + [end - 1] * (alternatives and end - start > 1)
                answers = [{"text": " ".join(words[s:end]), "answer_start": len(" ".join(words[:s])) + bool(s)}
                           for s in starts]
            qid = f"{source.lang_names.get(lang, lang)}-{split}-{i:05d}"
            paragraphs.append({"context": " ".join(words), "qas": [
                {"id": qid, "question": " ".join(render(question, lang)), "answers": answers}]})
        path.write_text(json.dumps({"version": "1.1", "data": [{"title": "synthetic", "paragraphs": paragraphs}]},
                                   ensure_ascii=False), encoding="utf-8")


def _sentences(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct English sentences of one or two facts."""
    found: dict[str, None] = {}
    while len(found) < n:
        facts = _facts(rng, rng.randint(1, 2))
        found[_text(rng.choice([_join(facts), facts[0].words(rng.random() < 0.3, _adverb(rng))]))] = None
    return list(found)


def _write_bucc(pattern: str, root: Path, lang: str, n: int, rng: random.Random, gold: bool) -> None:
    """``n`` sentences a side, half of them translations of each other (the gold pairs), in random order;
    ids as BUCC's (``de-000000001``)."""
    pairs = n // 2
    english = _sentences(rng, 2 * n - pairs)  # the first ``pairs`` on both sides, the others on one
    sides = {lang: [translate(s, lang) for s in english[:n]], "en": english[:pairs] + english[n:]}
    ids = {}
    for side, sentences in sides.items():
        order = rng.sample(range(n), n)
        ids[side] = {i: f"{side}-{k + 1:09d}" for k, i in enumerate(order)}
        path = root / pattern.format(lang=lang, side=side)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{ids[side][i]}\t{sentences[i]}\n" for i in order), encoding="utf-8")
    if gold:
        (root / pattern.format(lang=lang, side="gold")).write_text(
            "".join(f"{ids[lang][i]}\t{ids['en'][i]}\n" for i in range(pairs)), encoding="utf-8")


def _write_tatoeba(pattern: str, root: Path, lang: str, n: int, rng: random.Random) -> None:
    """``n`` sentences in ``lang`` and their English translations, sorted as XTREME's download sorts them."""
    english = _sentences(rng, n)
    path = root / pattern.format(lang=lang, side=lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(translate(s, lang) + "\n" for s in english), encoding="utf-8")
    (root / pattern.format(lang=lang, side="en")).write_text("".join(s + "\n" for s in sorted(english)),
                                                             encoding="utf-8")


def _write_xtreme_task(spec, root: Path, sizes: dict[str, int], seed: int) -> None:
    for source in spec.sources:
        for split, pattern in source.files.items():
            langs = spec.all_languages if "{lang}" in pattern else ("en",)
            if spec.format == "retrieval":
                for lang in langs:
                    rng = random.Random(f"xtreme/{spec.name}/{split}/{lang}/{seed}")
                    if spec.name == "tatoeba":
                        _write_tatoeba(pattern, root, lang, sizes[split], rng)
                    else:
                        _write_bucc(pattern, root, lang, sizes[split], rng, gold=split == "dev")
                continue
            examples = _XTREME_MAKERS[spec.name](random.Random(f"xtreme/{pattern}/{seed}"), sizes[split])
            if split == "dev" and "en" not in langs:  # the English dev set of training (XCOPA's: COPA's)
                langs = ("en", *langs)
            for lang in langs:
                path = root / pattern.format(lang=lang, name=source.lang_names.get(lang, lang))
                _write_examples(path, spec, source, examples, lang, split,
                                alternatives=pattern == "squad/dev-v1.1.json")


def write_xtreme(root: str | os.PathLike, tasks=None, n_train: int = 400, n_dev: int = 100, n_test: int = 50,
                 seed: int = 0) -> Path:
    """Write learnable synthetic data for XTREME's target tasks (default: all nine) in the ``download/``
    layout of XTREME's ``scripts/download_data.sh`` to ``root``, atomically.

    English training data (MNLI-like ``xnli/train-en.tsv``, PAWS-like pairs, UD POS and PAN-X IOB tags
    from the word categories, SQuAD v1.1 train and dev, TyDi QA's English training part) and, for every
    language of each task (XTREME's and XTREME-R's), the same ``n_dev`` dev and ``n_test`` test examples
    translated word for word:
    dev files labelled (also for udpos' kk, th, tl, yo, which XTREME lacks), test files unlabelled as
    XTREME strips them. BUCC: ``n_dev``/``n_test`` sentences a side, half of them gold pairs (gold for dev
    only); Tatoeba: ``n_test`` sentences per language (gold: :func:`write_tatoeba_labels`)."""
    specs = [get_task(t) for t in tasks] if tasks else [t for t in TASKS.values() if t.is_target]
    unknown = [s.name for s in specs if not s.is_target]
    if unknown:
        raise UserError(f"not XTREME target tasks: {', '.join(unknown)}")
    sizes = {"train": n_train, "dev": n_dev, "test": n_test}

    def fill(tmp: Path) -> None:
        for spec in specs:
            _write_xtreme_task(spec, tmp, sizes, seed)
    return _atomic_dir(Path(root), fill)


#: Every surface form's English word (forms are unique across languages).
_ENGLISH = {form: word for forms in LEXICON.values() for word, form in forms.items()}


def write_tatoeba_labels(root: str | os.PathLike, label_dir: str | os.PathLike) -> Path:
    """The gold of the synthetic Tatoeba files under ``root`` in XTREME's label layout
    (``label_dir/tatoeba/test-<lang>.tsv``: for each line of the sorted English file, the line of its
    translation in the other language's file), found by translating the sentences back; returns ``label_dir``."""
    spec = get_task("tatoeba")
    pattern, folder = spec.sources[0].files["test"], Path(label_dir) / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    for lang in spec.all_languages:
        sentences, english = (
            (Path(root) / pattern.format(lang=lang, side=side)).read_text(encoding="utf-8").splitlines()
            for side in (lang, "en"))
        line = {" ".join(_ENGLISH[w] for w in s.split()): i for i, s in enumerate(sentences)}
        gold = [line[s] for s in english]
        (folder / f"test-{lang}.tsv").write_text("".join(f"{i}\n" for i in gold), encoding="utf-8")
    return Path(label_dir)


# ----------------------------------------------------------------------------------------------- demo

def demo_assets(cache_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The demo's model folder and data root under ``<cache_dir>/demo-v<DEMO_VERSION>`` (default cache
    dir: ``$XDG_CACHE_HOME/adapterxfer`` or ``~/.cache/adapterxfer``), built on first use and reused after.
    The data root holds a folder per intermediate task (:func:`write_all`) and ``xtreme/``, the target
    tasks in XTREME's download/ layout (:func:`write_xtreme`). Both folders appear atomically, so one that
    exists is complete."""
    if cache_dir is None:
        cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "adapterxfer"
    root = Path(cache_dir) / f"demo-v{DEMO_VERSION}"
    model_dir, data_root = root / "model", root / "data"
    if not model_dir.is_dir():
        build_model_dir(model_dir)
    if not data_root.is_dir():
        def fill(tmp: Path) -> None:
            write_all(tmp)
            write_xtreme(tmp / "xtreme")
        _atomic_dir(data_root, fill)
    return model_dir, data_root
