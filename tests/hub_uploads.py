"""The Hub stand-in's upload endpoints (`create_repo`, `validate-yaml`, `preupload`, the git-lfs batch API and the
ndjson commit), as `HfApi.upload_folder` and `push_to_hub` send them; `FakeHub` in `hub_server.py` mixes them in.

Uploads are served as `HfApi.create_repo` and `HfApi.upload_folder` (hence `push_to_hub`) send them; each needs a
token (no Authorization header answers 401):

- `POST /api/repos/create` `{"name", "organization", "visibility"?}`: creates the repo with the Hub's initial commit
  (a `.gitattributes` marking `LFS_SUFFIXES` as LFS) on `main` and answers `{"url", "name", "id"}`; an existing repo
  answers 409 with the same `url`, which `create_repo(..., exist_ok=True)` accepts. A repo without an organization
  goes to the token's user, `USER`.
- `POST /api/validate-yaml` `{"content", "repoType"}`: the README's front matter must parse as a YAML mapping
  (400 with `errors` otherwise), as the Hub checks before any upload.
- `POST /api/models/{repo}/preupload/{rev}` `{"files": [{"path", "sample", "size"}]}`: answers each file's
  `uploadMode` and the `oid` of the file already there (so that unchanged files are skipped, as on the Hub). Every
  file is "regular" (base64 in the commit) by default: the Hub answers "lfs" for weights, but a client with `hf_xet`
  installed (huggingface_hub's default) then uploads them through Xet storage, which this stand-in does not serve.
  With `FakeHub(lfs_uploads=True)`, files of `LFS_SUFFIXES` are "lfs", for clients with `HF_HUB_DISABLE_XET=1`:
- `POST /{repo}.git/info/lfs/objects/batch`: the git-lfs batch API; each object not stored yet gets an `upload`
  action (`PUT {cdn}/{sha256}`, checked against its sha256) and a `verify` action
  (`POST /{repo}.git/info/lfs/objects/verify`).
- `POST /api/models/{repo}/commit/{rev}`: the ndjson commit (a `header` line, then `file` lines with base64
  content, `lfsFile` lines naming uploaded LFS objects, `deletedFile`/`deletedFolder` lines) applied on top of the
  branch's head with `add_commit`; a stale `parentCommit` answers 412. It answers `{"success", "commitOid",
  "commitUrl", "hookOutput"}`. Pull requests (`create_pr=1`) are not served: that answers a 404 logged as unexpected.
  Gitignore rules are not applied, and private repos are readable by anyone (only `private` in the model info shows).
"""

from __future__ import annotations

import base64
import hashlib
import json

from tests.hub_repos import _FRONT_MATTER, GITATTRIBUTES, LFS_SUFFIXES, USER, _git_blob_sha1
from tests.hub_responses import _error, _json, _Response


