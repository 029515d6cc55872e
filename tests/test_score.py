"""score_folder over small hand-scored XTREME-layout folders, and every kind of bad input."""
import json

import pytest

from adapterxfer.errors import UserError
from adapterxfer.score import score_folder
from adapterxfer.tasks import BENCHMARKS


def squad_json(questions):
    """SQuAD-format labels for ``{question_id: [answer texts]}``."""
    qas = [{"id": qid, "question": "?", "answers": [{"text": a, "answer_start": 0} for a in answers]}
           for qid, answers in questions.items()]
    return json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]})


def put(root, task, lang, text, ext="tsv"):
    path = root / task / f"test-{lang}.{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# (task, lang, prediction file, label file)
SUBMISSION = [
    ("pawsx", "en", "1\n0\n0\n1\n", "1\n0\n1\n1\n"),
    ("pawsx", "de", "0\n1\n", "0\n1\n"),
    ("xnli", "en", "entailment\ncontradiction\ncontradiction\n", "entailment\nneutral\ncontradiction\n"),
    ("udpos", "en", "NOUN\nNOUN\n\nDET\nNOUN\n", "NOUN\nVERB\n\nDET\nNOUN\n"),
    ("panx", "en", "B-PER\nI-PER\nO\nB-ORG\n", "B-PER\nI-PER\nO\nB-LOC\n"),
    ("panx", "de", "B-ORG\nO\n\nO\nO\nO\n", "B-ORG\nO\n\nO\nB-LOC\nI-LOC\n"),
    ("bucc2018", "de", "de-1\ten-1\nde-1\ten-1\nde-2\ten-9\nde-3\ten-3\n",
     "de-1\ten-1\nde-2\ten-2\nde-3\ten-3\nde-4\ten-4\n"),
    ("tatoeba", "af", "3\n1\n0\n0\n", "3\n1\n2\n0\n"),
]
QA_SUBMISSION = [
    ("xquad", "en", {"q1": "Eiffel Tower.", "q2": "in Paris France", "extra": "x"},
     {"q1": ["the Eiffel Tower"], "q2": ["Paris", "Paris, France"], "q3": ["1889"]}),
    ("mlqa", "de", {"q1": "Vertrag von Versailles", "q2": "eine Katze!"},
     {"q1": ["der Vertrag von Versailles"], "q2": ["die Katze"]}),
    ("mlqa", "zh", {"z1": "电化电池。", "z2": "电池"}, {"z1": ["电化电池"], "z2": ["太阳能电池"]}),
    ("tydiqa", "en", {"t1": "Apple", "t2": "green apple"}, {"t1": ["an apple"], "t2": ["red apple"]}),
]


@pytest.fixture
def folders(tmp_path):
    preds, labels = tmp_path / "preds", tmp_path / "labels"
    for task, lang, pred, gold in SUBMISSION:
        put(preds, task, lang, pred)
        put(labels, task, lang, gold)
    for task, lang, pred, gold in QA_SUBMISSION:
        put(preds, task, lang, json.dumps(pred, ensure_ascii=False), "json")
        put(labels, task, lang, squad_json(gold), "json")
    return preds, labels


def assert_close(actual, expected):
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_close(actual[key], value)
        else:
            assert actual[key] == pytest.approx(value, rel=1e-12), key


