"""Task registry: every task is a declarative :class:`TaskSpec`, a row of data, not a code path.

A spec says what the examples look like (``format``), how to score them (``metric``), and where they
come from (``sources``: a Hugging Face ``datasets`` id when online, the same split names and columns
as local files under ``--data-dir`` when offline). Field expressions map a source row to our
normalised example fields:

* ``"premise"`` or ``"choices.text"``: a column, or a dotted path into a nested column;
* ``["answer0", "answer1"]``: a list built from several columns;
* ``{"column": "label", "offset": -1}``: a label column shifted (SocialIQA counts from 1);
* ``{"index_of": "answerKey", "in": "choices.label"}``: the position of a value in a list column;
* ``{"template": "What was the {question}?"}``: text with columns filled in (XCOPA's question, as XTREME-R).

The nine XTREME target tasks (:data:`XTREME_TASKS`) are rows too: their sources name per-split file
patterns in the ``download/`` folder that XTREME's ``scripts/download_data.sh`` writes
(``"panx/dev-{lang}.tsv"``) and per-language ``google/xtreme`` configs (``"PAN-X.{lang}"``). A split
whose file pattern has no ``{lang}`` is English only (the training data, SQuAD's dev set).

A benchmark (:data:`BENCHMARKS`: ``xtreme``, ``xtreme-r``) is a row too: its target tasks in its order;
a task whose language set differs in a benchmark says so in its ``benchmark_languages``.

Adding a task means adding one entry to ``TASKS``; the trainer and readers never name tasks. A user's own
tasks come from task files (YAML, the same fields; see :func:`adapterxfer.recipes.load_task_file`), named by
``adapterxfer --tasks FILE``, ``ADAPTERXFER_TASKS=FILE[:FILE]`` or a recipe's ``tasks:`` (:func:`use_task_files`).
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
    "retrieval": ("source_ids", "source", "target_ids", "target", "gold"),  # one dict per language
}

#: Metric used to pick the best dev checkpoint, per metric family.
METRIC_KEYS = {"accuracy": "accuracy", "squad": "f1", "mlqa": "f1", "token_accuracy": "accuracy",
               "seqeval": "f1", "bucc_f1": "f1"}


@dataclass(frozen=True)
class Source:
    """One data source of a task: a HF dataset, mirrored by local files under ``--data-dir``.

    ``splits`` maps our split names (``train``, ``dev``, ``test``) to one or more source split names.
    Without ``files`` a local file is named like the source split: ``DIR[/subdir]/validation_matched.jsonl``.
    With ``files`` (XTREME's layout) each split has one path pattern under ``DIR``, where ``{lang}`` is
    the language and ``{side}`` a retrieval file's side (the language, ``en``, ``gold``); ``{lang}`` and
    ``{name}`` (``lang_names``, default the code) also fill ``hf_config`` and ``hf_where``.
    """

    hf_path: str | None
    hf_config: str | None
    splits: Mapping[str, tuple[str, ...]]
    subdir: str = ""
    skip_labels: tuple[Any, ...] = ()  # raw label values meaning "no gold label" (SNLI's -1)
    # "table": jsonl/json/csv/tsv/parquet with a header; "conll": token<TAB>tag lines; "tsv": header-less
    # tab-separated columns; "squad": SQuAD JSON; "bucc": id<TAB>sentence lines; "lines": a sentence a line
    local_format: str = "table"
    files: Mapping[str, str] = field(default_factory=dict)  # split -> path pattern under DIR
    columns: tuple[str, ...] = ()  # names of a header-less file's columns ("tsv", "conll"), as the HF columns
    fields: Mapping[str, Any] | None = None  # this source's field expressions, when not the spec's
    unlabelled: tuple[str, ...] = ()  # splits whose local files carry no labels (XTREME strips test labels)
    hf_where: tuple[str, str] | None = None  # (column, fnmatch pattern): one language's rows of a shared config
    lang_names: Mapping[str, str] = field(default_factory=dict)  # language code -> "{name}" (udpos.Afrikaans)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    format: str
    metric: str
    sources: tuple[Source, ...]
    fields: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] | None = None  # None for tagging tasks whose tag set comes from the data
    num_choices: int | None = None
    languages: tuple[str, ...] = ("en",)  # target tasks: XTREME's languages (else its own), in averaging order
    benchmark_languages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # benchmark -> other languages
    description: str = ""
    note: str = ""  # shown when data cannot be found (licences, manual downloads)
    max_length: int = 256
    members: tuple[str, ...] = ()  # multi-task: the member task names
    pad_choices: bool = False  # multiple choice: fewer than num_choices choices get copies of a wrong one
    no_dev: tuple[str, ...] = ()  # target tasks: languages without a dev split on the Hub (test only)
    origin: tuple[str, str] | None = None  # a task file's task: (the file's path, the sha256 of its content)

    @property
    def task_file(self) -> dict | None:
        """Where a task file's task comes from, as module cards and results record it; None for a built-in."""
        return {"path": self.origin[0], "sha256": self.origin[1]} if self.origin else None

    @property
    def kind(self) -> str:
        return "multi" if self.members else self.format

    @property
    def metric_key(self) -> str:
        return METRIC_KEYS[self.metric]

    @property
    def is_target(self) -> bool:
        """An XTREME target task: trained on English, evaluated zero-shot in each of its languages."""
        return self.languages != ("en",)

    def languages_in(self, benchmark: str = "xtreme") -> tuple[str, ...]:
        """The task's languages in ``benchmark``, in its averaging order."""
        return self.benchmark_languages.get(benchmark, self.languages)

    @property
    def all_languages(self) -> tuple[str, ...]:
        """Every language the task has data for, in any benchmark."""
        return tuple(dict.fromkeys([*self.languages, *(l for ls in self.benchmark_languages.values() for l in ls)]))


def _nli(name, hf_path, config, splits, description, **kw):
    return TaskSpec(
        name=name, format="classification", metric="accuracy",
        labels=("entailment", "neutral", "contradiction"),
        fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"},
        sources=(Source(hf_path, config, splits, **kw),), description=description,
    )


_SQUAD_FIELDS = {"id": "id", "question": "question", "context": "context", "answers": "answers"}
#: COPA/XCOPA rows (premise, question cause|effect, choice1, choice2, label), phrased as XTREME-R's
#: third_party/run_xcopa.py: "<premise> What was the <question>?" paired with each choice.
_COPA_FIELDS = {"context": "premise", "question": {"template": "What was the {question}?"},
                "choices": ["choice1", "choice2"], "label": "label"}


def _arc(name, config, description):
    """ARC: 4 choices mostly, a few questions 3 or 5, keys A-E or 1-4 (the position in ``choices.label``)."""
    return TaskSpec(
        name=name, format="multiple_choice", metric="accuracy", num_choices=5, pad_choices=True,
        fields={"context": "question", "choices": "choices.text",
                "label": {"index_of": "answerKey", "in": "choices.label"}},
        sources=(Source("allenai/ai2_arc", config, {"train": ("train",), "dev": ("validation",)}),),
        description=f"{description}; questions with 3 or 4 choices are padded to 5 with copies of a wrong "
                    f"choice, which never changes a prediction (ties go to the first choice)",
    )


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
        name="copa", format="multiple_choice", metric="accuracy", num_choices=2, fields=_COPA_FIELDS,
        sources=(Source("aps/super_glue", "copa", {"train": ("train",), "dev": ("validation",)}),),
        description="COPA causal commonsense (SuperGLUE), 400 training questions; premise + 'What was the "
                    "cause/effect?' as XTREME-R phrases it",
    ),
    _arc("arc_easy", "ARC-Easy", "AI2 Reasoning Challenge, Easy set (grade-school science)"),
    _arc("arc_challenge", "ARC-Challenge", "AI2 Reasoning Challenge, Challenge set"),
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


