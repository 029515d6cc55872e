"""XTREME's nine target tasks: every language reads back from XTREME's download/ layout (a small fixture in
the real paths and formats), from Hub-shaped rows, and every bad input is one clear error."""
import json

import pytest
from xtreme_fixtures import (N_BUCC, N_BUCC_GOLD, N_DEV, N_TATOEBA, N_TEST, N_TRAIN, UDPOS_WITHOUT_DEV,
                             write_xtreme_layout)

from adapterxfer import score
from adapterxfer.data import available_languages, load_examples, load_retrieval
from adapterxfer.errors import UserError
from adapterxfer.tasks import BENCHMARKS, FORMATS, XTREME_TASKS, get_task

NAMES = ["pawsx", "xnli", "panx", "udpos", "bucc2018", "tatoeba", "xquad", "mlqa", "tydiqa"]
NOT_RETRIEVAL = [t.name for t in XTREME_TASKS if t.format != "retrieval"]


@pytest.fixture(scope="module")
def download(tmp_path_factory):
    return write_xtreme_layout(tmp_path_factory.mktemp("xtreme") / "download")


def test_registry_rows_and_the_scorer_share_languages():
    assert [t.name for t in XTREME_TASKS] == NAMES == list(BENCHMARKS["xtreme"].tasks) == list(score.TASKS)[:9]
    counts = {"pawsx": 7, "xnli": 15, "panx": 40, "udpos": 33, "bucc2018": 4, "tatoeba": 36, "xquad": 11,
              "mlqa": 7, "tydiqa": 9}
    for spec in XTREME_TASKS:
        assert len(set(spec.languages)) == counts[spec.name] and spec.is_target
        assert BENCHMARKS["xtreme"].languages(spec.name) is spec.languages  # one table, in XTREME's order
    assert len(BENCHMARKS["xtreme"].all_languages) == 40
    assert not get_task("mnli").is_target and get_task("mnli").languages == ("en",)


def _check_fields(spec, ex, labelled):
    assert set(ex) == set(FORMATS[spec.format])
    if spec.format == "classification":
        assert ex["text_a"] and ex["text_b"]
        assert (ex["label"] in range(len(spec.labels))) if labelled else ex["label"] is None
    elif spec.format == "tagging":
        assert len(ex["tokens"]) == 3
        assert set(ex["tags"]) <= set(spec.labels) if labelled else ex["tags"] is None
    else:
        assert ex["id"] and ex["question"] and ex["context"]
        if labelled:
            (text,), (start,) = ex["answers"]["text"], ex["answers"]["answer_start"]
            assert ex["context"][start:start + len(text)] == text
        else:
            assert ex["answers"] is None


@pytest.mark.parametrize("name", NOT_RETRIEVAL)
def test_every_language_reads_back(download, name):
    spec = get_task(name)
    assert load_examples(spec, "train", download) == load_examples(spec, "train", download, "en")
    splits = [s for s in ("train", "dev", "test") if any(s in src.splits for src in spec.sources)]
    for split in splits:
        present, missing = available_languages(spec, split, download)
        english_only = split == "train" or (name == "xquad" and split == "dev")  # xquad's dev: SQuAD's
        expected = ("en",) if english_only else spec.languages
        no_dev = UDPOS_WITHOUT_DEV if (name, split) == ("udpos", "dev") else ()
        assert present == [lang for lang in expected if lang not in no_dev] and missing == list(no_dev)
        for lang in present:
            examples = load_examples(spec, split, download, lang)
            assert len(examples) == {"train": N_TRAIN, "dev": N_DEV, "test": N_TEST}[split], (split, lang)
            for ex in examples:
                _check_fields(spec, ex, labelled=split != "test")
    assert splits == (["train", "test"] if name == "tydiqa" else ["train", "dev", "test"])


def test_multilingual_text_survives(download):
    assert load_examples(get_task("xnli"), "dev", download, "th")[0]["text_a"] == "บ้าน น้ำ 0"
    assert load_examples(get_task("panx"), "test", download, "hi")[0]["tokens"] == ["घर", "पानी", "0"]
    assert load_examples(get_task("mlqa"), "dev", download, "zh")[0]["answers"]["text"] == ["水"]
    assert load_examples(get_task("xquad"), "test", download, "ar")[1]["question"] == "ماء?"
    assert load_examples(get_task("xnli"), "train", download)[0]["text_a"] == 'He said "yes" twice'  # csv quoting


