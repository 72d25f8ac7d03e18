"""Scores a trained pipeline on a built-in dataset: draws samples, then hands them to `metrics.py`.

This is the one place that turns "a model" into "samples" for scoring, so training, the benchmarks and the model
card all follow the same protocol (`benchmarks/BENCHMARKS.md`): generator in eval mode, EMA weights when the caller
exported them, a fixed seed, 2,500 samples for the mixtures and 26,000 for Stacked MNIST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .data import BUILTIN_DATASETS, get_mixture
from .metrics import mixture_metrics_for, stacked_mnist_metrics

if TYPE_CHECKING:  # for type hints only: the pipeline imports the modules that import this one
    from .pipeline_veegan import VEEGAN

EVALUATED_DATASETS = tuple(BUILTIN_DATASETS)


def draw_samples(pipe: VEEGAN, num_samples: int, seed: int = 0, batch_size: int = 2500) -> torch.Tensor:
    """`num_samples` samples in the model's space ([-1, 1] for images), drawn in batches with a seeded generator."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    chunks = []
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        latents = torch.randn(n, pipe.latent_dim, generator=generator).to(pipe.device, pipe.generator.dtype)
        samples = pipe(latents=latents, generator=generator, output_type="pt").samples.float()
        chunks.append(samples * 2 - 1 if pipe.is_image_model else samples)  # pipeline "pt" images are [0, 1]
    return torch.cat(chunks).cpu()


def evaluate(pipe: VEEGAN, dataset_name: str, num_samples: int | None = None, seed: int = 0) -> dict[str, float]:
    r"""
    The mode-collapse metrics of `pipe` on a built-in dataset.

    Args:
        pipe (`VEEGAN`): the model, with the weights to score (EMA weights if EMA was used).
        dataset_name (`str`): `ring`, `grid`, `synthetic1200`, `mnist` or `stacked_mnist`.
        num_samples (`int`, *optional*): defaults to the paper's count for the dataset.
        seed (`int`, *optional*, defaults to 0): seeds the latents.

    Returns:
        `dict[str, float]`: for the mixtures `modes_captured`, `hq_percent`, `reverse_kl`, ...; for the digit data
        `modes_covered`, `kl` and `classifier_accuracy` (the held-out accuracy of the mode classifier).
    """
    if dataset_name not in BUILTIN_DATASETS:
        raise ValueError(f"no built-in evaluation for {dataset_name!r}; evaluated datasets: {EVALUATED_DATASETS}.")
    spec = BUILTIN_DATASETS[dataset_name]
    samples = draw_samples(pipe, num_samples or spec.num_eval_samples, seed)
    if spec.kind == "mixture":
        return mixture_metrics_for(samples, get_mixture(dataset_name))

    from .classifier import classifier_accuracy, load_mode_classifier, predict_digits, predict_stacked_modes

    classifier = load_mode_classifier()
    if samples.shape[1] != spec.num_channels:
        raise ValueError(
            f"{dataset_name} models make {spec.num_channels}-channel images, this one makes {samples.shape[1]}."
        )
    if spec.num_channels == 3:  # one digit per channel: the mode is the three digits
        result = stacked_mnist_metrics(predict_stacked_modes(classifier, samples))
    else:
        result = stacked_mnist_metrics(predict_digits(classifier, samples), num_modes=spec.num_modes)
    return {**result, "classifier_accuracy": classifier_accuracy()}


