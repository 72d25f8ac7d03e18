"""`VEEGAN`: a diffusers pipeline around the three networks. Sampling, decoding, encoding, inversion and interpolation;
loading lives in `loading.py`, input and output conversion in `image_processor.py`, and there is no training here.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from .image_processor import OUTPUT_TYPES, ImageInput, VEEGANImageProcessor, apply_invert_colors
from .latents import draw_latents, slerp
from .loading import NETWORKS, PretrainedIO
from .modeling_veegan import VEEGANDiscriminator, VEEGANGenerator, VEEGANReconstructor
from .rejection import RejectionSampling, rejection_sample
from .validation import (
    GENERATION_CHUNK,
    MAX_BATCH_SIZE,
    MAX_INTERPOLATION_STEPS,
    MAX_INVERT_STEPS,
    check_choice,
    check_finite_output,
    check_generator,
    check_int,
    check_latents,
    check_number,
)


@dataclass
class VEEGANPipelineOutput(BaseOutput):
    """
    Output of a `VEEGAN` call.

    Args:
        samples (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`): the samples in the requested type. Images
            as "pt" are `(batch, channels, size, size)` in [0, 1], as "np" `(batch, size, size, channels)` in [0, 1].
            Vectors are `(batch, data_dim)`.
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`, *optional*): the same samples for image
            models, `None` for vector models.
        latents (`torch.Tensor` of shape `(batch, latent_dim)`): the codes z the samples were generated from.
        acceptance_rate (`float`, *optional*): with `rejection_sampling`, the share of candidates kept.
    """

    samples: Any
    images: Any = None
    latents: torch.Tensor | None = None
    acceptance_rate: float | None = None


@contextlib.contextmanager
def _eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Eval mode for the duration of a call, restoring each module's previous mode (a trainer may own them)."""
    modes = [(m, m.training) for m in modules if m is not None]
    for m, _ in modes:
        m.eval()
    try:
        yield
    finally:
        for m, was_training in modes:
            m.train(was_training)