# Hand-computed scores of SUBMISSION / QA_SUBMISSION:
EXPECTED = {
    # en: 3 of 4 -> 75; de: 2 of 2 -> 100; avg (75 + 100) / 2 = 87.5
    "pawsx": {"avg_accuracy": 87.5, "avg_metric": 87.5, "en": {"accuracy": 75.0}, "de": {"accuracy": 100.0}},
    # 2 of 3 -> 200/3
    "xnli": {"avg_accuracy": 200 / 3, "avg_metric": 200 / 3, "en": {"accuracy": 200 / 3}},
    # gold chunks NOUN(0) VERB(1) DET(3) NOUN(4) (sentences joined by an O); pred NOUN NOUN merge into
    # one chunk (0-1), DET(3), NOUN(4): 2 of 3 predicted right, 2 of 4 gold found.
    # P = 2/3, R = 1/2, F1 = 2 * (1/3) / (7/6) = 4/7
    "udpos": {"avg_f1": 400 / 7, "avg_precision": 200 / 3, "avg_recall": 50.0, "avg_metric": 400 / 7,
              "en": {"f1": 400 / 7, "precision": 200 / 3, "recall": 50.0}},
    # en: PER right, ORG vs LOC wrong: P = R = F1 = 1/2
    # de: gold ORG, LOC(2 tokens); pred ORG only: P = 1, R = 1/2, F1 = 2/3
    # avg F1 = (50 + 200/3) / 2 = 175/3, avg P = (50 + 100) / 2 = 75, avg R = 50
    "panx": {"avg_f1": 175 / 3, "avg_precision": 75.0, "avg_recall": 50.0, "avg_metric": 175 / 3,
             "en": {"f1": 50.0, "precision": 50.0, "recall": 50.0},
             "de": {"f1": 200 / 3, "precision": 100.0, "recall": 50.0}},
    # predicted set {1-1, 2-9, 3-3} (duplicate counted once), 2 correct of 4 gold:
    # P = 2/3, R = 1/2, F1 = 4/7
    "bucc2018": {"avg_f1": 400 / 7, "avg_precision": 200 / 3, "avg_recall": 50.0, "avg_metric": 400 / 7,
                 "de": {"f1": 400 / 7, "precision": 200 / 3, "recall": 50.0}},
    # 3 of 4 indices -> 75
    "tatoeba": {"avg_accuracy": 75.0, "avg_metric": 75.0, "af": {"accuracy": 75.0}},
    # q1 EM 1 F1 1; q2 EM 0, best F1 0.8 (vs "paris france": P 2/3, R 1); q3 unanswered 0
    # EM = 100/3, F1 = 100 * 1.8 / 3 = 60, metric = (100/3 + 60) / 2 = 140/3
    "xquad": {"avg_exact_match": 100 / 3, "avg_f1": 60.0, "avg_metric": 140 / 3,
              "en": {"exact_match": 100 / 3, "f1": 60.0}},
    # de: German articles removed -> both exact: 100 / 100
    # zh: z1 exact; z2 [电 池] vs [太 阳 能 电 池]: P 1, R 2/5, F1 4/7 -> EM 50, F1 100 * (1 + 4/7) / 2 = 550/7
    # avg EM = 75, avg F1 = (100 + 550/7) / 2 = 625/7, metric = (75 + 625/7) / 2 = 575/7
    "mlqa": {"avg_exact_match": 75.0, "avg_f1": 625 / 7, "avg_metric": 575 / 7,
             "de": {"exact_match": 100.0, "f1": 100.0}, "zh": {"exact_match": 50.0, "f1": 550 / 7}},
    # t1 "apple" == "apple"; t2 "green apple" vs "red apple": P = R = 1/2, F1 1/2
    # EM 50, F1 75, metric 62.5
    "tydiqa": {"avg_exact_match": 50.0, "avg_f1": 75.0, "avg_metric": 62.5,
               "en": {"exact_match": 50.0, "f1": 75.0}},
}


def test_score_folder_all_nine_tasks(folders):
    scores = score_folder(*folders)
    assert list(scores) == list(BENCHMARKS["xtreme"].tasks)  # XTREME's task order
    assert_close(scores, EXPECTED)


def test_score_prints_the_benchmark_average_once_every_task_is_scored(folders):
    """The mean of the nine tasks' headline scores, hand-computed from EXPECTED's fractions; the fixture
    lacks languages, so the line says it is not XTREME's number; with one task left out there is no line."""
    from click.testing import CliRunner

    from adapterxfer.cli import main
    headline = [87.5, 200 / 3, 400 / 7, 175 / 3, 140 / 3, 575 / 7, 62.5, 400 / 7, 75.0]  # XTREME's task order
    result = CliRunner().invoke(main, ["score", *map(str, folders)])
    assert result.exit_code == 0, result.output
    assert (f"XTREME average over its 9 tasks: {sum(headline) / 9:.2f} (some tasks lack languages: not the "
            f"benchmark's number)") in result.stdout
    tasks = [a for t in BENCHMARKS["xtreme"].tasks[1:] for a in ("--task", t)]
    assert "average over its" not in CliRunner().invoke(main, ["score", *map(str, folders), *tasks]).stdout


def test_benchmark_average_is_complete_only_with_every_language():
    from adapterxfer.score import benchmark_average

    bench = BENCHMARKS["xtreme-r"]
    scores = {t: {"avg_metric": float(i), **{lang: {"accuracy": 1.0} for lang in bench.languages(t)}}
              for i, t in enumerate(bench.tasks)}
    assert benchmark_average(scores, "xtreme-r") == (sum(range(len(bench.tasks))) / len(bench.tasks), True)
    del scores["panx"]["az"]
    assert benchmark_average(scores, "xtreme-r")[1] is False
    del scores["panx"]
    assert benchmark_average(scores, "xtreme-r") is None


