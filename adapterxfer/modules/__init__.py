"""Parameter-efficient modules behind one interface, one file per backend (like peft's ``tuners/``).

``build(...)`` returns a :class:`~adapterxfer.modules.base.Backend`: a frozen base model with one
trainable module and one head per task; ``Backend.save`` writes files that load in plain
``adapters`` (``model.load_adapter``) or plain ``peft`` (``PeftModel.from_pretrained``), plus
``fusion_weights.safetensors`` for light fusion. ``--method full`` (:mod:`.full`) trains every weight
instead and saves a complete model folder.
"""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager

from ..errors import UserError
from .base import Backend, HeadSpec, MethodConfig
from .composition import COMPOSITIONS, Module, check_fits, read_module, resolve_reference
from .fusion import FUSIONS

BACKENDS = {
    "adapters": ("seq_bn", "double_seq_bn", "lora", "full"),
    "peft": ("lora", "full"),
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


def build(model_path: str, name: str, method: MethodConfig, heads: list[HeadSpec],
          intermediates: list[Module] = (), compose: str = "stack", fusion: str = "light",
          trained=None) -> Backend:
    """A frozen base from ``model_path`` with a trainable module ``name`` and the given heads.

    ``intermediates`` are finished modules composed under it, frozen (``compose``: stack or fuse;
    ``fusion``: light mixing weights or dynamic AdapterFusion); ``trained`` is a finished module
    folder to load instead of initialising a new module.
    """
    check(method, len(heads))
    if compose not in COMPOSITIONS:
        raise UserError(f"unknown composition '{compose}' (choose from {', '.join(COMPOSITIONS)})")
    if fusion not in FUSIONS:
        raise UserError(f"unknown fusion '{fusion}' (choose from {', '.join(FUSIONS)})")
    for m in intermediates:
        if m.method == "full":
            raise UserError(f"module {m.path} is fully fine-tuned (--method full): nothing can be stacked or "
                            f"fused on it")
    if method.method == "full":
        from .full import FullBackend as cls
    elif method.backend == "adapters":
        from .adapters_backend import AdaptersBackend as cls
    else:
        from .peft_backend import PeftBackend as cls
    with quiet():
        return cls.create(model_path, name, method, heads, list(intermediates), compose, fusion, trained)


def load_trained(module_dir, model: str | None = None) -> Backend:
    """Rebuild a finished module for inference: its base, its frozen intermediates, its weights and heads.

    ``model`` overrides the recorded base model id (a local copy of the same model).
    """
    from .. import basemodel

    module = read_module(module_dir)
    card = module.card
    model = model or card["base_model"]["id"]
    refs = card.get("composition", {}).get("intermediates", [])
    pulled = module.path / "hub.json"  # a target pulled from a hub: its entry says where its intermediates are
    on_hub = ([i.get("hub") for i in json.loads(pulled.read_text(encoding="utf-8"))["entry"]["composition"]
               ["intermediates"]] if pulled.is_file() else [None] * len(refs))
    inters = [resolve_reference(ref, hub) for ref, hub in zip(refs, on_hub)]
    check_fits([module, *inters], basemodel.config_hash(basemodel.load_config(model)), model, module.backend)
    method = MethodConfig(**{k: v for k, v in card["method"].items()})
    heads = [HeadSpec(name, h["format"], h["labels"], h["num_choices"]) for name, h in card["heads"].items()]
    compose = card.get("composition", {}).get("compose", "stack")
    fusion = card.get("hyperparameters", {}).get("fusion", "dynamic")  # cards from before light fusion: dynamic
    backend = build(model, card["task"], method, heads, inters, "stack" if compose == "none" else compose, fusion,
                    trained=module.path)
    backend.model.eval()
    return backend


def load_encoder(model: str, module_dir=None):
    """The base encoder with a finished module active and no head, for sentence retrieval.

    Returns a callable ``(input_ids, attention_mask) -> hidden_states`` (a tuple, embeddings first).
    """
    from .. import basemodel

    config_hash = basemodel.config_hash(basemodel.load_config(model))
    module = read_module(module_dir) if module_dir else None
    if module is not None:
        check_fits([module], config_hash, model, module.backend)
    with quiet():
        if module is not None and module.method == "full":  # a complete model folder
            from transformers import AutoModel

            encoder = AutoModel.from_pretrained(str(module.path))
        elif module is None or module.backend == "peft":
            from transformers import AutoModel

            encoder = AutoModel.from_pretrained(model)
            if module is not None:
                from .peft_backend import merge_lora
                encoder = merge_lora(encoder, module)
        else:
            from adapters import AutoAdapterModel

            full = AutoAdapterModel.from_pretrained(model)
            name = full.load_adapter(str(module.path), with_head=False, use_safetensors=True)
            full.set_active_adapters(name)
            encoder = full.base_model
    encoder.eval()

    def hidden_states(input_ids, attention_mask):
        return encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states

    hidden_states.model = encoder
    return hidden_states


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


__all__ = ["Backend", "HeadSpec", "MethodConfig", "Module", "build", "check", "check_fits", "load_encoder",
           "load_trained", "quiet",
           "read_module", "BACKENDS", "COMPOSITIONS", "FUSIONS"]