def test_bucc_and_tatoeba(download):
    bucc = get_task("bucc2018")
    for lang in bucc.languages:
        dev = load_retrieval(bucc, "dev", lang, download)
        assert len(dev["source"]) == len(dev["source_ids"]) == len(dev["target"]) == N_BUCC
        assert dev["source_ids"][0] == f"{lang}-000000000" and dev["target_ids"][0] == "en-000000000"
        assert dev["gold"] == [(f"{lang}-{i:09d}", f"en-{i:09d}") for i in range(N_BUCC_GOLD)]
        assert load_retrieval(bucc, "test", lang, download)["gold"] is None  # XTREME deletes the test gold
    assert load_retrieval(bucc, "dev", "zh", download)["source"][1] == "水 书 1"
    tatoeba = get_task("tatoeba")
    assert available_languages(tatoeba, "test", download) == (list(tatoeba.languages), [])
    for lang in tatoeba.languages:
        data = load_retrieval(tatoeba, "test", lang, download)
        assert data["source_ids"] == data["target_ids"] == ["0", "1", "2"] and len(data["source"]) == N_TATOEBA
        assert data["target"] == sorted(data["target"]) and data["gold"] is None  # sorted English: no gold
    with pytest.raises(UserError, match="retrieval task: read it with load_retrieval"):
        load_examples(bucc, "dev", download, "de")


def test_missing_languages_are_reported(tmp_path):
    root = write_xtreme_layout(tmp_path, languages={"en", "de"})
    panx = get_task("panx")
    present, missing = available_languages(panx, "dev", root)
    assert present == ["en", "de"] and len(missing) == 38 and missing[:3] == ["ar", "he", "vi"]  # XTREME's order
    assert available_languages(get_task("bucc2018"), "test", root) == (["de"], ["fr", "ru", "zh"])
    assert available_languages(get_task("xquad"), "train", root) == (["en"], [])
    with pytest.raises(UserError, match=r"panx': no dev data for 'fr': missing .*panx/dev-fr\.tsv .*AmazonPhotos"):
        load_examples(panx, "dev", root, "fr")
    with pytest.raises(UserError, match=r"no test data for 'ja': missing .*tatoeba/ja-en\.ja"):
        load_retrieval(get_task("tatoeba"), "test", "ja", root)
    assert available_languages(panx, "dev", None) == (list(panx.languages), [])  # the Hub has them all
    udpos = get_task("udpos")  # but no validation split of udpos.Kazakh, .Thai, .Tagalog, .Yoruba
    assert available_languages(udpos, "dev", None) == \
        ([l for l in udpos.languages if l not in UDPOS_WITHOUT_DEV], list(UDPOS_WITHOUT_DEV))
    assert available_languages(udpos, "test", None) == (list(udpos.languages), [])
    assert available_languages(get_task("bucc2018"), "dev", None)[0] == []  # no Hub copy to mine


def _read(spec, split, root, lang):
    return load_retrieval(spec, split, lang, root) if spec.format == "retrieval" else \
        load_examples(spec, split, root, lang)


# one file of each of XTREME's formats: token<TAB>tag, csv-written TSV, SQuAD JSON, BUCC id<TAB>text, Tatoeba lines
FILES = [("panx", "dev", "panx/dev-de.tsv"), ("udpos", "test", "udpos/test-de.tsv"), ("xnli", "dev", "xnli/dev-de.tsv"),
         ("mlqa", "dev", "mlqa/MLQA_V1/dev/dev-context-de-question-de.json"),
         ("bucc2018", "dev", "bucc2018/de-en.dev.gold"), ("tatoeba", "test", "tatoeba/de-en.de")]


@pytest.mark.parametrize("name, split, path", FILES)
def test_files_saved_with_a_byte_order_mark_read_the_same(tmp_path, name, split, path):
    root = write_xtreme_layout(tmp_path, languages={"en", "de"})
    spec = get_task(name)
    plain = _read(spec, split, root, "de")
    (root / path).write_text("\ufeff" + (root / path).read_text(encoding="utf-8"), encoding="utf-8")
    assert _read(spec, split, root, "de") == plain  # not '\ufeffHaus', nor a JSON or gold-pair error


@pytest.mark.parametrize("name, split, path", FILES)
def test_windows_line_ends_and_trailing_blank_lines_read_the_same(tmp_path, name, split, path):
    root = write_xtreme_layout(tmp_path, languages={"en", "de"})
    spec = get_task(name)
    plain = _read(spec, split, root, "de")
    text = (root / path).read_text(encoding="utf-8").replace("\n", "\r\n") + "\r\n \r\n\r\n"
    (root / path).write_bytes(text.encode())
    assert _read(spec, split, root, "de") == plain  # no extra empty sentence, no error on the blank lines


