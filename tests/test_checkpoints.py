"""Checkpoints: resume equivalence, the total limit, and what a kill or a NaN loss leaves on disk."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import same_tensors
from tests.training_helpers import TINY, TRAIN, run, subprocess_env, weights
from veegan_hf.training import checkpointing


@pytest.fixture(autouse=True)
def _reset_accelerate(fresh_accelerate_state):
    """Every test here trains in-process."""


def test_resume_gives_the_same_weights(tmp_path):
    common = [
        "--dataset_name",
        "grid",
        "--max_train_steps",
        "16",
        "--checkpointing_steps",
        "8",
        "--lr_scheduler",
        "cosine",
        "--validation_steps",
        "100",
        "--eval_at_end",
        "false",
    ]
    straight = tmp_path / "straight"
    assert run(*common, "--output_dir", str(straight)) == 0
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    # the state a run killed right after step 8 leaves behind
    shutil.copytree(straight / "checkpoint-8", resumed / "checkpoint-8")
    assert run(*common, "--output_dir", str(resumed), "--resume_from_checkpoint", "latest") == 0
    a, b = weights(straight), weights(resumed)
    assert same_tensors(a, b), [k for k in a if k not in b or not torch.equal(a[k], b[k])]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    common = [
        "--dataset_name",
        "ring",
        "--checkpointing_steps",
        "5",
        "--output_dir",
        str(out),
        "--eval_at_end",
        "false",
        "--validation_steps",
        "100",
    ]
    assert run(*common, "--max_train_steps", "10") == 0
    before = weights(out / "checkpoint-10" / "pipeline")
    (out / "model_index.json").unlink()
    # lambda * ||z - F(G(z))||^2 = 1e38 * ~4 overflows float32: the loss is Inf from the first resumed step
    overflow = ["--reconstruction_weight", "1e38", "--reconstruction_weight_schedule", "constant"]
    assert run(*common, "--max_train_steps", "20", "--resume_from_checkpoint", "latest", *overflow) == 1
    err = capsys.readouterr().err
    assert "NaN or Inf by step 15" in err and "checkpoint-10, is kept" in err
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-5"]
    after = weights(out / "checkpoint-10" / "pipeline")
    assert same_tensors(before, after)
    assert not (out / "model_index.json").exists()  # no diverged model was exported


def test_kill_while_deleting_an_old_checkpoint_hides_it(tmp_path, monkeypatch):
    # rotation deletes file by file; a kill half-way must not leave a checkpoint-N that resume would pick
    for step in (3, 6):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"w")
        (folder / "optimizer.bin").write_bytes(b"o")

    real_rmtree = shutil.rmtree

    def killed_rmtree(path, ignore_errors=False):
        if ignore_errors:
            return real_rmtree(path, ignore_errors=True)
        (Path(path) / "model.safetensors").unlink()  # the first file goes, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpointing.shutil, "rmtree", killed_rmtree)
    with pytest.raises(KeyboardInterrupt):
        checkpointing._delete_checkpoint(tmp_path / "checkpoint-3")
    assert checkpointing.list_checkpoints(tmp_path) == [tmp_path / "checkpoint-6"]
    monkeypatch.undo()
    # the leftover keeps a hidden name, the one `save_checkpoint` sweeps
    leftovers = list(tmp_path.glob(".checkpoint-*.deleting"))
    assert [p.name for p in leftovers] == [".checkpoint-3.deleting"]


def test_checkpoints_total_limit_keeps_only_the_newest(tmp_path):
    out = tmp_path / "run"
    common = ["--dataset_name", "ring", "--checkpointing_steps", "3", "--checkpoints_total_limit", "2"]
    assert run(*common, "--max_train_steps", "12", "--output_dir", str(out), "--eval_at_end", "false") == 0
    assert [c.name for c in checkpointing.list_checkpoints(out)] == ["checkpoint-9", "checkpoint-12"]
    assert sorted(p.name for p in out.iterdir() if "checkpoint" in p.name) == ["checkpoint-12", "checkpoint-9"]


def test_kill_during_training_leaves_only_complete_checkpoints(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        TRAIN,
        *TINY,
        "--dataset_name",
        "ring",
        "--max_train_steps",
        "100000",
        "--checkpointing_steps",
        "3",
        "--checkpoints_total_limit",
        "3",
        "--output_dir",
        str(out),
        "--validation_steps",
        "100000",
    ]
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(out.glob("checkpoint-*"))) < 2:
        time.sleep(0.2)
    time.sleep(0.37)  # land somewhere inside a later save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    complete = checkpointing.list_checkpoints(out)
    assert complete, "no checkpoint was written before the kill"
    for checkpoint in complete:  # every visible checkpoint is whole
        assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "optimizer.bin").is_file()
        assert (checkpoint / "pipeline" / "model_index.json").is_file()
    # resume picks the newest complete one and finishes
    last = int(complete[-1].name.split("-")[1])
    assert (
        run(
            "--dataset_name",
            "ring",
            "--max_train_steps",
            str(last + 2),
            "--output_dir",
            str(out),
            "--resume_from_checkpoint",
            "latest",
            "--eval_at_end",
            "false",
        )
        == 0
    )
    assert json.loads((out / "metrics.json").read_text())["train/steps"] == last + 2


def test_a_resume_onto_other_data_is_refused_and_segments_are_recorded(tmp_path, capsys):
    """Each launch of a resumed run is one segment of its record and card; a resume that changes the data is refused
    as an architecture change is, naming the data it was trained on."""
    out = tmp_path / "o"
    common = ("--dataset_name", "grid", "--checkpointing_steps", "20", "--eval_at_end", "false")
    assert run(*common, "--max_train_steps", "40", "--output_dir", str(out)) == 0
    assert run(*common, "--max_train_steps", "60", "--resume_from_checkpoint", "latest", "--output_dir", str(out)) == 0
    record = json.loads((out / "training_config.json").read_text())
    assert [(s["from_step"], s["to_step"], s["data"]) for s in record["segments"]] == [
        (0, 40, "grid"),
        (40, 60, "grid"),
    ]
    card = (out / "README.md").read_text()
    assert "Trained in launches" in card and "1. steps 0–40 on `grid`" in card and "2. steps 40–60 on `grid`" in card
    other = ("--dataset_name", "ring", "--max_train_steps", "80", "--resume_from_checkpoint", "latest")
    capsys.readouterr()
    assert run(*other, "--output_dir", str(out)) == 1
    assert "checkpoint-60 was trained on 'grid', and this run asks for 'ring'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (
            lambda ckpt: (ckpt / "model_1.safetensors").write_bytes((ckpt / "model_1.safetensors").read_bytes()[:200]),
            "model_1.safetensors is truncated or corrupt",
        ),
        (
            lambda ckpt: (ckpt / "optimizer.bin").write_bytes((ckpt / "optimizer.bin").read_bytes()[:300]),
            "optimizer.bin is truncated or corrupt",
        ),
        (lambda ckpt: (ckpt / "scheduler.json").unlink(), "scheduler.json is missing"),
    ],
    ids=["truncated-weights", "truncated-optimizer", "missing-file"],
)
def test_latest_skips_a_damaged_newest_checkpoint_and_an_explicit_path_names_the_file(
    tmp_path, caplog, capsys, damage, named
):
    """A crash of the machine can leave the newest checkpoint with a file that never reached the disk: `latest`
    resumes from the newest complete one and says which it skipped and why; naming the damaged one fails."""
    out = tmp_path / "o"
    common = ("--dataset_name", "grid", "--checkpointing_steps", "10", "--checkpoints_total_limit", "3")
    assert run(*common, "--max_train_steps", "30", "--output_dir", str(out)) == 0
    damage(out / "checkpoint-30")
    with caplog.at_level("WARNING"):
        assert (
            run(*common, "--max_train_steps", "40", "--resume_from_checkpoint", "latest", "--output_dir", str(out)) == 0
        )
    assert f"skipping checkpoint-30: {named}" in caplog.text and "resuming from checkpoint-20" in caplog.text
    record = json.loads((out / "training_config.json").read_text())
    assert record["segments"][-1]["from_step"] == 20
    damage(out / "checkpoint-20")
    explicit = ("--max_train_steps", "50", "--resume_from_checkpoint", str(out / "checkpoint-20"))
    capsys.readouterr()
    assert run(*common, *explicit, "--output_dir", str(out)) == 1
    assert f"checkpoint-20: {named}" in capsys.readouterr().err
