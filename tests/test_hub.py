"""Hub paths without a network: loading a repo id from the cache, pushing, and every corrupt-file error."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from tests.conftest import make_pipeline
from veegan_hf import VEEGAN

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fill_hub_cache(folder: Path, cache: Path, repo_id: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Lays `folder` out as the standard HF cache entry of `repo_id` and points huggingface_hub at that cache."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    return repo


def test_offline_from_pretrained_by_repo_id(tmp_path, monkeypatch):
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE  # set in conftest before import
    pipe = make_pipeline("dcgan-28-1")
    pipe.save_pretrained(tmp_path / "saved", dataset_name="mnist", metrics={"modes_captured": 10.0})
    fill_hub_cache(tmp_path / "saved", tmp_path / "cache", "org/veegan-celeba", monkeypatch)
    loaded = VEEGAN.from_pretrained("org/veegan-celeba")
    seed = torch.Generator().manual_seed(0)
    expected = pipe(batch_size=3, generator=seed, output_type="pt").samples
    assert torch.equal(
        loaded(batch_size=3, generator=torch.Generator().manual_seed(0), output_type="pt").samples, expected
    )
    assert loaded.card_metadata == {"dataset_name": "mnist", "metrics": {"modes_captured": 10.0}}
    by_revision = VEEGAN.from_pretrained("org/veegan-celeba", revision=COMMIT, local_files_only=True)
    assert torch.equal(
        by_revision(batch_size=3, generator=torch.Generator().manual_seed(0), output_type="pt").samples, expected
    )
    assert by_revision.discriminator is not None  # all three networks come back


def test_missing_repo_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="neither a local folder nor in the Hugging Face cache"):
        VEEGAN.from_pretrained("org/not-there")


def test_push_to_hub_uploads_pipeline_and_card(fake_hub):
    pipe = make_pipeline("mlp-2d")
    metrics = {"modes_captured": 8, "hq_percent": 98.5, "reverse_kl": 0.01}
    url = pipe.push_to_hub(
        "org/veegan-ring", private=True, dataset_name="ring", metrics=metrics, training_config={"learning_rate": 1e-3}
    )
    assert url.endswith("/commit/abc")
    assert fake_hub.create_repo == [("org/veegan-ring", {"private": True, "token": None, "exist_ok": True})]
    uploaded = fake_hub.folder
    files = sorted(str(p.relative_to(uploaded)) for p in uploaded.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "discriminator/config.json",
        "discriminator/diffusion_pytorch_model.safetensors",
        "generator/config.json",
        "generator/diffusion_pytorch_model.safetensors",
        "model_index.json",
        "reconstructor/config.json",
        "reconstructor/diffusion_pytorch_model.safetensors",
    ]
    card = ModelCard.load(uploaded / "README.md")
    assert card.data.library_name == "veegan-hf"
    assert {"veegan", "gan"} <= set(card.data.tags)
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"modes_captured": 8.0, "hq_percent": 98.5, "reverse_kl": 0.01}
    assert 'VEEGAN.from_pretrained("org/veegan-ring")' in card.text
    assert "srivastava2017veegan" in card.text and '"learning_rate": 0.001' in card.text
    assert json.loads((uploaded / "generator" / "config.json").read_text())["data_dim"] == 2


def test_dataset_name_survives_a_reload_without_metrics(tmp_path):
    make_pipeline("mlp-2d").save_pretrained(tmp_path, dataset_name="ring")
    assert VEEGAN.from_pretrained(tmp_path).card_metadata == {"dataset_name": "ring"}


def test_model_card_records_hub_dataset_and_task(tmp_path):
    pipe = make_pipeline("dcgan-32-3")
    pipe.save_pretrained(tmp_path, dataset_name="uoft-cs/cifar10", metrics={"ivom": 0.0068})
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.datasets == ["uoft-cs/cifar10"]
    assert "unconditional-image-generation" in card.data.tags
    assert card.data.eval_results[0].metric_value == 0.0068


# ---------------------------------------------------------------- corrupt and mismatched files


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
    weights = saved / "generator" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"generator/diffusion_pytorch_model\.safetensors is truncated or corrupt"):
        VEEGAN.from_pretrained(saved)


def test_garbage_weights_name_the_file(saved):
    (saved / "reconstructor" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"reconstructor/diffusion_pytorch_model\.safetensors"):
        VEEGAN.from_pretrained(saved)


def test_missing_weights_and_pickle_only_folder(saved):
    weights = saved / "generator" / "diffusion_pytorch_model.safetensors"
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
