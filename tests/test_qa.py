import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import XLMRobertaTokenizerFast

from adapterxfer.errors import UserError
from adapterxfer.qa import postprocess, prepare_eval_features, prepare_train_features

ANSWER = "Captain Marlowe"
FILLER = [f"On day {i} the crew of the ship counted {3 * i} barrels of rum and sang loudly."
          for i in range(12)]
LONG_CONTEXT = " ".join(FILLER[:7] + [f"The treasure was buried by {ANSWER} beside the old lighthouse."]
                        + FILLER[7:])
QUESTION = "Who buried the treasure?"
SHORT_CONTEXT = "The capital of France is Paris"


@pytest.fixture(scope="module")
def tok():
    """A small SentencePiece-like BPE tokenizer with XLM-R's special tokens and pair template."""
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=150, show_progress=False,
                                  special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.train_from_iterator([LONG_CONTEXT, QUESTION, SHORT_CONTEXT, "What is the capital of France?"],
                            trainer)
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return XLMRobertaTokenizerFast(tokenizer_object=bpe)


def example(context, answer=None, id_="q1", question=QUESTION):
    answers = {"text": [answer] if answer else [], "answer_start": [context.index(answer)] if answer else []}
    return {"id": id_, "question": question, "context": context, "answers": answers}


def context_ids(tok, feat):
    """The context tokens of a window: between '</s> </s>' after the question and the final '</s>'."""
    ids = feat["input_ids"]
    sep = ids.index(tok.sep_token_id)
    assert ids[sep + 1] == tok.sep_token_id and ids[-1] == tok.sep_token_id
    return ids[sep + 2:-1]


def span_text(context, offsets, start, end):
    return context[offsets[start][0]:offsets[end][1]].strip()


def test_train_answer_span_matches_answer_text(tok):
    ex = example("The treasure was buried by Captain Marlowe beside the old lighthouse.", ANSWER)
    [feat] = prepare_train_features([ex], tok, max_length=64, doc_stride=16)
    [evf] = prepare_eval_features([ex], tok, max_length=64, doc_stride=16)
    s, e = feat["start_positions"], feat["end_positions"]
    assert 0 < s <= e
    assert feat["input_ids"] == evf["input_ids"] and feat["attention_mask"] == [1] * len(feat["input_ids"])
    assert span_text(ex["context"], evf["offset_mapping"], s, e) == ANSWER
    assert tok.backend_tokenizer.decode(feat["input_ids"][s:e + 1]) == ANSWER


@pytest.mark.parametrize("answer", ["Paris", "The capital"])  # last and first words of the context
def test_answer_at_context_edges(tok, answer):
    ex = example(SHORT_CONTEXT, answer, question="What is the capital of France?")
    [feat] = prepare_train_features([ex], tok, max_length=64, doc_stride=16)
    [evf] = prepare_eval_features([ex], tok, max_length=64, doc_stride=16)
    s, e = feat["start_positions"], feat["end_positions"]
    assert evf["offset_mapping"][s] is not None and evf["offset_mapping"][e] is not None
    assert span_text(SHORT_CONTEXT, evf["offset_mapping"], s, e) == answer


def test_long_context_windows_target_answer_or_cls(tok):
    ex = example(LONG_CONTEXT, ANSWER)
    feats = prepare_train_features([ex], tok, max_length=48, doc_stride=16)
    evfs = prepare_eval_features([ex], tok, max_length=48, doc_stride=16)
    assert len(feats) == len(evfs) > 3
    windows = [context_ids(tok, f) for f in feats]

    # Consecutive windows overlap by doc_stride tokens and together cover the whole context.
    full = tok(LONG_CONTEXT, add_special_tokens=False)["input_ids"]
    rebuilt = windows[0] + [t for w in windows[1:] for t in w[16:]]
    assert all(a[-16:] == b[:16] for a, b in zip(windows, windows[1:]))
    assert rebuilt == full

    with_answer = 0
    for feat, evf, window in zip(feats, evfs, windows):
        s, e = feat["start_positions"], feat["end_positions"]
        if ANSWER in tok.backend_tokenizer.decode(window):
            with_answer += 1
            assert tok.backend_tokenizer.decode(feat["input_ids"][s:e + 1]) == ANSWER
            assert span_text(LONG_CONTEXT, evf["offset_mapping"], s, e) == ANSWER
        else:
            assert (s, e) == (0, 0)
    assert 1 <= with_answer < len(feats)


