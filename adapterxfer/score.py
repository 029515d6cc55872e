"""Score an XTREME submission folder against a label folder, with the numbers XTREME's ``evaluate.py`` gives.

Both folders use XTREME's layout ``<dir>/<task>/test-<lang>.{tsv|json}``:

* ``pawsx``, ``xnli``: one label per line; ``xcopa`` (XTREME-R): one choice index per line;
* ``udpos``, ``panx``: one tag per line, a blank line after each sentence;
* ``bucc2018``: ``source_id<TAB>target_id`` per line, compared as sets;
* ``tatoeba``: per line of the (sorted) English file, the line of the retrieved sentence in the other language;
* ``xquad``, ``mlqa``, ``tydiqa``: predictions ``{question_id: answer}`` JSON, labels SQuAD-format JSON.

The per-task table (:data:`TASKS`) names each task's readers, consistency check and metric, like
XTREME's ``READER_FUNCTION``/``METRIC_FUNCTION``. Problems that make a number meaningless (wrong line
count, unknown language, unreadable file) raise :class:`UserError`; problems that XTREME scores through
(unanswered questions, languages not submitted) are returned in :attr:`Scores.warnings` for the caller to show.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import UserError
from .languages import CODE_SHAPE, is_language_code
from .metrics import (accuracy, bucc_f1, mean, missing_ids, mlqa_scores, squad_scores, tagging_f1,
                      tatoeba_accuracy)
from .tasks import TASKS as SPECS
from .tasks import BENCHMARKS, Benchmark, get_benchmark, task_file_targets

# --- readers: one per file format, each raising UserError naming the file (and line) ------------


def _read_text(path: Path, allow_empty: bool = False) -> str:
    """The file's text with universal newlines; a blank file is an error unless ``allow_empty`` ("" then)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a byte order mark (Windows editors) is not text
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    if not text.strip():
        if allow_empty:
            return ""
        raise UserError(f"{path}: file is empty")
    return text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as XTREME's open()


def _read_lines(path: Path, allow_empty: bool = False) -> list[str]:
    """XTREME's ``read_label``: every line, stripped (a blank line is an example too)."""
    lines = _read_text(path, allow_empty).split("\n")
    if lines[-1] == "":  # the newline ending the last line
        lines.pop()
    return [line.strip() for line in lines]


def _read_tags(path: Path) -> list[list[str]]:
    """XTREME's ``read_tag``: sentences of tags; every blank line ends one (so two make an empty one)."""
    sentences, sentence = [], []
    for line in _read_lines(path):
        if line:
            sentence.append(line)
        else:
            sentences.append(sentence)
            sentence = []
    if sentence:
        sentences.append(sentence)
    return sentences


def _read_indices(path: Path) -> list[str]:
    """Sentence indices, checked to be integers but kept as text: XTREME compares the lines ("01" is not "1")."""
    lines = _read_lines(path)
    for n, line in enumerate(lines, 1):
        if not line.isdecimal() or not line.isascii():
            raise UserError(f"{path}:{n}: expected a sentence index, found {line!r}")
    return lines


def _read_pairs(path: Path, allow_empty: bool = False) -> list[tuple[str, str]]:
    pairs = []
    for n, line in enumerate(_read_lines(path, allow_empty), 1):
        fields = tuple(line.split("\t"))
        if len(fields) != 2 or not all(fields):
            raise UserError(f"{path}:{n}: expected 'source_id<TAB>target_id', found {line!r}")
        pairs.append(fields)
    return pairs