# --- the nine XTREME target tasks ---------------------------------------------------------------------

XTREME = "google/xtreme"  # the Hub's copy; offline, XTREME's download/ folder via each source's ``files``


def _names(codes: str, names: str) -> dict[str, str]:
    return dict(zip(codes.split(","), names.split()))


#: Languages of each task in XTREME's order (``TASK2LANGS`` of its evaluate.py; averages sum in it).
#: Other ``google/xtreme`` names: UD's language names, TyDi QA's id prefixes, Tatoeba's ISO 639-3 codes.
_UDPOS = _names("af,ar,bg,de,el,en,es,et,eu,fa,fi,fr,he,hi,hu,id,it,ja,kk,ko,mr,nl,pt,ru,ta,te,th,tl,tr,ur,vi,yo,zh",
                "Afrikaans Arabic Bulgarian German Greek English Spanish Estonian Basque Persian Finnish French "
                "Hebrew Hindi Hungarian Indonesian Italian Japanese Kazakh Korean Marathi Dutch Portuguese Russian "
                "Tamil Telugu Thai Tagalog Turkish Urdu Vietnamese Yoruba Chinese")
#: XTREME-R's additions, in the order of its lists (google-research/xtreme: scripts/train_panx.sh, utils_preprocess.py's
#: UDPOS_LANGUAGES and tatoeba_preprocess, the XQuAD repository's Romanian); names as above.
_R_PANX = ("qu", "pl", "uk", "az", "lt", "pa", "gu", "ro")
_R_UDPOS = _names("lt,pl,uk,wo,ro", "Lithuanian Polish Ukrainian Wolof Romanian")
_R_TATOEBA = _names("az,lt,pl,uk,ro", "aze lit pol ukr ron")
_TYDIQA = _names("en,ar,bn,fi,id,ko,ru,sw,te",
                 "english arabic bengali finnish indonesian korean russian swahili telugu")
