"""Robustness ladders and model sweeps in recipes: the ladder's evaluation cells reuse the trained modules,
a rerun skips them, a new rate adds only evaluation cells, the report's drops equal the results files;
a model sweep plans per-model cells, costs each model by its shape, and every encoder type gets a backend."""
import csv
import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from adapterxfer import basemodel, modules
from adapterxfer.cli import main
from adapterxfer.errors import UserError
from adapterxfer.grid import CostModel, layer_work, plan, read_plan
from adapterxfer.modules import HeadSpec, MethodConfig
from adapterxfer.recipes import load_recipe
from adapterxfer.zeroshot import evaluate_run

RECIPES = Path(__file__).parent.parent / "recipes"
LANGUAGES = {"xnli": ["en", "de"], "panx": ["en", "ru"], "tatoeba": ["de", "ja"]}


def grid(*args):
    return CliRunner().invoke(main, ["grid", *map(str, args)])


def robustness_recipe(path: Path, model, synthetic_data, xtreme, **edit) -> Path:
    """recipes/robustness-demo.yaml on the session's tiny model and data, with few steps and languages."""
    r = yaml.safe_load((RECIPES / "robustness-demo.yaml").read_text())
    r["model"] = model
    r["intermediate"]["data_dir"] = str(synthetic_data)
    r["targets"]["data_dir"], r["evaluate"]["labels_dir"] = map(str, xtreme)
    r["train"].update(save_steps=100, eval_steps=100, batch_size=8, cache_dir=str(path.parent / "features"))
    for section in ("intermediate", "targets"):
        for settings in r[section]["tasks"].values():
            if settings:
                settings["max_steps"] = 2
    r["evaluate"]["languages"] = LANGUAGES
    for key, value in edit.items():
        r["evaluate"][key] = value
    path.write_text(yaml.safe_dump(r, sort_keys=False))
    return path


