"""Speed and memory options: gradient checkpointing, a bf16 frozen base, torch.compile, pinned copies."""
import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from adapterxfer import modules
from adapterxfer.cli import main
from adapterxfer.errors import UserError
from adapterxfer.features import collate
from adapterxfer.training import TrainConfig, train

FAST = {"batch_size": 16, "lr": 2e-3, "max_length": 128, "seed": 0, "log_steps": 5, "max_steps": 6}
ROWS = [[0] + list(range(5, 5 + n)) + [2] for n in (10, 17, 30, 8)]


def loss_and_grads(model_dir, method, checkpointing):
    torch.manual_seed(0)
    backend = modules.build(str(model_dir), "mnli", method, [modules.HeadSpec("mnli", "classification", ["e", "n", "c"])])
    if checkpointing:
        backend.gradient_checkpointing()
    backend.model.train()  # dropout on: the recomputation replays the same masks
    calls = []
    adapter_layer = next(m for n, m in backend.model.named_modules()
                         if n.endswith(("adapters.mnli", "lora_A.default", "loras.mnli")))
    adapter_layer.register_forward_hook(lambda *_: calls.append(1))
    loss = backend.forward("mnli", collate([{"input_ids": r, "labels": i % 3} for i, r in enumerate(ROWS)], 1)).loss
    loss.backward()
    return loss, {n: p.grad for n, p in backend.trainable_parameters().items()}, len(calls)


@pytest.mark.parametrize("method", [modules.MethodConfig("seq_bn", "adapters"), modules.MethodConfig("lora", "peft"),
                                    modules.MethodConfig("lora", "adapters")], ids=lambda m: f"{m.method}-{m.backend}")
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tiny_model_dir, method):
    loss, grads, calls = loss_and_grads(tiny_model_dir, method, False)
    loss_ckpt, grads_ckpt, calls_ckpt = loss_and_grads(tiny_model_dir, method, True)
    assert calls == 1 and calls_ckpt == 2  # the module runs inside the checkpointed layer: again in backward
    assert torch.allclose(loss, loss_ckpt)
    assert grads.keys() == grads_ckpt.keys() and len(grads) > 2
    # gradients reach the module in the first layer, behind the frozen embeddings (LoRA's A: zero while B is)
    assert any(".layer.0." in n and grads[n].abs().sum() > 0 for n in grads), list(grads)
    assert all(torch.allclose(grads[n], grads_ckpt[n], atol=1e-6) for n in grads)


def run(tmp_path, tiny_model_dir, synthetic_data, name, **settings):
    cfg = TrainConfig.load(None, task="mnli", model=str(tiny_model_dir), data_dir=str(synthetic_data / "mnli"),
                           output=str(tmp_path / name), cache_dir=str(tmp_path / "cache"), **{**FAST, **settings})
    return train(cfg, progress=False, log=lambda *_: None)


def test_bf16_base_trains_fp32_modules_that_reload_in_plain_adapters(tmp_path, tiny_model_dir, synthetic_data,
                                                                      monkeypatch):
    from adapters import AutoAdapterModel

    seen = {}
    real_build, real_adamw = modules.build, torch.optim.AdamW

    def build(*args, **kw):
        seen["backend"] = real_build(*args, **kw)
        return seen["backend"]

    def adamw(params, **kw):
        seen["optimizer"] = real_adamw(params, **kw)
        return seen["optimizer"]

    monkeypatch.setattr(modules, "build", build)
    monkeypatch.setattr(torch.optim, "AdamW", adamw)
    run(tmp_path, tiny_model_dir, synthetic_data, "fp32", mixed_precision="no")  # one process, two precisions
    out = run(tmp_path, tiny_model_dir, synthetic_data, "bf16", base_dtype="bf16", mixed_precision="bf16")
    model = seen["backend"].model
    frozen = [p for p in model.parameters() if not p.requires_grad]
    trainable = {id(p): p for p in model.parameters() if p.requires_grad}
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)
    assert trainable and all(p.dtype == torch.float32 for p in trainable.values())
    optimized = [p for g in seen["optimizer"].param_groups for p in g["params"]]
    assert {id(p) for p in optimized} == set(trainable)  # optimizer state only for the module and head
    assert all(t.dtype == torch.float32 for s in seen["optimizer"].state.values() for t in s.values() if t.dim())
    card = json.loads((out / "adapterxfer.json").read_text())
    assert card["hyperparameters"]["base_dtype"] == "bf16" and card["dev_metrics"]["mnli"]["accuracy"] > 0

    saved = load_file(str(out / "adapter.safetensors"))
    assert saved and all(v.dtype == torch.float32 for v in saved.values())
    plain = AutoAdapterModel.from_pretrained(str(tiny_model_dir))
    name = plain.load_adapter(str(out), use_safetensors=True, set_active=True)
    ours = dict(model.named_parameters())
    loaded = dict(plain.named_parameters())
    for key in saved:
        param = next(n for n in loaded if n.endswith(key.split("adapters.", 1)[-1]) and "adapters." in n)
        assert torch.equal(loaded[param], ours[param])
    plain.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # the head under autocast, as in training
        logits = plain(**collate([{"input_ids": r} for r in ROWS], 1), head=name).logits
    assert logits.shape == (len(ROWS), 3) and torch.isfinite(logits).all()


