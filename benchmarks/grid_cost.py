"""Projected device-hours and disk of a recipe's grid from measured step times: its modules against full
fine-tuning of the same grid, through the cost model that ``adapterxfer grid --dry-run`` uses.

    python benchmarks/grid_cost.py --size base --batch 8 --seq 256                 # CPU, XLM-R Base shape
    python benchmarks/grid_cost.py --size large --device cuda --batch 32 --seq 256   # the X-STILTs grid on a GPU

A training step of the recipe's module and of full fine-tuning is timed at ``--batch`` x ``--seq`` (each in
its own process, as benchmarks/train_step.py does); batch x seq / step time is a padded-tokens/s speed, the
unit of the cost model (grid.project): every training cell costs its steps x batch x max length at that
speed. Evaluation cells cost the recipe's ``cost.eval_minutes`` in both columns. Hours are of the device
measured on. On a GPU the module's frozen base is bf16 (training's default there); full fine-tuning runs
under bf16 autocast over fp32 weights, as ``--mixed-precision`` auto trains it.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, model_arguments, model_dir, run_isolated, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN_STEP = str(Path(__file__).resolve().parent / "train_step.py")


def step_method(module: dict) -> str:
    """benchmarks/train_step.py's name for a recipe's ``module:`` section."""
    method, backend = module.get("method", "seq_bn"), module.get("backend", "adapters")
    name = {("seq_bn", "adapters"): "seq_bn", ("lora", "adapters"): "lora", ("lora", "peft"): "lora_peft",
            ("full", "adapters"): "full", ("full", "peft"): "full"}.get((method, backend))
    if name is None:
        raise SystemExit(f"grid_cost: no step benchmark for {method} on {backend}")
    return name


def projection(recipe_path: str, model: str, tokens_per_second: float, full_tokens_per_second: float,
               out: str | None = None) -> dict:
    """GPU-hours and disk of the recipe's grid at the given padded-tokens/s speeds (grid.project)."""
    from adapterxfer.grid import plan, project
    from adapterxfer.recipes import load_recipe

    recipe = load_recipe(recipe_path)
    out_dir = Path(out or tempfile.mkdtemp()).resolve()
    cells = plan(recipe, out_dir, strict=False)
    p = project(recipe, cells, out_dir, model, tokens_per_second, full_tokens_per_second)
    return {"cells": len(cells), "module_hours": p.seconds / 3600, "module_disk": p.disk,
            "full_hours": p.full["seconds"] / 3600, "full_disk": p.full["disk"]}


def main(argv=None):
    parser = model_arguments(__doc__, batch=8, seq=256, seq_help="the recipe's max length (QA cells: 384)")
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "xstilts.yaml"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", help="a grid run folder: its finished cells count as measured (grid --dry-run)")
    args = parser.parse_args(argv)

    from adapterxfer.recipes import load_recipe

    module = step_method(load_recipe(args.recipe).module)
    if args.device == "cuda" and module != "full":
        module += "+bf16base"  # as training runs a frozen base on a GPU (--base-dtype auto)
    base = model_dir(args.size, args.small_vocab)
    flags = [f"--size={args.size}", f"--device={args.device}", f"--batch={args.batch}", f"--seq={args.seq}",
             f"--steps={args.steps}", f"--warmup={args.warmup}"] + ["--small-vocab"] * args.small_vocab
    speeds = {}
    for method in dict.fromkeys((module, "full")):
        row = run_isolated(TRAIN_STEP, flags + ["--one", method])
        speeds[method] = (row["step_s"], args.batch * args.seq / row["step_s"])
    cost = projection(args.recipe, str(base), speeds[module][1], speeds["full"][1], args.out)
    print(f"grid_cost: {args.recipe} ({cost['cells']} cells) at XLM-R {args.size} shape, steps timed at batch "
          f"{args.batch} x {args.seq} on {args.device} ({machine()}); hours are of that device")
    rows = [{"method": m if m != "full" else "full fine-tuning", "step_s": f"{s:.3f}", "tokens_s": f"{t:,.0f}",
             "hours": f"{cost[k + '_hours']:,.1f}", "disk_gb": f"{cost[k + '_disk'] / 1e9:,.2f}"}
            for (m, (s, t)), k in zip(speeds.items(), ("module", "full"))]
    print(table(rows, ["method", "step_s", "tokens_s", "hours", "disk_gb"]))
    if module != "full":
        print(f"module / full fine-tuning: {cost['module_hours'] / cost['full_hours']:.2f}x the hours, "
              f"{cost['module_disk'] / cost['full_disk']:.4f}x the disk")


if __name__ == "__main__":
    main()
