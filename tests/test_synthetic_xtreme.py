"""Synthetic data for XTREME's nine target tasks: XTREME's download/ layout, read back by the project's readers in
every language with the expected counts, the same examples translated in each language, and learnable: an
English-trained XNLI module on the frozen tiny encoder transfers zero-shot to all 15 XNLI languages."""
import json

import pytest
from click.testing import CliRunner

from adapterxfer import synthetic
from adapterxfer.cli import main
from adapterxfer.data import available_languages, load_examples, load_retrieval
from adapterxfer.errors import UserError
from adapterxfer.tasks import XTREME_TASKS, get_task

SIZES = {"train": 12, "dev": 6, "test": 4}
NOT_RETRIEVAL = [t.name for t in XTREME_TASKS if t.format != "retrieval"]


@pytest.fixture(scope="module")
def download(tmp_path_factory):
    return synthetic.write_xtreme(tmp_path_factory.mktemp("synthetic-xtreme") / "download",
                                  n_train=SIZES["train"], n_dev=SIZES["dev"], n_test=SIZES["test"])


def comparable(spec, example: dict, lang: str | None = None) -> dict:
    """A normalised example, translated from English to ``lang`` if given, without what differs by language
    by design: QA ids name the language, answer offsets follow the words' lengths."""
    words = (lambda w: synthetic.render(w, lang)) if lang else list
    text = (lambda t: " ".join(words(t.split()))) if lang else str
    if spec.format == "classification":
        return {**example, "text_a": text(example["text_a"]), "text_b": text(example["text_b"])}
    if spec.format == "tagging":
        return {**example, "tokens": words(example["tokens"])}
    return {"id": example["id"].split("-", 1)[1], "context": text(example["context"]),
            "question": text(example["question"]),
            "answers": example["answers"] and [text(t) for t in example["answers"]["text"]]}


@pytest.mark.parametrize("name", NOT_RETRIEVAL)
def test_every_language_reads_back_translated_with_the_expected_counts(download, name):
    spec = get_task(name)
    label = {"classification": "label", "tagging": "tags", "span_qa": "answers"}[spec.format]
    for split in sorted({s for source in spec.sources for s in source.splits}):
        present, missing = available_languages(spec, split, download)
        english_only = split == "train" or (name == "xquad" and split == "dev")  # xquad's dev: SQuAD's
        assert present == (["en"] if english_only else list(spec.languages)) and missing == []
        english = load_examples(spec, split, download, "en")
        assert len(english) == SIZES[split]
        for lang in present:
            examples = load_examples(spec, split, download, lang)
            assert all((e[label] is None) == (split == "test") for e in examples), (lang, split)
            assert [comparable(spec, e) for e in examples] == [comparable(spec, e, lang) for e in english], \
                (lang, split)
            if spec.format == "span_qa" and split != "test":
                assert all(e["context"][start:start + len(text)] == text for e in examples
                           for text, start in zip(e["answers"]["text"], e["answers"]["answer_start"]))


