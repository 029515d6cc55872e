"""Batching and padding: every example once, little padding, first-sub-word tag labels, cache reuse."""
import random

import pytest
import torch

from adapterxfer.features import (IGNORE, _word_ranges, cached_tokenize, collate, length_grouped_batches,
                                  sorted_batches, tokenize)


def test_length_grouped_batches_cover_everything_once_with_little_padding():
    rng = random.Random(0)
    lengths = [rng.randint(5, 200) for _ in range(1000)]
    batches = length_grouped_batches(lengths, 16, random.Random(1))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    naive = sum(len(b) * max(lengths[i] for i in b) for b in (list(range(s, min(s + 16, 1000))) for s in range(0, 1000, 16)))
    assert padded < 0.75 * naive  # grouping by length cuts the padded tokens a lot
    again = length_grouped_batches(lengths, 16, random.Random(1))
    assert again == batches  # a pure function of the seed: resume replays it


def test_sorted_batches_longest_first():
    batches = sorted_batches([3, 9, 1, 7], 2)
    assert batches == [[1, 3], [0, 2]]


def test_packed_batches_hold_more_short_rows_within_the_first_batchs_tokens():
    lengths = [40, 10, 40, 10, 10, 10, 10, 10, 10, 10, 20, 20]
    batches = sorted_batches(lengths, 2, pack=True)  # 2 x 40 = 80 padded tokens each
    assert batches == [[0, 2], [10, 11, 1, 3], [4, 5, 6, 7, 8, 9]]
    assert max(len(b) * max(lengths[i] for i in b) for b in batches) == 80
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))


