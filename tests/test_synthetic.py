"""The synthetic world: tokenizer, tiny model folder, task data, determinism, and learnability of every
format with the encoder frozen (a seq_bn adapter and a head trained by a plain AdamW loop)."""
import json
import random

import pytest
import torch
from adapters import XLMRobertaAdapterModel
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from adapterxfer import synthetic
from adapterxfer.data import load_examples
from adapterxfer.fileio import sha256_file
from adapterxfer.tasks import get_task

SENTENCE = ["Anna", "is", "not", "eating", "the", "red", "apple", "in", "Paris"]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------------------------------- model and tokenizer

def test_model_dir_loads_with_auto_classes_adapters_and_peft(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert config.model_type == "xlm-roberta" and config.max_position_embeddings - 2 >= 384
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    enc = tokenizer(" ".join(SENTENCE), "who is eating the apple", padding="max_length", max_length=128,
                    return_tensors="pt")
    model, info = AutoModel.from_pretrained(tiny_model_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model(**enc).last_hidden_state.shape == (1, 128, config.hidden_size)

    adapter_model = XLMRobertaAdapterModel.from_pretrained(tiny_model_dir)
    adapter_model.add_adapter("a", config="seq_bn")
    adapter_model.add_classification_head("a", num_labels=3)
    adapter_model.set_active_adapters("a")
    assert adapter_model(**enc).logits.shape == (1, 3)

    classifier = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=3)
    lora = get_peft_model(classifier, LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"]))
    assert lora(**enc).logits.shape == (1, 3)


def test_tokenizer_whole_words_offsets_and_xlmr_special_ids(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    assert ids == [0, 1, 2, 3, len(tokenizer) - 1]
    forms = [form for lexicon in synthetic.LEXICON.values() for form in lexicon.values()]
    assert len(forms) == len(synthetic.LANGUAGES) * len(synthetic.CATEGORY) == len(set(forms))
    assert all(len(tokenizer.tokenize(form)) == 1 for form in forms)
    for lang in ("en", "th", "hi", "zh", "ar", "ko", "ru", "de"):
        words = synthetic.render(SENTENCE, lang)
        text = "  ".join(words)  # offsets must skip the whitespace, however wide
        enc = tokenizer(text, return_offsets_mapping=True)
        assert enc.tokens() == ["<s>", *("▁" + w for w in words), "</s>"]
        assert [text[a:b] for a, b in enc["offset_mapping"][1:-1]] == words
        assert tokenizer(words, is_split_into_words=True).word_ids() == [None, *range(len(words)), None]
    pair = tokenizer("Anna", "Tom")["input_ids"]
    assert pair[0] == 0 and pair[2:4] == [2, 2] and pair[-1] == 2 and len(pair) == 6
    assert tokenizer.unk_token_id not in tokenizer("xylophone quartz")["input_ids"]  # falls back to pieces


def test_translations_are_aligned_in_the_frozen_encoder(tiny_model_dir):
    """Mean-pooled sentences find their translations among 40 near neighbours (differing in a word or two)."""
    tokenizer, model = AutoTokenizer.from_pretrained(tiny_model_dir), AutoModel.from_pretrained(tiny_model_dir)
    rng, sentences = random.Random(0), set()
    while len(sentences) < 40:
        sentences.add(synthetic.Fact(*(rng.choice(synthetic.CATEGORIES[c]) for c in ("PER", "VERB", "NOUN", "ADJ"))))
    sentences = [fact.words() for fact in sorted(sentences, key=str)]

    def embed(lang):
        enc = tokenizer([synthetic.render(s, lang) for s in sentences], is_split_into_words=True, padding=True,
                        return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1)
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    english = embed("en")
    scores = {lang: ((embed(lang) @ english.T).argmax(-1) == torch.arange(len(sentences))).float().mean().item()
              for lang in synthetic.LANGUAGES[1:]}
    assert sum(scores.values()) / len(scores) >= 0.75 and min(scores.values()) >= 0.2, scores  # chance 1/40


# ------------------------------------------------------------------------------------------------- data

HF_COLUMNS = {
    "mnli/train.jsonl": {"premise", "hypothesis", "label", "idx"},
    "mnli/validation_matched.jsonl": {"premise", "hypothesis", "label", "idx"},
    "anli_plus/anli/dev_r3.jsonl": {"premise", "hypothesis", "label", "idx"},
    "anli_plus/snli/train.jsonl": {"premise", "hypothesis", "label", "idx"},
    "qqp/validation.jsonl": {"question1", "question2", "label", "idx"},
    "squad_v2/train.jsonl": {"id", "title", "context", "question", "answers"},
    "hellaswag/validation.jsonl": {"ind", "activity_label", "ctx_a", "ctx_b", "ctx", "endings", "label"},
    "commonsenseqa/train.jsonl": {"id", "question", "question_concept", "choices", "answerKey"},
    "cosmosqa/train.jsonl": {"id", "context", "question", "answer0", "answer1", "answer2", "answer3", "label"},
    "socialiqa/train.jsonl": {"context", "question", "answerA", "answerB", "answerC", "label"},
}


@pytest.mark.parametrize("path", sorted(HF_COLUMNS))
def test_files_have_the_hugging_face_columns(synthetic_data, path):
    rows = read_jsonl(synthetic_data / path)
    assert len(rows) >= 60 and all(set(row) == HF_COLUMNS[path] for row in rows)


def test_label_encodings_follow_the_sources(synthetic_data):
    assert {r["label"] for r in read_jsonl(synthetic_data / "mnli/train.jsonl")} == {0, 1, 2}
    assert -1 in {r["label"] for r in read_jsonl(synthetic_data / "anli_plus/snli/train.jsonl")}
    assert {r["label"] for r in read_jsonl(synthetic_data / "hellaswag/train.jsonl")} == {"0", "1", "2", "3"}
    assert {r["label"] for r in read_jsonl(synthetic_data / "socialiqa/train.jsonl")} == {"1", "2", "3"}
    csqa = read_jsonl(synthetic_data / "commonsenseqa/train.jsonl")
    assert {r["answerKey"] for r in csqa} == set("ABCDE") and csqa[0]["choices"]["label"] == list("ABCDE")
    for task in ("squad_v1", "squad_v2"):
        for split in ("train", "validation"):
            for row in read_jsonl(synthetic_data / task / f"{split}.jsonl"):
                answers = row["answers"]
                assert [row["context"][s:s + len(t)] for s, t in zip(answers["answer_start"], answers["text"])] \
                    == answers["text"]
    unanswerable = [not r["answers"]["text"] for r in read_jsonl(synthetic_data / "squad_v2/train.jsonl")]
    assert 0.2 < sum(unanswerable) / len(unanswerable) < 0.5
    sentences = (synthetic_data / "ccg/dev.conll").read_text(encoding="utf-8").strip().split("\n\n")
    assert len(sentences) >= 100 and all(len(line.split("\t")) == 2 for s in sentences for line in s.splitlines())


@pytest.mark.parametrize("task", [spec.name for spec in synthetic.INTERMEDIATE_TASKS])
def test_every_task_reads_with_the_project_readers(synthetic_data, task):
    spec = get_task(task)
    for split in ("train", "dev"):
        assert len(load_examples(spec, split, synthetic_data / task)) >= 60


def test_builds_are_deterministic_and_atomic(tmp_path):
    a, b, c = (synthetic.build_model_dir(tmp_path / name, seed=seed, steps=3)
               for name, seed in (("a", 1), ("b", 1), ("c", 2)))
    assert sha256_file(a / "model.safetensors") == sha256_file(b / "model.safetensors") \
        != sha256_file(c / "model.safetensors")
    assert sha256_file(a / "tokenizer.json") == sha256_file(c / "tokenizer.json")
    synthetic.build_model_dir(a, seed=2, steps=3)  # rebuilt in place
    assert sha256_file(a / "model.safetensors") == sha256_file(c / "model.safetensors")

    first, again = (synthetic.write_task_data("anli", tmp_path / name, n_train=30, n_dev=9) for name in ("d", "e"))
    other = synthetic.write_task_data("anli", tmp_path / "f", n_train=30, n_dev=9, seed=1)
    files = sorted(p.relative_to(first) for p in first.rglob("*.jsonl"))
    assert len(files) == 8 and files == sorted(p.relative_to(again) for p in again.rglob("*.jsonl"))
    assert all((first / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert (first / files[0]).read_bytes() != (other / files[0]).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == list("abcdef")  # no temporary folders left


def test_demo_assets_are_built_once(tmp_path, monkeypatch):
    builds = []
    quick = synthetic.build_model_dir
    monkeypatch.setattr(synthetic, "build_model_dir", lambda path: builds.append(path) or quick(path, steps=2))
    model_dir, data_root = synthetic.demo_assets(tmp_path)
    assert (model_dir / "model.safetensors").is_file() and (data_root / "ccg" / "train.conll").is_file()
    assert synthetic.demo_assets(tmp_path) == (model_dir, data_root) and len(builds) == 1


# --------------------------------------------------------------------- learning with the encoder frozen

def train_frozen(model_dir, add_head, batches, epochs, lr=1e-3):
    """Train a seq_bn adapter and a head on a frozen encoder; ``batches(epoch)`` yields model inputs."""
    torch.manual_seed(0)
    model = XLMRobertaAdapterModel.from_pretrained(model_dir)
    model.add_adapter("task", config="seq_bn")
    add_head(model)
    model.train_adapter("task")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("adapters.task" in n or "heads.task" in n for n in trainable)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for epoch in range(epochs):
        model.train()
        for batch in batches(epoch):
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    return model.eval()


def batched(examples, size, epoch=None):
    """Batches of ``examples``, shuffled by epoch when ``epoch`` is given."""
    examples = list(examples)
    if epoch is not None:
        random.Random(epoch).shuffle(examples)
    return [examples[i:i + size] for i in range(0, len(examples), size)]


def accuracy(model, batches, gold):
    with torch.no_grad():
        predicted = [p for batch in batches for p in model(**batch).logits.argmax(-1).flatten().tolist()]
    return sum(p == g for p, g in zip(predicted, gold)) / len(gold)


def test_classification_learns_and_transfers_zero_shot(tiny_model_dir, synthetic_data):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    spec = get_task("mnli")
    train, dev = (load_examples(spec, split, synthetic_data / "mnli") for split in ("train", "dev"))

    def encode(examples, lang="en", labels=True):
        enc = tokenizer([synthetic.translate(e["text_a"], lang) for e in examples],
                        [synthetic.translate(e["text_b"], lang) for e in examples], padding=True, return_tensors="pt")
        return {**enc, "labels": torch.tensor([e["label"] for e in examples])} if labels else enc

    model = train_frozen(tiny_model_dir, lambda m: m.add_classification_head("task", num_labels=3),
                         lambda epoch: map(encode, batched(train, 16, epoch)), epochs=4)
    gold = [e["label"] for e in dev]
    scores = {lang: accuracy(model, [encode(b, lang, False) for b in batched(dev, 100)], gold)
              for lang in ("en", "de", "th", "zh")}
    assert scores["en"] >= 0.6 and min(scores.values()) >= 0.5, scores  # chance 1/3


def test_multiple_choice_learns(tiny_model_dir, synthetic_data):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    spec = get_task("hellaswag")
    train, dev = (load_examples(spec, split, synthetic_data / "hellaswag") for split in ("train", "dev"))

    def encode(examples, labels=True):
        firsts = [" ".join(filter(None, (e["context"], e["question"]))) for e in examples for _ in e["choices"]]
        enc = tokenizer(firsts, [c for e in examples for c in e["choices"]], padding=True, return_tensors="pt")
        enc = {k: v.view(len(examples), spec.num_choices, -1) for k, v in enc.items()}
        return {**enc, "labels": torch.tensor([e["label"] for e in examples])} if labels else enc

    model = train_frozen(tiny_model_dir, lambda m: m.add_multiple_choice_head("task", num_choices=spec.num_choices),
                         lambda epoch: map(encode, batched(train, 16, epoch)), epochs=3)
    score = accuracy(model, [encode(b, False) for b in batched(dev, 50)], [e["label"] for e in dev])
    assert score >= 0.5, score  # chance 1/4


def test_tagging_learns(tiny_model_dir, synthetic_data):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    train, dev = (load_examples(get_task("ccg"), split, synthetic_data / "ccg") for split in ("train", "dev"))
    tags = sorted({t for e in train for t in e["tags"]})

    def encode(examples, labels=True):
        enc = tokenizer([e["tokens"] for e in examples], is_split_into_words=True, padding=True, return_tensors="pt")
        if labels:  # every synthetic word is one token
            enc["labels"] = torch.tensor([[-100 if w is None else tags.index(e["tags"][w]) for w in enc.word_ids(i)]
                                          for i, e in enumerate(examples)])
        return enc

    model = train_frozen(tiny_model_dir, lambda m: m.add_tagging_head("task", num_labels=len(tags)),
                         lambda epoch: map(encode, batched(train, 16, epoch)), epochs=2)
    predicted = []
    with torch.no_grad():
        for batch in batched(dev, 100):
            for e, row in zip(batch, model(**encode(batch, False)).logits.argmax(-1)):
                predicted += [tags[i] for i in row[1:1 + len(e["tokens"])].tolist()]
    gold = [t for e in dev for t in e["tags"]]
    majority = max(gold.count(t) for t in set(gold)) / len(gold)
    score = sum(p == g for p, g in zip(predicted, gold)) / len(gold)
    assert score >= max(0.9, majority + 0.3), (score, majority)


def test_span_qa_learns(tiny_model_dir, synthetic_data):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    train, dev = (load_examples(get_task("squad_v1"), split, synthetic_data / "squad_v1") for split in ("train", "dev"))

    def encode(examples):
        enc = tokenizer([e["question"] for e in examples], [e["context"] for e in examples], padding=True,
                        return_offsets_mapping=True, return_tensors="pt")
        spans = []
        for i, e in enumerate(examples):
            start = e["answers"]["answer_start"][0]
            end = start + len(e["answers"]["text"][0])
            tokens = [t for t, s in enumerate(enc.sequence_ids(i)) if s == 1]
            offsets = enc["offset_mapping"][i].tolist()
            spans.append((next(t for t in tokens if offsets[t][0] == start),
                          next(t for t in tokens if offsets[t][1] == end)))
        del enc["offset_mapping"]
        starts, ends = torch.tensor(spans).T
        return {**enc, "start_positions": starts, "end_positions": ends}

    model = train_frozen(tiny_model_dir, lambda m: m.add_qa_head("task"),
                         lambda epoch: map(encode, batched(train, 16, epoch)), epochs=3)
    hits = 0
    with torch.no_grad():
        for batch in map(encode, batched(dev, 100)):
            gold = (batch.pop("start_positions"), batch.pop("end_positions"))
            out = model(**batch)
            hits += ((out.start_logits.argmax(-1) == gold[0]) & (out.end_logits.argmax(-1) == gold[1])).sum().item()
    assert hits / len(dev) >= 0.5, hits / len(dev)  # exact spans among ~20-word contexts
