"""`TrainingConfig`: every training option, the casting and validation of its values, and the record of what a run
resolved. `arguments.py` fills it from a preset and the command line."""

import dataclasses
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import BUILTIN_DATASETS, BuiltinDataset, builtin_spec
from ..layers import ACTIVATIONS, ARCHITECTURES, IMAGE_ARCHITECTURES, IMAGE_SIZES, SIZE_LIMITS
from ..losses import ADVERSARIAL_LOSSES, DISCRIMINATOR_LOSSES
from ..objectives import OBJECTIVES, LossOptions


class ConfigError(ValueError):
    """A bad option: reported as one line naming the value and the way out, before any training starts."""


@dataclass(frozen=True)
class TrainingConfig:
    """Every command-line flag is a field; `--config NAME` presets any of them and flags override the preset."""

    # data
    dataset_name: str = "ring"  # a built-in name, a Hub id, or a local imagefolder / parquet / save_to_disk path
    dataset_config_name: str | None = None  # the Hub dataset's configuration, if it has several
    train_data_dir: str | None = None  # a local imagefolder (alternative to dataset_name)
    image_column: str | None = None  # detected when omitted
    resolution: int | None = None  # image side; None: the data's own (28, 32 or 64 px squares), else 64
    num_channels: int | None = None  # 1 or 3; None: what the data holds (grayscale -> 1)
    center_crop: bool = True  # crop the square from the middle (False: a random square)
    random_flip: bool = False  # horizontal flips; off by default because digits are not symmetric
    skip_corrupt_images: bool = False  # count and skip undecodable images instead of stopping on the first
    dataloader_num_workers: int = 0  # image decoding workers; 0 keeps CI single-process
    cache_dir: str | None = None  # where `datasets` caches Hub downloads

    # networks (shared by every objective so that only the objective differs)
    architecture: str | None = None  # None: "mlp" for vectors, "dcgan" for images; "metz": the reduced-D networks
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
    reconstructor_input_noise: float = 0.0  # veegan: F reads x + N(0, s^2 I) in training, so z survives coarse noise
    discriminator_reads_latents: bool = True  # veegan: D judges (z, x) pairs; false: x alone, with the z reconstruction
    # veegan: beta on F's own adversarial term, so D cannot tell data pairs from generated ones by z alone (0: Alg. 1)
    reconstructor_adversarial_weight: float = 0.0
    reconstructor_base_channels: int | None = None  # F's conv width; None: base_channels (F mirrors G)
    activation: str = "relu"  # G and F hidden activation
    # mlp G: BatchNorm after each hidden layer (PacGAN's 2-D G); F and D never. Per-process statistics under DDP, and
    # an EMA generator takes the raw one's running statistics, as for the dcgan G
    generator_batch_norm: bool = False

    # objective
    objective: str = "veegan"  # veegan | gan | ali | unrolled | pacgan: the baselines share the networks
    adversarial_loss: str = "paper"  # "paper" (raw logit, Algorithm 1) or "non_saturating"
    discriminator_loss: str = "logistic"  # "logistic" (Algorithm 1) or "hinge"; gan-family G losses follow it
    r1_weight: float = 0.0  # gamma of the R1 penalty on D's data inputs (0: off); needs a double backward
    reconstruction_weight: float = 1.0  # lambda on ||z - F(G(z))||^2; the paper's is 1
    data_reconstruction_weight: float = 0.0  # veegan: mu on ||x - G(F(x))||^2, an x-space cycle term (0: Algorithm 1)
    reconstruction_weight_schedule: str = "constant"  # veegan: "lr" scales lambda by the lr schedule; "linear": below
    reconstruction_weight_decay_start: float = 0.5  # "linear": lambda falls from here (a fraction of the run) ...
    reconstruction_weight_decay_end: float = 1.0  # ... to 0 here, and stays 0 to the end
    pack_size: int = 2  # PacGAN's m
    joint_pack_size: int = 1  # veegan: D judges this many (z, x) pairs at once; 1 is Algorithm 1
    unrolled_steps: int = 5  # Unrolled GAN's k
    # simultaneous: Algorithm 1, every gradient at the same weights; alternating: D steps first, then G and F against
    # the updated D, as the reference GAN code of the reduced-D setting does
    update_order: str = "simultaneous"

    # optimization
    train_batch_size: int = 500  # per process (500 is the notebook's; presets pick their own)
    max_train_steps: int = 2000  # optimizer steps
    max_train_seconds: float | None = None  # stop early after this much training wall time (None: no limit)
    fit_schedules_to_time: bool = True  # with max_train_seconds: the lr, lambda and EMA schedules end by the limit
    learning_rate: float = 1e-3  # G and F, the notebook's
    discriminator_learning_rate: float | None = None  # None: same as learning_rate
    adam_beta1: float = 0.5  # the notebook's; 0.5 damps GAN oscillations
    adam_beta2: float = 0.999  # Adam's second-moment decay, PyTorch's default
    lr_scheduler: str = "constant"  # constant | cosine | linear: decay to 0 over the run
    lr_warmup_steps: int = 0  # steps of linear warm-up from 0 to the rate
    lr_decay_start: float = 0.0  # linear/cosine decay begins after this fraction of the run (0.5: the last half)
    gradient_accumulation_steps: int = 1  # batches per optimizer step: a larger effective batch in the same memory
    mixed_precision: str | None = None  # no | fp16 | bf16; None: the launcher's (`accelerate launch`), else "no"
    use_ema: bool = True  # an EMA generator is used for samples, evaluation and export
    ema_decay: float = 0.999  # the EMA's decay per step: it averages about the last 1 / (1 - decay) steps
    ema_start: float = 0.0  # the EMA copies G until this fraction of the run, then averages (0.75: the last quarter)
    compile: bool = False  # torch.compile the step's forward: one graph (and one backward graph) per step
    seed: int = 0  # seeds the networks, the data order and every sample: the same seed, the same run
    num_cpu_threads: int | None = None  # torch threads per process; None: the cores / local processes (the CLI)

    # checkpoints, logging, evaluation
    output_dir: str = "veegan-output"
    overwrite_output_dir: bool = False  # allow replacing another run's results in output_dir
    checkpointing_steps: int | None = None  # a resumable checkpoint every N steps (None: none, model only)
    checkpoints_total_limit: int | None = 2  # keep the newest N checkpoints
    resume_from_checkpoint: str | None = None  # "latest" or a checkpoint folder
    report_to: str = "tensorboard"  # tensorboard | wandb | none
    logging_steps: int = 50  # losses are read back from the device only this often
    validation_steps: int | None = 500  # samples, plot and metrics every N steps (None: only at the end)
    num_validation_samples: int | None = None  # built-in data, mid-run metrics only (None: min(paper's, 2,500))
    eval_at_end: bool = True  # the full-protocol evaluation written to metrics.json (the final figure is always made)

    # hub
    push_to_hub: bool = False  # upload the trained model and its card to the Hub at the end (needs --hub_model_id)
    hub_model_id: str | None = None  # ORG/NAME on the Hub, for --push_to_hub
    hub_token: str | None = None  # a Hub token; defaults to the stored login (never written to any record)

    # the preset this run started from (set by `--config`, recorded for provenance)
    preset: str | None = None

    @property
    def data_source(self) -> str:
        """What the data is read from: the imagefolder when given, else `dataset_name`."""
        return self.train_data_dir or self.dataset_name

    @property
    def is_builtin_data(self) -> bool:
        return self.train_data_dir is None and self.dataset_name in BUILTIN_DATASETS

    @property
    def builtin_spec(self) -> "BuiltinDataset | None":
        """The built-in dataset this run trains on, or None for Hub or local data."""
        return builtin_spec(self.dataset_name) if self.is_builtin_data else None

    @property
    def pack_size_of_objective(self) -> int:
        """How many samples (or pairs) D judges at once under this objective: its pack option's value, else 1."""
        option = OBJECTIVES[self.objective].pack_option
        return getattr(self, option) if option else 1


