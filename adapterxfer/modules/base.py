"""The backend interface and the small value types shared by every backend."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

#: LoRA target names accepted on the command line (XLM-R/BERT module names).
LORA_TARGETS = ("query", "key", "value", "intermediate", "output")


@dataclass
class MethodConfig:
    method: str = "seq_bn"  # seq_bn (Pfeiffer), double_seq_bn (Houlsby), lora, full (full fine-tuning)
    backend: str = "adapters"  # adapters (AdapterHub) or peft (LoRA; full: a plain transformers model)
    reduction_factor: int = 16  # bottleneck adapters: hidden size / bottleneck size
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("query", "value")

    def __post_init__(self):
        if isinstance(self.lora_targets, str):
            self.lora_targets = tuple(t.strip() for t in self.lora_targets.split(",") if t.strip())
        self.lora_targets = tuple(self.lora_targets)
        bad = [t for t in self.lora_targets if t not in LORA_TARGETS]
        if bad or (self.method == "lora" and not self.lora_targets):
            from ..errors import UserError
            raise UserError(f"--lora-targets: {'unknown ' + ', '.join(bad) if bad else 'none given'} (choose from "
                            f"{', '.join(LORA_TARGETS)})")

    def describe(self) -> dict:
        """The settings that matter for this method (recorded in the module card)."""
        d = asdict(self)
        keep = {"seq_bn": ("reduction_factor",), "double_seq_bn": ("reduction_factor",),
                "lora": ("lora_r", "lora_alpha", "lora_dropout", "lora_targets"), "full": ()}[self.method]
        return {"method": self.method, "backend": self.backend,
                **{k: (list(d[k]) if isinstance(d[k], tuple) else d[k]) for k in keep}}


@dataclass
class HeadSpec:
    name: str
    format: str  # classification | multiple_choice | span_qa | tagging
    labels: list[str] = field(default_factory=list)  # class / tag names
    num_choices: int | None = None

    @property
    def num_labels(self) -> int:
        return len(self.labels)


class Backend:
    """A frozen base model, one trainable module, one head per task."""

    model: torch.nn.Module
    name: str
    heads: dict[str, HeadSpec]
    base_parameters: int
    fuse = None  # the dynamic AdapterFusion block, where the module has one (saved in fusion/)

    def forward(self, head: str, batch: dict):
        """Run the model with ``head``; returns an output with ``loss`` and ``logits`` (QA: start/end)."""
        raise NotImplementedError

    def save(self, directory) -> None:
        """Write the module and heads as safetensors, loadable by the backend library itself."""
        raise NotImplementedError

    def gradient_checkpointing(self) -> None:
        """Keep only each layer's input and recompute its activations in the backward pass.

        Non-reentrant checkpoints: gradients reach the trainable modules inside a layer although its input,
        from the frozen embeddings, needs none; ``adapters`` recomputes inside its forward context, so the
        adapter layers run again too.
        """
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # peft
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def cast_frozen(self, dtype: torch.dtype) -> None:
        """Store the frozen weights in ``dtype``; the trainable ones (and so the optimizer state) stay as they are."""
        for p in self.model.parameters():
            if not p.requires_grad:
                p.data = p.data.to(dtype)

    def trainable_parameters(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters().values())

    def fusion_parameters(self) -> int:
        """Trainable parameters of fusion layers or mixing weights (reported apart: dynamic fusion is large)."""
        return sum(p.numel() for n, p in self.trainable_parameters().items() if "fusion" in n)