def inversion_metrics(
    pipe: VEEGAN,
    images: torch.Tensor,
    num_restarts: int = 3,
    num_steps: int = 200,
    learning_rate: float = 0.05,
    seed: int = 0,
) -> dict[str, float]:
    r"""
    IvOM and the amortized reconstruction error of an image model on real images (`benchmarks/BENCHMARKS.md`,
    "Inversion metrics").

    IvOM solves z* = argmin_z ||G(z) - x||² for each image with `pipe.invert` (Adam, `num_steps` steps of size
    `learning_rate`) from `num_restarts` random N(0, I) starts plus F(x), and keeps per image the start whose final
    error is lowest. Every start gets the same budget, so a plain GAN (whose F is untrained) is scored by its random
    restarts and VEEGAN gains only where F(x) is a better start. Errors are per-pixel MSE with pixels in [0, 1].

    Args:
        pipe (`VEEGAN`): an image model (`"dcgan"` networks).
        images (`torch.Tensor` of shape `(N, C, H, W)`): real images in [-1, 1] (the model's space), e.g. held-out
            `StackedMNIST.sample(...)` pixel values.
        num_restarts (`int`, *optional*, defaults to 3): random N(0, I) starts besides F(x).
        num_steps (`int`, *optional*, defaults to 200): Adam steps per start.
        learning_rate (`float`, *optional*, defaults to 0.05): Adam step size on z.
        seed (`int`, *optional*, defaults to 0): seeds the random starts; the result is deterministic given it.

    Returns:
        `dict[str, float]`: `ivom` (best start per image), `ivom_from_encoder` (the F(x)-started run alone),
        `reconstruction_mse` (one pass, G(F(x))), and the budget: `ivom_num_restarts`, `ivom_num_steps`,
        `ivom_learning_rate`, `ivom_num_images`.

    Example:

    ```py
    >>> import torch
    >>> from veegan_hf import VEEGAN, VEEGANGenerator, VEEGANReconstructor
    >>> from veegan_hf.evaluation import inversion_metrics

    >>> kwargs = dict(architecture="dcgan", latent_dim=8, image_size=28, num_channels=1, base_channels=8)
    >>> pipe = VEEGAN(generator=VEEGANGenerator(**kwargs), reconstructor=VEEGANReconstructor(**kwargs))
    >>> images = torch.rand(4, 1, 28, 28) * 2 - 1
    >>> result = inversion_metrics(pipe, images, num_restarts=1, num_steps=5)
    >>> result["ivom"] <= result["ivom_from_encoder"] <= result["reconstruction_mse"]
    True

    ```
    """
    from .metrics import reconstruction_mse

    if not pipe.is_image_model:
        raise ValueError("inversion_metrics needs an image model (architecture='dcgan'); this one makes vectors.")
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[0] == 0:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"expected real images as a tensor (N > 0, C, H, W) in [-1, 1], got {shape}.")
    if num_restarts < 0 or num_steps < 0 or not learning_rate > 0:
        raise ValueError(
            f"num_restarts={num_restarts} and num_steps={num_steps} must be >= 0 and learning_rate={learning_rate} "
            "> 0 (e.g. 3, 200, 0.05)."
        )
    real = images.detach().float().cpu()  # (N, C, H, W) in [-1, 1]
    num_images = real.shape[0]
    pixels = ((real + 1) / 2).clamp(0, 1)  # the pipeline's [0, 1]; reconstruction_mse rejects out-of-range `real`

    # The amortized one-pass inversion, which is also the first start.
    encoded = pipe.encode(pixels).float().cpu()  # (N, latent_dim)
    amortized = _decode_for_scoring(pipe, encoded)  # (N, C, H, W) in [-1, 1]

    generator = torch.Generator(device="cpu").manual_seed(seed)
    starts = [encoded] + [torch.randn(num_images, pipe.latent_dim, generator=generator) for _ in range(num_restarts)]
    # One batched call is num_restarts + 1 independent runs: invert sums the per-image losses, Adam is per-coordinate
    # and G is in eval mode, so no image's code sees another's gradient.
    latents = pipe.invert(
        pixels.repeat(len(starts), 1, 1, 1), num_steps=num_steps, learning_rate=learning_rate, latents=torch.cat(starts)
    )  # ((num_restarts + 1) * N, latent_dim)
    inverted = _decode_for_scoring(pipe, latents.float().cpu()).reshape(len(starts), *real.shape)  # (S, N, C, H, W)
    per_image = ((inverted.double() - real.double()) / 2).pow(2).flatten(2).mean(dim=2)  # (S, N), [0, 1] units
    best = per_image.argmin(dim=0)  # (N,): index of the best start per image
    best_inverted = inverted[best, torch.arange(num_images)]  # (N, C, H, W)
    return {
        "ivom": reconstruction_mse(real, best_inverted),
        "ivom_from_encoder": reconstruction_mse(real, inverted[0]),
        "reconstruction_mse": reconstruction_mse(real, amortized),
        "ivom_num_restarts": num_restarts,
        "ivom_num_steps": num_steps,
        "ivom_learning_rate": learning_rate,
        "ivom_num_images": num_images,
    }


def _decode_for_scoring(pipe: VEEGAN, latents: torch.Tensor) -> torch.Tensor:
    """G(z) in [-1, 1] on the CPU, with any extra noise at 0: the G(z) that `invert` minimizes over."""
    return (pipe.decode(latents, output_type="pt").float().cpu() * 2 - 1).clamp(-1, 1)  # (N, C, H, W)
