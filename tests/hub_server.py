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

Errors carry the Hub's `X-Error-Code` header, which huggingface_hub maps to exception types: a missing repo answers
`RepoNotFound` (401 without a token, 404 with one, as the Hub does so that private repos do not leak), a missing
revision `RevisionNotFound`, a missing file `EntryNotFound`; the token `INVALID_TOKEN` gets the Hub's 401 for bad
credentials. Every request is logged; any other URL or method answers a bare 404 and is logged as unexpected.

Run as a script (`python tests/hub_server.py SPEC.json`), this file is the client side instead: in a fresh process,
where `HF_HUB_OFFLINE` and `HF_ENDPOINT` from the environment still take effect, it loads each repo of the spec with
`VEEGAN.from_pretrained`, samples with a fixed seed, and writes what it got (see `_client_main`).
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

# stored in LFS on the Hub (its default .gitattributes): served through the CDN redirect
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".png", ".npz")
INVALID_TOKEN = "hf_invalid_token"
_COMMIT_DATE = "2025-01-01T00:00:00.000Z"


@dataclass(frozen=True)
class HubFile:
    """One file of a commit, with the hashes the Hub reports for it."""

    path: str
    data: bytes

    @property
    def is_lfs(self) -> bool:
        return self.path.endswith(LFS_SUFFIXES)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @cached_property
    def git_oid(self) -> str:
        """The git blob sha1 of what git stores: the LFS pointer for LFS files, the content otherwise."""
        stored = self.pointer if self.is_lfs else self.data
        return hashlib.sha1(b"blob %d\0" % len(stored) + stored).hexdigest()

    def tree_entry(self) -> dict:
        entry = {"type": "file", "oid": self.git_oid, "size": len(self.data), "path": self.path}
        if self.is_lfs:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": len(self.pointer)}
        return entry


@dataclass
class Repo:
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit
    commits: dict[str, dict[str, HubFile]] = field(default_factory=dict)  # commit -> path -> file


@dataclass(frozen=True)
class Request:
    """One request as the server saw it; `path` is unquoted, without the query."""

    server: str  # "hub" or "cdn"
    method: str
    path: str
    query: dict[str, str]
    authorized: bool
    status: int
    expected: bool  # False for a URL or method the Hub stand-in does not serve


@dataclass
class _Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    expected: bool = True


def _json(status: int, payload, **headers: str) -> _Response:
    return _Response(
        status, {"Content-Type": "application/json; charset=utf-8", **headers}, json.dumps(payload).encode()
    )


def _error(status: int, code: str | None, message: str, **headers: str) -> _Response:
    if code is not None:
        headers = {"X-Error-Code": code, **headers}
    return _json(status, {"error": message}, **{"X-Error-Message": message, **headers})


class FakeHub:
    """Model repos served over HTTP on 127.0.0.1, as the Hub serves them. Use as a context manager."""

    def __init__(self, page_size: int = 1000):
        self.page_size = page_size  # the Hub pages tree listings by 1000; a small value exercises pagination
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> LFS content, served by the CDN
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    # ------------------------------------------------------------------ content

    def add_commit(self, repo_id: str, files: dict[str, bytes], refs: tuple[str, ...] = ("main",)) -> str:
        """Adds a commit holding `files` (repo path -> bytes) and points `refs` at it; returns the commit sha."""
        hub_files = {path: HubFile(path, data) for path, data in sorted(files.items())}
        repo = self.repos.setdefault(repo_id, Repo())
        digest = hashlib.sha1(repo_id.encode())
        for f in hub_files.values():
            digest.update(f"{f.path}\0{f.git_oid}\0".encode())
        commit = digest.hexdigest()
        repo.commits[commit] = hub_files
        repo.refs.update(dict.fromkeys(refs, commit))
        self.blobs.update({f.sha256: f.data for f in hub_files.values() if f.is_lfs})
        return commit

    def add_folder(
        self, repo_id: str, folder: Path, refs: tuple[str, ...] = ("main",), extra: dict[str, bytes] | None = None
    ) -> str:
        """Adds a commit holding every file under `folder` (plus `extra`); returns the commit sha."""
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        return self.add_commit(repo_id, {**files, **(extra or {})}, refs)

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

    def handle(self, role: str, method: str, raw_path: str, authorization: str | None) -> _Response:
        url = urlsplit(raw_path)
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        query = dict(parse_qsl(url.query))
        if role == "cdn":
            response = self._cdn(method, segments)
        else:
            response = self._hub(method, segments, query, url.path, authorization)
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
                )
            )
        return response

    def _cdn(self, method: str, segments: list[str]) -> _Response:
        if method in ("GET", "HEAD") and len(segments) == 1 and segments[0] in self.blobs:
            data = self.blobs[segments[0]]
            return _Response(200, {"Content-Type": "application/octet-stream", "ETag": f'"{segments[0]}"'}, data)
        return _Response(404, body=b"Not Found", expected=False)

    def _hub(
        self, method: str, segments: list[str], query: dict[str, str], raw_path: str, authorization: str | None
    ) -> _Response:
        if authorization == f"Bearer {INVALID_TOKEN}":
            return _error(401, None, "Invalid credentials in Authorization header")
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
                "private": False,
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

    def _answer(self) -> None:
        response = self.hub.handle(self.role, self.command, self.path, self.headers.get("Authorization"))
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format, *args) -> None:  # quiet: the test reads `FakeHub.requests` instead
        pass


# ---------------------------------------------------------------------- client side, in a fresh process


def _client_main(spec_path: str) -> None:
    """Loads each `{"name", "repo_id", "kwargs"}` of the spec's `calls` and writes, to the spec's `out_dir`,
    `NAME.pt` (samples from seed 0 and the three state dicts) and `results.json` (card metadata, or the error)."""
    spec = json.loads(Path(spec_path).read_text())
    out_dir = Path(spec["out_dir"])

    import torch

    torch.set_num_threads(1)  # as conftest does in the parent: same kernels, same bits

    from veegan_hf import VEEGAN

    results = {}
    for call in spec["calls"]:
        try:
            pipe = VEEGAN.from_pretrained(call["repo_id"], **call.get("kwargs", {}))
        except Exception as err:
            results[call["name"]] = {
                "error": type(err).__name__,
                "mro": [c.__name__ for c in type(err).__mro__],
                "message": str(err),
                "cause": type(err.__cause__).__name__ if err.__cause__ is not None else None,
            }
            continue
        samples = pipe(batch_size=4, generator=torch.Generator().manual_seed(0), output_type="pt").samples
        networks = {
            "generator": pipe.generator,
            "reconstructor": pipe.reconstructor,
            "discriminator": pipe.discriminator,
        }
        state = {name: net.state_dict() for name, net in networks.items() if net is not None}
        torch.save({"samples": samples, "state": state}, out_dir / f"{call['name']}.pt")
        results[call["name"]] = {"error": None, "card_metadata": pipe.card_metadata}
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    _client_main(sys.argv[1])
