"""Codes z for sampling: N(0, I) draws with the truncation trick, and the spherical path between two codes."""

import torch
from diffusers.utils.torch_utils import randn_tensor


def draw_latents(
    shape: tuple[int, int],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
    truncation: float | None = None,
) -> torch.Tensor:
    """z ~ N(0, I) of `shape`; with `truncation`, out-of-range coordinates are redrawn, then the rare leftovers
    clamped."""
    latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
    if truncation is None:
        return latents
    # a bounded number of redraws: each leaves about P(|z| > t) of the offenders, so 32 leave ~none for t >= 0.5
    for _ in range(32):
        outside = latents.abs() > truncation
        if not outside.any():
            break
        fresh = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        latents = torch.where(outside, fresh, latents)
    return latents.clamp(-truncation, truncation)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: keeps the norm typical of N(0, I) codes, which a straight line shrinks midway."""
    # z0, z1: (latent_dim,), t: (num_steps, 1)
    norm0, norm1 = z0.norm(), z1.norm()
    if norm0 < 1e-8 or norm1 < 1e-8:  # a zero code has no direction: the straight line is the only path
        return (1 - t) * z0 + t * z1
    cos = torch.dot(z0 / norm0, z1 / norm1).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    if omega.abs() < 1e-4 or (torch.pi - omega).abs() < 1e-4:  # parallel or opposite: no unique great circle
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
