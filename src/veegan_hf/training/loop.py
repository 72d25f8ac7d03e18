"""The Accelerate training loop: a resolved config in, a `TrainResult` out. Each objective's forward and losses come
from `objectives.OBJECTIVES`, with their options from `config.loss_options`; the loop adds the schedules of the
VEEGAN ones.

TrainingConfig -> `setup.set_up` (data, networks, one `accelerator.prepare`: a `Run`, with its `schedules.Schedules`
and its `meter.Meter`) -> `_train_step` / `_after_step` per step -> `_finish` (`save_pretrained` / `push_to_hub`).
Runs unchanged on one CPU, several CPU processes (gloo), many GPUs and several machines: every rank runs the same
steps; only I/O and logging are rank-0 only. By default each step is Algorithm 1's simultaneous update: the
objective's terms are summed and backpropagated once, and one optimizer with a group per network steps;
`--update_order alternating` steps D first, then G and F against the updated D.
"""

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..objectives import StepLosses
from ..pipeline_veegan import VEEGAN
from . import checkpointing, reporting
from .config import ConfigError, TrainingConfig
from .schedules import FITTED_DONE, fitted_steps
from .setup import Run, set_up

logger = logging.getLogger("veegan_hf.train")


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
    """Set up, the steps, the end of the run."""
    run = set_up(config, accelerator, log_with, setup_start)
    run.meter.start()
    step = run.first_step
    for step in range(run.first_step + 1, run.config.max_train_steps + 1):
        losses = _train_step(run, step)
        if _after_step(run, step, losses):
            break
    return _finish(run, step)


def _train_step(run: Run, step: int) -> StepLosses:
    """One optimizer step of every network (over the accumulated batches), the schedules' next values, the EMA, and
    the losses added to the device-side sums that the logging steps read back."""
    config, accelerator = run.config, run.accelerator
    latent_shape = (config.train_batch_size, config.latent_dim)
    for _ in range(config.gradient_accumulation_steps):
        real = next(run.batches)
        with run.step_context():
            latents = torch.randn(latent_shape, device=accelerator.device)
            losses = run.step_losses(real, latents)
            if run.alternating:  # D steps first; then G and F, on the same samples, against the D just updated
                accelerator.backward(losses.discriminator)
                run.optimizer.step()  # only D has gradients: Adam skips the others
                run.optimizer.zero_grad(set_to_none=True)
                losses.generator = losses.regenerate()  # D's new weights; G's and F's forward is reused
                accelerator.backward(losses.generator + losses.encoder)
            else:
                accelerator.backward(losses.total)
            run.optimizer.step()
            if accelerator.sync_gradients:
                run.schedules.step(step)
            run.optimizer.zero_grad(set_to_none=True)
    if run.ema is not None:
        run.ema.update(run.raw["generator"], copy=step <= run.schedules.ema_from)
    run.meter.add(losses.logs())  # device-side bookkeeping only: no host sync until the logging interval
    return losses


