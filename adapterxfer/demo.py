"""``adapterxfer demo``: the pipeline end to end on the embedded tiny model and synthetic data, offline."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

#: Settings of the demo runs: small batches and a higher learning rate suit the tiny model.
DEMO_SETTINGS = {"epochs": 4, "batch_size": 16, "lr": 2e-3, "max_length": 128, "save_steps": 50,
                 "log_steps": 10, "seed": 0}


def run_demo(workdir: str | Path, cache_dir: str | Path | None = None) -> dict:
    """Build the tiny model and data (cached), train the intermediate module, show what was made."""
    from . import synthetic
    from .training import TrainConfig, train

    start = time.perf_counter()
    workdir = Path(workdir)
    click.echo("adapterxfer demo: a TINY RANDOMLY INITIALISED XLM-R-architecture model on synthetic data.\n"
               "Its numbers show that the pipeline works, not what XLM-R Large would score.\n")
    model_dir, data_root = synthetic.demo_assets(cache_dir)
    click.echo(f"tiny model: {model_dir}\nsynthetic data: {data_root}\n")

    click.echo("== train-intermediate mnli (seq_bn adapter, base frozen)")
    cfg = TrainConfig.load(None, task="mnli", model=str(model_dir), data_dir=str(data_root / "mnli"),
                           output=str(workdir / "modules" / "mnli"),
                           cache_dir=str(Path(model_dir).parent / "features"), **DEMO_SETTINGS)
    module = train(cfg, overwrite=True, progress=False, log=click.echo)
    card = json.loads((module / "adapterxfer.json").read_text())
    summary = {"module": str(module), "dev_accuracy": card["dev_metrics"]["mnli"]["accuracy"],
               "trainable_parameters": card["trainable_parameters"], "seconds": round(time.perf_counter() - start, 1)}
    click.echo(f"\nmnli dev accuracy {summary['dev_accuracy']:.1f} (chance 33.3), "
               f"{summary['trainable_parameters']:,} trainable parameters, {summary['seconds']} s in all.\n"
               f"Load it in plain adapters: model.load_adapter('{module}', use_safetensors=True)")
    return summary
