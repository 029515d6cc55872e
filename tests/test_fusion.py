"""Light fusion (learned mixing weights) of bottleneck adapters and LoRA modules, dynamic fusion's size, and
full fine-tuning: what trains, what stays frozen, what the mixing computes, and reloading to the same logits."""
import pytest
import torch

from adapterxfer import modules
from adapterxfer.errors import UserError
from adapterxfer.modules.fusion import WEIGHTS_FILE, mixings
from adapterxfer.training import TrainConfig, train

QUICK = {"batch_size": 8, "max_length": 64, "seed": 0, "log_steps": 1}
KINDS = {"seq_bn": {"method": "seq_bn"}, "lora-peft": {"method": "lora", "backend": "peft"},
         "lora-adapters": {"method": "lora"}}
IDS = torch.tensor([[0, 5, 6, 7, 8, 9, 2], [0, 9, 8, 7, 2, 1, 1]])
BATCH = {"input_ids": IDS, "attention_mask": (IDS != 1).long()}
HEAD = modules.HeadSpec("mnli", "classification", ["entailment", "neutral", "contradiction"])


def run(tmp, model, data, task, out, **settings):
    cfg = TrainConfig.load(None, task=task, model=str(model), data_dir=str(data / task), output=str(tmp / out),
                           cache_dir=str(tmp / "cache"), **{**QUICK, **settings})
    return train(cfg, progress=False, log=lambda *_: None)


@pytest.fixture(scope="module")
def inter(tmp_path_factory, tiny_model_dir, synthetic_data):
    """Intermediate modules on mnli and qqp for each kind (a high lr, so their deltas differ clearly)."""
    root = tmp_path_factory.mktemp("fusion-inter")
    for kind, settings in KINDS.items():
        for task in ("mnli", "qqp"):
            run(root, tiny_model_dir, synthetic_data, task, f"{kind}-{task}", max_steps=2, lr=1e-2, **settings)
    return root


@pytest.fixture
def built(monkeypatch):
    """Every backend that ``modules.build`` makes, with a copy of its parameters as built."""
    real, seen = modules.build, []

    def spy(*args, **kwargs):
        backend = real(*args, **kwargs)
        seen.append((backend, {n: p.detach().clone() for n, p in backend.model.named_parameters()}))
        return backend

    monkeypatch.setattr(modules, "build", spy)
    return seen


def logits(backend):
    backend.model.eval()
    with torch.no_grad():
        return backend.forward("mnli", dict(BATCH)).logits


def inters(root, kind, tasks=("mnli", "qqp")):
    return [modules.read_module(root / f"{kind}-{t}") for t in tasks]


def method(kind):
    return modules.MethodConfig(**KINDS[kind])


@pytest.mark.parametrize("kind", list(KINDS))
def test_light_fusion_trains_mixing_target_and_head_and_reloads(tmp_path, tiny_model_dir, synthetic_data, inter,
                                                                built, kind):
    out = run(tmp_path, tiny_model_dir, synthetic_data, "mnli", "target", max_steps=3, lr=5e-3,
              fuse=",".join(str(m.path) for m in inters(inter, kind)), **KINDS[kind])
    backend, before = built[0]
    mix = mixings(backend.model)
    assert mix and all(torch.equal(before[f"{n}.logits"], torch.zeros(2)) for n in mix)  # uniform at the start
    assert all(not torch.allclose(m.probs(), torch.full((2,), 0.5)) for m in mix.values())  # ... and learnt

    trainable = set(backend.trainable_parameters())
    target = [n for n in trainable if "fusion" not in n]
    assert all(".mnli." in n or n.startswith("heads.mnli") or ".default." in n for n in target), target
    assert {n for n in trainable if "fusion" in n} == {f"{n}.logits" for n in mix}
    after = dict(backend.model.named_parameters())
    frozen = [n for n in before if n not in trainable]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)  # the base and the intermediates
    assert all(not torch.equal(before[n], after[n]) for n in trainable if "lora_A" not in n and ".bias" not in n)

    n_mix = sum(m.logits.numel() for m in mix.values())
    assert backend.fusion_parameters() == n_mix
    assert (out / WEIGHTS_FILE).is_file() and not (out / "fusion").exists()
    reloaded = modules.load_trained(out)
    assert torch.equal(logits(reloaded), logits(backend))


@pytest.mark.parametrize("kind", list(KINDS))
def test_mixing_weights_one_zero_compute_what_stacking_that_intermediate_does(tiny_model_dir, inter, kind):
    """Mixing weights (1, 0) compute exactly what stacking the first intermediate alone computes:
    bottleneck adapters: the target on top of adapter 1; LoRA: W + dW_1 + dW_target."""
    fused = modules.build(str(tiny_model_dir), "mnli", method(kind), [HEAD], inters(inter, kind), "fuse")
    stacked = [modules.build(str(tiny_model_dir), "mnli", method(kind), [HEAD], inters(inter, kind, (t,)), "stack")
               for t in ("mnli", "qqp")]
    target = {n: p for n, p in fused.trainable_parameters().items() if "fusion" not in n}
    for s in stacked:
        assert not s.model.load_state_dict(target, strict=False).unexpected_keys
    mix = mixings(fused.model).values()
    for first, reference in ((50.0, stacked[0]), (-50.0, stacked[1])):
        with torch.no_grad():
            for m in mix:
                m.logits.copy_(torch.tensor([first, -first]))
        assert torch.allclose(logits(fused), logits(reference), atol=1e-5)
    assert not torch.allclose(logits(stacked[0]), logits(stacked[1]), atol=1e-3)  # the two really differ


