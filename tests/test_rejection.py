"""Discriminator rejection sampling: with an oracle D it turns G's samples into the data distribution; a joint D
judges the code that made each sample; a packing D, every image family and the bounds behave."""

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tests.conftest import FAMILIES, make_pipeline
from veegan_hf import VEEGAN, RejectionSampling, VEEGANDiscriminator, VEEGANGenerator, VEEGANReconstructor

DATA_STD = 0.5  # the oracle's data: N(0, 0.25 I) in 2-D, against G's N(0, I)


class _FirstTwo(nn.Module):
    """G: z -> z[:, :2], so G's samples are N(0, I) in 2-D."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # diffusers reads a model's dtype from its first parameter

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return latents[:, :2]


class _OracleHead(nn.Module):
    """D's logit log p_G / p_data for p_G = N(0, I) and p_data = N(0, DATA_STD^2 I), up to a constant."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # the pipeline reads its device from its networks' parameters

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return 0.5 * (1 / DATA_STD**2 - 1) * h.pow(2).sum(-1, keepdim=True)  # (batch, 1)


def _oracle_pipe() -> VEEGAN:
    generator = VEEGANGenerator(architecture="mlp", latent_dim=4, data_dim=2)
    generator.net = _FirstTwo()
    discriminator = VEEGANDiscriminator(architecture="mlp", latent_dim=0, data_dim=2, hidden_dim=2)
    discriminator.sample_path, discriminator.head = nn.Identity(), _OracleHead()
    reconstructor = VEEGANReconstructor(architecture="mlp", latent_dim=4, data_dim=2)
    return VEEGAN(generator=generator, reconstructor=reconstructor, discriminator=discriminator)


def test_an_oracle_discriminator_at_gamma_0_turns_g_into_the_data():
    # at γ = 0, σ(F) = exp(r - r_max): the exact rejection rule, so the kept samples are N(0, DATA_STD^2 I)
    pipe = _oracle_pipe()
    out = pipe(
        batch_size=20000,
        generator=torch.Generator().manual_seed(0),
        rejection_sampling=RejectionSampling(gamma=0.0, epsilon=1e-9),
    )
    assert out.samples.shape == (20000, 2)
    assert out.samples.std(dim=0) == pytest.approx(torch.full((2,), DATA_STD), abs=0.015)
    # the acceptance of exp(-1.5 |x|^2) under N(0, I) is E = 1 / (1 + 3) = 1/4 (r_max from a finite draw: a bit above)
    assert out.acceptance_rate == pytest.approx(0.25, abs=0.02)
    plain = pipe(batch_size=20000, generator=torch.Generator().manual_seed(0))
    assert plain.samples.std(dim=0) == pytest.approx(torch.ones(2), abs=0.03)


def test_the_target_acceptance_is_met_and_the_seed_reproduces_the_draw():
    pipe = _oracle_pipe()
    draw = lambda: pipe(  # noqa: E731
        batch_size=3000, generator=torch.Generator().manual_seed(1), rejection_sampling=RejectionSampling(0.3)
    )
    first, second = draw(), draw()
    assert torch.equal(first.samples, second.samples) and torch.equal(first.latents, second.latents)
    assert first.acceptance_rate == pytest.approx(0.3, abs=0.03)
    # the kept codes are the codes of the kept samples
    assert torch.equal(pipe.decode(first.latents), first.samples)


def test_a_joint_discriminator_judges_the_code_that_made_each_sample():
    pipe = make_pipeline("mlp-2d", hidden_dim=1)
    d = pipe.discriminator
    d.sample_path = nn.Linear(2, 1)
    d.latent_path = nn.Linear(8, 1)
    d.head = nn.Identity()
    with torch.no_grad():
        for layer in (d.sample_path, d.latent_path):
            layer.weight.zero_(), layer.bias.zero_()
        d.latent_path.weight[0, 0] = 5.0  # logit 5 z_0: "generated" when z_0 > 0
    out = pipe(batch_size=2000, generator=torch.Generator().manual_seed(0), rejection_sampling=True)
    assert out.latents[:, 0].mean() < -0.5  # the codes D calls real were kept
    assert out.acceptance_rate == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_samples_with_rejection_as_without(family):
    pipe = make_pipeline(family)
    out = pipe(batch_size=5, generator=torch.Generator().manual_seed(0), rejection_sampling=True, output_type="pt")
    plain = pipe(batch_size=5, generator=torch.Generator().manual_seed(0), output_type="pt")
    assert out.samples.shape == plain.samples.shape and 0 < out.acceptance_rate <= 1
    assert plain.acceptance_rate is None


