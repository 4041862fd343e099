"""A local stand-in for the Hugging Face Hub: an HTTP server on 127.0.0.1 that serves dataset folders
through the Hub's own endpoints, so huggingface_hub (``snapshot_download``, ``HfFileSystem``, range
reads) and FFmpeg's HTTP client talk to it exactly as they talk to huggingface.co. No network is
touched. Every request is logged, so tests can check what was fetched and with which byte ranges.

Endpoints (those huggingface_hub 1.x calls for reading datasets):
  GET  /api/datasets/<repo>/revision/<rev>      repository info (sha, siblings)
  GET  /api/datasets/<repo>/refs                branches and tags
  GET  /api/datasets/<repo>/tree/<rev>[/<dir>]  listing (``recursive=1`` for the whole tree)
  POST /api/datasets/<repo>/paths-info/<rev>    entries for given paths
  HEAD/GET /datasets/<repo>/resolve/<rev>/<path>  the file, honouring ``Range: bytes=a-b``

and, for uploads (``push_to_hub``: files are accepted as the Hub's "regular" uploads, inline in
the commit, so no LFS or Xet storage is involved):
  POST /api/repos/create                        a new, empty dataset repository
  POST /api/validate-yaml                       a README's card metadata (always valid here)
  POST /api/datasets/<repo>/preupload/<rev>     upload modes (all "regular")
  POST /api/datasets/<repo>/commit/<rev>        files added or deleted (ndjson)
  POST /api/datasets/<repo>/tag/<rev>, DELETE /api/datasets/<repo>/tag/<tag>

Errors carry the ``X-Error-Code`` header the Hub sends (RepoNotFound, RevisionNotFound,
EntryNotFound), which huggingface_hub turns into its typed exceptions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class HostedRepo:
    folder: Path
    tags: list[str]
    sha: str

    def revision_exists(self, revision: str) -> bool:
        return revision in ("main", self.sha, *self.tags)

    def files(self) -> list[str]:
        return sorted(
            str(path.relative_to(self.folder))
            for path in self.folder.rglob("*")
            if path.is_file() and ".cache" not in path.relative_to(self.folder).parts
        )


@dataclass
class LoggedRequest:
    method: str
    path: str  # the URL path, unquoted
    range: str | None
    authorization: str | None


@dataclass
class LocalHub:
    """``with LocalHub() as hub: hub.add_dataset("user/name", folder)``; ``hub.endpoint`` is the
    base URL to give huggingface_hub (``HF_ENDPOINT``)."""

    repos: dict[str, HostedRepo] = field(default_factory=dict)
    requests: list[LoggedRequest] = field(default_factory=list)
    # Responses to fail on purpose: a URL-path substring -> HTTP status (e.g. to cut a file off).
    failures: dict[str, int] = field(default_factory=dict)
    # Commits received, per repository: the paths each one added.
    commits: dict[str, list[list[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._uploads = Path(tempfile.mkdtemp(prefix="local-hub-"))

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_dataset(self, repo_id: str, folder: Path, tags: tuple[str, ...] = ("v3.0",)) -> HostedRepo:
        sha = hashlib.sha1(f"{repo_id}:{folder}".encode()).hexdigest()
        repo = HostedRepo(Path(folder), list(tags), sha)
        self.repos[repo_id] = repo
        return repo

    def point_hub_here(self, monkeypatch: Any) -> None:
        """Sends huggingface_hub (and dexloop) here: ``HF_ENDPOINT`` set and offline mode lifted, also
        in huggingface_hub's constants, which it reads once at import (the tests set HF_HUB_OFFLINE
        before anything is imported)."""
        import huggingface_hub.constants

        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_ENDPOINT", self.endpoint)

    def log(self, request: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def file_requests(self, suffix: str = "") -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.requests if "/resolve/" in r.path and r.path.endswith(suffix)]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def __enter__(self) -> LocalHub:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        shutil.rmtree(self._uploads, ignore_errors=True)

    def create_repo(self, repo_id: str) -> HostedRepo:
        folder = self._uploads / repo_id
        folder.mkdir(parents=True)
        return self.add_dataset(repo_id, folder, tags=())


_API = re.compile(
    r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/(?P<verb>revision|refs|tree|paths-info|preupload|commit|tag)"
    r"(?:/(?P<rest>.*))?$"
)
_RESOLVE = re.compile(r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


def _handler_for(hub: LocalHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as FFmpeg's and httpx's clients expect

        def log_message(self, *args: object) -> None:  # the log is hub.requests, not stderr
            pass

        # -- dispatch ----------------------------------------------------------------------------

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            hub.log(LoggedRequest(method, path, self.headers.get("Range"), self.headers.get("Authorization")))
            for fragment, status in hub.failures.items():
                if fragment in path:
                    return self._error(status, "Injected", f"injected failure for {path}")
            body = b""
            if method == "POST":
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if match := _RESOLVE.match(url.path):
                return self._resolve(match, head=method == "HEAD")
            if url.path == "/api/validate-yaml" and method == "POST":  # a README's card metadata
                return self._json({"errors": [], "warnings": []})
            if url.path == "/api/repos/create" and method == "POST":
                return self._create_repo(json.loads(body))
            if (match := _API.match(url.path)) and match["verb"] in ("preupload", "commit", "tag"):
                return self._write(method, match, body)
            if match := _API.match(url.path):
                return self._api(match, parse_qs(url.query), body)
            self._error(404, "EntryNotFound", f"no route {path}")

        def do_GET(self) -> None:
            self._route("GET")

        def do_HEAD(self) -> None:
            self._route("HEAD")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        # -- responses ---------------------------------------------------------------------------

        def _json(self, value: object) -> None:
            body = json.dumps(value).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: str, message: str, **extra: str) -> None:
            body = json.dumps({"error": message, **extra}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _repo(self, repo_id: str, revision: str | None) -> HostedRepo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}")
                return None
            if revision is not None and not repo.revision_exists(revision):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return None
            return repo

        # -- API ---------------------------------------------------------------------------------

        def _api(self, match: re.Match, query: dict[str, list[str]], body: bytes) -> None:
            repo_id, verb, rest = match["repo"], match["verb"], match["rest"] or ""
            if verb == "refs":
                repo = self._repo(repo_id, None)
                if repo is not None:
                    ref = {"targetCommit": repo.sha}
                    self._json(
                        {
                            "branches": [{"name": "main", "ref": "refs/heads/main", **ref}],
                            "tags": [{"name": t, "ref": f"refs/tags/{t}", **ref} for t in repo.tags],
                            "converts": [],
                        }
                    )
                return
            revision, _, directory = rest.partition("/")
            revision, directory = unquote(revision), unquote(directory).strip("/")
            repo = self._repo(repo_id, revision)
            if repo is None:
                return
            if verb == "revision":
                self._json(
                    {
                        "id": repo_id,
                        "sha": repo.sha,
                        "private": False,
                        "siblings": [{"rfilename": name} for name in repo.files()],
                        "tags": [],
                    }
                )
            elif verb == "tree":
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                entries = self._tree(repo, directory, recursive)
                if entries is None:
                    self._error(404, "EntryNotFound", f"{directory} does not exist on {revision}")
                else:
                    self._json(entries)
            else:  # paths-info
                form = parse_qs(body.decode())
                if not form and body.startswith(b"{"):
                    form = {k: v if isinstance(v, list) else [v] for k, v in json.loads(body).items()}
                self._json([e for p in form.get("paths", []) if (e := self._entry(repo, p.strip("/")))])

        def _entry(self, repo: HostedRepo, relative: str) -> dict | None:
            path = repo.folder / relative
            if path.is_file():
                return {"type": "file", "path": relative, "size": path.stat().st_size, "oid": _oid(path)}
            if path.is_dir():
                return {"type": "directory", "path": relative, "size": 0, "oid": "0" * 40}
            return None

        def _tree(self, repo: HostedRepo, directory: str, recursive: bool) -> list[dict] | None:
            base = repo.folder / directory
            if not base.is_dir():
                return None
            children = base.rglob("*") if recursive else base.iterdir()
            entries = []
            for child in sorted(children):
                relative = str(child.relative_to(repo.folder))
                if ".cache" in Path(relative).parts:
                    continue
                entries.append(self._entry(repo, relative))
            return entries

        # -- uploads -----------------------------------------------------------------------------

        def _create_repo(self, request: dict) -> None:
            repo_id = (
                f"{request['organization']}/{request['name']}"
                if request.get("organization")
                else request["name"]
            )
            if request.get("type") != "dataset":
                return self._error(400, "BadRequest", f"only dataset repositories, not {request.get('type')}")
            if repo_id in hub.repos:  # the Hub's answer names the existing repository
                return self._error(
                    409,
                    "Conflict",
                    "You already created this dataset repo",
                    url=f"{hub.endpoint}/datasets/{repo_id}",
                )
            hub.create_repo(repo_id)
            self._json({"url": f"{hub.endpoint}/datasets/{repo_id}", "name": repo_id})

        def _write(self, method: str, match: re.Match, body: bytes) -> None:
            repo_id, verb, rest = match["repo"], match["verb"], unquote(match["rest"] or "")
            repo = self._repo(repo_id, None)
            if repo is None:
                return
            if verb == "preupload":
                files = json.loads(body)["files"]
                modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                return self._json({"files": modes, "commitOid": repo.sha})
            if verb == "commit":
                added = []
                for line in body.splitlines():
                    entry = json.loads(line)
                    if entry["key"] == "file":
                        target = repo.folder / entry["value"]["path"]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(base64.b64decode(entry["value"]["content"]))
                        added.append(entry["value"]["path"])
                    elif entry["key"] == "deletedFile":
                        (repo.folder / entry["value"]["path"]).unlink(missing_ok=True)
                    elif entry["key"] != "header":
                        return self._error(400, "BadRequest", f"unsupported commit entry {entry['key']}")
                hub.commits.setdefault(repo_id, []).append(added)
                repo.sha = hashlib.sha1(f"{repo.sha}:{len(hub.commits[repo_id])}".encode()).hexdigest()
                url = f"{hub.endpoint}/datasets/{repo_id}/commit/{repo.sha}"
                return self._json({"commitUrl": url, "commitOid": repo.sha, "pullRequestUrl": None})
            if method == "DELETE":  # tag/<tag>
                if rest not in repo.tags:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rest}")
                repo.tags.remove(rest)
                return self._json({})
            tag = json.loads(body)["tag"]  # POST tag/<revision>
            if tag in repo.tags:
                return self._error(409, "Conflict", f"tag {tag} exists")
            repo.tags.append(tag)
            self._json({})

        # -- files -------------------------------------------------------------------------------

        def _resolve(self, match: re.Match, head: bool) -> None:
            repo = self._repo(match["repo"], unquote(match["rev"]))
            if repo is None:
                return
            relative = unquote(match["path"])
            path = repo.folder / relative
            if not path.is_file() or ".." in Path(relative).parts:
                return self._error(404, "EntryNotFound", f"{relative} does not exist")
            size = path.stat().st_size
            headers = {
                "X-Repo-Commit": repo.sha,
                "ETag": f'"{_oid(path)}"',
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            }
            wanted = self.headers.get("Range")
            start, end, status = 0, size - 1, 200
            if wanted:
                found = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
                if found is None or (not found[1] and not found[2]):
                    return self._error(416, "RangeNotSatisfiable", f"bad range {wanted}")
                if found[1]:
                    start = int(found[1])
                    end = min(int(found[2]), size - 1) if found[2] else size - 1
                else:  # a suffix range: the last N bytes
                    start, end = max(0, size - int(found[2])), size - 1
                if start >= size or start > end:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            length = end - start + 1
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if head:
                return
            with path.open("rb") as source:
                source.seek(start)
                remaining = length
                try:
                    while remaining > 0:
                        block = source.read(min(remaining, 1 << 16))
                        if not block:
                            break
                        self.wfile.write(block)
                        remaining -= len(block)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client read what it needed (FFmpeg drops a connection to seek)

    return Handler


def _oid(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