_TATOEBA = _names("ar,he,vi,id,jv,tl,eu,ml,ta,te,af,nl,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg,ru,ja,ka,ko,th,sw,zh,kk,"
                  "tr,et,fi,hu",
                  "ara heb vie ind jav tgl eus mal tam tel afr nld deu ell ben hin mar urd pes fra ita por spa bul rus "
                  "jpn kat kor tha swh cmn kaz tur est fin hun")
_PANX = tuple("ar,he,vi,id,jv,ms,tl,eu,ml,ta,te,af,nl,en,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg,ru,ja,ka,ko,th,sw,yo,"
              "my,zh,kk,tr,et,fi,hu".split(","))

_XQUAD = ("en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi")

_ALL_SPLITS = {"train": ("train",), "dev": ("validation",), "test": ("test",)}
_TSV_PAIR = {"text_a": "sentence1", "text_b": "sentence2", "label": "label"}
_SQUAD_TRAIN = Source(XTREME, "SQuAD", {"train": ("train",)}, local_format="squad",
                      files={"train": "squad/train-v1.1.json"})
_SQUAD_TRAIN_DEV = Source(XTREME, "SQuAD", {"train": ("train",), "dev": ("validation",)}, local_format="squad",
                          files={"train": "squad/train-v1.1.json", "dev": "squad/dev-v1.1.json"})


def _per_split(pattern: str, splits=tuple(_ALL_SPLITS)) -> dict:
    """``files`` and ``unlabelled`` of XTREME's ``<task>/<split>-<lang>.tsv`` files: English training data,
    test files without labels."""
    files = {s: pattern.format(split=s, lang="en" if s == "train" else "{lang}") for s in splits}
    return {"files": files, "unlabelled": ("test",)}


