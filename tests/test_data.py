"""Readers: every local format gives the same examples; field expressions; one clear error per bad input."""
import json

import pytest

from adapterxfer.data import load_examples
from adapterxfer.errors import UserError
from adapterxfer.tasks import get_task

ROWS = [
    {"premise": "a cat sat", "hypothesis": "an animal sat", "label": 0},
    {"premise": "it rains", "hypothesis": "it is dry", "label": 2},
]


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.mark.parametrize("ext", ["jsonl", "json", "csv", "tsv", "parquet"])
def test_every_table_format_reads_the_same(tmp_path, ext):
    path = tmp_path / f"train.{ext}"
    if ext == "jsonl":
        write_jsonl(path, ROWS)
    elif ext == "json":
        path.write_text(json.dumps(ROWS))
    elif ext in ("csv", "tsv"):
        sep = "," if ext == "csv" else "\t"
        path.write_text("premise{0}hypothesis{0}label\n".format(sep)
                        + "".join(f"{r['premise']}{sep}{r['hypothesis']}{sep}{r['label']}\n" for r in ROWS))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    examples = load_examples(get_task("mnli"), "train", tmp_path)
    assert examples == [{"text_a": "a cat sat", "text_b": "an animal sat", "label": 0},
                        {"text_a": "it rains", "text_b": "it is dry", "label": 2}]


def test_label_names_are_accepted_and_mapped(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{**ROWS[0], "label": "contradiction"}])
    assert load_examples(get_task("mnli"), "train", tmp_path)[0]["label"] == 2


def test_multiple_choice_field_expressions(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"question": "where?", "answerKey": "C", "choices": {
        "label": list("ABCDE"), "text": ["a", "b", "c", "d", "e"]}}])
    ex = load_examples(get_task("commonsenseqa"), "train", tmp_path)[0]
    assert ex["label"] == 2 and ex["choices"][2] == "c" and ex["context"] == "where?"

    write_jsonl(tmp_path / "siqa" / "train.jsonl", [{"context": "c", "question": "q", "answerA": "x",
                                                      "answerB": "y", "answerC": "z", "label": "3"}])
    ex = load_examples(get_task("socialiqa"), "train", tmp_path / "siqa")[0]
    assert ex["label"] == 2 and ex["choices"] == ["x", "y", "z"]  # SocialIQA counts from 1

    write_jsonl(tmp_path / "hs" / "train.jsonl", [{"ctx": "he", "endings": ["a", "b", "c", "d"], "label": "1"}])
    assert load_examples(get_task("hellaswag"), "train", tmp_path / "hs")[0]["label"] == 1


def test_multi_source_task_and_skipped_labels(tmp_path):
    nli = {"premise": "p", "hypothesis": "h"}
    for r in (1, 2, 3):
        write_jsonl(tmp_path / "anli" / f"train_r{r}.jsonl", [{**nli, "label": 1}])
    write_jsonl(tmp_path / "mnli" / "train.jsonl", [{**nli, "label": 0}])
    write_jsonl(tmp_path / "snli" / "train.jsonl", [{**nli, "label": 2}, {**nli, "label": -1}])
    examples = load_examples(get_task("anli+"), "train", tmp_path)
    assert [e["label"] for e in examples] == [1, 1, 1, 0, 2]  # SNLI's -1 (no gold label) is skipped


def test_conll_reader(tmp_path):
    (tmp_path / "train.conll").write_text("The\tNP/N\ncat\tN\n\nsat\tS\\NP\n")
    assert load_examples(get_task("ccg"), "train", tmp_path) == [
        {"tokens": ["The", "cat"], "tags": ["NP/N", "N"]}, {"tokens": ["sat"], "tags": ["S\\NP"]}]


