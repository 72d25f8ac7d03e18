"""training/train.py end to end on CPU: outputs, resume equivalence, DDP on 2 processes, precision, data, errors."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import reset_accelerate, same_tensors
from veegan_hf import VEEGAN
from veegan_hf import train as train_module
from veegan_hf.data import BUILTIN_DATASETS
from veegan_hf.training import checkpointing, load_preset, loop

REPO = Path(__file__).resolve().parents[1]
TRAIN = str(REPO / "training" / "train.py")
TINY = [
    "--train_batch_size",
    "64",
    "--hidden_dim",
    "32",
    "--discriminator_hidden_dim",
    "32",
    "--latent_dim",
    "4",
    "--report_to",
    "none",
    "--logging_steps",
    "5",
]


@pytest.fixture(autouse=True)
def _reset_accelerate(fresh_accelerate_state):
    """Every test here trains in-process."""


def run(*args: str) -> int:
    return train_module.main([*TINY, *args])


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return {
        f"{net}.{k}": v
        for net in ("generator", "reconstructor", "discriminator")
        for k, v in load_file(folder / net / "diffusion_pytorch_model.safetensors").items()
    }


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}
    return env


def test_tiny_end_to_end(tmp_path):
    out = tmp_path / "run"
    assert (
        run(
            "--dataset_name",
            "ring",
            "--max_train_steps",
            "20",
            "--validation_steps",
            "10",
            "--checkpointing_steps",
            "10",
            "--output_dir",
            str(out),
            "--report_to",
            "tensorboard",
            "--use_ema",
        )
        == 0
    )
    for name in (
        "model_index.json",
        "README.md",
        "training_config.json",
        "metrics.json",
        "samples/final.png",
        "samples/step_000010.png",
        "checkpoint-10",
        "checkpoint-20/pipeline/model_index.json",
    ):
        assert (out / name).exists(), name
    assert list((out / "logs").rglob("events.out.tfevents*"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_modes"] == 8 and metrics["num_samples"] == 2500 and 0 <= metrics["hq_percent"] <= 100
    assert metrics["train/steps"] == 20
    config = json.loads((out / "training_config.json").read_text())
    assert config["max_train_steps"] == 20 and config["architecture"] == "mlp" and "hub_token" not in config
    pipe = VEEGAN.from_pretrained(out)
    assert pipe(batch_size=3, output_type="pt").samples.shape == (3, 2)
    assert pipe.card_metadata["metrics"]["modes_captured"] == metrics["modes_captured"]
    # no pickled custom state in checkpoints: the scheduler is JSON, the EMA safetensors
    assert not list((out / "checkpoint-20").glob("custom_checkpoint_*"))
    assert (out / "checkpoint-20" / "scheduler.json").is_file() and (
        out / "checkpoint-20" / "ema.safetensors"
    ).is_file()
    # the exported generator is the EMA one, tensor for tensor, and not the raw one
    raw = load_file(out / "checkpoint-20" / "model.safetensors")
    ema = load_file(out / "checkpoint-20" / "ema.safetensors")
    exported = load_file(out / "generator" / "diffusion_pytorch_model.safetensors")
    assert same_tensors(exported, {k.removeprefix("model."): v for k, v in ema.items() if k.startswith("model.")})
    assert not all(torch.equal(raw[k], v) for k, v in exported.items() if k in raw)


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


def test_bf16_run_autocasts_on_cpu(tmp_path):
    out = tmp_path / "bf16"
    common = ["--dataset_name", "ring", "--max_train_steps", "6", "--validation_steps", "100"]
    assert run(*common, "--mixed_precision", "bf16", "--output_dir", str(out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train/steps"] == 6
    bf16 = weights(out)
    assert all(torch.isfinite(v).all() for v in bf16.values())
    # the master weights stay fp32, and bf16 matmuls give other weights than an fp32 run of the same seed
    assert all(v.dtype == torch.float32 for v in bf16.values())
    reset_accelerate()
    assert run(*common, "--output_dir", str(tmp_path / "fp32"), "--eval_at_end", "false") == 0
    fp32 = weights(tmp_path / "fp32")
    assert not all(torch.equal(bf16[k], fp32[k]) for k in fp32)


def test_fp16_on_cpu_warns_and_trains_in_fp32(tmp_path):
    """fp16 on CPU is a no-op: it warns, and the weights are exactly those of a `--mixed_precision no` run."""
    common = ["--dataset_name", "ring", "--max_train_steps", "2", "--eval_at_end", "false"]
    with pytest.warns(UserWarning, match="fp16 does nothing on CPU"):
        assert run(*common, "--mixed_precision", "fp16", "--output_dir", str(tmp_path / "fp16")) == 0
    reset_accelerate()
    assert run(*common, "--mixed_precision", "no", "--output_dir", str(tmp_path / "fp32")) == 0
    fp16, fp32 = weights(tmp_path / "fp16"), weights(tmp_path / "fp32")
    assert same_tensors(fp16, fp32)


def test_every_objective_trains(tmp_path):
    for objective in ("gan", "ali", "unrolled", "pacgan"):
        out = tmp_path / objective
        assert (
            run(
                "--dataset_name",
                "ring",
                "--max_train_steps",
                "3",
                "--objective",
                objective,
                "--unrolled_steps",
                "2",
                "--output_dir",
                str(out),
                "--eval_at_end",
                "false",
            )
            == 0
        )
        config = json.loads((out / "discriminator" / "config.json").read_text())
        assert config["latent_dim"] == (4 if objective == "ali" else 0)
        assert config["pack_size"] == (2 if objective == "pacgan" else 1)


@pytest.mark.parametrize("objective", ["veegan", "gan", "pacgan"])  # joint D, x-only D, packed D; ali is veegan's D
def test_compile_trains_the_same_networks(tmp_path, objective):
    import torch._inductor.config as inductor_config

    before, outputs = inductor_config.fallback_random, {}
    # inductor draws its own random numbers unless told to call torch's: with them both runs see the same noise.
    # `patch` is inductor's own scoped override: it restores the option, where a monkeypatched module attribute
    # would be deleted on undo when the module serves it through __getattr__ (the option then vanishes).
    with inductor_config.patch(fallback_random=True):
        for compile in ("false", "true"):
            out = tmp_path / compile
            args = ("--dataset_name", "ring", "--max_train_steps", "4", "--use_ema", "false", "--eval_at_end", "false")
            assert run(*args, "--objective", objective, "--compile", compile, "--output_dir", str(out)) == 0
            outputs[compile] = weights(out)
    assert inductor_config.fallback_random == before  # restored for the tests that follow
    assert outputs["true"].keys() == outputs["false"].keys()
    for name, eager in outputs["false"].items():
        # one graph reorders float sums, nothing else: 4 Adam steps of lr 1e-3 keep the weights within 1e-5
        torch.testing.assert_close(outputs["true"][name], eager, rtol=1e-4, atol=1e-5, msg=name)


def _write_images(folder: Path, count: int) -> None:
    """Mixed modes on purpose: RGBA, grayscale and RGB of odd sizes."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        mode, size = [("RGBA", (40, 30)), ("L", (20, 20)), ("RGB", (64, 48))][i % 3]
        channels = {"RGBA": 4, "L": 1, "RGB": 3}[mode]
        arr = rng.integers(0, 255, (size[1], size[0], channels), dtype=np.uint8)
        PIL.Image.fromarray(arr[..., 0] if channels == 1 else arr, mode).save(folder / f"{i}.png")


