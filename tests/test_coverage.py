"""The coverage report: its neighbour metrics against their definitions and the `prdc` reference, its calibration,
a toy model that never makes one cluster, and a real digit model trained without 3s."""

import math
import socket
from pathlib import Path

import pytest
import torch
from torch import nn

from veegan_hf import VEEGAN, VEEGANGenerator, VEEGANReconstructor
from veegan_hf.coverage import coverage_report, expected_coverage, neighbour_metrics
from veegan_hf.coverage.measures import fid_kid

CENTRES = torch.tensor([[math.cos(a), math.sin(a)] for a in torch.arange(10) * 2 * math.pi / 10]) * 4


class _NeverMakes(nn.Module):
    """G of a toy model: z -> a point of one of the clusters 1..9, never cluster 0."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # diffusers reads a model's dtype from its first parameter

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        cluster = 1 + (latents[:, 0].abs() * 1000).long() % 9  # (batch,) in 1..9
        return CENTRES[cluster] + 0.3 * latents[:, 1:3]


def _toy_pipe() -> VEEGAN:
    torch.manual_seed(0)  # the toy F is left untrained: the same weights in every report
    generator = VEEGANGenerator(architecture="mlp", latent_dim=3, data_dim=2)
    reconstructor = VEEGANReconstructor(architecture="mlp", latent_dim=3, data_dim=2)
    generator.net = _NeverMakes()
    return VEEGAN(generator=generator, reconstructor=reconstructor)


def _toy_data(num: int = 2000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(10, (num,), generator=generator)
    return CENTRES[labels] + 0.3 * torch.randn(num, 2, generator=generator), labels


def test_a_dropped_cluster_is_ranked_first_and_fills_the_worst_list():
    points, labels = _toy_data()
    report = coverage_report(_toy_pipe(), (points, labels), refine_worst=8, refine_steps=3, fid=False, progress=False)
    assert report.per_mode["mode"][0] == 0 and report.per_mode["generated_share"][0] == 0.0
    assert report.metrics["most_dropped_mode"] == 0 and report.metrics["most_dropped_ties"] == 1
    assert "Most dropped mode: 0 " in report.to_markdown()
    dropped = sum(1 for label in report.per_image["label"] if label == 0)
    worst = report.worst(dropped // 2, by="coverage_ratio")
    assert all(report.per_image["label"][i] == 0 for i in worst)
    assert sum(report.per_image["label"][i] == 0 for i in report.worst(dropped // 2)) > 0.7 * (dropped // 2)
    # only cluster 0 is left uncovered; the data row covers as a perfect model does
    assert report.metrics["coverage"] == pytest.approx(0.9 * report.metrics["baseline_coverage"], abs=0.04)
    uncovered = [label for label, covered in zip(report.per_image["label"], report.per_image["covered"]) if not covered]
    assert sum(label == 0 for label in uncovered) > 0.8 * len(uncovered)


class _OnlyMakes(nn.Module):
    """G of a collapsed toy model: every z -> one point of cluster 5."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return CENTRES[5].expand(len(latents), 2) + 0.01 * latents[:, :2]


def test_a_collapsed_model_names_no_single_dropped_mode():
    # nine clusters are equally unmakeable: naming the first of them would single one out at random
    pipe = _toy_pipe()
    pipe.generator.net = _OnlyMakes()
    report = coverage_report(pipe, _toy_data(1000), refine_worst=2, refine_steps=2, fid=False, progress=False)
    assert report.metrics["most_dropped_ties"] == 9 and report.per_mode["generated_share"][-1] == 1.0
    assert "No single mode stands out: 9 of 10 modes tie as most dropped" in report.to_markdown()


WITHOUT_3 = Path(__file__).parents[1] / "benchmarks" / "results" / "models" / "mnist_without_3"


def test_a_digit_model_trained_without_3s_has_3_named_most_dropped():
    # benchmarks/coverage_dropped_digit.py --save_model trained it: the `mnist` preset on every training digit but 3.
    # Its classifier-read samples hold more "3"s than real data does, so the share gap alone would miss it.
    report = coverage_report(VEEGAN.from_pretrained(WITHOUT_3), "mnist", fid=False, progress=False)
    assert report.metrics["most_dropped_mode"] == 3
    rows = {row["mode"]: row for row in report.per_mode}
    assert rows[3]["not_makeable_rate"] > max(r["not_makeable_rate"] for m, r in rows.items() if m != 3) + 0.05
    assert report.metrics["most_under_generated_mode"] != 3


def test_the_same_seed_gives_the_same_tables():
    points, labels = _toy_data(400)
    kwargs = dict(refine_worst=4, refine_steps=2, fid=False, progress=False)
    first, second = (coverage_report(_toy_pipe(), (points, labels), seed=3, **kwargs) for _ in range(2))
    assert first.per_image.to_pandas().equals(second.per_image.to_pandas())  # NaN (unrefined) equals NaN here
    assert first.per_mode.to_pandas().equals(second.per_mode.to_pandas())
    other = coverage_report(_toy_pipe(), (points, labels), seed=4, **kwargs)  # another split and other samples
    assert not other.per_image.to_pandas().equals(first.per_image.to_pandas())


