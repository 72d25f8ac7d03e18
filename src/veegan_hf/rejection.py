"""Discriminator rejection sampling (DRS; Azadi et al., ICLR 2019): draw from G, keep each sample with a probability
the trained discriminator gives it, so that the kept samples follow the data more closely than G's own.

For the discriminator D* that is optimal against G, the realness r(x) = log p_data(x) / p_G(x) is minus its logit
(this package's D says "generated" with a large logit). Accepting x with probability exp(r(x) - r_max) then turns G's
samples into exact data samples. D is only approximately optimal, so DRS softens that rule with a shift γ:

    F(x) = r(x) - r_max - log(1 - exp(r(x) - r_max - ε)) - γ,        accept with probability σ(F(x))

r_max is estimated on a calibration draw (DRS's burn-in) and γ is set so that a chosen share of that draw is kept.
A joint D (VEEGAN, ALI) scores the pair (z, G(z)) that produced the sample; a packing D (PacGAN) scores each sample as
the mean logit of the packs it falls in over a few random packings of the candidates.
"""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .validation import check_int, check_number

if TYPE_CHECKING:
    from .pipeline_veegan import VEEGAN

NUM_PACKINGS = 4  # random packings a packing D scores each candidate in; their mean logit is its score


@dataclass(frozen=True)
class RejectionSampling:
    r"""
    How `pipe(..., rejection_sampling=...)` draws with the discriminator's help; `True` means these defaults.

    Args:
        target_acceptance (`float`, *optional*, defaults to 0.5): the share of candidates kept, in (0, 1]; it sets
            the shift γ on the calibration draw. Lower keeps only what D finds most real: higher quality, fewer
            samples per second, and at some point fewer modes.
        gamma (`float`, *optional*): DRS's shift γ itself, instead of `target_acceptance`.
        num_calibration (`int`, *optional*, defaults to 4096): candidates drawn first to estimate the largest
            realness r_max and γ; they are then judged like every other candidate.
        max_candidates_per_sample (`int`, *optional*, defaults to 100): the cap on tries: a call for n samples
            draws at most n times this many candidates (plus the calibration draw) before it gives up.
        epsilon (`float`, *optional*, defaults to 1e-6): keeps the log finite at r = r_max.
    """

    target_acceptance: float = 0.5
    gamma: float | None = None
    num_calibration: int = 4096
    max_candidates_per_sample: int = 100
    epsilon: float = 1e-6

    def __post_init__(self) -> None:
        check_number("target_acceptance", self.target_acceptance, 0.0, 1.0, open_low=True, hint=" Try 0.2 to 0.8.")
        if self.gamma is not None:
            check_number("gamma", self.gamma, -100.0, 100.0, hint=" Try -2 to 2, or target_acceptance instead.")
        check_int("num_calibration", self.num_calibration, 16, 10**6)
        check_int("max_candidates_per_sample", self.max_candidates_per_sample, 1, 10**6)
        check_number("epsilon", self.epsilon, 0.0, 1.0, open_low=True)


@dataclass
class RejectionResult:
    """What a rejection draw kept: samples in the model's space, their codes, and the share of candidates kept."""

    samples: torch.Tensor
    latents: torch.Tensor
    acceptance_rate: float
    num_candidates: int


