"""The mode-counting MNIST classifier that labels Stacked MNIST samples.

The protocol is `benchmarks/BENCHMARKS.md`, "Metrics for Stacked MNIST".

Each channel of a stacked image is classified on its own and the three digits give the mode `100*d0 + 10*d1 + d2`.
The shipped weights are trained by `benchmarks/train_classifier.py` on `mnist_split("classifier_train")`, which is
disjoint from the GAN's `"train"` digits; its held-out accuracy sits beside them in `weights/mnist_classifier.json`.
"""

from __future__ import annotations

import json
from importlib import resources

import torch
from safetensors.torch import load_file
from torch import nn

from .metrics import digits_to_modes

CLASSIFIER_WEIGHTS = "mnist_classifier.safetensors"
NUM_DIGIT_CLASSES = 10
# Three stride-2 stages take 28 -> 14 -> 7 -> 4: on one CPU core strided convs run several times faster than
# stride-1 convs plus max-pooling, and 78,000 digits (26,000 stacked samples) classify in a few seconds.
CLASSIFIER_CHANNELS = (32, 64, 128)
_DIGIT_SIZE = 28
_PADDED_SIZE = 32  # mnist_pixel_values(image_size=32): the 28 px digit with 2 px of background on each side


def _conv_block(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=2, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class MNISTClassifier(nn.Module):
    r"""
    A small CNN that maps one grayscale digit in [-1, 1] (background -1) to 10 logits.

    Three conv-BN-ReLU stages with stride 2 (5x5, 3x3, 3x3) and a linear head on the flattened 4x4 map. 32 px
    inputs are center-cropped to the 28 px digit, so `image_size=28` and `image_size=32` data give the same logits.

    Args:
        channels (`tuple[int, int, int]`, *optional*, defaults to `(32, 64, 128)`):
            The widths of the three conv stages; the shipped weights use the default.
        num_classes (`int`, *optional*, defaults to 10):
            The number of output logits.
        dropout (`float`, *optional*, defaults to 0.2):
            Dropout before the head, active only in training mode.

    Example:
    ```py
    >>> import torch
    >>> from veegan_hf.classifier import load_mode_classifier
    >>> from veegan_hf.data import StackedMNIST
    >>> classifier = load_mode_classifier()
    >>> dataset = StackedMNIST.from_split("classifier_test")
    >>> pixel_values, _ = dataset.sample(4, generator=torch.Generator().manual_seed(0))
    >>> classifier(pixel_values[:, :1]).shape  # the digits of channel 0
    torch.Size([4, 10])

    ```
    """

    def __init__(
        self,
        channels: tuple[int, int, int] = CLASSIFIER_CHANNELS,
        num_classes: int = NUM_DIGIT_CLASSES,
        dropout: float = 0.2,
    ):
        super().__init__()
        c1, c2, c3 = channels
        self.features = nn.Sequential(
            _conv_block(1, c1, 5),  # (batch, c1, 14, 14)
            _conv_block(c1, c2, 3),  # (batch, c2, 7, 7)
            _conv_block(c2, c3, 3),  # (batch, c3, 4, 4)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c3 * 4 * 4, num_classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        r"""
        Args:
            pixel_values (`torch.Tensor` of shape `(batch, 1, 28, 28)` or `(batch, 1, 32, 32)`):
                Grayscale digits in [-1, 1], as `veegan_hf.data.mnist_pixel_values` makes them.

        Returns:
            `torch.Tensor`: logits of shape `(batch, num_classes)`.
        """
        shape = tuple(pixel_values.shape)
        if pixel_values.ndim != 4 or shape[1] != 1 or shape[2:] not in ((_DIGIT_SIZE,) * 2, (_PADDED_SIZE,) * 2):
            raise ValueError(
                f"MNISTClassifier expects digits of shape (batch, 1, 28, 28) or (batch, 1, 32, 32), got {shape}; "
                "classify a stacked (batch, 3, H, W) image with predict_stacked_modes."
            )
        if shape[-1] == _PADDED_SIZE:
            margin = (_PADDED_SIZE - _DIGIT_SIZE) // 2
            pixel_values = pixel_values[..., margin:-margin, margin:-margin]  # (batch, 1, 28, 28)
        hidden_states = self.features(pixel_values)  # (batch, c3, 4, 4)
        return self.head(self.dropout(hidden_states.flatten(1)))  # (batch, num_classes)


def load_mode_classifier(device: torch.device | str | None = None) -> MNISTClassifier:
    r"""
    Loads the shipped mode-counting classifier (`veegan_hf/weights/mnist_classifier.safetensors`) in eval mode.

    Args:
        device (`torch.device` or `str`, *optional*, defaults to `None`):
            Where the weights go; `None` keeps them on the CPU.

    Returns:
        `MNISTClassifier`: the trained network in eval mode, with gradients switched off.
    """
    weights = resources.files("veegan_hf") / "weights" / CLASSIFIER_WEIGHTS
    with resources.as_file(weights) as path:
        if not path.is_file():
            raise FileNotFoundError(
                f"The classifier weights {CLASSIFIER_WEIGHTS} are missing from the veegan_hf package at {path}; "
                "reinstall veegan-hf or regenerate them with `python benchmarks/train_classifier.py`."
            )
        state_dict = load_file(path)
    classifier = MNISTClassifier()
    classifier.load_state_dict(state_dict)
    # channels_last lets oneDNN skip a layout reorder on every conv: about 1.3x faster on CPU, harmless elsewhere.
    classifier = classifier.to(device=device, memory_format=torch.channels_last)
    return classifier.eval().requires_grad_(False)


def classifier_accuracy() -> float:
    """The shipped classifier's accuracy on the 500 held-out `classifier_test` digits, as measured when trained."""
    record = resources.files("veegan_hf").joinpath("weights", "mnist_classifier.json").read_text()
    return float(json.loads(record)["heldout_accuracy"])


def predict_digits(classifier: MNISTClassifier, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    r"""
    Labels single-channel digit images (the `mnist` dataset) 0..9.

    Args:
        classifier (`MNISTClassifier`): the digit classifier, in eval mode.
        images (`torch.Tensor` of shape `(N, 1, 28, 28)` or `(N, 1, 32, 32)`): digits in [-1, 1].
        batch_size (`int`, *optional*, defaults to 1024): digits per forward pass.

    Returns:
        `torch.Tensor`: int64 labels of shape `(N,)`.
    """
    shape = tuple(images.shape)
    if images.ndim != 4 or shape[1] != 1 or shape[2:] not in ((_DIGIT_SIZE,) * 2, (_PADDED_SIZE,) * 2):
        raise ValueError(f"predict_digits expects digits of shape (N, 1, 28, 28) or (N, 1, 32, 32), got {shape}.")
    return _classify(classifier, images, batch_size)


def _classify(classifier: MNISTClassifier, digits: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N, 1, H, W) digits -> (N,) int64 labels, in batches under inference mode, on the device of `digits`."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    if classifier.training:
        # Train mode would use batch statistics and dropout, and the labels would depend on the batch.
        raise ValueError("The classifier is in training mode; call classifier.eval() first.")
    if digits.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=digits.device)
    parameter = next(classifier.parameters())
    with torch.inference_mode():
        predictions = [
            classifier(chunk.to(parameter.device, parameter.dtype)).argmax(dim=1).to(digits.device)
            for chunk in digits.split(batch_size)
        ]
    return torch.cat(predictions)


def predict_stacked_modes(classifier: MNISTClassifier, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    r"""
    Labels Stacked MNIST images with their mode `100 * d0 + 10 * d1 + d2`, classifying every channel on its own.

    Args:
        classifier (`MNISTClassifier`):
            The digit classifier, in eval mode (as `load_mode_classifier` returns it).
        images (`torch.Tensor` of shape `(N, 3, 28, 28)` or `(N, 3, 32, 32)`):
            Stacked digits in [-1, 1], one digit per channel.
        batch_size (`int`, *optional*, defaults to 1024):
            How many single-channel digits go through the classifier per forward pass; on a CPU, passes of about
            1,000 digits stay in cache and run fastest.

    Returns:
        `torch.Tensor`: int64 modes of shape `(N,)` in 0..999, on the device of `images`.

    Example:
    ```py
    >>> import torch
    >>> from veegan_hf.classifier import load_mode_classifier, predict_stacked_modes
    >>> from veegan_hf.data import StackedMNIST
    >>> dataset = StackedMNIST.from_split("classifier_test")
    >>> pixel_values, modes = dataset.sample(256, generator=torch.Generator().manual_seed(0), image_size=32)
    >>> predicted = predict_stacked_modes(load_mode_classifier(), pixel_values)
    >>> bool((predicted == modes).float().mean() > 0.9)
    True

    ```
    """
    shape = tuple(images.shape)
    if images.ndim != 4 or shape[1] != 3 or shape[2:] not in ((_DIGIT_SIZE,) * 2, (_PADDED_SIZE,) * 2):
        raise ValueError(
            f"predict_stacked_modes expects stacked digits of shape (N, 3, 28, 28) or (N, 3, 32, 32), got {shape}."
        )
    num_images, _, height, width = shape
    digits = images.reshape(num_images * 3, 1, height, width)  # (N * 3, 1, H, W): channel c of image i at 3i + c
    return digits_to_modes(_classify(classifier, digits, batch_size).view(num_images, 3))  # (N,)