def test_base_dtype_needs_bf16_autocast_and_a_frozen_base():
    with pytest.raises(UserError, match="needs bf16 autocast"):
        TrainConfig(task="mnli", output="o", base_dtype="bf16", mixed_precision="no").precision()
    with pytest.raises(UserError, match="--method full trains every weight"):
        TrainConfig.load(None, task="mnli", output="o", method="full", base_dtype="bf16")
    cfg = TrainConfig(task="mnli", output="o", mixed_precision="bf16")
    assert cfg.precision() == ("bf16", "bf16" if torch.cuda.is_available() else "fp32")  # auto: bf16 on a GPU only
    assert TrainConfig(task="mnli", output="o").precision() == (("bf16", "bf16") if torch.cuda.is_available()
                                                                 and torch.cuda.is_bf16_supported() else ("no", "fp32"))


def test_flags_reach_the_run_and_errors_are_one_line(tmp_path, tiny_model_dir, synthetic_data):
    common = ["train-intermediate", "mnli", "--model", str(tiny_model_dir), "--data-dir", str(synthetic_data / "mnli"),
              "--max-steps", "2", "--max-length", "64", "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    if not torch.cuda.is_available():
        result = CliRunner().invoke(main, common + ["--output", str(tmp_path / "a"), "--base-dtype", "bf16"])
        assert result.exit_code == 2 and "needs bf16 autocast" in result.stderr
        assert not (tmp_path / "a.partial").exists()  # refused before anything was written
    result = CliRunner().invoke(main, common + ["--output", str(tmp_path / "b"), "--gradient-checkpointing",
                                                "--base-dtype", "fp32"])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "b" / "adapterxfer.json").read_text())
    assert card["hyperparameters"]["gradient_checkpointing"] is True
    assert card["hyperparameters"]["compile"] is False
    gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert card["hyperparameters"]["mixed_precision"] == ("bf16" if gpu_bf16 else "no")  # "auto" as it ran


def test_compile_trains_the_same_module(tmp_path, tiny_model_dir, synthetic_data, monkeypatch, backend="adapters",
                                        method="seq_bn"):
    plain = run(tmp_path, tiny_model_dir, synthetic_data, "plain", backend=backend, method=method)
    real_compile = torch.nn.Module.compile
    compiled = []

    def compile_eager(self, *args, **kw):  # dynamo captures the graphs; no C++ code generation in a unit test
        compiled.append(self)
        return real_compile(self, *args, backend="eager", **kw)

    monkeypatch.setattr(torch.nn.Module, "compile", compile_eager)
    fast = run(tmp_path, tiny_model_dir, synthetic_data, "fast", backend=backend, method=method, compile=True)
    assert len(compiled) == 1 and compiled[0]._compiled_call_impl is not None
    weights = "adapter.safetensors" if backend == "adapters" else "adapter_model.safetensors"
    a, b = load_file(str(plain / weights)), load_file(str(fast / weights))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert json.loads((plain / "adapterxfer.json").read_text())["dev_metrics"] == \
        json.loads((fast / "adapterxfer.json").read_text())["dev_metrics"]
    with pytest.raises(UserError, match="--compile and --gradient-checkpointing cannot be combined"):
        TrainConfig.load(None, task="mnli", output="o", backend=backend, compile=True, gradient_checkpointing=True)


