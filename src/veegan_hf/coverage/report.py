r"""`coverage_report`: which real images a model cannot make, and why.

For every audited real image x the report asks two questions:
- **Is it covered?** Its nearest generated sample lies inside its own k-NN ball among real images (Naeem et al.'s
  coverage, kept per image as the ratio r = d(x, nearest generated) / NND_k(x), covered iff r <= 1).
- **Can the model make it?** VEEGAN's reconstructor inverts x in one pass, so the error of G(F(x)) says how far x is
  from anything G draws. The model's own samples set the inverter's floor: G(F(G(z))) is not exact either, and an
  error above the 99th percentile of those is more than the inverter's slack. The worst-covered images are refined
  with `pipe.invert` (Adam from F(x)) before they are judged.

A real image is **not makeable** when it is uncovered *and* its (refined) reconstruction error is above that floor.
Every aggregate has a data row: disjoint real data scored as if it were generated, which is what a perfect model
gets (coverage about 1 - 2^-k, not 1).
"""

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data import BUILTIN_DATASETS, get_mixture
from ..evaluation import draw_samples
from ..metrics import mixture_metrics_for, stacked_mnist_metrics
from .features import extract, resolve_extractor
from .measures import (
    FLOOR_PERCENTILE,
    Labeller,
    fid_kid,
    mode_table,
    per_image_table,
    per_mode_table,
    reconstruct,
    reconstruction_errors,
    refine,
    worst_order,
)
from .neighbours import expected_coverage, neighbour_metrics
from .sources import resolve_audit_data

NEIGHBOUR_METRICS = ("precision", "recall", "density", "coverage")


@dataclass
class CoverageReport:
    r"""
    The result of `coverage_report`.

    Attributes:
        metrics (`dict[str, float]`): `precision`, `recall`, `density`, `coverage` with a `baseline_` twin each (the
            data row), `expected_coverage` (a perfect model's), `uncovered_fraction`, `not_makeable_fraction`,
            `reconstruction_mse_median`, `generated_reconstruction_mse_p99` (the floor), `fid` / `kid_mean` /
            `kid_std` and their `baseline_` twins when torchmetrics is installed, and the mode metrics where the data
            has modes, with `most_dropped_mode` (the first `per_mode` row), `most_dropped_ties` (how many modes share
            its place: many for a collapsed model) and `most_under_generated_mode` (the lowest generated share against
            real).
        per_image (`datasets.Dataset`): one row per audited real image.
        per_mode (`datasets.Dataset` or `None`): one row per mode, most dropped first: by the share of its real images
            that are not makeable, then by relative gap.
        info (`dict`): the protocol: model, data, extractor, k, counts, seed, seconds, versions, notes.
        artifacts (`dict`): what the figures draw (histograms, the confusion matrix, the worst images).
    """

    metrics: dict[str, float]
    per_image: Any
    per_mode: Any
    info: dict[str, Any]
    artifacts: dict[str, Any] = field(repr=False, default_factory=dict)

    def worst(self, n: int = 16, by: str = "uncovered") -> list[int]:
        """Indices (rows of `per_image`) of the `n` real images the model makes worst: `"uncovered"` (uncovered
        images first, each group by reconstruction error; the ranking the figures and the refinement use),
        `"coverage_ratio"` or `"reconstruction_mse"`."""
        if by == "uncovered":
            return worst_order(
                torch.tensor(list(self.per_image["covered"])), torch.tensor(list(self.per_image["reconstruction_mse"]))
            )[:n].tolist()
        if by not in ("coverage_ratio", "reconstruction_mse"):
            raise ValueError(f"by={by!r}: rank by 'uncovered', 'coverage_ratio' or 'reconstruction_mse'.")
        values = torch.tensor(list(self.per_image[by]), dtype=torch.float64)
        return values.argsort(descending=True)[:n].tolist()

    def figures(self) -> dict[str, Any]:
        """name -> PIL image: `modes`, `worst_covered`, `coverage_ratio`, `reconstruction_error`, `confusion`."""
        from .render import figures

        return figures(self)

    def to_markdown(self, figure_dir: str = "figures") -> str:
        from .render import to_markdown

        return to_markdown(self, figure_dir)

    def to_html(self) -> str:
        """A self-contained page: the figures are embedded, nothing is fetched."""
        from .render import to_html

        return to_html(self)

    def save(self, directory: str) -> list[str]:
        """Writes `report.md`, `report.html`, `metrics.json`, `per_image.csv`, `per_mode.csv` and `figures/*.png`;
        returns the files written."""
        from .render import save

        return save(self, directory)

    def push_to_hub(self, repo_id: str, path_in_repo: str = "coverage", token: str | None = None) -> str:
        """Uploads the saved report beside the model in one commit, and adds its headline numbers and a link to the
        model card; returns the commit URL."""
        from .hub import push_report

        return push_report(self, repo_id, path_in_repo, token)