IMAGE_ARGS = [
    "--train_batch_size",
    "4",
    "--resolution",
    "28",
    "--base_channels",
    "8",
    "--max_train_steps",
    "3",
    "--eval_at_end",
    "false",
    "--validation_steps",
    "100",
]


def test_imagefolder_dataset(tmp_path):
    _write_images(tmp_path / "images", 9)
    out = tmp_path / "out"
    assert run(*IMAGE_ARGS, "--train_data_dir", str(tmp_path / "images"), "--output_dir", str(out)) == 0
    pipe = VEEGAN.from_pretrained(out)
    assert pipe.generator.config.num_channels == 3 and pipe.generator.config.image_size == 28
    assert (out / "samples" / "final.png").is_file()


def test_parquet_dataset_with_nonstandard_column(tmp_path):
    import datasets

    _write_images(tmp_path / "images", 8)
    rows = {
        "caption": [f"c{i}" for i in range(8)],
        "scan": [{"bytes": (tmp_path / "images" / f"{i}.png").read_bytes(), "path": None} for i in range(8)],
    }
    features = datasets.Features({"caption": datasets.Value("string"), "scan": datasets.Image()})
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "data.parquet"))
    out = tmp_path / "out"
    assert (
        run(
            *IMAGE_ARGS,
            "--dataset_name",
            str(tmp_path / "data.parquet"),
            "--image_column",
            "scan",
            "--num_channels",
            "1",
            "--output_dir",
            str(out),
        )
        == 0
    )
    assert VEEGAN.from_pretrained(out).generator.config.num_channels == 1
    # detected without --image_column too (it is the only Image feature); and a save_to_disk copy works
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "disk"))
    assert run(*IMAGE_ARGS, "--dataset_name", str(tmp_path / "disk"), "--output_dir", str(tmp_path / "out2")) == 0


