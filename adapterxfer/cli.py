"""The ``adapterxfer`` command line (click). Errors in user input print one line and exit 2."""
from __future__ import annotations

from pathlib import Path

import click

from .errors import UserError, friendly


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="adapterxfer")
@click.option("--tasks", "task_files", multiple=True, type=click.Path(dir_okay=False), envvar="ADAPTERXFER_TASKS",
              help="A task file (YAML) of your own tasks, for every command (repeatable; or ADAPTERXFER_TASKS="
                   "FILE[:FILE]); see the README's 'Your own tasks'.")
@friendly
def main(task_files):
    """English intermediate-task training of adapters/LoRA on a frozen XLM-R, zero-shot on XTREME.

    \b
    adapterxfer demo                               # the whole pipeline on a tiny offline model
    adapterxfer tasks                              # the task registry
    adapterxfer train-intermediate mnli --output modules/mnli
    adapterxfer --tasks mytasks.yaml train-target masakhaner --stack modules/mnli --data-dir ./data -o runs/ner
    """
    import os

    from .tasks import use_task_files

    if task_files:  # processes started from this one (grid cells, launchers) read them too
        use_task_files(task_files)
        os.environ["ADAPTERXFER_TASKS"] = os.pathsep.join(str(Path(f).resolve()) for f in task_files)


BENCHMARK = click.option("--benchmark", type=click.Choice(["xtreme", "xtreme-r"]), default="xtreme", show_default=True,
                         help="Whose target tasks and language sets: XTREME's (40 languages) or XTREME-R's (50).")


@main.command("tasks")
@BENCHMARK
@friendly
def tasks_cmd(benchmark):
    """List the registered tasks: format, metric, languages and data source.

    Intermediate tasks first, then the --benchmark's target tasks with its language counts, then the
    target tasks of task files (--tasks).

    \b
    Examples:
      adapterxfer tasks
      adapterxfer tasks --benchmark xtreme-r
    """
    from .tasks import TASK_LIST, get_benchmark, get_task, task_file_targets

    bench = get_benchmark(benchmark)
    rows = [("name", "format", "metric", "langs", "source")]
    for t in [t for t in TASK_LIST if not t.is_target] + [get_task(n) for n in bench.tasks] + task_file_targets():
        if t.members:
            source = "+".join(t.members)
        else:
            source = ", ".join(dict.fromkeys(f"{s.hf_path}" + (f"/{s.hf_config}" if s.hf_config else "")
                                             if s.hf_path else "local files only" for s in t.sources))
        source += f" (task file {t.origin[0]})" if t.origin else ""
        rows.append((t.name, t.format, t.metric, str(len(t.languages_in(bench.name))), source))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    click.echo(f"{bench.title}: {len(bench.tasks)} target tasks, {len(bench.all_languages)} languages")


@main.command("languages")
@friendly
def languages_cmd():
    """The language table that ``report --group-by`` uses: family, script and resource class (Joshi et
    al. 2020) of every XTREME and XTREME-R language, in markdown.

    \b
    Example:
      adapterxfer languages > languages.md
    """
    from .languages import markdown_table

    click.echo(markdown_table())


