"""Mode-collapse and inversion metrics: samples in, dict out; never a model in.

The definitions are those of `benchmarks/BENCHMARKS.md`:
- mixtures: high-quality (HQ) samples within r* of their nearest mean, modes captured, HQ %, reverse KL;
- Stacked MNIST: modes covered and KL(p_gen ‖ p_data) over the 1000 digit triples;
- inversion: per-pixel MSE with pixels in [0, 1] (amortized G(F(x)) and IvOM alike).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

CHANNEL_WEIGHTS = (100, 10, 1)  # Stacked MNIST: the three channels' digits are the hundreds, tens and units of a mode
if TYPE_CHECKING:
    from .mixtures import GaussianMixture

# r* holds this much of a mode's own mass; in 2-D the radius is exactly 3 std, the paper's rule.
HQ_TAIL_MASS = math.exp(-4.5)  # 1 - 0.98889
_DISTANCE_BLOCK_ROWS = 4096  # (4096, 1200) float64 is ~39 MB: 26k x 1200-D samples never sit in memory twice


def _chi2_upper_quantile(tail_mass: float, dof: int) -> float:
    # Solves P(chi2_dof > x) = tail_mass, where P(chi2_k > x) = Q(k/2, x/2), the regularized upper gamma.
    if dof == 2:
        return -2.0 * math.log(tail_mass)  # Q(1, x/2) = exp(-x/2) has a closed form
    half_dof = torch.tensor(dof / 2.0, dtype=torch.float64)

    def upper_tail(x: float) -> float:
        return torch.special.gammaincc(half_dof, torch.tensor(x / 2.0, dtype=torch.float64)).item()

    low, high = 0.0, float(max(dof, 1))
    while upper_tail(high) > tail_mass:  # the tail decreases in x: grow the bracket until it holds the root
        low, high = high, 2.0 * high
    # Bisection: ~60 halvings reach float64 resolution, far below the 1e-10 the radius needs.
    while high - low > 1e-13 * high:
        middle = 0.5 * (low + high)
        if upper_tail(middle) > tail_mass:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def high_quality_radius(std: float, noise_dim: int) -> float:
    r"""
    The HQ radius r*: the distance from its mean within which 98.89% (1 - e^-4.5) of a mode's samples fall.

    For a mode with isotropic noise of standard deviation `std` on `noise_dim` coordinates, the squared
    distance to the mean divided by std² is χ² with `noise_dim` degrees of freedom, so
    r* = std·sqrt(χ²_noise_dim quantile at 1 - e^-4.5). For `noise_dim=2` this is exactly 3·std; for
    `synthetic1200` (700 noisy coordinates, std 1) it is about 28.0.

    Args:
        std (`float`):
            The per-coordinate standard deviation of each mode.
        noise_dim (`int`):
            The number of coordinates that carry noise.

    Returns:
        `float`: r*.
    """
    if not std > 0 or not math.isfinite(std):
        raise ValueError(f"std must be a positive finite number, got {std!r}.")
    if not isinstance(noise_dim, int) or noise_dim < 1:
        raise ValueError(f"noise_dim must be a positive int, got {noise_dim!r}.")
    return std * math.sqrt(_chi2_upper_quantile(HQ_TAIL_MASS, noise_dim))


def _check_finite(name: str, tensor: torch.Tensor) -> None:
    if not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{name} of shape {tuple(tensor.shape)} holds {bad} NaN or infinite values.")


def _check_samples(samples: torch.Tensor, means: torch.Tensor) -> None:
    if samples.ndim != 2 or samples.shape[0] == 0:
        raise ValueError(f"Expected samples of shape (num_samples > 0, data_dim), got {tuple(samples.shape)}.")
    if means.ndim != 2 or means.shape[0] == 0:
        raise ValueError(f"Expected means of shape (num_modes > 0, data_dim), got {tuple(means.shape)}.")
    if samples.shape[1] != means.shape[1]:
        raise ValueError(
            f"samples of shape {tuple(samples.shape)} and means of shape {tuple(means.shape)} differ in "
            f"data_dim ({samples.shape[1]} vs {means.shape[1]})."
        )
    _check_finite("samples", samples)


def mixture_metrics(samples: torch.Tensor, means: torch.Tensor, std: float, noise_dim: int) -> dict[str, float]:
    r"""
    Scores samples against a Gaussian mixture: modes captured, HQ %, and reverse KL.

    A sample is high quality (HQ) when its distance to the nearest mean is at most r* =
    `high_quality_radius(std, noise_dim)`. A mode is captured when it is the nearest mean of at least one HQ
    sample. The reverse KL is KL(p̂ ‖ uniform) = Σ_k p̂_k log(num_modes · p̂_k), where p̂ is the histogram of HQ
    samples over their nearest modes (0 log 0 = 0). When no sample is HQ, p̂ is undefined and the reverse KL is
    reported as log(num_modes), the value of a total collapse onto one mode, so a worse model never scores
    better. Distances are computed in float64, in blocks of rows.

    Args:
        samples (`torch.Tensor` of shape `(num_samples, data_dim)`):
            The generated samples.
        means (`torch.Tensor` of shape `(num_modes, data_dim)`):
            The mixture means.
        std (`float`):
            The per-coordinate std of each mode.
        noise_dim (`int`):
            The number of coordinates that carry noise (2 in 2-D, 700 for `synthetic1200`).

    Returns:
        `dict[str, float]`: `modes_captured` (int), `num_modes` (int), `hq_percent` (float, 0..100),
        `reverse_kl` (float, 0..log(num_modes)), `num_samples` (int), and `mode_share_min` / `mode_share_max`
        (the rarest and the commonest mode's share of the HQ samples, p̂'s smallest and largest entry; 0 when no
        sample is HQ).

    Example:
    ```py
    >>> import torch
    >>> from veegan_hf.data import get_mixture
    >>> from veegan_hf.metrics import mixture_metrics_for
    >>> ring = get_mixture("ring")
    >>> metrics = mixture_metrics_for(ring.sample(2500, generator=torch.Generator().manual_seed(0)), ring)
    >>> metrics["modes_captured"], metrics["num_modes"]
    (8, 8)

    ```
    """
    _check_samples(samples, means)
    radius = high_quality_radius(std, noise_dim)
    num_samples, num_modes = samples.shape[0], means.shape[0]
    means = means.to(samples.device, torch.float64)

    hq_counts = torch.zeros(num_modes, dtype=torch.int64, device=samples.device)  # HQ samples per nearest mode
    for block in samples.split(_DISTANCE_BLOCK_ROWS):
        # The direct (non-matmul) form keeps distances exact near the threshold.
        distances = torch.cdist(block.to(torch.float64), means, compute_mode="donot_use_mm_for_euclid_dist")
        nearest_distance, nearest_mode = distances.min(dim=1)  # (block,), (block,)
        hq_counts += torch.bincount(nearest_mode[nearest_distance <= radius], minlength=num_modes)

    num_hq = int(hq_counts.sum())
    shares = hq_counts.double() / max(num_hq, 1)  # (num_modes,): each mode's share of the HQ samples
    if num_hq == 0:
        reverse_kl = math.log(num_modes)
    else:
        p_hat = shares[hq_counts > 0]
        reverse_kl = float((p_hat * torch.log(p_hat * num_modes)).sum())  # Σ p̂ log(p̂ / (1 / num_modes))
    return {
        "modes_captured": int((hq_counts > 0).sum()),
        "num_modes": num_modes,
        "hq_percent": 100.0 * num_hq / num_samples,
        "reverse_kl": max(reverse_kl, 0.0),  # clamp rounding just below 0
        "num_samples": num_samples,
        # a count of captured modes hides how unequal they are: the rarest and the commonest mode's share say it
        "mode_share_min": float(shares.min()),
        "mode_share_max": float(shares.max()),
    }


def mixture_metrics_for(samples: torch.Tensor, mixture: GaussianMixture) -> dict[str, float]:
    r"""
    `mixture_metrics` with the means, std and noise dimension taken from a `data.GaussianMixture`.

    Args:
        samples (`torch.Tensor` of shape `(num_samples, data_dim)`):
            The generated samples.
        mixture (`GaussianMixture`):
            The dataset they should match, e.g. `data.get_mixture("grid")`.
    """
    return mixture_metrics(samples, mixture.means, mixture.std, mixture.noise_dim)


def digits_to_modes(channel_predictions: torch.Tensor) -> torch.Tensor:
    r"""
    Turns the predicted digit of each channel into the Stacked MNIST mode `100 * d0 + 10 * d1 + d2`.

    Args:
        channel_predictions (`torch.Tensor` of shape `(N, 3)`, integer):
            The classifier's digit (0..9) for channels 0, 1 and 2.

    Returns:
        `torch.Tensor`: int64 modes of shape `(N,)` in 0..999.
    """
    if channel_predictions.ndim != 2 or channel_predictions.shape[1] != 3:
        raise ValueError(f"Expected channel predictions of shape (N, 3), got {tuple(channel_predictions.shape)}.")
    if channel_predictions.is_floating_point() or channel_predictions.is_complex():
        raise ValueError(f"Expected integer digit predictions, got dtype {channel_predictions.dtype}.")
    digits = channel_predictions.long()
    if digits.numel() and (digits.min() < 0 or digits.max() > 9):
        raise ValueError(f"Digits must lie in 0..9, got range [{int(digits.min())}, {int(digits.max())}].")
    weights = torch.tensor(CHANNEL_WEIGHTS, device=digits.device)
    return (digits * weights).sum(dim=1)  # (N,)


def modes_to_digits(modes: torch.Tensor) -> torch.Tensor:
    """The inverse of `digits_to_modes`: Stacked MNIST modes `(N,)` in 0..999 -> each channel's digit, `(N, 3)`."""
    weights = torch.tensor(CHANNEL_WEIGHTS, device=modes.device)
    return modes.long()[:, None] // weights % 10  # (N, 3)


