"""Training throughput against plain ``adapters`` run the way its example scripts run, at equal accuracy.

    python benchmarks/peer.py --size tiny                          # the tiny pretrained model: accuracy is learnable
    python benchmarks/peer.py --size base --max-steps 20           # XLM-R Base shape, random weights: throughput only
    python benchmarks/peer.py --size large --device cuda --max-steps 200 --warmup 10 --compile

The same seq_bn adapter (reduction factor 16) and classification head train on the same MNLI-like data,
with the same optimiser, schedule, batch size and epochs:

* plain: ``adapters``' ``examples/pytorch/text-classification/run_glue.py`` setup (``pad_to_max_length``:
  every example padded to 128 tokens; random batches; ``AutoAdapterModel`` + ``train_adapter``) in a
  Hugging Face-style loop;
* ours: ``adapterxfer``'s training path (``training.train``): dynamic padding, length-grouped batches;
  with ``--compile`` also that path with ``--compile`` (torch.compile, inductor), a third row.

The premises hold 1 to 12 facts of the synthetic world, so that lengths follow MNLI's (XLM-R tokens:
median about 35, a tail past 100). Examples/s counts the training loop only (the batches' forward,
backward and optimizer steps, from tokenised data); dev accuracy is the final state's, on the matched
dev set, each path evaluating its own way. ``--warmup N`` leaves the first N steps out of every path's
timing (on a GPU: kernel selection, and compilation for ``--compile``).
"""
from __future__ import annotations

import json
import math
import random
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, model_arguments, model_dir, table  # noqa: E402

#: premise facts -> share of the examples (about 8 tokens per fact)
FACTS = {1: 0.10, 2: 0.20, 3: 0.22, 4: 0.18, 5: 0.12, 6: 0.08, 8: 0.06, 10: 0.03, 12: 0.01}
MAX_LENGTH = 128


def write_data(folder: Path, n_train: int, n_dev: int, seed: int = 0) -> Path:
    """MNLI's local layout (train.jsonl, validation_matched.jsonl) with an MNLI-like length mix."""
    from adapterxfer import synthetic

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("validation_matched", n_dev)):
        rows = [row for k, share in FACTS.items()
                for row in synthetic.nli_rows(rng, max(1, round(n * share)), split, facts=(k, k))]
        rng.shuffle(rows)
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def plain(model_path: Path, data: Path, args) -> dict:
    """adapters' run_glue.py setup: everything padded to 128, random batches, an HF-style training loop."""
    from adapters import AutoAdapterModel, SeqBnConfig
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))

    def encode(rows):
        enc = tokenizer([r["premise"] for r in rows], [r["hypothesis"] for r in rows], padding="max_length",
                        truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        return torch.utils.data.TensorDataset(enc["input_ids"], enc["attention_mask"],
                                              torch.tensor([r["label"] for r in rows]))

    train_set, dev_set = encode(read(data / "train.jsonl")), encode(read(data / "validation_matched.jsonl"))
    model = AutoAdapterModel.from_pretrained(str(model_path))
    model.add_adapter("mnli", config=SeqBnConfig(reduction_factor=16))
    model.add_classification_head("mnli", num_labels=3)
    model.train_adapter("mnli")
    model.to(args.device)
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch, shuffle=True,
                                         generator=torch.Generator().manual_seed(args.seed))
    total = args.max_steps or math.ceil(len(loader) * args.epochs)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * total), total)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if args.device == "cuda" else nullcontext
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    model.train()
    step, seen, timed_from = 0, 0, 0
    sync()
    start = time.perf_counter()
    while step < total:
        for ids, mask, labels in loader:
            ids, mask, labels = ids.to(args.device), mask.to(args.device), labels.to(args.device)
            with autocast():
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step, seen = step + 1, seen + len(labels)
            if step == args.warmup:  # the timed steps start here
                sync()
                start, timed_from = time.perf_counter(), seen
            if step == total:
                break
    sync()
    seconds = time.perf_counter() - start
    seen -= timed_from

    model.eval()
    correct = 0
    with torch.inference_mode(), autocast():
        for ids, mask, labels in torch.utils.data.DataLoader(dev_set, batch_size=64):
            logits = model(input_ids=ids.to(args.device), attention_mask=mask.to(args.device)).logits
            correct += int((logits.argmax(-1).cpu() == labels).sum())
    return {"path": "plain adapters (padded to 128, random batches)", "steps": step - args.warmup, "examples": seen,
            "seconds": seconds, "dev_accuracy": 100 * correct / len(dev_set)}


