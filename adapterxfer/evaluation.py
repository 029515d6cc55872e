"""Running a model over features (length-sorted batches, inference mode) and scoring dev sets."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from . import metrics
from .features import IGNORE, collate, feature_length, sorted_batches


def inference_autocast(device: str):
    """The autocast for evaluating on ``device``: bf16 on a GPU that has it, fp16 on an older one (V100, T4;
    no loss to scale when nothing is trained), none on a CPU."""
    if device != "cuda":
        return nullcontext
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return lambda: torch.autocast("cuda", dtype=dtype)


@torch.inference_mode()
def predict(backend, head: str, feats: list[dict], batch_size: int = 64, pad_id: int = 1,
            device=None, autocast=nullcontext, pack: bool | None = None) -> list:
    """Model outputs per feature, in input order: class/choice logits, per-token logits, or QA
    ``(start_logits, end_logits)``, each cut to the feature's own length. ``pack`` (default: on a GPU)
    fills batches of short rows up to the first batch's tokens (:func:`~adapterxfer.features.sorted_batches`)."""
    model = backend.model
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    pack = torch.device(device).type == "cuda" if pack is None else pack
    outputs: list = [None] * len(feats)
    for idx in sorted_batches([feature_length(f) for f in feats], batch_size, pack):
        rows = [feats[i] for i in idx]
        batch = {k: v.to(device) for k, v in collate([{k: f[k] for k in ("input_ids", "token_type_ids") if k in f}
                                                      for f in rows], pad_id).items()}
        with autocast():
            out = backend.forward(head, batch)
        if getattr(out, "start_logits", None) is not None:
            for j, i in enumerate(idx):
                n = len(feats[i]["input_ids"])
                outputs[i] = (out.start_logits[j, :n].float().cpu(), out.end_logits[j, :n].float().cpu())
        else:
            logits = out.logits.float().cpu()
            for j, i in enumerate(idx):
                outputs[i] = logits[j, :len(feats[i]["input_ids"])] if logits.dim() == 3 else logits[j]
    model.train(was_training)
    return outputs


def score(fmt: str, metric: str, examples: list[dict], feats: list[dict], outputs: list, *,
          allow_impossible: bool = False, labels: list[str] | None = None) -> dict:
    """Dev metrics of one task from model outputs (see :mod:`adapterxfer.metrics`)."""
    if fmt in ("classification", "multiple_choice"):
        return metrics.accuracy([int(o.argmax()) for o in outputs], [f["labels"] for f in feats])
    if fmt == "tagging":  # scored on the first sub-word of each word
        preds, golds = [], []
        for f, o in zip(feats, outputs):
            pairs = [(g, p) for g, p in zip(f["labels"], o.argmax(-1).tolist()) if g != IGNORE]
            golds.append([g for g, _ in pairs])
            preds.append([p for _, p in pairs])
        if metric == "seqeval":
            names = labels or []
            return metrics.tagging_f1([[names[p] for p in s] for s in preds], [[names[g] for g in s] for s in golds])
        return metrics.accuracy([p for s in preds for p in s], [g for s in golds for g in s])
    if fmt == "span_qa":
        from . import qa

        start = [o[0] for o in outputs]
        end = [o[1] for o in outputs]
        answers = qa.postprocess(examples, feats, start, end, allow_impossible=allow_impossible)
        gold = {e["id"]: e["answers"]["text"] for e in examples}
        if metric == "mlqa":  # dev sets are English-only at training time
            return metrics.mlqa_scores(answers, gold, "en")
        return metrics.squad_scores(answers, gold)
    raise ValueError(fmt)