def stacked_mnist_metrics(
    predicted_modes: torch.Tensor, data_mode_counts: torch.Tensor | None = None, num_modes: int = 1000
) -> dict[str, float]:
    r"""
    Stacked MNIST mode coverage and KL(p_gen ‖ p_data).

    p_gen is the histogram of the predicted modes. p_data is uniform when `data_mode_counts` is `None`;
    otherwise it is the empirical histogram of the training triples with add-one (Laplace) smoothing,
    (count_k + 1) / (total + num_modes), applied always so the KL stays finite when a mode the generator hits
    was never drawn for training, and the metric stays a smooth function of the counts. With ~26 training
    triples per mode it moves p_data slightly toward the uniform distribution that it estimates. Modes with
    p_gen = 0 contribute 0.

    Args:
        predicted_modes (`torch.Tensor` of shape `(N,)`, integer):
            The mode of each generated image (see `digits_to_modes`), in [0, num_modes).
        data_mode_counts (`torch.Tensor` of shape `(num_modes,)`, *optional*, defaults to `None`):
            Integer counts of the training triples' modes, e.g. `data.StackedMNIST.mode_histogram(...)`.
        num_modes (`int`, *optional*, defaults to 1000):
            The number of modes.

    Returns:
        `dict[str, float]`: `modes_covered` (int: modes hit by at least one sample), `kl` (float),
        `mode_share_min` and `mode_share_max` (the rarest and the commonest mode's share of the samples),
        `num_modes` (int), `num_samples` (int).
    """
    if predicted_modes.ndim != 1 or predicted_modes.numel() == 0:
        raise ValueError(f"Expected predicted modes of shape (N > 0,), got {tuple(predicted_modes.shape)}.")
    if predicted_modes.is_floating_point() or predicted_modes.is_complex():
        raise ValueError(f"Expected integer predicted modes, got dtype {predicted_modes.dtype}.")
    modes = predicted_modes.long().cpu()
    if modes.min() < 0 or modes.max() >= num_modes:
        raise ValueError(
            f"Predicted modes must lie in [0, {num_modes}), got range [{int(modes.min())}, {int(modes.max())}]."
        )
    gen_counts = torch.bincount(modes, minlength=num_modes).double()  # (num_modes,)
    p_gen = gen_counts / gen_counts.sum()

    if data_mode_counts is None:
        p_data = torch.full((num_modes,), 1.0 / num_modes, dtype=torch.float64)
    else:
        counts = data_mode_counts.detach().cpu().double()
        if counts.shape != (num_modes,):
            raise ValueError(f"Expected data_mode_counts of shape ({num_modes},), got {tuple(data_mode_counts.shape)}.")
        if not torch.isfinite(counts).all() or (counts < 0).any() or (counts != counts.round()).any():
            raise ValueError(
                "data_mode_counts must hold non-negative integer counts, not probabilities; "
                "pass e.g. StackedMNIST.mode_histogram(num_samples)."
            )
        p_data = (counts + 1.0) / (counts.sum() + num_modes)  # add-one smoothing

    hit = p_gen > 0
    kl = float((p_gen[hit] * torch.log(p_gen[hit] / p_data[hit])).sum())  # Σ p_gen log(p_gen / p_data)
    return {
        "modes_covered": int(hit.sum()),
        "kl": max(kl, 0.0),  # clamp rounding just below 0
        # a count of covered modes hides how unequal they are: the smallest and largest shares say it
        "mode_share_min": float(p_gen.min()),
        "mode_share_max": float(p_gen.max()),
        "num_modes": num_modes,
        "num_samples": int(modes.numel()),
    }