def test_a_packing_discriminator_scores_every_sample():
    pipe = make_pipeline("mlp-2d")
    pipe.discriminator = VEEGANDiscriminator(**{**FAMILIES["mlp-2d"], "latent_dim": 0, "pack_size": 4})
    out = pipe(batch_size=7, generator=torch.Generator().manual_seed(0), rejection_sampling=RejectionSampling(0.5))
    assert out.samples.shape == (7, 2) and out.acceptance_rate == pytest.approx(0.5, abs=0.1)


def test_without_a_discriminator_or_with_latents_it_says_why():
    pipe = make_pipeline("mlp-2d", discriminator=False)
    with pytest.raises(ValueError, match="needs the discriminator"):
        pipe(batch_size=4, rejection_sampling=True)
    assert pipe(batch_size=4).samples.shape == (4, 2)  # plain sampling is unchanged
    with pytest.raises(ValueError, match="pass batch_size instead of latents"):
        make_pipeline("mlp-2d")(latents=torch.zeros(3, 8), rejection_sampling=True)
    with pytest.raises(TypeError, match="rejection_sampling must be"):
        make_pipeline("mlp-2d")(batch_size=2, rejection_sampling="yes")


def test_a_discriminator_that_rejects_everything_stops_at_the_cap():
    pipe = _oracle_pipe()
    strict = RejectionSampling(gamma=40.0, num_calibration=64, max_candidates_per_sample=5)
    with pytest.raises(RuntimeError, match=r"reached its cap of 5 candidates per sample \(gamma was 40\)"):
        pipe(batch_size=10, generator=torch.Generator().manual_seed(0), rejection_sampling=strict)
    assert pipe.discriminator.training  # D's mode is restored after the failure


@settings(max_examples=40, deadline=None)
@given(target=st.floats(allow_nan=True, allow_infinity=True, width=32))
def test_every_target_outside_0_1_is_refused_by_name(target):
    if math.isfinite(target) and 0 < target <= 1:
        assert RejectionSampling(target_acceptance=target).target_acceptance == target
    else:
        with pytest.raises(ValueError, match="target_acceptance"):
            RejectionSampling(target_acceptance=target)


def test_the_rejection_benchmark_scores_plain_and_drs_rows_from_one_model(tmp_path):
    """benchmarks/rejection_sampling.py: a plain row and one row per target, modes and HQ by the mixture protocol,
    the acceptance near its target, and a markdown table with the sampler named."""
    from benchmarks import rejection_sampling

    pipe = make_pipeline("mlp-2d")
    pipe.save_pretrained(tmp_path / "run")
    (tmp_path / "run" / "training_config.json").write_text(json.dumps({"dataset_name": "grid", "objective": "veegan"}))
    args = [str(tmp_path / "run"), "--targets", "0.5", "--seeds", "0", "--output", str(tmp_path / "rs")]
    assert rejection_sampling.main(args) == 0
    rows = json.loads((tmp_path / "rs.json").read_text())["rows"]
    assert [r["target_acceptance"] for r in rows] == [None, 0.5]
    assert rows[0]["acceptance_rate"] == 1.0 and abs(rows[1]["acceptance_rate"] - 0.5) < 0.1
    assert all(r["num_modes"] == 25 and 0 <= r["hq_percent"] <= 100 for r in rows)
    assert "DRS, target 0.5" in (tmp_path / "rs.md").read_text()
