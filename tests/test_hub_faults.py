"""A flaky Hub, through the local HTTP Hub of `hub_server.py` with injected faults: a download that meets a 500, a
connection dropped mid-file and a timeout still loads the model, and leaves a cache the next call reads; a push that
meets a 500 retries into exactly one commit, and one that keeps failing leaves no commit and a clear error."""

import json

import pytest

from tests.conftest import make_pipeline
from tests.hub_server import FakeHub
from tests.test_hub_http import PIPELINE_FILES, TOKEN, _expected, _load_in_subprocess

REPO = "org/flaky"
# short backoff; timeouts long enough for a healthy answer from the local Hub on a loaded machine, short of the
# injected stall
FAST_RETRIES = {"VEEGAN_HUB_BACKOFF_SECONDS": "0.05", "HF_HUB_DOWNLOAD_TIMEOUT": "4", "HF_HUB_ETAG_TIMEOUT": "4"}
CDN_FILE = r"^/[0-9a-f]{64}$"  # an LFS file's content, on the CDN


@pytest.fixture
def flaky(tmp_path):
    pipe = make_pipeline("dcgan-28-1", seed=4)
    pipe.save_pretrained(tmp_path / "model", dataset_name="mnist")
    with FakeHub() as server:
        server.add_folder(REPO, tmp_path / "model", refs=("main",))
        yield server, _expected(pipe), tmp_path


def test_a_download_survives_a_500_a_dropped_connection_and_a_timeout(flaky):
    server, _, tmp = flaky
    server.inject("GET", r"/api/models/org/flaky", "500")
    server.inject("GET", CDN_FILE, "drop")
    server.inject("GET", r"/org/flaky/resolve/[^/]+/reconstructor/config\.json", "timeout", delay=12)
    results = _load_in_subprocess(
        server_namespace(server), tmp, [{"name": "load", "repo_id": REPO}], offline=False, extra_env=FAST_RETRIES
    )
    assert results["load"]["error"] is None, results["load"]
    assert [fault for fault in server.faults if fault.times] == []  # every fault was met
    # the cache the retries left serves the next call offline, byte for byte
    again = _load_in_subprocess(
        server_namespace(server), tmp, [{"name": "again", "repo_id": REPO}], offline=True, label="again"
    )
    assert again["again"]["error"] is None, again["again"]
    assert json.dumps(results["load"]["card_metadata"]) == json.dumps(again["again"]["card_metadata"])


def server_namespace(server):
    from types import SimpleNamespace

    return SimpleNamespace(server=server)


def test_a_push_that_meets_a_500_retries_into_one_commit(flaky):
    server, _, tmp = flaky
    server.inject("POST", r"/api/models/org/pushed-once/commit/main", "500")
    call = {"name": "push", "push_from": str(tmp / "model"), "repo_id": "org/pushed-once", "kwargs": {"token": TOKEN}}
    results = _load_in_subprocess(server_namespace(server), tmp, [call], offline=False, extra_env=FAST_RETRIES)
    assert results["push"]["error"] is None, results["push"]
    repo = server.repos["org/pushed-once"]
    # the Hub's initial commit, and one pushed commit: the failed try left none
    assert list(repo.messages.values()) == ["initial commit", "Upload VEEGAN pipeline"]
    assert set(server.files("org/pushed-once")) >= PIPELINE_FILES


def test_a_push_that_keeps_failing_leaves_no_commit_and_says_so(flaky):
    server, _, tmp = flaky
    server.inject("POST", r"/api/models/org/never/commit/main", "500", times=100)
    call = {"name": "push", "push_from": str(tmp / "model"), "repo_id": "org/never", "kwargs": {"token": TOKEN}}
    results = _load_in_subprocess(server_namespace(server), tmp, [call], offline=False, extra_env=FAST_RETRIES)
    error = results["push"]
    assert error["error"] == "HubUnavailableError" and "failed 4 times" in error["message"]
    assert "Nothing was half-written" in error["message"]
    # the repo was created (its initial commit), and no pushed commit, whole or partial, reached it
    assert list(server.repos["org/never"].messages.values()) == ["initial commit"]


def test_a_training_run_whose_push_fails_keeps_its_model_and_says_how_to_push_again(flaky):
    import os
    import subprocess
    import sys

    from tests.training_helpers import TINY, TRAIN

    server, _, tmp = flaky
    server.inject("POST", r"/api/models/org/trained/commit/main", "500", times=100)
    out = tmp / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        FAST_RETRIES,
        HF_ENDPOINT=server.endpoint,
        HF_HOME=str(tmp / "hf_home"),
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_OFFLINE="0",
        NO_PROXY="127.0.0.1,localhost",
        OMP_NUM_THREADS="1",
    )
    cmd = [sys.executable, TRAIN, *TINY, "--dataset_name", "grid", "--max_train_steps", "5", "--output_dir", str(out)]
    cmd += ["--push_to_hub", "--hub_model_id", "org/trained", "--hub_token", TOKEN]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line[line.index("error: ") :] for line in result.stderr.splitlines() if "error: " in line]
    assert len(errors) == 1 and "the model is saved in" in errors[0] and "failed 4 times" in errors[0]
    assert f"from_pretrained({str(out)!r}).push_to_hub('org/trained')" in errors[0]
    assert (out / "model_index.json").is_file() and (out / "metrics.json").is_file()


def test_offline_mode_is_not_retried():
    # OfflineModeIsEnabled is a ConnectionError by class: retrying it would only delay the "not in the cache" answer
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    from veegan_hf.hub_retry import is_transient

    try:
        try:
            raise OfflineModeIsEnabled("offline")
        except OfflineModeIsEnabled as cause:
            raise LocalEntryNotFoundError("not in the cache") from cause
    except LocalEntryNotFoundError as err:
        assert not is_transient(err)
    assert is_transient(ConnectionError("reset by peer"))
