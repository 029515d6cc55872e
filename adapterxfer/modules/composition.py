"""Finished modules used as frozen intermediates: reading their cards, verifying, checking they fit.

Composition semantics, one per backend and method (see each backend):

* ``stack``: the intermediate module stays active and frozen under the new target module
  (bottleneck adapters: ``Stack(inter, target)``; LoRA: the intermediate delta is merged into the
  frozen weights first, so the model computes W + dW_inter + dW_target).
* ``fuse``: several frozen intermediates mixed under the target module, the mixing trained with it.
  ``light`` (default): learned softmax weights per layer (bottleneck adapters: over the adapters'
  outputs; LoRA: W + sum_i softmax(w)_i dW_i + dW_target), see :mod:`.fusion`; ``dynamic``:
  adapters' AdapterFusion attention (bottleneck adapters only).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..fileio import sha256_file
from ..hub import resolve_module_ref

CARD = "adapterxfer.json"
COMPOSITIONS = ("stack", "fuse")


@dataclass
class Module:
    """A finished module folder and its ``adapterxfer.json`` card."""

    path: Path
    card: dict

    @property
    def method(self) -> str:
        return self.card["method"]["method"]

    @property
    def backend(self) -> str:
        return self.card["method"]["backend"]

    @property
    def task(self) -> str:
        return self.card["task"]

    def reference(self) -> dict:
        """How a target module's card names this intermediate: where it was, what it was, its checksums,
        and ``hub: name@version`` when it was pulled from a hub (so the target works on other machines)."""
        ref = {"path": str(self.path.resolve()), "task": self.task, "method": self.card["method"],
               "files": self.card["files"]}
        pulled = self.path / "hub.json"
        if pulled.is_file():
            entry = json.loads(pulled.read_text(encoding="utf-8"))["entry"]
            ref["hub"] = f"hub:{entry['name']}@{entry['version']}"
        return ref


def resolve_reference(ref: dict, on_hub: str | None = None) -> Module:
    """The intermediate a target card names: at its recorded path, else from the hub it came from, or
    ``on_hub`` (``name@version``: where the hub entry of a pulled target says it is); either way its files
    must match the checksums the target recorded."""
    hub_ref = ref.get("hub") or (f"hub:{on_hub}" if on_hub else None)
    path = ref["path"] if Path(ref["path"]).is_dir() or hub_ref is None else hub_ref
    module = read_module(path)
    if module.card["files"] != ref["files"]:
        raise UserError(f"intermediate {module.path} is not the one this target module was trained on "
                        f"(its files differ from the checksums recorded in the target's card)")
    return module


def read_module(path: str | Path, verify: bool = True) -> Module:
    """Read a finished module folder; with ``verify``, every file must match its recorded sha256."""
    path = resolve_module_ref(path)  # hub:name@version -> its folder in the hub cache
    card_file = path / CARD
    if not card_file.is_file():
        what = "does not exist" if not path.exists() else f"has no {CARD} (not a finished adapterxfer module)"
        raise UserError(f"module {path} {what}")
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{card_file}:{e.lineno}: not valid JSON") from None
    if verify:
        for name, digest in card.get("files", {}).items():
            file = path / name
            if not file.is_file() or sha256_file(file) != digest:
                raise UserError(f"module {path}: file {name} is missing or does not match its sha256 in {CARD}")
    return Module(path, card)


def check_fits(modules: list[Module], config_hash: str, model: str, backend: str) -> None:
    """Intermediates must come from the same base model and the same backend as the target."""
    for m in modules:
        base = m.card["base_model"]
        if base["config_sha256"] != config_hash:
            raise UserError(f"module {m.path} was trained on base model '{base['id']}' (config sha256 "
                            f"{base['config_sha256'][:12]}), which is not '{model}' ({config_hash[:12]})")
        if m.backend != backend:
            raise UserError(f"module {m.path} was made with --backend {m.backend}; train the target with "
                            f"--backend {m.backend} too")
