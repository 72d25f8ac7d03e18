import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chi2

from veegan_hf.data import get_mixture
from veegan_hf.metrics import (
    digits_to_modes,
    high_quality_radius,
    hq_breakdown,
    mixture_metrics,
    mixture_metrics_for,
    modes_to_digits,
    reconstruction_mse,
    stacked_mnist_metrics,
)

MIXTURE_KEYS = {
    "modes_captured",
    "num_modes",
    "hq_percent",
    "reverse_kl",
    "num_samples",
    "mode_share_min",
    "mode_share_max",
}


# ---------------------------------------------------------------------------------------------- HQ radius


@pytest.mark.parametrize("dof", [1, 2, 10, 700])
def test_high_quality_radius_matches_the_chi2_quantile(dof):
    expected = math.sqrt(chi2.ppf(1 - math.exp(-4.5), dof))
    assert high_quality_radius(1.0, dof) == pytest.approx(expected, rel=1e-9)
    assert high_quality_radius(0.5, dof) == pytest.approx(0.5 * expected, rel=1e-9)


def test_high_quality_radius_special_values():
    assert high_quality_radius(0.02, 2) == pytest.approx(0.06, rel=1e-14)  # 3 std in 2-D
    assert high_quality_radius(1.0, 2) == 3.0
    assert high_quality_radius(1.0, 700) == pytest.approx(28.0, abs=0.1)
    with pytest.raises(ValueError, match=r"std.*-1"):
        high_quality_radius(-1.0, 2)
    with pytest.raises(ValueError, match=r"noise_dim.*0"):
        high_quality_radius(1.0, 0)


# ---------------------------------------------------------------------------------------------- mixtures


@pytest.mark.parametrize("name", ["ring", "grid", "synthetic1200"])
def test_real_data_scores_all_modes_and_98_9_percent(name):
    mixture = get_mixture(name)
    samples = mixture.sample(2500, generator=torch.Generator().manual_seed(0))
    metrics = mixture_metrics_for(samples, mixture)
    assert set(metrics) == MIXTURE_KEYS
    assert metrics["modes_captured"] == metrics["num_modes"] == mixture.num_modes
    assert isinstance(metrics["modes_captured"], int) and isinstance(metrics["num_samples"], int)
    assert metrics["num_samples"] == 2500
    assert metrics["hq_percent"] == pytest.approx(98.889, abs=1.5)
    assert 0 <= metrics["reverse_kl"] < 0.02
    assert metrics == mixture_metrics(samples, mixture.means, mixture.std, mixture.noise_dim)


@pytest.mark.parametrize("name", ["ring", "grid", "synthetic1200"])
def test_collapse_onto_one_mean(name):
    mixture = get_mixture(name)
    samples = mixture.means[3:4].expand(100, -1)
    metrics = mixture_metrics_for(samples, mixture)
    assert metrics["modes_captured"] == 1
    assert metrics["hq_percent"] == 100.0
    assert metrics["reverse_kl"] == pytest.approx(math.log(mixture.num_modes), rel=1e-12)


def test_far_samples_score_nothing():
    grid = get_mixture("grid")
    samples = torch.full((50, 2), 100.0)
    metrics = mixture_metrics_for(samples, grid)
    assert metrics["modes_captured"] == 0 and metrics["hq_percent"] == 0.0
    assert metrics["reverse_kl"] == pytest.approx(math.log(25))  # no HQ sample: reported as total collapse
    between = torch.tensor([[1.0, 1.0]])  # equidistant from four means, far from all
    assert mixture_metrics_for(between, grid)["modes_captured"] == 0


def test_hq_threshold_and_histogram_by_nearest_mean():
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    # 3 std = 0.3: two HQ samples at mode 0 (one exactly on the radius), one at mode 1, one just outside.
    samples = torch.tensor([[0.0, 0.3], [0.1, 0.0], [10.0, 0.0], [10.31, 0.0]], dtype=torch.float64)
    metrics = mixture_metrics(samples, means, std=0.1, noise_dim=2)
    assert metrics["modes_captured"] == 2
    assert metrics["hq_percent"] == 75.0
    p_hat = torch.tensor([2 / 3, 1 / 3], dtype=torch.float64)
    assert metrics["reverse_kl"] == pytest.approx(float((p_hat * torch.log(2 * p_hat)).sum()), rel=1e-12)


def test_chunked_distances_match_a_direct_computation():
    mixture = get_mixture("synthetic1200")
    samples = mixture.sample(5000, generator=torch.Generator().manual_seed(2))  # more rows than one block
    samples[::7, 700:] += 3.0  # push some samples out of their mode
    metrics = mixture_metrics_for(samples, mixture)
    distances = torch.cdist(samples.double(), mixture.means.double())
    nearest_distance, nearest_mode = distances.min(dim=1)
    hq = nearest_distance <= high_quality_radius(1.0, 700)
    assert metrics["hq_percent"] == pytest.approx(100 * hq.double().mean().item())
    assert metrics["modes_captured"] == len(nearest_mode[hq].unique())


