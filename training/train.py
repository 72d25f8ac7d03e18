"""Train VEEGAN with Accelerate: `accelerate launch training/train.py [--config training/configs/NAME.yaml] [--flag v]`.

TrainingConfig -> data -> networks -> one `accelerator.prepare` -> the loop -> `save_pretrained` / `push_to_hub`.
Runs unchanged on one CPU, several CPU processes (gloo), many GPUs and several machines: every rank runs the same
steps; only I/O and logging are rank-0 only.
"""

import argparse
import contextlib
import dataclasses
import gc
import importlib.util
import json
import logging
import math
import os
import shutil
import sys
import time
import types
import typing
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from veegan_hf import VEEGAN, VEEGANDiscriminator, VEEGANGenerator, VEEGANReconstructor
from veegan_hf.data import MIXTURE_NAMES, ImageTransform, get_mixture, mnist_pixel_values, mnist_split
from veegan_hf.evaluation import NUM_EVAL_SAMPLES, draw_samples, evaluate
from veegan_hf.objectives import OBJECTIVES, StepLosses, compute_losses

logger = logging.getLogger("veegan_hf.train")
BUILTIN_DATASETS = (*MIXTURE_NAMES, "mnist", "stacked_mnist")
CHECKPOINT_PREFIX = "checkpoint-"
JOINT_OBJECTIVES = ("veegan", "ali")  # their D judges (z, x) pairs; the others judge x alone


class ConfigError(ValueError):
    """A bad option: reported as one line naming the value and the way out, before any training starts."""


@dataclass
class TrainingConfig:
    """Every command-line flag is a field; `--config NAME.yaml` presets any of them and flags override the preset."""

    # data
    dataset_name: str = "ring"  # a built-in name, a Hub id, or a local imagefolder / parquet / save_to_disk path
    dataset_config_name: str | None = None  # the Hub dataset's configuration, if it has several
    train_data_dir: str | None = None  # a local imagefolder (alternative to dataset_name)
    image_column: str | None = None  # detected when omitted
    resolution: int | None = None  # image side; None: 28 for the digit data, 64 for Hub/local image data
    num_channels: int | None = None  # 1 or 3; None: 1 for mnist, 3 otherwise
    center_crop: bool = True  # crop the square from the middle (False: a random square)
    random_flip: bool = False  # horizontal flips; off by default because digits are not symmetric
    dataloader_num_workers: int = 0  # image decoding workers; 0 keeps CI single-process
    cache_dir: str | None = None  # where `datasets` caches Hub downloads

    # networks (shared by every objective so that only the objective differs)
    architecture: str | None = None  # None: "mlp" for vector data, "dcgan" for images
    latent_dim: int = 16  # small codes are easy for F to recover; the notebook's 254 needs far more steps
    hidden_dim: int = 128  # G and F width, the notebook's
    num_hidden_layers: int = 2  # G and F depth, the notebook's
    discriminator_hidden_dim: int = 128  # D width
    discriminator_num_hidden_layers: int = 1  # D's joint head depth, the notebook's
    base_channels: int = 64  # DCGAN width at the finest stage
    discriminator_sample_scale: float = 1.0  # D sees x times this: 10 resolves the ring's std-0.02 modes sharply
    discriminator_marginal_head: bool = False  # joint D: add a logit from x alone (veegan and ali only)
    discriminator_spectral_norm: bool = False  # W / sigma_max(W) in every D layer: a Lipschitz-bounded D
    discriminator_base_channels: int | None = None  # D's conv width; None: base_channels (D capacity vs G's)
    extra_noise_dim: int = 0  # the notebook's un-reconstructed extra noise input to G
    reconstructor_noise_std: float = 1.0  # p_theta(z|x) = N(F(x), s^2 I): the noise that keeps D from reading z alone
    symmetric_latent_noise: bool = False  # veegan: the same noise on generated pairs' z, so |z| tells D nothing
    activation: str = "relu"  # G and F hidden activation

    # objective
    objective: str = "veegan"  # veegan | gan | ali | unrolled | pacgan: the baselines share the networks
    adversarial_loss: str = "paper"  # "paper" (raw logit, Algorithm 1) or "non_saturating"
    discriminator_loss: str = "logistic"  # "logistic" (Algorithm 1) or "hinge"; gan-family G losses follow it
    r1_weight: float = 0.0  # gamma of the R1 penalty on D's data inputs (0: off); needs a double backward
    reconstruction_weight: float = 1.0  # lambda on ||z - F(G(z))||^2; the paper's is 1
    pack_size: int = 2  # PacGAN's m
    joint_pack_size: int = 1  # veegan: D judges this many (z, x) pairs at once; 1 is Algorithm 1
    unrolled_steps: int = 5  # Unrolled GAN's k

    # optimization
    train_batch_size: int = 500  # per process; the notebook's 500
    max_train_steps: int = 2000  # optimizer steps
    max_train_seconds: float | None = None  # stop early after this much training wall time (None: no limit)
    learning_rate: float = 1e-3  # G and F, the notebook's
    discriminator_learning_rate: float | None = None  # None: same as learning_rate
    adam_beta1: float = 0.5  # the notebook's; 0.5 damps GAN oscillations
    adam_beta2: float = 0.999
    lr_scheduler: str = "constant"  # constant | cosine | linear: decay to 0 over the run
    lr_warmup_steps: int = 0
    lr_decay_start: float = 0.0  # linear/cosine decay begins after this fraction of the run (0.5: the last half)
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"  # no | fp16 | bf16; fp16 is a no-op on CPU (warned)
    use_ema: bool = True  # an EMA generator is used for samples, evaluation and export
    ema_decay: float = 0.999
    compile: bool = False  # torch.compile the step's forward: one graph (and one backward graph) per step
    seed: int = 0

    # checkpoints, logging, evaluation
    output_dir: str = "veegan-output"
    checkpointing_steps: int | None = None  # save every N steps (None: only at the end)
    checkpoints_total_limit: int | None = 2  # keep the newest N checkpoints
    resume_from_checkpoint: str | None = None  # "latest" or a checkpoint folder
    report_to: str = "tensorboard"  # tensorboard | wandb | none
    logging_steps: int = 50  # losses are read back from the device only this often
    validation_steps: int | None = 500  # samples, plot and metrics every N steps (None: only at the end)
    num_validation_samples: int | None = None  # built-in data, mid-run metrics only (None: min(paper's, 2,500))
    eval_at_end: bool = True  # the full-protocol evaluation written to metrics.json (the final figure is always made)

    # hub
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_token: str | None = None

    extra: dict = field(default_factory=dict, repr=False)  # not a flag: derived values written for the record