def test_squad_answers_are_checked(tmp_path):
    row = {"id": "1", "question": "who?", "context": "Ann ran", "answers": {"text": ["Ann"], "answer_start": [0]}}
    write_jsonl(tmp_path / "train.jsonl", [row])
    assert load_examples(get_task("squad"), "train", tmp_path)[0]["answers"]["text"] == ["Ann"]
    write_jsonl(tmp_path / "train.jsonl", [row, {**row, "answers": {"text": ["ran"], "answer_start": [9]}}])
    assert load_examples(get_task("squad"), "train", tmp_path)[1]["answers"]["answer_start"] == [4]  # its own place
    write_jsonl(tmp_path / "train.jsonl", [row, {**row, "answers": {"text": ["Bob"], "answer_start": [0]}}])
    with pytest.raises(UserError, match=r"train.jsonl:2: answer 'Bob' \(answer_start 0\) is not in its context"):
        load_examples(get_task("squad"), "train", tmp_path)


@pytest.mark.parametrize("content, pattern", [
    ("", r"train.jsonl: file is empty"),
    ('{"premise": "a", "hypothesis": "b", "label": 0}\n{"premise": "a", "label": 1}\n',
     r"train.jsonl:2: missing column 'hypothesis'"),
    ('{"premise": "a", "hypothesis": "b", "label": 0}\nnot json\n', r"train.jsonl:2: not valid JSON"),
    ('{"premise": "a", "hypothesis": "b", "label": 7}\n', r"train.jsonl:1: label 7 is outside the label set"),
    ('{"premise": "a", "hypothesis": "b", "label": "maybe"}\n', r"label 'maybe' is outside the label set"),
    ('{"premise": "", "hypothesis": "b", "label": 0}\n', r"train.jsonl:1: field 'premise' must be non-empty"),
])
def test_bad_rows_name_file_and_line(tmp_path, content, pattern):
    (tmp_path / "train.jsonl").write_text(content)
    with pytest.raises(UserError, match=pattern):
        load_examples(get_task("mnli"), "train", tmp_path)


def test_table_quoting_errors_and_short_rows_name_the_line(tmp_path):
    (tmp_path / "train.csv").write_text('premise,hypothesis,label\na,b,0\n"open,c,1\n' + "d,e,2\n" * 30000)
    with pytest.raises(UserError, match=r"train\.csv:3: not valid CSV"):
        load_examples(get_task("mnli"), "train", tmp_path)
    (tmp_path / "train.csv").write_text("premise,hypothesis,label\na,b,0\n\nc,1\n")
    with pytest.raises(UserError, match=r"train\.csv:4: expected 3 columns \(premise, hypothesis, label\), got 2"):
        load_examples(get_task("mnli"), "train", tmp_path)


def test_missing_file_names_the_expected_file_and_columns(tmp_path):
    with pytest.raises(UserError, match=r"missing data file .*validation_matched.jsonl.*premise, hypothesis, label"):
        load_examples(get_task("mnli"), "dev", tmp_path)


def test_licensed_task_explains_itself(tmp_path):
    with pytest.raises(UserError, match="LDC"):
        load_examples(get_task("ccg"), "train", None)
    with pytest.raises(UserError, match="LDC"):
        load_examples(get_task("ccg"), "train", tmp_path)


def test_non_utf8_file(tmp_path):
    (tmp_path / "train.jsonl").write_bytes(b'{"premise": "caf\xe9"}\n')
    with pytest.raises(UserError, match="not UTF-8"):
        load_examples(get_task("mnli"), "train", tmp_path)


def test_unknown_task_suggests_close_names():
    with pytest.raises(UserError, match="did you mean mnli"):
        get_task("mnly")


def test_offline_hub_gives_one_line_with_the_local_alternative(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        load_examples(get_task("mnli"), "dev", None)
    message = str(err.value)
    assert "\n" not in message and "--data-dir" in message and "validation_matched.jsonl" in message


def test_atomic_writes_work_where_file_modes_cannot_be_set(tmp_path, monkeypatch):
    """A file system without Unix modes (vfat) refuses chmod: the write still lands, no temporary file left."""
    import os

    from adapterxfer.fileio import write_json

    def refuse(*_):
        raise PermissionError("Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse)
    write_json(tmp_path / "results.json", {"a": 1})
    assert json.loads((tmp_path / "results.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
