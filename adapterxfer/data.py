"""Readers: turn a task's source rows (local files or a HF dataset) into normalised examples.

One reader serves every task. Intermediate tasks' local files carry the same split names and columns
as the task's Hugging Face dataset (``DIR[/subdir]/<split>.{jsonl,json,csv,tsv,parquet}``); XTREME's
target tasks read the ``download/`` folder of XTREME's ``scripts/download_data.sh`` through their
sources' file patterns, one language at a time. The spec's field expressions (see
:mod:`adapterxfer.tasks`) map a row to the format's fields. Every problem is a :class:`UserError`
naming the file and line.
"""
from __future__ import annotations

import csv
import fnmatch
import json
import re
import string
from pathlib import Path
from typing import Any, Iterator

from .errors import UserError
from .languages import CODE_SHAPE, is_language_code
from .tasks import Source, TaskSpec

TABLE_EXTS = ("jsonl", "json", "csv", "tsv", "parquet")


def load_examples(spec: TaskSpec, split: str, data_dir: str | Path | None = None,
                  lang: str | None = None) -> list[dict]:
    """All examples of ``split`` ("train", "dev", "test") of a single task in ``lang`` (default English),
    normalised to its format. Rows of unlabelled files (XTREME's test files) have label/tags/answers None."""
    if spec.format == "retrieval":
        raise UserError(f"'{spec.name}' is a retrieval task: read it with load_retrieval")
    lang = _language(spec, lang, split, data_dir)
    examples = []
    for source in _sources(spec, split, lang):
        labelled = data_dir is None or split not in source.unlabelled
        for name in source.splits[split]:
            for where, row in _rows(spec, source, split, name, data_dir, lang, labelled):
                ex = normalise(spec, source, row, where, labelled)
                if ex is not None:
                    examples.append(ex)
    if not examples:
        read = [_find_local(s, split, n, data_dir, lang) for s in _sources(spec, split) for n in s.splits[split]]
        where = f" (read: {', '.join(map(str, read))})" if data_dir else ""
        raise UserError(f"task '{spec.name}': the '{split}' split of '{lang}' has no usable examples{where}")
    return examples


def load_retrieval(spec: TaskSpec, split: str, lang: str, data_dir: str | Path | None = None) -> dict:
    """One language of a retrieval task against English: ``source_ids``/``source`` (sentences in
    ``lang``), ``target_ids``/``target`` (English) and ``gold``, a list of ``(source_id, target_id)``
    pairs, or None where the files withhold it (BUCC's test split; Tatoeba in XTREME's download, whose
    English side is sorted). Tatoeba's ids are line indices ("0", "1", ...)."""
    if spec.format != "retrieval":
        raise UserError(f"'{spec.name}' is not a retrieval task: read it with load_examples")
    lang = _language(spec, lang, split, data_dir)
    source = _sources(spec, split)[0]
    if data_dir is None:  # the Hub's Tatoeba: aligned sentence pairs
        f = source.fields or spec.fields
        rows = [row for _, row in _rows(spec, source, split, source.splits[split][0], None, lang)]
        ids = [str(i) for i in range(len(rows))]
        return {"source_ids": ids, "source": [row[f["source"]].strip() for row in rows],
                "target_ids": ids, "target": [row[f["target"]].strip() for row in rows], "gold": list(zip(ids, ids))}
    src_path, tgt_path = (_local_file(spec, source, split, data_dir, lang, side) for side in (lang, "en"))
    if source.local_format == "lines":
        src, tgt = read_lines(src_path), read_lines(tgt_path)
        return {"source_ids": [str(i) for i in range(len(src))], "source": src,
                "target_ids": [str(i) for i in range(len(tgt))], "target": tgt, "gold": None}
    src, tgt = read_pairs(src_path), read_pairs(tgt_path)
    gold_path = Path(data_dir) / _fill(source.files[split], source, lang, "gold")
    gold = None
    if gold_path.is_file():
        known = ({i for _, i, _ in src}, {i for _, i, _ in tgt})
        gold = []
        for where, src_id, tgt_id in read_pairs(gold_path):
            if src_id not in known[0] or tgt_id not in known[1]:
                raise UserError(f"{where}: gold pair {src_id}, {tgt_id} names a sentence that is not in "
                                f"{src_path.name} or {tgt_path.name}")
            gold.append((src_id, tgt_id))
    return {"source_ids": [i for _, i, _ in src], "source": [t for _, _, t in src],
            "target_ids": [i for _, i, _ in tgt], "target": [t for _, _, t in tgt], "gold": gold}