# ----------------------------------------------------------------------------------------------------------- config

_CHOICES = {
    "architecture": (None, "mlp", "dcgan"),
    "objective": OBJECTIVES,
    "adversarial_loss": ("paper", "non_saturating"),
    "discriminator_loss": ("logistic", "hinge"),
    "lr_scheduler": ("constant", "cosine", "linear"),
    "mixed_precision": ("no", "fp16", "bf16"),
    "report_to": ("tensorboard", "wandb", "none"),
    "num_channels": (None, 1, 3),
}
_POSITIVE = (
    "latent_dim",
    "hidden_dim",
    "discriminator_hidden_dim",
    "base_channels",
    "train_batch_size",
    "max_train_steps",
    "learning_rate",
    "gradient_accumulation_steps",
    "logging_steps",
    "pack_size",
    "joint_pack_size",
    "unrolled_steps",
    "discriminator_num_hidden_layers",
)
_NON_NEGATIVE = (
    "num_hidden_layers",
    "extra_noise_dim",
    "reconstructor_noise_std",
    "reconstruction_weight",
    "lr_warmup_steps",
    "dataloader_num_workers",
    "r1_weight",
)


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TrainingConfig) if f.name != "extra"}


def _base_type(annotation) -> type:
    """`int | None` -> int."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def _coerce(name: str, value, source: str):
    """Casts a preset or flag value to the field's type, with an error naming the field and the source."""
    kind = _base_type(TrainingConfig.__annotations__[name])
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and kind is not str):
        return None
    try:
        if kind is bool:
            text = str(value).lower()
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text in ("true", "1", "yes")
        if kind is int:
            number = float(value)  # accepts "1e4" and 10000.0, rejects 2.5
            if not number.is_integer():
                raise ValueError
            return int(number)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {name}={value!r} is not a valid {kind.__name__}.") from None


def pack_option(config: TrainingConfig) -> tuple[str, int]:
    """(the option, its value) for how many samples D judges at once: PacGAN's m, VEEGAN's pairs, else 1."""
    name = {"pacgan": "pack_size", "veegan": "joint_pack_size"}.get(config.objective)
    return (name, getattr(config, name)) if name else ("", 1)


def validate(config: TrainingConfig) -> None:
    """Rejects bad values before anything is loaded or trained."""
    for name, choices in _CHOICES.items():
        if getattr(config, name) not in choices:
            raise ConfigError(f"--{name} {getattr(config, name)!r} is not supported; choose from {choices}.")
    for name in _POSITIVE:
        if getattr(config, name) <= 0:
            raise ConfigError(f"--{name} {getattr(config, name)} must be > 0.")
    for name in _NON_NEGATIVE:
        if getattr(config, name) < 0:
            raise ConfigError(f"--{name} {getattr(config, name)} must be >= 0.")
    for name in (
        "checkpointing_steps",
        "checkpoints_total_limit",
        "validation_steps",
        "num_validation_samples",
        "resolution",
        "discriminator_learning_rate",
        "discriminator_base_channels",
        "max_train_seconds",
    ):
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise ConfigError(f"--{name} {value} must be > 0 (or omitted).")
    if not 0 <= config.lr_decay_start < 1:
        raise ConfigError(f"--lr_decay_start {config.lr_decay_start} must be a fraction of the run in [0, 1).")
    if config.discriminator_sample_scale <= 0:
        raise ConfigError(f"--discriminator_sample_scale {config.discriminator_sample_scale} must be > 0.")
    if not 0 <= config.ema_decay < 1:
        raise ConfigError(f"--ema_decay {config.ema_decay} must be in [0, 1), e.g. 0.999.")
    if not 0 <= config.adam_beta1 < 1 or not 0 <= config.adam_beta2 < 1:
        raise ConfigError(f"--adam_beta1/--adam_beta2 ({config.adam_beta1}, {config.adam_beta2}) must be in [0, 1).")
    name, size = pack_option(config)
    if config.train_batch_size % size:
        raise ConfigError(
            f"--train_batch_size {config.train_batch_size} is not a multiple of --{name} {size}: D judges whole packs."
        )
    if config.symmetric_latent_noise and config.objective != "veegan":
        raise ConfigError(
            f"--symmetric_latent_noise applies to --objective veegan, whose F is not trained adversarially; "
            f"--objective {config.objective} does not use it. Drop the option."
        )
    if config.discriminator_marginal_head and config.objective not in JOINT_OBJECTIVES:
        raise ConfigError(
            f"--discriminator_marginal_head needs a joint discriminator, but --objective {config.objective} already "
            "judges x alone. Use --objective veegan or ali, or drop the option."
        )
    if config.compile and config.objective == "unrolled":
        raise ConfigError(
            "--compile cannot run --objective unrolled: its generator loss differentiates through D's unrolled SGD "
            "steps (a double backward), which torch.compile's autograd does not support. Drop --compile."
        )
    if config.compile and config.r1_weight > 0:
        raise ConfigError(
            f"--compile cannot run --r1_weight {config.r1_weight}: the R1 penalty differentiates D's gradient (a "
            "double backward), which torch.compile's autograd does not support. Drop --compile or --r1_weight."
        )
    if config.push_to_hub and not config.hub_model_id:
        raise ConfigError("--push_to_hub needs --hub_model_id ORG/NAME.")
    # accelerate drops a tracker whose package is missing without a word; a run that logs nothing is worse than a stop
    if config.report_to != "none" and importlib.util.find_spec(config.report_to) is None:
        raise ConfigError(
            f"--report_to {config.report_to} needs the {config.report_to} package: pip install {config.report_to}, "
            "or pass --report_to none."
        )
    if config.dataset_name in MIXTURE_NAMES and config.architecture == "dcgan" and not config.train_data_dir:
        raise ConfigError(f"--dataset_name {config.dataset_name} is vector data: use --architecture mlp.")


