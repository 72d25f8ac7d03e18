"""A rank that dies: killing rank 1 of a 2-process CPU run (gloo) at a random step ends the run within seconds, with
the launcher's report naming the rank; a resume from the last checkpoint then continues bit for bit."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import same_tensors
from tests.test_distributed import REPO, _free_port
from tests.training_helpers import weights
from veegan_hf.benchmarking.memory import rank_pid

ARGS = ["--dataset_name", "grid", "--hidden_dim", "32", "--discriminator_hidden_dim", "32", "--latent_dim", "4"]
ARGS += ["--train_batch_size", "64", "--report_to", "none", "--checkpointing_steps", "20", "--max_train_steps", "200"]
ARGS += ["--validation_steps", "1000", "--eval_at_end", "false", "--checkpoints_total_limit", "20"]


def _command(out: Path, *extra: str) -> list[str]:
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launcher += ["--num_machines", "1", "--main_process_port", str(_free_port()), "--mixed_precision", "no"]
    launcher += ["--dynamo_backend", "no"]
    return [*launcher, str(REPO / "training" / "train.py"), *ARGS, "--output_dir", str(out), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "ACCELERATE_USE_CPU": "1"}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc (Linux)")
def test_killing_rank_1_ends_the_run_and_the_resume_is_exact(tmp_path):
    reference = tmp_path / "reference"
    done = subprocess.run(_command(reference), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "killed"
    launcher = subprocess.Popen(_command(out), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # a random checkpoint, the kill lands somewhere after it; VEEGAN_KILL_SEED replays a failing draw
    seed = int(os.environ.get("VEEGAN_KILL_SEED", time.time_ns() % 10_000))
    kill_after = random.Random(seed).choice([20, 40, 60, 80])
    try:
        deadline, pid = time.monotonic() + 240, None
        # rank 1 is found while the run starts, so that the kill follows the checkpoint's arrival at once (the 120+
        # steps after it leave a window of tenths of a second, whatever the load)
        while not (out / f"checkpoint-{kill_after}").is_dir():
            alive = launcher.poll() is None and time.monotonic() < deadline
            assert alive, f"the run ended before the kill (VEEGAN_KILL_SEED={seed})"
            pid = pid or rank_pid(launcher.pid, 1)
            time.sleep(0.01 if pid else 0.05)
        pid = pid or rank_pid(launcher.pid, 1)
        assert pid is not None, f"rank 1 not found (VEEGAN_KILL_SEED={seed})"
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        _, stderr = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0 and time.monotonic() - killed_at < 30  # within seconds, not a hang
    assert "rank" in stderr.lower() and ("SIGKILL" in stderr or "Signal 9" in stderr or "signal 9" in stderr), stderr[
        -2000:
    ]
    assert not (out / "model_index.json").exists()  # no final model from a broken run

    resumed = subprocess.run(
        _command(out, "--resume_from_checkpoint", "latest"), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert same_tensors(weights(out), weights(reference))