# ----------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learning_rate", "-1"], "--learning_rate -1.0 must lie in"),
        (["--mixed_precision", "fp8"], "--mixed_precision 'fp8' is not supported"),
        (["--objective", "wgan"], "--objective 'wgan' is not supported"),
        (["--max_train_steps", "2.5"], "max_train_steps='2.5' is not a valid int"),
        (["--ema_decay", "1.5"], "--ema_decay 1.5 must lie in"),
        (["--push_to_hub"], "--push_to_hub needs --hub_model_id"),
        (["--config", "nonexistent_preset"], "presets:"),
        (["--dataset_name", "/no/such/folder/x"], "no such local folder or file"),
        (["--dataset_name", "org/not-a-dataset"], "could not be loaded"),
        (["--dataset_name", "ring", "--architecture", "dcgan"], "is vector data"),
        (["--joint_pack_size", "3", "--train_batch_size", "64"], "not a multiple of --joint_pack_size 3"),
        (["--objective", "pacgan", "--pack_size", "0"], "--pack_size 0 must lie in"),
        (["--objective", "unrolled", "--compile", "true"], "--compile cannot run --objective unrolled"),
        (["--objective", "gan", "--discriminator_marginal_head"], "--objective gan already judges x alone"),
        (["--resume_from_checkpoint", "checkpoint-7"], "is not a checkpoint-N folder"),
    ],
)
def test_bad_options_fail_before_training(tmp_path, capsys, args, message):
    assert run("--output_dir", str(tmp_path / "o"), *args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "o" / "model_index.json").exists()