def test_a_blank_line_between_rows_is_an_error_not_a_shift(tmp_path):
    root = write_xtreme_layout(tmp_path, languages={"en", "de"})
    (root / "xnli/test-de.tsv").write_text("a\tb\n\nc\td\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"xnli/test-de\.tsv:2: blank line between rows"):
        load_examples(get_task("xnli"), "test", root, "de")


@pytest.mark.parametrize("content, line", [
    ('a\tb\tneutral\n"Yes," she said.\tc\tneutral\n', 2),  # a quote that opens a field, by hand
    ('a\tb\tneutral\n"never closed\tc\tneutral\n' + "d\te\tneutral\n" * 20000, 2),  # past csv's field limit
])
def test_csv_quoting_errors_name_the_row(tmp_path, content, line):
    root = write_xtreme_layout(tmp_path, languages={"en", "de"})
    (root / "xnli/dev-de.tsv").write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=rf"xnli/dev-de\.tsv:{line}: not valid CSV .*quoted as CSV writes it"):
        load_examples(get_task("xnli"), "dev", root, "de")


@pytest.mark.parametrize("name, split", [("panx", "dev"), ("panx", "test"), ("udpos", "dev"), ("panx", "train")])
def test_language_prefixes_of_pan_x_raw_files_are_cut(tmp_path, name, split):
    """PAN-X's raw files (and UD-POS files made like them) write "de:Haus"; XTREME's panx_preprocess cuts it."""
    root = write_xtreme_layout(tmp_path, languages={"en", "de"})
    lang = "en" if split == "train" else "de"
    spec, path = get_task(name), root / name / f"{split}-{lang}.tsv"
    plain = load_examples(spec, split, root, lang)
    lines = path.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join(f"{lang}:{line}" if line else line for line in lines), encoding="utf-8")
    assert load_examples(spec, split, root, lang) == plain
    # a token that only looks like one, in a file without prefixes, stays as it is
    first = f"{lang}:Berlin" if split == "test" else f"{lang}:Berlin\t{spec.labels[0]}"
    path.write_text("\n".join([first] + lines[1:]), encoding="utf-8")
    assert load_examples(spec, split, root, lang)[0]["tokens"][0] == f"{lang}:Berlin"


def test_a_token_of_other_unicode_space_does_not_end_the_sentence(tmp_path):
    root = write_xtreme_layout(tmp_path, languages={"en", "de"})
    (root / "udpos/test-de.tsv").write_text("Haus\n\u00a0\nWasser\n\nBuch\n", encoding="utf-8")
    assert [e["tokens"] for e in load_examples(get_task("udpos"), "test", root, "de")] == [
        ["Haus", "\u00a0", "Wasser"], ["Buch"]]  # as XTREME's reader: two sentences, as in its label file
    (root / "udpos/test-de.tsv").write_text("Haus\n \t\nBuch\n", encoding="utf-8")  # spaces, tabs: a blank line
    assert len(load_examples(get_task("udpos"), "test", root, "de")) == 2


def _squad_file(path, context, answer, start):
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "?", "answers": [{"text": answer, "answer_start": start}]}]}]}]}), encoding="utf-8")


@pytest.mark.parametrize("context, answer", [
    ("บ้าน 😀 น้ำ หนังสือ ดี", "หนังสือ"), ("🏠👨‍👩‍👧 房子 水 书 在桌子上", "水"), ("بيت 😀 ماء كتاب", "ماء"), ("家 🎉 the house is", "house")])
def test_squad_answer_offsets_count_code_points(tmp_path, context, answer):
    root = write_xtreme_layout(tmp_path, languages={"en", "de"})
    path = root / "mlqa/MLQA_V1/dev/dev-context-de-question-de.json"
    _squad_file(path, context, answer, context.index(answer))  # JSON escapes the emoji as surrogate pairs
    [ex] = load_examples(get_task("mlqa"), "dev", root, "de")
    assert ex["context"][ex["answers"]["answer_start"][0]:][:len(answer)] == answer
    # offsets as JavaScript (UTF-16: an emoji counts 2) or bytes count them: the answer's own place is found
    for offset in (len(context[:context.index(answer)].encode("utf-16-le")) // 2,
                   len(context[:context.index(answer)].encode("utf-8"))):
        _squad_file(path, context, answer, offset)
        [ex] = load_examples(get_task("mlqa"), "dev", root, "de")
        assert ex["answers"]["answer_start"] == [context.index(answer)]
    _squad_file(path, context, "nowhere", 0)
    with pytest.raises(UserError, match=r"dev-context-de-question-de\.json: data\[0\].paragraphs\[0\].qas\[0\] "
                                        r"\(id q1\): answer 'nowhere' \(answer_start 0\) is not in its context"):
        load_examples(get_task("mlqa"), "dev", root, "de")


