"""A hub's index: one entry (module card) per name and version, checked against ``schema.json``.

A hub folder holds ``index.json`` and ``modules/<name>/<version>/<files>``. :func:`commit` adds an
entry under a file lock: the files appear in one rename, then the index is replaced atomically, so
concurrent pushes (threads of one server, or several processes) each get their own version.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ..errors import UserError
from ..fileio import sha256_file, write_json

FORMAT = "adapterxfer-hub-index/1"
CARD = "adapterxfer.json"  # the module's own card (training.CARD)
SCHEMA = json.loads(Path(__file__).with_name("schema.json").read_text(encoding="utf-8"))
ENTRY_SCHEMA = {**SCHEMA["$defs"]["entry"], "$defs": SCHEMA["$defs"]}
NAME_RE = re.compile(SCHEMA["$defs"]["name"]["pattern"])
PATH_RE = re.compile(SCHEMA["$defs"]["path"]["pattern"])
VERSION_RE = re.compile(r"[1-9][0-9]{0,8}")
ALLOWED_SUFFIXES = (".safetensors", ".json", ".md")
MAX_HEADER = 100 << 20  # a safetensors JSON header larger than this is not a module's


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise UserError(f"invalid module name {name!r}: use letters, digits, '.', '_' and '-', starting with a "
                        f"letter or digit (at most 100 characters)")
    return name


def check_path(rel: str) -> str:
    """A file path from a hub or for a hub: relative, no '..' or hidden parts, safetensors for weights."""
    if not isinstance(rel, str) or not PATH_RE.fullmatch(rel):
        raise UserError(f"unsafe file path {rel!r}: only relative paths without '..', hidden or absolute parts")
    if not rel.endswith(ALLOWED_SUFFIXES):
        raise UserError(f"refusing {rel}: weights are moved as safetensors only (pickled formats such as .bin, "
                        f".pt, .pkl are refused); files must end in {', '.join(ALLOWED_SUFFIXES)}")
    return rel


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``name@3`` -> ("name", 3); ``name`` or ``name@latest`` -> ("name", None): the latest version."""
    name, _, version = ref.partition("@")
    check_name(name)
    if version in ("", "latest"):
        return name, None
    if not VERSION_RE.fullmatch(version):
        raise UserError(f"invalid version in {ref!r}: expected name@1, name@2, ... or name alone for the latest")
    return name, int(version)


def check_entry(entry, where: str = "entry") -> dict:
    """Check an entry from or for a hub before any use: its name and file paths first (their refusal says
    why), then the whole entry against the schema."""
    if isinstance(entry, dict):
        check_name(entry.get("name"))
        for rel in entry.get("files") if isinstance(entry.get("files"), dict) else ():
            check_path(rel)
    validate(entry, ENTRY_SCHEMA, where)
    return entry


def check_safetensors(path: Path, rel: str) -> None:
    """A ``.safetensors`` file must start with its 8-byte header length and a JSON header (never a pickle)."""
    with open(path, "rb") as f:
        head = f.read(8)
        size = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        try:
            if not 2 <= size <= MAX_HEADER:
                raise ValueError
            header = json.loads(f.read(size))
            if not isinstance(header, dict):
                raise ValueError
        except ValueError:
            raise UserError(f"{rel} is not a safetensors file") from None


# ---------------------------------------------------------------- the index file

def read_index(root: Path) -> list[dict]:
    file = Path(root) / "index.json"
    if not file.is_file():
        return []
    try:
        index = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{file}:{e.lineno}: not valid JSON") from None
    validate(index, SCHEMA, str(file))
    return index["entries"]


def write_index(root: Path, entries: list[dict]) -> None:
    index = {"format": FORMAT, "entries": sorted(entries, key=lambda e: (e["name"], e["version"]))}
    validate(index, SCHEMA, "index")
    write_json(Path(root) / "index.json", index)


class NotOnHub(UserError):
    """The name or version asked for is not on the hub."""


def find(entries: list[dict], name: str, version: int | None = None) -> dict:
    found = [e for e in entries if e["name"] == name]
    if not found:
        raise NotOnHub(f"no module named '{name}' on this hub")
    if version is None:
        return max(found, key=lambda e: e["version"])
    for e in found:
        if e["version"] == version:
            return e
    raise NotOnHub(f"'{name}' has no version {version} (versions: "
                   f"{', '.join(str(e['version']) for e in sorted(found, key=lambda e: e['version']))})")


def search(entries: list[dict], query: str = "", task: str = "", method: str = "",
           base_model: str = "") -> list[dict]:
    """The latest version of each name that matches every word of ``query`` (substrings of name, task,
    description, method, base model, kind, members) and the exact filters given."""
    latest: dict[str, dict] = {}
    for e in entries:
        if e["name"] not in latest or e["version"] > latest[e["name"]]["version"]:
            latest[e["name"]] = e
    words = query.lower().split()
    out = []
    for e in sorted(latest.values(), key=lambda e: e["name"]):
        text = " ".join([e["name"], e["task"], e.get("description", ""), e["method"]["method"],
                         e["method"]["backend"], e["base_model"]["id"], e["kind"], *e.get("members", [])]).lower()
        wanted = (not task or e["task"] == task) and (not method or e["method"]["method"] == method) and \
            (not base_model or e["base_model"]["id"] == base_model)
        if wanted and all(w in text for w in words):
            out.append(e)
    return out


