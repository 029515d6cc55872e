"""Where a hub lives: a local folder, an adapterxfer HTTP server (``hub serve``), or the Hugging Face Hub.

Every backend lists entries, downloads one file of an entry to a path (returning the sha256 of what it
wrote, hashed while streaming), and pushes a module folder with a proposed entry, returning the entry
as published (with its version). Callers verify what they download; nothing here trusts the hub.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlencode

from ..errors import UserError
from ..fileio import shared, write_json
from .card import render
from .index import NAME_RE, NotOnHub, add_card, check_path, commit, find, now, read_index, search, verify_staging

CHUNK = 1 << 20
HF_ENTRY = "adapterxfer-hub.json"  # in a Hugging Face repository: the entry of the tagged version


def open_hub(spec: str, token: str | None = None):
    """``http(s)://host:port`` (a ``hub serve``), ``hf://org[/repo]``, or a folder (``./dir``, ``file://dir``)."""
    if spec.startswith(("http://", "https://")):
        return HttpHub(spec, token)
    if spec.startswith("hf://"):
        return HfHub(spec, token)
    return LocalHub(spec.removeprefix("file://"))


def copy_hashed(src, target: Path) -> str:
    """Stream the binary file object ``src`` into ``target``; the sha256 of the bytes written."""
    h = hashlib.sha256()
    with open(target, "wb") as f:
        while block := src.read(CHUNK):
            h.update(block)
            f.write(block)
    return h.hexdigest()


def stage(folder: Path, proposed: dict, staging: Path) -> None:
    """Copy the proposed entry's files from the module ``folder`` into ``staging`` and verify the copies."""
    for rel in proposed["files"]:
        target = staging / check_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(Path(folder) / rel, "rb") as f:
            copy_hashed(f, target)
    verify_staging(staging, proposed)


class LocalHub:
    """A hub folder (``index.json``, ``modules/<name>/<version>/``); no server needed."""

    def __init__(self, root):
        self.root = Path(root).expanduser().resolve()

    def __str__(self):
        return str(self.root)

    def entries(self) -> list[dict]:
        return read_index(self.root)

    def entry(self, name: str, version: int | None = None) -> dict:
        return find(self.existing().entries(), name, version)

    def search(self, **filters) -> list[dict]:
        return search(self.existing().entries(), **filters)

    def existing(self) -> LocalHub:
        """This hub, refused when its folder does not exist (a mistyped path reads as no hub, not an empty one)."""
        if not self.root.is_dir():
            raise UserError(f"hub folder {self.root} does not exist (a folder hub is made by its first push)")
        return self

    def download(self, entry: dict, rel: str, target: Path) -> str:
        src = self.root / "modules" / entry["name"] / str(entry["version"]) / check_path(rel)
        try:
            with open(src, "rb") as f:
                return copy_hashed(f, target)
        except FileNotFoundError:
            raise UserError(f"{self}: {rel} of {entry['name']}@{entry['version']} is missing") from None

    def push(self, folder: Path, proposed: dict) -> dict:
        (self.root / "modules").mkdir(parents=True, exist_ok=True)
        staging = shared(Path(tempfile.mkdtemp(prefix=".push-", dir=self.root / "modules")))  # the version's folder
        try:
            stage(folder, proposed, staging)
            return commit(self.root, staging, proposed, lambda e: render(e, str(self)))
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class HttpHub:
    """A client of ``adapterxfer hub serve`` (its API under ``/api/v1``); ``token`` for pushes and
    token-only reads, sent as ``Authorization: Bearer``."""

    def __init__(self, url: str, token: str | None = None):
        self.url, self.token = url.rstrip("/"), token

    def __str__(self):
        return self.url

    def _open(self, method: str, path: str, body=None, headers=None, timeout: float = 60):
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read())["error"]
            except (ValueError, KeyError, TypeError, OSError):
                message = e.reason
            raise (NotOnHub if e.code == 404 else UserError)(f"hub {self.url}: {message} (HTTP {e.code})") from None
        except OSError as e:  # URLError, refused, timed out
            raise UserError(f"cannot reach hub {self.url}: {getattr(e, 'reason', e)}") from None

    def _json(self, method: str, path: str, payload=None):
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        with self._open(method, path, body, {"Content-Type": "application/json"} if body else {}) as r:
            return json.loads(r.read())

    def entries(self) -> list[dict]:
        return self._json("GET", "/api/v1/index")["entries"]

    def entry(self, name: str, version: int | None = None) -> dict:
        return self._json("GET", f"/api/v1/modules/{quote(name)}/{version or 'latest'}")

    def search(self, query: str = "", **filters) -> list[dict]:
        params = {k: v for k, v in {"q": query, **filters}.items() if v}
        return self._json("GET", "/api/v1/search?" + urlencode(params))["results"]

    def download(self, entry: dict, rel: str, target: Path) -> str:
        path = f"/api/v1/modules/{quote(entry['name'])}/{entry['version']}/files/{quote(check_path(rel))}"
        try:
            with self._open("GET", path) as r:
                digest = copy_hashed(r, target)
                if r.length:  # the server promised more bytes than came
                    raise OSError(f"{r.length} bytes missing")
                return digest
        except (OSError, http.client.HTTPException) as e:
            raise UserError(f"download of {rel} from {self.url} was interrupted ({e})") from None

    def push(self, folder: Path, proposed: dict) -> dict:
        upload = self._json("POST", "/api/v1/uploads", {})["upload"]
        for rel in proposed["files"]:
            path = Path(folder) / check_path(rel)
            with open(path, "rb") as f, self._open(
                    "PUT", f"/api/v1/uploads/{upload}/files/{quote(rel)}", f,
                    {"Content-Length": str(path.stat().st_size), "Content-Type": "application/octet-stream"},
                    timeout=600):
                pass
        return self._json("POST", f"/api/v1/uploads/{upload}/commit", proposed)


