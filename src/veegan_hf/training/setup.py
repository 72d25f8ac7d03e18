"""A training run's set-up: from a resolved config and an Accelerator to a `Run`, the state the loop carries from step
to step (data, networks, one optimizer, the schedules, the record), resumed from a checkpoint when asked."""

import contextlib
import functools
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..objectives import OBJECTIVES, Networks, StepLosses, compute_losses
from ..pipeline_veegan import VEEGAN
from . import checkpointing, reporting
from .config import ConfigError, TrainingConfig, loss_options, resolved_record
from .meter import Meter
from .networks import EMA, build_networks, make_optimizer
from .schedules import Schedules, has_schedule, lr_factor
from .sources import BatchSource, build_source, resolve_data

logger = logging.getLogger("veegan_hf.train")


@dataclass
class Run:
    """Everything one run holds between its steps; `set_up` builds it, the loop's step and end read and update it.

    The networks appear twice: as Accelerate wrapped them (DDP on several processes), which the step runs, and
    unwrapped (`raw`), which the EMA, the checkpoints and the exported pipeline read.
    """

    config: TrainingConfig
    accelerator: Any
    output_dir: Path
    wrapped: tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]
    raw: dict[str, torch.nn.Module]
    ema: EMA | None
    optimizer: Any  # what each step calls: Accelerate's wrapper, or on the fast path the bare one inside it
    schedules: Schedules  # the rate, lambda_t and the EMA's start, fitted to --max_train_seconds
    source: BatchSource
    batches: Iterator[torch.Tensor]
    record: dict[str, Any]
    step_losses: Callable[[torch.Tensor, torch.Tensor], StepLosses]
    first_step: int
    alternating: bool
    no_context: bool  # the fast path: no accumulation, no scaler, no autocast, so no per-step contexts
    meter: Meter  # the clock, the device-side loss sums, the validations
    last_checkpoint: str | None = None
    stopped_by_time: bool = False

    @property
    def effective_batch(self) -> int:
        """Samples per optimizer step over all processes, as the record states it."""
        return self.record["effective_batch_size"]

    def step_context(self) -> contextlib.AbstractContextManager:
        if self.no_context:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(self.accelerator.accumulate(*self.wrapped))
        stack.enter_context(self.accelerator.autocast())
        return stack

    def fit_schedules(self, horizon: int) -> None:
        """Fits the schedules to end at step `horizon` (--max_train_seconds); the record keeps it for a resume."""
        self.schedules.fit(horizon)
        self.record["fitted_max_train_steps"] = horizon

    def export_pipeline(self) -> VEEGAN:
        """The pipeline to sample from and save: EMA generator when EMA is on, float32, on this device."""
        generator = self.ema.model if self.ema is not None else self.raw["generator"]
        return VEEGAN(
            generator=generator, reconstructor=self.raw["reconstructor"], discriminator=self.raw["discriminator"]
        )

    def export_to(self, path: Path) -> None:
        """What a checkpoint holds beyond Accelerate's state: the loop's own state, the record, a loadable pipeline."""
        checkpointing.save_extra_state(path, self.schedules.lr, self.ema)
        checkpointing.write_json_atomic(path / checkpointing.RECORD_NAME, self.record)
        self.export_pipeline().save_pretrained(
            path / "pipeline", dataset_name=self.config.data_source, training_config=self.record
        )


def set_up(config: TrainingConfig, accelerator, log_with: str | None, setup_start: float) -> Run:
    """Data, networks and optimizer prepared by one `accelerator.prepare`, a checkpoint's state when resuming, the
    record written, the trackers started, and the step's forward (compiled when asked)."""
    config, dataset, resume_path = _checked_launch(config, accelerator)
    device, output_dir = accelerator.device, Path(config.output_dir)
    wrapped, raw, ema, optimizer, scheduler, source = _prepared_training(config, accelerator, dataset)
    first_step = 0
    if resume_path is not None:
        accelerator.load_state(str(resume_path))
        checkpointing.load_extra_state(resume_path, scheduler, ema)
        first_step = checkpointing.checkpoint_step(resume_path)
        logger.info("resumed from %s at step %d", resume_path, first_step)

    record, fitted = _record(config, accelerator, resume_path, first_step)
    if accelerator.is_main_process:
        checkpointing.write_json_atomic(output_dir / checkpointing.RECORD_NAME, record)
    if log_with is not None:
        hparams = {k: v if isinstance(v, (bool, str, int, float)) or v is None else str(v) for k, v in record.items()}
        accelerator.init_trackers("veegan", config=hparams)

    # --max_train_seconds cuts a run short of its schedules: once FIT_AFTER_STEPS steps have shown the step rate, the
    # schedules are fitted to the steps that fit in the time, so the rate and lambda still decay; a resume keeps them
    fit = config.max_train_seconds is not None and config.fit_schedules_to_time and has_schedule(config)
    schedules = Schedules.start(config, scheduler, first_step, fit and fitted is None, device)
    # lambda_t enters the losses as the device scalar the schedule fills; a constant lambda as a number
    weight = schedules.weight if schedules.factor else None
    options = loss_options(config, raw["discriminator"].config.pack_size, weight)
    # the objective's forward pass for one batch: every term of the simultaneous update
    networks = Networks(*wrapped, raw["discriminator"])
    step_losses = functools.partial(compute_losses, config.objective, networks, options=options)
    if config.compile and OBJECTIVES[config.objective].compiles:
        # The whole forward as one graph, so AOTAutograd also emits the backward as one: inductor fuses the
        # activations, losses and the frozen D view across all three networks. Compiling each network on its own
        # was slower than eager on CPU (274 vs 372 steps/s on grid): per-module guards and graph calls cost more
        # than the fusion saved.
        step_losses = torch.compile(step_losses)

    # The common case, one process-local step with no scaler and no accumulation, skips Accelerate's per-step
    # wrappers (a file-system probe in its optimizer step, two no-op contexts): measured +0.5 ms on a 3.3 ms step.
    fast_path = accelerator.scaler is None and config.gradient_accumulation_steps == 1
    checkpoints = checkpointing.list_checkpoints(output_dir)
    run = Run(
        config=config,
        accelerator=accelerator,
        output_dir=output_dir,
        wrapped=wrapped,
        raw=raw,
        ema=ema,
        optimizer=optimizer.optimizer if fast_path else optimizer,
        schedules=schedules,
        source=source,
        batches=source.batches(device, first_step),
        record=record,
        step_losses=step_losses,
        first_step=first_step,
        alternating=config.update_order == "alternating",
        no_context=fast_path and accelerator.mixed_precision == "no",
        meter=Meter(setup_start),
        last_checkpoint=checkpoints[-1].name if checkpoints else None,
    )
    if fit and fitted is not None:
        run.fit_schedules(fitted)
        schedules.set_weight(first_step)
    run.meter.progress = reporting.progress_bar(accelerator, first_step, config.max_train_steps)
    return run