def test_labels_cover_the_real_label_sets(tmp_path):
    root = synthetic.write_xtreme(tmp_path, tasks=["xnli", "pawsx", "udpos", "panx", "xquad"],
                                  n_train=300, n_dev=20, n_test=1)
    counts = {}
    for name in ("xnli", "pawsx"):
        labels = [e["label"] for e in load_examples(get_task(name), "train", root)]
        counts[name] = [labels.count(i) for i in range(len(get_task(name).labels))]
        assert min(counts[name]) > 0.7 * 300 / len(counts[name]), counts  # about balanced
    panx = {t for e in load_examples(get_task("panx"), "train", root) for t in e["tags"]}
    assert panx == set(get_task("panx").labels)  # B- and I- of PER, ORG and LOC
    udpos = {t for e in load_examples(get_task("udpos"), "train", root) for t in e["tags"]}
    assert udpos == {"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "NOUN", "PART", "PRON", "PROPN", "VERB"}
    squad = json.loads((root / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    answers = [len(qa["answers"]) for p in squad["data"][0]["paragraphs"] for qa in p["qas"]]
    assert 1 in answers and 2 in answers  # the last word of a longer answer is one too, as SQuAD's dev lists several


def test_retrieval_files_pair_translations(download):
    n = SIZES["dev"]
    for lang in get_task("bucc2018").languages:
        dev = load_retrieval(get_task("bucc2018"), "dev", lang, download)
        assert len(dev["source"]) == len(dev["target"]) == n and len(dev["gold"]) == n // 2
        source, target = dict(zip(dev["source_ids"], dev["source"])), dict(zip(dev["target_ids"], dev["target"]))
        assert all(source[s] == synthetic.translate(target[t], lang) for s, t in dev["gold"])
        assert dev["source_ids"][0].startswith(f"{lang}-") and dev["target_ids"][0].startswith("en-")
        test = load_retrieval(get_task("bucc2018"), "test", lang, download)
        assert len(test["source"]) == SIZES["test"] and test["gold"] is None  # withheld, as XTREME's
    labels = synthetic.write_tatoeba_labels(download, download.parent / "labels")
    for lang in get_task("tatoeba").languages:
        data = load_retrieval(get_task("tatoeba"), "test", lang, download)
        assert len(data["source"]) == SIZES["test"] and data["target"] == sorted(data["target"])
        gold = [int(line) for line in (labels / "tatoeba" / f"test-{lang}.tsv").read_text().split()]
        assert sorted(gold) == list(range(SIZES["test"]))
        # XTREME's direction: line j holds the line of English sentence j's translation
        assert [data["source"][i] for i in gold] == [synthetic.translate(t, lang) for t in data["target"]]


def test_writes_are_deterministic_atomic_and_selective(tmp_path):
    a, b, c = (synthetic.write_xtreme(tmp_path / name, n_train=8, n_dev=4, n_test=2, seed=seed)
               for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "xnli" / "dev-de.tsv").read_bytes() != (c / "xnli" / "dev-de.tsv").read_bytes()
    only = synthetic.write_xtreme(tmp_path / "d", tasks=["xquad"], n_train=8, n_dev=4, n_test=2)
    assert sorted(p.name for p in only.iterdir()) == ["squad", "xquad"]
    assert sorted(p.name for p in tmp_path.iterdir()) == list("abcd")  # no temporary folders left
    with pytest.raises(UserError, match="not XTREME target tasks: mnli"):
        synthetic.write_xtreme(tmp_path / "e", tasks=["mnli"])


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_english_training_transfers_zero_shot_to_every_xnli_language(tmp_path, tiny_model_dir, synthetic_data,
                                                                      one_thread):
    """train-intermediate mnli (seq_bn), train-target xnli --stack on English, evaluate all 15 languages."""
    xtreme = synthetic.write_xtreme(tmp_path / "download", tasks=["xnli"])
    settings = ["--model", tiny_model_dir, "--cache-dir", tmp_path / "cache", "--epochs", 4, "--batch-size", 16,
                "--lr", 2e-3, "--max-length", 128, "--seed", 0, "--quiet"]
    cli("train-intermediate", "mnli", "--data-dir", synthetic_data / "mnli", "--output", tmp_path / "mnli", *settings)
    cli("train-target", "xnli", "--stack", tmp_path / "mnli", "--data-dir", xtreme, "--output", tmp_path / "xnli",
        *settings)
    cli("evaluate", tmp_path / "xnli", "--languages", "all", "--data-dir", xtreme, "--output", tmp_path / "res")
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    scores = {lang: results["scores"][lang]["accuracy"] for lang in results["languages"]}
    assert list(scores) == list(get_task("xnli").languages)
    assert results["scores"]["avg_accuracy"] > 60 and min(scores.values()) > 45, scores  # chance 33.3
    assert scores["en"] > 60 and scores["th"] > 50 and scores["zh"] > 50, scores