def realness(pipe: "VEEGAN", samples: torch.Tensor, latents: torch.Tensor, generator=None) -> torch.Tensor:
    """r = -D's logit per sample, `(batch,)`: log p_data / p_G for an optimal D. A packing D scores each sample as
    the mean over `NUM_PACKINGS` random packings of the batch (the batch must be a multiple of its pack size)."""
    d = pipe.discriminator
    pack = d.config.pack_size
    joint = d.config.latent_dim > 0
    batch = samples.shape[0]
    if pack == 1:
        return -d(samples, latents if joint else None)
    scores = samples.new_zeros(batch)
    for _ in range(NUM_PACKINGS):
        order = torch.randperm(batch, generator=generator, device="cpu").to(samples.device)
        # (batch, *shape) -> (batch / m, m * shape[0], *shape[1:]): m consecutive samples side by side, as in training
        packed = samples[order].reshape(batch // pack, pack * samples.shape[1], *samples.shape[2:])
        packed_latents = latents[order].reshape(batch // pack, -1) if joint else None
        logits = d(packed, packed_latents)  # (batch / m,)
        scores[order] += -logits.repeat_interleave(pack)
    return scores / NUM_PACKINGS


def acceptance(scores: torch.Tensor, r_max: float, gamma: float, epsilon: float) -> torch.Tensor:
    r"""σ(F) with F = r - r_max - log(1 - exp(r - r_max - ε)) - γ; candidates above r_max are kept for sure."""
    delta = (scores - r_max).clamp(max=0.0)  # r - r_max <= 0: a candidate beyond the calibration's max is certain
    f = delta - torch.log1p(-torch.exp(delta - epsilon)) - gamma
    return torch.sigmoid(f)


def fit_gamma(scores: torch.Tensor, r_max: float, target: float, epsilon: float) -> float:
    """The γ whose mean acceptance on `scores` is `target`, by bisection (acceptance falls as γ grows)."""
    low, high = -50.0, 50.0
    for _ in range(60):
        mid = (low + high) / 2
        if acceptance(scores, r_max, mid, epsilon).mean().item() > target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@torch.no_grad()
def rejection_sample(
    pipe: "VEEGAN",
    num_samples: int,
    settings: RejectionSampling,
    draw_latents,
    generator: torch.Generator | None = None,
) -> RejectionResult:
    """`num_samples` kept samples (model space), drawn in rounds from `draw_latents(n)` until enough are kept.

    Raises:
        ValueError: the pipeline has no discriminator.
        RuntimeError: the cap on candidates was reached before `num_samples` were kept.
    """
    if pipe.discriminator is None:
        raise ValueError(
            "rejection_sampling needs the discriminator, and this pipeline has none: it was saved or loaded without "
            "it. Load a training run's folder (it holds discriminator/), or sample without rejection_sampling."
        )
    pack = pipe.discriminator.config.pack_size
    round_up = lambda n: pack * math.ceil(n / pack)  # noqa: E731 -- a packing D scores whole packs
    device = pipe.device

    def candidates(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latents = draw_latents(n)
        samples = pipe._generate(latents, pipe._drawn_noise(latents, generator))
        return samples, latents, realness(pipe, samples, latents, generator)

    was_training = pipe.discriminator.training
    pipe.discriminator.eval()
    try:
        samples, latents, scores = candidates(round_up(settings.num_calibration))
        r_max = scores.max().item()
        gamma = settings.gamma
        if gamma is None:
            gamma = fit_gamma(scores, r_max, settings.target_acceptance, settings.epsilon)
        kept_samples, kept_latents, num_kept, drawn = [], [], 0, 0
        budget = settings.num_calibration + num_samples * settings.max_candidates_per_sample
        while True:
            drawn += samples.shape[0]
            uniform = torch.rand(scores.shape, generator=generator, device="cpu").to(device)
            keep = uniform < acceptance(scores, r_max, gamma, settings.epsilon)
            kept_samples.append(samples[keep])
            kept_latents.append(latents[keep])
            num_kept += int(keep.sum())
            if num_kept >= num_samples:
                break
            if drawn >= budget:
                raise RuntimeError(
                    f"rejection sampling kept {num_kept} of {drawn} candidates ({100 * num_kept / drawn:.3g}%), "
                    f"short of the {num_samples} asked for, and reached its cap of {settings.max_candidates_per_sample}"
                    f" candidates per sample (gamma was {gamma:.3g}). Raise target_acceptance, lower gamma, or raise "
                    "max_candidates_per_sample."
                )
            rate = max(num_kept / drawn, 1.0 / settings.max_candidates_per_sample)
            wanted = min(round_up(int(1.2 * (num_samples - num_kept) / rate) + 1), round_up(budget - drawn))
            samples, latents, scores = candidates(max(wanted, pack))
    finally:
        pipe.discriminator.train(was_training)
    return RejectionResult(
        torch.cat(kept_samples)[:num_samples], torch.cat(kept_latents)[:num_samples], num_kept / drawn, drawn
    )
