"""Metrics against hand-computed values (the arithmetic is in the comments)."""
import warnings

import pytest

from adapterxfer.errors import UserError
from adapterxfer.metrics import (accuracy, bucc_f1, mean, missing_ids, mlqa_scores, normalize_mlqa,
                                 normalize_squad, squad_scores, tagging_f1, tatoeba_accuracy)

approx = lambda x: pytest.approx(x, rel=1e-12, abs=1e-12)  # noqa: E731


# --- mean / accuracy -----------------------------------------------------------------------------

def test_mean_is_plain_mean():
    assert mean([50.0, 100.0, 75.0]) == 75.0  # 225 / 3


def test_mean_sums_left_to_right_like_xtreme():
    # (1e16 + 1.0) rounds back to 1e16, then - 1e16 = 0.0; 0 / 3 = 0. A compensated sum
    # (math.fsum, Python 3.12's sum) would keep the 1.0 and give 1/3.
    assert mean([1e16, 1.0, -1e16]) == 0.0


def test_mean_of_nothing_is_an_error():
    with pytest.raises(UserError):
        mean([])


def test_accuracy_is_a_percentage():
    # 3 of 4 equal -> 3 / 4 * 100 = 75
    assert accuracy(["a", "b", "c", "a"], ["a", "b", "c", "c"]) == {"accuracy": 75.0}


def test_accuracy_rejects_length_mismatch_and_empty():
    with pytest.raises(UserError, match="2 predicted labels for 3 gold labels"):
        accuracy(["a", "b"], ["a", "b", "c"])
    with pytest.raises(UserError):
        accuracy([], [])


def test_tatoeba_accuracy():
    # indices 3,1,0,0 vs 3,1,2,0: 3 right of 4 -> 75
    assert tatoeba_accuracy([3, 1, 0, 0], [3, 1, 2, 0]) == {"accuracy": 75.0}


# --- tagging -------------------------------------------------------------------------------------

def test_tagging_f1_iob_entities():
    # gold: PER(0-1), LOC(3) | sentence 2: ORG(0)  -> 3 gold entities
    # pred: PER(0-1), ORG(3) | sentence 2: ORG(0)  -> 3 predicted, 2 correct (PER, ORG in s2)
    # P = 2/3, R = 2/3, F1 = 2/3
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    scores = tagging_f1(pred, gold)
    assert scores == {"f1": approx(200 / 3), "precision": approx(200 / 3), "recall": approx(200 / 3)}
    assert list(scores) == ["f1", "precision", "recall"]


def test_tagging_f1_follows_seqeval_1_2_for_pos_tags():
    # seqeval >= 1.2 splits a prefix-less tag into prefix = first letter, type = the rest:
    # CCONJ -> (C, CONJ), SCONJ -> (S = single, CONJ), SYM -> (S, YM), NOUN -> (N, OUN).
    # gold CCONJ SCONJ NOUN: CCONJ opens a CONJ chunk; SCONJ (S, same type) restarts it at 1 without
    #   closing 0; NOUN closes (CONJ,1,1) and opens (OUN,2,2)          -> gold {(CONJ,1,1), (OUN,2,2)}
    # pred CCONJ SYM NOUN: type changes at each token                  -> {(CONJ,0,0), (YM,1,1), (OUN,2,2)}
    # correct = 1: P = 1/3, R = 1/2, F1 = 2 * 1/6 / (5/6) = 0.4.
    # (seqeval 0.0.12 keeps whole tags as types: gold {CCONJ, SCONJ, NOUN}, pred {CCONJ, SYM, NOUN},
    #  2 correct, P = R = F1 = 2/3, so this test tells the two behaviours apart.)
    scores = tagging_f1([["CCONJ", "SYM", "NOUN"]], [["CCONJ", "SCONJ", "NOUN"]])
    assert scores == {"f1": approx(40.0), "precision": approx(100 / 3), "recall": approx(50.0)}