def coverage_report(
    pipe: Any,
    dataset: Any = "mnist",
    *,
    num_real: int | None = None,
    num_generated: int | None = None,
    feature_extractor: Any = "auto",
    nearest_k: int = 5,
    refine_worst: int = 32,
    refine_steps: int = 100,
    refine_learning_rate: float = 0.05,
    fid: bool = True,
    image_column: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> CoverageReport:
    r"""
    Audits which real images `pipe` cannot make: per image, per mode, and in aggregate against a data row.

    Args:
        pipe (`VEEGAN`): any saved pipeline with a generator and a reconstructor (for the GAN baselines, F was fitted
            to invert G on its samples).
        dataset: the real data. A built-in name (`"mnist"`, `"stacked_mnist"`, `"ring"`, `"grid"`,
            `"synthetic1200"`), a Hub id, a local imagefolder, parquet file or folder, a `datasets.Dataset`, or
            tensors `images` / `(images, labels)` in the model's space ([-1, 1] pixels). See `sources.py` for which
            part is audited and which is the data row.
        num_real (`int`, *optional*): audited real images; defaults to all 2,500 training digits for `mnist`, 5,000
            triples for `stacked_mnist`, 2,500 draws for a mixture and 2,500 for other data.
        num_generated (`int`, *optional*): generated samples for the neighbour metrics; defaults to `num_real`.
        feature_extractor (`str`, `nn.Module` or callable, *optional*, defaults to `"auto"`): `"classifier"`,
            `"pixels"`, `"random"` or your own (`features.py`); `"auto"` is the classifier for digit data, the raw
            vectors for mixtures and the random CNN for other images.
        nearest_k (`int`, *optional*, defaults to 5): k of the k-NN balls.
        refine_worst (`int`, *optional*, defaults to 32): the worst-covered real images (and as many generated ones,
            for the floor) refined with `pipe.invert`; 0 skips refinement.
        refine_steps (`int`, *optional*, defaults to 100): Adam steps of each refinement.
        refine_learning_rate (`float`, *optional*, defaults to 0.05): their step size.
        fid (`bool`, *optional*, defaults to `True`): classifier-FID and KID through torchmetrics (the `eval` extra);
            without it the report states why they are missing.
        image_column (`str`, *optional*): the image column of a Hub or local dataset; detected when omitted.
        seed (`int`, *optional*, defaults to 0): seeds the samples, the real draws and the split: the same seed gives
            the same tables.
        progress (`bool`, *optional*, defaults to `True`): a progress bar over the stages.

    Returns:
        `CoverageReport`

    Example:

    ```py
    >>> from veegan_hf import VEEGAN
    >>> from veegan_hf.coverage import coverage_report
    >>> pipe = VEEGAN.from_pretrained("spaces/veegan-mnist")
    >>> report = coverage_report(pipe, "mnist", num_real=500, refine_worst=4, refine_steps=5)  # doctest: +SKIP
    >>> report.per_mode["mode"][0]  # the digit whose real images it most often cannot make  # doctest: +SKIP
    ```
    """
    _check_counts(nearest_k=nearest_k, refine_worst=refine_worst, refine_steps=refine_steps)
    start = time.perf_counter()
    stages = tqdm(total=6, desc="coverage", disable=not progress, unit="stage")
    data = resolve_audit_data(dataset, pipe, seed, num_real, image_column)
    num_generated = num_generated or data.real.shape[0]
    if feature_extractor == "auto":  # the digit classifier where it knows the data, else raw vectors or a random CNN
        feature_extractor = (
            "classifier" if data.labeller in ("digits", "stacked") else ("random" if pipe.is_image_model else "pixels")
        )
    extractor_name, extractor = resolve_extractor(
        feature_extractor, pipe.is_image_model, pipe.generator.sample_shape[0]
    )
    stages.set_postfix_str("samples"), stages.update()

    generated = draw_samples(pipe, num_generated, seed=seed)  # (M, ...) in the model's space
    real_features, generated_features = extract(extractor, data.real), extract(extractor, generated)
    baseline_features = extract(extractor, data.baseline)
    stages.set_postfix_str("neighbours"), stages.update()

    neighbours = neighbour_metrics(real_features, generated_features, nearest_k)
    baseline = neighbour_metrics(real_features, baseline_features, nearest_k)
    stages.set_postfix_str("reconstruction"), stages.update()

    reconstructed = reconstruct(pipe, data.real)
    errors = reconstruction_errors(data.real, reconstructed, pipe.is_image_model)  # (N,)
    generated_errors = reconstruction_errors(generated, reconstruct(pipe, generated), pipe.is_image_model)  # (M,)
    floor = float(torch.quantile(generated_errors.double(), FLOOR_PERCENTILE))
    reconstructed_features = extract(extractor, reconstructed)
    stages.set_postfix_str("modes"), stages.update()

    labeller = Labeller(data, real_features, extractor)
    reconstruction_labels = labeller(reconstructed)
    mode_metrics, generated_labels = _modes(pipe, data, labeller, generated, seed)
    stages.set_postfix_str("refinement"), stages.update()

    worst = worst_order(neighbours["covered"], errors)[: max(refine_worst, 16)]  # refined, and drawn in the figure
    refined_errors, refined_worst, refined_floor = _refinement(
        pipe, data.real, generated, worst[:refine_worst], errors, floor, refine_steps, refine_learning_rate
    )
    not_makeable = _not_makeable(neighbours["covered"], errors, floor, refined_errors, refined_floor)
    stages.set_postfix_str("fid"), stages.update()

    metrics = _aggregates(neighbours, baseline, not_makeable, errors, generated_errors, floor, nearest_k)
    notes = _add_fid_kid(metrics, real_features, generated_features, baseline_features) if fid else []
    if not fid:
        notes.append("FID and KID were not asked for (fid=False).")
    metrics.update(mode_metrics)
    kept = (
        None if reconstruction_labels is None or data.real_labels is None else reconstruction_labels == data.real_labels
    )
    if kept is not None:
        metrics["reconstruction_keeps_label"] = float(kept.double().mean())
    stages.close()

    nearest = neighbours["nearest_generated_index"]
    per_image = per_image_table(
        data,
        neighbours,
        errors,
        (reconstructed_features - real_features).norm(dim=1),
        reconstruction_labels,
        refined_errors,
        not_makeable,
    )
    per_mode = per_mode_table(mode_table(data, generated_labels, neighbours, errors, kept, not_makeable), metrics)
    from .. import __version__

    info = {
        "model": getattr(pipe, "source_name", None) or "an unsaved pipeline",
        "dataset": data.name,
        "num_real": len(errors),
        "num_generated": len(generated_features),
        "num_baseline": len(baseline_features),
        "feature_extractor": extractor_name,
        "feature_dim": real_features.shape[1],
        "nearest_k": nearest_k,
        "labeller": labeller.description,
        "refine": {"worst": refine_worst, "steps": refine_steps, "learning_rate": refine_learning_rate},
        "refined_floor": refined_floor,
        "seed": seed,
        "seconds": round(time.perf_counter() - start, 1),
        "veegan_hf": __version__,
        "torch": torch.__version__,
        "is_image_model": pipe.is_image_model,
        "notes": notes,
    }
    artifacts = {
        "ratios": neighbours["coverage_ratio"],
        "baseline_ratios": baseline["coverage_ratio"],
        "errors": errors,
        "generated_errors": generated_errors,
        "worst": worst,
        "worst_real": data.real[worst],
        "worst_reconstructed": reconstructed[worst],
        "worst_refined": refined_worst,
        "worst_nearest": generated[nearest[worst]],
        "real_labels": data.real_labels,
        "reconstruction_labels": reconstruction_labels,
        "labeller": labeller.kind,
    }
    return CoverageReport(metrics, per_image, per_mode, info, artifacts)


def _check_counts(**counts: Any) -> None:
    """`nearest_k` >= 1, `refine_worst` and `refine_steps` >= 0, all ints, each named in the error."""
    for name, value in counts.items():
        low = 1 if name == "nearest_k" else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}={value!r} must be an int >= {low}.")