def test_ladder_end_to_end_rerun_new_rate_and_report(tmp_path, tiny_model_dir, synthetic_data, xtreme):
    recipe = robustness_recipe(tmp_path / "r.yaml", str(tiny_model_dir), synthetic_data, xtreme)
    out = tmp_path / "run"
    result = grid(recipe, "--out", out)
    assert result.exit_code == 0, result.output
    _, cells = read_plan(out)
    evals = [c for c in cells if c.kind == "evaluate"]
    steps = [c for c in evals if c.identity.get("perturb")]
    # clean: xnli, panx on baseline and mnli + tatoeba on mnli and the bare model = 6; each again per step
    assert len(evals) == 18 and len(steps) == 12
    assert {tuple(c.identity["perturb"]) for c in steps} == {("char_swap:0.1",), ("word_drop:0.2",)}
    trained = {c.id for c in cells if c.kind != "evaluate"}
    for c in steps:  # a step evaluates the clean cell's module, no training of its own, noisy inputs only
        clean = next(e for e in evals if not e.identity.get("perturb") and (e.row, e.task, e.seed) ==
                     (c.row, c.task, c.seed))
        assert c.deps == clean.deps + [clean.id] and set(clean.deps) <= trained
        assert c.run["module"] == clean.run["module"]
        results = json.loads((c.folder(out) / "eval" / "results.json").read_text())
        assert results["perturbations"] == c.identity["perturb"] and results["seed"] == 0
        assert not (c.folder(out) / "eval" / "predictions").exists()  # the clean scores are the clean cell's

    again = grid(recipe, "--out", out)
    assert again.exit_code == 0 and f"{len(cells)} of {len(cells)} cells done (0 in this run)" in again.output

    report = CliRunner().invoke(main, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert "## Robustness" in report.stdout and "| intermediate task | clean | char_swap:0.1 | word_drop:0.2 |" \
        in report.stdout
    rows = list(csv.DictReader((out / "report" / "robustness.csv").open()))
    assert len(rows) == 2 * 3 * 2  # rows x tasks x steps
    by_key = {(r["row"], r["task"], r["step"]): r for r in rows}
    for c in steps:
        results = json.loads((c.folder(out) / "eval" / "results.json").read_text())
        line = by_key[(c.row, c.task, c.identity["perturb"][0])]
        assert float(line["perturbed_mean"]) == pytest.approx(results["perturbed_scores"]["avg_metric"], abs=1e-9)
        assert float(line["drop_mean"]) == pytest.approx(results["drop"]["avg"], abs=1e-9)  # not QA: same metric
        clean = json.loads((next(e for e in evals if not e.identity.get("perturb") and (e.row, e.task, e.seed)
                                 == (c.row, c.task, c.seed)).folder(out) / "eval" / "results.json").read_text())
        assert results["scores"]["avg_metric"] == pytest.approx(clean["scores"]["avg_metric"])  # same clean score
        drop = results["drop"]["avg"]
        assert f"{results['perturbed_scores']['avg_metric']:.1f} (drop {drop:.1f})" in report.stdout
    # the clean table is the one without a ladder: perturbed cells do not leak into it
    table = {r["row"]: r for r in csv.DictReader((out / "report" / "table.csv").open())}
    clean_xnli = [json.loads((e.folder(out) / "eval" / "results.json").read_text())["scores"]["avg_metric"]
                  for e in evals if not e.identity.get("perturb") and (e.row, e.task) == ("mnli", "xnli")]
    assert float(table["mnli"]["xnli_mean"]) == pytest.approx(statistics.mean(clean_xnli))

    # a new rate: evaluation cells only, one per clean evaluation, nothing retrained
    more = robustness_recipe(tmp_path / "more.yaml", str(tiny_model_dir), synthetic_data, xtreme,
                             perturb=[["char_swap:0.1"], ["word_drop:0.2"], ["char_swap:0.3"]])
    new = [c for c in plan(load_recipe(more), out) if c.id not in {x.id for x in cells}]
    assert len(new) == 6 and all(c.kind == "evaluate" and c.identity["perturb"] == ["char_swap:0.3"] for c in new)
    assert all("-char_swap0.3-" in c.id for c in new)


def test_a_model_sweep_plans_each_model_and_costs_it_by_its_shape(tmp_path, tiny_model_dir, synthetic_data, xtreme):
    other = tmp_path / "tiny-copy"  # a second base model: same files, another folder
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["num_hidden_layers"] = 8  # another depth: another content hash, another cost
    (other / "config.json").write_text(json.dumps(config))
    recipe = robustness_recipe(tmp_path / "sweep.yaml", [str(tiny_model_dir), str(other)], synthetic_data, xtreme,
                               perturb=[])
    loaded = load_recipe(recipe)
    cells = plan(loaded, tmp_path / "run", strict=False)
    single = plan(load_recipe(robustness_recipe(tmp_path / "one.yaml", str(tiny_model_dir), synthetic_data, xtreme,
                                                perturb=[])), tmp_path / "run", strict=False)
    assert len(cells) == 2 * len(single)
    names = {Path(str(tiny_model_dir)).name, "tiny-copy"}
    for c in cells:
        assert c.model in (str(tiny_model_dir), str(other))
        assert f"-{Path(c.model).name}-" in c.id and (names - {Path(c.model).name}).pop() not in c.id
    mine = [c for c in cells if c.model == str(tiny_model_dir)]
    # the first model's cells are the single-model plan's, under names that carry the model
    assert sorted(c.identity["hash"] for c in mine) == sorted(c.identity["hash"] for c in single)
    assert not {c.identity["hash"] for c in mine} & {c.identity["hash"] for c in cells if c not in mine}

    costs = CostModel(loaded, tmp_path / "run", str(tiny_model_dir))
    inter = {c.model: costs.estimate(c).seconds for c in cells if c.kind == "intermediate"}
    assert inter[str(other)] / inter[str(tiny_model_dir)] == pytest.approx(2.0)  # twice the layers: twice the work
    assert layer_work("facebook/xlm-roberta-xl") == 36 * 12 * 2560 ** 2
    assert layer_work("bert-base-multilingual-cased") == layer_work("xlm-roberta-base")

    dry = grid(recipe, "--out", tmp_path / "run", "--dry-run")
    assert dry.exit_code == 0 and f"{len(cells)} cells" in dry.output


def test_the_cost_of_a_data_size_row_counts_the_examples_it_trains_on(tmp_path, tiny_model_dir, synthetic_data, xtreme):
    """--train-size / --train-fraction rows (per member task for multi) cost their subsample, not the whole set."""
    path = robustness_recipe(tmp_path / "sizes.yaml", str(tiny_model_dir), synthetic_data, xtreme, perturb=[])
    r = yaml.safe_load(path.read_text())
    mnli = str(synthetic_data / "mnli")
    r["intermediate"]["tasks"] = {"mnli": {"epochs": 1}, "multi": {"epochs": 1},
                                  "mnli_40": {"task": "mnli", "data_dir": mnli, "epochs": 1, "train_size": 40},
                                  "mnli_tenth": {"task": "mnli", "data_dir": mnli, "epochs": 1, "train_fraction": 0.1},
                                  "multi_8": {"task": "multi", "epochs": 1, "train_size": 8}}
    r["train"].update(batch_size=8, doc_stride=32)
    path.write_text(yaml.safe_dump(r, sort_keys=False))
    recipe = load_recipe(path)
    costs = CostModel(recipe, tmp_path / "run", str(tiny_model_dir))
    tokens = {c.row: costs.padded_tokens(c) for c in plan(recipe, tmp_path / "run", strict=False)
              if c.kind == "intermediate"}
    n = len(next(synthetic_data.glob("mnli/train.*")).read_text().splitlines())  # jsonl: a line per example
    assert tokens["mnli_40"] / tokens["mnli"] == pytest.approx(math.ceil(40 / 8) / math.ceil(n / 8))
    assert tokens["mnli_tenth"] / tokens["mnli"] == pytest.approx(math.ceil(round(n / 10) / 8) / math.ceil(n / 8))
    assert tokens["multi_8"] / tokens["mnli_40"] == pytest.approx(9 * 8 / 40)  # 8 of each of the nine tasks'


def test_a_renamed_english_row_reads_its_tasks_folder_and_a_translated_one_never_does(tmp_path, tiny_model_dir,
                                                                                      synthetic_data, xtreme):
    """Under intermediate.data_dir, a data-size row (``mnli_40: {task: mnli, train_size: 40}``) trains on the
    task's folder when it has none of its own; a row of another language must have its own data."""
    path = robustness_recipe(tmp_path / "rows.yaml", str(tiny_model_dir), synthetic_data, xtreme, perturb=[])
    r = yaml.safe_load(path.read_text())
    r["intermediate"]["tasks"] = {"mnli": {"epochs": 1}, "mnli_40": {"task": "mnli", "epochs": 1, "train_size": 40},
                                  "mnli_de": {"task": "mnli", "epochs": 1, "train_language": "de"}}
    path.write_text(yaml.safe_dump(r, sort_keys=False))
    cells = {c.row: c for c in plan(load_recipe(path), tmp_path / "run", strict=False) if c.kind == "intermediate"}
    assert cells["mnli_40"].run["config"]["data_dir"] == cells["mnli"].run["config"]["data_dir"] == str(synthetic_data / "mnli")
    assert cells["mnli_40"].identity["data"] == cells["mnli"].identity["data"]
    assert cells["mnli_de"].run["config"]["data_dir"] == str(synthetic_data / "mnli_de")
    assert str(cells["mnli_de"].identity["data"]).startswith("missing:")


@pytest.mark.parametrize("edit, message", [
    ({"perturb": [["char_swp:0.1"]]}, "evaluate.perturb[0][0]: char_swp:0.1: unknown operation 'char_swp'"),
    ({"perturb": [["char_swap:0.1"], ["word_drop:2"]]}, "evaluate.perturb[1][0]: word_drop:2: RATE must be between"),
    ({"perturb": [["char_swap:0.1"], ["char_swap:0.10"]]}, "evaluate.perturb[1]: step char_swap:0.1 is listed twice"),
    ({"perturb": [[]]}, "evaluate.perturb[0]: a ladder step is a list of NAME:RATE"),
    ({"perturb_seed": "x"}, "evaluate.perturb_seed: expected int"),
    ({"model": ["xlm-roberta-base", "xlm-roberta-large"], "layer": 14}, "evaluate.layer: one layer cannot fit"),
    ({"model": ["xlm-roberta-base", "facebook/xlm-roberta-xl"]}, "model[1]: facebook/xlm-roberta-xl (model type "
                                                                 "xlm-roberta-xl) has no model class in the adapters"),
    ({"model": ["xlm-roberta-base", "xlm-roberta-base"]}, "model: a model is listed twice"),
])
def test_ladder_and_sweep_errors_name_the_file_line_and_key(tmp_path, edit, message):
    r = yaml.safe_load((RECIPES / "robustness.yaml").read_text())
    if "model" in edit:
        r["model"] = edit.pop("model")
    r["evaluate"].update(edit)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(r, sort_keys=False))
    with pytest.raises(UserError, match=r"^" + str(path).replace(".", r"\.") + r":\d+: ") as e:
        load_recipe(path)
    assert message in str(e.value)