def _after_step(run: Run, step: int, losses: StepLosses) -> bool:
    """Logging, checkpoints, validation and the time limit after one step; True when the run stops here."""
    config, accelerator, meter = run.config, run.accelerator, run.meter
    if step % config.logging_steps == 0 or step == config.max_train_steps:
        _log(run, step)
    meter.end_step()
    if config.checkpointing_steps and step % config.checkpointing_steps == 0 and step < config.max_train_steps:
        if meter.diverged():  # never checkpoint a diverged model over a good one
            _stop_on_nonfinite(step, run.last_checkpoint, config)
        run.record["segments"][-1]["to_step"] = step
        saved = checkpointing.save_checkpoint(
            accelerator, run.output_dir, step, config.checkpoints_total_limit, run.export_to
        )
        run.last_checkpoint = saved.name
    validating = config.validation_steps and step % config.validation_steps == 0 and step < config.max_train_steps
    if validating and accelerator.is_main_process:
        validation_start = time.perf_counter()
        where = run.output_dir / "samples"
        with checkpointing.disk_full_guard(where, f"the samples of step {step}", 2**20, run.last_checkpoint):
            scores = reporting.validate_and_log(accelerator, run.export_pipeline(), config, step, final=False)
        meter.add_validation(step, validation_start, scores)
    # one process reads its own clock every step; several agree on it (a collective) at logging steps only
    if (
        config.max_train_seconds
        and (accelerator.num_processes == 1 or step % config.logging_steps == 0)
        and _out_of_time(accelerator, meter.elapsed(), config)
    ):
        run.stopped_by_time = True
        logger.info("stopping at step %d: --max_train_seconds %s reached", step, config.max_train_seconds)
        return True
    schedules = run.schedules
    if schedules.fitting_due(step):
        horizon = fitted_steps(config, step - run.first_step, meter.elapsed(), run.first_step)
        if horizon != schedules.stop_at:
            if schedules.stop_at is None:
                logger.info(
                    "--max_train_seconds %g: the schedules are fitted to end at step %d of %d",
                    config.max_train_seconds,
                    horizon,
                    config.max_train_steps,
                )
            run.fit_schedules(horizon)
    return schedules.stop_at is not None and step >= schedules.stop_at


def _log(run: Run, step: int) -> None:
    """The losses averaged since the last logging step, the rate and the speed: one host sync."""
    meter = run.meter
    if meter.diverged():
        _stop_on_nonfinite(step, run.last_checkpoint, run.config)
    values = meter.read_back()
    values["lr"] = run.schedules.lr.get_last_lr()[0]
    values["perf/steps_per_second"] = (step - run.first_step) / meter.elapsed()
    if run.accelerator.scaler is not None:
        values["perf/loss_scale"] = run.accelerator.scaler.get_scale()
        meter.scales.append(values["perf/loss_scale"])
    run.accelerator.log(values, step=step)
    # refresh=False: the bar redraws on its own schedule; a forced redraw floods log files
    meter.progress.set_postfix(
        {k.split("/")[-1]: f"{v:.3g}" for k, v in values.items() if k.startswith("loss/")}, refresh=False
    )


def _stop_reason(run: Run, step: int) -> str:
    config = run.config
    # the time ran out within 2% of the fitted schedules' end: their rate and lambda are as good as decayed
    stop_at = run.schedules.stop_at
    fitted_done = stop_at is not None and step >= FITTED_DONE * stop_at
    if run.stopped_by_time and not fitted_done:
        return f"--max_train_seconds {config.max_train_seconds:g} reached"
    if fitted_done and step < config.max_train_steps:
        return f"completed the schedules fitted to --max_train_seconds {config.max_train_seconds:g}"
    return "completed"


def _finish(run: Run, step: int) -> TrainResult:
    """The end of the run: the last checks and checkpoint, the final evaluation, the pipeline, card and summary."""
    config, accelerator, source, meter = run.config, run.accelerator, run.source, run.meter
    meter.progress.close()
    if accelerator.device.type == "cuda":
        torch.cuda.synchronize(accelerator.device)  # the queued kernels belong to the timed steps
        if meter.step_end_times:
            meter.step_end_times[-1] = time.perf_counter()
    if meter.diverged():
        _stop_on_nonfinite(step, run.last_checkpoint, config)
    _check_ranks_agree(accelerator, run.raw)
    run.record["segments"][-1]["to_step"] = step
    wall_seconds = round(meter.elapsed(), 2)
    run.record["run"] = {  # what happened, for the card and the summary: the options alone say what was asked for
        "steps": step,
        "max_train_steps": config.max_train_steps,
        "stop_reason": _stop_reason(run, step),
        "wall_seconds": wall_seconds,
        "num_training_images": source.num_images,
        "skipped_images": source.skipped_images,
    }
    if config.checkpointing_steps:
        saved = checkpointing.save_checkpoint(
            accelerator, run.output_dir, step, config.checkpoints_total_limit, run.export_to
        )
        run.last_checkpoint = saved.name

    steps_per_second = meter.steps_per_second()
    metrics: dict[str, Any] = {}
    pipe = None
    if accelerator.is_main_process:
        pipe = run.export_pipeline()
        # G, F and D's weights, the samples and the card: about what the export writes
        size = sum(p.numel() * p.element_size() for net in run.raw.values() for p in net.parameters()) + 2**20
        with checkpointing.disk_full_guard(run.output_dir, "the final pipeline and card", size, run.last_checkpoint):
            metrics = _export(run, pipe, step, steps_per_second, wall_seconds)
    accelerator.wait_for_everyone()  # ranks leave together: a rank tearing down DDP early hangs gloo's destructor
    # the trackers end here, but not the process group, which `accelerator.end_training()` would also destroy: this
    # run's DDP wrappers still hold it, and gloo's destructor can then wait forever for the GIL this thread holds (a
    # finished 2-process CI run hung so). The command line destroys it once they are collected (_shutdown_distributed)
    for tracker in accelerator.trackers:
        tracker.finish()
    return TrainResult(
        pipe,
        metrics,
        config,
        meter.step_end_times,
        meter.start_time,
        meter.start_time - meter.setup_start,
        meter.history,
    )