class VEEGAN(PretrainedIO, DiffusionPipeline):
    r"""
    A VEEGAN model: sample x = G(z), decode a given z, encode z = F(x), reconstruct G(F(x)), invert by optimization,
    interpolate.

    Parameters:
        generator ([`VEEGANGenerator`]): G, latents to samples.
        reconstructor ([`VEEGANReconstructor`]): F, samples to latents.
        discriminator ([`VEEGANDiscriminator`], *optional*): D(z, x); only training needs it, so it may be omitted.

    Example:

    ```py
    >>> import torch
    >>> from veegan_hf import VEEGAN, VEEGANGenerator, VEEGANReconstructor

    >>> pipe = VEEGAN(
    ...     generator=VEEGANGenerator(architecture="mlp", latent_dim=16, data_dim=2),
    ...     reconstructor=VEEGANReconstructor(architecture="mlp", latent_dim=16, data_dim=2),
    ... )
    >>> pipe(batch_size=5, generator=torch.Generator().manual_seed(0), output_type="pt").samples.shape
    torch.Size([5, 2])
    ```
    """

    _optional_components = ["discriminator"]
    model_cpu_offload_seq = "reconstructor->generator"

    def __init__(
        self,
        generator: VEEGANGenerator,
        reconstructor: VEEGANReconstructor,
        discriminator: VEEGANDiscriminator | None = None,
    ):
        super().__init__()
        for name, value in (("generator", generator), ("reconstructor", reconstructor)):
            if not isinstance(value, NETWORKS[name]):
                raise TypeError(f"{name} must be a {NETWORKS[name].__name__}, got {type(value).__name__}.")
        if discriminator is not None and not isinstance(discriminator, VEEGANDiscriminator):
            raise TypeError(f"discriminator must be a VEEGANDiscriminator or None, got {type(discriminator).__name__}.")
        g, f = generator.config, reconstructor.config
        if g.latent_dim != f.latent_dim or g.architecture != f.architecture:
            raise ValueError(
                f"generator (architecture={g.architecture!r}, latent_dim={g.latent_dim}) and reconstructor "
                f"(architecture={f.architecture!r}, latent_dim={f.latent_dim}) must agree."
            )
        self.register_modules(generator=generator, reconstructor=reconstructor, discriminator=discriminator)
        # what the model card says beyond the config (dataset, metrics); carried over from a loaded README.md
        self.card_metadata: dict[str, Any] = {}

    # ------------------------------------------------------------------ properties

    @property
    def is_image_model(self) -> bool:
        """`True` for image networks (`"dcgan"`, `"metz"`), `False` for `"mlp"` ones (vectors)."""
        return self.generator.config.architecture != "mlp"

    @property
    def latent_dim(self) -> int:
        """The size of a code z."""
        return self.generator.config.latent_dim

    @property
    def image_processor(self) -> VEEGANImageProcessor:
        """Converts inputs to the model's space and outputs back (see `image_processor.py`)."""
        g = self.generator.config
        return VEEGANImageProcessor(self.is_image_model, g.data_dim, g.image_size, g.num_channels)

    # ------------------------------------------------------------------ public API

    def _generate(self, latents: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """G(z) in chunks of GENERATION_CHUNK codes, in eval mode: the activations of one call stay bounded."""
        chunks = []
        with _eval_mode(self.generator):
            for start in range(0, latents.shape[0], GENERATION_CHUNK):
                part = slice(start, start + GENERATION_CHUNK)
                chunks.append(self.generator(latents[part], None if noise is None else noise[part]))
        return check_finite_output("the generated samples", torch.cat(chunks))

    def _drawn_noise(self, latents: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor | None:
        """The generator's extra noise input, drawn (sampling), or None when it has none."""
        extra = self.generator.config.extra_noise_dim
        shape = (latents.shape[0], extra)
        return randn_tensor(shape, generator=generator, device=self.device, dtype=latents.dtype) if extra else None

    def _zero_noise(self, latents: torch.Tensor) -> torch.Tensor | None:
        """The extra noise input at its mean, 0: what `decode` and `invert` use, so one reproduces the other."""
        extra = self.generator.config.extra_noise_dim
        return latents.new_zeros(latents.shape[0], extra) if extra > 0 else None

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str | None = None,
        return_dict: bool = True,
        truncation: float | None = None,
        rejection_sampling: bool | RejectionSampling = False,
    ) -> VEEGANPipelineOutput | tuple:
        r"""
        Draws samples x = G(z) with z ~ N(0, I).

        Args:
            batch_size (`int`, *optional*, defaults to 1): number of samples, at most 1,000,000 (drawn in chunks);
                ignored when `latents` is given.
            generator (`torch.Generator`, *optional*): makes the call reproducible.
            latents (`torch.Tensor` of shape `(batch, latent_dim)`, *optional*): codes to decode instead of drawing.
                The generator's extra noise input, if it has one, is drawn; `decode` holds it at 0 instead.
            output_type (`str`, *optional*): `"pil"`, `"np"` or `"pt"`; defaults to `"pil"` for images and `"pt"` for
                vectors.
            return_dict (`bool`, *optional*, defaults to `True`): return a `VEEGANPipelineOutput` instead of a tuple.
            truncation (`float`, *optional*): redraw every latent coordinate whose magnitude exceeds this value (the
                truncation trick, in (0, 10]): fewer outliers, less diversity.
            rejection_sampling (`bool` or [`RejectionSampling`], *optional*, defaults to `False`): keep each
                candidate with the probability the discriminator gives it (discriminator rejection sampling;
                `True` keeps half the candidates). Needs the pipeline's discriminator; not with `latents`.

        Returns:
            [`VEEGANPipelineOutput`] or `tuple`: `(samples, latents)` when `return_dict=False`.
        """
        output_type = check_choice("output_type", output_type or ("pil" if self.is_image_model else "pt"), OUTPUT_TYPES)
        check_generator(generator)
        if truncation is not None:
            check_number("truncation", truncation, 0.0, 10.0, open_low=True, hint=" Try 0.5 to 2.0, or None.")
        if not isinstance(rejection_sampling, (bool, RejectionSampling)):
            raise TypeError(
                "rejection_sampling must be True, False or a RejectionSampling, got "
                f"{type(rejection_sampling).__name__}."
            )
        dtype = self.generator.dtype
        draw = lambda n: draw_latents((n, self.latent_dim), generator, self.device, dtype, truncation)  # noqa: E731
        acceptance_rate = None
        if rejection_sampling:
            if latents is not None:
                raise ValueError("rejection_sampling draws its own codes: pass batch_size instead of latents.")
            settings = rejection_sampling if isinstance(rejection_sampling, RejectionSampling) else RejectionSampling()
            drawn = rejection_sample(
                self, check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE), settings, draw, generator
            )
            latents, model_space, acceptance_rate = drawn.latents, drawn.samples, drawn.acceptance_rate
        else:
            if latents is None:
                latents = draw(check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE))
            else:
                latents = check_latents("latents", latents, self.latent_dim).to(self.device, self.generator.dtype)
            model_space = self._generate(latents, self._drawn_noise(latents, generator))
        samples = self.image_processor.postprocess(model_space, output_type)
        if not return_dict:
            return samples, latents
        images = samples if self.is_image_model else None
        return VEEGANPipelineOutput(samples=samples, images=images, latents=latents, acceptance_rate=acceptance_rate)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, output_type: str | None = None, noise: torch.Tensor | None = None) -> Any:
        r"""
        G(z) for given codes: the inverse of `invert`, so `decode(invert(x))` is the reconstruction `invert` found.

        Args:
            latents (`torch.Tensor` of shape `(batch, latent_dim)` or `(latent_dim,)`): the codes.
            output_type (`str`, *optional*): `"pil"`, `"np"` or `"pt"`; defaults to `"pil"` for images and `"pt"` for
                vectors.
            noise (`torch.Tensor` of shape `(batch, extra_noise_dim)`, *optional*): the generator's extra noise input
                (the authors' notebook's un-reconstructed eps), held at its mean 0 unless given; `invert` holds it
                at 0 too.

        Returns:
            The samples in the requested type.
        """
        output_type = check_choice("output_type", output_type or ("pil" if self.is_image_model else "pt"), OUTPUT_TYPES)
        latents = check_latents("latents", latents, self.latent_dim).to(self.device, self.generator.dtype)
        extra = self.generator.config.extra_noise_dim
        if noise is None:
            noise = self._zero_noise(latents)
        elif extra == 0:
            raise ValueError("noise was given, but this generator has no extra noise input (extra_noise_dim=0).")
        else:
            noise = check_latents("noise", noise, extra, rows=latents.shape[0]).to(self.device, latents.dtype)
        return self.image_processor.postprocess(self._generate(latents, noise), output_type)

    def _model_inputs(self, images: ImageInput, invert_colors: bool | str = False) -> torch.Tensor:
        x = self.image_processor.preprocess(images).to(self.device, self.generator.dtype)
        if not self.is_image_model:
            return x
        return apply_invert_colors(x, invert_colors, self.sample_brightness)

    @property
    def sample_brightness(self) -> float:
        """The mean brightness in [0, 1] of 64 of the model's samples (seed 0), measured once: the polarity inputs
        are checked against (light strokes on dark give about 0.13 for digits)."""
        cached = getattr(self, "_sample_brightness", None)
        if cached is None:
            with torch.no_grad():
                latents = torch.randn(64, self.latent_dim, generator=torch.Generator().manual_seed(0))
                samples = self._generate(latents.to(self.device, self.generator.dtype), self._zero_noise(latents))
            cached = self._sample_brightness = float((samples.float().mean() + 1) / 2)
        return cached

    @torch.no_grad()
    def encode(
        self,
        images: ImageInput,
        sample: bool = False,
        generator: torch.Generator | None = None,
        invert_colors: bool | str = False,
    ) -> torch.Tensor:
        r"""
        Amortized inversion: z = F(x), one forward pass of the reconstructor.

        Args:
            images: PIL images (converted and resized), numpy arrays `(N, H, W, C)` or tensors `(N, C, H, W)` with
                pixels in [0, 1] (uint8 in [0, 255]); for vector models, `(N, data_dim)` arrays or tensors.
            sample (`bool`, *optional*, defaults to `False`): draw from N(F(x), noise_std^2 I) instead of the mean.
            generator (`torch.Generator`, *optional*): for `sample=True`.
            invert_colors (`bool` or `"auto"`, *optional*, defaults to `False`): invert the images first (`True`),
                or only those that look like the negative of the model's samples (`"auto"`: dark strokes on white for
                a model of light strokes on black). With `False`, such images raise a warning.

        Returns:
            `torch.Tensor` of shape `(N, latent_dim)`.
        """
        check_generator(generator)
        if not isinstance(sample, bool):
            raise TypeError(f"sample must be True or False, got {sample!r}.")
        x = self._model_inputs(images, invert_colors)
        with _eval_mode(self.reconstructor):
            codes = self.reconstructor.sample_latents(x, generator=generator) if sample else self.reconstructor(x)
        return check_finite_output("the codes F(x)", codes)

    @torch.no_grad()
    def reconstruct(self, images: ImageInput, output_type: str | None = None, invert_colors: bool | str = False) -> Any:
        r"""
        G(F(x)): the samples as the model re-creates them from their codes (`decode(encode(images))`).

        Args:
            images: as in `encode`.
            output_type (`str`, *optional*): `"pil"`, `"np"` or `"pt"`; defaults to `"pil"` for images and `"pt"` for
                vectors, as `__call__` and `decode` do.
            invert_colors (`bool` or `"auto"`, *optional*, defaults to `False`): as in `encode`.
        """
        if output_type is not None:
            check_choice("output_type", output_type, OUTPUT_TYPES)
        return self.decode(self.encode(images, invert_colors=invert_colors), output_type=output_type)

    def invert(
        self,
        images: ImageInput,
        num_steps: int = 200,
        learning_rate: float = 0.05,
        latents: torch.Tensor | None = None,
        invert_colors: bool | str = False,
    ) -> torch.Tensor:
        r"""
        Inference via optimization: z* = argmin_z ||G(z) - x||^2, by Adam on z, started from F(x).

        Each sample is optimized independently (the loss is summed over the batch), the generator's weights are
        never touched, and its extra noise input is held at 0, as in `decode`.

        Args:
            images: as in `encode`.
            num_steps (`int`, *optional*, defaults to 200): Adam steps, at most 10,000; 0 returns F(x).
            learning_rate (`float`, *optional*, defaults to 0.05): Adam step size on z, in (0, 10].
            latents (`torch.Tensor` of shape `(N, latent_dim)`, *optional*): the starting point instead of F(x), e.g.
                random restarts.
            invert_colors (`bool` or `"auto"`, *optional*, defaults to `False`): as in `encode`.

        Returns:
            `torch.Tensor` of shape `(N, latent_dim)`: the best code found for each sample.
        """
        check_int("num_steps", num_steps, 0, MAX_INVERT_STEPS, hint=" 200 is usually enough.")
        check_number("learning_rate", learning_rate, 0.0, 10.0, open_low=True, hint=" Try 0.05.")
        x = self._model_inputs(images, invert_colors)
        if latents is None:
            with torch.no_grad(), _eval_mode(self.reconstructor):
                start = check_finite_output("the codes F(x)", self.reconstructor(x))
        else:
            start = check_latents("latents", latents, self.latent_dim, rows=x.shape[0])
        z = start.detach().to(self.device, torch.float32).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=learning_rate)
        reduce_dims = tuple(range(1, x.ndim))
        best_z, best_err = z.detach().clone(), torch.full((x.shape[0],), float("inf"), device=self.device)
        with _eval_mode(self.generator), torch.enable_grad():
            for step in range(num_steps + 1):
                decoded = self.generator(z.to(x.dtype), self._zero_noise(z.to(x.dtype)))
                err = (decoded.float() - x.float()).pow(2).sum(dim=reduce_dims)  # (N,)
                with torch.no_grad():  # keep each sample's best iterate: Adam does not descend monotonically
                    improved = err < best_err
                    best_err = torch.where(improved, err, best_err)
                    best_z[improved] = z[improved]
                if step == num_steps:
                    break
                # d/dz only: the generator's weights get no .grad
                (grad,) = torch.autograd.grad(err.sum(), z)
                z.grad = grad
                optimizer.step()
        return check_finite_output("the inverted codes", best_z).to(self.generator.dtype)

    @torch.no_grad()
    def interpolate(
        self,
        z0: torch.Tensor,
        z1: torch.Tensor,
        num_steps: int = 8,
        method: str = "slerp",
        output_type: str | None = None,
        return_dict: bool = True,
    ) -> VEEGANPipelineOutput | tuple:
        r"""
        Decodes `num_steps` codes from z0 to z1, both ends included.

        Args:
            z0 (`torch.Tensor` of shape `(latent_dim,)` or `(1, latent_dim)`): the first code, e.g. from `encode`.
            z1 (`torch.Tensor`): the last code.
            num_steps (`int`, *optional*, defaults to 8): frames, from 2 to 10,000.
            method (`str`, *optional*, defaults to `"slerp"`): `"slerp"` (spherical; a straight line where either
                end is the zero code, or the ends are parallel) or `"linear"`.
            output_type, return_dict: as in `__call__`.
        """
        check_int("num_steps", num_steps, 2, MAX_INTERPOLATION_STEPS, hint=" Both ends are included.")
        check_choice("method", method, ("slerp", "linear"))
        output_type = check_choice("output_type", output_type or ("pil" if self.is_image_model else "pt"), OUTPUT_TYPES)
        z0 = check_latents("z0", z0, self.latent_dim, rows=1)[0].float().to(self.device)
        z1 = check_latents("z1", z1, self.latent_dim, rows=1)[0].float().to(self.device)
        t = torch.linspace(0, 1, num_steps, device=self.device)[:, None]  # (num_steps, 1)
        latents = slerp(z0, z1, t) if method == "slerp" else (1 - t) * z0 + t * z1  # (num_steps, latent_dim)
        frames = self.decode(latents.to(self.generator.dtype), output_type=output_type)
        if not return_dict:
            return frames, latents
        return VEEGANPipelineOutput(samples=frames, images=frames if self.is_image_model else None, latents=latents)