def test_mixture_metrics_rejects_bad_input():
    ring = get_mixture("ring")
    with pytest.raises(ValueError, match=r"\(0, 2\)"):
        mixture_metrics_for(torch.zeros(0, 2), ring)
    with pytest.raises(ValueError, match=r"NaN"):
        mixture_metrics_for(torch.tensor([[0.0, float("nan")]]), ring)
    with pytest.raises(ValueError, match=r"NaN or infinite"):
        mixture_metrics_for(torch.tensor([[0.0, float("inf")]]), ring)
    with pytest.raises(ValueError, match=r"\(5, 3\).*\(8, 2\)"):
        mixture_metrics_for(torch.zeros(5, 3), ring)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        mixture_metrics_for(torch.zeros(2), ring)


# ---------------------------------------------------------------------------------------------- Stacked MNIST


@given(st.lists(st.tuples(*[st.integers(0, 9)] * 3), min_size=1, max_size=50))
def test_modes_to_digits_inverts_digits_to_modes(triples):
    digits = torch.tensor(triples)  # (N, 3)
    modes = digits_to_modes(digits)
    assert torch.equal(modes_to_digits(modes), digits)
    assert torch.equal(digits_to_modes(modes_to_digits(torch.arange(1000))), torch.arange(1000))


def test_digits_to_modes():
    digits = torch.tensor([[0, 0, 0], [1, 2, 3], [9, 9, 9], [0, 5, 0]])
    assert digits_to_modes(digits).tolist() == [0, 123, 999, 50]
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        digits_to_modes(digits[:, :2])
    with pytest.raises(ValueError, match=r"10"):
        digits_to_modes(torch.tensor([[10, 0, 0]]))
    with pytest.raises(ValueError, match=r"float"):
        digits_to_modes(digits.float())


def test_uniform_predictions_cover_every_mode():
    modes = torch.arange(1000).repeat(26)  # 26,000 samples, exactly uniform
    metrics = stacked_mnist_metrics(modes)
    assert metrics["modes_covered"] == 1000 and metrics["num_samples"] == 26000
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-12)
    random_modes = torch.randint(1000, (26000,), generator=torch.Generator().manual_seed(0))
    metrics = stacked_mnist_metrics(random_modes)
    assert metrics["modes_covered"] == 1000
    assert metrics["kl"] < 0.03  # sampling noise only: about (modes - 1) / (2 · samples)


def test_single_mode_collapse():
    metrics = stacked_mnist_metrics(torch.full((500,), 42))
    assert metrics["modes_covered"] == 1
    assert metrics["kl"] == pytest.approx(math.log(1000), rel=1e-12)


def test_kl_against_data_counts_uses_add_one_smoothing():
    data_counts = torch.zeros(1000, dtype=torch.int64)
    data_counts[:500] = 4  # half the modes were never drawn for training
    modes = torch.tensor([0, 0, 1, 999])
    p_data = (data_counts.double() + 1) / (2000 + 1000)
    expected = 0.5 * math.log(0.5 / p_data[0]) + 0.25 * math.log(0.25 / p_data[1]) + 0.25 * math.log(0.25 / p_data[999])
    metrics = stacked_mnist_metrics(modes, data_mode_counts=data_counts)
    assert metrics["modes_covered"] == 3
    assert metrics["kl"] == pytest.approx(expected, rel=1e-12)
    # Uniform counts give the same KL as p_data=None.
    assert stacked_mnist_metrics(modes, torch.full((1000,), 7))["kl"] == pytest.approx(
        stacked_mnist_metrics(modes)["kl"], rel=1e-12
    )


def test_stacked_mnist_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(0,\)"):
        stacked_mnist_metrics(torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"1000"):
        stacked_mnist_metrics(torch.tensor([1000]))
    with pytest.raises(ValueError, match=r"float"):
        stacked_mnist_metrics(torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"counts, not probabilities"):
        stacked_mnist_metrics(torch.tensor([1]), data_mode_counts=torch.full((1000,), 1e-3))
    with pytest.raises(ValueError, match=r"\(10,\)"):
        stacked_mnist_metrics(torch.tensor([1]), data_mode_counts=torch.ones(10))


# ------------------------------------------------------------------------------------------ reconstruction


def test_reconstruction_mse_known_values():
    real = -torch.ones(2, 3, 4, 4)
    assert reconstruction_mse(real, real) == 0.0
    assert reconstruction_mse(real, torch.ones(2, 3, 4, 4)) == pytest.approx(1.0)  # black vs white in [0, 1]
    assert reconstruction_mse(real, torch.zeros(2, 3, 4, 4)) == pytest.approx(0.25)  # 0 vs 0.5
    half = real.clone()
    half[0] = 1.0
    assert reconstruction_mse(half, real) == pytest.approx(0.5)


