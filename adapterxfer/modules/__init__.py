"""Parameter-efficient modules behind one interface, one file per backend (like peft's ``tuners/``).

``build(...)`` returns a :class:`~adapterxfer.modules.base.Backend`: a frozen base model with one
trainable module and one head per task; ``Backend.save`` writes files that load in plain
``adapters`` (``model.load_adapter``) or plain ``peft`` (``PeftModel.from_pretrained``).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

from ..errors import UserError
from .base import Backend, HeadSpec, MethodConfig

BACKENDS = {
    "adapters": ("seq_bn", "double_seq_bn", "lora"),
    "peft": ("lora",),
}


def check(method: MethodConfig, heads: int = 1) -> None:
    """Refuse a method/backend pair that does not exist, before any work is done."""
    if method.backend == "peft" and heads > 1:
        raise UserError("multi-task training needs one head per task, which a peft task model cannot hold; "
                        "use --backend adapters for 'multi'")
    if method.backend not in BACKENDS:
        raise UserError(f"unknown backend '{method.backend}' (choose from {', '.join(BACKENDS)})")
    if method.method not in BACKENDS[method.backend]:
        raise UserError(f"--method {method.method} is not available with --backend {method.backend} "
                        f"(it offers: {', '.join(BACKENDS[method.backend])})")


def build(model_path: str, name: str, method: MethodConfig, heads: list[HeadSpec]) -> Backend:
    """A frozen base from ``model_path`` with a new trainable module ``name`` and the given heads."""
    check(method, len(heads))
    if method.backend == "adapters":
        from .adapters_backend import AdaptersBackend as cls
    else:
        from .peft_backend import PeftBackend as cls
    with quiet():
        return cls.create(model_path, name, method, heads)


@contextmanager
def quiet():
    """Silence the expected load-time warnings ("newly initialized" heads, "no active adapters")."""
    import transformers

    previous = transformers.logging.get_verbosity()
    adapters_logger = logging.getLogger("adapters")
    level = adapters_logger.level
    transformers.logging.set_verbosity_error()
    adapters_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        transformers.logging.set_verbosity(previous)
        adapters_logger.setLevel(level)


__all__ = ["Backend", "HeadSpec", "MethodConfig", "build", "check", "quiet", "BACKENDS"]
