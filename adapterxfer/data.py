"""Readers: turn a task's source rows (local files or a HF dataset) into normalised examples.

One reader serves every task: local files carry the same split names and columns as the task's
Hugging Face dataset (``DIR[/subdir]/<split>.{jsonl,json,csv,tsv,parquet}``), and the spec's field
expressions (see :mod:`adapterxfer.tasks`) map a row to the format's fields. Every problem is a
:class:`UserError` naming the file and line.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from .errors import UserError
from .tasks import Source, TaskSpec

TABLE_EXTS = ("jsonl", "json", "csv", "tsv", "parquet")


def load_examples(spec: TaskSpec, split: str, data_dir: str | Path | None = None) -> list[dict]:
    """All examples of ``split`` ("train" or "dev") of a single task, normalised to its format."""
    sources = [s for s in spec.sources if split in s.splits]
    if not sources:
        raise UserError(f"task '{spec.name}' has no '{split}' split")
    examples = []
    for source in sources:
        for name in source.splits[split]:
            for where, row in _rows(spec, source, name, data_dir):
                ex = normalise(spec, source, row, where)
                if ex is not None:
                    examples.append(ex)
    if not examples:
        raise UserError(f"task '{spec.name}': the '{split}' split has no usable examples")
    return examples


# ---------------------------------------------------------------- sources

def _rows(spec: TaskSpec, source: Source, name: str, data_dir) -> Iterator[tuple[str, dict]]:
    if data_dir is not None:
        return _local_rows(spec, source, name, Path(data_dir) / source.subdir)
    if source.hf_path is None:
        raise UserError(f"task '{spec.name}' has no online source. {spec.note}")
    return _hf_rows(spec, source, name)


def _local_rows(spec, source, name, folder: Path):
    if source.local_format == "conll":
        candidates = [folder / f"{name}.conll", folder / f"{name}.txt", folder / f"{name}.tsv"]
    else:
        candidates = [folder / f"{name}.{ext}" for ext in TABLE_EXTS]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        expected = ", ".join(_columns(spec)) if source.local_format == "table" else "token<TAB>tag lines"
        note = f" {spec.note}" if spec.note else ""
        raise UserError(f"task '{spec.name}': missing data file {candidates[0]} (or .{'/.'.join(TABLE_EXTS[1:])}"
                        f" for tables); expected {expected}.{note}")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")
    reader = read_conll if source.local_format == "conll" else _TABLE_READERS[path.suffix[1:]]
    return reader(path)


def _hf_rows(spec, source, name):
    import datasets

    try:
        ds = datasets.load_dataset(source.hf_path, source.hf_config, split=name)
    except Exception as e:  # network, missing dataset, auth: all mean "use local files"
        files = ", ".join(f"{n}.jsonl" for names in source.splits.values() for n in names)
        sub = f"{source.subdir}/" if source.subdir else ""
        raise UserError(
            f"cannot load {source.hf_path}{'/' + source.hf_config if source.hf_config else ''} split '{name}' "
            f"from the Hugging Face Hub ({type(e).__name__}); without a network pass --data-dir DIR with "
            f"DIR/{sub}{{{files}}} (columns: {', '.join(_columns(spec))})") from None
    where = f"{source.hf_path}:{name}"
    return ((f"{where} row {i + 1}", row) for i, row in enumerate(ds))


def read_jsonl(path: Path):
    with _open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{i}: expected a JSON object per line")
            yield f"{path}:{i}", row


def read_json(path: Path):
    with _open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    rows = data.get("data", data) if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise UserError(f"{path}: expected a JSON list of rows (or {{'data': [...]}})")
    for i, row in enumerate(rows, 1):
        yield f"{path} row {i}", row


def read_table(path: Path):
    """CSV/TSV with a header row; a cell holding a JSON list/object is decoded (nested columns)."""
    with _open(path) as f:
        reader = csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ",")
        for row in reader:
            if None in row or None in row.values():
                raise UserError(f"{path}:{reader.line_num}: expected {len(reader.fieldnames)} columns "
                                f"({', '.join(reader.fieldnames)})")
            yield f"{path}:{reader.line_num}", {k: _maybe_json(v) for k, v in row.items()}


def read_parquet(path: Path):
    import pyarrow.parquet as pq

    for i, row in enumerate(pq.read_table(path).to_pylist(), 1):
        yield f"{path} row {i}", row


def read_conll(path: Path):
    """``token<TAB>tag`` lines, a blank line between sentences; yields {"tokens", "tags"} rows."""
    tokens, tags, start = [], [], 1
    with _open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                if tokens:
                    yield f"{path}:{start}", {"tokens": tokens, "tags": tags}
                tokens, tags, start = [], [], i + 1
                continue
            parts = line.split("\t")
            if len(parts) < 2 or not parts[0] or not parts[-1]:
                raise UserError(f"{path}:{i}: expected 'token<TAB>tag', got {line[:60]!r}")
            tokens.append(parts[0])
            tags.append(parts[-1])
    if tokens:
        yield f"{path}:{start}", {"tokens": tokens, "tags": tags}


_TABLE_READERS = {"jsonl": read_jsonl, "json": read_json, "csv": read_table, "tsv": read_table,
                  "parquet": read_parquet}


def _open(path: Path):
    try:
        with open(path, "rb") as f:
            f.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return open(path, encoding="utf-8", newline="")


def _maybe_json(value: str):
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            pass
    return value


# ---------------------------------------------------------------- normalisation

def _columns(spec: TaskSpec) -> list[str]:
    cols = []
    for expr in spec.fields.values():
        if isinstance(expr, str):
            cols.append(expr.split(".")[0])
        elif isinstance(expr, list):
            cols.extend(expr)
        else:
            cols.append((expr.get("column") or expr["index_of"]).split(".")[0])
            if "in" in expr:
                cols.append(expr["in"].split(".")[0])
    return list(dict.fromkeys(cols)) or ["tokens", "tags"]


def _get(row: dict, path: str, where: str):
    value: Any = row
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise UserError(f"{where}: missing column '{path}' (row has: {', '.join(map(str, row))})")
        value = value[key]
    return value


def _field(row, expr, where):
    if isinstance(expr, str):
        return _get(row, expr, where)
    if isinstance(expr, list):
        return [_get(row, c, where) for c in expr]
    raise TypeError(expr)


def _text(value, name, where, optional=False) -> str:
    if value is None and optional:
        return ""
    if not isinstance(value, str) or (not value.strip() and not optional):
        raise UserError(f"{where}: field '{name}' must be non-empty text, got {value!r}")
    return value


def normalise(spec: TaskSpec, source: Source, row: dict, where: str) -> dict | None:
    """Map one source row to the format's fields; ``None`` for rows without a gold label."""
    f = spec.fields
    if spec.format == "tagging":
        tokens, tags = row.get("tokens"), row.get("tags")
        if not tokens or not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
            raise UserError(f"{where}: expected equally long non-empty 'tokens' and 'tags' lists")
        if spec.labels is not None:
            for tag in tags:
                if tag not in spec.labels:
                    raise UserError(f"{where}: tag '{tag}' is not in the label set of {spec.name}")
        return {"tokens": [str(t) for t in tokens], "tags": [str(t) for t in tags]}

    if spec.format == "span_qa":
        answers = _field(row, f["answers"], where)
        if not isinstance(answers, dict) or not isinstance(answers.get("text"), list) \
                or not isinstance(answers.get("answer_start"), list) \
                or len(answers["text"]) != len(answers["answer_start"]):
            raise UserError(f"{where}: 'answers' must be {{'text': [...], 'answer_start': [...]}} of equal length")
        context = _text(_field(row, f["context"], where), "context", where)
        for text, start in zip(answers["text"], answers["answer_start"]):
            if not isinstance(start, int) or not 0 <= start <= len(context) - len(text):
                raise UserError(f"{where}: answer_start {start!r} of {text!r} lies outside the context")
        return {"id": str(_field(row, f["id"], where)), "context": context,
                "question": _text(_field(row, f["question"], where), "question", where),
                "answers": {"text": list(answers["text"]), "answer_start": list(answers["answer_start"])}}

    raw = _label(row, f["label"], where)
    if raw in source.skip_labels:
        return None
    if spec.format == "classification":
        ex = {"text_a": _text(_field(row, f["text_a"], where), "text_a", where),
              "text_b": _text(_field(row, f["text_b"], where), "text_b", where) if "text_b" in f else None}
        ex["label"] = _class_index(spec, raw, where)
        return ex

    choices = _field(row, f["choices"], where)
    if not isinstance(choices, list) or len(choices) != spec.num_choices:
        raise UserError(f"{where}: expected {spec.num_choices} choices, got {choices!r:.80}")
    label = _int(raw, where)
    if label is None or not 0 <= label < spec.num_choices:
        raise UserError(f"{where}: label {raw!r} is not a choice index 0-{spec.num_choices - 1}")
    return {"context": _text(_field(row, f["context"], where), "context", where),
            "question": _text(_field(row, f["question"], where), "question", where, True) if "question" in f else "",
            "choices": [_text(c, "choices", where, optional=True) for c in choices], "label": label}


def _label(row, expr, where):
    if isinstance(expr, str):
        return _get(row, expr, where)
    if "index_of" in expr:
        value, options = _get(row, expr["index_of"], where), _get(row, expr["in"], where)
        if value not in options:
            raise UserError(f"{where}: '{expr['index_of']}' = {value!r} is not one of {options!r}")
        return options.index(value)
    value = _int(_get(row, expr["column"], where), where)
    return None if value is None else value + expr.get("offset", 0)


def _int(value, where):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _class_index(spec: TaskSpec, raw, where) -> int:
    labels = spec.labels
    if isinstance(raw, str) and raw in labels:
        return labels.index(raw)
    value = _int(raw, where)
    if value is None or not 0 <= value < len(labels):
        raise UserError(f"{where}: label {raw!r} is outside the label set of {spec.name} "
                        f"({', '.join(f'{i}={n}' for i, n in enumerate(labels))})")
    return value