def _not_makeable(
    covered: torch.Tensor, errors: torch.Tensor, floor: float, refined_errors: torch.Tensor, refined_floor: float
) -> torch.Tensor:
    """Uncovered and above the inverter's floor: a refined image is judged by its refined error against the refined
    floor, the others by F's one-pass error against F's floor. (N,) bool."""
    refined = ~torch.isnan(refined_errors)
    judged = torch.where(refined, refined_errors, errors)
    judged_floor = torch.where(refined, torch.tensor(refined_floor), torch.tensor(floor))
    return ~covered & (judged > judged_floor)


def _add_fid_kid(
    metrics: dict[str, float],
    real_features: torch.Tensor,
    generated_features: torch.Tensor,
    baseline_features: torch.Tensor,
) -> list[str]:
    """Adds FID and KID with their data row to `metrics`; returns the note that says why they are missing, if so."""
    try:
        metrics.update(fid_kid(real_features, generated_features))
        metrics.update({f"baseline_{k}": v for k, v in fid_kid(real_features, baseline_features).items()})
    except ImportError:
        return ["FID and KID were skipped: torchmetrics is not installed (pip install 'veegan-hf[eval]')."]
    return []


def _modes(pipe: Any, data: Any, labeller: Labeller, generated: torch.Tensor, seed: int) -> tuple[dict, torch.Tensor]:
    """The mode metrics with their data row (built-in data: the package's evaluation protocol, 10,000 digits,
    26,000 triples or 2,500 points), and the generated samples' modes for the per-mode table."""
    if data.builtin is None:
        return {}, labeller(generated)
    protocol = draw_samples(pipe, BUILTIN_DATASETS[data.builtin].num_eval_samples, seed=seed)  # as `evaluate`
    generated_labels = labeller(protocol)
    if data.labeller == "mixture":
        mixture = get_mixture(data.builtin)
        scores, data_row = mixture_metrics_for(protocol, mixture), mixture_metrics_for(data.baseline, mixture)
    else:
        scores = stacked_mnist_metrics(generated_labels, num_modes=data.num_modes)
        data_row = stacked_mnist_metrics(labeller(data.baseline), num_modes=data.num_modes)
    metrics = {
        **{k: float(v) for k, v in scores.items()},
        **{f"baseline_{k}": float(v) for k, v in data_row.items() if k not in ("num_modes", "num_samples")},
    }
    return metrics, generated_labels