def _export(run: Run, pipe: VEEGAN, step: int, steps_per_second: float, wall_seconds: float) -> dict[str, Any]:
    """The final evaluation, `metrics.json`, the record, the pipeline with its card, and the push: the main process."""
    config, accelerator, source = run.config, run.accelerator, run.source
    metrics = reporting.validate_and_log(accelerator, pipe, config, step, final=True)
    scales = run.meter.scales
    scales = {"train/loss_scale_min": min(scales), "train/loss_scale_max": max(scales)} if scales else {}
    metrics.update(
        {
            "train/steps": step,
            "train/max_train_steps": config.max_train_steps,
            "train/stop_reason": run.record["run"]["stop_reason"],
            "train/num_training_images": source.num_images,
            "train/wall_seconds": wall_seconds,
            "train/validation_seconds": round(run.meter.validation_seconds, 2),  # within the wall time
            "train/steps_per_second": steps_per_second,
            "train/samples_per_second": steps_per_second * run.effective_batch,
            "train/num_processes": accelerator.num_processes,
            "train/stopped_by_time": run.stopped_by_time,
            "train/skipped_images": source.skipped_images,
            **scales,
        }
    )
    checkpointing.write_json_atomic(run.output_dir / "metrics.json", metrics)
    checkpointing.write_json_atomic(run.output_dir / checkpointing.RECORD_NAME, run.record)  # with the outcome
    scores = {k: v for k, v in metrics.items() if "/" not in k}
    card = dict(dataset_name=config.data_source, metrics=scores, training_config=run.record)
    pipe.save_pretrained(run.output_dir, **card)
    pushed = None
    if config.push_to_hub:
        try:
            pushed = pipe.push_to_hub(config.hub_model_id, token=config.hub_token, **card)
        except (ValueError, OSError) as err:  # the Hub kept failing, or refused: the model is saved all the same
            again = f"VEEGAN.from_pretrained({str(run.output_dir)!r}).push_to_hub({config.hub_model_id!r})"
            raise ValueError(
                f"training finished and the model is saved in {run.output_dir}, but pushing it to "
                f'{config.hub_model_id} failed: {err} Push it again with: python -c "from veegan_hf import VEEGAN; '
                f'{again}"'
            ) from None
    logger.info("%s", reporting.summary(config, metrics, pushed))
    return metrics


def _out_of_time(accelerator, elapsed: float, config: TrainingConfig) -> bool:
    """Has the run used its --max_train_seconds? Every rank gets the main process's answer, so all stop together."""
    over = elapsed >= config.max_train_seconds
    if accelerator.num_processes == 1:
        return over  # the host clock alone: no device tensor, no sync
    return bool(accelerator.reduce(torch.tensor(float(over), device=accelerator.device), reduction="max").item())


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
