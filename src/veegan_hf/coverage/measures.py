"""What a coverage report measures per image: reconstructions G(F(x)) and their errors, refinement with `invert`,
mode labels for generated samples, the per-mode table, FID and KID on given features, and the worst-first order."""

import math
import warnings
from typing import Any

import torch

from ..data import get_mixture
from .features import extract
from .sources import AuditData

FLOOR_PERCENTILE = 0.99  # the inverter's floor: this quantile of the errors on the model's own samples
RECONSTRUCT_BATCH = 1000


def worst_order(covered: torch.Tensor, errors: torch.Tensor) -> torch.Tensor:
    """Uncovered images first, then covered ones; within each, the worst reconstructed first. A dense mode has
    tiny k-NN balls, so a large coverage ratio alone often marks an image the model makes well."""
    key = errors.double() - (~covered).double() * (errors.max().double() + 1)  # uncovered ones sort lowest
    order = key.argsort()
    # argsort ascending put uncovered first but with the *smallest* error first: reverse within each group
    uncovered = order[~covered[order]]
    covered_part = order[covered[order]]
    return torch.cat([uncovered.flip(0), covered_part.flip(0)])


class Labeller:
    """Gives generated (and reconstructed) samples a mode, as the data's own labels are given."""

    def __init__(self, data: AuditData, real_features: torch.Tensor, extractor: Any):
        self.kind = data.labeller if data.labeller != "none" or data.real_labels is None else "nearest_real"
        self.data, self.real_features, self.extractor = data, real_features, extractor
        if self.kind in ("digits", "stacked"):
            from ..classifier import load_mode_classifier

            self.classifier = load_mode_classifier()

    @property
    def description(self) -> str:
        return {
            "digits": "the shipped digit classifier",
            "stacked": "the shipped digit classifier, per channel",
            "mixture": "the nearest mixture mean",
            "nearest_real": "the label of the nearest audited real image in feature space",
        }.get(self.kind, "none")

    def __call__(self, samples: torch.Tensor) -> torch.Tensor | None:
        from ..classifier import predict_digits, predict_stacked_modes

        if self.kind == "digits":
            return predict_digits(self.classifier, samples)
        if self.kind == "stacked":
            return predict_stacked_modes(self.classifier, samples)
        if self.kind == "mixture":
            means = get_mixture(self.data.builtin).means
            return torch.cdist(samples.double(), means.double()).argmin(dim=1)
        if self.kind == "nearest_real":
            features = extract(self.extractor, samples)
            return self.data.real_labels[torch.cdist(features, self.real_features).argmin(dim=1)]
        return None


@torch.no_grad()
def reconstruct(pipe: Any, samples: torch.Tensor) -> torch.Tensor:
    """G(F(x)) in the model's space, in batches, with both networks in eval mode."""
    generator, reconstructor = pipe.generator, pipe.reconstructor
    modes = generator.training, reconstructor.training
    generator.eval(), reconstructor.eval()
    try:
        out = []
        for chunk in samples.split(RECONSTRUCT_BATCH):
            x = chunk.to(pipe.device, generator.dtype)
            latents = reconstructor(x)
            out.append(generator(latents, pipe._zero_noise(latents)).float().cpu())
        return torch.cat(out)
    finally:
        generator.train(modes[0]), reconstructor.train(modes[1])


def reconstruction_errors(samples: torch.Tensor, reconstructed: torch.Tensor, is_image: bool) -> torch.Tensor:
    """Per-sample MSE: images with pixels in [0, 1], vectors in their own units."""
    scale = 0.5 if is_image else 1.0  # [-1, 1] -> [0, 1] halves every difference
    return ((samples - reconstructed) * scale).pow(2).flatten(1).mean(dim=1)


def refine(pipe: Any, samples: torch.Tensor, steps: int, learning_rate: float) -> torch.Tensor:
    """G(z*) with z* = `pipe.invert` from F(x), in the model's space."""
    image = pipe.is_image_model
    inputs = (samples + 1) / 2 if image else samples  # the public API takes [0, 1] pixels
    latents = pipe.invert(inputs.to(pipe.device), num_steps=steps, learning_rate=learning_rate)
    decoded = pipe.decode(latents, output_type="pt").float().cpu()
    return decoded * 2 - 1 if image else decoded


def fid_kid(real: torch.Tensor, generated: torch.Tensor) -> dict[str, float]:
    """FID and KID of `generated` against `real` on the given features, through torchmetrics."""
    from torch import nn
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    class Identity(nn.Module):  # the features are already computed: torchmetrics only accumulates them
        def __init__(self, num_features: int):
            super().__init__()
            self.num_features = num_features

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    dim = real.shape[1]
    fid = FrechetInceptionDistance(feature=Identity(dim))
    with warnings.catch_warnings():  # "KID will save all extracted features": a few thousand rows here
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=Identity(dim), subset_size=min(1000, len(real), len(generated)))
    for metric in (fid, kid):
        metric.update(real.double(), real=True)
        metric.update(generated.double(), real=False)
    with torch.random.fork_rng():  # KID averages over random subsets: seeded, so that a report is reproducible
        torch.manual_seed(0)
        kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std)}


