"""``adapterxfer demo``: the pipeline end to end on the embedded tiny model and synthetic data, offline."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

#: Settings of the demo runs: small batches and a higher learning rate suit the tiny model.
DEMO_SETTINGS = {"epochs": 4, "batch_size": 16, "lr": 2e-3, "max_length": 128, "save_steps": 50,
                 "log_steps": 10, "seed": 0}

#: What a user runs next, on XLM-R and XTREME's download/ folder (its scripts/download_data.sh).
NEXT_COMMANDS = """\
  adapterxfer train-intermediate mnli --model xlm-roberta-large --output modules/mnli
  adapterxfer train-target xnli --stack modules/mnli --model xlm-roberta-large --data-dir ./download \\
      --output runs/mnli-xnli
  adapterxfer evaluate runs/mnli-xnli --languages all --data-dir ./download --output results/mnli-xnli
  adapterxfer evaluate modules/mnli --task bucc2018 --data-dir ./download --output results/mnli-bucc2018
  adapterxfer evaluate modules/mnli --task tatoeba --data-dir ./download --output results/mnli-tatoeba"""


def run_demo(workdir: str | Path, cache_dir: str | Path | None = None) -> dict:
    """Build the tiny model and data (cached), train an intermediate MNLI module and an XNLI module stacked
    on it, evaluate XNLI zero-shot in its 15 languages, BUCC and Tatoeba by retrieval; returns a summary.

    Torch runs one thread meanwhile: the model is too small to gain from more, and on busy cores extra
    threads slow it down many times over."""
    import torch

    from . import synthetic
    from .score import markdown_scores, score_folder
    from .training import TrainConfig, train
    from .zeroshot import evaluate_run

    start, threads = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(1)
    workdir = Path(workdir)
    click.echo("adapterxfer demo: a TINY XLM-R-architecture model (4 layers, hidden 64), briefly pretrained on a\n"
               "synthetic world in 50 languages, with synthetic data in the real file layouts. Its numbers show\n"
               "that the pipeline works, not what XLM-R Large would score on XTREME.\n")
    try:
        model_dir, data_root = synthetic.demo_assets(cache_dir)
        xtreme = data_root / "xtreme"
        click.echo(f"tiny model: {model_dir}\nsynthetic data: {data_root} (XTREME's download/ layout: {xtreme})\n")

        def train_module(task: str, output: Path, data_dir: Path, **kw) -> dict:
            cfg = TrainConfig.load(None, task=task, model=str(model_dir), data_dir=str(data_dir), output=str(output),
                                   cache_dir=str(model_dir.parent / "features"), **DEMO_SETTINGS, **kw)
            train(cfg, overwrite=True, progress=False, log=click.echo)
            return json.loads((output / "adapterxfer.json").read_text())

        mnli, xnli = workdir / "modules" / "mnli", workdir / "runs" / "mnli-xnli"
        click.echo("== train-intermediate mnli (seq_bn adapter, base frozen)")
        card = train_module("mnli", mnli, data_root / "mnli")
        click.echo(f"mnli dev accuracy {card['dev_metrics']['mnli']['accuracy']:.1f} (chance 33.3), "
                   f"{card['trainable_parameters']:,} trainable parameters\n")
        click.echo("== train-target xnli --stack modules/mnli (English training data; mnli module frozen)")
        train_module("xnli", xnli, xtreme, stack=str(mnli))

        def quiet(message: str) -> None:  # evaluate_run's per-language lines: the tables below say it all
            pass

        results = {task: workdir / "results" / f"mnli-{task}" for task in ("xnli", "bucc2018", "tatoeba")}
        click.echo("\n== evaluate runs/mnli-xnli: zero-shot on the dev sets of all 15 XNLI languages")
        evaluate_run(str(xnli), str(results["xnli"]), data_dir=str(xtreme), log=quiet)
        scores = score_folder(results["xnli"] / "predictions", results["xnli"] / "labels", ["xnli"])
        click.echo(markdown_scores(scores))
        xnli_avg = scores["xnli"]["avg_accuracy"]
        click.echo(f"XNLI average accuracy {xnli_avg:.1f} over 15 languages (chance 33.3)")

        click.echo("\n== evaluate modules/mnli by retrieval (mean-pooled layer, no head)")
        bucc = evaluate_run(str(mnli), str(results["bucc2018"]), task="bucc2018", data_dir=str(xtreme),
                            log=quiet)["scores"]
        click.echo("BUCC 2018 dev F1 (margin threshold tuned on these gold pairs): "
                   + ", ".join(f"{lang} {bucc[lang]['f1']:.1f}" for lang in ("de", "fr", "ru", "zh"))
                   + f"; average {bucc['avg_f1']:.1f}")
        labels = synthetic.write_tatoeba_labels(xtreme, results["tatoeba"] / "labels")
        tatoeba = evaluate_run(str(mnli), str(results["tatoeba"]), task="tatoeba", split="test",
                               data_dir=str(xtreme), labels_dir=str(labels), log=quiet)["scores"]
        worst = min((lang for lang in tatoeba if isinstance(tatoeba[lang], dict)),
                    key=lambda lang: tatoeba[lang]["accuracy"])
        click.echo(f"Tatoeba accuracy over 36 languages: average {tatoeba['avg_accuracy']:.1f}, "
                   f"lowest {worst} {tatoeba[worst]['accuracy']:.1f}")
    finally:
        torch.set_num_threads(threads)

    summary = {"seconds": round(time.perf_counter() - start, 1), "model": str(model_dir), "data": str(data_root),
               "modules": {"mnli": str(mnli), "xnli": str(xnli)},
               "results": {task: str(path) for task, path in results.items()},
               "mnli_dev_accuracy": card["dev_metrics"]["mnli"]["accuracy"],
               "xnli_accuracy": {lang: v["accuracy"] for lang, v in scores["xnli"].items() if isinstance(v, dict)},
               "xnli_avg_accuracy": xnli_avg, "bucc2018_avg_f1": bucc["avg_f1"],
               "tatoeba_avg_accuracy": tatoeba["avg_accuracy"]}
    click.echo(f"\n== done in {summary['seconds']} s (tiny briefly-pretrained model, synthetic data)\n"
               f"intermediate module: {mnli}\n  load it in plain adapters: "
               f"model.load_adapter('{mnli}', use_safetensors=True)\n"
               f"XNLI module:         {xnli}\n"
               + "".join(f"{task + ' results:':21}{path} (results.md, predictions/, labels/)\n"
                         for task, path in results.items())
               + f"\nOn real data (XTREME's download/ folder, from its scripts/download_data.sh):\n{NEXT_COMMANDS}")
    return summary
