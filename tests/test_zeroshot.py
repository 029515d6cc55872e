"""Target training on stacked / fused modules and zero-shot evaluation on every XTREME language."""
import json
import re
import shutil

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from adapterxfer import modules
from adapterxfer.cli import main
from adapterxfer.errors import UserError
from adapterxfer.fileio import sha256_file
from adapterxfer.score import score_folder
from adapterxfer.tasks import TASKS
from adapterxfer.zeroshot import evaluate_run
from xtreme_fixtures import UDPOS_WITHOUT_DEV, write_xtreme_layout

QUICK = ["--max-steps", "2", "--batch-size", "4", "--max-length", "64", "--doc-stride", "32", "--quiet"]


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def xtreme(tmp_path_factory):
    return write_xtreme_layout(tmp_path_factory.mktemp("xtreme") / "download")


@pytest.fixture(scope="module")
def inter(tmp_path_factory, tiny_model_dir, synthetic_data):
    """Two small intermediate modules (seq_bn) and one peft LoRA module on the tiny model."""
    root = tmp_path_factory.mktemp("modules")
    for name, task, extra in (("mnli", "mnli", []), ("qqp", "qqp", []),
                              ("mnli-lora", "mnli", ["--method", "lora", "--backend", "peft"])):
        cli("train-intermediate", task, "--model", tiny_model_dir, "--data-dir", synthetic_data / task,
            "--output", root / name, "--cache-dir", root / "cache", *QUICK, *extra)
    return root


@pytest.mark.parametrize("task", ["xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa"])
def test_train_and_evaluate_every_language(tmp_path, tiny_model_dir, xtreme, inter, task):
    run = tmp_path / "run"
    cli("train-target", task, "--stack", inter / "mnli", "--data-dir", xtreme,  # no --model: the module's base
        "--output", run, "--cache-dir", tmp_path / "cache", *QUICK)
    card = json.loads((run / "adapterxfer.json").read_text())
    assert card["base_model"]["id"] == str(tiny_model_dir)
    assert card["kind"] == "target" and card["composition"]["compose"] == "stack"
    assert card["composition"]["intermediates"][0]["task"] == "mnli"

    out = cli("evaluate", run, "--data-dir", xtreme, "--output", tmp_path / "res")
    results = json.loads((tmp_path / "res" / "results.json").read_text())
    spec = TASKS[task]
    expected = [l for l in spec.languages if not (task == "udpos" and l in UDPOS_WITHOUT_DEV)]
    assert results["languages"] == expected
    if task == "udpos":  # languages without a dev set are named in one line, not skipped silently
        assert results["missing_languages"] == list(UDPOS_WITHOUT_DEV)
        assert any(line.startswith("missing udpos dev data for 4 language(s)") for line in out.splitlines())
    ext = "json" if spec.format == "span_qa" else "tsv"
    for lang in expected:
        assert (tmp_path / "res" / "predictions" / task / f"test-{lang}.{ext}").is_file()
    if results["scores"]:  # labelled dev sets: the results equal scoring the written folders
        again = score_folder(tmp_path / "res" / "predictions", tmp_path / "res" / "labels", [task])[task]
        assert again == results["scores"]
        assert set(expected) <= set(results["scores"])


@pytest.mark.parametrize("task", ["bucc2018", "tatoeba"])
def test_retrieval_tasks_on_an_intermediate_module_and_on_the_bare_model(tmp_path, tiny_model_dir, xtreme, inter,
                                                                          task):
    split = "dev" if task == "bucc2018" else "test"
    cli("evaluate", inter / "mnli", "--task", task, "--split", split, "--data-dir", xtreme,
        "--output", tmp_path / "mod")
    cli("evaluate", "--model", tiny_model_dir, "--task", task, "--split", split, "--data-dir", xtreme,
        "--output", tmp_path / "bare")
    for folder in ("mod", "bare"):
        results = json.loads((tmp_path / folder / "results.json").read_text())
        assert results["languages"] == list(TASKS[task].languages)
    if task == "bucc2018":  # dev has gold pairs: tuned threshold, scored
        assert 0 <= json.loads((tmp_path / "mod" / "results.json").read_text())["scores"]["avg_f1"] <= 100
    # the module changes the sentence embeddings, so the retrieval inputs differ from the bare model's
    from adapterxfer.modules import load_encoder
    ids = torch.tensor([[0, 5, 6, 7, 2]])
    a = load_encoder(str(tiny_model_dir), inter / "mnli")(ids, torch.ones_like(ids))[-1]
    b = load_encoder(str(tiny_model_dir))(ids, torch.ones_like(ids))[-1]
    assert not torch.allclose(a, b)


