"""`VEEGAN`: a diffusers pipeline around the three networks. Loading, saving, sampling and inversion; no training."""

import contextlib
import inspect
import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from huggingface_hub import create_repo, snapshot_download, upload_folder
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .data import ImageTransform
from .model_card import create_model_card, read_model_card_metadata
from .modeling_veegan import VEEGANDiscriminator, VEEGANGenerator, VEEGANReconstructor

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
OUTPUT_TYPES = ("pil", "np", "pt")
ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | Sequence[PIL.Image.Image] | Sequence[np.ndarray]

_NETWORKS: dict[str, type[nn.Module]] = {
    "generator": VEEGANGenerator,
    "reconstructor": VEEGANReconstructor,
    "discriminator": VEEGANDiscriminator,
}


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
    """

    samples: Any
    images: Any = None
    latents: torch.Tensor | None = None


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


def _slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: keeps the norm typical of N(0, I) codes, which a straight line shrinks midway."""
    # z0, z1: (latent_dim,), t: (num_steps, 1)
    cos = torch.dot(z0 / z0.norm(), z1 / z1.norm()).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    if omega.abs() < 1e-4:  # nearly parallel: slerp degenerates to lerp
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def _load_network(cls: type[nn.Module], folder: Path, dtype: torch.dtype | None) -> nn.Module:
    """Builds `cls` from `folder/config.json` and strictly loads `folder/<WEIGHTS_NAME>`; errors name the file."""
    config_path, weights_path = folder / "config.json", folder / WEIGHTS_NAME
    if not config_path.is_file():
        raise ValueError(f"{config_path} is missing; a VEEGAN network folder holds config.json and {WEIGHTS_NAME}.")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{config_path} is not valid JSON ({err}); re-save the model with save_pretrained.") from err
    if config.get("_class_name", cls.__name__) != cls.__name__:
        raise ValueError(f"{config_path} describes a {config['_class_name']!r}, expected {cls.__name__!r}.")
    expected = set(inspect.signature(cls.__init__).parameters) - {"self"}
    given = {key for key in config if not key.startswith("_")}
    if given - expected or expected - given:
        raise ValueError(
            f"{config_path} does not match {cls.__name__}: unknown keys {sorted(given - expected)}, missing keys "
            f"{sorted(expected - given)}. Expected exactly {sorted(expected)}; re-save the model with this version."
        )
    try:
        model = cls.from_config(config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{config_path} holds an invalid value: {err}") from err

    if not weights_path.is_file():
        found = sorted(p.name for p in folder.iterdir())
        raise ValueError(f"{weights_path} is missing (found {found}); weights load from safetensors only.")
    try:
        state_dict = load_file(weights_path)
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(f"{weights_path} is truncated or corrupt ({err}); re-download or re-save it.") from err
    reference = model.state_dict()
    missing, unexpected = sorted(reference.keys() - state_dict.keys()), sorted(state_dict.keys() - reference.keys())
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs config {tuple(v.shape)}"
        for k, v in reference.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{weights_path} does not fit {config_path}: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"shape mismatches {mismatched[:5]}. The weights and the config come from different models."
        )
    model.load_state_dict(state_dict)
    if dtype is not None:
        model.to(dtype)
    return model.eval()