def test_unanswerable_targets_cls_in_every_window(tok):
    feats = prepare_train_features([example(LONG_CONTEXT)], tok, max_length=48, doc_stride=16)
    assert len(feats) > 3
    assert all((f["start_positions"], f["end_positions"]) == (0, 0) for f in feats)


def test_eval_offsets_only_on_context_tokens(tok):
    exs = [example(LONG_CONTEXT, ANSWER, "a"), example(SHORT_CONTEXT, "Paris", "b")]
    feats = prepare_eval_features(exs, tok, max_length=48, doc_stride=16)
    assert [f["example_id"] for f in feats][-1] == "b" and {f["example_id"] for f in feats} == {"a", "b"}
    for f in feats:
        ids, offsets = f["input_ids"], f["offset_mapping"]
        sep = ids.index(tok.sep_token_id)
        assert offsets[:sep + 2] == [None] * (sep + 2) and offsets[-1] is None
        assert all(o is not None for o in offsets[sep + 2:-1])
        context = LONG_CONTEXT if f["example_id"] == "a" else SHORT_CONTEXT
        text = context[offsets[sep + 2][0]:offsets[-2][1]].strip()
        assert tok.backend_tokenizer.decode(ids[sep + 2:-1]) == text


def test_overlong_question_is_cut(tok):
    question = "Who " + "really " * 150 + "buried the treasure?"
    feats = prepare_train_features([example(LONG_CONTEXT, ANSWER, question=question)], tok,
                                   max_length=48, doc_stride=8, max_query_length=12)
    for f in feats:
        assert f["input_ids"].index(tok.sep_token_id) <= 13  # <s> + at most 12 question tokens
    assert any(f["start_positions"] > 0 for f in feats)


# --- post-processing -------------------------------------------------------------------------------

def token_span(offsets, context, text):
    """Indices of the tokens holding the first and last characters of ``text`` (None if outside)."""
    def cover(char):
        return next((t for t, o in enumerate(offsets) if o is not None and o[0] <= char < o[1]), None)

    first = context.index(text)
    return cover(first), cover(first + len(text) - 1)


def flat_logits(feats, value=-5.0):
    return ([np.full(len(f["input_ids"]), value) for f in feats],
            [np.full(len(f["input_ids"]), value) for f in feats])


def long_eval_features(tok):
    exs = [example(LONG_CONTEXT, ANSWER)]
    return exs, prepare_eval_features(exs, tok, max_length=48, doc_stride=16)


def window_with(feats, text):
    for w, f in enumerate(feats):
        s, e = token_span(f["offset_mapping"], LONG_CONTEXT, text)
        if s is not None and e is not None:
            return w, s, e
    raise AssertionError(text)


def test_postprocess_finds_best_span_across_windows(tok):
    exs, feats = long_eval_features(tok)
    starts, ends = flat_logits(feats)
    w, s, e = window_with(feats, ANSWER)
    starts[w][s], ends[w][e] = 8.0, 7.0
    dw, ds, de = window_with(feats, "barrels")
    assert dw != w
    starts[dw][ds], ends[dw][de] = 6.0, 6.0
    for i in range(len(feats)):  # <s>, question tokens and padding never make an answer without v2
        starts[i][:4] = ends[i][:4] = 50.0
        starts[i], ends[i] = np.append(starts[i], [99.0, 99.0]), np.append(ends[i], [99.0, 99.0])
    assert postprocess(exs, feats, starts, ends) == {"q1": ANSWER}

    starts[dw][ds], ends[dw][de] = 10.0, 10.0  # 20 > 15: the span in the other window wins
    assert postprocess(exs, feats, starts, ends) == {"q1": "barrels"}