def test_tagging_f1_no_entities_scores_zero():
    assert tagging_f1([["O", "O"]], [["B-PER", "O"]]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_tagging_f1_is_seqevals_three_scores_to_the_bit():
    # one pass of seqeval's precision_recall_fscore_support gives what its f1/precision/recall_score give
    import random

    from seqeval.metrics import f1_score, precision_score, recall_score

    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "NOUN", "SCONJ", "CCONJ"]
    for _ in range(20):
        gold = [[rng.choice(tags) for _ in range(rng.randint(1, 8))] for _ in range(rng.randint(1, 30))]
        pred = [[t if rng.random() < .6 else rng.choice(tags) for t in s] for s in gold]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = {"f1": float(f1_score(gold, pred)) * 100, "precision": float(precision_score(gold, pred)) * 100,
                        "recall": float(recall_score(gold, pred)) * 100}
        assert tagging_f1(pred, gold) == expected


def test_tagging_f1_rejects_misaligned_sentences():
    with pytest.raises(UserError, match="sentence 2: 1 predicted tags for 2 gold tags"):
        tagging_f1([["O"], ["O"]], [["O"], ["O", "O"]])
    with pytest.raises(UserError, match="1 predicted sentences for 2 gold sentences"):
        tagging_f1([["O"]], [["O"], ["O"]])


# --- BUCC ----------------------------------------------------------------------------------------

def test_bucc_f1_is_set_based():
    gold = [("de-1", "en-1"), ("de-2", "en-2"), ("de-3", "en-3"), ("de-4", "en-4")]
    # the duplicate of (de-1, en-1) counts once: predicted set {1-1, 2-9, 3-3}, 2 correct
    # P = 2/3, R = 2/4, F1 = 2 * (1/3) / (7/6) = 4/7
    pred = [("de-1", "en-1"), ("de-1", "en-1"), ("de-2", "en-9"), ("de-3", "en-3")]
    assert bucc_f1(pred, gold) == {"f1": approx(400 / 7), "precision": approx(200 / 3), "recall": approx(50.0)}


