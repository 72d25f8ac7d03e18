"""The online `from_pretrained(repo_id)` and `push_to_hub` paths through real HTTP, against a local Hub stand-in
(tests/hub_server.py).

conftest sets HF_HUB_OFFLINE=1 before huggingface_hub is imported, and the library reads it (and HF_ENDPOINT) only at
import, so the loads and pushes run in fresh processes with their own environment: one online process, then one
offline process that must find everything in the cache it filled; for uploads, a process that pushes and another that
loads back what was pushed.
"""

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import ModelCard

from tests.conftest import make_pipeline, same_tensors
from tests.hub_repos import GITATTRIBUTES, INVALID_TOKEN, LFS_SUFFIXES
from tests.hub_server import FakeHub

REPO = "org/veegan-test"
NETWORKS = ("discriminator", "generator", "reconstructor")
PIPELINE_FILES = {
    "model_index.json",
    "README.md",
    *(f"{net}/config.json" for net in NETWORKS),
    *(f"{net}/diffusion_pytorch_model.safetensors" for net in NETWORKS),
}
HUB_SERVER = Path(__file__).with_name("hub_client.py")
PUSHED = "org/pushed"
TOKEN = "hf_test"


def _expected(pipe) -> dict:
    samples = pipe(batch_size=4, generator=torch.Generator().manual_seed(0), output_type="pt").samples
    networks = {"generator": pipe.generator, "reconstructor": pipe.reconstructor, "discriminator": pipe.discriminator}
    return {"samples": samples, "state": {name: net.state_dict() for name, net in networks.items()}}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """Serves REPO: `main` holds a pipeline plus what a real repo also holds (a training checkpoint with its own
    pipeline folders, pickles, an image); the tag `v1` points at an older commit with other weights."""
    root = tmp_path_factory.mktemp("hub")
    pipes = {"main": make_pipeline("dcgan-28-1", seed=0), "v1": make_pipeline("dcgan-28-1", seed=1)}
    pipes["main"].save_pretrained(root / "main", dataset_name="mnist", metrics={"modes_captured": 10.0})
    pipes["v1"].save_pretrained(root / "v1", dataset_name="mnist")
    make_pipeline("dcgan-28-1", seed=2).save_pretrained(root / "checkpoint")
    extra = {
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs -text\n",
        "generator/diffusion_pytorch_model.bin": b"\x80\x02pickle" + bytes(4096),
        "samples.png": b"\x89PNG\r\n\x1a\n" + bytes(1024),
        "checkpoint-100/optimizer.bin": bytes(4 << 20),
        "checkpoint-100/random_states_0.pkl": b"\x80\x04pickle",
        **{
            f"checkpoint-100/{p.relative_to(root / 'checkpoint').as_posix()}": p.read_bytes()
            for p in (root / "checkpoint").rglob("*")
            if p.is_file()
        },
    }
    with FakeHub(page_size=8) as server:  # small pages: the listing takes several requests, as big repos do
        commits = {
            "v1": server.add_folder(REPO, root / "v1", refs=("v1",)),
            "main": server.add_folder(REPO, root / "main", refs=("main",), extra=extra),
        }
        yield SimpleNamespace(server=server, commits=commits, expected={k: _expected(p) for k, p in pipes.items()})


def _load_in_subprocess(
    hub,
    tmp: Path,
    calls: list[dict],
    offline: bool,
    label: str | None = None,
    extra_env: dict[str, str | None] | None = None,
) -> dict:
    """Runs the `calls` in a fresh process against `hub` with the Hub cache in `tmp`; returns the results by name.

    The results go to `tmp / label` (by default "online" or "offline"); `extra_env` overrides the environment, None
    removing a variable."""
    out_dir = tmp / (label or ("offline" if offline else "online"))
    out_dir.mkdir()
    spec = out_dir / "spec.json"
    spec.write_text(json.dumps({"out_dir": str(out_dir), "calls": calls}))
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_")) and k.lower() not in proxies
    }
    env.update(
        HF_HUB_OFFLINE="1" if offline else "0",
        HF_ENDPOINT=hub.server.endpoint,
        HF_HOME=str(tmp / "hf_home"),  # no stored token is read
        HF_HUB_CACHE=str(tmp / "cache"),
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_ETAG_TIMEOUT="10",
        HF_HUB_DOWNLOAD_TIMEOUT="10",
        NO_PROXY="127.0.0.1,localhost",
        OMP_NUM_THREADS="1",
    )
    for key, value in (extra_env or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    proc = subprocess.run(
        [sys.executable, str(HUB_SERVER), str(spec)], env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out_dir / "results.json").read_text())
    pushes = {call["name"] for call in calls if "push_from" in call}  # a push leaves no samples behind
    for name, result in results.items():
        if result["error"] is None and name not in pushes:
            result.update(torch.load(out_dir / f"{name}.pt"))
    return results