def test_a_task_with_a_head_on_the_bare_model_is_one_error(tmp_path, tiny_model_dir, xtreme):
    with pytest.raises(UserError, match="--task panx needs a module trained on it"):
        evaluate_run(None, str(tmp_path / "out"), task="panx", model=str(tiny_model_dir), languages="en",
                     data_dir=str(xtreme), log=lambda message: None)
    assert not (tmp_path / "out").exists()


def test_tatoeba_queries_with_english_as_xtreme():
    # XTREME's evaluate_retrieval.py: similarity_search(x=source, y=English) indexes the source side and
    # searches it with each English sentence, one line per English sentence. Here both sources lie near
    # English 0: English 0 -> source 0 (cos 0.995 vs 0.981), English 1 -> source 1 (0.196 vs 0.100), both
    # right; the other direction would send both sources to English 0 (one wrong).
    from adapterxfer.zeroshot import _tatoeba_lines

    data = {"source_ids": ["s0", "s1"], "target_ids": ["e0", "e1"], "gold": [("s1", "e1"), ("s0", "e0")]}
    src, tgt = torch.tensor([[1.0, 0.1], [1.0, 0.2]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert _tatoeba_lines(data, src, tgt) == ("0\n1\n", "0\n1\n")
    # the gold line of each English sentence is its pair's source line, in the English file's order
    data = {"source_ids": ["s0", "s1"], "target_ids": ["e1", "e0"], "gold": [("s0", "e0"), ("s1", "e1")]}
    assert _tatoeba_lines(data, src, tgt.flip(0)) == ("1\n0\n", "1\n0\n")
    assert _tatoeba_lines({**data, "gold": None}, src, tgt)[1] is None


def test_bucc_candidates_mine_each_sentence_once_and_drop_repeated_ones_as_xtreme():
    # XTREME's mine_bitext mines the distinct sentences (text_load_unify, unique_embeddings: a copy takes no
    # neighbour slot), and read_sent2id drops a sentence whose stripped text is on several lines: "a" (s0, s2)
    # and "c" / "c " (s3, s4) get no pair, though each matches an English sentence best
    from adapterxfer.retrieval import mine_candidates
    from adapterxfer.zeroshot import _bucc_candidates

    gen = torch.Generator().manual_seed(0)
    a, b, c, d = torch.randn(4, 8, generator=gen)
    src = torch.stack([a, b, a, c, c])
    tgt = torch.stack([a, b, c, d]) + 0.1 * torch.randn(4, 8, generator=gen)
    data = {"source_ids": ["s0", "s1", "s2", "s3", "s4"], "target_ids": ["e0", "e1", "e2", "e3"],
            "target": ["A", "B", "C", "D"]}
    got = _bucc_candidates(data, ["a", "b", "a", "c", "c "], src, tgt)
    distinct = mine_candidates(src[[2, 1, 3, 4]], tgt)  # "a" once (its last line), "b", "c", "c "
    assert (1, 1) in distinct and {(0, 0), (2, 2), (3, 2)} & set(distinct)
    assert got == {("s1", f"e{j}"): score for (i, j), score in distinct.items() if i == 1}
    assert got[("s1", "e1")] != mine_candidates(src, tgt)[(1, 1)]  # the copy of "a" would shift the margins


def test_stack_trains_only_the_target_module_and_head(tmp_path, tiny_model_dir, inter):
    before = {n: sha256_file(inter / "mnli" / n) for n in ("adapter.safetensors", "model_head.safetensors")}
    inters = [modules.read_module(inter / "mnli")]
    head = modules.HeadSpec("xnli", "classification", ["entailment", "neutral", "contradiction"])
    backend = modules.build(str(tiny_model_dir), "xnli", modules.MethodConfig(), [head], inters, "stack")
    trainable = list(backend.trainable_parameters())
    assert trainable and all(".xnli." in n or n.startswith("heads.xnli") for n in trainable), trainable
    assert any("inter0_mnli" in n for n, _ in backend.model.named_parameters())
    assert str(backend.model.active_adapters) == "Stack[inter0_mnli, xnli]"
    assert before == {n: sha256_file(inter / "mnli" / n) for n in before}


def test_fusion_trains_fusion_target_and_head(tmp_path, tiny_model_dir, xtreme, inter):
    run = tmp_path / "fuse"
    cli("train-target", "xnli", "--fuse", f"{inter / 'mnli'},{inter / 'qqp'}", "--fusion", "dynamic", "--model",
        tiny_model_dir,
        "--data-dir", xtreme, "--output", run, "--cache-dir", tmp_path / "cache", *QUICK)
    card = json.loads((run / "adapterxfer.json").read_text())
    assert card["composition"]["compose"] == "fuse" and len(card["composition"]["intermediates"]) == 2
    assert 0 < card["fusion_parameters"] < card["trainable_parameters"]
    assert (run / "fusion").is_dir()
    backend = modules.load_trained(run)
    trainable = [n for n, p in backend.model.named_parameters() if "inter" in n and "fusion" not in n]
    assert trainable  # the intermediates are in the model ...
    fresh = modules.build(str(tiny_model_dir), "xnli", modules.MethodConfig(),
                          [modules.HeadSpec("xnli", "classification", ["e", "n", "c"])],
                          [modules.read_module(inter / "mnli"), modules.read_module(inter / "qqp")], "fuse")
    names = list(fresh.trainable_parameters())
    assert all("fusion" in n or ".xnli." in n or n.startswith("heads.xnli") for n in names)  # ... frozen
    assert any("fusion" in n for n in names) and any(".xnli." in n for n in names)


def test_peft_stack_merges_the_intermediate_lora(tmp_path, tiny_model_dir, inter):
    """The target model's frozen weights are W + dW_inter: they compute what the intermediate LoRA does."""
    from peft import PeftModel
    from transformers import AutoModel

    from adapterxfer.modules.peft_backend import merge_lora

    module = modules.read_module(inter / "mnli-lora")
    merged = merge_lora(AutoModel.from_pretrained(str(tiny_model_dir)), module).eval()
    cfg = json.loads((inter / "mnli-lora" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA"
    w = load_file(str(inter / "mnli-lora" / "adapter_model.safetensors"))
    key = "base_model.model.roberta.encoder.layer.0.attention.self.query"
    delta = (w[f"{key}.lora_B.weight"] @ w[f"{key}.lora_A.weight"]) * cfg["lora_alpha"] / cfg["r"]
    base = AutoModel.from_pretrained(str(tiny_model_dir))
    expected = base.encoder.layer[0].attention.self.query.weight + delta
    assert torch.allclose(merged.encoder.layer[0].attention.self.query.weight, expected, atol=1e-6)
    assert delta.abs().max() > 0

    head = modules.HeadSpec("xnli", "classification", ["e", "n", "c"])
    method = modules.MethodConfig(method="lora", backend="peft")
    backend = modules.build(str(tiny_model_dir), "xnli", method, [head], [module], "stack")
    names = list(backend.trainable_parameters())
    assert names and all("lora_" in n or "classifier" in n for n in names)
    assert isinstance(backend.model, PeftModel)


def test_module_of_another_base_model_is_refused(tmp_path, tiny_model_dir, inter, xtreme):
    import shutil

    from transformers import XLMRobertaConfig, XLMRobertaModel

    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    config = XLMRobertaConfig.from_pretrained(other)
    config.num_hidden_layers = 2  # same tokenizer, another shape
    XLMRobertaModel(config).save_pretrained(other)
    result = CliRunner().invoke(main, ["train-target", "xnli", "--stack", str(inter / "mnli"), "--model", str(other),
                                       "--data-dir", str(xtreme), "--output", str(tmp_path / "x"), *QUICK])
    assert result.exit_code == 2 and "was trained on base model" in result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()


def test_evaluate_bad_input(tmp_path, xtreme, inter):
    result = CliRunner().invoke(main, ["evaluate", str(inter / "mnli"), "--task", "xnli", "--data-dir", str(xtreme),
                                       "--output", str(tmp_path / "r")])
    assert result.exit_code == 2 and "intermediate module" in result.output
    result = CliRunner().invoke(main, ["evaluate", str(inter / "mnli"), "--task", "tatoeba", "--languages", "xx",
                                       "--data-dir", str(xtreme), "--output", str(tmp_path / "r")])
    assert result.exit_code == 2 and "tatoeba has no xx" in result.output
    result = CliRunner().invoke(main, ["train-target", "xnli", "--model", "m", "--output", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--intermediate none" in result.output
    tatoeba = [str(inter / "mnli"), "--task", "tatoeba", "--data-dir", str(xtreme), "--output", str(tmp_path / "r")]
    for args, message in ((["--output", str(tmp_path / "r")], "say what to evaluate: a module folder, or --task"),
                          ([*tatoeba, "--languages", ""], "--languages is empty"),
                          ([*tatoeba, "--batch-size", "0"], "--batch-size must be at least 1"),
                          ([*tatoeba, "--layer", "99"], "--layer 99: "),
                          ([*tatoeba, "--layer", "-1"], "--layer -1: "),
                          ([*tatoeba, "--labels", str(tmp_path / "no-labels")], "is not a folder")):
        result = CliRunner().invoke(main, ["evaluate", *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert not (tmp_path / "r").exists()


def test_a_failed_evaluation_leaves_the_earlier_results_as_they_were(tmp_path, xtreme, inter):
    args = ["evaluate", inter / "mnli", "--task", "tatoeba", "--split", "test", "--output", tmp_path / "res"]
    cli(*args, "--data-dir", xtreme)
    files = lambda: {p: (p.read_bytes(), p.stat().st_mtime_ns)  # noqa: E731 (untouched, not rewritten alike)
                     for p in (tmp_path / "res").rglob("*") if p.is_file()}
    before = files()
    broken = tmp_path / "broken"
    shutil.copytree(xtreme, broken)
    last = TASKS["tatoeba"].languages[-1]  # evaluated last: every other language is done when it fails
    english = broken / "tatoeba" / f"{last}-en.en"
    english.write_text("")
    result = CliRunner().invoke(main, [str(a) for a in [*args, "--data-dir", broken]])
    assert result.exit_code == 2 and f"{english}: file is empty" in result.output, result.output
    assert files() == before and len(before) > len(TASKS["tatoeba"].languages)  # predictions, results.json
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "res"]  # no staging folder left


def test_evaluate_with_perturbations_reports_clean_perturbed_and_drop(tmp_path, tiny_model_dir, xtreme, inter):
    run = tmp_path / "run"
    cli("train-target", "panx", "--stack", inter / "mnli", "--model", tiny_model_dir, "--data-dir", xtreme,
        "--output", run, "--cache-dir", tmp_path / "cache", *QUICK)
    args = ["evaluate", run, "--data-dir", xtreme, "--languages", "en,th,zh", "--perturb", "char_swap:0.3",
            "--perturb", "word_swap:0.3", "--seed", "1"]
    cli(*args, "--output", tmp_path / "a")
    # again, with the clean scores taken from the first run (as a grid's ladder does): only noisy inputs run
    ops = dict(task=None, languages=["en", "th", "zh"], data_dir=str(xtreme), perturbations=["char_swap:0.3",
               "word_swap:0.3"], seed=1, log=lambda *_: None)
    b = evaluate_run(str(run), str(tmp_path / "b"), clean_results=str(tmp_path / "a" / "results.json"), **ops)
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    assert a["perturbations"] == ["char_swap:0.3", "word_swap:0.3"] and a["seed"] == 1
    assert a["perturbed_scores"] == b["perturbed_scores"]  # seeded: reproducible
    assert b["scores"] == a["scores"] and b["drop"] == a["drop"]
    assert not (tmp_path / "b" / "predictions").exists() and (tmp_path / "b" / "perturbed" / "predictions").is_dir()
    with pytest.raises(UserError, match="another evaluation"):
        evaluate_run(str(run), str(tmp_path / "c"), clean_results=str(tmp_path / "a" / "results.json"),
                     **{**ops, "languages": ["en"]})
    for lang in ("en", "th", "zh"):
        assert a["drop"][lang] == pytest.approx(a["scores"][lang]["f1"] - a["perturbed_scores"][lang]["f1"])
        clean = (tmp_path / "a" / "predictions" / "panx" / f"test-{lang}.tsv").read_text()
        noisy_gold = (tmp_path / "a" / "perturbed" / "labels" / "panx" / f"test-{lang}.tsv").read_text()
        assert clean.count("\n\n") == noisy_gold.count("\n\n")  # same sentences, tags moved with tokens
    assert "clean vs perturbed" in (tmp_path / "a" / "results.md").read_text()
    cli("evaluate", run, "--data-dir", xtreme, "--languages", "en", "--output", tmp_path / "a")  # clean only now
    assert not (tmp_path / "a" / "perturbed" / "predictions" / "panx").exists()  # no noisy files left beside it
    assert sorted(p.name for p in (tmp_path / "a" / "predictions" / "panx").iterdir()) == ["test-en.tsv"]


class CharTokenizer:
    """Stands in for a fast tokenizer: each character a sub-word (id = its label's index, else 0), so a word
    of spaces has none; <s> and </s> around a sentence, truncated to ``max_length``."""

    pad_token_id = 1
    unk_token = "u"

    def __init__(self, labels):
        self.labels = labels

    def num_special_tokens_to_add(self, pair=False):
        return 2

    def __call__(self, sentences, is_split_into_words=True, truncation=False, max_length=None):
        ids, words = [], []
        for sentence in sentences:
            chars = [(c, w) for w, word in enumerate(sentence) for c in word if not c.isspace()]
            chars = chars[:max_length - 2] if truncation else chars
            ids.append([0] + [self.labels.index(c) if c in self.labels else 0 for c, _ in chars] + [0])
            words.append([None] + [w for _, w in chars] + [None])
        enc = {"input_ids": ids}
        return type("Encoding", (dict,), {"word_ids": lambda self, i: words[i]})(enc)


@pytest.mark.parametrize("max_length", [64, 6])  # one window per sentence; windows of 4 sub-words
def test_tagging_predictions_stay_on_their_words_when_a_word_has_no_sub_word(monkeypatch, max_length):
    """The model here tags each sub-word with its own character, so each word's tag is its first letter."""
    import torch

    from adapterxfer import zeroshot

    labels = ["O", "a", "b", "c", "d", "e", "u"]
    monkeypatch.setattr(zeroshot, "predict", lambda backend, head, feats, *a: [
        torch.nn.functional.one_hot(torch.tensor(f["input_ids"]), len(labels)).float() for f in feats])
    words = ["ab", " ", "c", "\u00a0", "dd", "e"]
    tags = zeroshot._tag([{"tokens": words, "tags": None}], CharTokenizer(labels), max_length, None, "panx", labels,
                         8, "cpu", None)
    assert tags == [["a", "u", "c", "u", "d", "e"]]  # the words without sub-words are tagged as unknown tokens


def test_a_data_dir_without_the_tasks_files_says_which_files_it_needs(tmp_path):
    from adapterxfer.zeroshot import _languages

    root = write_xtreme_layout(tmp_path / "download", languages={"en", "de"})
    for name, split, expected in (("panx", "dev", "panx/dev-{lang}.tsv"), ("xquad", "test", "xquad/xquad.{lang}.json"),
                                  ("bucc2018", "test", "bucc2018/{lang}-en.test.{side}")):
        with pytest.raises(UserError, match=rf"no {name} {split} data for any requested language under .*/panx; "
                                            rf"expected .*/panx/{re.escape(expected)}; --data-dir is the download/"):
            _languages(TASKS[name], None, split, str(root / "panx"), print, "xtreme")  # one folder too deep
    with pytest.raises(UserError, match=r"no bucc2018 dev data .* under the hub; pass --data-dir, the download/"):
        _languages(TASKS["bucc2018"], None, "dev", None, print, "xtreme")  # BUCC has no copy on the Hub


def test_bucc_without_its_dev_gold_file_names_it(tmp_path):
    from adapterxfer.data import load_retrieval
    from adapterxfer.zeroshot import _gold_pairs

    root = write_xtreme_layout(tmp_path / "download", languages={"en", "de"})
    (root / "bucc2018/de-en.dev.gold").unlink()
    data = load_retrieval(TASKS["bucc2018"], "dev", "de", root)
    with pytest.raises(UserError, match=r"needs the dev \('sample'\) gold pairs: .*bucc2018/de-en\.dev\.gold is missing"):
        _gold_pairs(data, TASKS["bucc2018"], "de", str(root))


# ---------------------------------------------------------------- languages outside a task's set

#: Hand-written dev files of a language outside the task's set, in the task's own format and file name.
EXTRA_FILES = {
    "panx": ("ha", "panx/dev-ha.tsv", [(["Musa", "ya", "je", "Kano"], ["B-PER", "O", "O", "B-LOC"]),
                                       (["Aisha", "Bello", "tana", "Abuja"], ["B-PER", "I-PER", "O", "B-LOC"]),
                                       (["Bankin", "Duniya"], ["B-ORG", "I-ORG"])]),
    "xnli": ("quy", "xnli/dev-quy.tsv", [("Wasiy hatunmi", "Wasiy kanmi", "entailment"),
                                         ("Allqu puñun", "Allqu phawan", "contradiction"),
                                         ("Mikhuyta munani", "Yakuta munani", "neutral"),
                                         ("Intiqa lluqsimunña", "Punchaw kachkan", "entailment")]),
}


@pytest.mark.parametrize("task", ["panx", "xnli"])
def test_a_language_outside_the_tasks_set_is_scored_apart_from_its_local_file(tmp_path, xtreme, inter, task):
    """Its score is the task's metric on its written predictions and labels; the task's scores (its languages
    and averages) are those of the same evaluation without it."""
    from seqeval.metrics import f1_score

    code, path, rows = EXTRA_FILES[task]
    run, data = tmp_path / "run", tmp_path / "data"
    cli("train-target", task, "--stack", inter / "mnli", "--data-dir", xtreme, "--output", run,
        "--cache-dir", tmp_path / "cache", *QUICK)
    shutil.copytree(xtreme / task, data / task)
    lines = ["".join(f"{w}\t{t}\n" for w, t in zip(*row)) + "\n" for row in rows] if task == "panx" else \
        ["\t".join(row) + "\n" for row in rows]
    (data / path).write_text("".join(lines), encoding="utf-8")
    args = ["evaluate", run, "--data-dir", data, "--cache-dir", tmp_path / "cache"]
    cli(*args, "--languages", "de,en", "--output", tmp_path / "bench")
    log = cli(*args, "--languages", f"de,en,{code}", "--output", tmp_path / "res")
    bench = json.loads((tmp_path / "bench" / "results.json").read_text())
    res = json.loads((tmp_path / "res" / "results.json").read_text())
    assert f"{task}: {code} outside its XTREME languages, scored apart" in log
    assert res["languages"] == bench["languages"] == ["de", "en"] and res["extra_languages"] == [code]
    assert res["scores"] == bench["scores"] and "extra_languages" not in bench  # the benchmark's, unchanged

    pred = (tmp_path / "res" / "predictions" / task / f"test-{code}.tsv").read_text(encoding="utf-8")
    gold = (tmp_path / "res" / "labels" / task / f"test-{code}.tsv").read_text(encoding="utf-8")
    if task == "panx":
        sentences = lambda text: [s.split("\n") for s in text.strip("\n").split("\n\n")]  # noqa: E731
        assert sentences(gold) == [tags for _, tags in rows]
        metric, expected = "f1", 100 * f1_score(sentences(gold), sentences(pred))
    else:
        assert gold.split() == [label for *_, label in rows]
        metric = "accuracy"
        expected = 100 * sum(p == g for p, g in zip(pred.split(), gold.split())) / len(rows)
    extra = res["extra_scores"]
    assert extra[code][metric] == pytest.approx(expected) and list(extra)[-1] == code
    assert extra[f"avg_{metric}"] == extra["avg_metric"] == pytest.approx(expected)
    again = score_folder(tmp_path / "res" / "predictions", tmp_path / "res" / "labels", [task])
    assert again == {task: res["scores"]} and again.extras == {task: extra}  # `adapterxfer score` agrees
    md = (tmp_path / "res" / "results.md").read_text()
    assert f"| {code} |" not in md.split("extra languages")[0] and f"| {code} |" in md.split("extra languages")[1]


def test_tatoeba_on_a_language_outside_its_set(tmp_path, tiny_model_dir, xtreme):
    """Retrieval from XTREME's file naming (tatoeba/gn-en.gn, gn-en.en with the English side sorted), gold
    from --labels; scored apart, the benchmark's languages as without it."""
    from xtreme_fixtures import N_TATOEBA, sentence

    data, labels = tmp_path / "data", tmp_path / "labels" / "tatoeba"
    shutil.copytree(xtreme / "tatoeba", data / "tatoeba")
    pairs = [("Che róga", "My house"), ("Aguyje ndéve", "Thank you"), ("Mba'éichapa", "How are you"),
             ("Ko'ãga ára porã", "Today is a good day")]
    english = sorted(en for _, en in pairs)
    (data / "tatoeba" / "gn-en.gn").write_text("".join(gn + "\n" for gn, _ in pairs), encoding="utf-8")
    (data / "tatoeba" / "gn-en.en").write_text("".join(en + "\n" for en in english), encoding="utf-8")
    gold = [next(i for i, (_, en) in enumerate(pairs) if en == e) for e in english]  # per English line
    labels.mkdir(parents=True)
    (labels / "test-gn.tsv").write_text("".join(f"{i}\n" for i in gold))
    de = [[sentence("en", i) for i in range(N_TATOEBA)].index(e) for e in sorted(sentence("en", i)
                                                                                 for i in range(N_TATOEBA))]
    (labels / "test-de.tsv").write_text("".join(f"{i}\n" for i in de))
    args = ["evaluate", "--model", tiny_model_dir, "--task", "tatoeba", "--split", "test", "--data-dir", data,
            "--labels", labels.parent]
    cli(*args, "--languages", "de", "--output", tmp_path / "bench")
    cli(*args, "--languages", "de,gn", "--output", tmp_path / "res")
    bench = json.loads((tmp_path / "bench" / "results.json").read_text())
    res = json.loads((tmp_path / "res" / "results.json").read_text())
    assert res["scores"] == bench["scores"] and res["languages"] == ["de"] and res["extra_languages"] == ["gn"]
    pred = (tmp_path / "res" / "predictions" / "tatoeba" / "test-gn.tsv").read_text().split()
    assert len(pred) == len(pairs)
    expected = 100 * sum(int(p) == g for p, g in zip(pred, gold)) / len(pairs)
    assert res["extra_scores"]["gn"]["accuracy"] == res["extra_scores"]["avg_metric"] == pytest.approx(expected)


def test_a_language_outside_the_tasks_set_is_refused_without_its_file_or_a_task_that_scores_it(tmp_path):
    from adapterxfer.data import load_examples
    from adapterxfer.zeroshot import _languages, languages_list

    root = write_xtreme_layout(tmp_path / "download", languages={"en", "de"})
    panx = TASKS["panx"]
    evaluate = lambda task, languages, data_dir=str(root): _languages(  # noqa: E731
        TASKS[task], languages, "dev", data_dir, lambda *_: None, "xtreme")
    with pytest.raises(UserError, match=r"--languages: panx has no ha \(its languages: ar, .*\); a language outside "
                                        r"them needs its local files: pass --data-dir, a folder with panx/dev-ha\.tsv"):
        evaluate("panx", "de,ha", None)  # the Hub serves the task's languages only
    with pytest.raises(UserError, match=r"panx has no ha .*; a language outside them is read from its local files "
                                        r"only: missing .*/download/panx/dev-ha\.tsv$"):
        evaluate("panx", "de,ha")
    (root / "panx" / "dev-ha.tsv").write_text("Kano\tB-LOC\n", encoding="utf-8")
    assert evaluate("panx", "all,ha") == (["en", "de"], ["ha"])  # all: the XTREME languages with files
    assert load_examples(panx, "dev", root, "ha") == [{"tokens": ["Kano"], "tags": ["B-LOC"]}]
    with pytest.raises(UserError, match=r"task 'panx' has no language 'ha' .*read only from its local files under "
                                        r"--data-dir, named as the task's"):
        load_examples(panx, "dev", None, "ha")
    with pytest.raises(UserError, match=r"task 'panx' has no language 'ig' "):
        load_examples(panx, "dev", root, "ig")  # no file
    for bad in ("H@", "hausa", "HA"):
        with pytest.raises(UserError, match=rf"--languages: '{bad}' is not a language code \(2 or 3 lowercase"):
            evaluate("panx", f"de,{bad}")
    with pytest.raises(UserError, match=r"panx has no az in XTREME: add --benchmark xtreme-r"):
        evaluate("panx", "de,az")  # another benchmark's language stays refused, as before
    (root / "mlqa/MLQA_V1/dev/dev-context-sw-question-sw.json").write_text("{}")
    with pytest.raises(UserError, match=r"mlqa has no sw .*, and takes no other: its answer normalisation is "
                                        r"defined per language .*; tasks that do: pawsx, xnli, panx, udpos, bucc2018"):
        evaluate("mlqa", "de,sw")
    with pytest.raises(UserError, match=r"--languages: panx has no ha \(its languages"):
        languages_list(panx, "de,ha")  # grid recipes and report: the benchmark's languages only


def test_a_retrieval_language_outside_the_set_names_each_file_it_lacks(tmp_path):
    """A retrieval language has two files (its side and English's) and BUCC's test needs the dev files too (the
    threshold is tuned on them): the refusal names the files that are missing, not a pattern or 'no language'."""
    from adapterxfer.data import load_retrieval
    from adapterxfer.zeroshot import _languages

    root = write_xtreme_layout(tmp_path / "download", languages={"en", "de"})
    evaluate = lambda task, split, data_dir=str(root): _languages(  # noqa: E731
        TASKS[task], "de,gn", split, data_dir, lambda *_: None, "xtreme")
    (root / "tatoeba" / "gn-en.gn").write_text("Che róga\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"tatoeba has no gn .*: missing \S*/download/tatoeba/gn-en\.en$"):
        evaluate("tatoeba", "test")
    with pytest.raises(UserError, match=r"a folder with tatoeba/gn-en\.gn and tatoeba/gn-en\.en as XTREME's"):
        evaluate("tatoeba", "test", None)
    for side in ("gn", "en"):
        (root / "bucc2018" / f"gn-en.test.{side}").write_text(f"gn-000000001\t{side}\n", encoding="utf-8")
    assert evaluate("bucc2018", "test") == (["de"], ["gn"])
    with pytest.raises(UserError, match=r"task 'bucc2018' has no language 'gn' .*; missing \S*/bucc2018/gn-en\.dev\.gn, "
                                        r"\S*/bucc2018/gn-en\.dev\.en\)$"):
        load_retrieval(TASKS["bucc2018"], "dev", "gn", root)  # the test split's threshold
    with pytest.raises(UserError, match=r"--languages: tatoeba has no en in XTREME$"):
        _languages(TASKS["tatoeba"], "de,en", "test", str(root), lambda *_: None, "xtreme")