def _checked_launch(config: TrainingConfig, accelerator) -> tuple[TrainingConfig, Any, Path | None]:
    """The config with its data resolved, the dataset, and the checkpoint to resume from; what this launch cannot
    run is refused here, before any network is built."""
    if config.num_cpu_threads is not None:
        torch.set_num_threads(config.num_cpu_threads)
    if accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        warnings.warn(
            "--mixed_precision fp16 does nothing on CPU (no autocast, no GradScaler): the run is float32. "
            "Use --mixed_precision bf16 on CPU, or fp16 on a GPU.",
            stacklevel=1,
        )
    config, dataset = resolve_data(replace(config, mixed_precision=accelerator.mixed_precision))
    resume_path = checkpointing.resolve_resume(config)
    if config.update_order == "alternating" and accelerator.num_processes > 1:
        raise ConfigError(
            "--update_order alternating runs on one process: two backward passes per step leave some networks "
            "without gradients in each, which DDP refuses. Use --update_order simultaneous with several processes."
        )
    return config, dataset, resume_path


def _prepared_training(config: TrainingConfig, accelerator, dataset: Any) -> tuple:
    """The networks (as Accelerate wrapped them, and unwrapped), the EMA, the optimizer, the rate schedule and the
    batch source, with the seeds that make every rank start from the same weights."""
    from accelerate.utils import set_seed

    device = accelerator.device
    # identical initial weights on every rank; then per-rank streams for latents, noise and data
    set_seed(config.seed)
    generator, reconstructor, discriminator = build_networks(config)
    set_seed(config.seed, device_specific=True)
    source = build_source(config, dataset, accelerator.process_index, accelerator.num_processes)
    ema = EMA(generator, config.ema_decay).to(device) if config.use_ema else None

    # fused: one kernel updates every tensor; foreach is the next best, where fused is not built (e.g. XPU)
    kind = {"fused": True} if device.type in ("cpu", "cuda") else {"foreach": True}
    optimizer = make_optimizer(generator, reconstructor, discriminator, config, **kind)
    # one prepare call for the networks, the optimizer and the dataloader (only Hub/local image data has one)
    loader = [source.dataloader] if source.dataloader is not None else []
    prepared = accelerator.prepare(generator, reconstructor, discriminator, optimizer, *loader)
    wrapped, optimizer = tuple(prepared[:3]), prepared[3]
    if source.dataloader is not None:
        source.dataloader, source.accelerator = prepared[4], accelerator
    # not prepared: Accelerate would step it num_processes times per step; it is stepped once per optimizer step.
    # Its state and the EMA's are saved as JSON and safetensors by save_checkpoint, not by Accelerate's
    # register_for_checkpointing, which would unpickle them on resume (weights_only=False).
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer.optimizer, lr_factor(config))
    names = ("generator", "reconstructor", "discriminator")
    raw = {name: accelerator.unwrap_model(m) for name, m in zip(names, wrapped)}
    return wrapped, raw, ema, optimizer, scheduler, source


def _record(
    config: TrainingConfig, accelerator, resume_path: Path | None, first_step: int
) -> tuple[dict[str, Any], int | None]:
    """The resolved options with the launch's facts, and one segment per launch: a resumed run's card lists each
    stretch of steps with its data, command and commit. Also the schedules' fitted end a resumed run keeps."""
    effective_batch = config.train_batch_size * accelerator.num_processes * config.gradient_accumulation_steps
    record = resolved_record(config, num_processes=accelerator.num_processes, effective_batch_size=effective_batch)
    saved = checkpointing.saved_record(resume_path) if resume_path is not None else {}
    segment = {"data": config.data_source, "command": record["command"], "commit": record["git_commit"]}
    record["segments"] = [*saved.get("segments", []), {**segment, "from_step": first_step, "to_step": first_step}]
    return record, saved.get("fitted_max_train_steps")