def reconstruction_mse(real: torch.Tensor, reconstructed: torch.Tensor) -> float:
    r"""
    Mean per-pixel squared error with pixels in [0, 1], the unit of the IvOM and reconstruction tables.

    Both inputs are in the models' range [-1, 1] and are mapped by x -> (x + 1) / 2, so the result is
    mean((real - reconstructed)²) / 4. Reconstructions are not clipped.

    Args:
        real (`torch.Tensor`):
            Real images in [-1, 1], any shape, e.g. `(N, C, H, W)`.
        reconstructed (`torch.Tensor`):
            Their reconstructions (G(F(x)) or G(z*)), the same shape.

    Returns:
        `float`: the mean squared error over all pixels and channels.
    """
    if real.shape != reconstructed.shape:
        raise ValueError(
            f"real of shape {tuple(real.shape)} and reconstructed of shape {tuple(reconstructed.shape)} "
            "differ; expected the same shape."
        )
    if real.numel() == 0:
        raise ValueError(f"Expected non-empty images, got shape {tuple(real.shape)}.")
    _check_finite("real", real)
    _check_finite("reconstructed", reconstructed)
    low, high = float(real.min()), float(real.max())
    if low < -1.001 or high > 1.001:
        raise ValueError(
            f"real images span [{low:g}, {high:g}]; expected [-1, 1] (map 0..255 pixels with x / 127.5 - 1)."
        )
    difference = (real.double() - reconstructed.to(real.device).double()) / 2.0  # [-1, 1] -> [0, 1] units
    return float(difference.pow(2).mean())