def test_collate_pads_to_the_batch_and_masks():
    batch = collate([{"input_ids": [0, 5, 2], "labels": 1}, {"input_ids": [0, 2], "labels": 0}], pad_id=1)
    assert batch["input_ids"].tolist() == [[0, 5, 2], [0, 2, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [1, 0]
    mc = collate([{"input_ids": [[0, 4], [0, 4, 5, 2]], "labels": 1}], pad_id=1)
    assert mc["input_ids"].shape == (1, 2, 4) and mc["attention_mask"][0, 0].tolist() == [1, 1, 0, 0]
    tags = collate([{"input_ids": [0, 7, 2], "labels": [IGNORE, 3, IGNORE]}, {"input_ids": [0, 2], "labels": [IGNORE, IGNORE]}], 1)
    assert torch.equal(tags["labels"], torch.tensor([[IGNORE, 3, IGNORE], [IGNORE, IGNORE, IGNORE]]))


class SplitTokenizer:
    """Stands in for a fast tokenizer: splits each word into its characters (several sub-words per word)."""

    class Encoding(dict):
        def __init__(self, ids, words):
            super().__init__(input_ids=ids)
            self._words = words

        def word_ids(self, i):
            return self._words[i]

    def num_special_tokens_to_add(self, pair=False):
        return 2

    def __call__(self, words_batch, is_split_into_words=True, truncation=True, max_length=512):
        ids, words = [], []
        for sent in words_batch:
            row, wid = [0], [None]
            for w, word in enumerate(sent):
                row += [ord(c) for c in word]
                wid += [w] * len(word)
            ids.append(row[:max_length - 1] + [2])
            words.append(wid[:max_length - 1] + [None])
        return self.Encoding(ids, words)


def test_tagging_labels_only_the_first_sub_word():
    feats = tokenize("tagging", [{"tokens": ["ab", "c"], "tags": ["X", "Y"]}], SplitTokenizer(), 16,
                     label2id={"X": 0, "Y": 1})
    # <s> a b c </s>: 'a' starts word 0 (X), 'b' continues it, 'c' starts word 1 (Y)
    assert feats[0]["labels"] == [IGNORE, 0, IGNORE, 1, IGNORE]


def test_long_sentences_are_cut_into_windows_at_word_boundaries():
    # four words of 2, 3, 1 and 4 sub-words between <s> and </s>, 5 sub-words to a window
    word_ids = [None, 0, 0, 1, 1, 1, 2, 3, 3, 3, 3, None]
    assert _word_ranges(word_ids, 4, 5) == [(0, 2), (2, 4)]
    assert _word_ranges(word_ids, 4, 100) == [(0, 4)]
    assert _word_ranges(word_ids, 4, 1) == [(0, 1), (1, 2), (2, 3), (3, 4)]  # a word never splits


def test_long_sentences_train_and_score_on_every_word():
    """A sentence longer than max_length becomes windows of whole words: no tag is cut off (XTREME splits
    such sentences too), and each word is labelled once, on its first sub-word."""
    words = ["abc", "de", "f", "ghij", "k", "lm", "nop", "q"]
    tags = ["X", "Y", "X", "Y", "Y", "X", "Y", "X"]
    feats = tokenize("tagging", [{"tokens": words, "tags": tags}], SplitTokenizer(), 8, label2id={"X": 0, "Y": 1})
    assert len(feats) > 1 and all(len(f["input_ids"]) <= 8 for f in feats)
    assert [label for f in feats for label in f["labels"] if label != IGNORE] == [{"X": 0, "Y": 1}[t] for t in tags]


def test_a_word_the_tokenizer_drops_is_labelled_on_the_unknown_token():
    """As XTREME's preprocessing: a word of which XLM-R keeps nothing (a space, U+00A0) becomes <unk>, so its
    tag is trained and predicted in its place instead of vanishing from the input."""
    from adapterxfer.synthetic import build_tokenizer

    tokenizer = build_tokenizer()
    words, tags = ["Haus", " ", "Berlin", "\u00a0"], ["X", "Y", "X", "Y"]
    feats = tokenize("tagging", [{"tokens": words, "tags": tags}], tokenizer, 64, label2id={"X": 0, "Y": 1})
    (feat,) = feats
    firsts = [(i, label) for i, label in zip(feat["input_ids"], feat["labels"]) if label != IGNORE]
    assert [label for _, label in firsts] == [0, 1, 0, 1]
    assert [i for i, _ in firsts][1::2] == [tokenizer.unk_token_id] * 2


def test_cache_reuses_and_keys_on_content(tmp_path, monkeypatch):
    import adapterxfer.features as features

    calls = []
    real = features.tokenize
    monkeypatch.setattr(features, "tokenize", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(features, "tokenizer_fingerprint", lambda tok: "fixed")
    ex = [{"tokens": ["ab"], "tags": ["X"]}]
    first = cached_tokenize(tmp_path, {"task": "t", "split": "train"}, "tagging", ex, SplitTokenizer(), 16,
                            label2id={"X": 0})
    second = cached_tokenize(tmp_path, {"task": "t", "split": "train"}, "tagging", ex, SplitTokenizer(), 16,
                             label2id={"X": 0})
    assert first == second and len(calls) == 1
    cached_tokenize(tmp_path, {"task": "t", "split": "train"}, "tagging", [{"tokens": ["b"], "tags": ["X"]}],
                    SplitTokenizer(), 16, label2id={"X": 0})
    assert len(calls) == 2  # other data, other cache entry


def test_sentence_pairs_carry_segment_ids_where_the_tokenizer_gives_them(tmp_path, tiny_model_dir):
    """mBERT-style tokenizers mark the second text as segment 1 (classification, multiple choice, QA);
    XLM-R's gives no segment ids, and its features stay as they were."""
    from transformers import AutoTokenizer, BertTokenizerFast

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d"]))
    bert = BertTokenizerFast(vocab_file=str(vocab))
    pairs = [{"text_a": "a b", "text_b": "c", "label": 0}, {"text_a": "a", "text_b": "c d d", "label": 1}]
    feats = tokenize("classification", pairs, bert, 32)
    assert feats[0]["token_type_ids"] == [0, 0, 0, 0, 1, 1]  # [CLS] a b [SEP] | c [SEP]
    batch = collate(feats, 0)
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1, 1]]
    choice = tokenize("multiple_choice", [{"context": "a", "question": "b", "choices": ["c", "d d"], "label": 1}],
                      bert, 32)
    batch = collate(choice, 0)
    assert batch["token_type_ids"].shape == batch["input_ids"].shape == (1, 2, 7)
    assert batch["token_type_ids"][0, 1].tolist() == [0, 0, 0, 0, 1, 1, 1]
    qa = tokenize("span_qa", [{"id": "q", "question": "a", "context": "c d",
                               "answers": {"text": ["d"], "answer_start": [2]}}], bert, 32, doc_stride=8)
    assert qa[0]["token_type_ids"] == [0, 0, 0, 1, 1, 1]
    xlmr = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    assert "token_type_ids" not in tokenize("classification", pairs, xlmr, 32)[0]
    assert "token_type_ids" not in collate(tokenize("classification", pairs, xlmr, 32), 1)


def test_cache_keeps_an_entry_another_process_published_meanwhile(tmp_path, monkeypatch):
    """Two grid cells on the same data featurise at once (on two nodes their pids may be equal): they never
    write into the same temporary folder, and the one that finishes second keeps the first one's entry (a
    third may be reading it) instead of deleting and replacing it, and does not fail."""
    import datasets

    import adapterxfer.features as features

    monkeypatch.setattr(features, "tokenizer_fingerprint", lambda tok: "fixed")
    real_save = datasets.Dataset.save_to_disk
    saving = []
    ex = [{"tokens": ["ab"], "tags": ["X"]}]
    featurise = lambda: cached_tokenize(tmp_path / "cache", {"task": "t", "split": "train"}, "tagging",  # noqa: E731
                                        ex, SplitTokenizer(), 16, label2id={"X": 0})

    def save_while_another_publishes(self, path, **kw):
        saving.append(path)
        if len(saving) == 1:  # the other process starts and publishes meanwhile; then a reader holds the entry
            featurise()
            (entry,) = (tmp_path / "cache").glob("t-train-*")
            (entry / "reading").write_text("")
        real_save(self, path, **kw)

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", save_while_another_publishes)
    feats = featurise()
    assert len(saving) == 2 and saving[0] != saving[1]
    (entry,) = (tmp_path / "cache").iterdir()  # no temporary folder left
    assert (entry / "reading").is_file()  # the published entry was neither removed nor replaced
    (tmp_path / "plain").mkdir()
    assert entry.stat().st_mode == (tmp_path / "plain").stat().st_mode  # readable as the others (a shared cache)
    monkeypatch.setattr(datasets.Dataset, "save_to_disk", real_save)
    assert featurise() == feats


def test_an_interrupted_cache_write_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    """Ctrl-C or a full disk while the features are saved: no half-written temporary folder stays in the cache
    (each has a name of its own, so none would ever be reused or removed), and the next run caches them."""
    import datasets

    import adapterxfer.features as features

    monkeypatch.setattr(features, "tokenizer_fingerprint", lambda tok: "fixed")
    real_save = datasets.Dataset.save_to_disk

    def save_then_interrupt(self, path, **kw):
        real_save(self, path, **kw)
        raise KeyboardInterrupt

    featurise = lambda: cached_tokenize(tmp_path / "cache", {"task": "t", "split": "train"}, "tagging",  # noqa: E731
                                        [{"tokens": ["ab"], "tags": ["X"]}], SplitTokenizer(), 16, label2id={"X": 0})
    monkeypatch.setattr(datasets.Dataset, "save_to_disk", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        featurise()
    assert list((tmp_path / "cache").iterdir()) == []
    monkeypatch.setattr(datasets.Dataset, "save_to_disk", real_save)
    feats = featurise()
    (entry,) = (tmp_path / "cache").iterdir()
    assert (entry / "dataset_info.json").is_file() and featurise() == feats


def test_tokenizer_fingerprint_ignores_the_truncation_a_call_left_set(tiny_model_dir):
    """The fast tokenizer keeps the truncation of its last call: the cache key must not depend on it, or a
    rerun whose first entries come from the cache misses the next ones (train cached, dev tokenised again)."""
    from transformers import AutoTokenizer

    from adapterxfer.features import tokenizer_fingerprint

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    fresh = tokenizer_fingerprint(tokenizer)
    tokenize("classification", [{"text_a": "a b", "text_b": None, "label": 0}], tokenizer, 32)
    assert tokenizer_fingerprint(tokenizer) == fresh


def test_tokenize_works_in_chunks_with_the_features_of_one_call(monkeypatch):
    """MNLI's 393k pairs in one tokenizer call held 2.5 GB of its output: the tokenizer sees CHUNK examples at a
    time (also in word_windows, which zero-shot tagging calls), and the features (windows of long sentences and
    contexts included) are those of one call."""
    import adapterxfer.features as features
    from adapterxfer.synthetic import build_tokenizer

    class Counting:
        def __init__(self, tokenizer):
            self.tokenizer, self.sizes = tokenizer, []

        def __call__(self, texts, *args, **kw):
            self.sizes.append(len(texts))
            return self.tokenizer(texts, *args, **kw)

        def __getattr__(self, name):
            return getattr(self.tokenizer, name)

    words = "house water book tree river stone".split()
    rng = random.Random(0)
    text = lambda n: " ".join(rng.choice(words) for _ in range(n))  # noqa: E731
    cases = {
        "classification": [{"text_a": text(5), "text_b": text(3), "label": i % 3} for i in range(7)],
        "multiple_choice": [{"context": text(4), "question": text(2), "choices": [text(2), text(3)], "label": 1}
                            for _ in range(5)],
        "tagging": [{"tokens": text(rng.choice([3, 40])).split(), "tags": None} for _ in range(7)],
        "span_qa": [{"id": str(i), "question": text(3), "context": text(rng.choice([5, 60])),
                     "answers": {"text": ["water"], "answer_start": [0]}} for i in range(7)],
    }
    for ex in cases["tagging"]:
        ex["tags"] = ["X"] * len(ex["tokens"])
    for ex in cases["span_qa"]:
        ex["answers"]["answer_start"] = [ex["context"].find("water")] if "water" in ex["context"] else []
        ex["answers"]["text"] = ex["answers"]["text"][:len(ex["answers"]["answer_start"])]
    tokenizer = build_tokenizer()
    for fmt, examples in cases.items():
        for train in (True, False):
            kw = dict(label2id={"X": 0}, doc_stride=8, train=train)
            whole = tokenize(fmt, examples, tokenizer, 32, **kw)
            monkeypatch.setattr(features, "CHUNK", 3, raising=False)
            counting = Counting(tokenizer)
            assert tokenize(fmt, examples, counting, 32, **kw) == whole, fmt
            assert max(counting.sizes) <= 3, fmt
            monkeypatch.undo()
    sentences = [ex["tokens"] for ex in cases["tagging"]]  # zero-shot tagging calls word_windows directly
    whole = features.word_windows(sentences, tokenizer, 32)
    monkeypatch.setattr(features, "CHUNK", 3, raising=False)
    counting = Counting(tokenizer)
    assert features.word_windows(sentences, counting, 32) == whole and max(counting.sizes) <= 3
