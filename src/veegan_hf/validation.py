"""Argument checks for the public calls: each error names the argument, what was expected, what was given, and the
way out. Types are checked before values, so `"3"` is a type error and `-3` a value error.

The caps bound what one call may cost: a call past them is refused before any work, with the cap named.
"""

import math
from typing import Any

import torch

MAX_BATCH_SIZE = 1_000_000  # samples per call; larger requests are drawn in chunks of GENERATION_CHUNK anyway
GENERATION_CHUNK = 4096  # samples per generator forward: bounds the activations of one call
MAX_INVERT_STEPS = 10_000  # Adam steps of `invert`: 200 is the default, 10,000 already costs minutes per batch
MAX_INTERPOLATION_STEPS = 10_000  # frames of `interpolate`


def check_int(name: str, value: Any, low: int, high: int, hint: str = "") -> int:
    """`value` as an int in [low, high]; bools, floats and strings are refused by type."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int in [{low}, {high}], got {value!r} ({type(value).__name__}).{hint}")
    if not low <= value <= high:
        raise ValueError(f"{name}={value} must lie in [{low}, {high}].{hint}")
    return value


def check_number(name: str, value: Any, low: float, high: float, *, open_low: bool = False, hint: str = "") -> float:
    """`value` as a finite float in [low, high] (or (low, high] with `open_low`)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (torch.is_tensor(value) and value.numel() != 1)
    ):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).{hint}")
    value = float(value)
    below = value <= low if open_low else value < low
    if not math.isfinite(value) or below or value > high:
        bounds = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
        raise ValueError(f"{name}={value} must be a finite number in {bounds}.{hint}")
    return value


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not supported; use one of {choices}.")
    return value


def check_generator(generator: Any) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or None, got "
            f"{type(generator).__name__}. The network is pipe.generator."
        )
    return generator


def check_latents(name: str, latents: Any, latent_dim: int, rows: int | None = None) -> torch.Tensor:
    """Codes as a finite float tensor of shape `(batch, latent_dim)`; a single code `(latent_dim,)` is one row."""
    if not torch.is_tensor(latents):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (batch, {latent_dim}), got {type(latents).__name__}; convert "
            "numpy arrays with torch.from_numpy."
        )
    if not latents.is_floating_point():
        raise TypeError(f"{name} must hold floats, got {latents.dtype}.")
    if latents.ndim == 1:
        latents = latents[None]
    if latents.ndim != 2 or latents.shape[1] != latent_dim or latents.shape[0] == 0:
        raise ValueError(f"{name} must have shape (batch > 0, {latent_dim}), got {tuple(latents.shape)}.")
    if latents.shape[0] > MAX_BATCH_SIZE:
        raise ValueError(f"{name} holds {latents.shape[0]:,} codes; one call takes at most {MAX_BATCH_SIZE:,}.")
    if rows is not None and latents.shape[0] != rows:
        raise ValueError(f"{name} has {latents.shape[0]} rows for {rows} samples; pass one code per sample.")
    if not bool(torch.isfinite(latents).all()):
        raise ValueError(f"{name} holds NaN or infinite values; pass finite codes.")
    return latents


def check_finite_output(name: str, samples: torch.Tensor) -> torch.Tensor:
    """Refuses a non-finite result (NaN weights that slipped past loading, an overflowing dtype)."""
    if not bool(torch.isfinite(samples).all()):
        raise ValueError(
            f"{name} came out NaN or infinite: the weights or the dtype overflow. Load the model in float32 "
            "(dtype=torch.float32), or load a checkpoint saved before training diverged."
        )
    return samples