class HfHub:
    """``hf://org`` or ``hf://org/repo`` on the Hugging Face Hub: an entry's name is its repository, version
    N is the git tag ``vN``. The repository holds the module as plain adapters / peft load it, the model
    card as ``README.md`` and the entry as ``adapterxfer-hub.json``. Needs a network and a token
    (``HF_TOKEN`` or ``hf auth login``)."""

    def __init__(self, spec: str, token: str | None = None):
        parts = spec.removeprefix("hf://").strip("/").split("/")
        if not 1 <= len(parts) <= 2 or not all(NAME_RE.fullmatch(p) for p in parts):
            raise UserError(f"invalid Hugging Face hub {spec!r}: use hf://org or hf://org/repo")
        self.org, self.repo, self.token = parts[0], (parts[1] if len(parts) == 2 else None), token

    def __str__(self):
        return f"hf://{self.org}" + (f"/{self.repo}" if self.repo else "")

    def repo_id(self, name: str) -> str:
        if self.repo and name != self.repo:
            raise UserError(f"{self} is the repository '{self.repo}'; the name must be '{self.repo}', not '{name}'")
        return f"{self.org}/{name}"

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, token=self.token, **kwargs)
        except OSError as e:  # offline mode, no network, HTTP errors (requests' are OSErrors)
            line = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise UserError(f"the Hugging Face Hub could not be used ({type(e).__name__}: {line}); hf:// needs "
                            f"a network and, to push, a token (HF_TOKEN or `hf auth login`)") from None

    def versions(self, repo_id: str) -> list[int]:
        from huggingface_hub import HfApi

        refs = self._call(HfApi().list_repo_refs, repo_id)
        return sorted(int(t.name[1:]) for t in refs.tags if re.fullmatch(r"v[1-9][0-9]*", t.name))

    def entry(self, name: str, version: int | None = None) -> dict:
        from huggingface_hub import hf_hub_download

        repo_id = self.repo_id(name)
        version = version or max(self.versions(repo_id), default=None)
        if version is None:
            raise NotOnHub(f"{self}: '{repo_id}' has no adapterxfer version tags (v1, v2, ...)")
        path = self._call(hf_hub_download, repo_id, HF_ENTRY, revision=f"v{version}")
        return json.loads(Path(path).read_text(encoding="utf-8"))

    def search(self, **filters) -> list[dict]:
        raise UserError("search the Hugging Face Hub on its website (https://huggingface.co/models?other=adapterxfer); "
                        "hub search works on folder and HTTP hubs")

    def download(self, entry: dict, rel: str, target: Path) -> str:
        from huggingface_hub import hf_hub_download

        path = self._call(hf_hub_download, self.repo_id(entry["name"]), check_path(rel),
                          revision=f"v{entry['version']}")
        with open(path, "rb") as f:
            return copy_hashed(f, target)

    def push(self, folder: Path, proposed: dict) -> dict:
        from huggingface_hub import HfApi

        api, repo_id = HfApi(), self.repo_id(proposed["name"])
        self._call(api.create_repo, repo_id, exist_ok=True)
        version = max(self.versions(repo_id), default=0) + 1
        with tempfile.TemporaryDirectory() as tmp:
            entry = hf_folder(folder, proposed, version, Path(tmp), f"hf://{repo_id}")
            info = self._call(api.upload_folder, repo_id=repo_id, folder_path=tmp,
                              commit_message=f"{proposed['name']} version {version} (adapterxfer hub push)")
            self._call(api.create_tag, repo_id, tag=f"v{version}", revision=info.oid)
        return entry


def hf_folder(folder: Path, proposed: dict, version: int, out: Path, hub: str) -> dict:
    """Write into ``out`` what a push to the Hugging Face Hub uploads, and return its entry: the module files
    where plain adapters (``load_adapter``) and peft (``PeftModel.from_pretrained``) look for them, the model
    card with Hugging Face metadata, and the entry as ``adapterxfer-hub.json``."""
    stage(folder, proposed, out)
    entry = add_card({**proposed, "version": version, "created": now()}, out, lambda e: render(e, hub))
    write_json(out / HF_ENTRY, entry)
    return entry