def parse_config(argv: list[str] | None = None) -> TrainingConfig:
    """Defaults <- the `--config` preset <- command-line flags."""
    parser = argparse.ArgumentParser(
        description="Train VEEGAN with Accelerate.", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--config",
        default=None,
        help="a YAML preset, e.g. training/configs/grid.yaml; defaults to the preset of a built-in --dataset_name",
    )
    for name, f in _fields().items():
        kind = _base_type(f.type if not isinstance(f.type, str) else TrainingConfig.__annotations__[name])
        if kind is bool:  # `--use_ema` alone means true; `--use_ema false` turns a preset's option off
            parser.add_argument(f"--{name}", nargs="?", const="true", default=None, help=f"(default: {f.default})")
        else:
            parser.add_argument(f"--{name}", type=str, default=None, help=f"(default: {f.default})")
    args = parser.parse_args(argv)

    values: dict = {}
    # a built-in dataset brings its tuned preset unless --config names another: `train.py` alone is the ring recipe
    dataset = args.dataset_name or (None if args.config or args.train_data_dir else TrainingConfig.dataset_name)
    preset = args.config or (dataset if dataset in BUILTIN_DATASETS else None)
    if preset:
        values.update(load_preset(preset))
    for name in _fields():
        given = getattr(args, name)
        if given is not None:
            values[name] = _coerce(name, given, "command line")
    config = TrainingConfig(**values)
    validate(config)
    return config


