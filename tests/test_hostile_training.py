"""Hostile input to training: bad option values, corrupt data, resumes that do not fit, a busy or foreign output
folder, and a launcher that dies. Each stops before training with one line that names the value and the way out,
and nothing already saved is lost."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from veegan_hf import train as train_module
from veegan_hf.loading import WEIGHTS_NAME
from veegan_hf.training import ConfigError, parse_config
from veegan_hf.training.checkpointing import OutputLock

REPO = Path(__file__).resolve().parents[1]
TINY = ["--train_batch_size", "16", "--hidden_dim", "16", "--latent_dim", "4", "--report_to", "none"]


@pytest.fixture(autouse=True)
def _reset_accelerate(fresh_accelerate_state):
    """Every test here trains in-process."""


def run(*args: str) -> int:
    return train_module.main([*TINY, *args])


def _digits(folder: Path, count: int, corrupt: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        PIL.Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8), "L").save(folder / f"{i:03d}.png")
    for i in range(corrupt):
        (folder / f"broken{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return folder


IMAGE_ARGS = ["--resolution", "28", "--base_channels", "8", "--max_train_steps", "2", "--eval_at_end", "false"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learning_rate", "nan"], "learning_rate='nan' must be a finite number"),
        (["--learning_rate", "inf"], "must be a finite number"),
        (["--latent_dim", str(10**9)], "--latent_dim 1000000000 must lie in [1, 4096]"),
        (["--hidden_dim", "1e6"], "--hidden_dim 1000000 must lie in"),
        (["--train_batch_size", "0"], "--train_batch_size 0 must lie in"),
        (["--ema_decay", "-0.1"], "--ema_decay -0.1 must lie in"),
        (["--dataset_name", "ring", "--resolution", "48"], "--resolution 48 is not supported"),
        (["--dataset_name", "ring", "--resolution", "32"], "--resolution apply to images only"),
        (["--dataset_name", "grid", "--num_channels", "3"], "apply to images only"),
        (["--dataset_name", "mnist", "--image_column", "img"], "--image_column applies to Hub or local datasets"),
        (["--objective", "gan", "--symmetric_latent_noise"], "--symmetric_latent_noise applies to --objective veegan"),
        (["--compile", "--r1_weight", "1"], "--compile cannot run --r1_weight"),
        (["--objective", "pacgan", "--data_reconstruction_weight", "1"], "weighs VEEGAN's x-space cycle term"),
        (["--data_reconstruction_weight", "-1"], "--data_reconstruction_weight -1.0 must lie in"),
        (["--max_train_step", "5"], "--max_train_step (did you mean --max_train_steps?)"),
        (["--use_emaa"], "did you mean --use_ema?"),
    ],
)
def test_bad_values_stop_with_one_line(tmp_path, capsys, args, message):
    assert run("--output_dir", str(tmp_path / "o"), *args) == 1
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and message in err, err
    assert "usage:" not in err and "Traceback" not in err


def test_a_preset_that_is_not_utf8(tmp_path, capsys):
    preset = tmp_path / "latin1.yaml"
    preset.write_bytes("learning_rate: 0.001 # caf\xe9\n".encode("latin-1"))
    assert run("--config", str(preset)) == 1
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_a_corrupt_image_is_named_and_can_be_skipped(tmp_path, capsys):
    images = _digits(tmp_path / "images", 24, corrupt=1)
    common = ["--train_data_dir", str(images), *IMAGE_ARGS]
    assert run(*common, "--output_dir", str(tmp_path / "o")) == 1
    err = capsys.readouterr().err
    assert "broken0.png cannot be decoded" in err and "--skip_corrupt_images" in err
    assert run(*common, "--output_dir", str(tmp_path / "skip"), "--skip_corrupt_images", "true") == 0
    metrics = json.loads((tmp_path / "skip" / "metrics.json").read_text())
    assert metrics["train/steps"] == 2 and metrics["train/skipped_images"] >= 0


def test_grayscale_images_train_a_one_channel_model_and_the_column_is_recorded(tmp_path):
    images = _digits(tmp_path / "images", 24)
    assert run("--train_data_dir", str(images), *IMAGE_ARGS, "--output_dir", str(tmp_path / "o")) == 0
    config = json.loads((tmp_path / "o" / "training_config.json").read_text())
    assert config["num_channels"] == 1 and config["image_column"] == "image" and config["preset"] == "image"
    # the folder is the data: the unused --dataset_name default ("ring") would name another dataset
    assert config["package_version"] and config["dataset_name"] is None
    assert config["train_data_dir"] == str(images)


def test_output_dir_that_is_a_file_or_under_one(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert run("--output_dir", str(a_file)) == 1
    assert "is a file; pass a folder" in capsys.readouterr().err
    assert run("--output_dir", str(a_file / "sub")) == 1
    assert "is not writable" in capsys.readouterr().err


def test_another_runs_folder_is_refused_unless_overwritten(tmp_path, capsys):
    out = tmp_path / "o"
    common = ["--dataset_name", "ring", "--max_train_steps", "3", "--output_dir", str(out), "--eval_at_end", "false"]
    assert run(*common) == 0
    before = (out / "generator" / WEIGHTS_NAME).read_bytes()
    assert run(*common, "--seed", "1") == 1
    assert "holds another run" in capsys.readouterr().err
    assert (out / "generator" / WEIGHTS_NAME).read_bytes() == before  # nothing lost
    (out / "samples" / "stale.png").write_bytes(b"old")
    assert run(*common, "--seed", "1", "--overwrite_output_dir") == 0
    assert not (out / "samples" / "stale.png").exists()  # the old run goes whole
    assert (out / "generator" / WEIGHTS_NAME).read_bytes() != before


def test_a_folder_in_use_is_refused(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    with OutputLock(out):  # what a running job holds
        assert run("--dataset_name", "ring", "--max_train_steps", "2", "--output_dir", str(out)) == 1
    err = capsys.readouterr().err
    assert "is in use by a running job" in err and f"pid {os.getpid()}" in err
    assert run("--dataset_name", "ring", "--max_train_steps", "2", "--output_dir", str(out)) == 0  # released


def test_resumes_that_do_not_fit_name_the_option(tmp_path, capsys):
    out = tmp_path / "o"
    common = [
        "--dataset_name",
        "ring",
        "--output_dir",
        str(out),
        "--eval_at_end",
        "false",
        "--checkpointing_steps",
        "2",
    ]
    assert run(*common, "--max_train_steps", "4") == 0
    assert run(*common, "--max_train_steps", "8", "--resume_from_checkpoint", "latest", "--latent_dim", "6") == 1
    err = capsys.readouterr().err
    assert "--latent_dim 6 does not match checkpoint-4, which was trained with 4" in err
    assert run(*common, "--max_train_steps", "3", "--resume_from_checkpoint", "checkpoint-4") == 1
    assert "checkpoint-4 is past --max_train_steps 3" in capsys.readouterr().err
    assert run(*common, "--max_train_steps", "6", "--resume_from_checkpoint", "latest") == 0  # a fitting resume


def test_resume_latest_in_an_empty_folder_says_so(tmp_path, caplog, capsys):
    out = tmp_path / "fresh"
    assert (
        run(
            "--dataset_name",
            "ring",
            "--max_train_steps",
            "2",
            "--output_dir",
            str(out),
            "--resume_from_checkpoint",
            "latest",
        )
        == 0
    )
    assert any("holds no checkpoint yet; starting from step 0" in r.getMessage() for r in caplog.records)
    # the same call on the finished run (no checkpoint: --checkpointing_steps was never given) would retrain it from
    # step 0 and replace it; it is refused, and the model stays
    weights = (out / "generator" / WEIGHTS_NAME).read_bytes()
    again = ("--dataset_name", "ring", "--max_train_steps", "2", "--output_dir", str(out))
    assert run(*again, "--resume_from_checkpoint", "latest") != 0
    err = capsys.readouterr().err
    assert "holds a run" in err and "no checkpoint to continue from" in err and "--overwrite_output_dir" in err
    assert (out / "generator" / WEIGHTS_NAME).read_bytes() == weights


def test_the_launchers_precision_is_honoured_and_a_conflict_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what `accelerate launch --mixed_precision bf16` sets
    out = tmp_path / "o"
    assert run("--dataset_name", "ring", "--max_train_steps", "2", "--output_dir", str(out)) == 0
    assert json.loads((out / "training_config.json").read_text())["mixed_precision"] == "bf16"
    assert (
        run(
            "--dataset_name",
            "ring",
            "--max_train_steps",
            "2",
            "--output_dir",
            str(tmp_path / "x"),
            "--mixed_precision",
            "no",
        )
        == 1
    )
    assert "conflicts with `accelerate launch --mixed_precision bf16`" in capsys.readouterr().err


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(
        [
            "latent_dim",
            "learning_rate",
            "train_batch_size",
            "ema_decay",
            "max_train_steps",
            "reconstruction_weight",
            "discriminator_sample_scale",
            "use_ema",
            "objective",
            "resolution",
            "lr_decay_start",
            "seed",
        ]
    ),
    value=st.one_of(
        st.integers(-(10**15), 10**15).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.text(max_size=6),
        st.sampled_from(["true", "false", "none", "1e400", "-0", "0x10", "nan", "", "--", "---", "--x", "-"]),
    ),
)
@example(name="use_ema", value="--")  # argparse blamed "--" alone: "unrecognized arguments: --"
@example(name="learning_rate", value="--lerning_rate")
def test_any_flag_value_is_accepted_or_named(name, value):
    try:
        config = parse_config(["--dataset_name", "ring", f"--{name}", value])
    except ConfigError as err:
        assert f"--{name}" in str(err) or f"{name}=" in str(err), err
        return
    field = getattr(config, name)
    assert field is None or not isinstance(field, float) or np.isfinite(field)


def test_training_ends_when_its_launcher_dies(tmp_path):
    """`accelerate launch` killed with SIGKILL: the training process it started exits too, instead of training on."""
    out = tmp_path / "o"
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(REPO / "training" / "train.py"),
        *TINY,
        "--dataset_name",
        "ring",
        "--max_train_steps",
        "100000000",
        "--output_dir",
        str(out),
        "--validation_steps",
        "100000000",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    child = None
    while time.monotonic() < deadline and child is None:
        time.sleep(0.5)
        found = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
        child = int(found[0]) if found and (out / "training_config.json").exists() else None
    assert child is not None, "the training process never started"
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
        if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
            break  # exited; only its zombie entry remains
        time.sleep(0.2)
    alive = Path(f"/proc/{child}").exists() and Path(f"/proc/{child}/stat").read_text().split()[2] != "Z"
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, "the training process outlived its launcher"


def test_reconstructor_adversarial_weight_needs_veegan_and_a_joint_d():
    assert parse_config(["--reconstructor_adversarial_weight", "0.5"]).reconstructor_adversarial_weight == 0.5
    with pytest.raises(ConfigError, match="--reconstructor_adversarial_weight 0.5 trains F against a joint D"):
        parse_config(["--reconstructor_adversarial_weight", "0.5", "--discriminator_reads_latents", "false"])
    with pytest.raises(ConfigError, match="--objective ali does not use it"):
        parse_config(["--objective", "ali", "--reconstructor_adversarial_weight", "1"])


def test_a_mistyped_local_folder_fails_at_once_and_leaves_no_folder(tmp_path, capsys, monkeypatch):
    """`--train_data_dir my_digit` that does not exist: named at once (never tried as a Hub id, with retries), and the
    refused start leaves no output folder behind."""
    import datasets

    def no_hub(*args, **kwargs):
        raise AssertionError(f"a missing folder was tried with datasets.load_dataset{args}")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    out = tmp_path / "never-made"
    assert run("--train_data_dir", str(tmp_path / "my_digit"), "--output_dir", str(out)) != 0
    err = capsys.readouterr().err
    assert "--train_data_dir" in err and "load_dataset" not in err and not out.exists()