def available_languages(spec: TaskSpec, split: str, data_dir: str | Path | None = None,
                        benchmark: str = "xtreme", extra=()) -> tuple[list[str], list[str]]:
    """``(present, missing)`` languages of ``split`` (the task's in ``benchmark``, then ``extra``: codes outside
    the task's languages, read from ``data_dir`` only): those whose local files all exist under ``data_dir``,
    or, without it, those an online source serves. English-only splits (training data) have one language."""
    sources = _sources(spec, split)
    per_lang = any("{lang}" in s.files[split] for s in sources if s.files)

    def present(lang: str) -> bool:
        if data_dir is None:  # the Hub's copy lacks some languages' dev split (a local file may have one)
            return all(s.hf_path for s in sources) and not (split == "dev" and lang in spec.no_dev or lang in extra)
        return _has_local(spec, split, data_dir, lang)

    langs = [*spec.languages_in(benchmark), *extra] if per_lang else ("en",)
    found = [lang for lang in langs if present(lang)]
    return found, [lang for lang in langs if lang not in found]


# ---------------------------------------------------------------- sources

def _has_local(spec: TaskSpec, split: str, data_dir, lang: str) -> bool:
    sides = (lang, "en") if spec.format == "retrieval" else (None,)
    return all(_find_local(s, split, name, data_dir, lang, side) is not None
               for s in _sources(spec, split, lang) for name in s.splits[split] for side in sides)


def local_files(spec: TaskSpec, split: str, lang: str) -> list[str]:
    """``lang``'s files of ``split`` as XTREME's download/ names them (a retrieval task's: both sides)."""
    sides = (lang, "en") if spec.format == "retrieval" else (None,)
    return [_fill(s.files[split], s, lang, side) for s in _sources(spec, split, lang) if s.files for side in sides]


def _language(spec: TaskSpec, lang: str | None, split: str, data_dir) -> str:
    """``lang``, one of the task's (English: its training data, XCOPA's is COPA) or another language's code
    whose local files are under ``data_dir``."""
    lang = lang or "en"
    if lang in spec.all_languages or lang == "en":
        return lang
    local = data_dir is not None and is_language_code(lang)
    if not (local and _has_local(spec, split, data_dir, lang)):
        missing = [str(Path(data_dir) / f) for f in local_files(spec, split, lang)
                   if not (Path(data_dir) / f).is_file()] if local else []
        raise UserError(f"task '{spec.name}' has no language '{lang}' (languages: {', '.join(spec.all_languages)}; "
                        f"another language is read only from its local files under --data-dir, named as the task's "
                        f"in XTREME's download/, its code {CODE_SHAPE}" +
                        (f"; missing {', '.join(missing)})" if missing else ")"))
    return lang


def _sources(spec: TaskSpec, split: str, lang: str | None = None) -> list[Source]:
    """The sources of ``split``; with ``lang``, those serving it: where an English-only source stands beside
    per-language ones (XCOPA's dev: COPA's for English), English comes from it and the others from them."""
    sources = [s for s in spec.sources if split in s.splits]
    if not sources:
        known = sorted({name for s in spec.sources for name in s.splits})
        raise UserError(f"task '{spec.name}' has no '{split}' split (it has: {', '.join(known) or 'none'}). "
                        f"{spec.description}")
    english = [s for s in sources if s.files and "{lang}" not in s.files[split]]
    if lang is not None and english and len(english) < len(sources):
        return english if lang == "en" else [s for s in sources if s not in english]
    return sources


def _fill(pattern: str, source: Source, lang: str, side: str | None = None) -> str:
    return pattern.format(lang=lang, name=source.lang_names.get(lang, lang), side=side or lang)