def load_preset(path: str | Path) -> dict:
    """Reads a YAML preset; a name without a path means `training/configs/NAME.yaml`."""
    import yaml

    path = Path(path)
    if not path.suffix and not path.exists():
        path = Path(__file__).parent / "configs" / f"{path}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in (Path(__file__).parent / "configs").glob("*.yaml"))
        raise ConfigError(f"--config {path} does not exist; presets: {available}.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"--config {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path} must be a mapping of option: value.")
    unknown = sorted(set(raw) - set(_fields()))
    if unknown:
        raise ConfigError(f"--config {path}: unknown options {unknown}; see `train.py --help` for the valid ones.")
    return {k: _coerce(k, v, str(path)) for k, v in raw.items()}


# ------------------------------------------------------------------------------------------------------------- data


class BatchSource:
    """Yields `(batch, *sample_shape)` tensors on the training device, forever. Subclasses decide where they come from.

    Built-in data is generated or gathered on the device in whole batches (no per-item Python work), from each rank's
    own random stream or shard; Hub/local image data goes through a DataLoader that Accelerate shards.
    """

    sample_shape: tuple[int, ...]
    dataloader: torch.utils.data.DataLoader | None = None

    def batches(self, device: torch.device, start_step: int) -> Iterator[torch.Tensor]:
        raise NotImplementedError


class MixtureSource(BatchSource):
    """Fresh mixture samples each step from the global RNG (seeded per rank, and saved in checkpoints)."""

    def __init__(self, name: str, batch_size: int):
        self.mixture, self.batch_size = get_mixture(name), batch_size
        self.sample_shape = (self.mixture.data_dim,)

    def batches(self, device, start_step):
        while True:
            yield self.mixture.sample(self.batch_size, device=device)  # (batch, data_dim), drawn on the device


class DigitSource(BatchSource):
    """MNIST digits (`mnist`) or freshly stacked triples (`stacked_mnist`) from this rank's shard of the digit pool."""

    def __init__(self, name: str, batch_size: int, resolution: int, rank: int, world_size: int):
        images, labels = mnist_split("train")
        # disjoint shards: rank r owns digits r, r + world_size, ...
        self.images, self.labels = images[rank::world_size], labels[rank::world_size]
        self.stacked, self.batch_size, self.resolution = name == "stacked_mnist", batch_size, resolution
        self.sample_shape = (3 if self.stacked else 1, resolution, resolution)

    def batches(self, device, start_step):
        pool = mnist_pixel_values(self.images, self.resolution).to(device)  # (N, 1, H, W) in [-1, 1]
        channels = 3 if self.stacked else 1
        while True:
            index = torch.randint(pool.shape[0], (self.batch_size, channels), device=device)
            yield pool[index, 0]  # (batch, channels, H, W): one independent digit per channel


class DataLoaderSource(BatchSource):
    """A Hugging Face dataset of images (Hub id, imagefolder, parquet or save_to_disk)."""

    def __init__(self, config: TrainingConfig):
        import datasets

        dataset = load_image_dataset(config)
        from veegan_hf.data import find_image_column

        column = find_image_column(dataset.column_names, dataset.features, config.image_column)
        if len(dataset) == 0:
            raise ConfigError(f"dataset {config.dataset_name or config.train_data_dir!r} has no rows.")
        transform = ImageTransform(config.resolution, config.num_channels, config.center_crop, config.random_flip)
        if not isinstance(dataset.features.get(column), datasets.Image):
            dataset = dataset.cast_column(column, datasets.Image())

        def to_pixels(examples: dict) -> dict:
            return {"pixel_values": [transform(image) for image in examples[column]]}

        dataset = dataset.with_transform(to_pixels, columns=[column])
        if len(dataset) < config.train_batch_size:
            raise ConfigError(
                f"dataset has {len(dataset)} images, fewer than --train_batch_size {config.train_batch_size}."
            )
        self.dataloader = torch.utils.data.DataLoader(
            dataset,
            batch_size=config.train_batch_size,
            shuffle=True,
            drop_last=True,  # equal batches on every rank keep DDP in step
            num_workers=config.dataloader_num_workers,
            collate_fn=lambda rows: torch.stack([r["pixel_values"] for r in rows]),
            persistent_workers=config.dataloader_num_workers > 0,
        )
        self.sample_shape = (config.num_channels, config.resolution, config.resolution)
        self.accelerator = None  # set by train(): skipping batches on resume needs it

    def batches(self, device, start_step):
        epoch_length = len(self.dataloader)
        epoch, skip = divmod(start_step, epoch_length)
        while True:
            if hasattr(self.dataloader, "set_epoch"):
                self.dataloader.set_epoch(epoch)
            loader = self.accelerator.skip_first_batches(self.dataloader, skip) if skip else self.dataloader
            yield from loader
            epoch, skip = epoch + 1, 0


def load_image_dataset(config: TrainingConfig):
    """Hub id, or a local imagefolder / parquet / save_to_disk folder -> a `datasets.Dataset` (the train split)."""
    import datasets

    name = config.train_data_dir or config.dataset_name
    path = Path(name)
    try:
        if path.exists():
            if (
                (path / "dataset_info.json").is_file()
                or (path / "state.json").is_file()
                or (path / "dataset_dict.json").is_file()
            ):
                dataset = datasets.load_from_disk(str(path))
            elif path.suffix == ".parquet" or any(path.rglob("*.parquet")):
                files = [str(path)] if path.is_file() else sorted(str(p) for p in path.rglob("*.parquet"))
                dataset = datasets.load_dataset("parquet", data_files=files, cache_dir=config.cache_dir)
            else:
                dataset = datasets.load_dataset("imagefolder", data_dir=str(path), cache_dir=config.cache_dir)
        else:
            dataset = datasets.load_dataset(name, config.dataset_config_name, cache_dir=config.cache_dir)
    except FileNotFoundError as err:
        raise ConfigError(
            f"--dataset_name {name!r}: no such local folder or file, and not found on the Hub ({err})."
        ) from None
    except Exception as err:  # datasets raises many types (ConnectionError, DatasetNotFoundError, ValueError ...)
        raise ConfigError(
            f"--dataset_name {name!r} could not be loaded: {type(err).__name__}: {err}. Built-in offline datasets: "
            f"{BUILTIN_DATASETS}."
        ) from None
    if isinstance(dataset, datasets.DatasetDict):
        split = "train" if "train" in dataset else next(iter(dataset))
        dataset = dataset[split]
    return dataset


def resolve_data_options(config: TrainingConfig) -> None:
    """Fills the data-dependent defaults (architecture, resolution, channels) in place."""
    if config.train_data_dir:
        config.dataset_name = config.train_data_dir  # the folder is the dataset; records it for the card and metrics
    name = config.dataset_name
    if name in MIXTURE_NAMES:
        config.architecture = config.architecture or "mlp"
        config.extra["data_dim"] = get_mixture(name).data_dim
        return
    config.architecture = config.architecture or "dcgan"
    if config.architecture == "mlp":
        raise ConfigError(f"--dataset_name {name!r} holds images: use --architecture dcgan (or omit it).")
    digits = name in ("mnist", "stacked_mnist") and not config.train_data_dir
    config.resolution = config.resolution or (28 if digits else 64)
    config.num_channels = config.num_channels or (1 if name == "mnist" else 3)
    if digits and config.resolution not in (28, 32):
        raise ConfigError(f"--resolution {config.resolution}: the digit datasets come at 28 or 32.")
    if (name == "stacked_mnist" and config.num_channels != 3) or (name == "mnist" and config.num_channels != 1):
        raise ConfigError(f"--num_channels {config.num_channels} does not fit {name}.")
    if config.resolution not in (28, 32, 64):
        raise ConfigError(f"--resolution {config.resolution}: the DCGAN networks support 28, 32 or 64.")


def build_source(config: TrainingConfig, rank: int, world_size: int) -> BatchSource:
    if config.dataset_name in MIXTURE_NAMES:
        return MixtureSource(config.dataset_name, config.train_batch_size)
    if config.dataset_name in ("mnist", "stacked_mnist") and not config.train_data_dir:
        return DigitSource(config.dataset_name, config.train_batch_size, config.resolution, rank, world_size)
    return DataLoaderSource(config)


# --------------------------------------------------------------------------------------------------------- networks


def build_networks(config: TrainingConfig) -> tuple[VEEGANGenerator, VEEGANReconstructor, VEEGANDiscriminator]:
    shape = dict(
        architecture=config.architecture,
        latent_dim=config.latent_dim,
        data_dim=config.extra.get("data_dim"),
        image_size=config.resolution,
        num_channels=config.num_channels,
        base_channels=config.base_channels,
    )
    generator = VEEGANGenerator(
        **shape,
        hidden_dim=config.hidden_dim,
        num_hidden_layers=config.num_hidden_layers,
        extra_noise_dim=config.extra_noise_dim,
        activation=config.activation,
    )
    reconstructor = VEEGANReconstructor(
        **shape,
        hidden_dim=config.hidden_dim,
        num_hidden_layers=config.num_hidden_layers,
        noise_std=config.reconstructor_noise_std,
        activation=config.activation,
    )
    # GAN-style objectives judge x alone; PacGAN judges pack_size samples at once, VEEGAN joint_pack_size pairs
    joint = config.objective in JOINT_OBJECTIVES
    pack_size = pack_option(config)[1]
    discriminator = VEEGANDiscriminator(
        **{
            **shape,
            "latent_dim": config.latent_dim if joint else 0,
            "base_channels": config.discriminator_base_channels or config.base_channels,
        },
        hidden_dim=config.discriminator_hidden_dim,
        num_hidden_layers=config.discriminator_num_hidden_layers,
        pack_size=pack_size,
        sample_scale=config.discriminator_sample_scale,
        marginal_head=config.discriminator_marginal_head,
        spectral_norm=config.discriminator_spectral_norm,
    )
    return generator, reconstructor, discriminator


class EMA(nn.Module):
    """An exponential moving average of the generator, with a warm-up so early steps are not frozen in."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        import copy

        self.model = copy.deepcopy(model).requires_grad_(False).eval()
        self.decay = decay
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))  # saved in checkpoints
        self._updates: int | None = None  # host copy, read from the buffer once (after a resume) to avoid syncs
        self._param_lists: tuple[list, list] | None = None
        self._buffer_lists: tuple[list, list] = ([], [])

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if self._updates is None:
            self._updates = int(self.num_updates)
        self._updates += 1
        self.num_updates.fill_(self._updates)
        # decay_t = min(decay, (1 + t) / (10 + t)): the average forgets its random initialization quickly
        t = self._updates
        decay = min(self.decay, (1 + t) / (10 + t))
        if self._param_lists is None:  # the tensors are updated in place: collect them once
            self._param_lists = (list(self.model.parameters()), list(model.parameters()))
            self._buffer_lists = (list(self.model.buffers()), list(model.buffers()))
        torch._foreach_lerp_(self._param_lists[0], self._param_lists[1], 1 - decay)
        if self._buffer_lists[0]:
            torch._foreach_copy_(
                self._buffer_lists[0], self._buffer_lists[1]
            )  # BatchNorm statistics are copied, not averaged


# ------------------------------------------------------------------------------------------------------ checkpoints


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. Half-written ones keep a temporary name and never match."""
    found = [p for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[11:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def resolve_resume(config: TrainingConfig) -> Path | None:
    if not config.resume_from_checkpoint:
        return None
    if config.resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(Path(config.output_dir))
        return checkpoints[-1] if checkpoints else None  # a fresh start, as diffusers' scripts do
    path = Path(config.resume_from_checkpoint)
    if not path.is_dir() and (Path(config.output_dir) / path).is_dir():
        path = Path(config.output_dir) / path
    if not path.is_dir() or not path.name[len(CHECKPOINT_PREFIX) :].isdigit():
        raise ConfigError(
            f"--resume_from_checkpoint {config.resume_from_checkpoint!r} is not a checkpoint-N folder; "
            f"found {[p.name for p in list_checkpoints(Path(config.output_dir))]}. Use 'latest' to pick the newest."
        )
    return path


def save_extra_state(folder: Path, scheduler, ema: "EMA | None") -> None:
    """The scheduler as JSON and the EMA generator as safetensors: nothing that needs unpickling to resume."""
    (folder / "scheduler.json").write_text(json.dumps(scheduler.state_dict(), default=lambda _: None))
    if ema is not None:
        save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, folder / "ema.safetensors")


def load_extra_state(folder: Path, scheduler, ema: "EMA | None") -> None:
    scheduler.load_state_dict(json.loads((folder / "scheduler.json").read_text()))
    if ema is not None:
        if not (folder / "ema.safetensors").is_file():
            raise ConfigError(f"{folder} holds no EMA weights; resume with --use_ema false, or from another run.")
        ema.load_state_dict(load_file(folder / "ema.safetensors"))


def save_checkpoint(accelerator, output_dir: Path, step: int, limit: int | None, export: Callable) -> Path:
    """`save_state` into a temporary folder, then one atomic rename: a kill leaves the previous checkpoint intact."""
    final = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    partial = output_dir / f".{CHECKPOINT_PREFIX}{step}.partial"
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    if accelerator.is_main_process:
        export(partial)
        if final.exists():
            _delete_checkpoint(final)
        os.replace(partial, final)
        if limit is not None:
            for old in list_checkpoints(output_dir)[:-limit]:
                _delete_checkpoint(old)
        for stale in output_dir.glob(f".{CHECKPOINT_PREFIX}*.deleting"):  # left by a kill during an earlier delete
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _delete_checkpoint(folder: Path) -> None:
    # rmtree removes file by file, so a kill mid-way would leave a checkpoint-N that looks complete and is not;
    # renaming first hides it from `list_checkpoints` in one atomic step
    trash = folder.with_name(f".{folder.name}.deleting")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(folder, trash)
    shutil.rmtree(trash)


# ------------------------------------------------------------------------------------------------------------- loop


class NonFiniteLossError(RuntimeError):
    pass


def _lr_lambda(config: TrainingConfig) -> Callable[[int], float]:
    warmup, total = config.lr_warmup_steps, config.max_train_steps
    decay_from = max(warmup, int(config.lr_decay_start * total))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if step < decay_from:
            return 1.0
        progress = (step - decay_from) / max(1, total - decay_from)
        if config.lr_scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if config.lr_scheduler == "linear":
            return max(0.0, 1 - progress)
        return 1.0

    return factor


def train(config: TrainingConfig) -> VEEGAN | None:
    """Runs the whole job. Returns the exported pipeline on the main process (None elsewhere)."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

    output_dir = Path(config.output_dir)
    log_with = None if config.report_to == "none" else config.report_to
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=config.mixed_precision,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    device = accelerator.device
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > accelerator.num_processes:
        # `accelerate launch --multi_gpu` without GPUs starts processes that each train alone, duplicating the work
        raise ConfigError(
            f"{launched} processes were launched but Accelerate sees {accelerator.num_processes}: on CPU, set "
            "ACCELERATE_USE_CPU=1 (ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N ...)."
        )
    if config.mixed_precision == "fp16" and device.type == "cpu":
        warnings.warn(
            "--mixed_precision fp16 does nothing on CPU (no autocast, no GradScaler): the run is float32. "
            "Use --mixed_precision bf16 on CPU, or fp16 on a GPU.",
            stacklevel=1,
        )
    resolve_data_options(config)
    resume_path = resolve_resume(config)

    # identical initial weights on every rank; then per-rank streams for latents, noise and data
    set_seed(config.seed)
    generator, reconstructor, discriminator = build_networks(config)
    set_seed(config.seed, device_specific=True)
    source = build_source(config, accelerator.process_index, accelerator.num_processes)
    ema = EMA(generator, config.ema_decay).to(device) if config.use_ema else None

    d_lr = config.discriminator_learning_rate or config.learning_rate
    optimizer = torch.optim.Adam(
        [
            {"params": generator.parameters(), "lr": config.learning_rate},
            {"params": reconstructor.parameters(), "lr": config.learning_rate},
            {"params": discriminator.parameters(), "lr": d_lr},
        ],
        betas=(config.adam_beta1, config.adam_beta2),
        # fused: one kernel updates every tensor; foreach is the next best, where fused is not built (e.g. XPU)
        **({"fused": True} if accelerator.device.type in ("cpu", "cuda") else {"foreach": True}),
    )
    # one prepare call for the networks, the optimizer and the dataloader (only Hub/local image data has one)
    prepared = accelerator.prepare(
        generator,
        reconstructor,
        discriminator,
        optimizer,
        *([source.dataloader] if source.dataloader is not None else []),
    )
    generator, reconstructor, discriminator, optimizer = prepared[:4]
    if source.dataloader is not None:
        source.dataloader, source.accelerator = prepared[4], accelerator
    # not prepared: Accelerate would step it num_processes times per step; it is stepped once per optimizer step.
    # Its state and the EMA's are saved as JSON and safetensors by save_checkpoint, not by Accelerate's
    # register_for_checkpointing, which would unpickle them on resume (weights_only=False).
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer.optimizer, _lr_lambda(config))
    raw = {
        name: accelerator.unwrap_model(m)
        for name, m in (("generator", generator), ("reconstructor", reconstructor), ("discriminator", discriminator))
    }

    first_step = 0
    if resume_path is not None:
        accelerator.load_state(str(resume_path))
        load_extra_state(resume_path, scheduler, ema)
        first_step = int(resume_path.name[len(CHECKPOINT_PREFIX) :])
        logger.info("resumed from %s at step %d", resume_path, first_step)

    resolved = {
        **dataclasses.asdict(config),
        "num_processes": accelerator.num_processes,
        "effective_batch_size": config.train_batch_size
        * accelerator.num_processes
        * config.gradient_accumulation_steps,
    }
    resolved.pop("hub_token")
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "training_config.json").write_text(json.dumps(resolved, indent=2, default=str))
        (output_dir / "samples").mkdir(exist_ok=True)
    if log_with is not None:
        hparams = {
            k: v if isinstance(v, (bool, str, int, float)) or v is None else str(v)
            for k, v in resolved.items()
            if k != "extra"
        }
        accelerator.init_trackers("veegan", config=hparams)

    def export_pipeline() -> VEEGAN:
        """The pipeline to sample from and save: EMA generator when EMA is on, float32, on this device."""
        gen = ema.model if ema is not None else raw["generator"]
        return VEEGAN(generator=gen, reconstructor=raw["reconstructor"], discriminator=raw["discriminator"])

    def export_to(path: Path) -> None:
        """What a checkpoint holds beyond Accelerate's state: the loop's own state and a loadable pipeline."""
        save_extra_state(path, scheduler, ema)
        export_pipeline().save_pretrained(path / "pipeline", dataset_name=config.dataset_name, training_config=resolved)

    def step_losses(real: torch.Tensor, latents: torch.Tensor) -> StepLosses:
        """The objective's forward pass for one batch: every term of the simultaneous update."""
        return compute_losses(
            config.objective,
            generator,
            reconstructor,
            discriminator,
            real,
            latents,
            noise_std=config.reconstructor_noise_std,
            reconstruction_weight=config.reconstruction_weight,
            adversarial_loss=config.adversarial_loss,
            discriminator_module=raw["discriminator"],
            pack_size=raw["discriminator"].config.pack_size,
            unrolled_steps=config.unrolled_steps,
            unrolled_learning_rate=d_lr,
            discriminator_loss_form=config.discriminator_loss,
            r1_weight=config.r1_weight,
            symmetric_latent_noise=config.symmetric_latent_noise,
        )

    if config.compile:
        # The whole forward as one graph, so AOTAutograd also emits the backward as one: inductor fuses the
        # activations, losses and the frozen D view across all three networks. Compiling each network on its own
        # was slower than eager on CPU (274 vs 372 steps/s on grid): per-module guards and graph calls cost more
        # than the fusion saved.
        step_losses = torch.compile(step_losses)

    latent_shape = (config.train_batch_size, config.latent_dim)
    batches = source.batches(device, first_step)
    progress = _progress(accelerator, first_step, config.max_train_steps)
    running, num_running = None, 0  # device-side sums of the logged losses since the last read-back
    # The common case, one process-local step with no scaler and no accumulation, skips Accelerate's per-step
    # wrappers (a file-system probe in its optimizer step, two no-op contexts): measured +0.5 ms on a 3.3 ms step.
    fast_path = accelerator.scaler is None and config.gradient_accumulation_steps == 1
    step_optimizer = optimizer.optimizer if fast_path else optimizer
    no_context = fast_path and config.mixed_precision == "no"
    last_checkpoint = list_checkpoints(output_dir)[-1].name if list_checkpoints(output_dir) else None
    start_time, step = time.perf_counter(), first_step
    # steps/s is timed after a warm-up (allocator, torch.compile, first dataloader batches)
    warmup_steps = min(10, max(0, config.max_train_steps - first_step - 1))
    timed_from, timed_start = first_step + warmup_steps, start_time

    scales: list[float] = []  # the GradScaler's loss scale at each logging step (fp16 on GPU only)
    stopped_by_time = False
    for step in range(first_step + 1, config.max_train_steps + 1):
        for _ in range(config.gradient_accumulation_steps):
            real = next(batches)
            context = (
                contextlib.nullcontext()
                if no_context
                else _contexts(accelerator.accumulate(generator, reconstructor, discriminator), accelerator.autocast())
            )
            with context:
                latents = torch.randn(latent_shape, device=device)
                losses = step_losses(real, latents)
                accelerator.backward(losses.total)
                step_optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                step_optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(raw["generator"])
        # device-side bookkeeping only: no host sync until the logging interval
        logs = losses.logs()  # a NaN or Inf in any term stays in these sums until they are checked
        running = logs if running is None else {k: running[k] + v for k, v in logs.items()}
        num_running += 1

        if step % config.logging_steps == 0 or step == config.max_train_steps:
            if _diverged(running):
                _stop_on_nonfinite(accelerator, step, last_checkpoint, config)
            values = {k: v.item() / num_running for k, v in running.items()}
            values["lr"] = scheduler.get_last_lr()[0]
            values["perf/steps_per_second"] = (step - first_step) / (time.perf_counter() - start_time)
            if accelerator.scaler is not None:
                values["perf/loss_scale"] = accelerator.scaler.get_scale()
                scales.append(values["perf/loss_scale"])
            accelerator.log(values, step=step)
            # refresh=False: the bar redraws on its own schedule; a forced redraw floods log files
            postfix = {k.split("/")[-1]: f"{v:.3g}" for k, v in values.items() if k.startswith("loss/")}
            progress.set_postfix(postfix, refresh=False)
            running, num_running = None, 0
        progress.update(1)
        if step == timed_from:
            timed_start = time.perf_counter()

        if config.checkpointing_steps and step % config.checkpointing_steps == 0 and step < config.max_train_steps:
            if _diverged(running):  # never checkpoint a diverged model over a good one
                _stop_on_nonfinite(accelerator, step, last_checkpoint, config)
            last_checkpoint = save_checkpoint(
                accelerator, output_dir, step, config.checkpoints_total_limit, export_to
            ).name
        validating = config.validation_steps and step % config.validation_steps == 0 and step < config.max_train_steps
        if validating and accelerator.is_main_process:
            validate_and_log(accelerator, export_pipeline(), config, step, final=False)
        timed_check = config.max_train_seconds and step % config.logging_steps == 0
        if timed_check and _out_of_time(accelerator, start_time, config):
            stopped_by_time = True
            logger.info("stopping at step %d: --max_train_seconds %s reached", step, config.max_train_seconds)
            break
    progress.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the queued kernels belong to the timed steps
    loop_seconds = time.perf_counter() - timed_start
    steps_per_second = (step - timed_from) / loop_seconds if step > timed_from else 0.0  # 0.0: too short to time
    if _diverged(running):
        _stop_on_nonfinite(accelerator, step, last_checkpoint, config)

    _check_ranks_agree(accelerator, raw)
    if config.checkpointing_steps:
        save_checkpoint(accelerator, output_dir, step, config.checkpoints_total_limit, export_to)
    pipe = None
    if accelerator.is_main_process:
        pipe = export_pipeline()
        metrics = validate_and_log(accelerator, pipe, config, step, final=True)
        metrics.update(
            {
                "train/steps": step,
                "train/wall_seconds": round(time.perf_counter() - start_time, 2),
                "train/steps_per_second": steps_per_second,
                "train/samples_per_second": steps_per_second * resolved["effective_batch_size"],
                "train/num_processes": accelerator.num_processes,
                "train/stopped_by_time": stopped_by_time,
                **({"train/loss_scale_min": min(scales), "train/loss_scale_max": max(scales)} if scales else {}),
            }
        )
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        scores = {k: v for k, v in metrics.items() if "/" not in k}
        pipe.save_pretrained(output_dir, dataset_name=config.dataset_name, metrics=scores, training_config=resolved)
        if config.push_to_hub:
            url = pipe.push_to_hub(
                config.hub_model_id,
                token=config.hub_token,
                dataset_name=config.dataset_name,
                metrics=scores,
                training_config=resolved,
            )
            logger.info("pushed to %s", url)
    accelerator.wait_for_everyone()  # ranks leave together: a rank tearing down DDP early hangs gloo's destructor
    accelerator.end_training()
    return pipe


def _shutdown_distributed() -> None:
    """Destroys the process group after the DDP wrappers, so that its destructor runs without the GIL."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    # gloo's worker thread needs the GIL to free the last collective's tensors, and the process group's destructor
    # joins that thread. A DDP reducer that drops the last reference destroys the group with the GIL held: both
    # wait forever (seen in CI, one run in many). train() has returned, so collect its DDP wrappers first; then
    # destroy_process_group drops the last reference through a binding that releases the GIL.
    gc.collect()
    torch.distributed.destroy_process_group()


def _progress(accelerator, first_step: int, total: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=first_step,
        desc="steps",
        disable=not accelerator.is_local_main_process,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30,  # log files get a line every 30 s, not every step
    )


def _contexts(*managers):
    """Enters several context managers as one."""
    stack = contextlib.ExitStack()
    for manager in managers:
        stack.enter_context(manager)
    return stack


def _out_of_time(accelerator, start_time: float, config: TrainingConfig) -> bool:
    """Has the run used its --max_train_seconds? Every rank gets the main process's answer, so all stop together."""
    over = torch.tensor(float(time.perf_counter() - start_time >= config.max_train_seconds), device=accelerator.device)
    if accelerator.num_processes > 1:
        over = accelerator.reduce(over, reduction="max")
    return bool(over.item())


def _diverged(running: dict[str, torch.Tensor] | None) -> bool:
    """One host sync: is any running loss sum NaN or Inf?"""
    return running is not None and not bool(torch.isfinite(torch.stack(list(running.values()))).all())


def _stop_on_nonfinite(accelerator, step: int, last_checkpoint: str | None, config: TrainingConfig) -> None:
    kept = f"the last good checkpoint, {last_checkpoint}, is kept" if last_checkpoint else "no checkpoint was saved"
    raise NonFiniteLossError(
        f"the loss became NaN or Inf by step {step} (checked every --logging_steps {config.logging_steps}); training "
        f"stopped and {kept}. Lower --learning_rate (now {config.learning_rate}), try --adversarial_loss "
        "non_saturating or --mixed_precision no, then resume with --resume_from_checkpoint latest."
    )


def _check_ranks_agree(accelerator, raw: dict[str, nn.Module]) -> None:
    """DDP must keep every rank's weights identical; a cheap checksum across ranks proves it for this run."""
    if accelerator.num_processes == 1:
        return
    checksum = torch.stack(
        [torch.cat([p.detach().float().flatten() for p in m.parameters()]).double().sum() for m in raw.values()]
    )
    gathered = accelerator.gather(checksum[None].to(accelerator.device))  # (num_processes, 3)
    if not torch.allclose(gathered, gathered[:1].expand_as(gathered), rtol=0, atol=0):
        raise RuntimeError(f"ranks hold different weights after training: checksums {gathered.tolist()}.")


def validate_and_log(accelerator, pipe: VEEGAN, config: TrainingConfig, step: int, final: bool) -> dict:
    """Samples, a figure under samples/, and the metrics of the built-in dataset (the full protocol when `final`)."""
    from veegan_hf.plotting import image_grid, scatter_over_modes

    samples_dir = Path(config.output_dir) / "samples"
    name = config.dataset_name
    builtin = name in NUM_EVAL_SAMPLES and not config.train_data_dir and (config.eval_at_end or not final)
    # the full protocol at the end; during training at most 2,500 samples keep validation cheap
    num = None if final else config.num_validation_samples or min(NUM_EVAL_SAMPLES.get(name, 64), 2500)
    metrics = evaluate(pipe, name, num_samples=num, seed=config.seed) if builtin else {}
    tag = "final" if final else f"step_{step:06d}"
    if pipe.is_image_model:
        grid = image_grid(draw_samples(pipe, 64, seed=config.seed), num_columns=8)
        grid.save(samples_dir / f"{tag}.png")
        _log_image(accelerator, grid, step)
    else:
        samples = draw_samples(pipe, NUM_EVAL_SAMPLES.get(name, 2500), seed=config.seed)
        means = get_mixture(name).means if name in MIXTURE_NAMES else None
        title = f"{config.objective} on {name}, step {step}"
        if metrics:
            title += f"\n{metrics['modes_captured']}/{metrics['num_modes']} modes, {metrics['hq_percent']:.1f}% HQ"
        fig = scatter_over_modes(samples, means, title=title)
        fig.savefig(samples_dir / f"{tag}.png", bbox_inches="tight")
        _log_figure(accelerator, fig, step)
    accelerator.log({f"metrics/{k}": v for k, v in metrics.items()}, step=step)
    if metrics:
        logger.info("step %d: %s", step, metrics)
    return metrics


def _log_image(accelerator, image, step: int) -> None:
    import numpy as np

    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            arr = np.asarray(image)
            tracker.writer.add_image("samples", arr if arr.ndim == 3 else arr[..., None], step, dataformats="HWC")


def _log_figure(accelerator, fig, step: int) -> None:
    import matplotlib.pyplot as plt

    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_figure("samples", fig, step)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        config = parse_config(argv)
        train(config)
    except (ValueError, NonFiniteLossError) as err:  # ConfigError and the package's input errors are ValueErrors
        # the message first and alone: `accelerate launch` prints its own traceback after a non-zero exit
        print(f"error: {err}", file=sys.stderr, flush=True)
        code = 1
    else:
        code = 0
    _shutdown_distributed()  # outside the except block, whose traceback would keep train()'s DDP wrappers alive
    return code


if __name__ == "__main__":
    sys.exit(main())
