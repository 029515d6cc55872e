"""Light fusion: learned softmax mixing weights over frozen intermediate modules, a few parameters per layer.

A dynamic AdapterFusion layer is three hidden x hidden matrices per layer (about 13% of XLM-R Large);
light fusion learns one logit per intermediate module and place, starting uniform:

* bottleneck adapters: :class:`AdapterMixing` takes the place of the attention layer in adapters'
  ``Fuse`` block, one per adapter location: ``sum_i softmax(w)_i up_i + residual``, where ``up_i`` is
  the output of intermediate adapter i (what dynamic fusion attends over).
* LoRA: :class:`LoRAMixing` on every adapted linear layer adds ``sum_i softmax(w)_i dW_i x`` to its
  output (a forward hook on that one layer), so the model computes W + sum_i p_i dW_i + dW_target.

The weights are saved as ``fusion_weights.safetensors`` in the module folder, keyed by module path.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

FUSIONS = ("light", "dynamic")
WEIGHTS_FILE = "fusion_weights.safetensors"


class Mixing(nn.Module):
    """Softmax mixing weights over ``n`` modules, uniform at the start."""

    def __init__(self, n: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n))

    def probs(self) -> torch.Tensor:
        return self.logits.softmax(-1)


class AdapterMixing(Mixing):
    """Stands in for adapters' ``BertFusion`` at one adapter location (same call, ``n`` parameters)."""

    def forward(self, query, key, value, residual, output_attentions: bool = False):
        probs = self.probs()
        out = torch.einsum("btnd,n->btd", value, probs.to(value.dtype)) + residual  # value: the adapters' up outputs
        if output_attentions:
            return out, probs.expand(value.shape[:3]).detach().cpu().numpy()
        return out


class LoRAMixing(Mixing):
    """The frozen LoRA deltas of one linear layer, ``x -> sum_i p_i B_i (s_i A_i) x``.

    ``deltas``: one ``(down, up)`` pair per intermediate, the scaling folded into ``down``; they are
    copies of the intermediates' weights, so they are buffers that are not saved with this module.
    """

    def __init__(self, deltas: list[tuple[torch.Tensor, torch.Tensor]]):
        super().__init__(len(deltas))
        for i, (down, up) in enumerate(deltas):
            self.register_buffer(f"down{i}", down.detach().clone(), persistent=False)
            self.register_buffer(f"up{i}", up.detach().clone(), persistent=False)

    def forward(self, x):
        probs = self.probs()
        return sum(probs[i] * F.linear(F.linear(x, getattr(self, f"down{i}")), getattr(self, f"up{i}"))
                   for i in range(len(probs)))


def add_lora_mixing(model: nn.Module, deltas: dict[str, list[tuple[torch.Tensor, torch.Tensor]]]) -> None:
    """Give each linear layer of ``model`` named in ``deltas`` a :class:`LoRAMixing` of its deltas."""
    for path, pairs in deltas.items():
        layer = model.get_submodule(path)
        layer.fusion_mixing = LoRAMixing(pairs)
        layer.register_forward_hook(_add_mixed_deltas)


def _add_mixed_deltas(layer, args, output):
    return output + layer.fusion_mixing(args[0])


def replace_adapter_fusion(model: nn.Module, fusion_name: str, n: int) -> None:
    """Swap adapters' fusion attention layers named ``fusion_name`` for :class:`AdapterMixing` over ``n`` adapters."""
    from adapters.methods.bottleneck import BottleneckLayer

    layers = [m for m in model.modules() if isinstance(m, BottleneckLayer) and fusion_name in m.adapter_fusion_layer]
    for layer in layers:
        layer.adapter_fusion_layer[fusion_name] = AdapterMixing(n)


def light_fusion_config():
    """An adapters fusion config for light fusion: no query/key/value matrices (its layer is replaced anyway)."""
    from adapters import AdapterFusionConfig

    return AdapterFusionConfig(key=False, query=False, value=False, query_before_ln=False, regularization=False,
                               residual_before=False, temperature=False, value_before_softmax=True,
                               value_initialized=False, dropout_prob=None)


def mixings(model: nn.Module) -> dict[str, Mixing]:
    return {name: m for name, m in model.named_modules() if isinstance(m, Mixing)}


def train_mixing(model: nn.Module) -> None:
    """Make the mixing weights trainable (the libraries' ``train_*`` calls freeze them with the base)."""
    for m in mixings(model).values():
        m.logits.requires_grad_(True)


def save_mixing(model: nn.Module, directory) -> None:
    from safetensors.torch import save_file

    save_file({name: m.logits.detach().cpu().contiguous() for name, m in mixings(model).items()},
              str(Path(directory) / WEIGHTS_FILE))


def load_mixing(model: nn.Module, directory) -> None:
    from safetensors.torch import load_file

    file = Path(directory) / WEIGHTS_FILE
    if not file.is_file():
        raise UserError(f"module {directory} has no {WEIGHTS_FILE} (its light fusion weights)")
    weights, found = load_file(str(file)), mixings(model)
    if set(weights) != set(found) or any(weights[n].shape != m.logits.shape for n, m in found.items()):
        raise UserError(f"{file} does not fit the intermediates recorded for this module")
    with torch.no_grad():
        for name, m in found.items():
            m.logits.copy_(weights[name])