def _rows(spec: TaskSpec, source: Source, split: str, name: str, data_dir, lang: str, labelled: bool = True
          ) -> Iterator[tuple[str, dict]]:
    if source.files and "{lang}" not in source.files[split] and lang != "en":
        raise UserError(f"task '{spec.name}': its '{split}' split is English only ({source.files[split]})")
    if data_dir is None:
        if source.hf_path is None:
            raise UserError(f"task '{spec.name}' has no online source. " + (spec.note or "Pass --data-dir, a folder with "
                            + (_fill(source.files[split], source, lang) if source.files else f"{name}.jsonl")))
        return _hf_rows(spec, source, split, name, lang)
    path = _local_file(spec, source, split, data_dir, lang, name=name)
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")
    fmt = source.local_format
    if fmt == "conll":  # XTREME's files: PAN-X's raw ones prefix each token with its language ("de:Haus")
        return read_conll(path, source.columns or ("tokens", "tags"), labelled, f"{lang}:" if source.files else None)
    if fmt == "tsv":
        return read_tsv(path, source.columns, labelled)
    return read_squad(path) if fmt == "squad" else _TABLE_READERS[path.suffix[1:]](path)


def _find_local(source: Source, split: str, name: str, data_dir, lang: str, side: str | None = None
                ) -> Path | None:
    """The local file of one source split (a retrieval file's ``side``), or None when it is missing."""
    if source.files:
        path = Path(data_dir) / _fill(source.files[split], source, lang, side)
        return path if path.is_file() else None
    return next((p for p in _candidates(source, name, Path(data_dir) / source.subdir) if p.is_file()), None)


def _candidates(source: Source, name: str, folder: Path) -> list[Path]:
    if source.local_format == "conll":
        return [folder / f"{name}.conll", folder / f"{name}.txt", folder / f"{name}.tsv"]
    return [folder / f"{name}.{ext}" for ext in TABLE_EXTS]


def _local_file(spec, source, split, data_dir, lang, side=None, name=None) -> Path:
    """Like :func:`_find_local`, but a missing file is an error saying what was expected where."""
    name = name or source.splits[split][0]
    path = _find_local(source, split, name, data_dir, lang, side)
    if path is not None:
        return path
    note = f" {spec.note}" if spec.note else ""
    if source.files:
        raise UserError(f"task '{spec.name}': no {split} data for '{lang}': missing "
                        f"{Path(data_dir) / _fill(source.files[split], source, lang, side)} (pass --data-dir "
                        f"pointing at the download/ folder of XTREME's scripts/download_data.sh).{note}")
    expected = ", ".join(_columns(source.fields or spec.fields)) if source.local_format == "table" \
        else "token<TAB>tag lines"
    first = _candidates(source, name, Path(data_dir) / source.subdir)[0]
    raise UserError(f"task '{spec.name}': missing data file {first} (or .{'/.'.join(TABLE_EXTS[1:])} for tables); "
                    f"expected {expected}.{note}")


def _hf_rows(spec, source, split, name, lang):
    import datasets

    config = source.hf_config and _fill(source.hf_config, source, lang)
    dataset = source.hf_path + (f"/{config}" if config else "")
    try:
        ds = datasets.load_dataset(source.hf_path, config, split=name)
    except Exception as e:  # network, missing dataset, auth: all mean "use local files"
        problem = f"cannot load {dataset} split '{name}' from the Hugging Face Hub ({type(e).__name__})"
        if source.files:
            raise UserError(f"{problem}; without a network pass --data-dir pointing at the download/ folder of "
                            f"XTREME's scripts/download_data.sh (read: {_fill(source.files[split], source, lang)})"
                            ) from None
        files = ", ".join(f"{n}.jsonl" for names in source.splits.values() for n in names)
        sub = f"{source.subdir}/" if source.subdir else ""
        raise UserError(f"{problem}; without a network pass --data-dir DIR with DIR/{sub}{{{files}}} "
                        f"(columns: {', '.join(_columns(source.fields or spec.fields))})") from None
    rows = ((f"{dataset}:{name} row {i + 1}", row) for i, row in enumerate(ds))
    if source.hf_where is None:
        return rows
    column, pattern = source.hf_where[0], _fill(source.hf_where[1], source, lang)
    return ((where, row) for where, row in rows if fnmatch.fnmatchcase(str(row[column]), pattern))


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


