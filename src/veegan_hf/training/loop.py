"""The Accelerate training loop: a resolved config in, a `TrainResult` out. Each objective's forward and losses come
from `objectives.OBJECTIVES`; the loop maps the config to their options and adds the schedules of the VEEGAN ones.

TrainingConfig -> data -> networks -> one `accelerator.prepare` -> the loop -> `save_pretrained` / `push_to_hub`.
Runs unchanged on one CPU, several CPU processes (gloo), many GPUs and several machines: every rank runs the same
steps; only I/O and logging are rank-0 only. By default each step is Algorithm 1's simultaneous update: the
objective's terms are summed and backpropagated once, and one optimizer with a group per network steps;
`--update_order alternating` steps D first, then G and F against the updated D.
"""

import contextlib
import logging
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..objectives import OBJECTIVES, LossOptions, Networks, StepLosses, compute_losses
from ..pipeline_veegan import VEEGAN
from . import checkpointing, reporting
from .config import ConfigError, TrainingConfig, resolved_record
from .networks import EMA, build_networks, make_optimizer
from .schedules import FIT_AFTER_STEPS, FITTED_DONE, fitted_steps, has_schedule, lr_factor, reconstruction_weight_factor
from .sources import build_source, resolve_data

logger = logging.getLogger("veegan_hf.train")
WARMUP_STEPS = 10  # steps/s is timed after these (allocator, torch.compile, first dataloader batches)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the message says which checkpoint survives and what to change."""


@dataclass
class TrainResult:
    """What `train` returns: the exported pipeline (main process; None elsewhere), the final metrics, and timings.

    Attributes:
        pipeline (`VEEGAN` or `None`): the trained model as saved to `output_dir`.
        metrics (`dict`): `metrics.json`: the evaluation and the `train/*` figures.
        config (`TrainingConfig`): the resolved config the run trained with.
        step_end_times (`list[float]`): `time.perf_counter()` at the end of every step this process ran.
        loop_start (`float`): `time.perf_counter()` just before the first step; `setup_seconds` is what preceded it.
        validation_history (`list[dict]`): per mid-run validation (main process), its `step`, `train_seconds` (the
            training time so far, validations excluded) and metrics: coverage against wall-clock time.
    """

    pipeline: VEEGAN | None
    metrics: dict[str, Any]
    config: TrainingConfig
    step_end_times: list[float] = field(default_factory=list)
    loop_start: float = 0.0
    setup_seconds: float = 0.0
    validation_history: list[dict[str, Any]] = field(default_factory=list)


def _mixed_precision(config: TrainingConfig) -> str | None:
    """The script's flag when given, else the launcher's; the two may not disagree (the launcher's "no" is its
    default, so only fp16 or bf16 there counts as a choice)."""
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if config.mixed_precision and launcher not in (None, "no", config.mixed_precision):
        raise ConfigError(
            f"--mixed_precision {config.mixed_precision} conflicts with `accelerate launch --mixed_precision "
            f"{launcher}`; give it in one place."
        )
    return config.mixed_precision


def reset_accelerate_state() -> None:
    """Forgets Accelerate's process-wide singletons, so that the next `train` in this process builds its own
    Accelerator (another precision, another process count): benchmarks and tests run many in one process."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def train(config: TrainingConfig) -> TrainResult:
    """Runs the whole job. See the module docstring; the returned pipeline is None except on the main process."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

    setup_start = time.perf_counter()
    output_dir = Path(config.output_dir)
    log_with = None if config.report_to == "none" else config.report_to
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=_mixed_precision(config),
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > accelerator.num_processes:
        # `accelerate launch --multi_gpu` without GPUs starts processes that each train alone, duplicating the work.
        # Checked before the output folder: every such process thinks it is the main one and would lock the folder.
        raise ConfigError(
            f"{launched} processes were launched but Accelerate sees {accelerator.num_processes}: on CPU, set "
            "ACCELERATE_USE_CPU=1 (ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N ...)."
        )
    created = not output_dir.exists()
    checkpointing.prepare_output_dir(config, accelerator.is_main_process)
    accelerator.wait_for_everyone()  # every rank has checked the folder before any rank writes to it
    try:
        with checkpointing.OutputLock(output_dir) if accelerator.is_main_process else contextlib.nullcontext():
            return _train(config, accelerator, log_with, setup_start)
    except BaseException:
        # a start refused before anything was written (bad data, a Hub error) leaves no empty folder behind
        if created and accelerator.is_main_process and output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()
        raise


