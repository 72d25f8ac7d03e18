"""Scores a trained pipeline on a built-in dataset: draws samples, then hands them to `metrics.py`.

This is the one place that turns "a model" into "samples" for scoring, so training, the benchmarks and the model
card all follow the same protocol (BENCHMARKS.md): generator in eval mode, EMA weights when the caller exported them,
a fixed seed, 2,500 samples for the mixtures and 26,000 for Stacked MNIST.
"""

import torch

from .data import MIXTURE_NAMES, get_mixture
from .metrics import mixture_metrics_for, stacked_mnist_metrics
from .pipeline_veegan import VEEGAN

# the paper's sample counts
NUM_EVAL_SAMPLES = {"ring": 2500, "grid": 2500, "synthetic1200": 2500, "stacked_mnist": 26000, "mnist": 10000}
EVALUATED_DATASETS = tuple(NUM_EVAL_SAMPLES)


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
    if dataset_name not in NUM_EVAL_SAMPLES:
        raise ValueError(f"no built-in evaluation for {dataset_name!r}; evaluated datasets: {EVALUATED_DATASETS}.")
    num_samples = num_samples or NUM_EVAL_SAMPLES[dataset_name]
    samples = draw_samples(pipe, num_samples, seed)
    if dataset_name in MIXTURE_NAMES:
        return mixture_metrics_for(samples, get_mixture(dataset_name))

    from .classifier import classifier_accuracy, load_mode_classifier, predict_digits, predict_stacked_modes

    classifier = load_mode_classifier()
    if dataset_name == "stacked_mnist":
        if samples.shape[1] != 3:
            raise ValueError(f"stacked_mnist models make 3-channel images, this one makes {samples.shape[1]}.")
        result = stacked_mnist_metrics(predict_stacked_modes(classifier, samples))
    else:
        digits = predict_digits(classifier, samples)
        result = stacked_mnist_metrics(digits, num_modes=10)
    return {**result, "classifier_accuracy": classifier_accuracy()}
