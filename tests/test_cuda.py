"""The GPU paths: bf16 by default, fp16 through the loss scaler, inductor, pinned copies, retrieval on the GPU.

Skipped without CUDA (CI has none); on a GPU machine run `pytest tests/test_cuda.py` (`benchmarks/gpu.sh` runs
those that the first GPU run did not reach).
"""
import json

import pytest
import torch
from safetensors.torch import load_file

from adapterxfer import modules
from adapterxfer.features import collate
from adapterxfer.retrieval import mine_candidates
from adapterxfer.training import TrainConfig, to_device, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

LEARN = {"batch_size": 16, "lr": 2e-3, "max_length": 128, "seed": 0, "log_steps": 5, "epochs": 4}


def run(tmp_path, tiny_model_dir, synthetic_data, name, **settings):
    cfg = TrainConfig.load(None, task="mnli", model=str(tiny_model_dir), data_dir=str(synthetic_data / "mnli"),
                           output=str(tmp_path / name), cache_dir=str(tmp_path / "cache"), **{**LEARN, **settings})
    out = train(cfg, progress=False, log=lambda *_: None)
    return out, json.loads((out / "adapterxfer.json").read_text())


def spy_build(monkeypatch) -> dict:
    seen = {}
    real = modules.build

    def build(*args, **kw):
        seen["backend"] = real(*args, **kw)
        return seen["backend"]

    monkeypatch.setattr(modules, "build", build)
    return seen


@pytest.mark.skipif(torch.cuda.is_available() and not torch.cuda.is_bf16_supported(), reason="no bf16 on this GPU")
def test_default_on_a_bf16_gpu_is_bf16_autocast_over_a_bf16_base_and_it_learns(tmp_path, tiny_model_dir,
                                                                                synthetic_data, monkeypatch):
    seen = spy_build(monkeypatch)
    out, card = run(tmp_path, tiny_model_dir, synthetic_data, "auto")
    assert (card["hyperparameters"]["mixed_precision"], card["hyperparameters"]["base_dtype"]) == ("bf16", "bf16")
    model = seen["backend"].model
    assert next(model.parameters()).device.type == "cuda"
    assert all(p.dtype == (torch.float32 if p.requires_grad else torch.bfloat16) for p in model.parameters())
    assert card["dev_metrics"]["mnli"]["accuracy"] > 100 / 3 + 15
    assert all(v.dtype == torch.float32 for v in load_file(str(out / "adapter.safetensors")).values())


def test_fp16_steps_through_the_loss_scaler_and_learns(tmp_path, tiny_model_dir, synthetic_data, monkeypatch):
    steps = []
    real_step = torch.amp.GradScaler.step

    def step(self, optimizer, *args, **kw):
        steps.append(self.get_scale())
        return real_step(self, optimizer, *args, **kw)

    monkeypatch.setattr(torch.amp.GradScaler, "step", step)
    out, card = run(tmp_path, tiny_model_dir, synthetic_data, "fp16", mixed_precision="fp16", base_dtype="fp32")
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps and len(steps) == max(e["step"] for e in log)  # every optimizer step, through the scaler
    assert steps[0] > 1  # the loss was scaled, so unscaled gradients can only come from the scaler
    assert card["dev_metrics"]["mnli"]["accuracy"] > 100 / 3 + 15
    saved = load_file(str(out / "adapter.safetensors"))
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in saved.values())


@pytest.mark.parametrize("backend, method", [("adapters", "seq_bn"), ("peft", "lora")])
def test_inductor_trains_the_same_module(tmp_path, tiny_model_dir, synthetic_data, backend, method):
    from torch._inductor import config as inductor
    short = {"max_steps": 6, "mixed_precision": "no", "base_dtype": "fp32", "backend": backend, "method": method}
    eager, card = run(tmp_path, tiny_model_dir, synthetic_data, "eager", **short)
    with inductor.patch(fallback_random=True):  # eager's dropout masks, so that the weights can be compared
        fast, fast_card = run(tmp_path, tiny_model_dir, synthetic_data, "compiled", compile=True, **short)
    weights = "adapter.safetensors" if backend == "adapters" else "adapter_model.safetensors"
    a, b = load_file(str(eager / weights)), load_file(str(fast / weights))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    assert abs(card["dev_metrics"]["mnli"]["accuracy"] - fast_card["dev_metrics"]["mnli"]["accuracy"]) <= 1.0


def test_batches_reach_the_gpu_from_pinned_memory_unchanged():
    batch = collate([{"input_ids": [0, 5, 6, 2], "labels": 1}, {"input_ids": [0, 7, 2], "labels": 0}], 1)
    moved = to_device(batch, torch.device("cuda"))
    torch.cuda.synchronize()
    assert moved.keys() == batch.keys()
    assert all(moved[k].device.type == "cuda" and torch.equal(moved[k].cpu(), batch[k]) for k in batch)


def test_margin_mining_on_the_gpu_finds_the_cpus_pairs():
    g = torch.Generator().manual_seed(0)
    src = torch.randn(3000, 64, generator=g)
    tgt = torch.cat([src[:2000] + 0.3 * torch.randn(2000, 64, generator=g), torch.randn(1000, 64, generator=g)])
    cpu = mine_candidates(src, tgt, chunk_size=512)
    gpu = mine_candidates(src.cuda(), tgt.cuda(), chunk_size=512)
    assert sum(1 for i, j in cpu if i == j) >= 1990  # the noisy translations are found
    assert cpu.keys() == gpu.keys()
    assert all(gpu[p] == pytest.approx(cpu[p], abs=1e-4) for p in cpu)