# option -> (the `LossOptions` field it tunes, the error for an objective that does not read that field). From a
# preset, shared by every method (only --objective differs, as in Table 1), such an option falls back to its default
# (`parse_config`); on the command line, where the user asked for it, `validate` refuses it with this error.
OBJECTIVE_SPECIFIC = {
    "reconstruction_weight_schedule": (
        "reconstruction_weight",
        "--reconstruction_weight_schedule {value} schedules VEEGAN's lambda; --objective {objective} has no "
        "reconstruction term. Drop the option.",
    ),
    "data_reconstruction_weight": (
        "data_reconstruction_weight",
        "--data_reconstruction_weight {value} weighs VEEGAN's x-space cycle term; --objective {objective} has no "
        "reconstruction term. Drop the option.",
    ),
    "discriminator_reads_latents": (
        "joint_discriminator",
        "--discriminator_reads_latents {value} chooses what VEEGAN's D judges; --objective {objective} fixes it "
        "(ali needs its pairs, the GAN family reads x alone). Drop the option.",
    ),
    "reconstructor_input_noise": (
        "reconstructor_input_noise",
        "--reconstructor_input_noise {value} jitters the input of VEEGAN's F, which only VEEGAN trains on a "
        "reconstruction; --objective {objective} does not use it. Drop the option.",
    ),
    "reconstructor_adversarial_weight": (
        "reconstructor_adversarial_weight",
        "--reconstructor_adversarial_weight {value} trains VEEGAN's F against its joint D; --objective {objective} "
        "does not use it (ali already trains F adversarially). Drop the option.",
    ),
    "symmetric_latent_noise": (
        "symmetric_latent_noise",
        "--symmetric_latent_noise applies to --objective veegan, whose F is not trained adversarially; "
        "--objective {objective} does not use it. Drop the option.",
    ),
}

