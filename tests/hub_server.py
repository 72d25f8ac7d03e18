"""A stand-in for the Hugging Face Hub on 127.0.0.1, serving exactly what `snapshot_download` asks for.

The endpoints, headers and JSON fields are those that huggingface_hub 2.x reads (`HfApi.model_info`,
`HfApi.list_repo_tree`, `get_hf_file_metadata`, `http_get`):

- `GET /api/models/{repo}/revision/{rev}` (and `/api/models/{repo}`): the model info; the client needs `sha`.
- `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=&expand=`: the listing, as the Hub's
  `{"type", "oid", "size", "path", "lfs": {"oid", "size", "pointerSize"}}` entries, paginated with a
  `Link: <...>; rel="next"` header.
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: a regular file answers 200 with `ETag` (its git blob sha1),
  `X-Repo-Commit` and `Content-Length`; an LFS file answers 302 to a "CDN" on another origin (another port) with
  `X-Linked-Etag` (its sha256), `X-Linked-Size` and `X-Repo-Commit`, as the Hub does.
- `GET {cdn}/{sha256}`: the content of an LFS file.
- `GET /api/agent-harnesses`: an empty registry (a client without `HF_HUB_DISABLE_TELEMETRY=1` asks for it).

Errors carry the Hub's `X-Error-Code` header, which huggingface_hub maps to exception types: a missing repo answers
`RepoNotFound` (401 without a token, 404 with one, as the Hub does so that private repos do not leak), a missing
revision `RevisionNotFound`, a missing file `EntryNotFound`; the token `INVALID_TOKEN` gets the Hub's 401 for bad
credentials. Every request is logged; any other URL or method answers a bare 404 and is logged as unexpected.

Uploads (`create_repo`, `upload_folder`, hence `push_to_hub`) are served by `hub_uploads.py`, whose docstring lists
them.

`FakeHub.files(repo_id, revision="main") -> dict[str, bytes]` returns what a revision (branch, tag or commit) holds,
repo path -> content, so that a test can check what was pushed; `FakeHub.repos[repo_id].messages` holds each pushed
commit's summary, and each logged `Request` keeps its body (the commit's ndjson, for one).

The repos' storage (files, hashes, refs) is `hub_repos.py`; `hub_client.py` is the client side, run in a fresh
process (`python tests/hub_client.py SPEC.json`).
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from tests.hub_repos import (
    _COMMIT_DATE,
    INVALID_TOKEN,
    HubFile,
    Repo,
)
from tests.hub_responses import Fault, Request, _error, _json, _Response
from tests.hub_uploads import UploadEndpoints


class FakeHub(UploadEndpoints):
    """Model repos served over HTTP on 127.0.0.1, as the Hub serves them. Use as a context manager."""

    def __init__(self, page_size: int = 1000, lfs_uploads: bool = False):
        self.page_size = page_size  # the Hub pages tree listings by 1000; a small value exercises pagination
        # preupload answers "lfs" for LFS_SUFFIXES (git-lfs batch API, needs HF_HUB_DISABLE_XET=1 clients) if True,
        # "regular" for every file otherwise (see the module docstring)
        self.lfs_uploads = lfs_uploads
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> LFS content, served by the CDN
        self.requests: list[Request] = []
        self.faults: list[Fault] = []  # injected by `inject`, consumed by the requests they hit
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    # ------------------------------------------------------------------ content

    def add_commit(
        self,
        repo_id: str,
        files: dict[str, bytes],
        refs: tuple[str, ...] = ("main",),
        message: str | None = None,
        parent: str | None = None,
    ) -> str:
        """Adds a commit holding `files` (repo path -> bytes) and points `refs` at it; returns the commit sha.

        `message` and `parent` are what an upload gives; the parent goes into the sha (as in git), so that pushing
        back an earlier state makes a new commit rather than reusing the old one."""
        hub_files = {path: HubFile(path, data) for path, data in sorted(files.items())}
        repo = self.repos.setdefault(repo_id, Repo())
        digest = hashlib.sha1(repo_id.encode())
        if parent is not None:
            digest.update(f"parent {parent}\0".encode())
        for f in hub_files.values():
            digest.update(f"{f.path}\0{f.git_oid}\0".encode())
        commit = digest.hexdigest()
        repo.commits[commit] = hub_files
        if message is not None:
            repo.messages[commit] = message
        repo.refs.update(dict.fromkeys(refs, commit))
        self.blobs.update({f.sha256: f.data for f in hub_files.values() if f.is_lfs})
        return commit

    def add_folder(
        self, repo_id: str, folder: Path, refs: tuple[str, ...] = ("main",), extra: dict[str, bytes] | None = None
    ) -> str:
        """Adds a commit holding every file under `folder` (plus `extra`); returns the commit sha."""
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        return self.add_commit(repo_id, {**files, **(extra or {})}, refs)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """What `revision` (a branch, tag or commit sha) of `repo_id` holds: repo path -> content (LFS files as their
        content, not their pointer). Raises KeyError for a missing repo or revision."""
        repo = self.repos[repo_id]
        commit = repo.refs.get(revision, revision)
        return {path: f.data for path, f in repo.commits[commit].items()}

    # ------------------------------------------------------------------ what the server saw

    def resolved(self, repo_id: str, commit: str | None = None) -> set[str]:
        """The repo files asked for through `/resolve/` (HEAD or GET), optionally at one revision."""
        prefix = f"/{repo_id}/resolve/"
        paths = set()
        for r in self.requests:
            if r.server == "hub" and r.path.startswith(prefix):
                revision, _, path = r.path[len(prefix) :].partition("/")
                if commit is None or revision == commit:
                    paths.add(path)
        return paths

    def unexpected(self) -> list[Request]:
        return [r for r in self.requests if not r.expected]

    # ------------------------------------------------------------------ server

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def __enter__(self) -> FakeHub:
        for role in ("hub", "cdn"):
            handler = type(f"{role.title()}Handler", (_Handler,), {"hub": self, "role": role})
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name=f"fake-{role}", daemon=True).start()
            self._servers.append(server)
        return self

    def __exit__(self, *exc) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    # ------------------------------------------------------------------ routing

    def inject(self, method: str, path: str, kind: str, times: int = 1, delay: float = 30.0) -> Fault:
        """The next `times` `method` requests whose unquoted path matches the regex `path` fail as `kind`: "500",
        "timeout" (the answer comes after `delay` seconds) or "drop" (half the body, then the connection closes)."""
        if kind not in ("500", "timeout", "drop"):
            raise ValueError(f"kind={kind!r}: inject '500', 'timeout' or 'drop'.")
        fault = Fault(method, path, kind, times, delay)
        with self._lock:
            self.faults.append(fault)
        return fault

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and re.search(fault.path, path):
                    fault.times -= 1
                    return fault
        return None

    def handle(self, role: str, method: str, raw_path: str, authorization: str | None, body: bytes = b"") -> _Response:
        url = urlsplit(raw_path)
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        query = dict(parse_qsl(url.query))
        fault = self._fault_for(method, "/" + "/".join(segments))
        if fault is not None and fault.kind == "500":
            response = _error(500, None, "Internal Error (injected)")
        elif role == "cdn":
            response = self._cdn(method, segments, body)
        else:
            try:
                response = self._hub(method, segments, query, url.path, authorization, body)
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                # a body this stand-in cannot read (JSON, base64, missing keys): the Hub's 400, and a test failure
                response = _error(400, None, f"Bad request: {type(err).__name__}: {err}")
                response.expected = False
        if fault is not None and fault.kind == "timeout":
            response.delay = fault.delay
        if fault is not None and fault.kind == "drop":
            response.drop = True
        with self._lock:
            self.requests.append(
                Request(
                    role,
                    method,
                    "/" + "/".join(segments),
                    query,
                    authorization is not None,
                    response.status,
                    response.expected,
                    body,
                )
            )
        return response

    def _cdn(self, method: str, segments: list[str], body: bytes) -> _Response:
        if method in ("GET", "HEAD") and len(segments) == 1 and segments[0] in self.blobs:
            data = self.blobs[segments[0]]
            return _Response(200, {"Content-Type": "application/octet-stream", "ETag": f'"{segments[0]}"'}, data)
        if method == "PUT" and len(segments) == 1 and len(segments[0]) == 64:
            # the LFS batch API's upload action, as to S3: the object is stored under its sha256, which must match
            if hashlib.sha256(body).hexdigest() != segments[0]:
                return _Response(400, body=b"Content does not match its sha256")
            with self._lock:
                self.blobs[segments[0]] = body
            return _Response(200, {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        return _Response(404, body=b"Not Found", expected=False)

    def _hub(
        self,
        method: str,
        segments: list[str],
        query: dict[str, str],
        raw_path: str,
        authorization: str | None,
        body: bytes = b"",
    ) -> _Response:
        if authorization == f"Bearer {INVALID_TOKEN}":
            return _error(401, None, "Invalid credentials in Authorization header")
        if method == "POST":
            response = self._upload(segments, query, authorization, body)
            if response is not None:
                return response
        if method == "GET" and segments == ["api", "agent-harnesses"]:
            # fetched for the user-agent unless HF_HUB_DISABLE_TELEMETRY=1: an empty registry detects no agent
            return _json(200, {"standardEnvVars": [], "harnesses": {}})
        if method == "GET" and segments[:2] == ["api", "models"] and len(segments) >= 4:
            repo_id, rest = "/".join(segments[2:4]), segments[4:]
            if not rest:
                return self._model_info(repo_id, "main", authorization)
            if rest[0] == "revision" and len(rest) == 2:
                return self._model_info(repo_id, rest[1], authorization)
            if rest[0] == "tree" and len(rest) >= 2:
                return self._tree(repo_id, rest[1], "/".join(rest[2:]), query, raw_path, authorization)
        if method in ("GET", "HEAD") and len(segments) >= 5 and segments[2] == "resolve":
            return self._resolve("/".join(segments[:2]), segments[3], "/".join(segments[4:]), authorization)
        return _Response(404, body=b"Not Found", expected=False)

    # ------------------------------------------------------------------ uploads

    def _commit(self, repo_id: str, revision: str, authorization: str | None) -> str | _Response:
        """A revision's commit sha, or the error response the Hub gives."""
        repo = self.repos.get(repo_id)
        if repo is None:
            # the Hub answers 401 to anonymous requests and 404 to authenticated ones
            return _error(404 if authorization else 401, "RepoNotFound", "Repository not found")
        if revision in repo.refs:
            return repo.refs[revision]
        if revision in repo.commits:
            return revision
        return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def _model_info(self, repo_id: str, revision: str, authorization: str | None) -> _Response:
        commit = self._commit(repo_id, revision, authorization)
        if isinstance(commit, _Response):
            return commit
        files = self.repos[repo_id].commits[commit]
        return _json(
            200,
            {
                "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit,
                "lastModified": _COMMIT_DATE,
                "createdAt": _COMMIT_DATE,
                "private": self.repos[repo_id].private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "library_name": "veegan-hf",
                "tags": [],
                "siblings": [{"rfilename": path} for path in files],
            },
        )

    def _tree(
        self,
        repo_id: str,
        revision: str,
        folder: str,
        query: dict[str, str],
        raw_path: str,
        authorization: str | None,
    ) -> _Response:
        commit = self._commit(repo_id, revision, authorization)
        if isinstance(commit, _Response):
            return commit
        files = self.repos[repo_id].commits[commit]
        recursive = query.get("recursive", "false").lower() in ("true", "1")
        prefix = f"{folder}/" if folder else ""
        entries: dict[str, dict] = {}
        for path, f in files.items():
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            # the folders on the way (only the first one unless recursive), then the file itself
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                sub = prefix + "/".join(parts[:depth])
                oid = hashlib.sha1(sub.encode()).hexdigest()
                entries.setdefault(sub, {"type": "directory", "oid": oid, "size": 0, "path": sub})
            if recursive or len(parts) == 1:
                entries[path] = f.tree_entry()
        if folder and not entries:
            return _error(404, "EntryNotFound", f"{folder} does not exist on {revision}", **{"X-Repo-Commit": commit})
        listing = [entries[k] for k in sorted(entries)]
        cursor = int(query.get("cursor", 0))
        page, headers = listing[cursor : cursor + self.page_size], {}
        if cursor + self.page_size < len(listing):
            next_query = urlencode({**query, "cursor": cursor + self.page_size})
            headers["Link"] = f'<{self.endpoint}{raw_path}?{next_query}>; rel="next"'
        return _json(200, page, **headers)

    def _resolve(self, repo_id: str, revision: str, path: str, authorization: str | None) -> _Response:
        commit = self._commit(repo_id, revision, authorization)
        if isinstance(commit, _Response):
            return commit
        f = self.repos[repo_id].commits[commit].get(path)
        if f is None:
            return _error(404, "EntryNotFound", "Entry not found", **{"X-Repo-Commit": commit})
        headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if not f.is_lfs:
            headers.update({"ETag": f'"{f.git_oid}"', "Content-Type": "text/plain; charset=utf-8"})
            return _Response(200, headers, f.data)
        location = f"{self.cdn}/{f.sha256}"
        headers.update(
            {
                "Location": location,
                "ETag": f'"{f.git_oid}"',
                "X-Linked-Etag": f'"{f.sha256}"',
                "X-Linked-Size": str(len(f.data)),
                "Content-Type": "text/plain; charset=utf-8",
            }
        )
        return _Response(302, headers, f"Found. Redirecting to {location}".encode())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects from the Hub
    hub: FakeHub
    role: str

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # an upload streamed from a file object
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers, up to the blank line
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self) -> None:
        body = self._body()  # read whatever the method, or the next request on this connection starts mid-body
        response = self.hub.handle(self.role, self.command, self.path, self.headers.get("Authorization"), body)
        if response.delay:
            time.sleep(response.delay)
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            if response.drop:  # half the promised body, then the connection goes: the client reads too few bytes
                self.wfile.write(response.body[: len(response.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format, *args) -> None:  # quiet: the test reads `FakeHub.requests` instead
        pass