def test_report_to_a_missing_tracker_stops_with_the_fix(tmp_path, capsys, monkeypatch):
    """accelerate would drop a tracker whose package is missing without a word; the run stops before training."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "wandb" else real(name, *args))
    assert run("--output_dir", str(tmp_path / "o"), "--report_to", "wandb") == 1
    err = capsys.readouterr().err
    assert "--report_to wandb needs the wandb package: pip install wandb, or pass --report_to none" in err
    assert not (tmp_path / "o" / "model_index.json").exists()


def test_unknown_preset_key(tmp_path, capsys):
    preset = tmp_path / "bad.yaml"
    preset.write_text("learning_rate: 0.001\nlearnin_rate: 0.1\n")
    assert run("--config", str(preset)) == 1
    assert "unknown options ['learnin_rate']" in capsys.readouterr().err


def test_dataset_without_images_and_missing_column(tmp_path, capsys):
    import datasets

    datasets.Dataset.from_dict({"text": ["a"] * 8, "label": [0] * 8}).save_to_disk(str(tmp_path / "text"))
    assert run(*IMAGE_ARGS, "--dataset_name", str(tmp_path / "text"), "--output_dir", str(tmp_path / "o")) == 1
    assert "no image column found in columns ['text', 'label']; pass --image_column NAME" in capsys.readouterr().err
    args = ("--dataset_name", str(tmp_path / "text"), "--image_column", "photo", "--output_dir", str(tmp_path / "p"))
    assert run(*IMAGE_ARGS, *args) == 1
    assert "--image_column 'photo' is not a column" in capsys.readouterr().err


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
    # lambda = 1e39 overflows float32: the loss is Inf from the first resumed step
    assert (
        run(*common, "--max_train_steps", "20", "--resume_from_checkpoint", "latest", "--reconstruction_weight", "1e39")
        == 1
    )
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


def test_ranks_that_disagree_stop_the_run():
    """The DDP check compares per-rank checksums: a rank whose weights drifted is an error naming the checksums."""

    class TwoRanks:  # what accelerate's gather returns when rank 1 differs from rank 0
        num_processes, device = 2, torch.device("cpu")

        def gather(self, checksum):
            return torch.cat([checksum, checksum + torch.tensor([[0.0, 1.0, 0.0]], dtype=checksum.dtype)])

    nets = {name: torch.nn.Linear(2, 2) for name in ("generator", "reconstructor", "discriminator")}
    with pytest.raises(RuntimeError, match="ranks hold different weights"):
        loop._check_ranks_agree(TwoRanks(), nets)

    class AgreeingRanks(TwoRanks):
        def gather(self, checksum):
            return torch.cat([checksum, checksum])

    loop._check_ranks_agree(AgreeingRanks(), nets)  # identical ranks pass


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
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("checkpoint-*"))) < 2:
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


PRESETS = sorted(p.stem for p in (REPO / "training" / "configs").glob("*.yaml"))


def test_every_preset_is_listed_and_commented():
    """The README names every preset, and every value in a preset carries its reason as a comment."""
    assert set(PRESETS) >= {"ring", "grid", "synthetic1200", "mnist", "stacked_mnist", "cifar10", "celeba64"}
    readme = (REPO / "README.md").read_text()
    for name in PRESETS:
        assert f"`{name}`" in readme, f"README.md does not list the preset {name}"
        for line in (REPO / "training" / "configs" / f"{name}.yaml").read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                assert " # " in line, f"{name}.yaml: no reason given for {line!r}"
        load_preset(name)  # every key is a TrainingConfig field with a valid value


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_on_tiny_data(tmp_path, preset):
    """Each recipe runs as written, shrunk to 2 steps; the Hub-only ones read a tiny local imagefolder instead."""
    values = load_preset(preset)
    args = [
        "--config",
        preset,
        "--max_train_steps",
        "2",
        "--output_dir",
        str(tmp_path / "o"),
        "--eval_at_end",
        "false",
        "--report_to",
        "none",
        "--dataloader_num_workers",
        "0",
        "--num_validation_samples",
        "100",
    ]
    is_hub_data = values.get("dataset_name") not in BUILTIN_DATASETS
    if is_hub_data:
        _write_images(tmp_path / "images", 8)
        args += ["--dataset_name", str(tmp_path / "images"), "--image_column", "image", "--train_batch_size", "4"]
    else:
        args += ["--train_batch_size", "8"]
    if values.get("mixed_precision") == "fp16":
        args += ["--mixed_precision", "no"]
    assert train_module.main(args) == 0
    config = json.loads((tmp_path / "o" / "training_config.json").read_text())
    for key, value in values.items():
        if key not in (
            "dataset_name",
            "image_column",
            "train_batch_size",
            "max_train_steps",
            "mixed_precision",
            "dataloader_num_workers",
        ):
            assert config[key] == value, key


def test_table1_smoke(tmp_path):
    """The CI version of `python benchmarks/table1.py`: every method and dataset, 1 seed, a few steps."""
    from benchmarks import table1

    assert (
        table1.main(["--smoke", "--jobs", "2", "--results_dir", str(tmp_path), "--work_dir", str(tmp_path / "runs")])
        == 0
    )
    payload = json.loads((tmp_path / "table1_smoke.json").read_text())
    assert len(payload["runs"]) == len(table1.METHODS) * len(table1.DATASETS)
    assert set(payload["summary"]) == {*table1.METHODS, table1.DATA_ROW}
    for dataset in table1.DATASETS:  # the data row is what a perfect generator scores: every mode, ~98.9% HQ in 2-D
        cell = payload["summary"][table1.DATA_ROW][dataset]
        assert cell["modes_captured"]["mean"] == cell["num_modes"] and cell["hq_percent"]["mean"] > 97, dataset
    assert payload["meta"]["commit"] and payload["meta"]["cpu"]
    for dataset in table1.DATASETS:
        assert (tmp_path / f"table1_smoke_{dataset}.png").is_file()
    markdown = (tmp_path / "table1_smoke.md").read_text()
    assert "VEEGAN (ours)" in markdown and "(paper's Table 1)" in markdown
    assert "| PacGAN3 (PacGAN's runs) | 7.8 | 97.7 |" in markdown  # the best published rows sit beside the paper's


def test_table1_resumes_only_runs_of_the_same_clean_commit(tmp_path, monkeypatch):
    """An interrupted table reruns only what is missing; records from other or uncommitted code are retrained."""
    from benchmarks import table1
    from veegan_hf.benchmarking.runs import RUN_RECORD

    argv = ["--smoke", "--jobs", "1", "--datasets", "ring", "--methods", "GAN"]
    argv += ["--results_dir", str(tmp_path), "--work_dir", str(tmp_path / "runs")]
    record = tmp_path / "runs" / "ring-gan-seed0" / RUN_RECORD

    def meta_at(commit: str) -> dict:
        monkeypatch.setenv("VEEGAN_COMMIT", commit)  # what the table stamps its runs with
        assert table1.main(argv) == 0
        return json.loads((tmp_path / "table1_smoke.json").read_text())["meta"]

    assert meta_at("a" * 40)["reused_runs"] == 0
    first = json.loads(record.read_text())
    assert first["commit"] == "a" * 40 and first["metrics"]["num_samples"] == 2500

    meta = meta_at("a" * 40)  # same commit: nothing trains again
    assert meta["reused_runs"] == 1 and json.loads(record.read_text()) == first
    assert "reused from an interrupted invocation" in (tmp_path / "table1_smoke.md").read_text()

    assert meta_at("b" * 40)["reused_runs"] == 0  # other code: retrained, and the record now says so
    assert json.loads(record.read_text())["commit"] == "b" * 40
    assert meta_at("b" * 40 + "-dirty")["reused_runs"] == 0  # an uncommitted tree is never trusted
    assert meta_at("b" * 40 + "-dirty")["reused_runs"] == 0


def test_table1_keeps_other_rows_only_where_seed_0_reproduces(tmp_path, monkeypatch):
    """`--keep` retrains the named methods on every seed and the others on seed 0; the others' later seeds come from
    the old file, stamped with its commit, and a cell whose seed 0 no longer reproduces stops the table unwritten."""
    from benchmarks import table1

    base = ["--smoke", "--seeds", "2", "--jobs", "2", "--datasets", "ring"]
    monkeypatch.setenv("VEEGAN_COMMIT", "a" * 40)
    assert table1.main([*base, "--results_dir", str(tmp_path / "old"), "--work_dir", str(tmp_path / "r1")]) == 0
    old_file = tmp_path / "old" / "table1_smoke.json"
    old = json.loads(old_file.read_text())

    monkeypatch.setenv("VEEGAN_COMMIT", "b" * 40)
    keep = [*base, "--methods", "VEEGAN (ours)", "--keep", str(old_file)]
    assert table1.main([*keep, "--results_dir", str(tmp_path / "new"), "--work_dir", str(tmp_path / "r2")]) == 0
    new = json.loads((tmp_path / "new" / "table1_smoke.json").read_text())
    assert new["summary"] == old["summary"]  # same code: every cell reproduces
    assert new["meta"]["kept"]["commit"] == "a" * 40
    assert new["meta"]["kept"]["methods"] == [m for m in table1.METHODS if m != "VEEGAN (ours)"]
    commits = {(r["method"], r["seed"]): r["commit"] for r in new["runs"]}
    assert commits[("VEEGAN (ours)", 1)] == commits[("GAN", 0)] == "b" * 40 and commits[("GAN", 1)] == "a" * 40
    assert "reproduced the kept figures to the sample" in (tmp_path / "new" / "table1_smoke.md").read_text()

    gan_seed0 = next(r for r in old["runs"] if (r["method"], r["seed"]) == ("GAN", 0))
    gan_seed0["metrics"]["hq_percent"] += 1.0  # a kept figure the code no longer produces
    old_file.write_text(json.dumps(old))
    assert table1.main([*keep, "--results_dir", str(tmp_path / "bad"), "--work_dir", str(tmp_path / "r2")]) == 1
    assert not (tmp_path / "bad" / "table1_smoke.json").exists()


def test_push_to_hub_from_training(tmp_path, fake_hub):
    """--push_to_hub uploads the exported pipeline with a card that carries the measured metrics."""
    out = tmp_path / "run"
    assert (
        run(
            "--dataset_name",
            "ring",
            "--max_train_steps",
            "4",
            "--output_dir",
            str(out),
            "--push_to_hub",
            "--hub_model_id",
            "org/veegan-ring",
            "--hub_token",
            "secret",
        )
        == 0
    )
    assert [repo_id for repo_id, _ in fake_hub.uploads] == ["org/veegan-ring"]
    card = (fake_hub.folder / "README.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"value: {float(metrics['hq_percent'])}" in card and 'from_pretrained("org/veegan-ring")' in card
    assert "secret" not in card and "secret" not in (out / "training_config.json").read_text()


def test_table1_render_adds_the_data_row_to_finished_runs(tmp_path):
    """`--render` rebuilds a committed table with the data and published rows, training nothing."""
    from benchmarks import table1

    source = REPO / "benchmarks" / "results" / "table1.json"
    assert table1.main(["--render", str(source), "--results_dir", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "table1.json").read_text())
    before = json.loads(source.read_text())
    assert payload["runs"] == before["runs"] and payload["meta"]["commit"] == before["meta"]["commit"]
    assert payload["meta"]["rendered"]["commit"]
    data = payload["summary"][table1.DATA_ROW]
    assert data["ring"]["modes_captured"]["mean"] == 8 and 97 < data["ring"]["hq_percent"]["mean"] < 100
    assert data["ring"]["num_seeds"] == before["meta"]["seeds"]
    markdown = (tmp_path / "table1.md").read_text()
    assert markdown.index(table1.DATA_ROW) < markdown.index("| GAN |") and "GDPP" in markdown


def test_coverage_over_time_smoke(tmp_path):
    """The CI version of `python benchmarks/coverage_over_time.py`: every method scored during and after training."""
    from benchmarks import coverage_over_time

    assert coverage_over_time.main(["--smoke", "--jobs", "2", "--results_dir", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "coverage_grid_smoke.json").read_text())
    assert [r["method"] for r in payload["runs"]] == list(coverage_over_time.METHODS)
    for run in payload["runs"]:
        assert [h["step"] for h in run["history"]] == [20]  # the mid-run scoring; the final one is run["metrics"]
        assert 0 <= run["history"][0]["modes_captured"] <= 25 and run["metrics"]["modes_captured"] <= 25
        # validation time is excluded from the training clock, so the curve's x-axis is comparable across methods
        assert 0 < run["history"][0]["train_seconds"] <= run["train_seconds"]
    assert (tmp_path / "coverage_grid_smoke.png").stat().st_size > 0
    assert "VEEGAN (ours)" in (tmp_path / "coverage_grid_smoke.md").read_text()