def _load_json(path: Path):
    with _open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def read_json(path: Path):
    data = _load_json(path)
    rows = data.get("data", data) if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise UserError(f"{path}: expected a JSON list of rows (or {{'data': [...]}})")
    for i, row in enumerate(rows, 1):
        yield f"{path} row {i}", row


def read_table(path: Path):
    """CSV/TSV with a header row; a cell holding a JSON list/object is decoded (nested columns)."""
    with _open(path) as f:
        rows = _csv_rows(csv.reader(f, delimiter="\t" if path.suffix == ".tsv" else ",", strict=True), path)
        _, header = next(rows, (1, []))
        for line, cells in rows:
            if not cells:
                continue
            if len(cells) != len(header):
                raise UserError(f"{path}:{line}: expected {len(header)} columns ({', '.join(header)}), "
                                f"got {len(cells)}")
            yield f"{path}:{line}", {k: _maybe_json(v) for k, v in zip(header, cells)}


def _csv_rows(reader, path: Path):
    """``(first line, row)`` of a csv reader; a quoting error names the line of the row it broke."""
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as e:
        raise UserError(f"{path}:{start}: not valid CSV ({e}): a field that starts with a double quote must "
                        f"be quoted as CSV writes it, \"...\" with its own quotes doubled") from None


def read_parquet(path: Path):
    import pyarrow.parquet as pq

    for i, row in enumerate(pq.read_table(path).to_pylist(), 1):
        yield f"{path} row {i}", row


def read_conll(path: Path, columns=("tokens", "tags"), labelled: bool = True, prefix: str | None = None):
    """``token<TAB>tag`` lines, an empty line between sentences, as ``(file:line, {columns[0]: tokens,
    columns[1]: tags})``. In an unlabelled file (XTREME's tests: a token a line) tags are None unless all given.
    Only an empty line (or spaces and tabs) ends a sentence: a token may be another space (U+00A0), as in
    XTREME's reader. ``prefix`` (``"de:"``) is cut from every token when every token of the file has it, as
    XTREME's ``panx_preprocess`` cuts the language from PAN-X's raw files."""
    rows, tokens, tags, start = [], [], [], 1
    with _open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip(" \t"):
                if tokens:
                    rows.append((f"{path}:{start}", {columns[0]: tokens, columns[1]: _all_or_none(tags)}))
                tokens, tags, start = [], [], i + 1
                continue
            parts = line.split("\t")
            if labelled and (len(parts) < 2 or not parts[0] or not parts[-1]):
                raise UserError(f"{path}:{i}: expected 'token<TAB>tag', got {line[:60]!r}")
            tokens.append(parts[0])
            tags.append(parts[-1] if len(parts) > 1 and parts[-1] else None)
    if tokens:
        rows.append((f"{path}:{start}", {columns[0]: tokens, columns[1]: _all_or_none(tags)}))
    if prefix and all(t.startswith(prefix) for _, row in rows for t in row[columns[0]]):
        for _, row in rows:
            row[columns[0]] = [t[len(prefix):] for t in row[columns[0]]]
    return rows


def _all_or_none(values: list) -> list | None:
    return None if None in values else values


def read_tsv(path: Path, columns, labelled: bool = True):
    """Header-less tab-separated rows named by ``columns`` (XTREME's xnli/ and pawsx/ files, written by
    Python's csv module). An unlabelled file may leave out the last (label) column."""
    blank = None
    with _open(path) as f:
        for line, cells in _csv_rows(csv.reader(f, delimiter="\t", strict=True), path):
            if not "".join(cells).strip():  # blank lines may end the file; inside it they would shift rows
                blank = blank or line
                continue
            if blank:
                raise UserError(f"{path}:{blank}: blank line between rows (only the end of the file may have them)")
            if len(cells) != len(columns) and (labelled or len(cells) != len(columns) - 1):
                raise UserError(f"{path}:{line}: expected {len(columns)} tab-separated columns "
                                f"({', '.join(columns)}{'' if labelled else '; the last optional'}), "
                                f"got {len(cells)}")
            yield f"{path}:{line}", dict(zip(columns, cells))


