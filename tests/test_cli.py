"""The command line: help with examples, one-line errors with exit status 2, nothing lost."""
import json

import pytest
import torch
from click.testing import CliRunner

from adapterxfer import training
from adapterxfer.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def error_line(result):
    assert result.exit_code == 2, result.output
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_help_has_examples():
    result = invoke("train-intermediate", "--help")
    assert result.exit_code == 0 and "Examples:" in result.output and "--resume" in result.output
    assert "mnli" in invoke("tasks").output


def test_unknown_task():
    assert "did you mean mnli" in error_line(invoke("train-intermediate", "mnlu", "--output", "x"))


def test_model_that_is_not_xlmr(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1).save_pretrained(tmp_path / "gpt")
    line = error_line(invoke("train-intermediate", "mnli", "--model", tmp_path / "gpt", "--output", tmp_path / "o"))
    assert "gpt2 model" in line and "xlm-roberta" in line


def test_unreachable_hub_model_says_how_to_use_local_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = error_line(invoke("train-intermediate", "mnli", "--model", "no-org/no-such-model-xyz",
                             "--output", tmp_path / "o"))
    assert "--model DIR" in line


def test_hub_retries_are_one_line(capsys, caplog, monkeypatch):
    import logging

    from adapterxfer.errors import HUB_RETRIES, friendly

    monkeypatch.setattr(HUB_RETRIES, "told", False)
    http = logging.getLogger("huggingface_hub.utils._http")

    @friendly
    def load():  # as huggingface_hub's http_backoff logs an unreachable hub
        for n in (1, 2):
            http.warning("'(MaxRetryError(...))' thrown while requesting HEAD https://huggingface.co/x/config.json")
            http.warning(f"Retrying in {n}s [Retry {n}/5].")
        http.warning("HTTP Error 404")  # anything else passes

    load()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: the Hugging Face Hub cannot be reached")
    assert [r.getMessage() for r in caplog.records] == ["HTTP Error 404"]


def test_yaml_config_unknown_key_and_wrong_type(tmp_path):
    (tmp_path / "bad.yaml").write_text("lr: 1e-4\nbatch_sise: 8\n")
    assert "bad.yaml:2: batch_sise: unknown key (did you mean batch_size?)" in error_line(
        invoke("train-intermediate", "mnli", "--config", tmp_path / "bad.yaml", "--output", tmp_path / "o"))
    (tmp_path / "bad2.yaml").write_text("lr: 1e-4\nepochs: three\n")
    assert "bad2.yaml:2: epochs: expected float, got text 'three'" in error_line(
        invoke("train-intermediate", "mnli", "--config", tmp_path / "bad2.yaml", "--output", tmp_path / "o"))
    (tmp_path / "bad3.yaml").write_text("lr: 1e-4\nepochs: 2\nlr: 3e-4\n")
    (tmp_path / "bad4.yaml").write_text("task: qqp\n")  # the task is the command's argument
    assert "bad4.yaml:1: task: unknown key" in error_line(
        invoke("train-intermediate", "mnli", "--config", tmp_path / "bad4.yaml", "--output", tmp_path / "o"))
    assert "bad3.yaml:3: lr: given twice" in error_line(
        invoke("train-intermediate", "mnli", "--config", tmp_path / "bad3.yaml", "--output", tmp_path / "o"))


def test_numbers_out_of_range_are_refused_before_anything_is_written(tmp_path):
    for flags, message in ((["--lr", "-1"], "--lr must be above 0, got -1.0"),
                           (["--lr", "inf"], "--lr must be above 0, got inf"),
                           (["--epochs", "nan"], "--epochs must be above 0, got nan"),
                           (["--warmup-ratio", "1.5"], "--warmup-ratio must be at least 0 and at most 1, got 1.5"),
                           (["--max-steps", "-3"], "--max-steps must be at least 0, got -3"),
                           (["--log-steps", "0"], "--log-steps must be at least 1, got 0"),
                           (["--reduction-factor", "0"], "--reduction-factor must be at least 1, got 0"),
                           (["--method", "lora", "--lora-dropout", "1.5"],
                            "--lora-dropout must be at least 0 and at most 1"),
                           (["--method", "lora", "--lora-targets", ","], "--lora-targets: none given")):
        assert message in error_line(invoke("train-intermediate", "mnli", *flags, "--output", tmp_path / "o"))
    assert not list(tmp_path.iterdir())


def test_a_run_that_failed_on_its_input_does_not_block_the_corrected_command(tmp_path, tiny_model_dir, synthetic_data):
    out = tmp_path / "o"
    wrong = [tmp_path / "no-data" if a == synthetic_data / "mnli" else a
             for a in args(tiny_model_dir, synthetic_data, out)]
    assert "no-data" in error_line(invoke(*wrong, "--cache-dir", tmp_path / "c"))
    assert not (tmp_path / "o.partial").exists()  # it held no progress
    result = invoke(*args(tiny_model_dir, synthetic_data, out, "--cache-dir", tmp_path / "c"))
    assert result.exit_code == 0, result.output
    assert (out / "adapterxfer.json").is_file() and not (tmp_path / "o.partial").exists()


def test_yaml_values_apply_and_flags_win(tmp_path):
    (tmp_path / "r.yaml").write_text("lr: 3.0e-4\nbatch_size: 8\nmethod: lora\n")
    cfg = training.TrainConfig.load(str(tmp_path / "r.yaml"), task="mnli", output="o", batch_size=4, lr=None)
    assert (cfg.lr, cfg.batch_size, cfg.method, cfg.learning_rate) == (3e-4, 4, "lora", 3e-4)
    assert training.TrainConfig.load(None, task="mnli", output="o", method="lora").learning_rate == 5e-4
    assert training.TrainConfig.load(None, task="mnli", output="o").learning_rate == 1e-4