def _train(config: TrainingConfig, accelerator, log_with: str | None, setup_start: float) -> TrainResult:
    from accelerate.utils import set_seed

    device, output_dir = accelerator.device, Path(config.output_dir)
    if config.num_cpu_threads is not None:
        torch.set_num_threads(config.num_cpu_threads)
    if accelerator.mixed_precision == "fp16" and device.type == "cpu":
        warnings.warn(
            "--mixed_precision fp16 does nothing on CPU (no autocast, no GradScaler): the run is float32. "
            "Use --mixed_precision bf16 on CPU, or fp16 on a GPU.",
            stacklevel=1,
        )
    config, dataset = resolve_data(replace(config, mixed_precision=accelerator.mixed_precision))
    resume_path = checkpointing.resolve_resume(config)

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
    generator, reconstructor, discriminator, optimizer = prepared[:4]
    if source.dataloader is not None:
        source.dataloader, source.accelerator = prepared[4], accelerator
    # not prepared: Accelerate would step it num_processes times per step; it is stepped once per optimizer step.
    # Its state and the EMA's are saved as JSON and safetensors by save_checkpoint, not by Accelerate's
    # register_for_checkpointing, which would unpickle them on resume (weights_only=False).
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer.optimizer, lr_factor(config))
    raw = {
        name: accelerator.unwrap_model(m)
        for name, m in (("generator", generator), ("reconstructor", reconstructor), ("discriminator", discriminator))
    }
    first_step = 0
    if resume_path is not None:
        accelerator.load_state(str(resume_path))
        checkpointing.load_extra_state(resume_path, scheduler, ema)
        first_step = checkpointing.checkpoint_step(resume_path)
        logger.info("resumed from %s at step %d", resume_path, first_step)

    effective_batch = config.train_batch_size * accelerator.num_processes * config.gradient_accumulation_steps
    record = resolved_record(config, num_processes=accelerator.num_processes, effective_batch_size=effective_batch)
    # one segment per launch: a resumed run's card lists each stretch of steps with its data, command and commit
    saved = checkpointing.saved_record(resume_path) if resume_path is not None else {}
    earlier = saved.get("segments", [])
    segment = {"data": config.data_source, "command": record["command"], "commit": record["git_commit"]}
    record["segments"] = [*earlier, {**segment, "from_step": first_step, "to_step": first_step}]
    if accelerator.is_main_process:
        checkpointing.write_json_atomic(output_dir / checkpointing.RECORD_NAME, record)
    if log_with is not None:
        hparams = {k: v if isinstance(v, (bool, str, int, float)) or v is None else str(v) for k, v in record.items()}
        accelerator.init_trackers("veegan", config=hparams)

    def export_pipeline() -> VEEGAN:
        """The pipeline to sample from and save: EMA generator when EMA is on, float32, on this device."""
        gen = ema.model if ema is not None else raw["generator"]
        return VEEGAN(generator=gen, reconstructor=raw["reconstructor"], discriminator=raw["discriminator"])

    def export_to(path: Path) -> None:
        """What a checkpoint holds beyond Accelerate's state: the loop's own state, the record, a loadable pipeline."""
        checkpointing.save_extra_state(path, scheduler, ema)
        checkpointing.write_json_atomic(path / checkpointing.RECORD_NAME, record)
        export_pipeline().save_pretrained(path / "pipeline", dataset_name=config.data_source, training_config=record)

    # lambda_t = lambda * factor(t) under a schedule: a device scalar updated in place, so a compiled step sees the
    # same graph input every step and no host sync is added
    factor = reconstruction_weight_factor(config)
    weight = torch.tensor(config.reconstruction_weight * (factor(first_step) if factor else 1.0), device=device)
    options = LossOptions(
        noise_std=config.reconstructor_noise_std,
        reconstruction_weight=weight if factor else config.reconstruction_weight,
        adversarial_loss=config.adversarial_loss,
        pack_size=raw["discriminator"].config.pack_size,
        unrolled_steps=config.unrolled_steps,
        unrolled_learning_rate=config.discriminator_learning_rate or config.learning_rate,
        discriminator_loss_form=config.discriminator_loss,
        r1_weight=config.r1_weight,
        symmetric_latent_noise=config.symmetric_latent_noise,
        data_reconstruction_weight=config.data_reconstruction_weight,
        reconstructor_input_noise=config.reconstructor_input_noise,
    )

    networks = Networks(generator, reconstructor, discriminator, raw["discriminator"])

    def step_losses(real: torch.Tensor, latents: torch.Tensor) -> StepLosses:
        """The objective's forward pass for one batch: every term of the simultaneous update."""
        return compute_losses(config.objective, networks, real, latents, options)

    if config.compile and OBJECTIVES[config.objective].compiles:
        # The whole forward as one graph, so AOTAutograd also emits the backward as one: inductor fuses the
        # activations, losses and the frozen D view across all three networks. Compiling each network on its own
        # was slower than eager on CPU (274 vs 372 steps/s on grid): per-module guards and graph calls cost more
        # than the fusion saved.
        step_losses = torch.compile(step_losses)

    latent_shape = (config.train_batch_size, config.latent_dim)
    ema_from = int(config.ema_start * config.max_train_steps)  # until this step the EMA is a copy of G
    # --max_train_seconds cuts a run short of its schedules: once FIT_AFTER_STEPS steps have shown the step rate, the
    # schedules are fitted to the steps that fit in the time, so the rate and lambda still decay; a resume keeps them
    fit = config.max_train_seconds is not None and config.fit_schedules_to_time and has_schedule(config)
    fit_at = first_step + FIT_AFTER_STEPS if fit and "fitted_max_train_steps" not in saved else None
    stop_at = saved.get("fitted_max_train_steps") if fit else None
    if stop_at is not None:
        schedule = replace(config, max_train_steps=stop_at)
        scheduler.lr_lambdas[0], factor = lr_factor(schedule), reconstruction_weight_factor(schedule)
        ema_from, record["fitted_max_train_steps"] = int(config.ema_start * stop_at), stop_at
        if factor:
            weight.fill_(config.reconstruction_weight * factor(first_step))
    batches = source.batches(device, first_step)
    progress = reporting.progress_bar(accelerator, first_step, config.max_train_steps)
    running, num_running = None, 0  # device-side sums of the logged losses since the last read-back
    # The common case, one process-local step with no scaler and no accumulation, skips Accelerate's per-step
    # wrappers (a file-system probe in its optimizer step, two no-op contexts): measured +0.5 ms on a 3.3 ms step.
    fast_path = accelerator.scaler is None and config.gradient_accumulation_steps == 1
    alternating = config.update_order == "alternating"
    if alternating and accelerator.num_processes > 1:
        raise ConfigError(
            "--update_order alternating runs on one process: two backward passes per step leave some networks "
            "without gradients in each, which DDP refuses. Use --update_order simultaneous with several processes."
        )
    step_optimizer = optimizer.optimizer if fast_path else optimizer
    no_context = fast_path and accelerator.mixed_precision == "no"
    checkpoints = checkpointing.list_checkpoints(output_dir)
    last_checkpoint = checkpoints[-1].name if checkpoints else None
    scales: list[float] = []  # the GradScaler's loss scale at each logging step (fp16 on GPU only)
    step_end_times: list[float] = []
    stopped_by_time = False
    history: list[dict[str, Any]] = []  # mid-run validations: step, training seconds so far, metrics
    validation_seconds = 0.0
    loop_start = start_time = time.perf_counter()
    step = first_step
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
                if alternating:  # D steps first; then G and F, on the same samples, against the D just updated
                    accelerator.backward(losses.discriminator)
                    step_optimizer.step()  # only D has gradients: Adam skips the others
                    step_optimizer.zero_grad(set_to_none=True)
                    losses.generator = losses.regenerate()  # D's new weights; G's and F's forward is reused
                    accelerator.backward(losses.generator + losses.encoder)
                else:
                    accelerator.backward(losses.total)
                step_optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                    if factor:
                        weight.fill_(config.reconstruction_weight * factor(step))
                step_optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(raw["generator"], copy=step <= ema_from)
        # device-side bookkeeping only: no host sync until the logging interval
        logs = losses.logs()  # a NaN or Inf in any term stays in these sums until they are checked
        running = logs if running is None else {k: running[k] + v for k, v in logs.items()}
        num_running += 1

        if step % config.logging_steps == 0 or step == config.max_train_steps:
            if _diverged(running):
                _stop_on_nonfinite(step, last_checkpoint, config)
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
        step_end_times.append(time.perf_counter())

        if config.checkpointing_steps and step % config.checkpointing_steps == 0 and step < config.max_train_steps:
            if _diverged(running):  # never checkpoint a diverged model over a good one
                _stop_on_nonfinite(step, last_checkpoint, config)
            record["segments"][-1]["to_step"] = step
            saved = checkpointing.save_checkpoint(
                accelerator, output_dir, step, config.checkpoints_total_limit, export_to
            )
            last_checkpoint = saved.name
        validating = config.validation_steps and step % config.validation_steps == 0 and step < config.max_train_steps
        if validating and accelerator.is_main_process:
            validation_start = time.perf_counter()
            scores = reporting.validate_and_log(accelerator, export_pipeline(), config, step, final=False)
            train_seconds = validation_start - start_time - validation_seconds
            history.append({"step": step, "train_seconds": round(train_seconds, 3), **scores})
            validation_seconds += time.perf_counter() - validation_start
        # one process reads its own clock every step; several agree on it (a collective) at logging steps only
        if (
            config.max_train_seconds
            and (accelerator.num_processes == 1 or step % config.logging_steps == 0)
            and _out_of_time(accelerator, start_time, config)
        ):
            stopped_by_time = True
            logger.info("stopping at step %d: --max_train_seconds %s reached", step, config.max_train_seconds)
            break
        # fitted once the rate is known, then refitted at logging steps as the rate drifts (other load, validations)
        if fit_at is not None and (step == fit_at or (step > fit_at and step % config.logging_steps == 0)):
            horizon = fitted_steps(config, step - first_step, time.perf_counter() - start_time, first_step)
            if horizon != stop_at:
                if stop_at is None:
                    logger.info(
                        "--max_train_seconds %g: the schedules are fitted to end at step %d of %d",
                        config.max_train_seconds,
                        horizon,
                        config.max_train_steps,
                    )
                stop_at, schedule = horizon, replace(config, max_train_steps=horizon)
                scheduler.lr_lambdas[0], factor = lr_factor(schedule), reconstruction_weight_factor(schedule)
                ema_from, record["fitted_max_train_steps"] = int(config.ema_start * stop_at), stop_at
        if stop_at is not None and step >= stop_at:
            break
    progress.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the queued kernels belong to the timed steps
        if step_end_times:
            step_end_times[-1] = time.perf_counter()
    if _diverged(running):
        _stop_on_nonfinite(step, last_checkpoint, config)
    _check_ranks_agree(accelerator, raw)
    record["segments"][-1]["to_step"] = step
    wall_seconds = round(time.perf_counter() - start_time, 2)
    # the time ran out within 2% of the fitted schedules' end: their rate and lambda are as good as decayed
    fitted_done = stop_at is not None and step >= FITTED_DONE * stop_at
    if stopped_by_time and not fitted_done:
        reason = f"--max_train_seconds {config.max_train_seconds:g} reached"
    elif fitted_done and step < config.max_train_steps:
        reason = f"completed the schedules fitted to --max_train_seconds {config.max_train_seconds:g}"
    else:
        reason = "completed"
    record["run"] = {  # what happened, for the card and the summary: the options alone say what was asked for
        "steps": step,
        "max_train_steps": config.max_train_steps,
        "stop_reason": reason,
        "wall_seconds": wall_seconds,
        "num_training_images": source.num_images,
        "skipped_images": source.skipped_images,
    }
    if config.checkpointing_steps:
        checkpointing.save_checkpoint(accelerator, output_dir, step, config.checkpoints_total_limit, export_to)

    warmup = min(WARMUP_STEPS, max(0, len(step_end_times) - 1))  # short runs: all but the last step warm up
    timed_from = step_end_times[warmup - 1] if warmup else loop_start
    timed_steps = len(step_end_times) - warmup
    steps_per_second = timed_steps / (step_end_times[-1] - timed_from) if timed_steps > 0 else 0.0
    metrics: dict[str, Any] = {}
    pipe, pushed = None, None
    if accelerator.is_main_process:
        pipe = export_pipeline()
        metrics = reporting.validate_and_log(accelerator, pipe, config, step, final=True)
        metrics.update(
            {
                "train/steps": step,
                "train/max_train_steps": config.max_train_steps,
                "train/stop_reason": record["run"]["stop_reason"],
                "train/num_training_images": source.num_images,
                "train/wall_seconds": wall_seconds,
                "train/validation_seconds": round(validation_seconds, 2),  # mid-run validations, within the wall time
                "train/steps_per_second": steps_per_second,
                "train/samples_per_second": steps_per_second * effective_batch,
                "train/num_processes": accelerator.num_processes,
                "train/stopped_by_time": stopped_by_time,
                "train/skipped_images": source.skipped_images,
                **({"train/loss_scale_min": min(scales), "train/loss_scale_max": max(scales)} if scales else {}),
            }
        )
        checkpointing.write_json_atomic(output_dir / "metrics.json", metrics)
        checkpointing.write_json_atomic(output_dir / checkpointing.RECORD_NAME, record)  # with the run's outcome
        scores = {k: v for k, v in metrics.items() if "/" not in k}
        card = dict(dataset_name=config.data_source, metrics=scores, training_config=record)
        pipe.save_pretrained(output_dir, **card)
        if config.push_to_hub:
            pushed = pipe.push_to_hub(config.hub_model_id, token=config.hub_token, **card)
        logger.info("%s", reporting.summary(config, metrics, pushed))
    accelerator.wait_for_everyone()  # ranks leave together: a rank tearing down DDP early hangs gloo's destructor
    accelerator.end_training()
    return TrainResult(pipe, metrics, config, step_end_times, loop_start, loop_start - setup_start, history)