_CHOICES = {
    "architecture": (None, *ARCHITECTURES),
    "objective": tuple(OBJECTIVES),
    "adversarial_loss": ADVERSARIAL_LOSSES,
    "discriminator_loss": DISCRIMINATOR_LOSSES,
    "activation": ACTIVATIONS,
    "lr_scheduler": ("constant", "cosine", "linear"),
    "update_order": ("simultaneous", "alternating"),
    "reconstruction_weight_schedule": ("constant", "lr", "linear"),
    "mixed_precision": (None, "no", "fp16", "bf16"),
    "report_to": ("tensorboard", "wandb", "none"),
    "num_channels": (None, 1, 3),
    "resolution": (None, *IMAGE_SIZES),
}
# (low, high) for every number; None bounds are open. Upper bounds are what no sane run exceeds: a typo of 10**9
# fails here instead of allocating terabytes. Network sizes take the networks' own limits (`layers.SIZE_LIMITS`).
_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    **{name: SIZE_LIMITS[name] for name in ("latent_dim", "hidden_dim", "num_hidden_layers", "base_channels")},
    **{name: SIZE_LIMITS[name] for name in ("extra_noise_dim", "pack_size")},
    "discriminator_hidden_dim": SIZE_LIMITS["hidden_dim"],
    "discriminator_num_hidden_layers": (1, SIZE_LIMITS["num_hidden_layers"][1]),
    "discriminator_base_channels": SIZE_LIMITS["base_channels"],
    "joint_pack_size": SIZE_LIMITS["pack_size"],
    "reconstructor_noise_std": (0, 100),
    "reconstructor_input_noise": (0, 100),
    "reconstructor_adversarial_weight": (0, 1e6),
    "reconstructor_base_channels": SIZE_LIMITS["base_channels"],
    "discriminator_sample_scale": (1e-6, 1e6),
    "r1_weight": (0, None),
    "reconstruction_weight": (0, 1e38),  # a scheduled lambda lives in a float32 tensor: more would not fit
    "data_reconstruction_weight": (0, 1e38),  # mu scales a float32 loss, like lambda
    "unrolled_steps": (1, 100),
    "train_batch_size": (1, 1 << 20),
    "max_train_steps": (1, 1 << 40),
    "max_train_seconds": (1e-3, None),
    "learning_rate": (1e-12, 10),
    "discriminator_learning_rate": (1e-12, 10),
    "adam_beta1": (0, 0.999999),
    "adam_beta2": (0, 0.999999),
    "lr_warmup_steps": (0, 1 << 40),
    "lr_decay_start": (0, 0.999999),
    "reconstruction_weight_decay_start": (0, 1),
    "reconstruction_weight_decay_end": (0, 1),
    "gradient_accumulation_steps": (1, 1 << 16),
    "ema_decay": (0, 0.999999),
    "ema_start": (0, 0.999999),
    "num_cpu_threads": (1, 4096),
    "seed": (0, 2**63 - 1),
    "checkpointing_steps": (1, 1 << 40),
    "checkpoints_total_limit": (1, 1 << 20),
    "logging_steps": (1, 1 << 40),
    "validation_steps": (1, 1 << 40),
    "num_validation_samples": (1, 1 << 24),
    "dataloader_num_workers": (0, 256),
}


