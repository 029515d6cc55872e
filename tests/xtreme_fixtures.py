"""A tiny copy of the ``download/`` folder that XTREME's ``scripts/download_data.sh`` writes, for tests.

Same paths and file formats as the real folder, a few sentences per language, every language of each
task: labelled training (English) and dev files, test files without labels as XTREME strips them,
SQuAD v1.1 and the English TyDi QA training part. The counts below say what each file holds.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from adapterxfer.tasks import TASKS

N_TRAIN, N_DEV, N_TEST = 4, 3, 2  # examples (sentences, questions) per file
N_BUCC, N_BUCC_GOLD, N_TATOEBA = 4, 2, 3  # sentences per side, gold pairs, Tatoeba sentences
UDPOS_WITHOUT_DEV = ("kk", "th", "tl", "yo")  # as in XTREME's UD 2.7 download

#: Three words per language ("house water book"): every script XTREME covers appears somewhere.
WORDS = {lang: words.split() for lang, words in {
    "af": "huis water boek", "ar": "بيت ماء كتاب", "bg": "къща вода книга", "bn": "বাড়ি জল বই",
    "de": "Haus Wasser Buch", "el": "σπίτι νερό βιβλίο", "en": "house water book", "es": "casa agua libro",
    "et": "maja vesi raamat", "eu": "etxe ur liburu", "fa": "خانه آب کتاب", "fi": "talo vesi kirja",
    "fr": "maison eau livre", "he": "בית מים ספר", "hi": "घर पानी किताब", "hu": "ház víz könyv",
    "id": "rumah air buku", "it": "casa acqua libro", "ja": "家 水 本", "jv": "omah banyu buku",
    "ka": "სახლი წყალი წიგნი", "kk": "үй су кітап", "ko": "집 물 책", "ml": "വീട് വെള്ളം പുസ്തകം",
    "mr": "घर पाणी पुस्तक", "ms": "rumah air buku", "my": "အိမ် ရေ စာအုပ်", "nl": "huis water boek",
    "pt": "casa água livro", "ru": "дом вода книга", "sw": "nyumba maji kitabu", "ta": "வீடு தண்ணீர் புத்தகம்",
    "te": "ఇల్లు నీరు పుస్తకం", "th": "บ้าน น้ำ หนังสือ", "tl": "bahay tubig aklat", "tr": "ev su kitap",
    "ur": "گھر پانی کتاب", "vi": "nhà nước sách", "yo": "ilé omi ìwé", "zh": "房子 水 书",
}.items()}


def sentence(lang: str, i: int) -> str:
    w = WORDS[lang]
    return f"{w[i % 3]} {w[(i + 1) % 3]} {i}"


def write_xtreme_layout(root: str | Path, languages=None) -> Path:
    """Write the fixture under ``root`` (the ``download/`` folder) and return it. ``languages`` limits the
    per-language files to those languages; English training data and SQuAD are always written."""
    root = Path(root)
    keep = (lambda lang: True) if languages is None else (lambda lang: lang in languages)
    for task, writer in _WRITERS.items():
        writer(root, [lang for lang in TASKS[task].languages if keep(lang)])
    _squad(root / "squad/train-v1.1.json", "en", N_TRAIN)
    _squad(root / "squad/dev-v1.1.json", "en", N_DEV)
    _squad(root / "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json", "en", N_TRAIN)
    return root


def _tsv(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)


def _pairs(root, folder, langs, labels):
    """xnli/, pawsx/: ``sentence1<TAB>sentence2<TAB>label``, the label left out of test files."""
    rows = lambda lang, n: [[sentence(lang, i), sentence(lang, i + 1), labels[i % len(labels)]] for i in range(n)]
    train = rows("en", N_TRAIN)
    train[0][0] = 'He said "yes" twice'  # csv quoting, as XTREME's csv.writer
    _tsv(root / folder / "train-en.tsv", train)
    for lang in langs:
        _tsv(root / folder / f"dev-{lang}.tsv", rows(lang, N_DEV))
        _tsv(root / folder / f"test-{lang}.tsv", [row[:2] for row in rows(lang, N_TEST)])


def _tags(root, folder, langs, tags, no_dev=()):
    """udpos/, panx/: ``token<TAB>tag`` lines, a blank line after each sentence; tokens only in tests."""
    def write(path, lang, n, labelled=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(n):
            lines += [f"{w}\t{tags[j]}" if labelled else w
                      for j, w in enumerate(sentence(lang, i).split())] + [""]
        path.write_text("\n".join(lines), encoding="utf-8")  # XTREME ends the last sentence with one newline
    write(root / folder / "train-en.tsv", "en", N_TRAIN)
    for lang in langs:
        if lang not in no_dev:
            write(root / folder / f"dev-{lang}.tsv", lang, N_DEV)
        write(root / folder / f"test-{lang}.tsv", lang, N_TEST, labelled=False)


def _squad(path: Path, lang: str, n: int, labelled: bool = True) -> None:
    """SQuAD v1.1 JSON; unlabelled as XTREME's ``remove_qa_test_annotations`` (one empty answer)."""
    paragraphs = []
    for i in range(n):
        context = f"{sentence(lang, i)}. {sentence(lang, i + 1)}."
        answer = WORDS[lang][(i + 1) % 3]
        given = {"text": answer, "answer_start": context.index(answer)} if labelled else {"text": "", "answer_start": 0}
        paragraphs.append({"context": context, "qas": [
            {"id": f"{lang}-{i}", "question": f"{WORDS[lang][i % 3]}?", "answers": [given]}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]},
                               ensure_ascii=False), encoding="utf-8")