XTREME_TASKS: list[TaskSpec] = [
    TaskSpec(
        name="pawsx", format="classification", metric="accuracy", labels=("0", "1"), fields=_TSV_PAIR,
        languages=("de", "en", "es", "fr", "ja", "ko", "zh"),
        sources=(Source(XTREME, "PAWS-X.{lang}", _ALL_SPLITS, local_format="tsv",
                        columns=("sentence1", "sentence2", "label"), **_per_split("pawsx/{split}-{lang}.tsv")),),
        description="PAWS-X paraphrase identification; English training data (pawsx/train-en.tsv)",
    ),
    TaskSpec(
        name="xnli", format="classification", metric="accuracy", labels=("entailment", "neutral", "contradiction"),
        fields={**_TSV_PAIR, "label": "gold_label"},
        languages=("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"),
        sources=(
            Source("nyu-mll/glue", "mnli", {"train": ("train",)}, files={"train": "xnli/train-en.tsv"},
                   local_format="tsv", columns=("premise", "hypothesis", "label"),
                   fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"}),
            Source(XTREME, "XNLI", {"dev": ("validation",), "test": ("test",)}, local_format="tsv",
                   columns=("sentence1", "sentence2", "gold_label"), hf_where=("language", "{lang}"),
                   **_per_split("xnli/{split}-{lang}.tsv", ("dev", "test"))),
        ),
        description="XNLI natural language inference; trains on MNLI (XTREME's xnli/train-en.tsv, or GLUE's)",
    ),
    TaskSpec(
        name="panx", format="tagging", metric="seqeval", fields={"tokens": "tokens", "tags": "ner_tags"},
        labels=("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"),  # google/xtreme's ClassLabel order
        languages=_PANX, benchmark_languages={"xtreme-r": _PANX + _R_PANX},
        sources=(Source(XTREME, "PAN-X.{lang}", _ALL_SPLITS, local_format="conll",
                        columns=("tokens", "ner_tags"), **_per_split("panx/{split}-{lang}.tsv")),),
        description="PAN-X (WikiANN) named entities, IOB tags; English training data (panx/train-en.tsv)",
        note=("PAN-X needs a manual download: save AmazonPhotos.zip in XTREME's download/ folder (link in its "
              "scripts/download_data.sh) and run its download_panx"),
    ),
    TaskSpec(
        name="udpos", format="tagging", metric="seqeval", fields={"tokens": "tokens", "tags": "pos_tags"},
        labels=("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
                "PUNCT", "SCONJ", "SYM", "VERB", "X"),  # google/xtreme's ClassLabel order
        languages=tuple(_UDPOS), benchmark_languages={"xtreme-r": tuple(_UDPOS) + tuple(_R_UDPOS)},
        sources=(Source(XTREME, "udpos.{name}", _ALL_SPLITS, local_format="conll", lang_names=_UDPOS | _R_UDPOS,
                        columns=("tokens", "pos_tags"), **_per_split("udpos/{split}-{lang}.tsv")),),
        no_dev=("kk", "th", "tl", "yo"),  # XTREME's download writes no dev file for them, the Hub no split
        description="Universal Dependencies part-of-speech tags (UD 2.7 in XTREME's download, 2.5 on the Hub); "
                    "English training data (udpos/train-en.tsv); some languages (kk, th, tl, yo) have no dev set",
    ),
    TaskSpec(
        name="bucc2018", format="retrieval", metric="bucc_f1", languages=("de", "fr", "ru", "zh"),
        sources=(Source(None, None, {"dev": ("sample",), "test": ("training",)}, local_format="bucc",
                        files={"dev": "bucc2018/{lang}-en.dev.{side}", "test": "bucc2018/{lang}-en.test.{side}"}),),
        description="BUCC 2018 bitext mining against English, no training data; as XTREME, dev = BUCC's sample "
                    "set (with gold pairs, to tune the threshold), test = BUCC's training set (gold withheld)",
        note=("BUCC needs XTREME's download/bucc2018 files (its scripts/download_data.sh, download_bucc18): "
              "google/xtreme's bucc18 configs hold only the gold pairs, not the sentences to mine among"),
    ),
    TaskSpec(
        name="tatoeba", format="retrieval", metric="accuracy", languages=tuple(_TATOEBA),
        benchmark_languages={"xtreme-r": tuple(_TATOEBA) + tuple(_R_TATOEBA)},
        fields={"source": "source_sentence", "target": "target_sentence"},
        sources=(Source(XTREME, "tatoeba.{name}", {"test": ("validation",)}, local_format="lines",
                        files={"test": "tatoeba/{lang}-en.{side}"}, lang_names=_TATOEBA | _R_TATOEBA),),
        description="Tatoeba sentence retrieval against English, test only, no training data; XTREME's download "
                    "sorts each English file, so gold (the i-th sentences align) comes only with the Hub's copy",
    ),
    TaskSpec(
        name="xquad", format="span_qa", metric="squad", fields=_SQUAD_FIELDS, max_length=384,
        languages=_XQUAD, benchmark_languages={"xtreme-r": _XQUAD + ("ro",)},
        sources=(_SQUAD_TRAIN_DEV,
                 Source(XTREME, "XQuAD.{lang}", {"test": ("validation",)}, local_format="squad",
                        files={"test": "xquad/xquad.{lang}.json"}, unlabelled=("test",))),
        description="XQuAD extractive QA, test only; trains on SQuAD v1.1 and, as XTREME's train_qa.sh, uses "
                    "SQuAD v1.1 dev (English) as dev, from which XQuAD's English questions are drawn",
    ),
    TaskSpec(
        name="mlqa", format="span_qa", metric="mlqa", fields=_SQUAD_FIELDS, max_length=384,
        languages=("en", "es", "de", "ar", "hi", "vi", "zh"),
        sources=(_SQUAD_TRAIN,
                 Source(XTREME, "MLQA.{lang}.{lang}", {"dev": ("validation",), "test": ("test",)}, local_format="squad",
                        files={"dev": "mlqa/MLQA_V1/dev/dev-context-{lang}-question-{lang}.json",
                               "test": "mlqa/MLQA_V1/test/test-context-{lang}-question-{lang}.json"},
                        unlabelled=("test",))),
        description="MLQA extractive QA (context and question in one language); trains on SQuAD v1.1; "
                    "dev = MLQA's own dev sets",
    ),
    TaskSpec(
        name="tydiqa", format="span_qa", metric="squad", fields=_SQUAD_FIELDS, max_length=384,
        languages=tuple(_TYDIQA),
        sources=(Source(XTREME, "tydiqa", {"train": ("train",), "test": ("validation",)}, local_format="squad",
                        files={"train": "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json",
                               "test": "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.{lang}.dev.json"},
                        unlabelled=("test",), hf_where=("id", "{name}-*"), lang_names=_TYDIQA),),
        description="TyDi QA gold passage; trains on its English training part; no dev split: XTREME's "
                    "tydiqa-goldp-v1.1-dev files are its test set, so train a fixed schedule and keep the last "
                    "checkpoint, as XTREME does",
    ),
]
TASK_LIST.extend(XTREME_TASKS)

#: XTREME-R's new task that fits these formats. Mewsli-X (entity retrieval from a 1M-entry candidate set) and
#: LAReQA (language-agnostic answer retrieval, mAP@20) do not: retrieval here is sentence-to-English mining.
XTREME_R_TASKS: list[TaskSpec] = [
    TaskSpec(
        name="xcopa", format="multiple_choice", metric="accuracy", num_choices=2, fields=_COPA_FIELDS,
        languages=("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"), max_length=128,
        sources=(
            Source("aps/super_glue", "copa", {"train": ("train",), "dev": ("validation",)},
                   files={"train": "xcopa/train.en.jsonl", "dev": "xcopa/val.en.jsonl"}),  # cambridgeltl/xcopa has no en
            Source("cambridgeltl/xcopa", "{lang}", {"dev": ("validation",), "test": ("test",)},
                   files={"dev": "xcopa/val.{lang}.jsonl", "test": "xcopa/test.{lang}.jsonl"}),
        ),
        description="XCOPA causal commonsense, 2 choices (XTREME-R); trains on English COPA (xcopa/train.en.jsonl "
                    "of XTREME-R's download_xcopa), dev = each language's val set (English: COPA's, "
                    "xcopa/val.en.jsonl); as XTREME-R, train on a SocialIQA module first (--stack)",
    ),
]
TASK_LIST.extend(XTREME_R_TASKS)

TASKS: dict[str, TaskSpec] = {t.name: t for t in TASK_LIST}
ALIASES = {"anli+": "anli_plus", "anli": "anli_plus", "squad": "squad_v1", "squad1": "squad_v1",
           "squad2": "squad_v2", "csqa": "commonsenseqa", "siqa": "socialiqa", "arc_e": "arc_easy",
           "arc_c": "arc_challenge"}


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: its target tasks in its order (its average is over them) and each one's languages."""

    name: str
    title: str
    tasks: tuple[str, ...]

    def languages(self, task: str) -> tuple[str, ...]:
        return TASKS[task].languages_in(self.name)

    @property
    def all_languages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(l for t in self.tasks for l in self.languages(t)))


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("xtreme", "XTREME", tuple(t.name for t in XTREME_TASKS)),
    Benchmark("xtreme-r", "XTREME-R", ("xnli", "xcopa", "udpos", "panx", "xquad", "mlqa", "tydiqa", "tatoeba")),
)}


def task_file_targets() -> list[TaskSpec]:
    """The target tasks of the task files read so far, in their order."""
    return [t for t in TASK_LIST if t.origin and t.is_target]


def use_task_files(paths) -> list[TaskSpec]:
    """Register the tasks of task files (a file read again replaces its own tasks); their specs."""
    from .recipes import load_task_file

    added = []
    for path in paths:
        for spec in load_task_file(path):  # which refuses a name of another file's or a built-in task
            if spec.name in TASKS:
                TASK_LIST.remove(TASKS[spec.name])
            TASK_LIST.append(spec)
            TASKS[spec.name] = spec
            added.append(spec)
    return added


def get_benchmark(name: str | None) -> Benchmark:
    key = (name or "xtreme").strip().lower().replace("_", "-")
    if key not in BENCHMARKS:
        raise UserError(f"unknown benchmark '{name}' (known: {', '.join(BENCHMARKS)})")
    return BENCHMARKS[key]


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
