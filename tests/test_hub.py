"""Hub paths without a network: loading a repo id from the cache, pushing, and every corrupt-file error."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from tests.conftest import make_pipeline
from veegan_hf import VEEGAN
from veegan_hf.model_card import create_model_card

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
        "samples.png",  # the card's scatter plot goes up with the weights
    ]
    card = ModelCard.load(uploaded / "README.md")
    assert card.data.library_name == "veegan-hf"
    assert {"veegan", "gan"} <= set(card.data.tags)
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"modes_captured": 8.0, "hq_percent": 98.5, "reverse_kl": 0.01}
    assert 'VEEGAN.from_pretrained("org/veegan-ring")' in card.text and "![samples](samples.png)" in card.text
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


# ---------------------------------------------------------------- the model card's content


# an absolute path of the machine that wrote the card: /tmp/..., /home/..., C:\..., ~/...
LOCAL_PATH = re.compile(r"(?<![\w.:/~-])(?:~|[A-Za-z]:)?[/\\](?:tmp|home|work|root|Users|var|private|data)\b")


def _card(folder: Path) -> tuple[ModelCard, str]:
    """The saved card, parsed, and its raw text (metadata and body)."""
    return ModelCard.load(folder / "README.md"), (folder / "README.md").read_text(encoding="utf-8")


def _metric_names(card: ModelCard) -> dict[str, str]:
    return {r.metric_type: r.metric_name for r in card.data.eval_results}


@pytest.mark.parametrize(
    ("family", "dataset", "metrics", "expected"),
    [
        ("dcgan-28-1", "mnist", {"modes_covered": 10, "num_modes": 10, "kl": 0.05}, "Modes covered (of 10)"),
        ("dcgan-32-3", "stacked_mnist", {"modes_covered": 997, "num_modes": 1000}, "Modes covered (of 1000)"),
        # no num_modes recorded: the built-in dataset says how many modes there are
        ("dcgan-28-1", "mnist", {"modes_covered": 9}, "Modes covered (of 10)"),
        ("mlp-2d", "ring", {"modes_captured": 8, "num_modes": 8, "num_samples": 2500}, "Modes captured (of 8)"),
        ("mlp-2d", "grid", {"modes_captured": 24}, "Modes captured (of 25)"),
        ("mlp-1200d", "synthetic1200", {"modes_captured": 10, "num_modes": 10}, "Modes captured (of 10)"),
    ],
)
def test_mode_metrics_are_out_of_the_tasks_modes(tmp_path, family, dataset, metrics, expected):
    make_pipeline(family).save_pretrained(tmp_path, dataset_name=dataset, metrics=metrics)
    card, text = _card(tmp_path)
    key = "modes_covered" if "modes_covered" in metrics else "modes_captured"
    assert _metric_names(card)[key] == expected
    assert f"| {expected} | {metrics[key]:g} |" in text
    assert "of 1000" not in text or dataset == "stacked_mnist"
    # bookkeeping is not a metric: neither in the model-index nor in the table
    assert {r.metric_type for r in card.data.eval_results}.isdisjoint({"num_modes", "num_samples"})
    assert "num_modes" not in text and "num_samples" not in text


def test_ivom_settings_are_not_listed_as_metrics(tmp_path):
    metrics = {
        "ivom": 0.01,
        "ivom_num_steps": 200,
        "ivom_num_restarts": 3,
        "ivom_learning_rate": 0.05,
        "num_samples": 64,
    }
    make_pipeline("dcgan-32-3").save_pretrained(tmp_path, metrics=metrics)
    card, text = _card(tmp_path)
    assert [(r.metric_name, r.metric_value) for r in card.data.eval_results] == [
        ("IvOM: best of F(x) and random starts, after Adam steps (MSE)", 0.01)
    ]
    assert "ivom_num_steps" not in text and "num_samples" not in text


@pytest.mark.parametrize("family", ["mlp-2d", "mlp-1200d"])
def test_vector_models_claim_no_hf_task(tmp_path, family):
    make_pipeline(family).save_pretrained(tmp_path, dataset_name="ring", metrics={"modes_captured": 8})
    card, text = _card(tmp_path)
    assert card.data.pipeline_tag is None
    assert {"unconditional-generation", "synthetic-data", "veegan", "gan"} <= set(card.data.tags)
    assert "tabular" not in text and "image-generation" not in text
    assert card.data.eval_results[0].task_type == "unconditional-generation"


@pytest.mark.parametrize("family", ["dcgan-28-1", "dcgan-32-3", "dcgan-64-3"])
def test_image_models_are_unconditional_image_generation(tmp_path, family):
    make_pipeline(family).save_pretrained(tmp_path, dataset_name="mnist")
    card, _ = _card(tmp_path)
    assert card.data.pipeline_tag == "unconditional-image-generation"
    assert "unconditional-image-generation" in card.data.tags and "synthetic-data" not in card.data.tags


def test_no_local_path_anywhere_in_the_card(tmp_path):
    data_dir = tmp_path / "data" / "my_faces"
    data_dir.mkdir(parents=True)
    out = tmp_path / "runs" / "faces-run"
    config = {
        "output_dir": str(out),
        "train_data_dir": str(data_dir),
        "dataset_name": str(data_dir),
        "cache_dir": "/home/someone/.cache/huggingface",
        "resume_from_checkpoint": str(out / "checkpoint-500"),
        "command": f"train.py --train_data_dir {data_dir} --output_dir={out} --cache_dir ~/hf-cache --seed 0",
        "git_commit": "/work/checkout/abc123-dirty",
        "hub_model_id": "org/veegan-faces",
        "learning_rate": 2e-4,
    }
    make_pipeline("dcgan-32-3").save_pretrained(out, dataset_name=str(data_dir), training_config=config)
    card, text = _card(out)
    assert str(tmp_path) not in text and not LOCAL_PATH.search(text), LOCAL_PATH.search(text)
    assert "training_dataset" not in text  # the old key held the full path
    assert card.data.datasets is None  # a local folder is not a Hub dataset
    assert card.data.get("veegan_dataset") == {"source": "local", "name": "my_faces"}
    assert "a local image folder (`my_faces`)" in text
    # each path option keeps only its last component; a Hub id and plain values are untouched
    options = json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])
    assert options["output_dir"] == "faces-run" and options["train_data_dir"] == "my_faces"
    assert options["dataset_name"] == "my_faces" and options["cache_dir"] == "huggingface"
    assert options["resume_from_checkpoint"] == "checkpoint-500" and options["git_commit"] == "abc123-dirty"
    assert (
        options["command"] == "train.py --train_data_dir my_faces --output_dir=faces-run --cache_dir hf-cache --seed 0"
    )
    assert options["hub_model_id"] == "org/veegan-faces" and options["learning_rate"] == 2e-4


@pytest.mark.parametrize("name", ["ring", "grid", "synthetic1200", "mnist", "stacked_mnist"])
def test_builtin_datasets_are_named_by_their_description(tmp_path, name):
    from veegan_hf.data import BUILTIN_DATASETS

    family = {"synthetic1200": "mlp-1200d", "mnist": "dcgan-28-1", "stacked_mnist": "dcgan-32-3"}.get(name, "mlp-2d")
    make_pipeline(family).save_pretrained(tmp_path, dataset_name=name)
    card, text = _card(tmp_path)
    description = BUILTIN_DATASETS[name].description
    assert f"`{name}` ({description})" in text
    # the digits are MNIST's, named on the Hub; the mixtures exist nowhere else
    assert card.data.datasets == (["ylecun/mnist"] if "mnist" in name else None)
    assert card.data.get("veegan_dataset") == {"source": "builtin", "name": name, "description": description}


def test_hub_dataset_in_the_standard_datasets_key(tmp_path):
    make_pipeline("dcgan-64-3").save_pretrained(tmp_path, dataset_name="nielsr/CelebA-faces")
    card, text = _card(tmp_path)
    assert card.data.datasets == ["nielsr/CelebA-faces"]
    assert card.data.library_name == "veegan-hf"
    assert card.data.get("base_model") is None  # no training config names one
    assert "[`nielsr/CelebA-faces`](https://huggingface.co/datasets/nielsr/CelebA-faces)" in text
    assert len(card.data.tags) == len(set(card.data.tags)) and "veegan" in card.data.tags


def test_image_models_save_an_8x8_sample_grid(tmp_path):
    import PIL.Image

    pipe = make_pipeline("dcgan-28-1")
    pipe.save_pretrained(tmp_path, dataset_name="mnist")
    grid = PIL.Image.open(tmp_path / "samples.png")
    assert grid.width >= 512 and grid.width == grid.height  # 8 tiles of 28 px, enlarged, per side
    assert "![samples](samples.png)" in (tmp_path / "README.md").read_text()
    again = tmp_path / "again"
    pipe.save_pretrained(again, dataset_name="mnist")  # a fixed seed: the same picture every time
    assert (again / "samples.png").read_bytes() == (tmp_path / "samples.png").read_bytes()


def test_2d_models_save_a_scatter_plot_and_others_none(tmp_path):
    import PIL.Image

    make_pipeline("mlp-2d").save_pretrained(tmp_path / "ring", dataset_name="ring")
    scatter = PIL.Image.open(tmp_path / "ring" / "samples.png")
    assert min(scatter.size) >= 400
    assert "![samples](samples.png)" in (tmp_path / "ring" / "README.md").read_text()
    # a 1200-D model has no picture, and a stale one in the same folder is removed with the old model
    make_pipeline("mlp-2d").save_pretrained(tmp_path / "reused", dataset_name="ring")
    make_pipeline("mlp-1200d").save_pretrained(tmp_path / "reused", dataset_name="synthetic1200")
    assert not (tmp_path / "reused" / "samples.png").exists()
    assert "![samples]" not in (tmp_path / "reused" / "README.md").read_text()


def test_samples_png_is_not_downloaded_with_the_pipeline(tmp_path, monkeypatch):
    make_pipeline("dcgan-28-1").save_pretrained(tmp_path / "saved", dataset_name="mnist")
    assert (tmp_path / "saved" / "samples.png").is_file()
    fill_hub_cache(tmp_path / "saved", tmp_path / "cache", "org/veegan-mnist", monkeypatch)
    VEEGAN.from_pretrained("org/veegan-mnist")  # loads from the cache snapshot; the pattern list excludes the image


@pytest.mark.parametrize(
    ("repo_id", "dataset", "title"),
    [
        (None, "mnist", "# VEEGAN on MNIST digits"),
        (None, "stacked_mnist", "# VEEGAN on Stacked MNIST"),
        (None, None, "# VEEGAN 2-D vector model"),
        ("org/veegan-ring", "ring", "# veegan-ring"),
        ("org/ring-model", "ring", "# VEEGAN: ring-model"),
    ],
)
def test_title_is_real(tmp_path, repo_id, dataset, title):
    family = "mlp-2d" if dataset in (None, "ring") else "dcgan-28-1" if dataset == "mnist" else "dcgan-32-3"
    card = create_model_card(make_pipeline(family), repo_id=repo_id, save_directory=tmp_path, dataset_name=dataset)
    heading = next(line for line in card.text.splitlines() if line.startswith("# "))
    assert heading == title
    assert heading.lower().count("veegan") == 1
    assert card.data.model_name == heading[2:]  # the model-index name matches the title


def test_a_baseline_card_names_its_objective_and_keeps_it_on_a_re_save(tmp_path):
    make_pipeline("dcgan-28-1").save_pretrained(
        tmp_path / "a", dataset_name="mnist", training_config={"objective": "pacgan", "seed": 0}
    )
    text = (tmp_path / "a" / "README.md").read_text()
    assert "# PacGAN on MNIST" in text and "baseline of VEEGAN" in text and "A [VEEGAN]" not in text
    loaded = VEEGAN.from_pretrained(tmp_path / "a")
    assert loaded.card_metadata["objective"] == "pacgan"
    loaded.save_pretrained(tmp_path / "b")  # the re-save has no run record, only the card
    assert "# PacGAN on MNIST" in (tmp_path / "b" / "README.md").read_text()
    make_pipeline("dcgan-28-1").save_pretrained(tmp_path / "c", dataset_name="mnist")
    assert "veegan_objective" not in (tmp_path / "c" / "README.md").read_text()  # VEEGAN's card is as before


def test_card_round_trip_keeps_dataset_and_metrics(tmp_path):
    metrics = {"modes_covered": 10, "num_modes": 10, "kl": 0.05, "num_samples": 10000}
    make_pipeline("dcgan-28-1").save_pretrained(tmp_path / "a", dataset_name="mnist", metrics=metrics)
    loaded = VEEGAN.from_pretrained(tmp_path / "a")
    assert loaded.card_metadata == {"dataset_name": "mnist", "metrics": {"modes_covered": 10.0, "kl": 0.05}}
    loaded.save_pretrained(tmp_path / "b")  # a re-save keeps what the card said
    assert _card(tmp_path / "b")[1] == _card(tmp_path / "a")[1]
    # a Hub dataset, and a local folder (by name only, kept local: never mistaken for a Hub id or a built-in)
    make_pipeline("dcgan-32-3").save_pretrained(tmp_path / "c", dataset_name="uoft-cs/cifar10", metrics={"ivom": 0.1})
    assert VEEGAN.from_pretrained(tmp_path / "c").card_metadata == {
        "dataset_name": "uoft-cs/cifar10",
        "metrics": {"ivom": 0.1},
    }
    folder = tmp_path / "images" / "mnist"
    folder.mkdir(parents=True)
    make_pipeline("dcgan-28-1").save_pretrained(tmp_path / "d", dataset_name=str(folder), metrics={"modes_covered": 7})
    local = VEEGAN.from_pretrained(tmp_path / "d")
    assert local.card_metadata == {"dataset_name": "./mnist", "metrics": {"modes_covered": 7.0}}
    local.save_pretrained(tmp_path / "e")
    assert "a local image folder (`mnist`)" in _card(tmp_path / "e")[1]


def test_legacy_cards_still_read(tmp_path):
    make_pipeline("dcgan-28-1").save_pretrained(tmp_path)
    legacy = """---
library_name: veegan-hf
training_dataset: mnist
model-index:
- name: veegan
  results:
  - task:
      type: unconditional-image-generation
    dataset:
      name: mnist
      type: mnist
    metrics:
    - type: modes_covered
      value: 10.0
      name: Modes covered (of 1000)
    - type: kl
      value: 0.46
      name: KL(p_gen || p_data)
---

# VEEGAN: veegan
"""
    (tmp_path / "README.md").write_text(legacy)
    pipe = VEEGAN.from_pretrained(tmp_path)
    # the wrong "(of 1000)" of old MNIST cards is dropped: the built-in dataset knows it has 10 modes
    assert pipe.card_metadata == {"dataset_name": "mnist", "metrics": {"modes_covered": 10.0, "kl": 0.46}}
    pipe.save_pretrained(tmp_path)
    card, text = _card(tmp_path)
    assert _metric_names(card)["modes_covered"] == "Modes covered (of 10)" and "training_dataset" not in text
