"""Full fine-tuning (``--method full``), the study's original setting kept for comparison.

Every base weight trains with the head. The module is a complete model folder (safetensors):
``--backend adapters`` writes an ``AutoAdapterModel`` with its flex heads (multi-task too), ``--backend
peft`` the plain transformers task model (``AutoModelFor...``), each loadable with that class's
``from_pretrained``. Nothing is stacked or fused with it: a fully fine-tuned base has no frozen
weights for other modules to sit on, so ``--stack``/``--fuse`` are refused in both directions.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .base import Backend, HeadSpec, MethodConfig
from .composition import Module


class FullBackend(Backend):
    @classmethod
    def create(cls, model_path: str, name: str, method: MethodConfig, heads: list[HeadSpec],
               intermediates: list[Module] = (), compose: str = "stack", fusion: str = "light",
               trained: Path | None = None):
        if intermediates:
            raise UserError("--method full fine-tunes every base weight: there is nothing to --stack or --fuse "
                            "under it (train it with --intermediate none)")
        self = cls()
        source = str(trained) if trained is not None else model_path
        if method.backend == "adapters":
            from adapters import AutoAdapterModel

            from .adapters_backend import add_head

            model = AutoAdapterModel.from_pretrained(source)  # a saved module brings its heads back
            if trained is None:
                for h in heads:
                    add_head(model, h)
        else:
            from .peft_backend import task_model

            model = task_model(source, heads[0])
        model.requires_grad_(True)
        self.model, self.name, self.method = model, name, method
        self.heads = {h.name: h for h in heads}
        self.base_parameters = sum(p.numel() for p in model.base_model.parameters())
        return self

    def forward(self, head: str, batch: dict):
        if self.method.backend == "adapters":
            return self.model(**batch, head=head)
        return self.model(**batch)

    def save(self, directory) -> None:
        self.model.save_pretrained(str(directory), safe_serialization=True)