def test_shipped_robustness_recipes():
    r = load_recipe(RECIPES / "robustness.yaml")
    assert list(r.intermediates) == ["mnli", "squad_v2", "hellaswag"] and r.baseline and r.seeds == [1, 2, 3]
    assert list(r.targets) == ["xnli", "panx", "xquad", "mlqa", "tatoeba"]
    assert {op.split(":")[0] for step in r.ladder for op in step} >= {"char_swap", "word_drop"}
    demo = load_recipe(RECIPES / "robustness-demo.yaml")
    assert demo.model == "demo" and demo.ladder == [["char_swap:0.1"], ["word_drop:0.2"]]


def _tiny_base(path: Path, config, tokenizer_dir: Path) -> str:
    """A random-weight base model of ``config`` with the tiny model's tokenizer."""
    from transformers import AutoModel

    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(path)
    for f in tokenizer_dir.glob("*token*"):
        shutil.copy(f, path / f.name)
    return str(path)


@pytest.mark.parametrize("layers, expected", [(12, 7), (24, 14)])
def test_retrieval_pools_the_same_depth_fraction_of_any_model(tmp_path, tiny_model_dir, xtreme, layers, expected):
    from transformers import XLMRobertaConfig

    small = json.loads((tiny_model_dir / "config.json").read_text())
    config = XLMRobertaConfig(vocab_size=small["vocab_size"], hidden_size=16, num_hidden_layers=layers,
                              num_attention_heads=2, intermediate_size=32, pad_token_id=1, bos_token_id=0,
                              eos_token_id=2, max_position_embeddings=small["max_position_embeddings"])
    model = _tiny_base(tmp_path / "model", config, tiny_model_dir)
    results = evaluate_run(None, str(tmp_path / "eval"), task="tatoeba", model=model, languages=["de"],
                           split="test", data_dir=str(xtreme[0]), labels_dir=str(xtreme[1]), log=lambda *a: None)
    assert results["layer"] == expected and results["scores"]["avg_metric"] is not None