class VEEGAN(DiffusionPipeline):
    r"""
    A VEEGAN model: sample x = G(z), encode z = F(x), reconstruct G(F(x)), invert by optimization, interpolate.

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
        """`True` for `"dcgan"` networks (images), `False` for `"mlp"` ones (vectors)."""
        return self.generator.config.architecture == "dcgan"

    @property
    def latent_dim(self) -> int:
        """The size of a code z."""
        return self.generator.config.latent_dim

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        dtype: torch.dtype | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        token: str | bool | None = None,
        load_discriminator: bool = True,
    ) -> "VEEGAN":
        r"""
        Loads a pipeline saved by `save_pretrained`, from a local folder or a Hub repository.

        Weights are read from safetensors only, and every file is checked: a truncated weights file, a config key that
        is unknown or missing, or a shape mismatch raises a `ValueError` that names the file.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): a local folder or a Hub id such as
                `"org/veegan-celeba"`.
            dtype (`torch.dtype`, *optional*): cast the networks to this dtype, e.g. `torch.bfloat16`.
            revision (`str`, *optional*): branch, tag or commit of a Hub repository.
            local_files_only (`bool`, *optional*): only use the local Hub cache (also implied by `HF_HUB_OFFLINE=1`).
            cache_dir (`str` or `os.PathLike`, *optional*): Hub cache folder.
            token (`str` or `bool`, *optional*): Hub token for private repositories.
            load_discriminator (`bool`, *optional*, defaults to `True`): set `False` to skip D, which sampling and
                inversion never use.

        Example:

        ```py
        >>> from veegan_hf import VEEGAN

        >>> pipe = VEEGAN.from_pretrained("org/veegan-celeba")  # doctest: +SKIP
        ```
        """
        folder = Path(pretrained_model_name_or_path)
        if not folder.is_dir():
            folder = Path(_download(str(pretrained_model_name_or_path), revision, local_files_only, cache_dir, token))
        index_path = folder / "model_index.json"
        if not index_path.is_file():
            raise ValueError(f"{index_path} is missing: {folder} is not a VEEGAN pipeline saved by save_pretrained.")
        try:
            index = json.loads(index_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{index_path} is not valid JSON ({err}).") from err
        components: dict[str, nn.Module | None] = {}
        for name, network_cls in _NETWORKS.items():
            entry = index.get(name)
            if entry is None or entry[1] is None or (name == "discriminator" and not load_discriminator):
                if name not in cls._optional_components:
                    raise ValueError(f"{index_path} has no {name!r}; a VEEGAN pipeline needs one.")
                components[name] = None
                continue
            if entry[1] != network_cls.__name__:
                raise ValueError(f"{index_path} lists {name} as {entry[1]!r}, expected {network_cls.__name__!r}.")
            components[name] = _load_network(network_cls, folder / name, dtype)
        pipe = cls(**components)
        pipe.card_metadata = read_model_card_metadata(folder / "README.md")
        return pipe

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        dataset_name: str | None = None,
        metrics: dict[str, float] | None = None,
        training_config: dict[str, Any] | None = None,
        repo_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        r"""
        Saves `model_index.json`, one folder per network (config.json + safetensors) and a model card `README.md`.

        Args:
            save_directory (`str` or `os.PathLike`): the folder to write.
            dataset_name (`str`, *optional*): the training data, for the model card metadata.
            metrics (`dict[str, float]`, *optional*): measured evaluation metrics, for the card's model-index.
            training_config (`dict`, *optional*): the resolved training options, shown in the card.
            repo_id (`str`, *optional*): the Hub id, used in the card's usage snippet.
        """
        kwargs.pop("safe_serialization", None)  # safetensors is the only format this package reads
        super().save_pretrained(save_directory, safe_serialization=True, **kwargs)
        for key, value in (("dataset_name", dataset_name), ("metrics", metrics), ("training_config", training_config)):
            if value is not None:
                self.card_metadata[key] = value
        card = create_model_card(self, repo_id=repo_id, save_directory=save_directory, **self.card_metadata)
        card.save(os.path.join(save_directory, "README.md"))

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        dataset_name: str | None = None,
        metrics: dict[str, float] | None = None,
        training_config: dict[str, Any] | None = None,
    ) -> str:
        r"""
        Uploads the pipeline and its model card to the Hub (creating the repository if needed).

        Args:
            repo_id (`str`): the target repository, e.g. `"org/veegan-celeba"`.
            commit_message (`str`, *optional*): defaults to `"Upload VEEGAN pipeline"`.
            private (`bool`, *optional*): create the repository as private.
            token (`str`, *optional*): Hub token; defaults to the stored login.
            revision (`str`, *optional*): branch to push to.
            create_pr (`bool`, *optional*, defaults to `False`): open a pull request instead of committing.
            dataset_name, metrics, training_config: as in `save_pretrained`, for the model card.

        Returns:
            `str`: the URL of the commit.
        """
        repo_id = create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmpdir:
            self.save_pretrained(
                tmpdir, dataset_name=dataset_name, metrics=metrics, training_config=training_config, repo_id=repo_id
            )
            commit = upload_folder(
                repo_id=repo_id,
                folder_path=tmpdir,
                token=token,
                revision=revision,
                commit_message=commit_message or "Upload VEEGAN pipeline",
                create_pr=create_pr,
            )
        return str(commit)

    # ------------------------------------------------------------------ input and output conversion

    def _prepare_samples(self, samples: ImageInput) -> torch.Tensor:
        """User input -> the model's space: images `(batch, C, H, W)` in [-1, 1], vectors `(batch, data_dim)`."""
        g = self.generator.config
        if not self.is_image_model:
            x = torch.as_tensor(np.asarray(samples) if not torch.is_tensor(samples) else samples)
            x = x.unsqueeze(0) if x.ndim == 1 else x
            if x.ndim != 2 or x.shape[1] != g.data_dim or not x.is_floating_point():
                raise ValueError(
                    f"expected float vectors of shape (batch, {g.data_dim}), got {x.dtype} {tuple(x.shape)}."
                )
            return x.to(self.device, self.generator.dtype)

        expected = f"{g.num_channels}x{g.image_size}x{g.image_size}"
        if isinstance(samples, PIL.Image.Image) or (
            isinstance(samples, (list, tuple)) and samples and isinstance(samples[0], PIL.Image.Image)
        ):
            # PIL images are converted (mode, size) rather than rejected: that is what a user uploading a file wants
            transform = ImageTransform(resolution=g.image_size, num_channels=g.num_channels, center_crop=True)
            images = [samples] if isinstance(samples, PIL.Image.Image) else samples
            x = torch.stack([transform(img) for img in images])
        else:
            if isinstance(samples, (list, tuple)):
                if not samples:
                    raise ValueError("expected at least one image, got an empty list.")
                samples = np.stack([np.asarray(s) for s in samples])
            if isinstance(samples, np.ndarray):
                # numpy images are channels-last, as our "np" output: (H, W), (H, W, C) or (N, H, W, C)
                arr = (
                    samples[..., None]
                    if samples.ndim == 2 or (samples.ndim == 3 and g.num_channels == 1 and samples.shape[-1] != 1)
                    else samples
                )
                arr = arr[None] if arr.ndim == 3 else arr
                if arr.ndim != 4:
                    raise ValueError(f"expected numpy images (N, H, W, C) of {expected}, got shape {samples.shape}.")
                x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
            elif torch.is_tensor(samples):
                # tensors are channels-first, as our "pt" output: (C, H, W) or (N, C, H, W)
                x = samples[None] if samples.ndim == 3 else samples
                if x.ndim != 4:
                    raise ValueError(f"expected image tensors (N, C, H, W) of {expected}, got {tuple(samples.shape)}.")
            else:
                raise ValueError(f"expected PIL images, numpy arrays or tensors, got {type(samples).__name__}.")
            if x.shape[1:] != (g.num_channels, g.image_size, g.image_size):
                raise ValueError(
                    f"expected images of {expected} (channels x height x width), got "
                    f"{'x'.join(map(str, x.shape[1:]))}. Pass PIL images to have them converted and resized."
                )
            if x.dtype == torch.uint8:
                x = x.float() / 255.0
            elif not x.is_floating_point():
                raise ValueError(f"expected uint8 or float pixels, got {x.dtype}.")
            x = x.float()
            lo, hi = (v.item() for v in torch.aminmax(x))  # one pass over the pixels
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
                raise ValueError(
                    f"expected float pixels in [0, 1], got values in [{lo:.3g}, {hi:.3g}]. "
                    "Map [-1, 1] data with (x + 1) / 2, or [0, 255] data with x / 255."
                )
            x = x.clamp(0, 1) * 2 - 1  # [0, 1] -> the model's [-1, 1]
        return x.to(self.device, self.generator.dtype)

    def _postprocess(self, samples: torch.Tensor, output_type: str) -> Any:
        """Model space -> the requested type; images leave [-1, 1] for [0, 1]."""
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} is not supported; use one of {OUTPUT_TYPES}.")
        if not self.is_image_model:
            if output_type == "pil":
                raise ValueError("output_type='pil' needs an image model; this one makes vectors: use 'pt' or 'np'.")
            return samples.float().cpu().numpy() if output_type == "np" else samples
        images = ((samples.float() + 1) / 2).clamp(0, 1)  # (batch, C, H, W)
        if output_type == "pt":
            return images
        arr = images.permute(0, 2, 3, 1).cpu().numpy()  # (batch, H, W, C)
        if output_type == "np":
            return arr
        arr = (arr * 255).round().astype(np.uint8)
        return [PIL.Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arr]

    def _decode(self, latents: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """G(z), with the extra noise input (if any) at its mean, 0, unless given."""
        extra = self.generator.config.extra_noise_dim
        if extra > 0 and noise is None:
            noise = torch.zeros(latents.shape[0], extra, device=latents.device, dtype=latents.dtype)
        return self.generator(latents, noise)

    # ------------------------------------------------------------------ public API

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str | None = None,
        return_dict: bool = True,
        truncation: float | None = None,
    ) -> VEEGANPipelineOutput | tuple:
        r"""
        Draws samples x = G(z) with z ~ N(0, I).

        Args:
            batch_size (`int`, *optional*, defaults to 1): number of samples; ignored when `latents` is given.
            generator (`torch.Generator`, *optional*): makes the call reproducible.
            latents (`torch.Tensor` of shape `(batch, latent_dim)`, *optional*): codes to decode instead of drawing.
            output_type (`str`, *optional*): `"pil"`, `"np"` or `"pt"`; defaults to `"pil"` for images and `"pt"` for
                vectors.
            return_dict (`bool`, *optional*, defaults to `True`): return a `VEEGANPipelineOutput` instead of a tuple.
            truncation (`float`, *optional*): redraw every latent coordinate whose magnitude exceeds this value (the
                truncation trick): fewer outliers, less diversity.

        Returns:
            [`VEEGANPipelineOutput`] or `tuple`: `(samples, latents)` when `return_dict=False`.
        """
        output_type = output_type or ("pil" if self.is_image_model else "pt")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} is not supported; use one of {OUTPUT_TYPES}.")
        if truncation is not None and truncation <= 0:
            raise ValueError(f"truncation={truncation} must be positive (try 0.5 to 2.0), or None for no truncation.")
        dtype = self.generator.dtype
        if latents is None:
            if batch_size < 1:
                raise ValueError(f"batch_size={batch_size} must be >= 1.")
            latents = randn_tensor((batch_size, self.latent_dim), generator=generator, device=self.device, dtype=dtype)
            if truncation is not None:
                # resample out-of-range coordinates a bounded number of times, then clamp the rare leftovers
                for _ in range(32):
                    outside = latents.abs() > truncation
                    if not outside.any():
                        break
                    fresh = randn_tensor(latents.shape, generator=generator, device=self.device, dtype=dtype)
                    latents = torch.where(outside, fresh, latents)
                latents = latents.clamp(-truncation, truncation)
        else:
            latents = latents.reshape(-1, self.latent_dim).to(self.device, dtype)
        noise = None
        if self.generator.config.extra_noise_dim > 0:
            shape = (latents.shape[0], self.generator.config.extra_noise_dim)
            noise = randn_tensor(shape, generator=generator, device=self.device, dtype=dtype)
        with _eval_mode(self.generator):
            samples = self._postprocess(self.generator(latents, noise), output_type)
        if not return_dict:
            return samples, latents
        return VEEGANPipelineOutput(samples=samples, images=samples if self.is_image_model else None, latents=latents)

    @torch.no_grad()
    def encode(
        self, images: ImageInput, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""
        Amortized inversion: z = F(x), one forward pass of the reconstructor.

        Args:
            images: PIL images (converted and resized), numpy arrays `(N, H, W, C)` or tensors `(N, C, H, W)` with
                pixels in [0, 1] (uint8 in [0, 255]); for vector models, `(N, data_dim)` arrays or tensors.
            sample (`bool`, *optional*, defaults to `False`): draw from N(F(x), noise_std^2 I) instead of the mean.
            generator (`torch.Generator`, *optional*): for `sample=True`.

        Returns:
            `torch.Tensor` of shape `(N, latent_dim)`.
        """
        x = self._prepare_samples(images)
        with _eval_mode(self.reconstructor):
            if sample:
                return self.reconstructor.sample_latents(x, generator=generator)
            return self.reconstructor(x)

    @torch.no_grad()
    def reconstruct(self, images: ImageInput, output_type: str = "pt") -> Any:
        r"""
        G(F(x)): the samples as the model re-creates them from their codes.

        Args:
            images: as in `encode`.
            output_type (`str`, *optional*, defaults to `"pt"`): `"pt"`, `"np"` or `"pil"` (images only).
        """
        latents = self.encode(images)
        with _eval_mode(self.generator):
            return self._postprocess(self._decode(latents), output_type)

    def invert(
        self,
        images: ImageInput,
        num_steps: int = 200,
        learning_rate: float = 0.05,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""
        Inference via optimization: z* = argmin_z ||G(z) - x||^2, by Adam on z, started from F(x).

        Each sample is optimized independently (the loss is summed over the batch), and the generator's weights are
        never touched.

        Args:
            images: as in `encode`.
            num_steps (`int`, *optional*, defaults to 200): Adam steps; 0 returns F(x).
            learning_rate (`float`, *optional*, defaults to 0.05): Adam step size on z.
            latents (`torch.Tensor` of shape `(N, latent_dim)`, *optional*): the starting point instead of F(x), e.g.
                random restarts.

        Returns:
            `torch.Tensor` of shape `(N, latent_dim)`: the best code found for each sample.
        """
        if num_steps < 0:
            raise ValueError(f"num_steps={num_steps} must be >= 0.")
        x = self._prepare_samples(images)
        start = self.encode(images) if latents is None else latents.reshape(-1, self.latent_dim)
        if start.shape[0] != x.shape[0]:
            raise ValueError(f"latents has {start.shape[0]} rows for {x.shape[0]} samples.")
        z = start.detach().to(self.device, torch.float32).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=learning_rate)
        reduce_dims = tuple(range(1, x.ndim))
        best_z, best_err = z.detach().clone(), torch.full((x.shape[0],), float("inf"), device=self.device)
        with _eval_mode(self.generator), torch.enable_grad():
            for step in range(num_steps + 1):
                err = (self._decode(z.to(x.dtype)).float() - x.float()).pow(2).sum(dim=reduce_dims)  # (N,)
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
        return best_z.to(self.generator.dtype)

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
            num_steps (`int`, *optional*, defaults to 8): frames, at least 2.
            method (`str`, *optional*, defaults to `"slerp"`): `"slerp"` (spherical) or `"linear"`.
            output_type, return_dict: as in `__call__`.
        """
        if num_steps < 2:
            raise ValueError(f"num_steps={num_steps} must be >= 2 (both ends are included).")
        if method not in ("slerp", "linear"):
            raise ValueError(f"method={method!r} is not supported; use 'slerp' or 'linear'.")
        z0 = z0.reshape(-1).float().to(self.device)
        z1 = z1.reshape(-1).float().to(self.device)
        if z0.shape != (self.latent_dim,) or z1.shape != (self.latent_dim,):
            raise ValueError(f"z0 and z1 must hold {self.latent_dim} values each, got {z0.numel()} and {z1.numel()}.")
        t = torch.linspace(0, 1, num_steps, device=self.device)[:, None]  # (num_steps, 1)
        latents = _slerp(z0, z1, t) if method == "slerp" else (1 - t) * z0 + t * z1  # (num_steps, latent_dim)
        output_type = output_type or ("pil" if self.is_image_model else "pt")
        with _eval_mode(self.generator):
            frames = self._postprocess(self._decode(latents.to(self.generator.dtype)), output_type)
        if not return_dict:
            return frames, latents
        return VEEGANPipelineOutput(samples=frames, images=frames if self.is_image_model else None, latents=latents)


def _download(
    repo_id: str,
    revision: str | None,
    local_files_only: bool | None,
    cache_dir: str | os.PathLike | None,
    token: str | bool | None,
) -> str:
    """Hub id -> local snapshot folder (the cache when offline), with errors that say what to do."""
    try:
        return snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=bool(local_files_only),
            token=token,
            # exact paths: fnmatch's "*" also crosses "/", which would pull in checkpoint folders
            allow_patterns=["model_index.json", "README.md"]
            + [f"{name}/{file}" for name in _NETWORKS for file in ("config.json", WEIGHTS_NAME)],
        )
    except LocalEntryNotFoundError as err:
        raise ValueError(
            f"{repo_id!r} is neither a local folder nor in the Hugging Face cache, and the Hub cannot be reached "
            "(offline mode or no network). Pass a local folder, or download it once with network access."
        ) from err
    except RevisionNotFoundError as err:
        raise ValueError(
            f"{repo_id!r} has no revision {revision!r} on the Hub (pass a branch, tag or commit)."
        ) from err
    except GatedRepoError as err:  # before RepositoryNotFoundError, its parent class
        raise ValueError(f"{repo_id!r} is gated: accept its conditions on the Hub, then pass token=.") from err
    except (RepositoryNotFoundError, EntryNotFoundError) as err:
        raise ValueError(f"{repo_id!r} was not found on the Hub (or is private: pass token=).") from err
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        raise ValueError(f"the Hub refused {repo_id!r} (HTTP {status}): check token= or your login. {err}") from err