def _read_mined_pairs(path: Path) -> list[tuple[str, str]]:
    """BUCC predictions: a blank file mined no pair and scores 0, as in XTREME's ``bucc_f1``."""
    return _read_pairs(path, allow_empty=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def _read_qa_predictions(path: Path) -> dict[str, str]:
    obj = _read_json(path)
    if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
        raise UserError(f"{path}: expected a JSON object {{question_id: answer_text}}")
    return obj


def _read_squad_gold(path: Path) -> dict[str, list[str]]:
    """SQuAD-format labels (``{"data": [{"paragraphs": [{"qas": [...]}]}]}``) as ``{id: [answer texts]}``."""
    obj = _read_json(path)
    articles = obj["data"] if isinstance(obj, dict) and "data" in obj else obj
    gold: dict[str, list[str]] = {}
    try:
        for article in articles:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    if qa["id"] in gold:
                        raise UserError(f"{path}: question id {qa['id']!r} appears twice")
                    gold[qa["id"]] = [answer["text"] for answer in qa["answers"]]
    except (KeyError, TypeError) as e:
        raise UserError(f"{path}: not SQuAD-format JSON (data/paragraphs/qas/id/answers/text): "
                        f"{type(e).__name__} {e}") from None
    if not gold:
        raise UserError(f"{path}: no questions")
    return gold


# --- checks: a prediction file against its label file; raise on mismatch, return warnings --------


def _same_lines(preds: list, golds: list, pred_path: Path, gold_path: Path) -> list[str]:
    if len(preds) != len(golds):
        raise UserError(f"{pred_path}: {len(preds)} lines, expected {len(golds)} "
                        f"(one per line of {gold_path})")
    return []


def _same_sentences(preds: list[list[str]], golds: list[list[str]], pred_path: Path,
                    gold_path: Path) -> list[str]:
    if len(preds) != len(golds):
        raise UserError(f"{pred_path}: {len(preds)} sentences, expected {len(golds)} as in {gold_path}")
    line = 1
    for i, (p, g) in enumerate(zip(preds, golds), 1):
        if len(p) != len(g):
            raise UserError(f"{pred_path}:{line}: sentence {i} has {len(p)} tags, "
                            f"expected {len(g)} as in {gold_path}")
        line += len(p) + 1
    return []


def _any_pairs(preds, golds, pred_path: Path, gold_path: Path) -> list[str]:
    return []  # BUCC predictions are a set of pairs: any number is fine


def _question_ids(preds: dict[str, str], golds: dict[str, list[str]], pred_path: Path,
                  gold_path: Path) -> list[str]:
    warnings = []
    unanswered = missing_ids(preds, golds)
    if unanswered:
        warnings.append(f"{pred_path}: {len(unanswered)} of {len(golds)} questions unanswered, "
                        f"scored as wrong (e.g. {', '.join(unanswered[:3])})")
    unknown = [qid for qid in preds if qid not in golds]
    if unknown:
        warnings.append(f"{pred_path}: {len(unknown)} ids not in {gold_path}, ignored "
                        f"(e.g. {', '.join(unknown[:3])})")
    return warnings


# --- the task table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class XtremeTask:
    """How one task's files are read, checked against each other and scored."""

    ext: str
    read_pred: Callable[[Path], Any]
    read_gold: Callable[[Path], Any]
    check: Callable[[Any, Any, Path, Path], list[str]]
    metric: Callable[[Any, Any, str], dict[str, float]]
    no_extras: str = ""  # why a language outside the task's set cannot be scored (its metric depends on the language)


def _ignore_lang(metric: Callable[[Any, Any], dict[str, float]]) -> Callable[..., dict[str, float]]:
    return lambda preds, golds, lang: metric(preds, golds)


_CLASSIFY = dict(ext="tsv", read_pred=_read_lines, read_gold=_read_lines, check=_same_lines,
                 metric=_ignore_lang(accuracy))
_TAG = dict(ext="tsv", read_pred=_read_tags, read_gold=_read_tags, check=_same_sentences,
            metric=_ignore_lang(tagging_f1))
_QA = dict(ext="json", read_pred=_read_qa_predictions, read_gold=_read_squad_gold, check=_question_ids,
           metric=_ignore_lang(squad_scores))

#: Every target task, XTREME's in its order, then XTREME-R's; a task's languages in each benchmark (XTREME's
#: ``TASK2LANGS``, XTREME-R's lists) come from the task registry (``TaskSpec.languages_in``).
_MLQA = {**_QA, "metric": mlqa_scores,
         "no_extras": "its answer normalisation is defined per language (en es hi vi de ar zh)"}
TASKS: dict[str, XtremeTask] = {
    "pawsx": XtremeTask(**_CLASSIFY),
    "xnli": XtremeTask(**_CLASSIFY),
    "panx": XtremeTask(**_TAG),
    "udpos": XtremeTask(**_TAG),
    "bucc2018": XtremeTask(ext="tsv", read_pred=_read_mined_pairs, read_gold=_read_pairs, check=_any_pairs,
                           metric=_ignore_lang(bucc_f1)),
    "tatoeba": XtremeTask(ext="tsv", read_pred=_read_indices, read_gold=_read_indices, check=_same_lines,
                          metric=_ignore_lang(tatoeba_accuracy)),
    "xquad": XtremeTask(**_QA),
    "mlqa": XtremeTask(**_MLQA),
    "tydiqa": XtremeTask(**_QA),
    "xcopa": XtremeTask(**_CLASSIFY),
}
#: A task file's target tasks are scored by format and metric, as the built-in task of the same kind.
_BY_METRIC = {"accuracy": _CLASSIFY, "seqeval": _TAG, "squad": _QA, "mlqa": _MLQA,
              "token_accuracy": {**_TAG, "metric": lambda preds, golds, lang: accuracy(
                  list(itertools.chain.from_iterable(preds)), list(itertools.chain.from_iterable(golds)))}}


def scorer(name: str) -> XtremeTask:
    """How a target task's files are read and scored: XTREME's table, or for a task file's target task
    (``adapterxfer --tasks``), by its metric."""
    spec = SPECS.get(name)
    if name not in TASKS and not (spec and spec.origin and spec.is_target):
        raise UserError(f"unknown XTREME task '{name}' (known: {', '.join(TASKS)})")
    return TASKS.get(name) or XtremeTask(**_BY_METRIC[spec.metric])


class Scores(dict):
    """``{task: {"avg_<metric>": x, ..., "avg_metric": x, "<lang>": {"<metric>": x}}}`` (percentages)
    plus ``warnings``: what was scored through but deserves a look (unanswered questions, missing languages),
    and ``extras``: ``{task: {...}}`` as above for extra languages (codes outside the task's languages in every
    benchmark, from local files), averaged among themselves and never in the task's or the benchmark's average.

    ``avg_metric`` is XTREME's headline number: the mean of ``avg_exact_match`` and ``avg_f1`` for QA,
    ``avg_f1`` for tagging and BUCC, ``avg_accuracy`` otherwise.
    """

    def __init__(self) -> None:
        super().__init__()
        self.warnings: list[str] = []
        self.extras: dict[str, dict[str, Any]] = {}


def score_folder(pred_dir: str | Path, label_dir: str | Path, tasks: Iterable[str] | None = None,
                 benchmark: str = "xtreme") -> Scores:
    """Score ``pred_dir`` against ``label_dir`` for ``tasks`` (default: each task folder of ``benchmark``,
    ``xtreme`` or ``xtreme-r``, or of a task file's target task, in ``pred_dir``).

    Each task scores the languages that have a prediction file; averages are over those languages,
    summed in the benchmark's order, so a full submission gets exactly its numbers (a partial one, a warning).
    Files of extra languages (see :class:`Scores`) are scored into ``extras``.
    """
    bench = get_benchmark(benchmark)
    pred_dir, label_dir = Path(pred_dir), Path(label_dir)
    for folder, what in ((pred_dir, "prediction"), (label_dir, "label")):
        if not folder.is_dir():
            raise UserError(f"{what} folder {folder} does not exist")
    scores = Scores()
    for name in _select_tasks(pred_dir, tasks, bench, scores.warnings):
        result, extra = _score_task(name, pred_dir / name, label_dir / name, scores.warnings, bench)
        scores.update({name: result} if result else {})
        scores.extras.update({name: extra} if extra else {})
    return scores


def _select_tasks(pred_dir: Path, tasks: Iterable[str] | None, bench: Benchmark, warnings: list[str]) -> list[str]:
    if tasks is None:
        user = [t.name for t in task_file_targets()]
        names = [name for name in (*bench.tasks, *user) if (pred_dir / name).is_dir()]
        unknown = sorted(p.name for p in pred_dir.iterdir() if p.is_dir() and p.name not in SPECS)
        why = "no known task (a task file's task: adapterxfer --tasks FILE score ...)"
        if not names:
            other = next((b for b in BENCHMARKS.values() if any((pred_dir / t).is_dir() for t in b.tasks)), None)
            hint = f"; its {other.title} tasks: add --benchmark {other.name}" if other else \
                f"; {', '.join(unknown)}: {why}" if unknown else ""
            raise UserError(f"{pred_dir} has no {bench.title} task folder (one of: {', '.join(bench.tasks)}){hint}")
        warnings.extend(f"{pred_dir / name}: not scored, {why}" for name in unknown)
        return names
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    for name in tasks:
        scorer(name)
    return [name for name in dict.fromkeys((*bench.tasks, *TASKS, *tasks)) if name in tasks]


def _score_task(name: str, pred_dir: Path, gold_dir: Path, warnings: list[str],
                bench: Benchmark) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scores of the benchmark's languages, and apart those of the extra languages ({} where none)."""
    task, languages = scorer(name), SPECS[name].languages_in(bench.name)
    for folder, what in ((pred_dir, "predictions"), (gold_dir, "labels")):
        if not folder.is_dir():
            raise UserError(f"no {name} {what}: {folder} does not exist")
    pred_files = {path.name[len("test-"):-len(task.ext) - 1]: path
                  for path in sorted(pred_dir.glob(f"test-*.{task.ext}"))}
    if not pred_files:
        raise UserError(f"{pred_dir}: no test-<lang>.{task.ext} prediction files")
    extras = [lang for lang in pred_files if lang not in SPECS[name].all_languages]
    for lang, path in pred_files.items():
        if lang not in languages and lang not in extras:  # another benchmark's
            raise UserError(f"{path}: '{lang}' is not an {bench.title} {name} language "
                            f"({', '.join(languages)})")
        if lang in extras and not is_language_code(lang):
            raise UserError(f"{path}: '{lang}' is not a language code ({CODE_SHAPE})")
        if lang in extras and task.no_extras:
            raise UserError(f"{path}: '{lang}' is not an {bench.title} {name} language ({', '.join(languages)}), "
                            f"and {name} scores no other: {task.no_extras}")
    langs = [lang for lang in languages if lang in pred_files]
    if langs and len(langs) < len(languages):  # none: no average (extra languages only)
        absent = [lang for lang in languages if lang not in pred_files]
        warnings.append(f"{name}: no predictions for {', '.join(absent)}; averages cover {len(langs)} of "
                        f"{len(languages)} languages, unlike {'its task file' if SPECS[name].origin else bench.title}'s")

    per_lang = {}
    for lang in langs + extras:
        pred_path, gold_path = pred_files[lang], gold_dir / f"test-{lang}.{task.ext}"
        if not gold_path.is_file():
            raise UserError(f"no {name} labels for '{lang}': {gold_path} does not exist")
        preds, golds = task.read_pred(pred_path), task.read_gold(gold_path)
        warnings.extend(task.check(preds, golds, pred_path, gold_path))
        per_lang[lang] = task.metric(preds, golds, lang)
    return _averaged(name, {lang: per_lang[lang] for lang in langs}), _averaged(name, {l: per_lang[l] for l in extras})



def _averaged(name: str, per_lang: dict[str, dict[str, float]]) -> dict[str, Any]:
    """``per_lang`` after its averages (summed in its order); {} without languages."""
    if not per_lang:
        return {}
    averages = {f"avg_{m}": mean(scores[m] for scores in per_lang.values()) for m in next(iter(per_lang.values()))}
    if "avg_exact_match" in averages:  # QA
        averages["avg_metric"] = (averages["avg_exact_match"] + averages["avg_f1"]) / 2
    else:
        averages["avg_metric"] = averages.get("avg_f1", averages.get("avg_accuracy"))
    return {**averages, **per_lang}


def benchmark_average(scores: dict, benchmark: str = "xtreme") -> tuple[float, bool] | None:
    """``(average, complete)``: the mean of the headline scores (``avg_metric``) of every task of ``benchmark``,
    as ``report``'s average column; None unless every task was scored. ``complete``: every task scored all of
    its languages (else the average is not the benchmark's number)."""
    bench = get_benchmark(benchmark)
    if not all(task in scores for task in bench.tasks):
        return None
    complete = all(set(bench.languages(t)) <= {k for k, v in scores[t].items() if isinstance(v, dict)}
                   for t in bench.tasks)
    return mean([scores[t]["avg_metric"] for t in bench.tasks]), complete


def markdown_scores(scores: dict, extras: dict | None = None) -> str:
    """A markdown table per task: one row per language, the averages last; after it, the task's ``extras``
    (extra languages, see :class:`Scores`) in a table of their own, with their own average."""
    extras, tables = extras or {}, []
    for task in dict.fromkeys([*scores, *extras]):
        if task in scores:
            tables.append((task, "avg", scores[task]))
        if task in extras:
            tables.append((f"{task}: extra languages (outside its benchmark set, not in its average)", "extra avg",
                           extras[task]))
    blocks = []
    for title, avg, result in tables:
        langs = [k for k in result if isinstance(result[k], dict)]
        metrics = list(result[langs[0]]) if langs else []
        lines = [f"### {title}", "", "| language | " + " | ".join(metrics) + " |",
                 "|---|" + "---:|" * len(metrics)]
        lines += [f"| {lang} | " + " | ".join(f"{result[lang][m]:.2f}" for m in metrics) + " |" for lang in langs]
        lines.append(f"| **{avg}** | " + " | ".join(f"**{result[f'avg_{m}']:.2f}**" for m in metrics) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