@pytest.mark.parametrize("method, backend", [("seq_bn", "adapters"), ("lora", "adapters"), ("lora", "peft")])
def test_an_mbert_architecture_base_trains_with_every_backend(tmp_path, tiny_model_dir, method, backend):
    from transformers import BertConfig

    config = BertConfig(vocab_size=200, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    model = tmp_path / "bert"
    if not model.exists():
        _tiny_base(model, config, tiny_model_dir)
    basemodel.check_backend(basemodel.load_config(str(model)), backend)
    backend_ = modules.build(str(model), "xnli", MethodConfig(method=method, backend=backend),
                             [HeadSpec("xnli", "classification", ["a", "b", "c"])])
    batch = {"input_ids": torch.randint(5, 200, (4, 9)), "attention_mask": torch.ones(4, 9, dtype=torch.long),
             "labels": torch.tensor([0, 1, 2, 0])}
    backend_.forward("xnli", batch).loss.backward()
    assert 0 < backend_.trainable_count() < backend_.base_parameters
    assert all(p.grad is not None for p in backend_.trainable_parameters().values())
    frozen = [p for n, p in backend_.model.named_parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for p in frozen)
    backend_.model.eval()  # segment ids reach the encoder: the second segment changes the logits
    with torch.no_grad():
        plain = backend_.forward("xnli", {k: batch[k] for k in ("input_ids", "attention_mask")}).logits
        second = backend_.forward("xnli", {**batch, "token_type_ids": (torch.arange(9) > 4).long().expand(4, 9)})
    assert not torch.allclose(plain, second.logits)


def test_xlm_r_xl_is_refused_by_adapters_and_takes_peft_lora(tmp_path, tiny_model_dir):
    from transformers import XLMRobertaXLConfig

    small = json.loads((tiny_model_dir / "config.json").read_text())
    config = XLMRobertaXLConfig(vocab_size=small["vocab_size"], hidden_size=16, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=32)
    model = _tiny_base(tmp_path / "xl", config, tiny_model_dir)
    loaded = basemodel.load_config(model)
    with pytest.raises(UserError, match="adapters library has no xlm-roberta-xl models"):
        basemodel.check_backend(loaded, "adapters")
    basemodel.check_backend(loaded, "peft")
    lora = modules.build(model, "xnli", MethodConfig(method="lora", backend="peft"),
                         [HeadSpec("xnli", "classification", ["a", "b", "c"])])
    names = [n for n, _ in lora.trainable_parameters().items()]
    assert any("lora_A" in n and "attention.self.query" in n for n in names)
    assert any("lora_A" in n and "attention.self.value" in n for n in names)