def test_postprocess_respects_max_answer_length_and_order(tok):
    exs, feats = long_eval_features(tok)
    starts, ends = flat_logits(feats)
    long_answer = f"{ANSWER} beside the old lighthouse."
    w, s, e_long = window_with(feats, long_answer)
    _, e_short = token_span(feats[w]["offset_mapping"], LONG_CONTEXT, ANSWER)
    starts[w][s] = 5.0
    ends[w][e_long], ends[w][e_short], ends[w][s - 1] = 5.0, 3.0, 9.0  # s - 1: an end before the start
    short_len = e_short - s + 1
    assert e_long - s + 1 > short_len
    assert postprocess(exs, feats, starts, ends, max_answer_length=30) == {"q1": long_answer}
    assert postprocess(exs, feats, starts, ends, max_answer_length=short_len) == {"q1": ANSWER}


def test_postprocess_null_answer_uses_lowest_cls_score(tok):
    exs, feats = long_eval_features(tok)
    starts, ends = flat_logits(feats)
    w, s, e = window_with(feats, ANSWER)
    starts[w][s], ends[w][e] = 8.0, 7.0  # span score 15
    for i in range(len(feats)):
        starts[i][0] = ends[i][0] = 9.0  # null score 18 in every window
    assert postprocess(exs, feats, starts, ends, allow_impossible=True) == {"q1": ""}
    assert postprocess(exs, feats, starts, ends) == {"q1": ANSWER}

    other = (w + 1) % len(feats)
    starts[other][0] = ends[other][0] = 1.0  # null score is the minimum over windows: 2 < 15
    assert postprocess(exs, feats, starts, ends, allow_impossible=True) == {"q1": ANSWER}


def test_postprocess_example_without_features_and_length_mismatch(tok):
    exs, feats = long_eval_features(tok)
    starts, ends = flat_logits(feats)
    missing = {"id": "nothing", "context": "x", "question": "y", "answers": {"text": [], "answer_start": []}}
    assert postprocess(exs + [missing], feats, starts, ends)["nothing"] == ""
    with pytest.raises(ValueError):
        postprocess(exs, feats, starts[:-1], ends)


def test_one_character_answer_after_a_lone_metaspace_token(tok):
    """With XLM-R's pre-tokenizer (split on whitespace, then Metaspace), '▁' alone (before a character the
    vocabulary lacks) shares that character's offsets; the target must still start and end on the answer,
    not end before it starts."""
    backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace()])
    tok = XLMRobertaTokenizerFast(tokenizer_object=backend)
    ex = example("The capital of France is 水 indeed", "水")
    [feat] = prepare_train_features([ex], tok, max_length=64, doc_stride=16)
    [evf] = prepare_eval_features([ex], tok, max_length=64, doc_stride=16)
    s, e = feat["start_positions"], feat["end_positions"]
    assert tok.convert_ids_to_tokens(feat["input_ids"][s - 1]) == "▁"  # the case: a lone '▁' before it
    assert 0 < s <= e and span_text(ex["context"], evf["offset_mapping"], s, e) == "水"


def test_long_question_is_cut_to_leave_the_context_more_than_the_stride(tok):
    question = "Who " + "really " * 40 + "buried the treasure?"
    ex = example(LONG_CONTEXT, ANSWER, question=question)
    for prepare in (prepare_train_features, prepare_eval_features):
        feats = prepare([ex], tok, max_length=48, doc_stride=24)  # the tokenizer panics on a question this long
        assert len(feats) > 1 and all(len(context_ids(tok, f)) > 24 for f in feats[:-1])
    assert any(f["start_positions"] > 0 for f in prepare_train_features([ex], tok, max_length=48, doc_stride=24))
    with pytest.raises(UserError, match=r"windows of 16 tokens \(--max-length\) overlapping by 12 \(--doc-stride\)"):
        prepare_eval_features([ex], tok, max_length=16, doc_stride=12)