def test_reconstruction_mse_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(2, 1, 4, 4\).*\(2, 1, 4, 5\)"):
        reconstruction_mse(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match=r"\[255, 255\].*\[-1, 1\].*127.5"):
        reconstruction_mse(torch.full((1, 4), 255.0), torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"NaN"):
        reconstruction_mse(torch.zeros(1, 4), torch.full((1, 4), float("nan")))


def test_hq_breakdown_splits_misses_into_wide_modes_and_transitions():
    ring = get_mixture("ring")
    data = ring.sample(20000, generator=torch.Generator().manual_seed(0))
    m = hq_breakdown(data, ring)
    # the data: 98.89% within r* = 3 std, the rest just outside, none between modes, width ratio 1
    assert m["hq_percent"] == pytest.approx(98.89, abs=0.3) and m["between_modes_percent"] == 0.0
    assert m["width_ratio"] == pytest.approx(1.0, abs=0.02)
    # midpoints of neighbouring means are far from every mode; modes twice as wide are near misses and HQ
    midpoints = (ring.means + ring.means.roll(1, dims=0)) / 2
    wide = ring.means.repeat(2500, 1) + 2 * ring.std * torch.randn(20000, 2, generator=torch.Generator().manual_seed(1))
    both = hq_breakdown(torch.cat([midpoints.repeat(100, 1), wide]), ring)
    # 2-D, twice the std: P(d <= 3 std) = 1 - exp(-9 / 8), P(d > 6 std) = exp(-36 / 8)
    assert both["between_modes_percent"] == pytest.approx(100 * (800 + 20000 * math.exp(-36 / 8)) / 20800, abs=0.3)
    assert both["hq_percent"] == pytest.approx(100 * (1 - math.exp(-9 / 8)) * 20000 / 20800, abs=1.0)
    assert sum(both[k] for k in ("hq_percent", "near_miss_percent", "between_modes_percent")) == pytest.approx(100)
    # RMS of a 2-D Gaussian of twice the std, cut at 6 std: sqrt(E[d^2 | d <= 6 std]) = 2.756 std, over sqrt(2) std
    assert both["width_ratio"] == pytest.approx(1.95, abs=0.03)
    assert math.isnan(hq_breakdown(midpoints, ring)["width_ratio"])  # no sample near a mode


def test_hq_breakdown_refuses_overlapping_modes_and_bad_shapes():
    mixture = get_mixture("synthetic1200")  # means closer than the HQ radius: "between modes" has no meaning
    with pytest.raises(ValueError, match="synthetic1200: modes .* apart, within 4 r"):
        hq_breakdown(mixture.sample(10, generator=torch.Generator().manual_seed(0)), mixture)
    with pytest.raises(ValueError, match=r"differ in data_dim \(3 vs 2\)"):
        hq_breakdown(torch.zeros(4, 3), get_mixture("ring"))
    with pytest.raises(ValueError, match=r"num_samples > 0"):
        hq_breakdown(torch.zeros(0, 2), get_mixture("ring"))


def test_hq_breakdown_script_prints_the_data_ceiling_then_each_run(tmp_path, capsys):
    """`benchmarks/hq_breakdown.py`: the true mixture first (98.9% HQ, nothing between modes), then each model."""
    from benchmarks import hq_breakdown as script
    from tests.conftest import make_pipeline

    make_pipeline("mlp-2d").save_pretrained(tmp_path)  # an untrained G: its samples sit near the origin
    (tmp_path / "training_config.json").write_text('{"dataset_name": "ring"}')
    assert script.main([str(tmp_path), "--num_samples", "2000"]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [r[0].strip() for r in rows] == ["ring data", str(tmp_path)]
    data, model = ([float(cell) for cell in r[1:]] for r in rows)
    assert data[0] > 98 and data[2] == 0.0
    assert model[2] == 100.0  # the ring's modes are at radius 2: the origin is between them


def test_mixture_mode_shares_say_how_unequal_the_captured_modes_are():
    ring = get_mixture("ring")
    data = ring.sample(2500, generator=torch.Generator().manual_seed(0))
    balanced = mixture_metrics_for(data, ring)
    assert 0.09 < balanced["mode_share_min"] <= 1 / 8 <= balanced["mode_share_max"] < 0.16
    skewed = mixture_metrics_for(torch.cat([data, ring.means[:1].repeat(2500, 1)]), ring)  # mode 0 on top
    assert skewed["modes_captured"] == 8 and skewed["mode_share_max"] > 0.5 and skewed["mode_share_min"] < 0.08
    one_mode = mixture_metrics_for(ring.means[:1].repeat(100, 1), ring)
    assert one_mode["mode_share_min"] == 0.0 and one_mode["mode_share_max"] == 1.0
