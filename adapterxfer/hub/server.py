"""``adapterxfer hub serve``: a hub folder behind HTTP (Flask on werkzeug's threaded server).

JSON API under ``/api/v1``: ``GET index``, ``GET search?q=&task=&method=&base_model=``,
``GET modules/<name>/<version|latest>``, ``GET modules/<name>/<version>/files/<path>``. A push is
``POST uploads`` (-> ``{"upload": id}``), one ``PUT uploads/<id>/files/<path>`` per file (the raw bytes,
streamed to a file in the upload folder), then ``POST uploads/<id>/commit`` with the proposed entry:
the files are verified against it and published under the index lock. Pushes need a token from
``--token-file`` (``Authorization: Bearer``); reads are public, or need a token too (``--read token``;
browsers may give it as the password of HTTP basic auth).

The web page at ``/`` lists, searches and filters the modules; ``/modules/<name>/<version>`` renders one
card with its results and the commands to use it. Server-rendered HTML, no JavaScript.
"""
from __future__ import annotations

import contextlib
import hmac
import re
import shutil
import time
import uuid
from pathlib import Path

from flask import Flask, jsonify, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import HTTPException

from ..errors import UserError
from .backends import copy_hashed
from .card import describe_method, render, result_rows, usage
from .index import (FORMAT, VERSION_RE, NotOnHub, check_name, check_path, commit, find, read_index, search,
                    verify_staging)

UPLOAD_RE = re.compile(r"[0-9a-f]{32}")
STALE_UPLOAD_S = 24 * 3600  # unfinished uploads older than this are removed when a new one starts


