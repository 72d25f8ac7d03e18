"""training/train.py end to end on CPU: outputs, precision, data, errors, the rank check, presets, the Hub."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import reset_accelerate, same_tensors
from tests.training_helpers import run, weights, write_images
from veegan_hf import VEEGAN
from veegan_hf.loading import WEIGHTS_NAME
from veegan_hf.training import loop


@pytest.fixture(autouse=True)
def _reset_accelerate(fresh_accelerate_state):
    """Every test here trains in-process."""


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
    exported = load_file(out / "generator" / WEIGHTS_NAME)
    assert same_tensors(exported, {k.removeprefix("model."): v for k, v in ema.items() if k.startswith("model.")})
    assert not all(torch.equal(raw[k], v) for k, v in exported.items() if k in raw)


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


def test_the_data_cycle_term_trains_and_is_recorded(tmp_path):
    """--data_reconstruction_weight mu: the same seed's networks move differently from Algorithm 1's, and mu is kept."""
    outputs = {}
    for mu in ("0", "5"):
        out = tmp_path / mu
        args = ("--dataset_name", "grid", "--max_train_steps", "5", "--use_ema", "false", "--eval_at_end", "false")
        assert run(*args, "--data_reconstruction_weight", mu, "--output_dir", str(out)) == 0
        outputs[mu] = weights(out)
    recorded = json.loads((tmp_path / "5" / "training_config.json").read_text())
    assert recorded["data_reconstruction_weight"] == 5.0
    assert outputs["0"].keys() == outputs["5"].keys()
    moved = [name for name in outputs["0"] if not torch.equal(outputs["0"][name], outputs["5"][name])]
    assert any(name.startswith("reconstructor.") for name in moved)


def test_max_train_seconds_stops_on_time_between_logging_steps(tmp_path):
    """One process checks its clock every step: a 1.5 s budget ends near 1.5 s, not at the next logging step."""
    out = tmp_path / "o"
    args = ("--dataset_name", "grid", "--max_train_steps", "10000000", "--max_train_seconds", "1.5")
    quiet = ("--logging_steps", "5000000", "--validation_steps", "5000000", "--eval_at_end", "false")
    assert run(*args, *quiet, "--fit_schedules_to_time", "false", "--output_dir", str(out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train/stopped_by_time"] is True
    # stopped by the clock between two logging steps (5,000,000 apart), whatever the machine's load
    assert 0 < metrics["train/steps"] < 5_000_000
    assert metrics["train/wall_seconds"] >= 1.5, metrics["train/wall_seconds"]


def test_max_train_seconds_fits_the_schedules_to_the_time(tmp_path):
    """The grid preset decays its rate over the last quarter: under a time limit the decay is fitted to the steps
    that fit, so the run ends with the rate near 0, and the record, the metrics and the card say how it ended."""
    out = tmp_path / "o"
    args = (
        "--dataset_name",
        "grid",
        "--max_train_steps",
        "10000000",
        "--max_train_seconds",
        "4",
        "--logging_steps",
        "50",
        "--hidden_dim",  # small networks: thousands of steps in 4 s even on a loaded machine
        "32",
        "--discriminator_hidden_dim",
        "32",
    )
    assert run(*args, "--validation_steps", "5000000", "--eval_at_end", "false", "--output_dir", str(out)) == 0
    record = json.loads((out / "training_config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    fitted = record["fitted_max_train_steps"]
    # the fit follows the measured rate, refitted every 50 steps; a machine whose load rises in the last of them may
    # stop short of it, and the stop reason then says so
    assert 100 < fitted < 10_000_000 and metrics["train/steps"] <= fitted
    reason = metrics["train/stop_reason"]
    assert reason.startswith(("completed the schedules fitted to --max_train_seconds 4", "--max_train_seconds 4"))
    assert record["run"]["steps"] == metrics["train/steps"] and record["run"]["max_train_steps"] == 10_000_000
    card = (out / "README.md").read_text()
    assert f"| steps | {metrics['train/steps']:,} of 10,000,000 ({reason})" in card
    assert "| training images | fresh draws every step |" in card


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
    write_images(tmp_path / "images", 9)
    out = tmp_path / "out"
    assert run(*IMAGE_ARGS, "--train_data_dir", str(tmp_path / "images"), "--output_dir", str(out)) == 0
    pipe = VEEGAN.from_pretrained(out)
    assert pipe.generator.config.num_channels == 3 and pipe.generator.config.image_size == 28
    assert (out / "samples" / "final.png").is_file()


def test_parquet_dataset_with_nonstandard_column(tmp_path):
    import datasets

    write_images(tmp_path / "images", 8)
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


def test_alternating_updates_step_d_first_then_g_against_the_updated_d(tmp_path):
    """One step each way from the same start: D's update is the same (its loss is taken before any update either
    way), while G's differs, because alternating takes G's gradient at the D just updated."""
    common = ("--dataset_name", "grid", "--max_train_steps", "1", "--eval_at_end", "false", "--use_ema", "false")
    for order in ("simultaneous", "alternating"):
        assert run(*common, "--update_order", order, "--output_dir", str(tmp_path / order)) == 0
    together, alternated = weights(tmp_path / "simultaneous"), weights(tmp_path / "alternating")
    d_keys = [k for k in together if k.startswith("discriminator.")]
    g_keys = [k for k in together if k.startswith("generator.")]
    assert all(torch.equal(together[k], alternated[k]) for k in d_keys)
    assert not all(torch.equal(together[k], alternated[k]) for k in g_keys)
    assert run(*common, "--update_order", "alternating", "--gradient_accumulation_steps", "2") == 1