def _contexts(*managers):
    """Enters several context managers as one."""
    stack = contextlib.ExitStack()
    for manager in managers:
        stack.enter_context(manager)
    return stack


def _out_of_time(accelerator, start_time: float, config: TrainingConfig) -> bool:
    """Has the run used its --max_train_seconds? Every rank gets the main process's answer, so all stop together."""
    over = time.perf_counter() - start_time >= config.max_train_seconds
    if accelerator.num_processes == 1:
        return over  # the host clock alone: no device tensor, no sync
    return bool(accelerator.reduce(torch.tensor(float(over), device=accelerator.device), reduction="max").item())


def _diverged(running: dict[str, torch.Tensor] | None) -> bool:
    """One host sync: is any running loss sum NaN or Inf?"""
    return running is not None and not bool(torch.isfinite(torch.stack(list(running.values()))).all())


def _stop_on_nonfinite(step: int, last_checkpoint: str | None, config: TrainingConfig) -> None:
    kept = f"the last good checkpoint, {last_checkpoint}, is kept" if last_checkpoint else "no checkpoint was saved"
    raise NonFiniteLossError(
        f"the loss became NaN or Inf by step {step} (checked every --logging_steps {config.logging_steps}); training "
        f"stopped and {kept}. Lower --learning_rate (now {config.learning_rate}), try --adversarial_loss "
        "non_saturating or --mixed_precision no, then resume with --resume_from_checkpoint latest."
    )


def _check_ranks_agree(accelerator, raw: dict[str, torch.nn.Module]) -> None:
    """DDP must keep every rank's weights identical; a cheap checksum across ranks proves it for this run."""
    if accelerator.num_processes == 1:
        return
    checksum = torch.stack(
        [torch.cat([p.detach().float().flatten() for p in m.parameters()]).double().sum() for m in raw.values()]
    )
    gathered = accelerator.gather(checksum[None].to(accelerator.device))  # (num_processes, 3)
    if not torch.allclose(gathered, gathered[:1].expand_as(gathered), rtol=0, atol=0):
        raise RuntimeError(f"ranks hold different weights after training: checksums {gathered.tolist()}.")
