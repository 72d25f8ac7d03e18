"""The three VEEGAN networks: generator G: z -> x, reconstructor F: x -> z and the joint discriminator D(z, x).

Architecture only: no losses, no training, no I/O beyond what `ModelMixin` gives. The families share one config
surface so that every objective and every dataset uses the same classes:

- `architecture="mlp"` for vectors of any `data_dim` (the 2-D mixtures, the 1200-D synthetic data);
- `architecture="dcgan"` for square images with `image_size` 28, 32 or 64 and `num_channels` 1 or 3;
- `architecture="metz"` for the same images with the literature's reduced-discriminator networks (`metz.py`): a
  BatchNorm D with no hidden fully connected layer, whose width `discriminator_base_channels` sets D's size against G's.

Each network lists the sizes of its input first (G: `latent_dim`; F: `data_dim`, `image_size`, `num_channels`; D: z,
then x). Pass them by name, as a saved `config.json` does.
"""

import itertools
import logging

import torch
from diffusers import ModelMixin  # top-level name on purpose: diffusers' loader looks for it in this module
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from .layers import ConvEncoder, activation_layer, check_network_config, dcgan_plan, mlp
from .metz import MetzDiscriminatorNet, MetzEncoderNet, MetzGeneratorNet


class _NoEmptyFp32Warning(logging.Filter):
    """diffusers' `ModelMixin.to(dtype)` warns that "modules ... should be kept in float32: []" for every model, even
    one with no such module (its `or []` is never None). These networks keep nothing in float32: drop that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("There are modules in VEEGAN") and "float32: []" in message)


logging.getLogger("diffusers.models.modeling_utils").addFilter(_NoEmptyFp32Warning())


class VEEGANGenerator(ModelMixin, ConfigMixin):
    r"""
    The VEEGAN generator G: maps latents z ~ N(0, I) to samples x.

    Parameters:
        architecture (`str`, *optional*, defaults to `"mlp"`): `"mlp"` for vectors, `"dcgan"` or `"metz"` for images.
        latent_dim (`int`, *optional*, defaults to 16): size of z, the code the reconstructor learns to recover.
        extra_noise_dim (`int`, *optional*, defaults to 0): size of an extra noise input that is *not* reconstructed,
            as in the authors' notebook (254 + 1). It is drawn from N(0, I) unless given.
        data_dim (`int`, *optional*, defaults to 2): size of a sample vector; used by `"mlp"` only.
        image_size (`int`, *optional*): side of the square image, 28, 32 or 64; used by `"dcgan"` only.
        num_channels (`int`, *optional*): image channels, 1 or 3; used by `"dcgan"` only.
        hidden_dim (`int`, *optional*, defaults to 128): MLP width (the authors' notebook uses 128).
        num_hidden_layers (`int`, *optional*, defaults to 2): MLP depth (the authors' notebook uses 2).
        base_channels (`int`, *optional*, defaults to 64): channels of the finest conv stage; coarser stages double
            (`"metz"`: 8 gives the reference's 64 -> 32 -> 16 -> 8 channels).
        activation (`str`, *optional*, defaults to `"relu"`): hidden activation of the MLP.
        batch_norm (`bool`, *optional*, defaults to `False`): BatchNorm after each hidden layer of the MLP, as in
            PacGAN's 2-D generator; `"mlp"` only (the conv generators always have it). Samples use the running
            statistics.

    Example:

    ```py
    >>> import torch
    >>> from veegan_hf import VEEGANGenerator

    >>> generator = VEEGANGenerator(architecture="mlp", latent_dim=16, data_dim=2)
    >>> generator(torch.randn(4, 16)).shape
    torch.Size([4, 2])
    ```
    """

    @register_to_config
    def __init__(
        self,
        architecture: str = "mlp",
        latent_dim: int = 16,
        extra_noise_dim: int = 0,
        data_dim: int | None = 2,
        image_size: int | None = None,
        num_channels: int | None = None,
        hidden_dim: int = 128,
        num_hidden_layers: int = 2,
        base_channels: int = 64,
        activation: str = "relu",
        batch_norm: bool = False,
    ):
        super().__init__()
        check_network_config(self.config)  # registered before __init__ runs
        if batch_norm and architecture != "mlp":
            raise ValueError(
                f"batch_norm=True applies to the mlp generator only; architecture={architecture!r} always has "
                "BatchNorm. Leave batch_norm False."
            )
        in_dim = latent_dim + extra_noise_dim
        if architecture == "mlp":
            self.net = mlp(in_dim, hidden_dim, num_hidden_layers, data_dim, activation, batch_norm)
        elif architecture == "metz":
            self.net = MetzGeneratorNet(in_dim, image_size, num_channels, base_channels)
        else:
            start, widths = dcgan_plan(image_size, base_channels)
            layers: list[nn.Module] = [
                nn.Linear(in_dim, widths[0] * start * start),
                nn.Unflatten(1, (widths[0], start, start)),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(),
            ]
            for in_ch, out_ch in itertools.pairwise(widths):
                layers += [nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1), nn.BatchNorm2d(out_ch), nn.ReLU()]
            # the last upsampling lands on the image itself; tanh keeps pixels in [-1, 1]
            layers += [nn.ConvTranspose2d(widths[-1], num_channels, 4, 2, 1), nn.Tanh()]
            self.net = nn.Sequential(*layers)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: `(data_dim,)` or `(num_channels, image_size, image_size)`."""
        c = self.config
        return (c.data_dim,) if c.architecture == "mlp" else (c.num_channels, c.image_size, c.image_size)

    def forward(self, latents: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        r"""
        Args:
            latents (`torch.Tensor` of shape `(batch, latent_dim)`): the codes z.
            noise (`torch.Tensor` of shape `(batch, extra_noise_dim)`, *optional*): the extra noise; drawn from N(0, I)
                with the global RNG when omitted and `extra_noise_dim > 0`.

        Returns:
            `torch.Tensor`: `(batch, data_dim)` vectors or `(batch, num_channels, image_size, image_size)` images.
        """
        if self.config.extra_noise_dim > 0:
            if noise is None:
                noise = torch.randn(latents.shape[0], self.config.extra_noise_dim, device=latents.device)
            latents = torch.cat([latents, noise.to(latents.dtype)], dim=1)  # (batch, latent_dim + extra_noise_dim)
        return self.net(latents)


class VEEGANReconstructor(ModelMixin, ConfigMixin):
    r"""
    The VEEGAN reconstructor F: maps samples x back to latents, the paper's p_theta(z | x) = N(F(x), noise_std^2 I).

    `forward` returns the mean F(x). `sample_latents` adds the Gaussian noise; the training loop feeds these noisy codes
    to the discriminator as the latent half of a real pair. With `noise_std=0` the reconstructor is deterministic.

    Parameters:
        architecture (`str`, *optional*, defaults to `"mlp"`): `"mlp"` for vectors, `"dcgan"` or `"metz"` for images.
        data_dim (`int`, *optional*, defaults to 2): size of a sample vector; used by `"mlp"` only.
        image_size (`int`, *optional*): side of the square image, 28, 32 or 64; used by `"dcgan"` only.
        num_channels (`int`, *optional*): image channels, 1 or 3; used by `"dcgan"` only.
        latent_dim (`int`, *optional*, defaults to 16): size of the recovered code; equals the generator's.
        hidden_dim (`int`, *optional*, defaults to 128): MLP width.
        num_hidden_layers (`int`, *optional*, defaults to 2): MLP depth.
        base_channels (`int`, *optional*, defaults to 64): channels of the finest conv stage.
        noise_std (`float`, *optional*, defaults to 1.0): std of the Gaussian p_theta(z | x); 1.0 is the paper's unit
            variance, 0.0 makes F deterministic (which lets D tell real pairs from fake ones by z alone).
        activation (`str`, *optional*, defaults to `"relu"`): hidden activation of the MLP.
    """

    @register_to_config
    def __init__(
        self,
        architecture: str = "mlp",
        data_dim: int | None = 2,
        image_size: int | None = None,
        num_channels: int | None = None,
        latent_dim: int = 16,
        hidden_dim: int = 128,
        num_hidden_layers: int = 2,
        base_channels: int = 64,
        noise_std: float = 1.0,
        activation: str = "relu",
    ):
        super().__init__()
        check_network_config(self.config)  # registered before __init__ runs
        if noise_std < 0:
            raise ValueError(f"noise_std={noise_std} must be >= 0 (0 makes the reconstructor deterministic).")
        if architecture == "mlp":
            self.net = mlp(data_dim, hidden_dim, num_hidden_layers, latent_dim, activation)
        elif architecture == "metz":
            self.net = MetzEncoderNet(image_size, num_channels, base_channels, latent_dim)
        else:
            self.net = ConvEncoder(image_size, num_channels, base_channels, latent_dim)

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        r"""
        Args:
            samples (`torch.Tensor`): `(batch, data_dim)` vectors or `(batch, num_channels, size, size)` images in
                [-1, 1].

        Returns:
            `torch.Tensor` of shape `(batch, latent_dim)`: the mean of p_theta(z | x).
        """
        return self.net(samples)

    def sample_latents(self, samples: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws z ~ N(F(x), noise_std^2 I): the code of a real pair (z, x) as the discriminator sees it."""
        mean = self(samples)  # (batch, latent_dim)
        if self.config.noise_std == 0:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + self.config.noise_std * noise


class VEEGANDiscriminator(ModelMixin, ConfigMixin):
    r"""
    The joint discriminator D(z, x): an x-path, a z-path and a joint head that returns one logit per pair.

    With `latent_dim=0` the z-path is dropped and D(x) is a plain GAN discriminator, so baselines share the networks.
    With `pack_size=m` D judges m samples at once (PacGAN): vectors are concatenated along features, images along
    channels, and the latents likewise.

    Parameters:
        architecture (`str`, *optional*, defaults to `"mlp"`): `"mlp"` for vectors, `"dcgan"` for images, `"metz"` for
            the reduced BatchNorm D of the literature's Stacked MNIST experiments (no hidden head: `hidden_dim` and
            `num_hidden_layers` are unused; z enters as a per-channel shift of the last conv stage).
        latent_dim (`int`, *optional*, defaults to 16): size of z; 0 gives an x-only discriminator.
        data_dim (`int`, *optional*, defaults to 2): size of a sample vector; used by `"mlp"` only.
        image_size (`int`, *optional*): side of the square image, 28, 32 or 64; used by `"dcgan"` only.
        num_channels (`int`, *optional*): image channels, 1 or 3; used by `"dcgan"` only.
        hidden_dim (`int`, *optional*, defaults to 128): width of the paths and of the joint head.
        num_hidden_layers (`int`, *optional*, defaults to 1): hidden layers of the joint head (the notebook uses 1).
        base_channels (`int`, *optional*, defaults to 64): channels of the finest conv stage of the x-path (`"metz"`: 2
            is the literature's "D = 1/4 G" against a G of base 8, 4 is "1/2 G").
        pack_size (`int`, *optional*, defaults to 1): samples judged together (PacGAN); 1 is an ordinary D.
        sample_scale (`float`, *optional*, defaults to 1.0): multiplies the samples before the x-path. Data whose
            structure is much finer than 1 (the ring's std is 0.02) is judged more sharply at a scale like 10.
        activation (`str`, *optional*, defaults to `"leaky_relu"`): hidden activation; LeakyReLU keeps gradients alive
            for the generator where D saturates.
        marginal_head (`bool`, *optional*, defaults to `False`): add a second head that reads the x-path alone, and
            return the sum of both logits. The joint log-ratio splits as log p(z, x)/q(z, x) = log p(x)/q(x) +
            log p(z|x)/q(z|x); the first term needs no z, and this head learns it without having to see past z.
            Needs `latent_dim > 0`.
        spectral_norm (`bool`, *optional*, defaults to `False`): divide every weight of D by its largest singular
            value (Miyato et al., 2018), which bounds D's Lipschitz constant; one power iteration per training forward.
    """

    @register_to_config
    def __init__(
        self,
        architecture: str = "mlp",
        latent_dim: int = 16,
        data_dim: int | None = 2,
        image_size: int | None = None,
        num_channels: int | None = None,
        hidden_dim: int = 128,
        num_hidden_layers: int = 1,
        base_channels: int = 64,
        pack_size: int = 1,
        sample_scale: float = 1.0,
        activation: str = "leaky_relu",
        marginal_head: bool = False,
        spectral_norm: bool = False,
    ):
        super().__init__()
        check_network_config(self.config, allow_zero_latent=True)  # registered before __init__ runs
        if marginal_head and latent_dim == 0:
            raise ValueError("marginal_head=True needs a joint discriminator: latent_dim=0 already judges x alone.")
        if sample_scale <= 0:
            raise ValueError(f"sample_scale={sample_scale} must be > 0.")
        if pack_size < 1:
            raise ValueError(f"pack_size={pack_size} must be >= 1.")
        if num_hidden_layers < 1:
            raise ValueError(f"num_hidden_layers={num_hidden_layers} must be >= 1 for the joint head.")
        if architecture == "metz":
            self.net = MetzDiscriminatorNet(
                image_size, num_channels * pack_size, base_channels, latent_dim * pack_size, marginal_head
            )
        else:
            if architecture == "mlp":
                # Linear on x plus Linear on z equals one Linear on concat(z, x): the notebook's D, split into paths.
                self.sample_path = nn.Linear(data_dim * pack_size, hidden_dim)
            else:
                self.sample_path = ConvEncoder(image_size, num_channels * pack_size, base_channels, hidden_dim)
            self.latent_path = nn.Linear(latent_dim * pack_size, hidden_dim) if latent_dim > 0 else None
            self.head = self._make_head(hidden_dim, num_hidden_layers, activation)
            self.x_head = self._make_head(hidden_dim, num_hidden_layers, activation) if marginal_head else None
        if spectral_norm:
            for module in list(self.modules()):
                if isinstance(module, (nn.Linear, nn.Conv2d)):
                    # W / sigma_max(W); the parametrization keeps `weight` as a name, so D's code is unchanged
                    nn.utils.parametrizations.spectral_norm(module)

    @staticmethod
    def _make_head(hidden_dim: int, num_hidden_layers: int, activation: str) -> nn.Sequential:
        # (batch, hidden_dim) -> (batch, 1); the activation first because the paths end in a Linear
        return nn.Sequential(
            activation_layer(activation), mlp(hidden_dim, hidden_dim, num_hidden_layers - 1, 1, activation)
        )

    def forward(
        self, samples: torch.Tensor, latents: torch.Tensor | None = None, batch_groups: int = 1
    ) -> torch.Tensor:
        r"""
        Args:
            samples (`torch.Tensor`): `(batch, pack_size * data_dim)` vectors or
                `(batch, pack_size * num_channels, size, size)` images.
            latents (`torch.Tensor` of shape `(batch, pack_size * latent_dim)`, *optional*): the codes; required unless
                `latent_dim=0`.
            batch_groups (`int`, *optional*, defaults to 1): the batch is this many equal slices (generated, then
                data) that BatchNorm normalizes apart in training, as if D were called on each; `"metz"` only.

        Returns:
            `torch.Tensor` of shape `(batch,)`: the logit; large means "generated pair" in the VEEGAN convention.
        """
        if self.config.sample_scale != 1.0:
            samples = samples * self.config.sample_scale
        if self.config.architecture == "metz":
            return self.net(samples, latents, batch_groups)
        h_x = self.sample_path(samples)  # (batch, hidden_dim)
        h = h_x
        if self.latent_path is not None:
            if latents is None:
                raise ValueError("This discriminator is joint (latent_dim > 0): pass latents with the samples.")
            h = h_x + self.latent_path(latents)
        logit = self.head(h).squeeze(-1)  # (batch,)
        if self.x_head is not None:
            logit = logit + self.x_head(h_x).squeeze(-1)  # + the log p(x)/q(x) term, from x alone
        return logit
