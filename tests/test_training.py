"""Training on the tiny pre-trained encoder: learning in every format, a frozen base, loadable output."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from adapterxfer import modules
from adapterxfer.evaluation import predict
from adapterxfer.features import collate
from adapterxfer.fileio import sha256_file
from adapterxfer.training import TrainConfig, train

FAST = {"batch_size": 16, "lr": 2e-3, "max_length": 128, "doc_stride": 32, "seed": 0, "log_steps": 5}


def run(tmp_path, tiny_model_dir, synthetic_data, task, name=None, **settings):
    cfg = TrainConfig.load(None, task=task, model=str(tiny_model_dir), data_dir=str(synthetic_data / task),
                           output=str(tmp_path / (name or task)), cache_dir=str(tmp_path / "cache"),
                           **{**FAST, **settings})
    out = train(cfg, progress=False, log=lambda *_: None)
    card = json.loads((out / "adapterxfer.json").read_text())
    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    return out, card, log


def losses(log):
    return [e["loss"] for e in log if "loss" in e]


def base_state(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.parametrize("task, chance, epochs", [
    ("mnli", 100 / 3, 4), ("hellaswag", 25.0, 4), ("ccg", None, 3), ("squad_v1", None, 4)])
def test_each_format_learns_with_a_frozen_base(tmp_path, tiny_model_dir, synthetic_data, task, chance, epochs):
    out, card, log = run(tmp_path, tiny_model_dir, synthetic_data, task, epochs=epochs)
    curve = losses(log)
    assert sum(curve[-3:]) / 3 < 0.8 * sum(curve[:3]) / 3, curve  # loss falls
    dev = card["dev_metrics"][task]
    if task == "ccg":  # chance: the most frequent tag's share of dev tokens
        from adapterxfer.data import load_examples
        from adapterxfer.tasks import get_task
        tags = [t for e in load_examples(get_task("ccg"), "dev", synthetic_data / "ccg") for t in e["tags"]]
        chance = 100 * max(tags.count(t) for t in set(tags)) / len(tags)
    if task == "squad_v1":
        assert dev["f1"] > 40, dev  # a span picked at random from ~30-word contexts scores far lower
    else:
        assert dev["accuracy"] > chance + 15, (dev, chance)


def test_base_frozen_module_small_and_reloads_in_plain_adapters(tmp_path, tiny_model_dir, synthetic_data):
    from adapters import AutoAdapterModel

    out, card, _ = run(tmp_path, tiny_model_dir, synthetic_data, "mnli", epochs=1)
    assert card["base_model"]["model_type"] == "xlm-roberta"
    assert card["trainable_parameters"] < card["base_parameters"]
    for name, digest in card["files"].items():
        assert sha256_file(out / name) == digest
    assert any(n.endswith(".safetensors") for n in card["files"]) and not any(n.endswith(".bin") for n in card["files"])

    plain = AutoAdapterModel.from_pretrained(str(tiny_model_dir))
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    name = plain.load_adapter(str(out), use_safetensors=True, set_active=True)
    plain.eval()
    # our own freshly built backend with the trained weights gives the same logits
    ours = modules.build(str(tiny_model_dir), "mnli", modules.MethodConfig(),
                         [modules.HeadSpec("mnli", "classification", ["e", "n", "c"])])
    state = {**load_file(str(out / "adapter.safetensors")), **load_file(str(out / "model_head.safetensors"))}
    missing = ours.model.load_state_dict(state, strict=False)
    assert not missing.unexpected_keys
    feats = [{"input_ids": [0, 5, 6, 7, 2, 2, 8, 9, 2]}, {"input_ids": [0, 10, 2, 2, 11, 12, 2]}]
    batch = collate(feats, pad_id=1)
    with torch.no_grad():
        a = plain(**batch, head=name).logits
    b = torch.stack(predict(ours, "mnli", feats))
    assert torch.allclose(a, b, atol=1e-5)
    # the base weights were not touched by training (the module folder holds no base weights either)
    for k, v in base_state(tiny_model_dir).items():
        assert torch.equal(before["roberta." + k] if "roberta." + k in before else before[k], v)


def test_training_never_changes_base_weights(tmp_path, tiny_model_dir, synthetic_data, monkeypatch):
    captured = {}
    real_build = modules.build

    def spy(*args, **kw):
        backend = real_build(*args, **kw)
        captured["backend"] = backend
        captured["before"] = {n: p.detach().clone() for n, p in backend.model.named_parameters()
                              if not p.requires_grad}
        return backend

    monkeypatch.setattr(modules, "build", spy)
    run(tmp_path, tiny_model_dir, synthetic_data, "mnli", epochs=1)
    after = dict(captured["backend"].model.named_parameters())
    assert captured["before"] and all(torch.equal(v, after[n]) for n, v in captured["before"].items())
    trainable = [n for n, p in after.items() if p.requires_grad]
    assert trainable and all("adapters" in n or n.startswith("heads.") for n in trainable), trainable


def test_peft_lora_reloads_in_plain_peft(tmp_path, tiny_model_dir, synthetic_data):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    out, card, log = run(tmp_path, tiny_model_dir, synthetic_data, "mnli", method="lora", backend="peft",
                         epochs=2, lr=5e-3)
    assert card["method"] == {"method": "lora", "backend": "peft", "lora_r": 8, "lora_alpha": 16,
                              "lora_dropout": 0.0, "lora_targets": ["query", "value"]}
    assert (out / "adapter_model.safetensors").is_file()
    base = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=3)
    model = PeftModel.from_pretrained(base, str(out)).eval()
    again = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=3), str(out)).eval()
    batch = collate([{"input_ids": [0, 5, 6, 2, 2, 7, 2]}], pad_id=1)
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, again(**batch).logits)
    assert card["dev_metrics"]["mnli"]["accuracy"] > 100 / 3 + 10


@pytest.mark.parametrize("method", ["double_seq_bn", "lora"])
def test_other_adapters_methods_train(tmp_path, tiny_model_dir, synthetic_data, method):
    out, card, log = run(tmp_path, tiny_model_dir, synthetic_data, "mnli", method=method, max_steps=20)
    assert card["method"]["method"] == method and card["best_step"] > 0
    assert (out / "adapter_config.json").is_file()


def test_multi_task_one_module_one_head_per_task(tmp_path, tiny_model_dir, synthetic_data, monkeypatch):
    import adapterxfer.tasks as tasks

    # three members of different formats stand in for all nine (same code path, a third of the time)
    spec = tasks.TaskSpec(name="multi", format="multi", metric="average", sources=(),
                          members=("mnli", "hellaswag", "ccg"))
    monkeypatch.setitem(tasks.TASKS, "multi", spec)
    cfg = TrainConfig.load(None, task="multi", model=str(tiny_model_dir), data_dir=str(synthetic_data),
                           output=str(tmp_path / "multi"), cache_dir=str(tmp_path / "cache"),
                           multi_sampling="temperature", max_steps=30, **FAST)
    out = train(cfg, progress=False, log=lambda *_: None)
    card = json.loads((out / "adapterxfer.json").read_text())
    assert set(card["heads"]) == {"mnli", "hellaswag", "ccg"} == set(card["dev_metrics"])
    for head in card["heads"]:
        assert (out / "heads" / head / "head_config.json").is_file()
    from adapterxfer import modules
    reloaded = modules.load_trained(out)  # every task's head comes back with its trained weights
    assert set(reloaded.model.heads) == set(card["heads"])
    saved = load_file(str(out / "heads" / "mnli" / "model_head.safetensors"))
    params = dict(reloaded.model.heads["mnli"].named_parameters())
    assert saved and all(torch.equal(params[k.split("heads.mnli.")[-1]], v) for k, v in saved.items())


def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, tiny_model_dir, synthetic_data):
    common = ["--model", str(tiny_model_dir), "--data-dir", str(synthetic_data / "mnli"), "--batch-size", "8",
              "--max-steps", "240", "--save-steps", "20", "--eval-steps", "80", "--lr", "2e-3",
              "--max-length", "128", "--seed", "3", "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    cli = [sys.executable, "-m", "adapterxfer.cli", "train-intermediate", "mnli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(cli + common + ["--output", str(tmp_path / "straight")], check=True, env=env,
                   capture_output=True)

    proc = subprocess.Popen(cli + common + ["--output", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "killed.partial" / "checkpoints"
    deadline = time.time() + 120
    while not any(checkpoints.glob("step-*")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed").exists(), "killed before the end: no module may look finished"

    result = subprocess.run(cli + common + ["--output", str(tmp_path / "killed"), "--resume"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout
    a = load_file(str(tmp_path / "straight" / "adapter.safetensors"))
    b = load_file(str(tmp_path / "killed" / "adapter.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    card_a = json.loads((tmp_path / "straight" / "adapterxfer.json").read_text())
    card_b = json.loads((tmp_path / "killed" / "adapterxfer.json").read_text())
    assert card_a["dev_metrics"] == card_b["dev_metrics"] and card_a["best_step"] == card_b["best_step"]


def test_train_size_subsamples_and_is_recorded(tmp_path, tiny_model_dir, synthetic_data):
    lines = []
    cfg = TrainConfig.load(None, task="mnli", model=str(tiny_model_dir), data_dir=str(synthetic_data / "mnli"),
                           output=str(tmp_path / "small"), cache_dir=str(tmp_path / "cache"), train_size=48,
                           max_steps=3, **FAST)
    out = train(cfg, progress=False, log=lines.append)
    card = json.loads((out / "adapterxfer.json").read_text())
    assert card["hyperparameters"]["train_size"] == 48
    assert any(line.startswith("mnli: 48 train examples") for line in lines)
    lines.clear()
    train(TrainConfig.load(None, **{**cfg.__dict__, "train_size": 10 ** 6, "output": str(tmp_path / "all")}),
          progress=False, log=lines.append)
    assert any(line.startswith("--train-size 1000000 is more than the") and line.endswith("all of them train")
               for line in lines)


def test_weight_decay_spares_biases_and_layer_norms_as_hf_trainer_does(tiny_model_dir):
    """One AdamW step with zero gradients only decays: every weight shrinks by lr x weight_decay, except biases
    and layer-norm weights (full fine-tuning: every kind of parameter trains)."""
    from adapterxfer.training import decay_groups

    backend = modules.build(str(tiny_model_dir), "mnli", modules.MethodConfig(method="full"),
                            [modules.HeadSpec("mnli", "classification", ["e", "n", "c"])])
    params = backend.trainable_parameters()
    before = {n: p.detach().clone() for n, p in params.items()}
    optimizer = torch.optim.AdamW(decay_groups(backend.model, params, 0.5), lr=0.2)
    for p in params.values():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    exempt = {n for n, p in params.items() if torch.equal(p, before[n])}
    assert exempt == {n for n in params if n.endswith("bias") or "LayerNorm" in n}
    assert any("LayerNorm.weight" in n for n in exempt) and any("head" in n for n in set(params) - exempt)
    assert all(torch.allclose(p, before[n] * 0.9) for n, p in params.items() if n not in exempt)


@pytest.mark.parametrize("fmt", ["tagging", "span_qa"])
def test_packed_prediction_batches_give_the_same_outputs_in_fewer_forwards(tiny_model_dir, fmt):
    backend = modules.build(str(tiny_model_dir), "t", modules.MethodConfig(),
                            [modules.HeadSpec("t", fmt, ["a", "b", "c"] if fmt == "tagging" else [])])
    rng = random.Random(0)
    feats = [{"input_ids": [0] + [rng.randrange(5, 60) for _ in range(n)] + [2]}
             for n in [30, 3, 17, 4, 5, 9, 3, 6, 2, 8, 12, 4]]
    calls = []
    real = backend.forward
    backend.forward = lambda head, batch: calls.append(batch["input_ids"].shape) or real(head, batch)
    plain = predict(backend, "t", feats, batch_size=2, pack=False)
    packed = predict(backend, "t", feats, batch_size=2, pack=True)
    assert len(calls) == 6 + 3  # 6 batches of 2 rows, then 3 (2, 4 and 6 rows) of up to 2 x 32 padded tokens
    assert all(rows * width <= 2 * 32 for rows, width in calls[6:])
    for a, b in zip(plain, packed):
        for x, y in zip(a if fmt == "span_qa" else [a], b if fmt == "span_qa" else [b]):
            assert x.shape == y.shape and torch.allclose(x, y, atol=1e-5)


def test_resume_mid_log_interval_logs_the_mean_loss_of_its_steps(tmp_path, tiny_model_dir, synthetic_data,
                                                                 monkeypatch, one_thread):
    import adapterxfer.training as training

    settings = {"max_steps": 6, "save_steps": 3, "log_steps": 2, "eval_steps": 0, "train_size": 64}
    # log_steps changes nothing that is learnt: the straight run logs every step's loss
    straight, _, log_a = run(tmp_path, tiny_model_dir, synthetic_data, "mnli", "straight",
                             **{**settings, "log_steps": 1})
    real = training.save_checkpoint

    def interrupt(*args, **kw):
        real(*args, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, tiny_model_dir, synthetic_data, "mnli", "resumed", **settings)
    monkeypatch.setattr(training, "save_checkpoint", real)
    cfg = TrainConfig.load(None, task="mnli", model=str(tiny_model_dir), data_dir=str(synthetic_data / "mnli"),
                           output=str(tmp_path / "resumed"), cache_dir=str(tmp_path / "cache"), **{**FAST, **settings})
    resumed = train(cfg, resume=True, progress=False, log=lambda *_: None)
    log_b = [json.loads(l) for l in (resumed / "train_log.jsonl").read_text().splitlines()]
    a, b = load_file(str(straight / "adapter.safetensors")), load_file(str(resumed / "adapter.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical on the CPU
    each = losses(log_a)
    assert [e["step"] for e in log_b if "loss" in e] == [2, 4, 6]
    # resumed from step 3, step 4's entry is step 4's loss alone (it was halved); step 6's the mean of 5 and 6
    assert losses(log_b) == pytest.approx([(each[0] + each[1]) / 2, each[3], (each[4] + each[5]) / 2], rel=1e-5)
