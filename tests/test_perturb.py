"""Perturbations: deterministic per seed, about the requested share, valid text in every script, labels kept."""
import unicodedata

import pytest
import regex

from adapterxfer import synthetic
from adapterxfer.errors import UserError
from adapterxfer.perturb import CHAR_OPS, WORD_OPS, parse, perturb_example, perturb_text
from adapterxfer.zeroshot import evaluate_run

TEXTS = {
    "en": "the quick brown fox jumps over the lazy dog near the river bank today",
    "th": "สวัสดีครับ ผม ชื่อ สมชาย วันนี้ อากาศ ดี มาก ครับ",
    "hi": "नमस्ते दुनिया आप कैसे हैं मैं ठीक हूँ धन्यवाद",
    "zh": "我们 今天 去 北京 看 长城 和 故宫",
    "ar": "مرحبا بالعالم كيف حالك اليوم يا صديقي",
}


def clusters(text):
    return [c for c in regex.findall(r"\X", text) if not c.isspace()]


@pytest.mark.parametrize("op", CHAR_OPS + WORD_OPS)
def test_deterministic_for_a_seed(op):
    ops = parse([f"{op}:0.3"])
    for text in TEXTS.values():
        assert perturb_text(text, ops, 7, "k") == perturb_text(text, ops, 7, "k")
    assert any(perturb_text(t, ops, 7, "k") != perturb_text(t, ops, 8, "k") for t in TEXTS.values())


@pytest.mark.parametrize("lang", list(TEXTS))
@pytest.mark.parametrize("op", ["char_swap", "char_drop", "char_insert"])
def test_char_ops_keep_grapheme_clusters_whole(lang, op):
    """Every cluster of the output is a cluster of the input: no vowel sign or virama is split off."""
    text = TEXTS[lang]
    for seed in range(20):
        out = perturb_text(text, parse([f"{op}:0.3"]), seed, "k")
        assert set(clusters(out)) <= set(clusters(text)), (lang, out)
        assert unicodedata.is_normalized("NFC", out) == unicodedata.is_normalized("NFC", text)
        assert out.count(" ") == text.count(" ")  # spaces are never touched


def test_char_share_is_about_the_rate():
    text = TEXTS["en"]
    n = len([c for c in text if c.isalpha()])
    # char_keyboard replaces letters in place: count the positions that differ over many texts
    changed = total = 0
    for seed in range(300):
        out = perturb_text(text, parse(["char_keyboard:0.1"]), seed, "k")
        assert len(out) == len(text)
        changed += sum(a != b for a, b in zip(out, text))
        total += n
    assert 0.07 < changed / total < 0.13, changed / total


def test_word_share_is_about_the_rate():
    words = TEXTS["en"].split()
    dropped = sum(len(words) - len(perturb_text(TEXTS["en"], parse(["word_drop:0.2"]), s, "k").split())
                  for s in range(300))
    assert 0.16 < dropped / (300 * len(words)) < 0.24


def test_qa_perturbs_only_the_question():
    ex = {"id": "1", "question": "where does Anna live today", "context": "Anna lives in Paris.",
          "answers": {"text": ["Paris"], "answer_start": [14]}}
    out = perturb_example(ex, "span_qa", parse(["char_swap:0.5", "word_drop:0.3"]), 1, "x")
    assert out["question"] != ex["question"]
    assert out["context"] == ex["context"] and out["answers"] == ex["answers"]
    assert out["context"][14:19] == "Paris"


@pytest.mark.parametrize("op", CHAR_OPS + WORD_OPS)
def test_tagging_tokens_keep_their_tags(op):
    tokens = "Anna and Omar visit the old harbour of Lagos with Chen".split()
    tags = ["B-PER", "O", "B-PER", "O", "O", "O", "O", "O", "B-LOC", "O", "B-PER"]
    ex = {"tokens": tokens, "tags": tags}
    out = perturb_example(ex, "tagging", parse([f"{op}:0.4"]), 3, "s")
    assert len(out["tokens"]) == len(out["tags"]) and all(out["tokens"])
    if op in WORD_OPS:  # words move, vanish or repeat together with their tags
        assert all((t, g) in set(zip(tokens, tags)) for t, g in zip(out["tokens"], out["tags"]))
    else:  # characters change inside tokens; the tag sequence is the same
        assert out["tags"] == tags and len(out["tokens"]) == len(tokens)
    assert ex["tokens"] == tokens  # the input is not modified



@pytest.mark.parametrize("op", CHAR_OPS)
def test_tagging_tokens_with_spaces_keep_their_tags(op):
    """A UD token may hold a space (Vietnamese "Hà Nội"): it stays one token, with its own tag."""
    tokens, tags = ["Khi nào", "anh", "đi", "Hà Nội", "?"], ["ADV", "PRON", "VERB", "PROPN", "PUNCT"]
    for seed in range(10):
        out = perturb_example({"tokens": tokens, "tags": tags}, "tagging", parse([f"{op}:0.5"]), seed, "s")
        assert out["tags"] == tags and len(out["tokens"]) == len(tokens), out
        assert [t.count(" ") for t in out["tokens"]] == [t.count(" ") for t in tokens]
        assert out["tokens"][-1] == "?"


@pytest.mark.parametrize("labels", [True, False])
def test_word_operations_on_unlabelled_tagging_files_are_refused(tmp_path, labels):
    """XTREME's PAN-X test files carry no tags to move with the tokens: no gold, given now (--labels) or later,
    could be lined up with predictions on word-level noise."""
    download = synthetic.write_xtreme(tmp_path / "download", tasks=["panx"], n_train=4, n_dev=2, n_test=2)
    (tmp_path / "labels").mkdir()
    run = dict(task="panx", model="m", split="test", data_dir=str(download),
               labels_dir=str(tmp_path / "labels") if labels else None)
    with pytest.raises(UserError, match="--perturb word_drop: on panx a word operation moves each tag with its token"):
        evaluate_run(None, str(tmp_path / "out"), perturbations=["char_swap:0.1", "word_drop:0.1"], **run)
    assert not (tmp_path / "out").exists()

def test_labels_are_never_touched():
    ex = {"text_a": "a man sleeps", "text_b": "nobody sleeps", "label": 2}
    out = perturb_example(ex, "classification", parse(["word_swap:1", "char_drop:0.5"]), 0, "k")
    assert out["label"] == 2 and (out["text_a"], out["text_b"]) != (ex["text_a"], ex["text_b"])


@pytest.mark.parametrize("spec, message", [("char_flip:0.1", "unknown operation"),
                                           ("char_swap", "expected NAME:RATE"),
                                           ("word_drop:1.5", "between 0 and 1"),
                                           (["char_swap:0.1", "word_drop:0.1", "char_swap:0.10"], "given twice")])
def test_bad_specs(spec, message):
    with pytest.raises(UserError, match=message):
        parse(spec if isinstance(spec, list) else [spec])