class UploadEndpoints:
    """The upload side of `FakeHub`: every method answers one endpoint and reads or writes `self.repos`."""

    def _upload(
        self, segments: list[str], query: dict[str, str], authorization: str | None, body: bytes
    ) -> _Response | None:
        """The POSTs of `create_repo` and `upload_folder`, or None for a URL that is not one of them."""
        if segments == ["api", "validate-yaml"]:
            return self._validate_yaml(json.loads(body))
        api = segments[:2] == ["api", "models"] and len(segments) == 6 and segments[4] in ("preupload", "commit")
        lfs = len(segments) == 6 and segments[1].endswith(".git") and segments[2:5] == ["info", "lfs", "objects"]
        lfs = lfs and segments[5] in ("batch", "verify")
        if not (segments == ["api", "repos", "create"] or api or lfs):
            return None
        if authorization is None:  # every write needs a token
            return _error(401, None, "You must be authenticated to do this: pass a token")
        if api and segments[4] == "preupload":
            return self._preupload("/".join(segments[2:4]), segments[5], json.loads(body), authorization)
        if api:
            return self._commit_upload("/".join(segments[2:4]), segments[5], query, body, authorization)
        if lfs and segments[5] == "batch":
            return self._lfs_batch(f"{segments[0]}/{segments[1].removesuffix('.git')}", json.loads(body))
        if lfs:
            return self._lfs_verify(json.loads(body))
        return self._create_repo(json.loads(body))

    def _create_repo(self, payload: dict) -> _Response:
        if payload.get("type", "model") != "model":
            return _Response(404, body=b"Not Found", expected=False)  # datasets and spaces are not served
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        url = f"{self.endpoint}/{repo_id}"
        with self._lock:
            if repo_id in self.repos:
                # what the Hub answers; `create_repo(exist_ok=True)` takes the url from it
                return _json(409, {"error": "You already created this model repo", "url": url})
            self.add_commit(repo_id, {".gitattributes": GITATTRIBUTES}, message="initial commit")
            self.repos[repo_id].private = payload.get("visibility") == "private"
        return _json(200, {"url": url, "name": repo_id, "id": hashlib.md5(repo_id.encode()).hexdigest()[:24]})

    def _validate_yaml(self, payload: dict) -> _Response:
        import yaml  # a dependency of huggingface_hub

        match = _FRONT_MATTER.match(payload["content"])
        if match is None:
            return _json(200, {"errors": [], "warnings": [{"message": "Empty or missing yaml metadata"}]})
        try:
            metadata = yaml.safe_load(match.group(1))
        except yaml.YAMLError as err:
            metadata, problem = None, str(err)
        else:
            problem = "the front matter is not a YAML mapping"
        if not isinstance(metadata, dict):
            return _json(400, {"errors": [{"message": problem}], "warnings": []}, **{"X-Error-Message": problem})
        return _json(200, {"errors": [], "warnings": []})

    def _preupload(self, repo_id: str, revision: str, payload: dict, authorization: str) -> _Response:
        commit = self._commit(repo_id, revision, authorization)
        if isinstance(commit, _Response):
            return commit
        existing = self.repos[repo_id].commits[commit]
        answers = []
        for entry in payload["files"]:
            path = entry["path"]
            lfs = self.lfs_uploads and path.endswith(LFS_SUFFIXES) and entry["size"] > 0
            answer = {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            if path in existing:
                # the oid the client computes locally: sha256 for an LFS upload, the git blob sha1 of the content
                # for a regular one; equal means unchanged, and the client leaves the file out of the commit
                data = existing[path].data
                answer["oid"] = hashlib.sha256(data).hexdigest() if lfs else _git_blob_sha1(data)
            answers.append(answer)
        return _json(200, {"files": answers, "commitOid": commit})

    def _lfs_batch(self, repo_id: str, payload: dict) -> _Response:
        if repo_id not in self.repos:
            return _error(404, "RepoNotFound", "Repository not found")
        if payload.get("operation") != "upload":
            return _Response(404, body=b"Not Found", expected=False)  # downloads go through /resolve/
        objects = []
        for obj in payload["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.blobs:  # an object already stored gets no actions: the client skips it
                answer["actions"] = {
                    "upload": {"href": f"{self.cdn}/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{self.endpoint}/{repo_id}.git/info/lfs/objects/verify", "header": {}},
                }
            objects.append(answer)
        return _Response(
            200,
            {"Content-Type": "application/vnd.git-lfs+json"},
            json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
        )

    def _lfs_verify(self, payload: dict) -> _Response:
        data = self.blobs.get(payload["oid"])
        if data is None or len(data) != payload["size"]:
            return _error(404, None, f"LFS object {payload['oid']} of size {payload['size']} was not uploaded")
        return _json(200, {"success": True})

    def _commit_upload(
        self, repo_id: str, revision: str, query: dict[str, str], body: bytes, authorization: str
    ) -> _Response:
        if query.get("create_pr") in ("1", "true"):
            return _Response(404, body=b"Not Found", expected=False)  # pull requests are not served
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            return _error(400, None, "The first line of a commit must be its header")
        header = lines[0]["value"]
        with self._lock:  # the head must not move between reading it and committing on top of it
            head = self._commit(repo_id, revision, authorization)
            if isinstance(head, _Response):
                return head
            if header.get("parentCommit") not in (None, head):
                return _error(412, None, "A commit has happened since. Please refresh and try again.")
            files = self.files(repo_id, head)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                path = value["path"]
                if key == "file" and value.get("encoding") == "base64":
                    files[path] = base64.b64decode(value["content"], validate=True)
                elif key == "lfsFile":
                    data = self.blobs.get(value["oid"])
                    if data is None or ("size" in value and len(data) != value["size"]):
                        return _error(422, None, f"LFS object {value['oid']} of {path} was not uploaded")
                    files[path] = data
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        return _error(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    files = {p: data for p, data in files.items() if not p.startswith(prefix)}
                else:
                    return _error(400, None, f"Unknown commit operation {key!r}")
            commit = self.add_commit(repo_id, files, refs=(revision,), message=header["summary"], parent=head)
        return _json(
            200,
            {
                "success": True,
                "commitOid": commit,
                "commitUrl": f"{self.endpoint}/{repo_id}/commit/{commit}",
                "hookOutput": "",
            },
        )

    # ------------------------------------------------------------------ downloads
