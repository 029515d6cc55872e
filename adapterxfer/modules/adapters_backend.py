"""AdapterHub ``adapters`` backend: bottleneck adapters (Pfeiffer, Houlsby) and LoRA, flex heads."""
from __future__ import annotations

from pathlib import Path

from .base import Backend, HeadSpec, MethodConfig

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


class AdaptersBackend(Backend):
    @classmethod
    def create(cls, model_path: str, name: str, method: MethodConfig, heads: list[HeadSpec]):
        from adapters import AutoAdapterModel

        self = cls()
        self.model = AutoAdapterModel.from_pretrained(model_path)
        self.base_parameters = sum(p.numel() for p in self.model.parameters())
        self.name, self.method = name, method
        self.heads = {h.name: h for h in heads}
        self.model.add_adapter(name, config=adapter_config(method))
        for h in heads:
            add_head(self.model, h)
        self.model.train_adapter(name)  # freezes the base; the adapter and the heads train
        return self

    def forward(self, head: str, batch: dict):
        return self.model(**batch, head=head)

    def save(self, directory) -> None:
        """One task: adapter + head in ``directory`` (``load_adapter(directory)`` restores both).

        Several tasks (multi): the shared adapter in ``directory``, each head in ``heads/<task>/``.
        """
        directory = Path(directory)
        single = len(self.heads) == 1
        self.model.save_adapter(str(directory), self.name, with_head=single, use_safetensors=True)
        if not single:
            for head in self.heads:
                self.model.save_head(str(directory / "heads" / head), head, use_safetensors=True)