def _refinement(
    pipe: Any,
    real: torch.Tensor,
    generated: torch.Tensor,
    index: torch.Tensor,
    errors: torch.Tensor,
    floor: float,
    steps: int,
    learning_rate: float,
) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """`invert` on the real images at `index` (NaN elsewhere), their G(z*), and the refined floor: the 99th
    percentile of the same refinement of as many of the model's own samples."""
    refined_errors = torch.full_like(errors, math.nan)
    if len(index) == 0 or steps == 0:
        return refined_errors, None, floor
    refined = refine(pipe, real[index], steps, learning_rate)
    refined_errors[index] = reconstruction_errors(real[index], refined, pipe.is_image_model)
    own = generated[: len(index)]
    own_errors = reconstruction_errors(own, refine(pipe, own, steps, learning_rate), pipe.is_image_model)
    return refined_errors, refined, float(torch.quantile(own_errors.double(), FLOOR_PERCENTILE))


def _aggregates(
    neighbours: dict,
    baseline: dict,
    not_makeable: torch.Tensor,
    errors: torch.Tensor,
    generated_errors: torch.Tensor,
    floor: float,
    nearest_k: int,
) -> dict[str, float]:
    """The neighbour metrics beside their data row, and the shares and medians of the per-image columns."""
    metrics: dict[str, float] = {}
    for key in NEIGHBOUR_METRICS:
        metrics[key] = float(neighbours[key])
        metrics[f"baseline_{key}"] = float(baseline[key])
    metrics["expected_coverage"] = expected_coverage(len(errors), len(neighbours["nearest_real_index"]), nearest_k)
    metrics["uncovered_fraction"] = float((~neighbours["covered"]).double().mean())
    metrics["baseline_uncovered_fraction"] = float((~baseline["covered"]).double().mean())
    metrics["not_makeable_fraction"] = float(not_makeable.double().mean())
    metrics["reconstruction_mse_median"] = float(errors.median())
    metrics["generated_reconstruction_mse_median"] = float(generated_errors.median())
    metrics["generated_reconstruction_mse_p99"] = floor
    return metrics
