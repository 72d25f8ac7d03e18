"""The Gaussian-mixture datasets of `benchmarks/BENCHMARKS.md` (ring, grid, synthetic1200): their exact means and
noise, generated on the device. `veegan_hf.data` lists them beside the digits and re-exports `get_mixture`.
"""

import math
from dataclasses import dataclass

import torch

MIXTURES = ("ring", "grid", "synthetic1200")  # the names `get_mixture` builds; `data.BUILTIN_DATASETS` describes them


# eq=False: the generated __eq__ would compare tensors elementwise and raise; identity equality is enough.
@dataclass(frozen=True, eq=False)
class GaussianMixture:
    r"""
    An equal-weight mixture of isotropic Gaussians whose noise lives on the first `noise_dim` coordinates.

    A sample of mode k is `means[k] + std * (eps, 0)` with `eps ~ N(0, I_noise_dim)`; the remaining
    `data_dim - noise_dim` coordinates equal the mean exactly (the `synthetic1200` embedding).

    Args:
        name (`str`):
            The dataset name, one of `MIXTURES`.
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
    raise ValueError(f"Unknown mixture {name!r}; expected one of {list(MIXTURES)}.")