@contextmanager
def locked(root: Path, timeout: float = 120):
    """Hold the hub's lock file: one index update at a time, across threads and processes."""
    from filelock import FileLock, Timeout

    try:
        with FileLock(str(Path(root) / ".lock"), timeout=timeout):
            yield
    except Timeout:
        raise UserError(f"hub {root} is busy (its lock was held for {timeout:.0f} s); try again") from None


def verify_staging(staging: Path, proposed: dict) -> None:
    """The received files are exactly the proposed entry's, each matching its size and sha256, and the
    module's own card agrees with the entry; raise naming the first file that does not."""
    check_entry({**proposed, "version": 1, "created": "-"}, "pushed entry")
    got = {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()}
    files = proposed["files"]
    if got != set(files):
        raise UserError(f"pushed files differ from the entry's list: missing {sorted(set(files) - got)}, "
                        f"unexpected {sorted(got - set(files))}")
    for rel, meta in files.items():
        verify_file(staging / rel, rel, meta)
    if CARD not in files:
        raise UserError(f"a module is pushed with its {CARD}")
    card = json.loads((staging / CARD).read_text(encoding="utf-8"))
    if any(files.get(rel, {}).get("sha256") != digest for rel, digest in card.get("files", {}).items()) or \
            any(card.get(k) != proposed[k] for k in ("task", "kind", "method")) or \
            card.get("base_model", {}).get("config_sha256") != proposed["base_model"]["config_sha256"]:
        raise UserError(f"the entry does not agree with the module's {CARD} (files, task, method or base model)")


def verify_file(path: Path, rel: str, meta: dict, digest: str | None = None) -> None:
    """``path`` has the size and sha256 (``digest`` where already hashed) recorded for ``rel``; a
    ``.safetensors`` file is really one."""
    if path.stat().st_size != meta["size"] or (digest or sha256_file(path)) != meta["sha256"]:
        raise UserError(f"{rel} does not match its sha256 {meta['sha256'][:12]}... (changed or cut in transfer)")
    if rel.endswith(".safetensors"):
        check_safetensors(path, rel)


def add_card(entry: dict, folder: Path, render) -> dict:
    """Write the rendered model card into ``folder`` and list it among the entry's files."""
    card_name, text = render(entry)
    if card_name in entry["files"]:
        raise UserError(f"the module already has a {card_name}")
    data = text.encode("utf-8")
    (folder / card_name).write_bytes(data)
    entry = {**entry, "files": {**entry["files"],
                                card_name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}}}
    return check_entry(entry)


def commit(root: Path, staging: Path, proposed: dict, render) -> dict:
    """Publish the verified files in ``staging`` as the next version of ``proposed['name']``.

    ``render(entry) -> (file name, text)`` makes the model card, which becomes one more file of the entry.
    """
    root = Path(root)
    name = check_name(proposed["name"])
    folder = root / "modules" / name
    folder.mkdir(parents=True, exist_ok=True)
    with locked(root):
        entries = read_index(root)
        on_disk = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]  # incl. a crashed commit's
        version = max([e["version"] for e in entries if e["name"] == name] + on_disk, default=0) + 1
        entry = add_card({**proposed, "version": version, "created": now()}, staging, render)
        os.rename(staging, folder / str(version))
        write_index(root, entries + [entry])
    return entry


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- a small JSON-schema check

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
          "integer": int, "number": (int, float)}


def validate(value, schema: dict, where: str, root: dict | None = None) -> None:
    """Check ``value`` against the subset of JSON Schema that ``schema.json`` uses; raise one clear line."""
    root = root or schema
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    fail = lambda problem: UserError(f"{where}: {problem}")  # noqa: E731
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(isinstance(value, _TYPES[k]) and not (isinstance(value, bool) and k in ("integer", "number"))
                   for k in kinds):
            raise fail(f"expected {' or '.join(kinds)}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise fail(f"{value!r} is not one of {', '.join(map(repr, schema['enum']))}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        raise fail(f"{value!r} is not allowed (pattern {schema['pattern']})")
    if "minLength" in schema and len(value) < schema["minLength"]:
        raise fail("must not be empty")
    if "minimum" in schema and value < schema["minimum"]:
        raise fail(f"must be at least {schema['minimum']}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{i}]", root)
    if isinstance(value, dict):
        missing = [k for k in schema.get("required", []) if k not in value]
        if missing:
            raise fail(f"missing {', '.join(missing)}")
        props = schema.get("properties", {})
        for key, item in value.items():
            if "propertyNames" in schema:
                validate(key, schema["propertyNames"], f"{where} key", root)
            if key in props:
                validate(item, props[key], f"{where}.{key}", root)
            elif schema.get("additionalProperties") is False:
                raise fail(f"unknown field '{key}'")
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(item, schema["additionalProperties"], f"{where}.{key}", root)