@pytest.fixture(scope="module")
def online(hub, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("client")
    calls = [
        {"name": "main", "repo_id": REPO},
        {"name": "v1", "repo_id": REPO, "kwargs": {"revision": "v1"}},
        {"name": "missing", "repo_id": "org/not-there"},
        {"name": "missing_with_token", "repo_id": "org/not-there", "kwargs": {"token": "hf_valid_token"}},
        {"name": "missing_revision", "repo_id": REPO, "kwargs": {"revision": "no-such-branch"}},
        # a cache of its own: with REPO already cached, huggingface_hub falls back to it on a 401
        {
            "name": "invalid_token",
            "repo_id": REPO,
            "kwargs": {"token": INVALID_TOKEN, "cache_dir": str(tmp / "cache2")},
        },
    ]
    results = _load_in_subprocess(hub, tmp, calls, offline=False)
    return SimpleNamespace(results=results, tmp=tmp, num_requests=len(hub.server.requests))


@pytest.fixture(scope="module")
def offline(hub, online):
    calls = [
        {"name": "main", "repo_id": REPO},
        {"name": "v1", "repo_id": REPO, "kwargs": {"revision": "v1"}},
        {"name": "by_commit", "repo_id": REPO, "kwargs": {"revision": hub.commits["main"]}},
    ]
    results = _load_in_subprocess(hub, online.tmp, calls, offline=True)
    return SimpleNamespace(results=results, num_requests=len(hub.server.requests))


def _assert_same_pipeline(result: dict, expected: dict) -> None:
    assert result["error"] is None, result
    assert torch.equal(result["samples"], expected["samples"])  # bit for bit
    assert result["state"].keys() == expected["state"].keys()
    for name, state in expected["state"].items():
        assert same_tensors(result["state"][name], state), name


def test_online_load_by_repo_id_matches_the_pushed_pipeline(hub, online):
    _assert_same_pipeline(online.results["main"], hub.expected["main"])
    assert online.results["main"]["card_metadata"] == {"dataset_name": "mnist", "metrics": {"modes_captured": 10.0}}
    refs = online.tmp / "cache" / f"models--{REPO.replace('/', '--')}" / "refs"
    assert (refs / "main").read_text() == hub.commits["main"]


def test_requests_follow_the_hub_protocol(hub, online):
    server = hub.server
    assert server.unexpected() == []
    main_info = f"/api/models/{REPO}/revision/main"
    assert any(r.path == main_info and r.status == 200 for r in server.requests)
    tree = [r for r in server.requests if r.path == f"/api/models/{REPO}/tree/{hub.commits['main']}"]
    assert len(tree) > 1 and {r.query.get("recursive", "").lower() for r in tree} == {"true"}  # every page followed
    # LFS weights come from the CDN origin, without the Authorization header; small files straight from the Hub
    cdn_gets = [r for r in server.requests if r.server == "cdn"]
    assert cdn_gets and all(r.method == "GET" and r.status == 200 and not r.authorized for r in cdn_gets)
    assert not any(r.server == "hub" and r.status >= 500 for r in server.requests)
    # pickles, images and training state are never even asked for
    assert not [p for p in server.resolved(REPO) if p.endswith((".bin", ".pkl", ".png"))]


def test_only_the_pipeline_files_are_downloaded(hub, online):
    assert hub.server.resolved(REPO, hub.commits["main"]) == PIPELINE_FILES
    snapshot = online.tmp / "cache" / f"models--{REPO.replace('/', '--')}" / "snapshots" / hub.commits["main"]
    assert {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()} == PIPELINE_FILES


def test_revision_reaches_the_server(hub, online):
    assert any(r.path == f"/api/models/{REPO}/revision/v1" and r.status == 200 for r in hub.server.requests)
    assert hub.server.resolved(REPO, hub.commits["v1"]) == PIPELINE_FILES  # v1 holds no extra files
    _assert_same_pipeline(online.results["v1"], hub.expected["v1"])  # the tag's weights, not main's
    refs = online.tmp / "cache" / f"models--{REPO.replace('/', '--')}" / "refs"
    assert (refs / "v1").read_text() == hub.commits["v1"]


def test_offline_reload_uses_the_cache_without_any_request(hub, online, offline):
    assert offline.num_requests == online.num_requests
    _assert_same_pipeline(offline.results["main"], hub.expected["main"])
    _assert_same_pipeline(offline.results["v1"], hub.expected["v1"])
    _assert_same_pipeline(offline.results["by_commit"], hub.expected["main"])


@pytest.mark.parametrize(("name", "status"), [("missing", 401), ("missing_with_token", 404)])
def test_missing_repo_gives_a_clear_error(hub, online, name, status):
    # the Hub answers 401 to anonymous requests for a missing (or private) repo, 404 to authenticated ones
    asked = [r for r in hub.server.requests if r.path == "/api/models/org/not-there/revision/main"]
    assert {r.status for r in asked if r.authorized == (name == "missing_with_token")} == {status}
    result = online.results[name]
    assert result["error"] == "ValueError" and result["cause"] == "RepositoryNotFoundError"
    assert "'org/not-there' was not found on the Hub" in result["message"]


def test_missing_revision_gives_a_clear_error(online):
    result = online.results["missing_revision"]
    assert "ValueError" in result["mro"], result
    assert "no-such-branch" in result["message"]


def test_invalid_token_gives_a_clear_error(online):
    result = online.results["invalid_token"]
    assert "ValueError" in result["mro"], result
    assert "token" in result["message"]


# ---------------------------------------------------------------------- push_to_hub


@pytest.fixture(scope="module")
def push(tmp_path_factory):
    """Pushes a pipeline to PUSHED twice (the second push changes nothing), then loads it back, each in a process of
    its own against one server. The pipeline is built and saved here, and the pushing process loads that folder: the
    samples expected here come from the very weights that were pushed, and, saved with the same `repo_id`, the
    folder holds exactly what `push_to_hub` uploads (card included), whatever `save_pretrained` writes."""
    tmp = tmp_path_factory.mktemp("push")
    pipe = make_pipeline("dcgan-28-1", seed=3)
    local = tmp / "local"
    pipe.save_pretrained(local, repo_id=PUSHED)
    push_call = {"push_from": str(local), "repo_id": PUSHED, "kwargs": {"token": TOKEN}}
    with FakeHub() as server:
        hub = SimpleNamespace(server=server)
        # xet left enabled: with hf_xet installed (huggingface_hub's default), `upload_folder` takes its pipelined
        # path, which is what users run; the server answers "regular" for every file, so no Xet storage is needed
        pushed = _load_in_subprocess(
            hub,
            tmp,
            [{"name": "first", **push_call}, {"name": "again", **push_call}],
            offline=False,
            label="push",
            extra_env={"HF_HUB_DISABLE_XET": None},
        )
        num_push_requests = len(server.requests)
        loaded = _load_in_subprocess(hub, tmp, [{"name": "pushed", "repo_id": PUSHED}], offline=False, label="load")
        yield SimpleNamespace(
            server=server,
            pushed=pushed,
            loaded=loaded,
            push_requests=server.requests[:num_push_requests],
            local=local,
            local_files={p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()},
            expected=_expected(pipe),
        )


def _commit_lines(request) -> list[dict]:
    return [json.loads(line) for line in request.body.splitlines()]


def test_push_to_hub_stores_the_pipeline_and_its_card(push):
    assert push.pushed["first"]["error"] is None, push.pushed["first"]
    stored = push.server.files(PUSHED)
    assert stored.keys() >= PIPELINE_FILES
    # byte for byte what save_pretrained wrote, plus the .gitattributes of the repo's initial commit
    assert stored == {**push.local_files, ".gitattributes": GITATTRIBUTES}
    card = ModelCard(stored["README.md"].decode())
    assert card.data.library_name == "veegan-hf"
    head = push.server.repos[PUSHED].refs["main"]
    assert push.server.repos[PUSHED].messages[head] == "Upload VEEGAN pipeline"
    assert push.pushed["first"]["commit_url"] == f"{push.server.endpoint}/{PUSHED}/commit/{head}"


def test_push_requests_follow_the_hub_protocol(push):
    server, requests = push.server, push.push_requests
    assert server.unexpected() == []
    writes = [r for r in requests if r.method == "POST" and r.path != "/api/validate-yaml"]
    assert writes and all(r.authorized for r in writes)
    # exist_ok: the second push finds the repo (409) and goes on
    assert [r.status for r in requests if r.path == "/api/repos/create"] == [200, 409]
    assert any(r.path == "/api/validate-yaml" and r.status == 200 for r in requests)  # the card was checked first
    preuploads = [r for r in requests if r.path == f"/api/models/{PUSHED}/preupload/main"]
    assert len(preuploads) == 2 and {r.status for r in preuploads} == {200}
    # nothing changed for the second push: the client skips the commit and returns the same one
    (commit,) = [r for r in requests if r.path == f"/api/models/{PUSHED}/commit/main"]
    assert commit.status == 200
    assert push.pushed["again"] == push.pushed["first"]
    header, *operations = _commit_lines(commit)
    assert header == {"key": "header", "value": {"summary": "Upload VEEGAN pipeline", "description": ""}}
    assert {op["key"] for op in operations} == {"file"}  # base64 content, no LFS
    assert {op["value"]["path"]: base64.b64decode(op["value"]["content"]) for op in operations} == push.local_files
    assert not [r for r in requests if r.server == "cdn"]


def test_pushed_pipeline_loads_back_bit_identical(push):
    _assert_same_pipeline(push.loaded["pushed"], push.expected)
    head = push.server.repos[PUSHED].refs["main"]
    assert push.server.resolved(PUSHED, head) >= PIPELINE_FILES


def test_lfs_uploads_go_through_the_batch_api(push, tmp_path):
    """With `lfs_uploads=True` the weights go as git-lfs objects, as to the Hub before Xet, for a client with
    HF_HUB_DISABLE_XET=1 (which `_load_in_subprocess` sets): batch API, PUT to storage, verify, `lfsFile` lines."""
    call = {"name": "lfs", "push_from": str(push.local), "repo_id": PUSHED, "kwargs": {"token": TOKEN}}
    lfs_paths = {path for path in push.local_files if path.endswith(LFS_SUFFIXES)}
    assert {f"{net}/diffusion_pytorch_model.safetensors" for net in NETWORKS} <= lfs_paths
    with FakeHub(lfs_uploads=True) as server:
        result = _load_in_subprocess(SimpleNamespace(server=server), tmp_path, [call], offline=False, label="lfs")
        assert result["lfs"]["error"] is None, result["lfs"]
        assert server.unexpected() == []
        assert server.files(PUSHED) == {**push.local_files, ".gitattributes": GITATTRIBUTES}
        requests: dict[tuple[str, str, str], list] = {}
        for r in server.requests:
            requests.setdefault((r.server, r.method, r.path), []).append(r)
        assert [r.status for r in requests["hub", "POST", f"/{PUSHED}.git/info/lfs/objects/batch"]] == [200]
        puts = [r for r in server.requests if r.server == "cdn"]
        assert {(r.method, r.status) for r in puts} == {("PUT", 200)}
        assert sorted(r.body for r in puts) == sorted(push.local_files[path] for path in lfs_paths)
        assert len(requests["hub", "POST", f"/{PUSHED}.git/info/lfs/objects/verify"]) == len(lfs_paths)
        (commit,) = requests["hub", "POST", f"/api/models/{PUSHED}/commit/main"]
        operations = {op["value"]["path"]: op["key"] for op in _commit_lines(commit)[1:]}
        assert operations == {path: "lfsFile" if path in lfs_paths else "file" for path in push.local_files}


def _post(server: FakeHub, path: str, payload: dict | bytes, token: str | None = TOKEN) -> tuple[int, dict]:
    """POSTs straight to the server (huggingface_hub is offline in this process); returns the status and the JSON."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{server.endpoint}{path}", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_upload_errors_are_the_hubs():
    with FakeHub() as server:
        create = {"name": "errors", "organization": "org"}
        assert _post(server, "/api/repos/create", create, token=None)[0] == 401  # writes need a token
        assert "org/errors" not in server.repos
        status, answer = _post(server, "/api/repos/create", create)
        assert status == 200 and answer["url"] == f"{server.endpoint}/org/errors"
        initial = server.repos["org/errors"].refs["main"]
        # a commit on top of a head that has moved since is refused, and so is one to a missing branch
        line = {"key": "file", "value": {"path": "a.txt", "content": "YQ==", "encoding": "base64"}}
        stale = {"key": "header", "value": {"summary": "late", "description": "", "parentCommit": "0" * 40}}
        ndjson = b"".join(json.dumps(item).encode() + b"\n" for item in (stale, line))
        assert _post(server, "/api/models/org/errors/commit/main", ndjson)[0] == 412
        assert _post(server, "/api/models/org/errors/commit/no-such-branch", ndjson)[0] == 404
        assert server.repos["org/errors"].refs["main"] == initial
        broken_card = {"content": "---\nlicense: [mit\n---\n", "repoType": "model"}  # an unclosed YAML list
        status, answer = _post(server, "/api/validate-yaml", broken_card)
        assert status == 400 and answer["errors"]
        assert server.unexpected() == []