def test_peft_offers_lora_only(tmp_path):
    assert "not available with --backend peft" in error_line(
        invoke("train-intermediate", "mnli", "--backend", "peft", "--output", tmp_path / "o"))


def args(tiny_model_dir, synthetic_data, out, *extra):
    return ("train-intermediate", "mnli", "--model", tiny_model_dir, "--data-dir", synthetic_data / "mnli",
            "--output", out, "--max-steps", "4", "--batch-size", "8", "--quiet", *extra)


def test_existing_output_is_kept_unless_overwrite(tmp_path, tiny_model_dir, synthetic_data):
    out = tmp_path / "o"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    line = error_line(invoke(*args(tiny_model_dir, synthetic_data, out, "--cache-dir", tmp_path / "c")))
    assert "already exists" in line and (out / "precious.txt").read_text() == "keep me"
    result = invoke(*args(tiny_model_dir, synthetic_data, out, "--cache-dir", tmp_path / "c", "--overwrite"))
    assert result.exit_code == 0, result.output
    assert (out / "adapterxfer.json").is_file() and not (out / "precious.txt").exists()


def test_interrupted_run_then_corrupt_checkpoint(tmp_path, tiny_model_dir, synthetic_data, monkeypatch):
    out = tmp_path / "o"
    base = args(tiny_model_dir, synthetic_data, out, "--cache-dir", tmp_path / "c", "--save-steps", "2")

    def crash(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "module_card", crash)  # dies after the last checkpoint, before publishing
    result = invoke(*base)
    assert result.exit_code == 130 and "--resume" in result.output
    assert not out.exists() and (tmp_path / "o.partial" / "checkpoints").is_dir()

    assert "unfinished run" in error_line(invoke(*base))
    changed = [a if a != "8" else "4" for a in base]  # another batch size
    assert "settings differ" in error_line(invoke(*changed, "--resume"))

    ckpt = sorted((tmp_path / "o.partial" / "checkpoints").glob("step-*"))[-1]
    data = bytearray((ckpt / "trainable.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (ckpt / "trainable.safetensors").write_bytes(bytes(data))
    line = error_line(invoke(*base, "--resume"))
    assert "corrupt" in line and str(ckpt) in line
    monkeypatch.undo()


def test_a_module_interrupted_while_publishing_is_kept_by_the_rerun(tmp_path, tiny_model_dir, synthetic_data,
                                                                    monkeypatch):
    """Killed after its checkpoints were deleted but before the rename: the same command again must not
    throw the finished module away and train anew; --resume publishes it."""
    out = tmp_path / "o"
    base = args(tiny_model_dir, synthetic_data, out, "--cache-dir", tmp_path / "c", "--save-steps", "2")
    monkeypatch.setattr(training, "replace_dir", lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    assert invoke(*base).exit_code == 130
    monkeypatch.undo()
    card = (tmp_path / "o.partial" / "adapterxfer.json").read_text()
    assert not (tmp_path / "o.partial" / "checkpoints").exists()
    assert "unfinished run" in error_line(invoke(*base))
    result = invoke(*base, "--resume")
    assert result.exit_code == 0 and "finished before the interruption" in result.output
    assert (out / "adapterxfer.json").read_text() == card


def test_resume_needs_only_the_output_folder(tmp_path, tiny_model_dir, synthetic_data, monkeypatch):
    out = tmp_path / "o"
    monkeypatch.setattr(training, "module_card", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert invoke(*args(tiny_model_dir, synthetic_data, out, "--cache-dir", tmp_path / "c", "--save-steps", "2",
                        "--lr", "3e-3")).exit_code == 130
    monkeypatch.undo()
    result = invoke("train-intermediate", "mnli", "--output", out, "--resume", "--cache-dir", tmp_path / "c",
                    "--quiet")  # the model, data and settings come from the unfinished run
    assert result.exit_code == 0, result.output
    card = json.loads((out / "adapterxfer.json").read_text())
    assert card["base_model"]["id"] == str(tiny_model_dir) and card["hyperparameters"]["lr"] == 3e-3


def test_demo_help_mentions_tiny_model():
    result = invoke("demo", "--help")
    assert result.exit_code == 0 and "tiny" in result.output


def test_train_target_refuses_contradictory_compositions(tmp_path):
    for extra, message in ((["--stack", "m", "--intermediate", "none"], "--intermediate none trains without"),
                           (["--stack", "m", "--fusion", "dynamic"], "--fusion chooses how --fuse mixes"),
                           (["--fuse", "m,m", "--model", "m"], "give two or more different modules")):
        assert message in error_line(invoke("train-target", "xnli", *extra, "--output", tmp_path / "o"))
    assert not list(tmp_path.iterdir())


def test_a_diverged_run_stops_with_an_error_instead_of_publishing(tmp_path, tiny_model_dir, synthetic_data):
    out = tmp_path / "o"
    line = error_line(invoke(*args(tiny_model_dir, synthetic_data, out, "--cache-dir", tmp_path / "c", "--lr", "1e30",
                                   "--log-steps", "1")))
    assert "training diverged; start again with a lower --lr" in line and not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a CUDA GPU, fp16 is available")
def test_fp16_without_a_gpu_is_refused_not_silently_fp32(tmp_path, tiny_model_dir, synthetic_data):
    line = error_line(invoke(*args(tiny_model_dir, synthetic_data, tmp_path / "o", "--mixed-precision", "fp16")))
    assert "--mixed-precision fp16 needs a CUDA GPU" in line and not list(tmp_path.iterdir())