def test_unlabelled_tests_only(download, tmp_path):
    assert {e["label"] for e in load_examples(get_task("xnli"), "test", download, "ur")} == {None}
    # a test file that does carry labels keeps them, as XTREME's processors read them
    root = write_xtreme_layout(tmp_path, languages={"en"})
    (root / "xnli/test-en.tsv").write_text("a\tb\tneutral\nc\td\n", encoding="utf-8")
    assert [e["label"] for e in load_examples(get_task("xnli"), "test", root, "en")] == [1, None]
    # a dev file without labels is an error, named by line
    (root / "xnli/dev-en.tsv").write_text("a\tb\tneutral\nc\td\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"xnli/dev-en\.tsv:2: expected 3 tab-separated columns"):
        load_examples(get_task("xnli"), "dev", root, "en")
    (root / "panx/dev-en.tsv").write_text("Paris\tB-LOC\nis\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"panx/dev-en\.tsv:2: expected 'token<TAB>tag'"):
        load_examples(get_task("panx"), "dev", root, "en")


def test_english_only_and_absent_splits(download):
    with pytest.raises(UserError, match=r"'train' split is English only \(xnli/train-en\.tsv\)"):
        load_examples(get_task("xnli"), "train", download, "de")
    with pytest.raises(UserError, match=r"'dev' split is English only \(squad/dev-v1\.1\.json\)"):
        load_examples(get_task("xquad"), "dev", download, "de")
    with pytest.raises(UserError, match=r"tydiqa' has no 'dev' split \(it has: test, train\)\. .*test set"):
        load_examples(get_task("tydiqa"), "dev", download)
    with pytest.raises(UserError, match=r"xnli' has no language 'xx' \(languages: ar, bg"):
        load_examples(get_task("xnli"), "dev", download, "xx")


@pytest.mark.parametrize("path, content, load, pattern", [
    ("xnli/dev-de.tsv", "a\tb\tentailment\nc\td\tmaybe\n", ("xnli", "dev"),
     r"xnli/dev-de\.tsv:2: label 'maybe' is outside the label set of xnli"),
    ("pawsx/dev-de.tsv", "a\tb\t1\tx\n", ("pawsx", "dev"), r"pawsx/dev-de\.tsv:1: expected 3 tab-separated"),
    ("panx/dev-de.tsv", "Haus\tB-LOC\n\nBuch\tB-XYZ\n", ("panx", "dev"),
     r"panx/dev-de\.tsv:3: word 1 \('Buch'\): tag 'B-XYZ' is not in the label set of panx \(O, B-PER, I-PER"),
    ("panx/dev-de.tsv", "Haus\tB-LOC\nam\tO\nSee\tB-LOC \n", ("panx", "dev"),  # a space typed after the tag
     r"panx/dev-de\.tsv:1: word 3 \('See'\): tag 'B-LOC ' is not in the label set"),
    ("udpos/test-de.tsv", "", ("udpos", "test"), r"udpos/test-de\.tsv: file is empty"),
    ("udpos/test-de.tsv", "\ufeff\n\n", ("udpos", "test"),
     r"udpos': the 'test' split of 'de' has no usable examples \(read: .*udpos/test-de\.tsv\)"),
    ("udpos/dev-de.tsv", b"Caf\xe9\tNOUN\n", ("udpos", "dev"), r"udpos/dev-de\.tsv: not UTF-8"),
    ("mlqa/MLQA_V1/dev/dev-context-de-question-de.json", '{"data": [\n}', ("mlqa", "dev"),
     r"dev-context-de-question-de\.json:2: not valid JSON"),
    ("mlqa/MLQA_V1/dev/dev-context-de-question-de.json",
     '{"data": [{"paragraphs": [{"context": "Haus", "qas": [{"id": "q7", "question": "?", '
     '"answers": [{"text": "Buch", "answer_start": 3}]}]}]}]}', ("mlqa", "dev"),
     r"dev-context-de-question-de\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\] \(id q7\): answer 'Buch' "
     r"\(answer_start 3\) is not in its context"),
    ("xquad/xquad.de.json", '{"data": [{"qas": []}]}', ("xquad", "test"), r"xquad\.de\.json: not SQuAD-format"),
    ("bucc2018/de-en.dev.gold", "de-000000000\ten-000000000\nde-000000001 en-000000001\n", ("bucc2018", "dev"),
     r"de-en\.dev\.gold:2: expected 'id<TAB>text'"),
    ("bucc2018/de-en.dev.gold", "de-000000009\ten-000000000\n", ("bucc2018", "dev"),
     r"de-en\.dev\.gold:1: gold pair de-000000009, en-000000000 names a sentence that is not in de-en\.dev\.de"),
])
def test_bad_files_name_file_and_line(tmp_path, path, content, load, pattern):
    root = write_xtreme_layout(tmp_path, languages={"en", "de"})
    target = root / path
    target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content, encoding="utf-8")
    spec, split = get_task(load[0]), load[1]
    with pytest.raises(UserError, match=pattern) as err:
        if spec.format == "retrieval":
            load_retrieval(spec, split, "de", root)
        else:
            load_examples(spec, split, root, "de")
    assert "\n" not in str(err.value)


def test_offline_hub_says_to_pass_xtremes_download_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        load_examples(get_task("panx"), "dev", None, "de")
    message = str(err.value)
    assert "\n" not in message and "google/xtreme/PAN-X.de split 'validation'" in message
    assert "--data-dir" in message and "download/" in message and "panx/dev-de.tsv" in message
    with pytest.raises(UserError, match="no online source.*bucc18 configs hold only the gold pairs"):
        load_retrieval(get_task("bucc2018"), "dev", "de", None)


class FakeHub:
    """Stands in for ``datasets.load_dataset``: Hub-shaped rows per (config, split), calls recorded."""

    def __init__(self, rows):
        self.rows, self.calls = rows, []

    def __call__(self, path, config, split):
        self.calls.append((path, config, split))
        return self.rows[config, split]


def test_xcopa_from_the_hub_takes_its_english_dev_set_from_copa(monkeypatch):
    """cambridgeltl/xcopa has no English config: training's English dev set is SuperGLUE COPA's, as XTREME-R's."""
    import datasets

    row = lambda premise: {"premise": premise, "choice1": "a", "choice2": "b", "question": "cause", "label": 1}
    hub = FakeHub({("copa", "validation"): [row("en premise")], ("et", "validation"): [row("et premise")]})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    spec = get_task("xcopa")
    assert [e["context"] for e in load_examples(spec, "dev")] == ["en premise"]
    assert [e["context"] for e in load_examples(spec, "dev", None, "et")] == ["et premise"]
    assert hub.calls == [("aps/super_glue", "copa", "validation"), ("cambridgeltl/xcopa", "et", "validation")]

def test_hub_rows_configs_filters_and_class_labels(monkeypatch):
    import datasets

    qa = lambda qid, context, answer: {"id": qid, "title": "", "context": context, "question": "?", "answers": {
        "text": [answer], "answer_start": [context.index(answer)]}}
    hub = FakeHub({
        ("udpos.German", "validation"): [{"tokens": ["Das", "Haus"], "pos_tags": [5, 7]}],
        ("XNLI", "validation"): [{"language": lang, "sentence1": f"p {lang}", "sentence2": "h", "gold_label": "neutral"}
                                 for lang in ("de", "en", "th")],
        ("mnli", "train"): [{"premise": "p", "hypothesis": "h", "label": 2}],
        ("tydiqa", "validation"): [qa("arabic-1-0", "بيت ماء", "ماء"), qa("english-2-0", "a house", "house")],
        ("tatoeba.cmn", "validation"): [{"source_sentence": "水\n", "target_sentence": "water\n",
                                         "source_lang": "cmn", "target_lang": "eng"}],
    })
    monkeypatch.setattr(datasets, "load_dataset", hub)
    assert load_examples(get_task("udpos"), "dev", None, "de") == [{"tokens": ["Das", "Haus"], "tags": ["DET", "NOUN"]}]
    assert load_examples(get_task("xnli"), "dev", None, "th") == [{"text_a": "p th", "text_b": "h", "label": 1}]
    assert load_examples(get_task("xnli"), "train") == [{"text_a": "p", "text_b": "h", "label": 2}]
    assert [e["id"] for e in load_examples(get_task("tydiqa"), "test", None, "ar")] == ["arabic-1-0"]
    assert load_retrieval(get_task("tatoeba"), "test", "zh", None) == {
        "source_ids": ["0"], "source": ["水"], "target_ids": ["0"], "target": ["water"], "gold": [("0", "0")]}
    assert hub.calls == [("google/xtreme", "udpos.German", "validation"), ("google/xtreme", "XNLI", "validation"),
                         ("nyu-mll/glue", "mnli", "train"), ("google/xtreme", "tydiqa", "validation"),
                         ("google/xtreme", "tatoeba.cmn", "validation")]
