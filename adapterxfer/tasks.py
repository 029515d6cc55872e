"""Task registry: every task is a declarative :class:`TaskSpec`, a row of data, not a code path.

A spec says what the examples look like (``format``), how to score them (``metric``), and where they
come from (``sources``: a Hugging Face ``datasets`` id when online, the same split names and columns
as local files under ``--data-dir`` when offline). Field expressions map a source row to our
normalised example fields:

* ``"premise"`` or ``"choices.text"``: a column, or a dotted path into a nested column;
* ``["answer0", "answer1"]``: a list built from several columns;
* ``{"column": "label", "offset": -1}``: a label column shifted (SocialIQA counts from 1);
* ``{"index_of": "answerKey", "in": "choices.label"}``: the position of a value in a list column.

Adding a task means adding one entry to ``TASKS``; the trainer and readers never name tasks.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import UserError

#: Example formats and the normalised fields each one carries.
FORMATS: dict[str, tuple[str, ...]] = {
    "classification": ("text_a", "text_b", "label"),  # text_b optional (single sentence)
    "multiple_choice": ("context", "question", "choices", "label"),  # question optional
    "span_qa": ("id", "question", "context", "answers"),
    "tagging": ("tokens", "tags"),
}

#: Metric used to pick the best dev checkpoint, per metric family.
METRIC_KEYS = {"accuracy": "accuracy", "squad": "f1", "token_accuracy": "accuracy", "seqeval": "f1"}


@dataclass(frozen=True)
class Source:
    """One data source of a task: a HF dataset, mirrored by ``DIR[/subdir]/<split>.<ext>`` offline.

    ``splits`` maps our split names (``train``, ``dev``) to one or more source split names; a local
    file is named like the source split (``validation_matched.jsonl``).
    """

    hf_path: str | None
    hf_config: str | None
    splits: Mapping[str, tuple[str, ...]]
    subdir: str = ""
    skip_labels: tuple[Any, ...] = ()  # raw label values meaning "no gold label" (SNLI's -1)
    local_format: str = "table"  # "table": jsonl/json/csv/tsv/parquet; "conll": token<TAB>tag lines


@dataclass(frozen=True)
class TaskSpec:
    name: str
    format: str
    metric: str
    sources: tuple[Source, ...]
    fields: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] | None = None  # None for tagging tasks whose tag set comes from the data
    num_choices: int | None = None
    languages: tuple[str, ...] = ("en",)
    description: str = ""
    note: str = ""  # shown when data cannot be found (licences, manual downloads)
    max_length: int = 256
    members: tuple[str, ...] = ()  # multi-task: the member task names

    @property
    def kind(self) -> str:
        return "multi" if self.members else self.format

    @property
    def metric_key(self) -> str:
        return METRIC_KEYS[self.metric]


def _nli(name, hf_path, config, splits, description, **kw):
    return TaskSpec(
        name=name, format="classification", metric="accuracy",
        labels=("entailment", "neutral", "contradiction"),
        fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"},
        sources=(Source(hf_path, config, splits, **kw),), description=description,
    )


_SQUAD_FIELDS = {"id": "id", "question": "question", "context": "context", "answers": "answers"}

TASK_LIST: list[TaskSpec] = [
    TaskSpec(
        name="anli_plus", format="classification", metric="accuracy",
        labels=("entailment", "neutral", "contradiction"),
        fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"},
        sources=(
            Source("facebook/anli", None, {"train": ("train_r1", "train_r2", "train_r3"),
                                           "dev": ("dev_r1", "dev_r2", "dev_r3")}, subdir="anli"),
            Source("nyu-mll/glue", "mnli", {"train": ("train",)}, subdir="mnli"),
            Source("stanfordnlp/snli", None, {"train": ("train",)}, subdir="snli", skip_labels=(-1,)),
        ),
        description="ANLI rounds 1-3 with MNLI and SNLI training data (dev: ANLI dev r1-r3)",
    ),
    _nli("mnli", "nyu-mll/glue", "mnli", {"train": ("train",), "dev": ("validation_matched",)},
         "MultiNLI, dev = matched validation"),
    TaskSpec(
        name="qqp", format="classification", metric="accuracy", labels=("not_duplicate", "duplicate"),
        fields={"text_a": "question1", "text_b": "question2", "label": "label"},
        sources=(Source("nyu-mll/glue", "qqp", {"train": ("train",), "dev": ("validation",)}),),
        description="Quora Question Pairs (paraphrase)",
    ),
    TaskSpec(
        name="squad_v1", format="span_qa", metric="squad", fields=_SQUAD_FIELDS, max_length=384,
        sources=(Source("rajpurkar/squad", "plain_text", {"train": ("train",), "dev": ("validation",)}),),
        description="SQuAD v1.1 extractive QA",
    ),
    TaskSpec(
        name="squad_v2", format="span_qa", metric="squad", fields=_SQUAD_FIELDS, max_length=384,
        sources=(Source("rajpurkar/squad_v2", "squad_v2", {"train": ("train",), "dev": ("validation",)}),),
        description="SQuAD v2.0 extractive QA with unanswerable questions",
    ),
    TaskSpec(
        name="hellaswag", format="multiple_choice", metric="accuracy", num_choices=4,
        fields={"context": "ctx", "choices": "endings", "label": "label"},
        sources=(Source("Rowan/hellaswag", None, {"train": ("train",), "dev": ("validation",)}),),
        description="HellaSwag commonsense sentence completion",
    ),
    TaskSpec(
        name="commonsenseqa", format="multiple_choice", metric="accuracy", num_choices=5,
        fields={"context": "question", "choices": "choices.text",
                "label": {"index_of": "answerKey", "in": "choices.label"}},
        sources=(Source("tau/commonsense_qa", None, {"train": ("train",), "dev": ("validation",)}),),
        description="CommonsenseQA five-way multiple choice",
    ),
    TaskSpec(
        name="cosmosqa", format="multiple_choice", metric="accuracy", num_choices=4,
        fields={"context": "context", "question": "question",
                "choices": ["answer0", "answer1", "answer2", "answer3"], "label": "label"},
        sources=(Source("allenai/cosmos_qa", None, {"train": ("train",), "dev": ("validation",)}),),
        description="Cosmos QA commonsense reading comprehension",
    ),
    TaskSpec(
        name="socialiqa", format="multiple_choice", metric="accuracy", num_choices=3,
        fields={"context": "context", "question": "question",
                "choices": ["answerA", "answerB", "answerC"], "label": {"column": "label", "offset": -1}},
        sources=(Source("allenai/social_i_qa", None, {"train": ("train",), "dev": ("validation",)}),),
        description="Social IQa social commonsense (labels 1-3 in the source)",
    ),
    TaskSpec(
        name="ccg", format="tagging", metric="token_accuracy",
        sources=(Source(None, None, {"train": ("train",), "dev": ("dev",)}, local_format="conll"),),
        description="CCGbank supertagging (local files only)",
        note=("CCGbank is licensed by the LDC (LDC2005T13) and cannot be downloaded automatically: convert "
              "it to DIR/train.conll and DIR/dev.conll (one 'token<TAB>supertag' line per word, a blank "
              "line between sentences; sections 02-21 train, 00 dev) and pass --data-dir DIR"),
    ),
]

#: The members of ``multi`` (SQuAD v1.1 is left out: v2.0 already contains its questions).
MULTI_MEMBERS = ("anli_plus", "mnli", "qqp", "squad_v2", "hellaswag", "commonsenseqa", "cosmosqa",
                 "socialiqa", "ccg")
TASK_LIST.append(TaskSpec(
    name="multi", format="multi", metric="average", sources=(), members=MULTI_MEMBERS,
    description="all nine intermediate tasks together: one shared module, one head per task",
))

TASKS: dict[str, TaskSpec] = {t.name: t for t in TASK_LIST}
ALIASES = {"anli+": "anli_plus", "anli": "anli_plus", "squad": "squad_v1", "squad1": "squad_v1",
           "squad2": "squad_v2", "csqa": "commonsenseqa", "siqa": "socialiqa"}


def get_task(name: str) -> TaskSpec:
    """Look a task up by name or alias; an unknown name gets the closest suggestions."""
    key = name.strip().lower().replace("-", "_").replace(".", "_")
    key = ALIASES.get(key, key)
    if key in TASKS:
        return TASKS[key]
    close = difflib.get_close_matches(key, list(TASKS) + list(ALIASES), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UserError(f"unknown task '{name}'{hint} (known tasks: {', '.join(TASKS)})")


def members(spec: TaskSpec) -> list[TaskSpec]:
    """The single tasks a spec trains: its members for ``multi``, itself otherwise."""
    return [get_task(m) for m in spec.members] if spec.members else [spec]
