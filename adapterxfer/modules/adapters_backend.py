"""AdapterHub ``adapters`` backend: bottleneck adapters (Pfeiffer, Houlsby) and LoRA, flex heads.

Fusion of bottleneck adapters uses adapters' ``Fuse`` block, its attention layer either adapters' own
(dynamic) or learned mixing weights (light, :mod:`.fusion`); LoRA modules are fused by mixing weights.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from .base import Backend, HeadSpec, MethodConfig
from .composition import Module
from .fusion import (add_lora_mixing, light_fusion_config, load_mixing, mixings, replace_adapter_fusion,
                     save_mixing, train_mixing)

_ATTN = {"query": "q", "key": "k", "value": "v"}


def adapter_config(method: MethodConfig):
    """The ``adapters`` config object for a method."""
    from adapters import DoubleSeqBnConfig, LoRAConfig, SeqBnConfig

    if method.method == "seq_bn":
        return SeqBnConfig(reduction_factor=method.reduction_factor)
    if method.method == "double_seq_bn":
        return DoubleSeqBnConfig(reduction_factor=method.reduction_factor)
    targets = method.lora_targets
    attn = [_ATTN[t] for t in targets if t in _ATTN]
    return LoRAConfig(r=method.lora_r, alpha=method.lora_alpha, dropout=method.lora_dropout,
                      selfattn_lora=bool(attn), attn_matrices=attn or ["q", "v"],
                      intermediate_lora="intermediate" in targets, output_lora="output" in targets)


def add_head(model, head: HeadSpec) -> None:
    id2label = dict(enumerate(head.labels)) if head.labels else None
    if head.format == "classification":
        model.add_classification_head(head.name, num_labels=head.num_labels, id2label=id2label)
    elif head.format == "multiple_choice":
        model.add_multiple_choice_head(head.name, num_choices=head.num_choices)
    elif head.format == "tagging":
        model.add_tagging_head(head.name, num_labels=head.num_labels, id2label=id2label)
    elif head.format == "span_qa":
        model.add_qa_head(head.name)
    else:
        raise ValueError(head.format)


def merge_into_base(model, name: str) -> None:
    """Fold LoRA ``name`` into the frozen weights for good, then drop it.

    ``adapters`` stacks LoRA modules by feeding one delta into the next, and skips every LoRA of a
    layer that holds a merged one; folding the intermediate in and forgetting it gives W + dW_inter,
    under which a new LoRA trains as usual.
    """
    from adapters.methods.lora import LoRALayer

    for module in model.modules():
        if isinstance(module, LoRALayer) and name in module.loras:
            module.merge_adapter(name)
            module.merged = None  # the merge stays in the weights; the layer no longer knows about it
    model.delete_adapter(name)


def pop_lora(model, name: str) -> dict[str, tuple]:
    """The ``(scaled down, up)`` weights of LoRA ``name`` per linear layer; the adapter itself is deleted."""
    from adapters.methods.lora import LoRALayer

    with torch.no_grad():
        found = {path: (m.loras[name].lora_A * m.loras[name].scaling, m.loras[name].lora_B)
                 for path, m in model.named_modules() if isinstance(m, LoRALayer) and name in m.loras}
    model.delete_adapter(name)
    return found


class AdaptersBackend(Backend):
    @classmethod
    def create(cls, model_path: str, name: str, method: MethodConfig, heads: list[HeadSpec],
               intermediates: list[Module] = (), compose: str = "stack", fusion: str = "light",
               trained: Path | None = None):
        from adapters import AutoAdapterModel, Fuse, Stack

        self = cls()
        model = self.model = AutoAdapterModel.from_pretrained(model_path)
        self.base_parameters = sum(p.numel() for p in model.parameters())
        self.name, self.method = name, method
        self.heads = {h.name: h for h in heads}

        bottleneck, lora = [], {}
        for i, m in enumerate(intermediates):
            inter = f"inter{i}_{m.task}"
            model.load_adapter(str(m.path), with_head=False, load_as=inter, use_safetensors=True)
            if m.method != "lora":
                bottleneck.append(inter)
            elif compose == "fuse":
                for path, delta in pop_lora(model, inter).items():
                    lora.setdefault(path, []).append(delta)
            else:
                merge_into_base(model, inter)
        if bottleneck and lora:
            raise UserError("fuse either bottleneck adapters or LoRA modules, not a mix of both")
        if lora and fusion == "dynamic":
            raise UserError("dynamic AdapterFusion needs bottleneck adapters; LoRA modules are fused with "
                            "learned mixing weights (--fusion light)")

        if trained is not None:  # a finished module: load its weights instead of new ones
            model.load_adapter(str(trained), load_as=name, with_head=True, use_safetensors=True)
            for h in heads:  # a multi-task module keeps each task's head in heads/<task>/
                if (Path(trained) / "heads" / h.name).is_dir():
                    model.load_head(str(Path(trained) / "heads" / h.name), load_as=h.name, use_safetensors=True)
        else:
            model.add_adapter(name, config=adapter_config(method))
            for h in heads:
                add_head(model, h)
        fuse = Fuse(*bottleneck) if compose == "fuse" and bottleneck else None
        if fuse is not None:
            if fusion == "dynamic" and trained is not None:
                model.load_adapter_fusion(str(Path(trained) / "fusion"), use_safetensors=True)
            elif fusion == "dynamic":
                model.add_adapter_fusion(fuse, "dynamic")
            else:
                model.add_adapter_fusion(fuse, light_fusion_config())
                replace_adapter_fusion(model, fuse.name, len(bottleneck))
            model.train_adapter_fusion(fuse)  # freezes all but the fusion layer...
            model.apply_to_adapter_layers(lambda i, layer: layer.enable_adapters(Stack(name), True, False))
            self.setup = Stack(fuse, name)  # ...and the target adapter trains with it
        else:
            model.train_adapter(name)
            self.setup = Stack(*bottleneck, name) if bottleneck else Stack(name)
        add_lora_mixing(model, lora)
        train_mixing(model)
        if trained is not None and compose == "fuse" and fusion == "light":
            load_mixing(model, trained)
        model.set_active_adapters(self.setup)  # active is not trainable: the intermediates stay frozen
        self.fuse = fuse if fusion == "dynamic" else None
        return self

    def forward(self, head: str, batch: dict):
        return self.model(**batch, head=head)

    def save(self, directory) -> None:
        """One task: adapter + head in ``directory`` (``load_adapter(directory)`` restores both).

        Several tasks (multi): the shared adapter in ``directory``, each head in ``heads/<task>/``.
        Dynamic fusion: the fusion layer in ``fusion/``; light fusion: ``fusion_weights.safetensors``.
        """
        directory = Path(directory)
        single = len(self.heads) == 1
        self.model.save_adapter(str(directory), self.name, with_head=single, use_safetensors=True)
        if not single:
            for head in self.heads:
                (directory / "heads" / head).mkdir(parents=True, exist_ok=True)
                self.model.save_head(str(directory / "heads" / head), head, use_safetensors=True)
        if self.fuse is not None:
            self.model.save_adapter_fusion(str(directory / "fusion"), self.fuse, use_safetensors=True)
        if mixings(self.model):
            save_mixing(self.model, directory)
