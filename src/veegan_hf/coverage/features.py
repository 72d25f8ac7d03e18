"""The feature spaces a coverage report measures distances in: images or vectors in, `(N, dim)` features out.

- `"classifier"`: the shipped digit classifier's conv trunk, average-pooled to 128 numbers per channel and
  concatenated over channels (384 for Stacked MNIST). In-domain for digits, and the network that already counts modes.
- `"pixels"`: the raw samples, flattened; the right space for the 2-D and 1200-D mixtures.
- `"random"`: a fixed, randomly initialized CNN (Naeem et al., 2020, recommend one for data far from ImageNet); the
  same weights for every report, from seed 0.
- any `nn.Module` or callable mapping `(N, C, H, W)` images in [-1, 1] (or `(N, data_dim)` vectors) to `(N, dim)`.

Classifier-FID computed on these features is not comparable with Inception FID.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as nnf
from torch import nn

from ..classifier import load_mode_classifier

FEATURE_EXTRACTORS = ("classifier", "pixels", "random")
FEATURE_BATCH = 1024
RANDOM_CNN_SEED = 0


class ClassifierFeatures(nn.Module):
    """The digit classifier's trunk, pooled: `(N, C, 28 or 32, same)` -> `(N, 128 * C)`, each channel on its own."""

    num_features_per_channel = 128

    def __init__(self):
        super().__init__()
        self.classifier = load_mode_classifier()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, c, h, w = images.shape
        if h not in (28, 32) or h != w:
            raise ValueError(
                f"the classifier features read 28 or 32 px digits, got {h}x{w} images; pass "
                "feature_extractor='random' or 'pixels' for other images."
            )
        digits = images.reshape(n * c, 1, h, w)  # (N * C, 1, H, W): channel j of image i at C * i + j
        if h == 32:
            digits = digits[..., 2:-2, 2:-2]  # the 28 px digit, as the classifier crops it
        trunk = self.classifier.features(digits.contiguous(memory_format=torch.channels_last))  # (N * C, 128, 4, 4)
        return trunk.mean(dim=(2, 3)).reshape(n, c * self.num_features_per_channel)  # (N, 128 * C)


class RandomFeatures(nn.Module):
    """A fixed random CNN: three stride-2 3x3 convs (32, 64, 128) with ReLU, average-pooled to 128 numbers."""

    def __init__(self, num_channels: int):
        super().__init__()
        generator = torch.Generator().manual_seed(RANDOM_CNN_SEED)
        self.convs = nn.ModuleList(
            [nn.Conv2d(c_in, c_out, 3, 2, 1) for c_in, c_out in ((num_channels, 32), (32, 64), (64, 128))]
        )
        with torch.no_grad():
            for conv in self.convs:  # He-normal from a private generator: the global RNG is neither read nor moved
                fan_in = conv.in_channels * 9
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                conv.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = images
        for conv in self.convs:
            h = nnf.relu(conv(h))  # (N, width, size / 2, size / 2)
        return h.mean(dim=(2, 3))  # (N, 128)


def resolve_extractor(
    extractor: "str | nn.Module | Callable[[torch.Tensor], torch.Tensor]", is_image_model: bool, num_channels: int
) -> tuple[str, Callable[[torch.Tensor], torch.Tensor]]:
    """(the name a report prints, the callable) for a name, a module or a callable."""
    if isinstance(extractor, str):
        if extractor not in FEATURE_EXTRACTORS:
            raise ValueError(
                f"feature_extractor={extractor!r} is not supported; use one of {FEATURE_EXTRACTORS}, an nn.Module or a "
                "callable mapping (N, C, H, W) images in [-1, 1] to (N, dim) features."
            )
        if extractor != "pixels" and not is_image_model:
            raise ValueError(f"feature_extractor={extractor!r} reads images; this model makes vectors: use 'pixels'.")
        if extractor == "classifier":
            return "the shipped digit classifier's trunk, average-pooled (128 per channel)", ClassifierFeatures().eval()
        if extractor == "random":
            return f"a fixed random CNN (seed {RANDOM_CNN_SEED}), average-pooled to 128", RandomFeatures(num_channels)
        return "raw pixels" if is_image_model else "the raw vectors", lambda x: x.flatten(1)
    if isinstance(extractor, nn.Module):
        return f"a user module ({type(extractor).__name__})", extractor.eval()
    if callable(extractor):
        return f"a user callable ({getattr(extractor, '__name__', type(extractor).__name__)})", extractor
    raise TypeError(f"feature_extractor must be a name, an nn.Module or a callable, got {type(extractor).__name__}.")


@torch.no_grad()
def extract(extractor: Callable[[torch.Tensor], torch.Tensor], samples: torch.Tensor) -> torch.Tensor:
    """`(N, dim)` float32 features, in batches; checks that the extractor returns one finite row per sample."""
    rows = []
    for chunk in samples.split(FEATURE_BATCH):
        features = extractor(chunk)
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != chunk.shape[0]:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"the feature extractor must return (N, dim) features for N inputs; got {shape}.")
        rows.append(features.float().cpu())
    features = torch.cat(rows)
    if not torch.isfinite(features).all():
        raise ValueError("the feature extractor returned NaN or Inf.")
    return features
