"""Sharing modules: hubs (a folder, ``adapterxfer hub serve``, the Hugging Face Hub), pushes, verified
pulls into a local cache, and ``hub:name@version`` references that training and evaluation accept
wherever they take a module folder.

A pull checks the entry (names, paths, safetensors only) before it uses anything, downloads into a
temporary folder beside the cache, checks every file's sha256, and installs the folder in one rename:
a failed or interrupted pull leaves no entry.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import UserError
from ..fileio import write_json
from .index import check_entry, parse_ref, verify_file

HUB_PREFIX = "hub:"


def cache_root() -> Path:
    """Where pulled modules live: ``$ADAPTERXFER_HUB_CACHE`` or ``~/.cache/adapterxfer/hub``."""
    return Path(os.environ.get("ADAPTERXFER_HUB_CACHE") or Path.home() / ".cache" / "adapterxfer" / "hub")


def resolve_module_ref(ref) -> Path:
    """A module folder for ``ref``: ``hub:name@version`` (or ``hub:name``, the latest) is its folder in the
    cache, pulled first from ``$ADAPTERXFER_HUB`` when it is not there; anything else is a path as given."""
    if not (isinstance(ref, str) and ref.startswith(HUB_PREFIX)):
        return Path(ref)
    name, version = parse_ref(ref[len(HUB_PREFIX):])
    hub = os.environ.get("ADAPTERXFER_HUB")
    cached = cache_root() / name
    versions = sorted(int(p.name) for p in cached.glob("*") if p.name.isdigit()) if cached.is_dir() else []
    if version in versions or (version is None and versions and not hub):
        return cached / str(version or versions[-1])
    if not hub:
        raise UserError(f"{ref} is not in the hub cache ({cache_root()}): pull it first "
                        f"(adapterxfer hub pull {ref[len(HUB_PREFIX):]} --hub URL) or set ADAPTERXFER_HUB=URL")
    from .backends import open_hub

    return pull(open_hub(hub, os.environ.get("ADAPTERXFER_HUB_TOKEN")), ref[len(HUB_PREFIX):])


def pull(hub, ref: str, cache: Path | None = None) -> Path:
    """Install ``ref`` (``name``, ``name@3``) from ``hub`` into the cache, verified; return its folder."""
    from .card import HUB_CARD

    name, version = parse_ref(ref)
    entry = check_entry(hub.entry(name, version), f"{hub}: {ref}")
    if entry["name"] != name or version not in (None, entry["version"]):
        raise UserError(f"{hub} answered {entry['name']}@{entry['version']} when asked for {ref}")
    cache = Path(cache or cache_root())
    dest = cache / name / str(entry["version"])
    if dest.exists():
        if not (dest / HUB_CARD).is_file():
            raise UserError(f"{dest} was not installed by a pull (no {HUB_CARD}); remove it to pull {ref}")
        have = json.loads((dest / HUB_CARD).read_text(encoding="utf-8"))
        if have["entry"]["files"] != entry["files"]:
            raise UserError(f"the cache holds another {name}@{entry['version']} (from {have['hub']}) in {dest}; "
                            f"remove that folder to pull this one")
        for rel, meta in entry["files"].items():  # already installed: checked again, as a download is
            try:
                verify_file(dest / rel, rel, meta)
            except (UserError, OSError) as e:
                raise UserError(f"the cached {name}@{entry['version']} in {dest} was changed since its pull "
                                f"({e if isinstance(e, UserError) else f'{rel} is missing'}); remove that folder "
                                f"to pull it again") from None
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".pull-{name}-", dir=cache))
    try:
        for rel, meta in entry["files"].items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hub.download(entry, rel, target)
            try:
                verify_file(target, rel, meta, digest)
            except UserError as e:
                raise UserError(f"{name}@{entry['version']} from {hub}: {e}; the download was deleted") from None
        write_json(tmp / HUB_CARD, {"hub": str(hub), "entry": entry})
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, dest)
        except OSError:  # a concurrent pull of the same entry finished first
            if not (dest / HUB_CARD).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def push(folder, hub, name: str, **card) -> dict:
    """Publish the finished module in ``folder`` as the next version of ``name`` on ``hub``; the entry.
    A target module's intermediates must be on ``hub`` (or come from a hub) already."""
    from .card import entry_from_module

    return hub.push(Path(folder), entry_from_module(folder, name, hub=hub, **card))


__all__ = ["cache_root", "pull", "push", "resolve_module_ref"]