def test_bucc_f1_nothing_right():
    assert bucc_f1([("a", "b")], [("a", "c")]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    assert bucc_f1([], [("a", "c")]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


# --- SQuAD ---------------------------------------------------------------------------------------

def test_normalize_squad():
    assert normalize_squad("The  Eiffel-Tower, (Paris)!") == "eiffeltower paris"
    assert normalize_squad("an apple a day") == "apple day"
    # only ASCII punctuation: guillemets and the ideographic full stop stay
    assert normalize_squad("«Paris»。") == "«paris»。"


def test_squad_scores_by_hand():
    gold = {"q1": ["the Eiffel Tower"], "q2": ["Paris", "Paris, France"], "q3": ["1889"]}
    preds = {"q1": "Eiffel Tower.",      # EM 1, F1 1
             "q2": "in Paris France",    # EM 0; vs "paris": P 1/3 R 1 -> F1 1/2; vs "paris france":
                                         # P 2/3 R 1 -> F1 0.8; best 0.8
             "extra": "ignored"}         # q3 missing -> 0; "extra" is not a gold id
    # EM = 100 * 1 / 3, F1 = 100 * (1 + 0.8) / 3 = 60
    assert squad_scores(preds, gold) == {"exact_match": approx(100 / 3), "f1": approx(60.0)}
    assert missing_ids(preds, gold) == ["q3"]


def test_squad_f1_counts_repeated_tokens():
    # pred "a b b" -> "b b" (article a dropped), gold "b c": common = min(2,1) b = 1
    # P = 1/2, R = 1/2, F1 = 1/2
    assert squad_scores({"q": "a b b"}, {"q": ["b c"]}) == {"exact_match": 0.0, "f1": 50.0}


def test_squad_v2_no_answer():
    gold = {"u1": [], "u2": [], "u3": [], "a1": ["cat"]}
    # u1 "" right; u2 "the" normalises to "" -> right; u3 "a dog" wrong; a1 "" wrong
    # EM = F1 = 100 * 2 / 4 = 50
    preds = {"u1": "", "u2": "the", "u3": "a dog", "a1": ""}
    assert squad_scores(preds, gold) == {"exact_match": 50.0, "f1": 50.0}


def test_squad_scores_needs_gold():
    with pytest.raises(UserError):
        squad_scores({"q": "x"}, {})


# --- MLQA ----------------------------------------------------------------------------------------

def test_mlqa_punctuation_is_unicode():
    # « » (Pi/Pf), ¿ (Po), the ideographic full stop (Po) all go; SQuAD keeps them
    assert normalize_mlqa("«¿Qué?» sí。", "es") == "qué sí"
    assert normalize_mlqa("राम।", "hi") == "राम"  # Devanagari danda is punctuation


@pytest.mark.parametrize("lang, text, expected", [
    ("de", "Der Hund und die Katze", "hund und katze"),
    ("de", "einem Haus des Volkes", "haus volkes"),
    ("de", "the house", "the house"),                 # English articles stay in German
    ("es", "El perro y la gata", "perro y gata"),
    ("es", "unos libros, las casas", "libros casas"),
    ("en", "The cat and a dog", "cat and dog"),
    ("en", "el perro", "el perro"),                   # Spanish articles stay in English
    ("vi", "cái bàn của tôi", "bàn tôi"),
    ("hi", "एक किताब", "एक किताब"),                   # Hindi: no articles
    ("ar", "الكتاب", "كتاب"),
    ("ar", "مالك", "م ك"),                            # MLQA removes every "ال", even inside words
])
def test_mlqa_articles_per_language(lang, text, expected):
    assert normalize_mlqa(text, lang) == expected


def test_mlqa_chinese_mixed_segmentation():
    # CJK characters become single tokens, other runs split on whitespace, punctuation is gone
    assert normalize_mlqa("（英语：EMF）电化电池 abc def", "zh") == "英 语 emf 电 化 电 池 abc def"
    assert normalize_mlqa("the 电池", "zh") == "the 电 池"  # no article removal for zh


def test_mlqa_scores_by_hand():
    gold_de = {"q1": ["der Vertrag von Versailles"], "q2": ["die Katze"]}
    # q1 "Vertrag von Versailles" == "vertrag von versailles"; q2 "eine Katze!" -> "katze": both EM 1
    assert mlqa_scores({"q1": "Vertrag von Versailles", "q2": "eine Katze!"}, gold_de, "de") == {
        "exact_match": 100.0, "f1": 100.0}
    # the same under SQuAD normalisation: q1 tokens {vertrag von versailles} vs {der ...}: P 1, R 3/4,
    # F1 6/7; q2 "eine katze" vs "die katze": 1 common, P = R = 1/2, F1 1/2. EM 0.
    assert squad_scores({"q1": "Vertrag von Versailles", "q2": "eine Katze!"}, gold_de) == {
        "exact_match": 0.0, "f1": approx(100 * (6 / 7 + 0.5) / 2)}

    gold_zh = {"z1": ["电化电池"], "z2": ["太阳能电池"]}
    # z1 "电化电池。" -> "电 化 电 池" == gold: EM 1, F1 1
    # z2 "电池" -> [电, 池] vs [太, 阳, 能, 电, 池]: 2 common, P 1, R 2/5, F1 2 * 2/5 / (7/5) = 4/7
    # EM = 100 * 1/2 = 50, F1 = 100 * (1 + 4/7) / 2 = 550/7
    assert mlqa_scores({"z1": "电化电池。", "z2": "电池"}, gold_zh, "zh") == {
        "exact_match": 50.0, "f1": approx(550 / 7)}


def test_mlqa_unknown_language():
    with pytest.raises(UserError, match="'fr'"):
        mlqa_scores({"q": "x"}, {"q": ["x"]}, "fr")