def _bucc(root, langs):
    """bucc2018/: ``<lang>-en.{dev,test}.{<lang>,en}`` as ``id<TAB>sentence``; gold pairs for dev only."""
    for lang in langs:
        for split in ("dev", "test"):
            prefix = root / "bucc2018" / f"{lang}-en.{split}"
            prefix.parent.mkdir(parents=True, exist_ok=True)
            for side in (lang, "en"):
                Path(f"{prefix}.{side}").write_text(
                    "".join(f"{side}-{i:09d}\t{sentence(side, i)}\n" for i in range(N_BUCC)), encoding="utf-8")
            if split == "dev":
                Path(f"{prefix}.gold").write_text(
                    "".join(f"{lang}-{i:09d}\ten-{i:09d}\n" for i in range(N_BUCC_GOLD)), encoding="utf-8")


def _tatoeba(root, langs):
    """tatoeba/: ``<lang>-en.<lang>`` and ``<lang>-en.en``, the English side sorted as XTREME's preprocessing."""
    for lang in langs:
        path = root / "tatoeba" / f"{lang}-en.{lang}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(sentence(lang, i) + "\n" for i in range(N_TATOEBA)), encoding="utf-8")
        english = sorted(sentence("en", i) for i in range(N_TATOEBA))
        (root / "tatoeba" / f"{lang}-en.en").write_text("".join(s + "\n" for s in english), encoding="utf-8")


def _qa(root, langs, test_path, dev_path=None):
    for lang in langs:
        _squad(root / test_path.format(lang=lang), lang, N_TEST, labelled=False)
        if dev_path:
            _squad(root / dev_path.format(lang=lang), lang, N_DEV)


_WRITERS = {
    "pawsx": lambda root, langs: _pairs(root, "pawsx", langs, ("0", "1")),
    "xnli": lambda root, langs: _pairs(root, "xnli", langs, ("entailment", "neutral", "contradiction")),
    "panx": lambda root, langs: _tags(root, "panx", langs, ("B-LOC", "I-LOC", "O")),  # a tag per word of a sentence
    "udpos": lambda root, langs: _tags(root, "udpos", langs, ("NOUN", "NOUN", "NUM"), UDPOS_WITHOUT_DEV),
    "bucc2018": _bucc,
    "tatoeba": _tatoeba,
    "xquad": lambda root, langs: _qa(root, langs, "xquad/xquad.{lang}.json"),
    "mlqa": lambda root, langs: _qa(root, langs, "mlqa/MLQA_V1/test/test-context-{lang}-question-{lang}.json",
                                    "mlqa/MLQA_V1/dev/dev-context-{lang}-question-{lang}.json"),
    "tydiqa": lambda root, langs: _qa(root, langs, "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json"),
}
