"""Data-parallel training under accelerate's launcher, on 2 CPU processes (gloo): the same module as one
process with twice the gradient accumulation, one writer, a resumable run."""
import json
import os
import shutil
import subprocess
import time

import psutil
import pytest
import torch
from safetensors.torch import load_file

from adapterxfer import distributed
from adapterxfer.errors import UserError
from adapterxfer.training import TrainConfig, train

LAUNCH = distributed.launch_command(2) + ["-m", "adapterxfer.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def no_dropout_model(tiny_model_dir, tmp_path_factory):
    """The tiny model with dropout off: runs that see the same batches then compute the same steps."""
    path = tmp_path_factory.mktemp("nodrop") / "model"
    shutil.copytree(tiny_model_dir, path)
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return path


def weights(folder):
    return {f"{p.name}/{k}": v for p in sorted(folder.glob("**/*.safetensors")) for k, v in load_file(str(p)).items()}


def test_two_processes_train_the_module_of_one_process_with_twice_the_accumulation(
        tmp_path, no_dropout_model, synthetic_data):
    settings = {"model": str(no_dropout_model), "data_dir": str(synthetic_data / "mnli"), "batch_size": 8,
                "max_steps": 24, "save_steps": 6, "eval_steps": 24, "lr": 2e-3, "max_length": 128, "seed": 3,
                "log_steps": 6, "cache_dir": str(tmp_path / "cache")}
    one = train(TrainConfig.load(None, task="mnli", output=str(tmp_path / "one"), grad_accum=2, **settings),
                progress=False, log=lambda *_: None)

    flags = [a for k, v in settings.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    cmd = LAUNCH + ["train-intermediate", "mnli", "--grad-accum", "1", "--output", str(tmp_path / "two"), "--quiet",
                    *flags]
    # killed (the launcher and both processes, which it starts in sessions of their own) once a checkpoint
    # is written, then resumed
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not any((tmp_path / "two.partial" / "checkpoints").glob("step-*")) and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.01)
    for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
        p.kill()
    proc.wait()
    assert not (tmp_path / "two").exists(), "killed before the end: no module may look finished"
    resumed = subprocess.run(cmd + ["--resume"], env=ENV, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("resuming") == 1 and resumed.stdout.count("saved ") == 1  # the main process

    two = tmp_path / "two"
    a, b = weights(one), weights(two)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a), \
        max((a[k] - b[k]).abs().max().item() for k in a)
    card_one = json.loads((one / "adapterxfer.json").read_text())
    card_two = json.loads((two / "adapterxfer.json").read_text())
    assert card_one["hyperparameters"]["world_size"] == 1 and card_two["hyperparameters"]["world_size"] == 2
    assert card_two["best_step"] == card_one["best_step"] == 24
    assert card_two["dev_metrics"] == card_one["dev_metrics"]
    # one writer: one finished folder, each step logged once, no temporary folders left
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["one", "two"]
    steps = [json.loads(line)["step"] for line in (two / "train_log.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == list(range(6, 25, 6))


def test_resume_with_another_number_of_processes_is_refused(tmp_path, no_dropout_model, synthetic_data):
    partial = tmp_path / "m.partial"
    partial.mkdir()
    cfg = TrainConfig.load(None, task="mnli", model=str(no_dropout_model), data_dir=str(synthetic_data / "mnli"),
                           output=str(tmp_path / "m"), max_steps=2)
    from adapterxfer.training import prepare_output

    prepare_output(cfg, overwrite=False, resume=True, world_size=2)
    with pytest.raises(UserError, match="world_size"):
        train(cfg, resume=True, progress=False, log=lambda *_: None)


def test_bad_input_under_two_processes_is_one_error_line_and_every_process_exits_2(tmp_path, tiny_model_dir,
                                                                                   synthetic_data):
    """The two ranks started by hand (a launcher's agent may kill the second before it ends on its own)."""
    import socket
    import sys

    bad = tmp_path / "bad-mnli"
    shutil.copytree(synthetic_data / "mnli", bad)
    with open(bad / "train.jsonl", "a") as f:
        f.write('{"premise": "x", "hypothesis": "y", "label": 7}\n')
    (tmp_path / "taken").mkdir()
    for data, out, message in ((bad, tmp_path / "o", "label 7 is outside the label set"),  # the main reads first
                               (synthetic_data / "mnli", tmp_path / "taken", "already exists")):  # only it writes
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ranks = [subprocess.Popen([sys.executable, "-m", "adapterxfer.cli", "train-intermediate", "mnli", "--model",
                                   str(tiny_model_dir), "--data-dir", str(data), "--output", str(out), "--max-steps",
                                   "2", "--quiet", "--cache-dir", str(tmp_path / "cache")],
                                  env={**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
                                       "RANK": str(r), "LOCAL_RANK": str(r), "LOCAL_WORLD_SIZE": "2"},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
        (_, main_err), (_, other_err) = (p.communicate(timeout=300) for p in ranks)
        assert [p.returncode for p in ranks] == [2, 2], (main_err[-2000:], other_err[-2000:])
        assert main_err.strip().startswith("error: ") and message in main_err and len(main_err.splitlines()) == 1
        assert other_err.strip() == ""  # no traceback of a rank left waiting on a peer that is gone
        assert not (tmp_path / "o").exists() and not list((tmp_path / "taken").iterdir())