def fields() -> dict[str, dataclasses.Field]:
    """The command-line options: every field but `preset`, which `--config` sets."""
    return {f.name: f for f in dataclasses.fields(TrainingConfig) if f.name != "preset"}


def validate(config: TrainingConfig) -> None:
    """Rejects bad values, and options that do not apply to the objective, before anything is loaded or trained."""
    for name, choices in _CHOICES.items():
        if getattr(config, name) not in choices:
            shown = tuple(c for c in choices if c is not None)
            raise ConfigError(f"--{name} {getattr(config, name)!r} is not supported; choose from {shown}.")
    for name, (low, high) in _BOUNDS.items():
        value = getattr(config, name)
        if value is None:
            continue
        if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
            raise ConfigError(f"--{name} {value} must lie in [{low}, {high if high is not None else 'inf'}].")
    objective = OBJECTIVES[config.objective]
    size, option = config.pack_size_of_objective, objective.pack_option
    if config.train_batch_size % size:
        raise ConfigError(
            f"--train_batch_size {config.train_batch_size} is not a multiple of --{option} {size}: D judges whole "
            "packs."
        )
    if config.discriminator_marginal_head and not (objective.joint and config.discriminator_reads_latents):
        raise ConfigError(
            f"--discriminator_marginal_head needs a joint discriminator, but --objective {config.objective} already "
            "judges x alone. Use --objective veegan or ali, or drop the option."
        )
    if config.reconstructor_adversarial_weight > 0 and not config.discriminator_reads_latents:
        raise ConfigError(
            f"--reconstructor_adversarial_weight {config.reconstructor_adversarial_weight} trains F against a joint D, "
            "but --discriminator_reads_latents false lets D judge x alone. Drop one of the two."
        )
    for name, (option, error) in OBJECTIVE_SPECIFIC.items():
        value = getattr(config, name)
        if value != fields()[name].default and option not in objective.options:
            raise ConfigError(error.format(value=value, objective=config.objective))
    if config.reconstruction_weight_decay_end < config.reconstruction_weight_decay_start:
        raise ConfigError(
            f"--reconstruction_weight_decay_end {config.reconstruction_weight_decay_end} comes before "
            f"--reconstruction_weight_decay_start {config.reconstruction_weight_decay_start}: lambda falls between "
            "the two fractions of the run. Give an end at or after the start."
        )
    if config.update_order == "alternating" and config.gradient_accumulation_steps > 1:
        raise ConfigError(
            f"--update_order alternating steps D and then G on each batch; it cannot accumulate --gradient_accumulation"
            f"_steps {config.gradient_accumulation_steps}. Drop one of them."
        )
    if config.update_order == "alternating" and config.compile:
        raise ConfigError(
            "--update_order alternating takes G's loss again after D's step, outside the compiled step; drop "
            "--compile or use --update_order simultaneous."
        )
    if config.compile and not objective.compiles:
        raise ConfigError(
            f"--compile cannot run --objective {config.objective}: its generator loss differentiates through D's "
            "unrolled SGD steps (a double backward), which torch.compile's autograd does not support. Drop --compile."
        )
    if config.compile and config.r1_weight > 0:
        raise ConfigError(
            f"--compile cannot run --r1_weight {config.r1_weight}: the R1 penalty differentiates D's gradient (a "
            "double backward), which torch.compile's autograd does not support. Drop --compile or --r1_weight."
        )
    if config.push_to_hub and not config.hub_model_id:
        raise ConfigError("--push_to_hub needs --hub_model_id ORG/NAME.")
    # accelerate drops a tracker whose package is missing without a word; a run that logs nothing is worse than a stop
    import importlib.util

    if config.report_to != "none" and importlib.util.find_spec(config.report_to) is None:
        raise ConfigError(
            f"--report_to {config.report_to} needs the {config.report_to} package: pip install {config.report_to}, "
            "or pass --report_to none."
        )
    _validate_data_options(config)