def training_options(fn):
    """The flags every training command shares; ``None`` means "not given" (YAML or default applies)."""
    options = [
        click.option("--output", "-o", help="Folder for the finished module."),
        click.option("--model", help="Base model: hub id or local folder [train-target: the one its --stack or "
                                     "first --fuse module was trained on; else xlm-roberta-large]."),
        click.option("--data-dir", type=click.Path(file_okay=False),
                     help="Local data: DIR/<split>.jsonl|csv|tsv|parquet with the HF dataset's columns."),
        click.option("--method", type=click.Choice(["seq_bn", "double_seq_bn", "lora", "full"]),
                     help="Module type; full: full fine-tuning, no frozen base [seq_bn]."),
        click.option("--backend", type=click.Choice(["adapters", "peft"]), help="Library [adapters]."),
        click.option("--reduction-factor", type=int, help="Adapter bottleneck reduction [16]."),
        click.option("--lora-r", type=int, help="LoRA rank [8]."),
        click.option("--lora-alpha", type=int, help="LoRA alpha [16]."),
        click.option("--lora-dropout", type=float, help="LoRA dropout [0.0]."),
        click.option("--lora-targets", help="LoRA targets: query,key,value,intermediate,output [query,value]."),
        click.option("--epochs", type=float, help="Training epochs [3]."),
        click.option("--max-steps", type=int, help="Stop after N optimizer steps (overrides --epochs)."),
        click.option("--lr", type=float, help="Learning rate [1e-4 adapters, 5e-4 LoRA, 2e-5 full]."),
        click.option("--batch-size", type=int, help="Examples per micro-batch [32]."),
        click.option("--grad-accum", type=int, help="Micro-batches per optimizer step [1]; its loss is the mean of"
                     " their mean losses (as in HF Trainer and jiant)."),
        click.option("--warmup-ratio", type=float, help="Share of steps with linear warmup [0.1]."),
        click.option("--weight-decay", type=float, help="AdamW weight decay [0] of the trainable weights; biases"
                     " and layer norms are exempt, as in HF Trainer and jiant."),
        click.option("--max-length", type=int, help="Max tokens [256; 384 for QA]."),
        click.option("--doc-stride", type=int, help="QA window overlap [128]."),
        click.option("--seed", type=int, help="Random seed [42]."),
        click.option("--eval-steps", type=int, help="Evaluate on dev every N steps [each epoch]."),
        click.option("--save-steps", type=int, help="Checkpoint every N steps [500]."),
        click.option("--log-steps", type=int, help="Log every N steps [10]."),
        click.option("--mixed-precision", type=click.Choice(["auto", "no", "bf16", "fp16"]),
                     help="Autocast on GPU [auto: bf16 where supported]."),
        click.option("--base-dtype", type=click.Choice(["auto", "bf16", "fp32"]),
                     help="Frozen base weights in bf16 (half the memory; needs bf16 autocast) or fp32 "
                          "[auto: bf16 when training in bf16 on a GPU]."),
        click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=None,
                     help="Recompute activations in the backward pass: less memory, about 1/3 more time [off]."),
        click.option("--compile/--no-compile", default=None, help="torch.compile the model [off]."),
        click.option("--multi-sampling", type=click.Choice(["proportional", "temperature"]),
                     help="Task mixing for 'multi' [proportional]."),
        click.option("--multi-temperature", type=float, help="Sampling temperature for 'multi' [2]."),
        click.option("--cache-dir", type=click.Path(file_okay=False),
                     help="Tokenised-data cache [~/.cache/adapterxfer/features]."),
        click.option("--train-size", type=int, help="Train on a seeded subsample of N examples (stratified)."),
        click.option("--train-fraction", type=float, help="Train on a seeded share F of the examples."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False),
                     help="YAML file of settings (flags given here win)."),
        click.option("--overwrite", is_flag=True, help="Replace an existing output folder."),
        click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@main.command("train-intermediate")
@click.argument("task")
@click.option("--train-language", help="Language of the training data, recorded in the module card; other than "
                                       "en (e.g. a machine-translated MNLI) it reads --data-dir [en].")
@training_options
@friendly
def train_intermediate(task, config_file, overwrite, resume, quiet, **settings):
    """Train a module on an intermediate TASK (English, or --train-language); the base model stays frozen.

    \b
    Examples:
      adapterxfer train-intermediate mnli --model xlm-roberta-large --output modules/mnli
      adapterxfer train-intermediate mnli --model ./my-xlmr --data-dir ./glue/MNLI \\
          --method lora --backend peft --output modules/mnli-lora
      adapterxfer train-intermediate multi --data-dir ./intermediate --output modules/multi
      adapterxfer train-intermediate mnli --train-language de --data-dir ./mnli-de --output modules/mnli-de
      adapterxfer train-intermediate mnli --output modules/mnli --resume   # after an interruption
    """
    from .tasks import get_task
    from .training import TrainConfig, resumed, train

    spec = get_task(task)
    if spec.is_target:
        raise UserError(f"'{spec.name}' is a target task; use train-target")
    if resume:
        settings = resumed(settings["output"], settings)
    cfg = TrainConfig.load(config_file, task=spec.name, **settings)
    train(cfg, overwrite=overwrite, resume=resume, progress=not quiet)


@main.command("train-target")
@click.argument("task")
@click.option("--stack", help="A finished intermediate module to stack under the new one (kept frozen).")
@click.option("--fuse", help="Comma-separated intermediate modules to fuse, kept frozen.")
@click.option("--fusion", type=click.Choice(["light", "dynamic"]),
              help="How --fuse mixes the modules: light (learned mixing weights per layer, a few parameters; "
                   "LoRA too) or dynamic (AdapterFusion attention, bottleneck adapters only) [light].")
