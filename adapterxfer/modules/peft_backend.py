"""``peft`` backend: LoRA on a Hugging Face task model, the head trained through ``modules_to_save``.

Stacked intermediates are merged into the frozen weights; fused ones stay apart as frozen deltas under
learned mixing weights (:mod:`.fusion`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from .base import Backend, HeadSpec, MethodConfig
from .composition import Module
from .fusion import add_lora_mixing, load_mixing, mixings, save_mixing, train_mixing

#: format -> (transformers auto class, peft task type, head module name)
TASK_MODELS = {
    "classification": ("AutoModelForSequenceClassification", "SEQ_CLS", "classifier"),
    "multiple_choice": ("AutoModelForMultipleChoice", None, "classifier"),  # peft has no MC task type
    "tagging": ("AutoModelForTokenClassification", "TOKEN_CLS", "classifier"),
    "span_qa": ("AutoModelForQuestionAnswering", "QUESTION_ANS", "qa_outputs"),
}

_PATTERNS = {"query": r"attention\.self\.query", "key": r"attention\.self\.key",
             "value": r"attention\.self\.value", "intermediate": r"intermediate\.dense",
             "output": r"layer\.\d+\.output\.dense"}


def lora_target_regex(targets) -> str:
    """A peft ``target_modules`` regex for our target names (``output`` is the FFN output only)."""
    return rf".*\.({'|'.join(_PATTERNS[t] for t in targets)})$"


def task_model(model_path: str, head: HeadSpec):
    import transformers

    cls_name, _, _ = TASK_MODELS[head.format]
    kw = {}
    if head.labels:
        kw = {"num_labels": head.num_labels, "id2label": dict(enumerate(head.labels)),
              "label2id": {n: i for i, n in enumerate(head.labels)}}
    return getattr(transformers, cls_name).from_pretrained(model_path, **kw)


def _load_lora(model, module: Module):
    """``model`` wrapped by peft with the LoRA of a finished peft module as adapter "inter" (its head left out)."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    config = LoraConfig.from_pretrained(str(module.path))
    config.modules_to_save, config.task_type = None, None
    wrapped = get_peft_model(model, config, adapter_name="inter")
    weights = {k: v for k, v in load_file(str(module.path / "adapter_model.safetensors")).items() if "lora_" in k}
    prefix = model.base_model_prefix
    if not hasattr(model, prefix):  # a bare encoder: the saved keys name the task model's encoder attribute
        weights = {k.replace(f"base_model.model.{prefix}.", "base_model.model.", 1): v for k, v in weights.items()}
    result = set_peft_model_state_dict(wrapped, weights, adapter_name="inter")
    if any("lora_" in k for k in result.unexpected_keys):
        raise UserError(f"module {module.path} does not fit this base model's layers")
    return wrapped


def merge_lora(model, module: Module):
    """``model`` with the LoRA deltas of a finished peft module folded into its weights (its head left out).

    Both adapters active with the old one frozen would compute the same W + dW_inter + dW_target,
    but peft refuses two adapters that each carry a head; merging first avoids that and costs
    nothing at run time.
    """
    return _load_lora(model, module).merge_and_unload()


def lora_deltas(model, module: Module) -> dict[str, tuple]:
    """The ``(scaled down, up)`` weights of a finished peft module per linear layer of ``model`` (left unchanged)."""
    from peft.tuners.lora import LoraLayer

    wrapped = _load_lora(model, module)
    with torch.no_grad():
        found = {path: (layer.lora_A["inter"].weight * layer.scaling["inter"], layer.lora_B["inter"].weight)
                 for path, layer in wrapped.base_model.model.named_modules() if isinstance(layer, LoraLayer)}
    wrapped.unload()
    return found


class PeftBackend(Backend):
    @classmethod
    def create(cls, model_path: str, name: str, method: MethodConfig, heads: list[HeadSpec],
               intermediates: list[Module] = (), compose: str = "stack", fusion: str = "light",
               trained: Path | None = None):
        from peft import LoraConfig, PeftModel, get_peft_model

        if compose == "fuse" and fusion == "dynamic":
            raise UserError("dynamic AdapterFusion needs bottleneck adapters (--backend adapters); LoRA modules "
                            "are fused with learned mixing weights (--fusion light)")
        head = heads[0]
        base = task_model(model_path, head)
        self = cls()
        self.base_parameters = sum(p.numel() for p in base.base_model.parameters())
        if compose == "fuse":
            deltas = {}
            for m in intermediates:
                for path, delta in lora_deltas(base, m).items():
                    deltas.setdefault(path, []).append(delta)
            add_lora_mixing(base, deltas)
        else:
            for m in intermediates:
                base = merge_lora(base, m)
        if trained is not None:
            self.model = PeftModel.from_pretrained(base, str(trained))
        else:
            _, task_type, head_module = TASK_MODELS[head.format]
            config = LoraConfig(task_type=task_type, r=method.lora_r, lora_alpha=method.lora_alpha,
                                lora_dropout=method.lora_dropout,
                                target_modules=lora_target_regex(method.lora_targets),
                                modules_to_save=[head_module])
            self.model = get_peft_model(base, config)  # adapter "default": saved at the folder's root
            train_mixing(self.model)
        if trained is not None and compose == "fuse":
            load_mixing(self.model, trained)
        self.name, self.method, self.heads = name, method, {head.name: head}
        return self

    def forward(self, head: str, batch: dict):
        return self.model(**batch)

    def save(self, directory) -> None:
        """LoRA + head as peft writes them (``PeftModel.from_pretrained``), light fusion's mixing weights beside."""
        self.model.save_pretrained(str(directory), safe_serialization=True)
        if mixings(self.model):
            save_mixing(self.model, directory)