def read_squad(path: Path):
    """SQuAD-format JSON (``data`` / ``paragraphs`` / ``qas``) as rows shaped like the Hub's SQuAD:
    ``{"id", "title", "context", "question", "answers": {"text": [...], "answer_start": [...]}}``."""
    data = _load_json(path)
    try:
        for a, article in enumerate(data["data"]):
            for p, paragraph in enumerate(article["paragraphs"]):
                for q, qa in enumerate(paragraph["qas"]):
                    answers = {"text": [x["text"] for x in qa["answers"]],
                               "answer_start": [x["answer_start"] for x in qa["answers"]]}
                    yield (f"{path}: data[{a}].paragraphs[{p}].qas[{q}] (id {qa['id']})",
                           {"id": qa["id"], "title": article.get("title", ""), "context": paragraph["context"],
                            "question": qa["question"], "answers": answers})
    except (KeyError, TypeError) as e:
        raise UserError(f"{path}: not SQuAD-format JSON (data/paragraphs/qas with id, question, answers): "
                        f"{type(e).__name__} {e}") from None


def read_pairs(path: Path) -> list[tuple[str, str, str]]:
    """``a<TAB>b`` lines as ``(file:line, a, b)``: BUCC's ``id<TAB>sentence`` and gold ``id<TAB>id`` files."""
    pairs = []
    for i, line in enumerate(read_lines(path), 1):
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0]:
            raise UserError(f"{path}:{i}: expected 'id<TAB>text', got {line.rstrip()[:60]!r}")
        pairs.append((f"{path}:{i}", parts[0], parts[1]))
    return pairs


def read_lines(path: Path) -> list[str]:
    """One sentence a line (Tatoeba), without line ends and without the blank lines that end the file."""
    with _open(path) as f:
        lines = [line.rstrip("\r\n") for line in f]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise UserError(f"{path}: file is empty")
    return lines


_TABLE_READERS = {"jsonl": read_jsonl, "json": read_json, "csv": read_table, "tsv": read_table,
                  "parquet": read_parquet}


def _open(path: Path):
    try:
        with open(path, "rb") as f:
            f.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return open(path, encoding="utf-8-sig", newline="")  # a byte order mark (Windows editors) is not text


def _maybe_json(value: str):
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            pass
    return value


# ---------------------------------------------------------------- normalisation

def _columns(fields) -> list[str]:
    cols = []
    for expr in fields.values():
        if isinstance(expr, str):
            cols.append(expr.split(".")[0])
        elif isinstance(expr, list):
            cols.extend(expr)
        elif "template" in expr:
            cols.extend(name for _, name, _, _ in string.Formatter().parse(expr["template"]) if name)
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
    if "template" in expr:
        names = [name for _, name, _, _ in string.Formatter().parse(expr["template"]) if name]
        return expr["template"].format(**{n: _text(_get(row, n, where), n, where) for n in names})
    raise TypeError(expr)


def _column(row, fields: dict, key: str, where, optional=False) -> str:
    """The text of field ``key``; an error names the file's own column where the field is one column."""
    expr = fields[key]
    return _text(_field(row, expr, where), expr if isinstance(expr, str) else key, where, optional)


def _text(value, name, where, optional=False) -> str:
    if value is None and optional:
        return ""
    if not isinstance(value, str) or (not value.strip() and not optional):
        raise UserError(f"{where}: field '{name}' must be non-empty text, got {value!r}")
    return value


def _answer_start(context: str, text: str, start, where: str) -> int:
    """Where ``text`` stands in ``context``: at ``start`` (in characters), or else (offsets counted in bytes or
    UTF-16 units, as some tools write them, or shifted) at its occurrence nearest ``start``, so that training
    never targets another span; an answer that is nowhere in its context is an error."""
    if not isinstance(start, int):
        raise UserError(f"{where}: answer_start {start!r} of {text!r} is not a character offset")
    if context[start:start + len(text)] == text:
        return start
    found = [m.start() for m in re.finditer(re.escape(text), context)]
    if not found:
        raise UserError(f"{where}: answer {text!r} (answer_start {start}) is not in its context")
    return min(found, key=lambda at: abs(at - start))