@click.option("--intermediate", type=click.Choice(["none"]), help="'none': the no-intermediate baseline.")
@training_options
@friendly
def train_target(task, stack, fuse, fusion, intermediate, config_file, overwrite, resume, quiet, **settings):
    """Train a module + head for an XTREME target TASK on English data, on top of intermediate modules.

    --method full fine-tunes every base weight instead (the study's original setting, for comparison):
    it goes with --intermediate none only.

    \b
    Examples:
      adapterxfer train-target xnli --stack modules/mnli --output runs/mnli-xnli
      adapterxfer train-target panx --fuse modules/mnli,modules/squad,modules/hellaswag --output runs/fuse3-panx
      adapterxfer train-target panx --fuse modules/mnli,modules/squad --fusion dynamic --output runs/dyn2-panx
      adapterxfer train-target xnli --fuse modules/mnli-lora,modules/squad-lora --method lora --backend peft \\
          --output runs/lora-fuse-xnli
      adapterxfer train-target xnli --intermediate none --output runs/baseline-xnli
      adapterxfer train-target xnli --intermediate none --method full --lr 1e-5 --output runs/full-xnli
      adapterxfer train-target udpos --stack modules/mnli --data-dir ./download --output runs/mnli-udpos
    """
    from .modules import read_module
    from .recipes import read_settings
    from .tasks import get_task
    from .training import TrainConfig, resumed, train

    spec = get_task(task)
    if not spec.is_target:
        raise UserError(f"'{spec.name}' is an intermediate task; use train-intermediate")
    if resume:  # what it was built on, too
        settings = resumed(settings["output"], {**settings, "stack": stack, "fuse": fuse, "fusion": fusion})
        stack, fuse, fusion = (settings.pop(k) for k in ("stack", "fuse", "fusion"))
        fusion = fusion if fuse else None  # recorded as its default on any run
    if spec.format == "retrieval":
        raise UserError(f"'{spec.name}' has no training data: it is evaluated by retrieval "
                        f"(adapterxfer evaluate MODULE --task {spec.name})")
    if (stack or fuse) and intermediate == "none":
        raise UserError(f"--intermediate none trains without an intermediate module: drop it, or drop "
                        f"--{'fuse' if fuse else 'stack'} {stack or fuse}")
    if fusion and not fuse:
        raise UserError("--fusion chooses how --fuse mixes its modules: it needs --fuse")
    first = (stack or fuse or "").split(",")[0].strip()
    if settings["model"] is None and first and not (config_file and "model" in read_settings(config_file)):
        settings["model"] = read_module(first).card["base_model"]["id"]  # the base it was trained on
    cfg = TrainConfig.load(config_file, task=spec.name, stack=stack, fuse=fuse, fusion=fusion, **settings)
    if not cfg.intermediates and intermediate != "none":
        raise UserError("say what to build on: --stack DIR, --fuse DIR,DIR,... or --intermediate none")
    train(cfg, overwrite=overwrite, resume=resume, progress=not quiet)


@main.command("score")
@click.argument("pred_dir", type=click.Path(file_okay=False))
@click.argument("label_dir", type=click.Path(file_okay=False))
@click.option("--task", "tasks", multiple=True, help="Score only this task (repeatable) [every task folder].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object {task: {avg_<metric>, <lang>: {...}}}.")
@BENCHMARK
@friendly
def score_cmd(pred_dir, label_dir, tasks, as_json, benchmark):
    """Score predictions in XTREME's submission layout (<dir>/<task>/test-<lang>.<tsv|json>) against labels.

    Gives the same numbers as XTREME's own evaluate.py (percentages, plain means over languages); with
    --benchmark xtreme-r, XTREME-R's tasks (xcopa: one choice index per line) and language sets. Files of
    languages outside a task's set (test-ha.tsv) are scored apart, with their own average ("extra_scores").

    \b
    Examples:
      adapterxfer score results/mnli-xnli/predictions ./labels
      adapterxfer score results/mnli-xnli/predictions ./labels --task xnli --json
      adapterxfer score submission/ ./labels --benchmark xtreme-r
    """
    import json

    from .score import benchmark_average, markdown_scores, score_folder
    from .tasks import get_benchmark

    scores = score_folder(pred_dir, label_dir, list(tasks) or None, benchmark)
    if as_json:  # extra languages apart: {"extra_scores": {task: ...}}, as results.json's
        click.echo(json.dumps({**scores, **({"extra_scores": scores.extras} if scores.extras else {})},
                              ensure_ascii=False))
    else:
        click.echo(markdown_scores(scores, scores.extras))
        if (overall := benchmark_average(scores, benchmark)) is not None:
            bench = get_benchmark(benchmark)
            click.echo(f"\n{bench.title} average over its {len(bench.tasks)} tasks: {overall[0]:.2f}"
                       + ("" if overall[1] else " (some tasks lack languages: not the benchmark's number)"))
    for warning in scores.warnings:
        click.echo(f"warning: {warning}", err=True)


@main.command("evaluate")
@click.argument("module_dir", required=False)
@click.option("--task", help="Task to evaluate [the module's]; bucc2018/tatoeba run retrieval on an intermediate "
                            "module, or without one on the bare --model.")