def _validate_data_options(config: TrainingConfig) -> None:
    """Options that do not apply to the data are refused, not silently ignored; a local path that does not exist is
    named at once (it would otherwise be tried as a Hub id, with retries, and the error would name the other flag)."""
    if config.train_data_dir is not None and not Path(config.train_data_dir).is_dir():
        what = "a file" if Path(config.train_data_dir).exists() else "no such folder"
        raise ConfigError(f"--train_data_dir {config.train_data_dir}: {what}; pass a folder of images.")
    name = config.dataset_name
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or name.endswith(".parquet")
    if config.train_data_dir is None and looks_local and not Path(name).expanduser().exists():
        raise ConfigError(
            f"--dataset_name {name}: no such local folder or file (and not a Hub id of the form org/name)."
        )
    spec = config.builtin_spec
    if spec is not None and spec.kind == "mixture":
        ignored = [n for n in ("resolution", "num_channels", "image_column") if getattr(config, n) is not None]
        if config.architecture in IMAGE_ARCHITECTURES:
            raise ConfigError(f"--dataset_name {config.dataset_name} is vector data: use --architecture mlp.")
        if ignored:
            raise ConfigError(
                f"--dataset_name {config.dataset_name} is vector data; {', '.join('--' + n for n in ignored)} "
                "apply to images only. Drop them."
            )
    elif config.architecture == "mlp":
        raise ConfigError(
            f"--dataset_name {config.data_source!r} holds images: use --architecture dcgan or metz (or omit it)."
        )
    if config.generator_batch_norm and (spec is None or spec.kind != "mixture"):
        raise ConfigError(
            "--generator_batch_norm applies to the mlp generator of vector data; the dcgan generator always has "
            "BatchNorm. Drop it."
        )
    if spec is not None and spec.kind == "digits":
        if config.resolution is not None and config.resolution not in spec.resolutions:
            raise ConfigError(f"--resolution {config.resolution}: the digit datasets come at {spec.resolutions}.")
        if config.num_channels is not None and config.num_channels != spec.num_channels:
            raise ConfigError(f"--num_channels {config.num_channels} does not fit {config.dataset_name}.")
        if config.image_column is not None:
            raise ConfigError(f"--image_column applies to Hub or local datasets, not to {config.dataset_name}.")


def loss_options(config: TrainingConfig, pack_size: int, reconstruction_weight: Any = None) -> LossOptions:
    """The options of each step's losses, from the config: what every objective reads (`OBJECTIVES` says which).

    Args:
        pack_size (`int`): samples (or pairs) D judges at once, as D was built.
        reconstruction_weight (0-dim `torch.Tensor`, *optional*): lambda as a scheduled device scalar; None for the
            config's constant lambda.
    """
    return LossOptions(
        noise_std=config.reconstructor_noise_std,
        reconstruction_weight=config.reconstruction_weight if reconstruction_weight is None else reconstruction_weight,
        adversarial_loss=config.adversarial_loss,
        pack_size=pack_size,
        unrolled_steps=config.unrolled_steps,
        unrolled_learning_rate=config.discriminator_learning_rate or config.learning_rate,
        discriminator_loss_form=config.discriminator_loss,
        r1_weight=config.r1_weight,
        symmetric_latent_noise=config.symmetric_latent_noise,
        data_reconstruction_weight=config.data_reconstruction_weight,
        reconstructor_input_noise=config.reconstructor_input_noise,
        joint_discriminator=config.discriminator_reads_latents,
        reconstructor_adversarial_weight=config.reconstructor_adversarial_weight,
    )


def resolved_record(config: TrainingConfig, **derived: Any) -> dict[str, Any]:
    """The options as resolved for a run, for `training_config.json` and the card: a new dict, never the config."""
    from .. import __version__
    from ..provenance import git_commit

    commit = git_commit()
    record = {k: v for k, v in dataclasses.asdict(config).items() if k != "hub_token"}
    if config.train_data_dir is not None:  # the folder is the data: the unused default would name another dataset
        record["dataset_name"] = None
    return {
        **record,
        **derived,
        "package_version": __version__,
        "git_commit": None if commit == "unknown" else commit,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else None,
        "launcher_mixed_precision": os.environ.get("ACCELERATE_MIXED_PRECISION"),
    }
