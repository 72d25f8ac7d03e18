"""Every shipped preset: listed in the README, each value with its reason, and runnable as written (shrunk)."""

import json

import pytest

from tests.training_helpers import REPO, write_images
from veegan_hf import train as train_module
from veegan_hf.data import BUILTIN_DATASETS
from veegan_hf.training import load_preset


@pytest.fixture(autouse=True)
def _reset_accelerate(fresh_accelerate_state):
    """Every test here trains in-process."""


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
        write_images(tmp_path / "images", 8)
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


def test_help_describes_every_option_and_its_data_dependent_default(capsys):
    """`--help` gives each option its config comment and choices, and says where a default depends on the data."""
    from veegan_hf.training.arguments import _parser, field_comments
    from veegan_hf.training.config import fields

    comments = field_comments()
    assert all(comments.get(name) for name in fields()), sorted(n for n in fields() if not comments.get(n))
    text = " ".join(_parser().format_help().split())
    assert "--reconstruction_weight VALUE lambda on ||z - F(G(z))||^2" in text
    assert "(default: 1.0 from the ring preset; image data without a preset: 0.01;" in text
    assert "{veegan, gan, ali, unrolled, pacgan}" in text and "--print_config" in text
    assert "(default: 16 from the ring preset; image data without a preset: 32;" in text  # latent_dim


def test_print_config_resolves_preset_data_and_flags_without_training(tmp_path, capsys):
    import PIL.Image

    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(70):  # more than the image preset's batch of 64
        PIL.Image.new("L", (28, 28), color=i).save(folder / f"{i}.png")
    out = tmp_path / "never-made"
    argv = ["--print_config", "--train_data_dir", str(folder), "--output_dir", str(out), "--seed", "7"]
    assert train_module.main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["preset"] == "image" and record["seed"] == 7 and record["reconstruction_weight"] == 0.01
    assert (record["resolution"], record["num_channels"], record["architecture"]) == (28, 1, "dcgan")  # the data's
    assert not out.exists()
    assert train_module.main(["--print_config", "--learning_rate", "-1"]) == 1  # a bad value: the usual one line
    assert "--learning_rate -1.0 must lie in" in capsys.readouterr().err