def ours(model_path: Path, data: Path, args, work: Path, compile: bool = False) -> dict:
    """adapterxfer's training path; its loop time is the sum of the logged windows (no evaluation in them)
    after the first ``--warmup`` steps."""
    from adapterxfer.training import TrainConfig, train

    name = "ours-compiled" if compile else "ours"
    cfg = TrainConfig(task="mnli", output=str(work / name), model=str(model_path), data_dir=str(data),
                      method="seq_bn", backend="adapters", reduction_factor=16, lr=args.lr, epochs=args.epochs,
                      max_steps=args.max_steps, batch_size=args.batch, max_length=MAX_LENGTH, seed=args.seed,
                      eval_steps=10 ** 9, save_steps=0, log_steps=args.warmup or 10, cache_dir=str(work / "cache"),
                      compile=compile)
    cfg.validate()
    out = train(cfg, progress=False, log=lambda *_: None)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    windows = [e for e in log if "seconds" in e and e["step"] > args.warmup]
    card = json.loads((out / "adapterxfer.json").read_text())
    steps = windows[-1]["step"] - args.warmup
    examples = round(sum(e["examples_per_s"] * e["seconds"] for e in windows))
    label = "adapterxfer --compile" if compile else "adapterxfer (dynamic padding, length-grouped)"
    return {"path": label, "steps": steps, "examples": examples,
            "seconds": sum(e["seconds"] for e in windows), "dev_accuracy": card["dev_metrics"]["mnli"]["accuracy"]}


def main(argv=None):
    parser = model_arguments(__doc__, batch=32)
    parser.add_argument("--train", type=int, default=2000, help="training examples")
    parser.add_argument("--dev", type=int, default=500, help="dev examples")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after N steps (throughput at base/large)")
    parser.add_argument("--lr", type=float, default=2e-3, help="[2e-3: the tiny model; 1e-4 for XLM-R]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=0, help="steps left out of the timing")
    parser.add_argument("--compile", action="store_true", help="also time our path with --compile")
    args = parser.parse_args(argv)
    steps = args.max_steps or math.ceil(math.ceil(args.train / args.batch) * args.epochs)
    if args.warmup and steps < 2 * args.warmup:
        parser.error(f"{steps} steps (--max-steps, or --train / --batch x --epochs) must be at least twice --warmup "
                     f"(one timed log window at the least)")

    from adapterxfer import synthetic

    work = Path(tempfile.mkdtemp(prefix="adapterxfer-peer-"))
    if args.size == "tiny":  # pretrained on the synthetic world: a frozen base + adapter can learn the task
        model_path = Path(tempfile.gettempdir()) / f"adapterxfer-bench-tiny-pretrained-v{synthetic.DEMO_VERSION}"
        if not (model_path / "config.json").is_file():
            synthetic.build_model_dir(model_path)
    else:
        model_path = model_dir(args.size, args.small_vocab)
    data = write_data(work / "mnli", args.train, args.dev, args.seed)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    rows = read(data / "train.jsonl")
    lengths = sorted(len(ids) for ids in tokenizer([r["premise"] for r in rows], [r["hypothesis"] for r in rows],
                                                   truncation=True, max_length=MAX_LENGTH)["input_ids"])
    print(f"peer: XLM-R {args.size} shape, seq_bn rf 16, {len(rows)} train examples (tokens: median "
          f"{lengths[len(lengths) // 2]}, mean {sum(lengths) / len(lengths):.0f}, max {lengths[-1]}), batch "
          f"{args.batch}, {f'{args.max_steps} steps' if args.max_steps else f'{args.epochs:g} epochs'}"
          f"{f' (the first {args.warmup} untimed)' if args.warmup else ''}, "
          f"{args.device} ({machine()})")
    results = [plain(model_path, data, args), ours(model_path, data, args, work)]
    if args.compile:
        results.append(ours(model_path, data, args, work, compile=True))
    for r in results:
        r["examples_s"] = round(r["examples"] / r["seconds"], 1)
        r["seconds"] = round(r["seconds"], 2)
        r["dev_accuracy"] = round(r["dev_accuracy"], 2) if args.size == "tiny" else "- (random weights)"
    print(table(results, ["path", "steps", "examples", "seconds", "examples_s", "dev_accuracy"]))
    for r in results[1:]:
        print(f"{r['path']} / plain: {r['examples_s'] / results[0]['examples_s']:.2f}x the examples/s")


if __name__ == "__main__":
    main()