@pytest.mark.parametrize("nearest_k", [3, 5])
def test_a_perfect_model_covers_one_minus_two_to_the_minus_k(nearest_k):
    """Real against disjoint real draws: coverage within 3 standard errors of 1 - C(N-1,k)/C(N+M-1,k), density
    near 1. The per-draw spread is wider than binomial, so the mean of 8 draws is compared."""
    expected = expected_coverage(800, 800, nearest_k)
    assert expected == pytest.approx(1 - 2**-nearest_k, abs=0.01)
    draws = []
    for seed in range(8):
        generator = torch.Generator().manual_seed(seed)
        real, fake = torch.randn(800, 16, generator=generator), torch.randn(800, 16, generator=generator)
        draws.append(neighbour_metrics(real, fake, nearest_k))
    coverage = torch.stack([d["coverage"] for d in draws])
    assert abs(coverage.mean() - expected) < 3 * max(coverage.std() / math.sqrt(8), 0.002)
    assert torch.stack([d["density"] for d in draws]).mean() == pytest.approx(1.0, abs=0.1)


def test_ties_do_not_zero_the_metrics():
    """Generated samples that duplicate real ones are covered (closed balls), unlike prdc's strict comparison."""
    real = torch.randn(50, 4)
    metrics = neighbour_metrics(real, real.clone(), nearest_k=5)
    assert metrics["coverage"] == 1.0 and metrics["precision"] == 1.0 and metrics["density"] >= 1.0
    duplicated = torch.cat([real[:10], real[:10]])  # radius 0 where an image is repeated more than k times
    tied = neighbour_metrics(torch.cat([duplicated] * 3), duplicated, nearest_k=5)
    assert tied["covered"].all() and torch.isfinite(tied["coverage_ratio"]).all()


def test_aggregates_equal_the_prdc_reference():
    prdc = pytest.importorskip("prdc", reason="the prdc reference is a dev-only dependency (pip install prdc)")
    generator = torch.Generator().manual_seed(0)
    real, fake = torch.randn(300, 8, generator=generator), 1.2 * torch.randn(250, 8, generator=generator) + 0.3
    reference = prdc.compute_prdc(real.double().numpy(), fake.double().numpy(), nearest_k=5)
    ours = neighbour_metrics(real, fake, nearest_k=5)
    for key in ("precision", "recall", "density", "coverage"):
        assert float(ours[key]) == pytest.approx(reference[key], abs=1e-12), key


def test_swapping_real_and_generated_changes_the_answer():
    """precision asks about generated samples, recall and coverage about real images: the names say which is which."""
    generator = torch.Generator().manual_seed(1)
    narrow, wide = 0.5 * torch.randn(400, 2, generator=generator), 2.0 * torch.randn(400, 2, generator=generator)
    forward, backward = neighbour_metrics(real=wide, generated=narrow), neighbour_metrics(real=narrow, generated=wide)
    assert forward["precision"] > 0.9 and forward["recall"] < 0.6  # a collapsed model: precise, low recall
    assert backward["precision"] < 0.6 and backward["recall"] > 0.9
    assert forward["coverage"] != backward["coverage"]


def test_fid_is_built_without_network_access(monkeypatch):
    pytest.importorskip("torchmetrics", reason="FID and KID come with the eval extra (pip install 'veegan-hf[eval]')")

    def refuse(*args, **kwargs):
        raise OSError("network access during FID")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(500, 8, generator=generator)
    same = fid_kid(real, torch.randn(500, 8, generator=generator))
    shifted = fid_kid(real, torch.randn(500, 8, generator=generator) + 1.0)
    assert same["fid"] < 0.2 < 7.0 < shifted["fid"] < 9.0  # the Frechet distance of a unit mean shift in 8-D is 8
    assert shifted["kid_mean"] > same["kid_mean"]


def test_a_report_without_torchmetrics_states_why(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchmetrics(name, *args, **kwargs):
        if name.startswith("torchmetrics"):
            raise ImportError("No module named 'torchmetrics'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchmetrics)
    points, labels = _toy_data(200)
    report = coverage_report(_toy_pipe(), (points, labels), refine_worst=0, progress=False)
    assert "fid" not in report.metrics and any("torchmetrics is not installed" in n for n in report.info["notes"])


def test_bad_arguments_name_themselves(tmp_path):
    points, labels = _toy_data(200)
    with pytest.raises(ValueError, match="nearest_k=0"):
        coverage_report(_toy_pipe(), (points, labels), nearest_k=0, progress=False)
    with pytest.raises(ValueError, match="feature_extractor='inception'"):
        coverage_report(_toy_pipe(), (points, labels), feature_extractor="inception", progress=False)
    with pytest.raises(ValueError, match="vector model is audited on a built-in mixture or on tensors"):
        coverage_report(_toy_pipe(), "no_such_dataset", progress=False)
    with pytest.raises(ValueError, match="labels must be"):
        coverage_report(_toy_pipe(), (points, labels[:5]), progress=False)
    with pytest.raises(ValueError, match="NaN or Inf"):
        neighbour_metrics(torch.full((10, 2), math.nan), torch.zeros(10, 2))


def test_save_writes_every_file(tmp_path):
    import csv
    import json

    points, labels = _toy_data(300)
    report = coverage_report(_toy_pipe(), (points, labels), refine_worst=4, refine_steps=2, fid=False, progress=False)
    written = report.save(str(tmp_path))
    assert {"report.md", "report.html", "metrics.json", "per_image.csv", "per_mode.csv"} <= set(written)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("precision", "recall", "coverage"):
        assert 0 <= metrics[key] <= 1 and 0 <= metrics["baseline_" + key] <= 1
    assert metrics["density"] >= 0 and metrics["baseline_density"] == pytest.approx(1, abs=0.3)
    with (tmp_path / "per_image.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 150 and {"label", "covered", "coverage_ratio", "reconstruction_mse", "not_makeable"} <= set(
        rows[0]
    )
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html.split("<body>")[1]
    assert all((tmp_path / "figures" / f"{name}.png").stat().st_size > 1000 for name in report.figures())
