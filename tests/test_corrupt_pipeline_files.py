"""A saved pipeline folder that is corrupt or mismatched: each failure names the file, the key or the tensor."""

import json
from pathlib import Path

import pytest

from tests.conftest import make_pipeline
from veegan_hf import VEEGAN
from veegan_hf.loading import WEIGHTS_NAME


@pytest.fixture
def saved(tmp_path) -> Path:
    make_pipeline("mlp-2d").save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def _edit_config(folder: Path, edit) -> None:
    path = folder / "generator" / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def test_truncated_weights_name_the_file(saved):
    weights = saved / "generator" / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"generator/diffusion_pytorch_model\.safetensors is truncated or corrupt"):
        VEEGAN.from_pretrained(saved)


def test_garbage_weights_name_the_file(saved):
    (saved / "reconstructor" / WEIGHTS_NAME).write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"reconstructor/diffusion_pytorch_model\.safetensors"):
        VEEGAN.from_pretrained(saved)


def test_missing_weights_and_pickle_only_folder(saved):
    weights = saved / "generator" / WEIGHTS_NAME
    weights.rename(weights.with_suffix(".bin"))  # a pickle file is never read
    with pytest.raises(ValueError, match=r"safetensors is missing .*weights load from safetensors only"):
        VEEGAN.from_pretrained(saved)


def test_unknown_config_key(saved):
    _edit_config(saved, lambda c: c.update(num_heads=4))
    with pytest.raises(ValueError, match=r"generator/config\.json does not match .*unknown keys \['num_heads'\]"):
        VEEGAN.from_pretrained(saved)


def test_missing_config_key(saved):
    _edit_config(saved, lambda c: c.pop("hidden_dim"))
    with pytest.raises(ValueError, match=r"missing keys \['hidden_dim'\]"):
        VEEGAN.from_pretrained(saved)


def test_config_saved_before_a_key_was_added_loads_with_the_old_behaviour(saved):
    _edit_config(saved, lambda c: c.pop("batch_norm"))  # generators saved before batch_norm existed had none
    assert VEEGAN.from_pretrained(saved).generator.config.batch_norm is False


def test_invalid_config_value(saved):
    _edit_config(saved, lambda c: c.update(architecture="transformer"))
    with pytest.raises(ValueError, match=r"generator/config\.json holds an invalid value: architecture='transformer'"):
        VEEGAN.from_pretrained(saved)


def test_config_not_json(saved):
    (saved / "generator" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"generator/config\.json is not valid JSON"):
        VEEGAN.from_pretrained(saved)


def test_shape_mismatch_names_file_and_tensor(saved):
    _edit_config(saved, lambda c: c.update(hidden_dim=64))
    with pytest.raises(
        ValueError, match=r"generator/diffusion_pytorch_model\.safetensors does not fit .*net\.0\.weight"
    ):
        VEEGAN.from_pretrained(saved)


def test_not_a_pipeline_folder(tmp_path):
    with pytest.raises(ValueError, match="model_index.json is missing"):
        VEEGAN.from_pretrained(tmp_path)


def test_wrong_class_in_model_index(saved):
    index = json.loads((saved / "model_index.json").read_text())
    index["generator"] = ["diffusers", "UNet2DModel"]
    (saved / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"lists generator as \['diffusers', 'UNet2DModel'\]"):
        VEEGAN.from_pretrained(saved)


def test_an_unreadable_model_index_names_itself(saved):
    """A model_index.json that is a file but cannot be read (here a link to /proc/self/mem, whose read fails with an
    I/O error) is named with the reason, like every other unreadable file, not a raw OSError."""
    index = saved / "model_index.json"
    index.unlink()
    index.symlink_to("/proc/self/mem")
    with pytest.raises(ValueError, match=r"model_index\.json cannot be read \(.+\); .*save_pretrained"):
        VEEGAN.from_pretrained(saved)