def test_warnings_report_unanswered_questions_and_missing_languages(folders):
    warnings = score_folder(*folders).warnings
    unanswered = [w for w in warnings if "unanswered" in w]
    assert len(unanswered) == 1 and "xquad/test-en.json: 1 of 3 questions" in unanswered[0]
    assert "q3" in unanswered[0]
    assert any("xquad/test-en.json: 1 ids not in" in w and "extra" in w for w in warnings)
    pawsx = [w for w in warnings if w.startswith("pawsx:")]
    assert len(pawsx) == 1 and "es, fr, ja, ko, zh" in pawsx[0] and "2 of 7" in pawsx[0]

    from click.testing import CliRunner

    from adapterxfer.cli import main
    result = CliRunner().invoke(main, ["score", *map(str, folders), "--task", "pawsx"])
    assert result.exit_code == 0 and result.stderr == f"warning: {pawsx[0]}\n"  # once, on stderr


def test_complete_task_has_no_warning_and_averages_in_xtreme_order(tmp_path):
    preds, labels = tmp_path / "p", tmp_path / "l"
    # de: 1 right of 1 -> F1 100; fr: 0 right -> 0; ru: pred {a, x}, gold {a}: P 1/2 R 1 F1 2/3;
    # zh: pred {a}, gold {a, b}: P 1 R 1/2 F1 2/3
    # avg F1 = (100 + 0 + 200/3 + 200/3) / 4 = 700/12; avg P = (100 + 0 + 50 + 100) / 4 = 62.5;
    # avg R = (100 + 0 + 100 + 50) / 4 = 62.5
    files = {"de": ("a\tb\n", "a\tb\n"), "fr": ("a\tb\n", "a\tc\n"),
             "ru": ("a\tb\nx\ty\n", "a\tb\n"), "zh": ("a\tb\n", "a\tb\nc\td\n")}
    for lang, (pred, gold) in files.items():
        put(preds, "bucc2018", lang, pred)
        put(labels, "bucc2018", lang, gold)
    scores = score_folder(preds, labels)
    assert scores.warnings == []
    assert list(scores["bucc2018"])[-4:] == ["de", "fr", "ru", "zh"]
    assert scores["bucc2018"]["avg_f1"] == pytest.approx(700 / 12, rel=1e-12)
    assert scores["bucc2018"]["avg_precision"] == scores["bucc2018"]["avg_recall"] == 62.5


def test_tasks_argument_selects(folders):
    assert list(score_folder(*folders, tasks=["tatoeba", "xnli"])) == ["xnli", "tatoeba"]
    assert list(score_folder(*folders, tasks="mlqa")) == ["mlqa"]


def test_crlf_files_read_like_xtreme(tmp_path):
    preds, labels = tmp_path / "p", tmp_path / "l"
    put(preds, "xnli", "en", "a\r\nb\r\n")
    put(labels, "xnli", "en", "a\nc\n")
    assert score_folder(preds, labels)["xnli"]["en"] == {"accuracy": 50.0}  # a right, b wrong


def test_files_saved_with_a_byte_order_mark_score_the_same(folders):
    plain = score_folder(*folders)
    for folder in folders:
        for path in folder.rglob("test-*"):
            path.write_text("\ufeff" + path.read_text(encoding="utf-8"), encoding="utf-8")
    assert score_folder(*folders) == plain  # not a wrong first label, nor a JSON error


# --- bad input: one UserError line each ----------------------------------------------------------

