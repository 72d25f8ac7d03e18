"""The online `from_pretrained(repo_id)` path through real HTTP, against a local Hub stand-in (tests/hub_server.py).

conftest sets HF_HUB_OFFLINE=1 before huggingface_hub is imported, and the library reads it (and HF_ENDPOINT) only at
import, so the loads run in fresh processes with their own environment: one online process, then one offline process
that must find everything in the cache it filled.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import make_pipeline, same_tensors
from tests.hub_server import INVALID_TOKEN, FakeHub

REPO = "org/veegan-test"
NETWORKS = ("discriminator", "generator", "reconstructor")
PIPELINE_FILES = {
    "model_index.json",
    "README.md",
    *(f"{net}/config.json" for net in NETWORKS),
    *(f"{net}/diffusion_pytorch_model.safetensors" for net in NETWORKS),
}
HUB_SERVER = Path(__file__).with_name("hub_server.py")


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


def _load_in_subprocess(hub, tmp: Path, calls: list[dict], offline: bool) -> dict:
    """Runs the `calls` in a fresh process against `hub` with the Hub cache in `tmp`; returns the results by name."""
    out_dir = tmp / ("offline" if offline else "online")
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
    proc = subprocess.run(
        [sys.executable, str(HUB_SERVER), str(spec)], env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out_dir / "results.json").read_text())
    for name, result in results.items():
        if result["error"] is None:
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
