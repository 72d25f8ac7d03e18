"""Building blocks of the three networks: config checks, MLP stacks and the DCGAN plan and encoder.

`modeling_veegan.py` assembles the networks from these; nothing here is a model of its own.
"""

import math
from collections.abc import Mapping

import torch
from torch import nn

ARCHITECTURES = ("mlp", "dcgan", "metz")
IMAGE_ARCHITECTURES = ("dcgan", "metz")
IMAGE_SIZES = (28, 32, 64)
ACTIVATIONS = ("relu", "leaky_relu", "silu")


# Bounds that no sane model exceeds, checked before any tensor is made: a config asking for terabytes fails here.
SIZE_LIMITS = {
    "latent_dim": (1, 4096),
    "data_dim": (1, 65536),
    "hidden_dim": (1, 8192),
    "num_hidden_layers": (0, 32),
    "base_channels": (1, 512),
    "extra_noise_dim": (0, 4096),
    "pack_size": (1, 64),
}


def check_config(
    architecture: str,
    latent_dim: int,
    data_dim: int | None,
    image_size: int | None,
    num_channels: int | None,
    *,
    allow_zero_latent: bool = False,
    **sizes: object,
) -> None:
    """Types, choices and bounds of a network's config, with errors that name the key and its limits."""
    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        raise ValueError(f"architecture={architecture!r} is not supported; use one of {ARCHITECTURES}.")
    ints = {"latent_dim": latent_dim, **{k: v for k, v in sizes.items() if k in SIZE_LIMITS}}
    if architecture == "mlp" or data_dim is not None:
        ints["data_dim"] = data_dim
    for key, value in ints.items():
        low, high = SIZE_LIMITS[key]
        low = 0 if key == "latent_dim" and allow_zero_latent else low
        if value is None:
            raise ValueError(f"{key}=None: architecture={architecture!r} needs an int in [{low}, {high}].")
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{key}={value!r} must be an int in [{low}, {high}], got {type(value).__name__}.")
        if not low <= value <= high:
            hint = " (a positive integer)" if key == "latent_dim" and value < 1 else ""
            raise ValueError(f"{key}={value} must lie in [{low}, {high}]{hint}.")
    if architecture in IMAGE_ARCHITECTURES:
        if image_size not in IMAGE_SIZES or isinstance(image_size, bool):
            raise ValueError(f"architecture={architecture!r} supports image_size in {IMAGE_SIZES}, got {image_size!r}.")
        if num_channels not in (1, 3) or isinstance(num_channels, bool):
            raise ValueError(f"architecture={architecture!r} supports num_channels 1 or 3, got {num_channels!r}.")
    for key in ("activation",):
        if key in sizes and (not isinstance(sizes[key], str) or sizes[key] not in ACTIVATIONS):
            raise ValueError(f"{key}={sizes[key]!r} is not supported; use one of {ACTIVATIONS}.")
    for key in ("marginal_head", "spectral_norm", "batch_norm"):
        if key in sizes and not isinstance(sizes[key], bool):
            raise TypeError(f"{key}={sizes[key]!r} must be true or false.")
    for key in ("noise_std", "sample_scale"):
        if key in sizes:
            value = sizes[key]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"{key}={value!r} must be a finite number.")


def check_network_config(config: Mapping[str, object], *, allow_zero_latent: bool = False) -> None:
    """`check_config` on a network's whole registered config (diffusers sets `self.config` before `__init__` runs),
    so that each network's checks cover every key it declares."""
    check_config(**{k: v for k, v in config.items() if not k.startswith("_")}, allow_zero_latent=allow_zero_latent)


def activation_layer(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"activation={name!r} is not supported; use one of {ACTIVATIONS}.")


def mlp(
    in_dim: int, hidden_dim: int, num_hidden_layers: int, out_dim: int, activation: str, batch_norm: bool = False
) -> nn.Sequential:
    """in_dim -> [hidden_dim, (BatchNorm,) activation] x num_hidden_layers -> out_dim (linear output)."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_hidden_layers):
        layers += [
            nn.Linear(dim, hidden_dim),
            *([nn.BatchNorm1d(hidden_dim)] if batch_norm else []),
            activation_layer(activation),
        ]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


def dcgan_plan(image_size: int, base_channels: int) -> tuple[int, list[int]]:
    """The start resolution and the channel widths of each stride-2 stage, coarse to fine.

    28 px starts at 7x7 (28 = 7 * 2^2); 32 and 64 px start at 4x4 like DCGAN. Widths halve at each upsampling so that
    the finest stage has `base_channels`.
    """
    start = 7 if image_size == 28 else 4
    num_stages = int(math.log2(image_size // start))
    return start, [base_channels * 2 ** (num_stages - 1 - i) for i in range(num_stages)]


class ConvEncoder(nn.Module):
    """(batch, channels, size, size) -> (batch, out_dim): stride-2 convolutions, LeakyReLU, no normalization.

    No BatchNorm: the reconstructor and the discriminator see real and generated images in one concatenated batch,
    and batch statistics would leak one half into the other.
    """

    def __init__(self, image_size: int, num_channels: int, base_channels: int, out_dim: int):
        super().__init__()
        start, widths = dcgan_plan(image_size, base_channels)
        widths = widths[::-1]  # fine to coarse
        layers: list[nn.Module] = []
        in_ch = num_channels
        for width in widths:
            layers += [nn.Conv2d(in_ch, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(in_ch * start * start, out_dim)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        h = self.features(pixel_values)  # (batch, widest, start, start)
        return self.head(h.flatten(1))  # (batch, out_dim)
