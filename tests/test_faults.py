"""Faults of the world around a run: a disk that fills during a checkpoint, a sample grid or the final export. The run
stops with one line that names the folder and the space needed, the last complete checkpoint and the output lock
survive, and a resume after space is freed continues bit for bit."""

import errno
import json
import resource
import signal
import subprocess
import sys

import pytest

from tests.conftest import same_tensors
from tests.training_helpers import TINY, TRAIN, run, subprocess_env, weights
from veegan_hf.training import checkpointing
from veegan_hf.training.checkpointing import checkpoint_problem

COMMON = ("--dataset_name", "grid", "--checkpointing_steps", "10", "--max_train_steps", "30", "--use_ema", "false")


@pytest.fixture(autouse=True)
def _reset_accelerate(fresh_accelerate_state):
    """Every test here trains in-process."""


def _error_lines(stderr: str) -> list[str]:
    """The script's `error:` lines (a progress bar may share their line, as tqdm writes without a newline)."""
    return [line[line.index("error: ") :] for line in stderr.splitlines() if "error: " in line]


def _fail_on_call(monkeypatch, module, name: str, call: int, error: OSError) -> None:
    """Makes `module.name` raise `error` on its `call`-th call (1-based), as a write would on a full disk."""
    original, calls = getattr(module, name), []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, flaky)


def _disk_full_at_checkpoint(tmp_path, monkeypatch, capsys, call: int) -> tuple:
    """An unfaulted reference run, then the same run whose `call`-th checkpoint hits a full disk (it must fail);
    returns the reference's folder, the faulted run's folder and its `error:` lines."""
    reference = tmp_path / "reference"
    assert run(*COMMON, "--output_dir", str(reference)) == 0
    out = tmp_path / "o"
    full = OSError(errno.ENOSPC, "No space left on device")
    _fail_on_call(monkeypatch, checkpointing, "_save_checkpoint_files", call, full)
    capsys.readouterr()
    assert run(*COMMON, "--output_dir", str(out)) == 1
    return reference, out, _error_lines(capsys.readouterr().err)


def _free_space_and_resume(monkeypatch, out, reference) -> None:
    """Space freed: `latest` continues the run to the reference's weights, bit for bit."""
    monkeypatch.undo()
    assert run(*COMMON, "--resume_from_checkpoint", "latest", "--output_dir", str(out)) == 0
    assert same_tensors(weights(out), weights(reference))


def test_a_full_disk_during_a_checkpoint_keeps_the_last_one_and_the_resume_is_exact(tmp_path, monkeypatch, capsys):
    reference, out, error = _disk_full_at_checkpoint(tmp_path, monkeypatch, capsys, call=2)
    assert len(error) == 1 and error[0].startswith("error: the disk is full: writing checkpoint-20 in ")
    assert str(out) in error[0] and "MB more" in error[0] and "checkpoint-10, is intact" in error[0]
    assert [p.name for p in checkpointing.list_checkpoints(out)] == ["checkpoint-10"]
    assert checkpoint_problem(out / "checkpoint-10", use_ema=False) is None
    assert not list(out.glob(".checkpoint-*")) and not (out / checkpointing.LOCK_NAME).exists()  # lock released
    _free_space_and_resume(monkeypatch, out, reference)


def test_a_full_disk_at_the_first_checkpoint_then_latest_starts_over(tmp_path, monkeypatch, capsys):
    """Nothing to resume yet: the error says to continue with `latest`, and `latest` then trains from step 0 (a
    finished run without checkpoints is still refused, in test_hostile_training)."""
    reference, out, error = _disk_full_at_checkpoint(tmp_path, monkeypatch, capsys, call=1)
    assert len(error) == 1 and "No checkpoint was saved yet" in error[0] and "latest" in error[0]
    _free_space_and_resume(monkeypatch, out, reference)


@pytest.mark.parametrize("where", ["samples", "export"])
def test_a_full_disk_while_writing_samples_or_the_final_pipeline_is_one_line(tmp_path, monkeypatch, capsys, where):
    from veegan_hf.training import reporting

    if where == "samples":  # the grid of a mid-run validation
        _fail_on_call(monkeypatch, reporting, "validate_and_log", 1, OSError(errno.ENOSPC, "No space left on device"))
        flags, named = ("--validation_steps", "15"), "writing the samples of step 15 in "
    else:  # the final pipeline's safetensors, as safetensors reports a full disk (not an OSError)
        from veegan_hf.pipeline_veegan import VEEGAN

        error = RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")
        _fail_on_call(monkeypatch, VEEGAN, "save_pretrained", 1, error)
        flags, named = ("--validation_steps", "1000", "--checkpointing_steps", "none"), "the final pipeline and card"
    out = tmp_path / "o"
    capsys.readouterr()
    assert run(*COMMON, *flags, "--output_dir", str(out)) == 1
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and named in lines[0] and "--resume_from_checkpoint latest" in lines[0]
    assert not (out / checkpointing.LOCK_NAME).exists()


def test_a_file_size_limit_stops_the_run_with_one_line(tmp_path):
    """A real write refused by the kernel: RLIMIT_FSIZE below the optimizer state's size makes its write fail with
    EFBIG (SIGXFSZ ignored), in a separate process, as a full disk would."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    out = tmp_path / "o"
    cmd = [sys.executable, TRAIN, *TINY, *COMMON, "--hidden_dim", "128", "--output_dir", str(out)]
    result = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=240, preexec_fn=limit)
    assert result.returncode == 1, result.stderr[-2000:]
    errors = _error_lines(result.stderr)
    assert len(errors) == 1 and "the disk is full: writing checkpoint-10 in" in errors[0], result.stderr[-2000:]
    assert not list(out.glob(".checkpoint-*")) and not (out / checkpointing.LOCK_NAME).exists()


@pytest.mark.slow
def test_the_fault_soak_runs_its_trials(tmp_path):
    """`benchmarks/fault_soak.py`'s short run: a kill and a damaged checkpoint at random points, each resumed to the
    unfaulted run's weights bit for bit (the disk trials mount a tmpfs, so the committed soak runs them as root)."""
    from benchmarks import fault_soak

    args = ["--trials", "2", "--seed", "12", "--kinds", "kill,damage", "--results_dir", str(tmp_path)]
    assert fault_soak.main(args) == 0
    trials = json.loads((tmp_path / "fault_soak.json").read_text())["trials"]
    assert [t["kind"] for t in trials] and all("failure" not in t for t in trials)
    assert all(t["resumed_from"] == t["newest_complete"] for t in trials)  # no more lost than since the newest


@pytest.mark.parametrize(
    "message",
    [
        "Error while serializing: IoError(Os { code: 28, kind: StorageFull })",  # safetensors
        "[enforce fail at inline_container.cc:603] . unexpected pos 1216 vs 1110",  # torch.save, a short write
        "PytorchStreamWriter failed writing file data/0: file write failed",
        "basic_ios::clear: iostream error",  # torch.save's stream failing as it closes the archive (fault soak)
    ],
)
def test_every_writers_full_disk_is_recognised(message):
    from veegan_hf.training.disk import is_disk_full

    assert is_disk_full(RuntimeError(message))
    assert not is_disk_full(RuntimeError("size mismatch for net.0.weight"))
