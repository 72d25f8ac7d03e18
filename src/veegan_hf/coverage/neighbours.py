r"""k-nearest-neighbour fidelity and diversity, per image and in aggregate: features in, arrays out.

Real features X_1..X_N, generated features Y_1..Y_M; NND_k(X_i) is the distance from X_i to its k-th nearest *other*
real sample, and B(c, r) the closed ball of radius r around c.

| metric | definition | source |
|---|---|---|
| precision | (1/M) Σ_j 1[∃ i: Y_j ∈ B(X_i, NND_k(X_i))] | Kynkäänniemi et al., 2019 |
| recall | (1/N) Σ_i 1[∃ j: X_i ∈ B(Y_j, NND_k(Y_j))] | Kynkäänniemi et al., 2019 |
| density | (1/(kM)) Σ_j Σ_i 1[Y_j ∈ B(X_i, NND_k(X_i))] | Naeem et al., 2020 |
| coverage | (1/N) Σ_i 1[∃ j: Y_j ∈ B(X_i, NND_k(X_i))] | Naeem et al., 2020 |

Per real image, the *coverage ratio* r_i = min_j ||X_i - Y_j|| / NND_k(X_i) is covered iff r_i <= 1: coverage is the
mean of that test. A perfect model is not at coverage 1: when real and generated features are i.i.d., X_i is
uncovered iff its k nearest pooled neighbours are all real, so E[coverage] = 1 - C(N-1, k) / C(N+M-1, k), about
1 - 2^-k for N = M (`expected_coverage`).

Balls are closed (`<=`): the reference code of Naeem et al. compares strictly, which scores a generated sample that
duplicates a real one as uncovered (their issue #7). On continuous features the two agree with probability 1.
"""

import math

import torch

DISTANCE_CHUNK = 2048  # rows of a distance matrix computed at once: 2048 x 10,000 floats stay near 80 MB


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(len(a), len(b)) Euclidean distances in float64, computed in row chunks."""
    a, b = a.double(), b.double()
    return torch.cat([torch.cdist(chunk, b) for chunk in a.split(DISTANCE_CHUNK)])


def knn_radii(features: torch.Tensor, nearest_k: int) -> torch.Tensor:
    """NND_k: the distance from each row to its k-th nearest *other* row, `(N,)`."""
    if not 1 <= nearest_k < features.shape[0]:
        raise ValueError(f"nearest_k={nearest_k} needs at least {nearest_k + 1} samples, got {features.shape[0]}.")
    radii = []
    for start in range(0, features.shape[0], DISTANCE_CHUNK):
        chunk = _distances(features[start : start + DISTANCE_CHUNK], features)  # (chunk, N)
        # the k+1 smallest include the point itself at distance 0
        radii.append(chunk.topk(nearest_k + 1, dim=1, largest=False).values[:, -1])
    return torch.cat(radii)


def neighbour_metrics(real: torch.Tensor, generated: torch.Tensor, nearest_k: int = 5) -> dict[str, torch.Tensor]:
    r"""
    Precision, recall, density and coverage of `generated` against `real`, with the per-image arrays behind them.

    The argument order matters: precision asks whether generated samples land on the real manifold, recall and
    coverage whether real images are reached by generated ones. Swapping them swaps precision and recall.

    Args:
        real (`torch.Tensor` of shape `(N, dim)`): features of real images.
        generated (`torch.Tensor` of shape `(M, dim)`): features of generated samples.
        nearest_k (`int`, *optional*, defaults to 5): k of the k-NN balls (Naeem et al.'s choice).

    Returns:
        `dict[str, torch.Tensor]`: scalars `precision`, `recall`, `density`, `coverage`; per real image (`(N,)`)
        `knn_radius`, `nearest_generated_index`, `nearest_generated_distance`, `coverage_ratio`, `covered`; per
        generated sample (`(M,)`) `nearest_real_index`, `in_real_manifold`.
    """
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(
            f"real and generated must be (N, dim) and (M, dim) features of one dim, got {tuple(real.shape)} and "
            f"{tuple(generated.shape)}."
        )
    if not (torch.isfinite(real).all() and torch.isfinite(generated).all()):
        raise ValueError("the features hold NaN or Inf: the feature extractor or the model produced non-finite values.")
    real_radii = knn_radii(real, nearest_k)  # (N,)
    fake_radii = knn_radii(generated, nearest_k)  # (M,)
    distances = _distances(real, generated)  # (N, M)
    inside_real_balls = distances <= real_radii[:, None]  # (N, M): Y_j in B(X_i, NND_k(X_i))
    nearest_distance, nearest_index = distances.min(dim=1)  # (N,)
    # radius 0 (duplicated real images): covered only by an exact copy
    ratio = torch.where(real_radii > 0, nearest_distance / real_radii.clamp_min(1e-300), nearest_distance * math.inf)
    ratio = torch.nan_to_num(ratio, nan=0.0)  # 0 / 0: an exact copy of a duplicated image
    covered = nearest_distance <= real_radii
    return {
        "precision": inside_real_balls.any(dim=0).double().mean(),
        "recall": (distances <= fake_radii[None, :]).any(dim=1).double().mean(),
        "density": inside_real_balls.double().sum() / (nearest_k * generated.shape[0]),
        "coverage": covered.double().mean(),
        "knn_radius": real_radii,
        "nearest_generated_index": nearest_index,
        "nearest_generated_distance": nearest_distance,
        "coverage_ratio": ratio,
        "covered": covered,
        "nearest_real_index": distances.argmin(dim=0),
        "in_real_manifold": inside_real_balls.any(dim=0),
    }


def expected_coverage(num_real: int, num_generated: int, nearest_k: int) -> float:
    """E[coverage] of a perfect model: 1 - C(N-1, k) / C(N+M-1, k), about 1 - 2^-k for N = M."""
    return 1.0 - math.comb(num_real - 1, nearest_k) / math.comb(num_real + num_generated - 1, nearest_k)