def one_line_error(match, *args, **kwargs):
    with pytest.raises(UserError, match=match) as info:
        score_folder(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_wrong_number_of_lines(folders):
    preds, labels = folders
    put(preds, "pawsx", "en", "1\n0\n0\n")
    one_line_error(r"pawsx/test-en\.tsv: 3 lines, expected 4 \(one per line of .*labels/pawsx/test-en\.tsv\)",
                   preds, labels)


def test_trailing_blank_line_is_a_line_like_in_xtreme(folders):
    preds, labels = folders
    put(preds, "tatoeba", "af", "3\n1\n0\n0\n\n")
    one_line_error(r"tatoeba/test-af\.tsv:5: expected a sentence index, found ''", preds, labels)
    put(preds, "pawsx", "de", "0\n1\n\n")
    one_line_error(r"pawsx/test-de\.tsv: 3 lines, expected 2", preds, labels, tasks=["pawsx"])


def test_wrong_number_of_sentences_or_tags(folders):
    preds, labels = folders
    put(preds, "udpos", "en", "NOUN\nNOUN\n")
    one_line_error(r"udpos/test-en\.tsv: 1 sentences, expected 2", preds, labels)
    put(preds, "udpos", "en", "NOUN\nNOUN\n\nDET\n")
    one_line_error(r"udpos/test-en\.tsv:4: sentence 2 has 1 tags, expected 2", preds, labels)


def test_language_not_of_the_task(folders):
    preds, labels = folders
    put(preds, "panx", "az", "O\n")  # XTREME-R's
    one_line_error(r"panx/test-az\.tsv: 'az' is not an XTREME panx language", preds, labels)
    (preds / "panx" / "test-az.tsv").unlink()
    for name in ("x_1", "Ha", "hausa"):
        put(preds, "pawsx", name, "1\n")
        one_line_error(rf"pawsx/test-{name}\.tsv: '{name}' is not a language code \(2 or 3 lowercase letters", preds,
                       labels)
        (preds / "pawsx" / f"test-{name}.tsv").unlink()
    put(preds, "mlqa", "sw", "{}", "json")  # MLQA normalises answers per language: no rule for another one
    one_line_error(r"mlqa/test-sw\.json: 'sw' is not an XTREME mlqa language .*and mlqa scores no other: its answer "
                   r"normalisation", preds, labels)


def test_languages_outside_the_tasks_set_are_scored_apart(folders):
    """Files of a language outside the task's set (in every benchmark) score with the task's metric into
    ``extras``, with their own average; the task's scores and the benchmark average stay as without them."""
    from click.testing import CliRunner

    from adapterxfer.cli import main
    preds, labels = folders
    before = score_folder(preds, labels)
    put(preds, "panx", "ha", "B-PER\nO\nB-LOC\n")  # gold PER, LOC(2 tokens): P 1/2 R 1/2 F1 1/2
    put(labels, "panx", "ha", "B-PER\nB-LOC\nI-LOC\n")
    put(preds, "panx", "ig", "O\nB-ORG\n")  # gold ORG: P = R = F1 = 1
    put(labels, "panx", "ig", "O\nB-ORG\n")
    put(preds, "xnli", "quy", "neutral\nneutral\n")  # 1 of 2
    put(labels, "xnli", "quy", "neutral\nentailment\n")
    scores = score_folder(preds, labels)
    assert_close(scores, EXPECTED)
    assert scores == before
    assert_close(scores.extras, {
        "panx": {"avg_f1": 75.0, "avg_precision": 75.0, "avg_recall": 75.0, "avg_metric": 75.0,
                 "ha": {"f1": 50.0, "precision": 50.0, "recall": 50.0},
                 "ig": {"f1": 100.0, "precision": 100.0, "recall": 100.0}},
        "xnli": {"avg_accuracy": 50.0, "avg_metric": 50.0, "quy": {"accuracy": 50.0}}})
    assert scores.warnings == before.warnings

    out = CliRunner().invoke(main, ["score", *map(str, folders), "--json"])
    assert out.exit_code == 0, out.output
    printed = json.loads(out.stdout)
    assert printed["extra_scores"] == scores.extras and {k: printed[k] for k in scores} == scores
    text = CliRunner().invoke(main, ["score", *map(str, folders)]).stdout
    headline = [87.5, 200 / 3, 400 / 7, 175 / 3, 140 / 3, 575 / 7, 62.5, 400 / 7, 75.0]  # as without the extras
    assert f"XTREME average over its 9 tasks: {sum(headline) / 9:.2f}" in text
    panx = text[text.index("### panx: extra languages"):]
    assert "| ha | 50.00 |" in panx and "| **extra avg** | **75.00** |" in panx
    assert "| ha |" not in text[:text.index("### panx: extra languages")]
    put(preds.parent / "only", "xnli", "quy", "neutral\nneutral\n")  # extra languages only: no benchmark scores
    only = score_folder(preds.parent / "only", labels)
    assert dict(only) == {} and only.warnings == [] and only.extras == {"xnli": scores.extras["xnli"]}


def test_language_not_in_label_folder(folders):
    preds, labels = folders
    put(preds, "pawsx", "fr", "1\n")
    one_line_error(r"no pawsx labels for 'fr': .*labels/pawsx/test-fr\.tsv does not exist", preds, labels)


def test_non_utf8_file(folders):
    preds, labels = folders
    (preds / "xnli" / "test-en.tsv").write_bytes("entailment\nneutral\ncontradicción\n".encode("latin-1"))
    one_line_error(r"xnli/test-en\.tsv: not UTF-8 text \(byte 0xf3 at offset 30\)", preds, labels)


def test_empty_files(folders):
    preds, labels = folders
    put(labels, "tatoeba", "af", "")
    one_line_error(r"labels/tatoeba/test-af\.tsv: file is empty", preds, labels)
    put(preds, "mlqa", "de", "\n", "json")
    one_line_error(r"preds/mlqa/test-de\.json: file is empty", preds, labels, tasks=["mlqa"])


def test_bucc_predictions_without_pairs_score_zero_as_xtreme(folders):
    # XTREME's bucc_f1 on no predicted pair: no correct pair, so precision = recall = F1 = 0 (not an error);
    # a BUCC test run whose dev-tuned threshold keeps no candidate writes such a file
    preds, labels = folders
    for blank in ("", "\n"):
        put(preds, "bucc2018", "de", blank)
        scores = score_folder(preds, labels, tasks=["bucc2018"])["bucc2018"]
        assert scores["de"] == {"f1": 0.0, "precision": 0.0, "recall": 0.0} and scores["avg_metric"] == 0.0
    put(labels, "bucc2018", "de", "")  # gold pairs are still required
    one_line_error(r"labels/bucc2018/test-de\.tsv: file is empty", preds, labels, tasks=["bucc2018"])


def test_tatoeba_indices_compare_as_text_as_xtreme(folders):
    # XTREME's read_label keeps each stripped line and accuracy compares the strings: "03" is not "3"
    preds, labels = folders
    put(preds, "tatoeba", "af", "03\n 1 \n2\n0\n")  # gold 3 1 2 0
    assert score_folder(preds, labels, tasks=["tatoeba"])["tatoeba"]["af"] == {"accuracy": 75.0}
    put(preds, "tatoeba", "af", "3\n1\n-2\n0\n")
    one_line_error(r"tatoeba/test-af\.tsv:3: expected a sentence index, found '-2'", preds, labels)


def test_bad_json(folders):
    preds, labels = folders
    put(preds, "xquad", "en", '{\n"q1": "x",\n"q2" "y"}', "json")  # no trailing comma: 3.13 reports it on line 2
    one_line_error(r"xquad/test-en\.json:3: invalid JSON", preds, labels)
    put(preds, "xquad", "en", '{"q1": ["x"]}', "json")
    one_line_error(r"xquad/test-en\.json: expected a JSON object \{question_id: answer_text\}", preds, labels)
    put(preds, "xquad", "en", '{"q1": "x"}', "json")
    put(labels, "xquad", "en", '{"data": [{"qas": []}]}', "json")
    one_line_error(r"labels/xquad/test-en\.json: not SQuAD-format JSON .*'paragraphs'", preds, labels)


def test_duplicate_gold_question(folders):
    preds, labels = folders
    gold = json.loads(squad_json({"t1": ["a"]}))
    gold["data"].append(gold["data"][0])
    put(labels, "tydiqa", "en", json.dumps(gold), "json")
    one_line_error(r"tydiqa/test-en\.json: question id 't1' appears twice", preds, labels)


def test_malformed_bucc_and_tatoeba_lines(folders):
    preds, labels = folders
    put(preds, "bucc2018", "de", "de-1\ten-1\nde-2 en-2\n")
    one_line_error(r"bucc2018/test-de\.tsv:2: expected 'source_id<TAB>target_id', found 'de-2 en-2'",
                   preds, labels)
    put(preds, "bucc2018", "de", "de-1\ten-1\n")
    put(preds, "tatoeba", "af", "3\n1\nseven\n0\n")
    one_line_error(r"tatoeba/test-af\.tsv:3: expected a sentence index, found 'seven'", preds, labels)


def test_bad_folders_and_task_names(tmp_path, folders):
    preds, labels = folders
    one_line_error(r"unknown XTREME task 'xnl' \(known: pawsx, xnli", preds, labels, tasks=["xnl"])
    one_line_error(r"prediction folder .*nowhere does not exist", tmp_path / "nowhere", labels)
    one_line_error(r"label folder .*nowhere does not exist", preds, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    one_line_error(r"empty has no XTREME task folder \(one of: [a-z0-9, ]*\)$", tmp_path / "empty", labels)
    (tmp_path / "empty" / "xcopa").mkdir()  # XTREME-R's
    one_line_error(r"empty has no XTREME task folder .*: add --benchmark xtreme-r$", tmp_path / "empty", labels)
    (tmp_path / "empty" / "xcopa").rmdir()
    one_line_error(r"no xnli predictions: .*empty/xnli does not exist", tmp_path / "empty", labels, tasks=["xnli"])
    (preds / "udpos" / "test-en.tsv").unlink()
    one_line_error(r"udpos: no test-<lang>\.tsv prediction files", preds, labels)
    (tmp_path / "labels2" / "xnli").mkdir(parents=True)
    one_line_error(r"no tydiqa labels: .*labels2/tydiqa does not exist", preds, tmp_path / "labels2",
                   tasks=["tydiqa"])