def load_benchmark(name):
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def test_grid_cost_projection_is_the_dry_runs(tmp_path, monkeypatch, tiny_model_dir):
    import re
    from pathlib import Path

    from adapterxfer.grid import FULL_FT_TIME, _size

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    grid_cost = load_benchmark("grid_cost")
    shipped = Path(__file__).resolve().parents[1] / "recipes" / "xstilts.yaml"
    recipe = tmp_path / "xstilts.yaml"
    text, n = re.subn(r"tokens_per_second: \d+", "tokens_per_second: 12345", shipped.read_text())
    assert n == 1
    recipe.write_text(text)
    out = tmp_path / "run"
    dry = CliRunner().invoke(main, ["grid", "run", str(recipe), "--out", str(out), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    hours = float(re.search(r"GPU-hours of ([\d.]+) in all", dry.output).group(1))
    full_hours, full_disk = re.search(r"same grid: about ([\d.]+) GPU-hours and (.+) of checkpoints",
                                      dry.output).groups()
    disk = re.search(r"disk: about (.+) for the finished grid", dry.output).group(1)

    # a measured full fine-tuning speed of 1 / FULL_FT_TIME the module's is the dry run's assumption
    cost = grid_cost.projection(str(recipe), "xlm-roberta-large", 12345, 12345 / FULL_FT_TIME, str(out))
    assert cost["cells"] == 554
    assert (f"{cost['module_hours']:.2f}", _size(cost["module_disk"])) == (f"{hours:.2f}", disk)
    assert (f"{cost['full_hours']:.2f}", _size(cost["full_disk"])) == (full_hours, full_disk)
    # training hours scale with 1 / speed; evaluation hours (cost.eval_minutes) stay
    twice = grid_cost.projection(str(recipe), "xlm-roberta-large", 2 * 12345, 12345 / 3, str(out))
    training = 2 * (cost["module_hours"] - twice["module_hours"])
    assert training > 0 and twice["full_hours"] - cost["module_hours"] == pytest.approx(2 * training)
    # speeds measured on another shape scale training only: cost.eval_minutes is the recipe's own model's
    evals = [grid_cost.projection(str(recipe), shape, 1e15, 1e15, str(out))["module_hours"]
             for shape in ("xlm-roberta-large", str(tiny_model_dir))]
    assert evals[0] == pytest.approx(evals[1], rel=1e-6) and evals[0] > 0


@pytest.mark.filterwarnings("ignore:CUDA is not available")
@pytest.mark.parametrize("bf16, dtype", [(True, torch.bfloat16), (False, torch.float16)])
def test_evaluation_autocast_is_bf16_or_fp16_on_a_gpu_by_what_it_has(monkeypatch, bf16, dtype):
    from contextlib import nullcontext

    from adapterxfer.evaluation import inference_autocast

    assert inference_autocast("cpu") is nullcontext
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    context = inference_autocast("cuda")()
    assert isinstance(context, torch.autocast) and context.fast_dtype == dtype


def test_model_flops_and_gpu_peaks_for_mfu(monkeypatch):
    common = load_benchmark("common")
    # tiny: hidden 64, 4 layers, FFN 128; per layer 4*64*64 + 2*64*128 = 32,768 matrix weights; attention
    # 4 * seq * hidden = 2,048 per token and layer at seq 8; 2 x 8 tokens
    matrix, attention = 4 * 32768, 4 * 2048
    assert common.step_flops("tiny", 2, 8, 10, frozen_base=False) == 16 * (6 * matrix + 3 * attention)
    assert common.step_flops("tiny", 2, 8, 10, frozen_base=True) == 16 * (4 * matrix + 3 * attention + 6 * 10)
    assert common.peak_tflops("cpu") is None and common.peak_tflops("cpu", 2.0) == 2.0
    for name, peak in [("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H200", 989.4),
                       ("NVIDIA A100-SXM4-80GB", 312.0), ("Tesla V100-SXM2-16GB", None)]:
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, name=name: name)
        assert common.peak_tflops("cuda") == peak, name
