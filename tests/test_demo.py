"""``adapterxfer demo``: the whole pipeline on the tiny model and synthetic data, into temporary folders."""
import re
import shutil
from pathlib import Path

import torch

from adapterxfer import synthetic
from adapterxfer.demo import run_demo
from adapterxfer.tasks import get_task


def test_demo_runs_the_pipeline_and_writes_what_it_says(tmp_path, tiny_model_dir, capsys):
    cache = tmp_path / "cache"
    # the model the demo builds (same seed and steps), built once per test session
    shutil.copytree(tiny_model_dir, cache / f"demo-v{synthetic.DEMO_VERSION}" / "model")
    threads = torch.get_num_threads()
    summary = run_demo(tmp_path / "work", cache)
    out = capsys.readouterr().out
    assert torch.get_num_threads() == threads

    assert "briefly pretrained" in out and "randomly" not in out.lower()
    assert "adapterxfer train-intermediate mnli --model xlm-roberta-large" in out
    assert (Path(summary["data"]) / "xtreme" / "xnli" / "train-en.tsv").is_file()
    assert (Path(summary["data"]) / "mnli" / "train.jsonl").is_file()
    for module in summary["modules"].values():
        assert str(module) in out and (Path(module) / "adapterxfer.json").is_file()
    for task, folder in summary["results"].items():
        assert str(folder) in out
        for name in ("results.json", "results.md"):
            assert (Path(folder) / name).is_file()
        files = {kind: {p.name for p in (Path(folder) / kind / task).iterdir()} for kind in ("predictions", "labels")}
        assert files["predictions"] == {f"test-{lang}.tsv" for lang in get_task(task).languages}
        assert files["labels"] >= files["predictions"]  # Tatoeba's gold covers XTREME-R's languages too

    xnli = get_task("xnli").languages
    assert list(summary["xnli_accuracy"]) == list(xnli)
    assert all(re.search(rf"^\| {lang} \| [\d.]+ \|$", out, re.M) for lang in xnli)  # the per-language table
    printed = float(re.search(r"XNLI average accuracy ([\d.]+)", out).group(1))
    assert printed == round(summary["xnli_avg_accuracy"], 1) and printed > 50  # chance 33.3
    assert summary["bucc2018_avg_f1"] > 50 and summary["tatoeba_avg_accuracy"] > 50