def mode_table(
    data: AuditData,
    generated_labels: torch.Tensor,
    neighbours: dict,
    errors: torch.Tensor,
    kept: torch.Tensor | None,
    not_makeable: torch.Tensor,
) -> list[dict] | None:
    """One row per mode present in the real data or the samples, most dropped first: the mode whose real images the
    model most often cannot make (uncovered and reconstructed above the inverter's floor), then the most
    under-generated by share."""
    if data.real_labels is None or generated_labels is None:
        return None
    num_modes = data.num_modes or int(max(data.real_labels.max(), generated_labels.max())) + 1
    real_counts = torch.bincount(data.real_labels, minlength=num_modes).double()
    generated_counts = torch.bincount(generated_labels, minlength=num_modes).double()
    real_share, generated_share = real_counts / real_counts.sum(), generated_counts / generated_counts.sum()
    rows = []
    for mode in range(num_modes):
        members = data.real_labels == mode
        if not members.any() and generated_counts[mode] == 0:
            continue
        gap = (generated_share[mode] - real_share[mode]) / real_share[mode] if real_share[mode] > 0 else math.inf
        rows.append(
            {
                "mode": mode,
                "real_count": int(real_counts[mode]),
                "real_share": float(real_share[mode]),
                "generated_share": float(generated_share[mode]),
                "relative_gap": float(gap),
                "coverage_rate": float(neighbours["covered"][members].double().mean()) if members.any() else math.nan,
                "not_makeable_rate": float(not_makeable[members].double().mean()) if members.any() else math.nan,
                "uncovered_count": int((~neighbours["covered"][members]).sum()),
                "median_reconstruction_mse": float(errors[members].median()) if members.any() else math.nan,
                "kept_label_rate": float(kept[members].double().mean())
                if kept is not None and members.any()
                else math.nan,
            }
        )
    # Ranked by what the model cannot make, measured on the real images themselves: the generated share leans on a
    # labeller reading the model's own samples, and a weak model's blobs get read as some digit (a model trained
    # without 3s drew 13.6% "3"s at 2,500 steps while 74% of real 3s were not makeable, the most of any digit).
    # Ties (e.g. a fully made model) fall back to the share gap, then to coverage.
    rate = lambda row, key, empty: empty if math.isnan(row[key]) else row[key]  # noqa: E731
    return sorted(
        rows,
        key=lambda row: (
            -rate(row, "not_makeable_rate", 0.0),
            row["relative_gap"],
            rate(row, "coverage_rate", 1.0),
            -row["real_share"],
        ),
    )


def per_image_table(
    data: AuditData,
    neighbours: dict[str, torch.Tensor],
    errors: torch.Tensor,
    feature_distances: torch.Tensor,
    reconstruction_labels: torch.Tensor | None,
    refined_errors: torch.Tensor,
    not_makeable: torch.Tensor,
) -> Any:
    """One row per audited real image (`per_image.csv`): its coverage, its reconstruction and the verdict."""
    import datasets

    count = len(errors)
    return datasets.Dataset.from_dict(
        {
            "index": list(range(count)),
            "label": _listed(data.real_labels, count),
            "covered": neighbours["covered"].tolist(),
            "coverage_ratio": neighbours["coverage_ratio"].tolist(),
            "knn_radius": neighbours["knn_radius"].tolist(),
            "nearest_generated_index": neighbours["nearest_generated_index"].tolist(),
            "nearest_generated_distance": neighbours["nearest_generated_distance"].tolist(),
            "reconstruction_mse": errors.tolist(),
            "reconstruction_feature_distance": feature_distances.tolist(),
            "reconstruction_label": _listed(reconstruction_labels, count),
            "refined_mse": refined_errors.tolist(),
            "not_makeable": not_makeable.tolist(),
        }
    )


def per_mode_table(rows: list[dict], metrics: dict[str, Any]) -> Any:
    """The per-mode table (`per_mode.csv`, most dropped first), or None without modes; names the most dropped and
    most under-generated modes in `metrics`."""
    if not rows:
        return None
    import datasets

    metrics["most_dropped_mode"] = rows[0]["mode"]
    # a collapsed model leaves hundreds of modes equally unmakeable: then no single mode is "the" dropped one
    first = (rows[0]["not_makeable_rate"], rows[0]["relative_gap"])
    metrics["most_dropped_ties"] = sum((r["not_makeable_rate"], r["relative_gap"]) == first for r in rows)
    metrics["most_under_generated_mode"] = min(rows, key=lambda row: row["relative_gap"])["mode"]
    return datasets.Dataset.from_list(rows)


def _listed(values: torch.Tensor | None, count: int) -> list:
    return values.tolist() if values is not None else [None] * count