def read_tokens(path) -> list[str]:
    """Push tokens: one per line; blank lines and ``#`` comments are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserError(f"token file {path}: {e.strerror}") from None
    tokens = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not tokens:
        raise UserError(f"token file {path} holds no token (one per line)")
    return tokens


def create_app(root, token_file=None, read: str = "public") -> Flask:
    """The WSGI app serving the hub folder ``root`` (created if missing)."""
    if read not in ("public", "token"):
        raise UserError("--read must be public or token")
    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    tokens = read_tokens(token_file) if token_file else []
    app = Flask(__name__)
    app.add_template_filter(describe_method, "method")

    def error(status: int, message: str, challenge: str | None = None):
        if request.path.startswith("/api/"):
            response = jsonify(error=message)
        else:
            response = app.make_response(render_template("error.html", status=status, message=message))
        response.status_code = status
        if challenge:
            response.headers["WWW-Authenticate"] = f'{challenge} realm="adapterxfer hub"'
        return response

    @app.errorhandler(UserError)
    def user_error(e):
        return error(404 if isinstance(e, NotOnHub) else 400, str(e))

    @app.errorhandler(HTTPException)
    def http_error(e):
        return error(e.code, e.description)

    @app.before_request
    def authorize():
        write = request.method not in ("GET", "HEAD")
        if not (write or read == "token"):
            return None
        if write and not tokens:
            return error(403, "this hub takes no pushes (it was started without --token-file)")
        auth = request.authorization
        token = None if auth is None else (auth.token if auth.type == "bearer" else auth.password)
        if not token:
            return error(401, "a token is needed" + (" to push" if write else " to read this hub"),
                         "Bearer" if request.path.startswith("/api/") else "Basic")
        if not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
            return error(403, "invalid token")
        return None

    def hub_url() -> str:
        return request.host_url.rstrip("/")

    def entry_for(name: str, version) -> dict:
        check_name(name)
        if version != "latest" and not VERSION_RE.fullmatch(str(version)):
            raise NotOnHub(f"no version {version!r} of '{name}'")
        return find(read_index(root), name, None if version == "latest" else int(version))

    def filters() -> dict:
        return {"query": request.args.get("q", ""), "task": request.args.get("task", ""),
                "method": request.args.get("method", ""), "base_model": request.args.get("base_model", "")}

    # ------------------------------------------------------------ JSON API

    @app.get("/api/v1/index")
    def api_index():
        return {"format": FORMAT, "entries": read_index(root)}

    @app.get("/api/v1/search")
    def api_search():
        return {"results": search(read_index(root), **filters())}

    @app.get("/api/v1/modules/<name>/<version>")
    def api_entry(name, version):
        return entry_for(name, version)

    @app.get("/api/v1/modules/<name>/<int:version>/files/<path:rel>")
    def api_file(name, version, rel):
        entry = entry_for(name, version)
        if rel not in entry["files"]:
            raise NotOnHub(f"{name}@{version} has no file {rel!r}")
        return send_file(root / "modules" / name / str(version) / check_path(rel),
                         mimetype="application/octet-stream", etag=entry["files"][rel]["sha256"])

    def upload_dir(uid: str) -> Path:
        folder = root / ".uploads" / uid
        if not UPLOAD_RE.fullmatch(uid) or not folder.is_dir():
            raise NotOnHub(f"no upload {uid!r}")
        return folder

    @app.post("/api/v1/uploads")
    def api_new_upload():
        uploads = root / ".uploads"
        uploads.mkdir(exist_ok=True)
        for old in uploads.iterdir():
            with contextlib.suppress(FileNotFoundError):  # another request may remove it meanwhile
                if old.stat().st_mtime < time.time() - STALE_UPLOAD_S:
                    shutil.rmtree(old, ignore_errors=True)
        uid = uuid.uuid4().hex
        (uploads / uid).mkdir()
        return {"upload": uid}, 201

    @app.put("/api/v1/uploads/<uid>/files/<path:rel>")
    def api_put_file(uid, rel):
        target = upload_dir(uid) / check_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = copy_hashed(request.stream, target)
        return {"sha256": digest, "size": target.stat().st_size}, 201

    @app.post("/api/v1/uploads/<uid>/commit")
    def api_commit(uid):
        staging = upload_dir(uid)
        proposed = request.get_json(silent=True)
        try:
            if not isinstance(proposed, dict) or not isinstance(proposed.get("files"), dict):
                raise UserError("commit needs the proposed entry: a JSON object with its files "
                                "({path: {sha256, size}})")
            verify_staging(staging, proposed)
            entry = commit(root, staging, proposed, lambda e: render(e, hub_url()))
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # a refused commit discards its upload
        return entry, 201

    # ------------------------------------------------------------ web pages

    @app.get("/")
    def page_index():
        entries = read_index(root)
        options = {"task": sorted({e["task"] for e in entries}),
                   "method": sorted({e["method"]["method"] for e in entries}),
                   "base_model": sorted({e["base_model"]["id"] for e in entries})}
        return render_template("index.html", results=search(entries, **filters()), f=filters(), options=options,
                               names=len({e["name"] for e in entries}), hub=hub_url())

    @app.get("/modules/<name>")
    def page_latest(name):
        return redirect(url_for("page_module", name=name, version=entry_for(name, "latest")["version"]))

    @app.get("/modules/<name>/<int:version>")
    def page_module(name, version):
        entry = entry_for(name, version)
        versions = sorted(e["version"] for e in read_index(root) if e["name"] == name)
        return render_template("module.html", e=entry, versions=versions, use=usage(entry, hub_url()),
                               results=result_rows(entry))

    return app


def serve(root, host: str = "127.0.0.1", port: int = 8731, token_file=None, read: str = "public", log=print):
    """Serve ``root`` until interrupted (port 0: any free port; the line logged says which)."""
    from werkzeug.serving import make_server

    app = create_app(root, token_file, read)
    server = make_server(host, port, app, threaded=True)
    log(f"serving hub {Path(root).resolve()} on http://{host}:{server.port} "
        f"(reads: {read}; pushes: {'with a token' if token_file else 'off'})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