def normalise(spec: TaskSpec, source: Source, row: dict, where: str, labelled: bool = True) -> dict | None:
    """Map one source row to the format's fields; ``None`` for rows without a gold label.

    Rows of an unlabelled file (``labelled=False``: XTREME's test files) may lack the label, tags or
    answers (XTREME blanks test answers to ``""``), which then are None; every other row needs them.
    Target tasks keep empty texts, so predictions stay line-aligned with XTREME's label files.
    """
    f = source.fields or spec.fields
    if spec.format == "tagging":
        tokens, tags = row.get(f.get("tokens", "tokens")), row.get(f.get("tags", "tags"))
        if tags is None and not labelled:
            tags = [None] * len(tokens or [])
        if not tokens or not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
            raise UserError(f"{where}: expected equally long non-empty 'tokens' and 'tags' lists")
        if None in tags:
            return {"tokens": [str(t) for t in tokens], "tags": None}
        if spec.labels is not None:
            tags = [spec.labels[t] if isinstance(t, int) and 0 <= t < len(spec.labels) else t for t in tags]
            for i, tag in enumerate(tags):
                if tag not in spec.labels:  # ``where`` is the sentence's first line: name the word too
                    raise UserError(f"{where}: word {i + 1} ({tokens[i]!r}): tag {tag!r} is not in the label set of "
                                    f"{spec.name} ({', '.join(spec.labels)})")
        return {"tokens": [str(t) for t in tokens], "tags": [str(t) for t in tags]}

    if spec.format == "span_qa":
        context = _column(row, f, "context", where)
        ex = {"id": str(_field(row, f["id"], where)), "context": context,
              "question": _column(row, f, "question", where), "answers": None}
        answers = row.get(f["answers"]) if not labelled else _field(row, f["answers"], where)
        if not labelled and (not isinstance(answers, dict) or not any(answers.get("text") or [])):
            return ex
        if not isinstance(answers, dict) or not isinstance(answers.get("text"), list) \
                or not isinstance(answers.get("answer_start"), list) \
                or len(answers["text"]) != len(answers["answer_start"]):
            raise UserError(f"{where}: 'answers' must be {{'text': [...], 'answer_start': [...]}} of equal length")
        ex["answers"] = {"text": list(answers["text"]),
                         "answer_start": [_answer_start(context, text, start, where)
                                          for text, start in zip(answers["text"], answers["answer_start"])]}
        return ex

    if spec.format == "classification":
        has_label = labelled or row.get(f["label"]) not in (None, "")
        raw = _label(row, f["label"], where) if has_label else None
        if has_label and raw in source.skip_labels:
            return None
        return {"text_a": _column(row, f, "text_a", where, spec.is_target),
                "text_b": _column(row, f, "text_b", where, spec.is_target)
                if "text_b" in f else None,
                "label": _class_index(spec, raw, where) if has_label else None}

    raw = _label(row, f["label"], where)
    if raw in source.skip_labels:
        return None
    choices = _field(row, f["choices"], where)
    fewer = spec.pad_choices and isinstance(choices, list) and 2 <= len(choices) < spec.num_choices
    if not isinstance(choices, list) or (len(choices) != spec.num_choices and not fewer):
        want = f"2-{spec.num_choices}" if spec.pad_choices else spec.num_choices
        raise UserError(f"{where}: expected {want} choices, got {choices!r:.80}")
    label = _int(raw, where)
    if label is None or not 0 <= label < len(choices):
        raise UserError(f"{where}: label {raw!r} is not a choice index 0-{len(choices) - 1}")
    if fewer:  # copies of the first wrong choice, after the real ones: argmax keeps the first of equal scores
        choices = choices + [choices[label == 0]] * (spec.num_choices - len(choices))
    return {"context": _column(row, f, "context", where),
            "question": _column(row, f, "question", where, True) if "question" in f else "",
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