@click.option("--languages", default="all", show_default=True,
              help="Comma-separated languages, or all; a language outside the task's set (ha) from its --data-dir "
                   "files, scored apart.")
@click.option("--split", type=click.Choice(["dev", "test"]), default="dev", show_default=True,
              help="dev: labelled dev sets (as the study's grid); test: XTREME's submission files.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="XTREME's download/ folder [the HF hub].")
@click.option("--labels", "labels_dir", type=click.Path(file_okay=False),
              help="Label folder in XTREME's layout, to score --split test predictions.")
@click.option("--output", "-o", required=True, help="Folder for predictions/, results.json, results.md.")
@click.option("--model", help="Base model [the one the module was trained on]; needed without a module.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--max-length", type=int, help="Max tokens [the task's: 256; 384 for QA].")
@click.option("--layer", type=int, help="Retrieval: hidden layer to pool [14 of 24, same depth fraction].")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Tokenised-data cache [~/.cache/adapterxfer/features].")
@click.option("--perturb", "perturbations", multiple=True, metavar="NAME:RATE",
              help="Also evaluate noisy inputs (repeatable): char_swap, char_drop, char_insert, char_keyboard, "
                   "word_drop, word_swap, word_dup; e.g. char_swap:0.1.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the perturbations.")
@BENCHMARK
@friendly
def evaluate_cmd(module_dir, task, languages, split, data_dir, labels_dir, output, model, batch_size,
                 max_length, layer, cache_dir, perturbations, seed, benchmark):
    """Zero-shot evaluation of MODULE_DIR on every language of its target task (in --benchmark).

    Writes predictions/<task>/test-<lang>.<tsv|json> (XTREME's submission layout), results.json and
    results.md. Missing languages are listed in one line, never skipped silently. Languages outside the
    task's set are read from --data-dir files named as XTREME's (panx/dev-ha.tsv) and scored apart
    ("extra_scores"), never in the task's average.

    \b
    Examples:
      adapterxfer evaluate runs/mnli-xnli --languages all --data-dir ./download --output results/mnli-xnli
      adapterxfer evaluate runs/mnli-xnli --split test --data-dir ./download --output results/mnli-xnli-test
      adapterxfer evaluate runs/mnli-panx --benchmark xtreme-r --data-dir ./download --output results/panx-r
      adapterxfer evaluate modules/mnli --task tatoeba --data-dir ./download --output results/mnli-tatoeba
      adapterxfer evaluate runs/mnli-panx --languages all,ha,ig --data-dir ./mydata --output results/panx-ha
      adapterxfer evaluate --task bucc2018 --model xlm-roberta-large --data-dir ./download --output results/bucc
      adapterxfer evaluate runs/mnli-xnli --perturb char_swap:0.1 --perturb word_drop:0.1 --seed 1 \\
          --data-dir ./download --output results/mnli-xnli-noisy
    """
    from .training import DEFAULT_CACHE
    from .zeroshot import evaluate_run

    evaluate_run(module_dir, output, task=task, languages=languages, split=split, data_dir=data_dir,
                 labels_dir=labels_dir, model=model, batch_size=batch_size, max_length=max_length, layer=layer,
                 cache_dir=cache_dir or DEFAULT_CACHE, perturbations=perturbations, seed=seed, benchmark=benchmark,
                 log=click.echo)


@main.command("demo")
@click.option("--workdir", type=click.Path(file_okay=False), default="adapterxfer-demo", show_default=True,
              help="Where the demo writes its modules and results.")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Where the tiny model and synthetic data are built, in demo-v<N>/ [~/.cache/adapterxfer].")
@friendly
def demo(workdir, cache_dir):
    """Run the whole pipeline offline on an embedded tiny model, in well under a minute on two CPU cores.

    The first run builds (and caches) a tiny XLM-R-architecture model, briefly pretrained on a synthetic
    world in XTREME-R's 50 languages, and synthetic data in the real file layouts (XTREME's download/ for
    the target tasks). Then it trains an intermediate MNLI module (seq_bn adapter, base frozen) and an
    XNLI module stacked on it on English data, evaluates XNLI zero-shot on its 15 languages' dev sets and
    scores them as XTREME does, and runs BUCC 2018 and Tatoeba by retrieval with the MNLI module; it
    ends with the commands to run on real data. Its numbers come from the tiny model on synthetic data,
    not from XLM-R.

    \b
    Example:
      adapterxfer demo --workdir /tmp/demo
    """
    from .demo import run_demo

    run_demo(workdir, cache_dir)


from .grid import grid_cmd  # noqa: E402
main.add_command(grid_cmd, "grid")
from .report import report_cmd  # noqa: E402
main.add_command(report_cmd, "report")

from .hub.cli import hub  # noqa: E402
main.add_command(hub)

if __name__ == "__main__":
    main()
