"""The model committed in spaces/veegan-mnist: loads offline, samples, encodes and inverts; its card is honest."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from veegan_hf import VEEGAN

SHIPPED = Path(__file__).resolve().parents[1] / "spaces" / "veegan-mnist"


def test_shipped_model_samples_and_inverts_offline():
    pipe = VEEGAN.from_pretrained(SHIPPED)
    assert pipe.is_image_model and pipe.discriminator is None  # the Space never needs D: it is not shipped
    out = pipe(batch_size=4, generator=torch.Generator().manual_seed(0), output_type="pt")
    assert out.samples.shape == (4, 1, 28, 28)
    target = out.samples
    z0 = pipe.encode(target)
    z = pipe.invert(target, num_steps=20)
    err = [((pipe(latents=c, output_type="pt").samples - target) ** 2).mean().item() for c in (z0, z)]
    assert err[1] <= err[0]


def test_shipped_card_carries_the_recorded_evaluation():
    card = ModelCard.load(SHIPPED / "README.md")
    recorded = json.loads((SHIPPED / "metrics.json").read_text())
    values = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert values["KL(p_gen || uniform over modes)"] == recorded["kl"]
    assert values["Smallest mode's share of the samples"] == recorded["mode_share_min"] == min(recorded["mode_shares"])
    assert "Mode classifier held-out accuracy" not in values  # the scorer's accuracy is not the model's result
    assert recorded["train/steps"] == 9000 and recorded["train/stop_reason"] == "completed"
    assert recorded["modes_covered"] == recorded["num_modes"] == 10
    assert card.data.library_name == "veegan-hf" and "veegan" in card.data.tags
    assert card.data.datasets == ["ylecun/mnist"]  # the standard key, as a card saved now writes it
    assert (SHIPPED / "samples.png").is_file() and "![samples](samples.png)" in card.text


def test_shipped_model_is_balanced_as_recorded():
    """The digit histogram is measured again here: every digit, KL to uniform at most 0.10, no digit under 5%."""
    from benchmarks.ship_digit_model import NUM_SAMPLES, SEED, digit_shares
    from veegan_hf.evaluation import evaluate

    pipe = VEEGAN.from_pretrained(SHIPPED)
    record = json.loads((SHIPPED / "metrics.json").read_text())
    evaluation = evaluate(pipe, "mnist", num_samples=NUM_SAMPLES, seed=SEED)
    assert evaluation["kl"] == pytest.approx(record["kl"], rel=1e-9)
    shares = digit_shares(pipe)
    assert shares == pytest.approx(record["mode_shares"])
    assert evaluation["modes_covered"] == 10 and evaluation["kl"] <= 0.10 and min(shares) >= 0.05


def test_space_defaults_to_the_shipped_model():
    from tests.test_space import app

    pipe = app.load_pipeline()
    assert pipe.generator.config.image_size == 28 and pipe.latent_dim == 32