def hq_breakdown(samples: torch.Tensor, mixture: GaussianMixture) -> dict[str, float]:
    r"""
    Where the samples that miss HQ lie: too wide around a mode, or between modes.

    With d the distance of a sample to its nearest mean and r* the HQ radius, the samples split into `hq_percent`
    (d <= r*), `near_miss_percent` (r* < d <= 2 r*: a mode drawn too wide) and `between_modes_percent` (d > 2 r*: the
    transitions a continuous G draws from one mode to the next). `width_ratio` is the root-mean-square d of the samples
    within 2 r*, over the data's own, std * sqrt(noise_dim): 1 is a mode as wide as the data's, above 1 a mode wider
    or off its mean (d cannot tell the two apart). The 2 r* cut caps it (at 6 / sqrt(2) = 4.24 in 2-D).

    The split needs modes more than 4 r* apart, so that a sample halfway between two modes lies beyond 2 r* of both:
    true of `ring` and `grid`, not of `synthetic1200` (its means are closer than r*), which is refused.

    Args:
        samples (`torch.Tensor` of shape `(num_samples, data_dim)`):
            The generated samples.
        mixture (`GaussianMixture`):
            The dataset they should match, e.g. `data.get_mixture("grid")`.

    Returns:
        `dict[str, float]`: the three shares (they sum to 100) and `width_ratio` (NaN when no sample is within 2 r*).
    """
    _check_samples(samples, mixture.means)
    radius = high_quality_radius(mixture.std, mixture.noise_dim)
    means = mixture.means.to(samples.device, torch.float64)
    gaps = torch.cdist(means, means) + torch.diag(torch.full((len(means),), math.inf, dtype=torch.float64))
    if len(means) > 1 and gaps.min() <= 4 * radius:
        raise ValueError(
            f"{mixture.name}: modes {gaps.min():.3g} apart, within 4 r* = {4 * radius:.3g}: a sample between two modes "
            "would count as HQ or as a near miss. hq_breakdown splits well-separated mixtures only (ring, grid)."
        )
    nearest = torch.cat(
        [
            torch.cdist(block.to(torch.float64), means, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
            for block in samples.split(_DISTANCE_BLOCK_ROWS)
        ]
    )  # (num_samples,)
    near = nearest[nearest <= 2 * radius]
    data_rms = mixture.std * math.sqrt(mixture.noise_dim)  # E[d^2] = std^2 * noise_dim for the data itself
    return {
        "hq_percent": 100.0 * float((nearest <= radius).double().mean()),
        "near_miss_percent": 100.0 * float(((nearest > radius) & (nearest <= 2 * radius)).double().mean()),
        "between_modes_percent": 100.0 * float((nearest > 2 * radius).double().mean()),
        "width_ratio": float(near.square().mean().sqrt()) / data_rms if len(near) else math.nan,
    }