def test_lora_mixing_is_the_softmax_weighted_sum_of_the_deltas(tiny_model_dir, inter):
    """On one adapted matrix: W x + b + sum_i softmax(w)_i s_i B_i A_i x, the deltas read from the module files."""
    from safetensors.torch import load_file

    from adapterxfer.modules.peft_backend import task_model

    fused = modules.build(str(tiny_model_dir), "mnli", method("lora-peft"), [HEAD], inters(inter, "lora-peft"), "fuse")
    key = "roberta.encoder.layer.1.attention.self.value"
    layer = fused.model.base_model.model.get_submodule(key).base_layer
    with torch.no_grad():
        layer.fusion_mixing.logits.copy_(torch.tensor([0.3, -0.4]))
    probs = torch.tensor([0.3, -0.4]).softmax(-1)
    base = task_model(str(tiny_model_dir), HEAD).get_submodule(key)
    x = torch.randn(2, 5, base.in_features)
    expected = base(x)
    for p, m in zip(probs, inters(inter, "lora-peft")):
        w = load_file(str(m.path / "adapter_model.safetensors"))
        cfg = m.card["method"]
        delta = w[f"base_model.model.{key}.lora_B.weight"] @ w[f"base_model.model.{key}.lora_A.weight"]
        expected = expected + p * x @ (delta * cfg["lora_alpha"] / cfg["lora_r"]).T
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_light_fusion_is_tiny_next_to_dynamic_fusion(tiny_model_dir, inter):
    fuse = inters(inter, "seq_bn")
    light = modules.build(str(tiny_model_dir), "mnli", modules.MethodConfig(), [HEAD], fuse, "fuse")
    dynamic = modules.build(str(tiny_model_dir), "mnli", modules.MethodConfig(), [HEAD], fuse, "fuse", "dynamic")
    layers = light.model.config.num_hidden_layers
    hidden = light.model.config.hidden_size
    assert light.fusion_parameters() == layers * len(fuse)  # one weight per layer and intermediate (seq_bn)
    assert dynamic.fusion_parameters() == layers * (3 * hidden * hidden + 2 * hidden)  # query, key, value
    assert (light.trainable_count() - light.fusion_parameters()
            == dynamic.trainable_count() - dynamic.fusion_parameters())  # the same target adapter and head


def test_fusion_refuses_what_it_cannot_do(tiny_model_dir, inter):
    with pytest.raises(UserError, match="dynamic AdapterFusion needs bottleneck adapters"):
        modules.build(str(tiny_model_dir), "mnli", method("lora-peft"), [HEAD], inters(inter, "lora-peft"), "fuse",
                      "dynamic")
    mixed = [inters(inter, "seq_bn")[0], inters(inter, "lora-adapters")[0]]
    with pytest.raises(UserError, match="not a mix of both"):
        modules.build(str(tiny_model_dir), "mnli", modules.MethodConfig(), [HEAD], mixed, "fuse")
    with pytest.raises(UserError, match="fusion must be light or dynamic"):
        TrainConfig.load(None, task="xnli", output="x", fusion="static")
    for fuse in ("modules/a", "modules/a,", "modules/a,./modules/a"):
        with pytest.raises(UserError, match="give two or more different modules"):
            TrainConfig.load(None, task="xnli", output="x", fuse=fuse)


@pytest.mark.parametrize("backend", ["adapters", "peft"])
def test_full_fine_tuning_trains_every_weight_and_reloads(tmp_path, tiny_model_dir, synthetic_data, inter, built,
                                                          backend):
    out = run(tmp_path, tiny_model_dir, synthetic_data, "mnli", "full", max_steps=2, lr=1e-3, method="full",
              backend=backend)
    trained, before = built[0]
    params = dict(trained.model.named_parameters())
    assert trained.trainable_count() == sum(p.numel() for p in params.values())
    assert not torch.equal(before["roberta.encoder.layer.0.attention.self.query.weight"],
                           params["roberta.encoder.layer.0.attention.self.query.weight"])
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    reloaded = modules.load_trained(out)
    assert torch.equal(logits(reloaded), logits(trained))
    if backend == "adapters":  # a complete model folder for the library's own class
        from adapters import AutoAdapterModel
        plain = AutoAdapterModel.from_pretrained(str(out)).eval()
    else:
        from transformers import AutoModelForSequenceClassification
        plain = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    with torch.no_grad():
        assert torch.equal(plain(**BATCH).logits, logits(trained))

    with pytest.raises(UserError, match="nothing to --stack or --fuse"):
        modules.build(str(tiny_model_dir), "mnli", modules.MethodConfig("full", backend), [HEAD],
                      inters(inter, "seq_bn" if backend == "adapters" else "lora-peft", ("mnli",)))
    with pytest.raises(UserError, match="fully fine-tuned"):
        modules.build(str(tiny_model_dir), "mnli", modules.MethodConfig(), [HEAD], [modules.read_module(out)])
