"""What a run shows while and after it trains: the progress bar, validation samples and metrics, trackers, and the
end-of-run summary. Rank 0 only; nothing here changes the training."""

import logging
import sys
from pathlib import Path
from typing import Any

from ..evaluation import draw_samples, evaluate
from ..pipeline_veegan import VEEGAN
from .config import TrainingConfig
from .schedules import has_schedule

logger = logging.getLogger("veegan_hf.train")
MAX_VALIDATION_SAMPLES = 2500  # the samples scored at a validation step, unless --num_validation_samples says


def progress_bar(accelerator, first_step: int, total: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=first_step,
        desc="steps",
        disable=not accelerator.is_local_main_process,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30,  # log files get a line every 30 s, not every step
    )


def sample_figure(pipe: VEEGAN, config: TrainingConfig, title: str, metrics: dict[str, Any]):
    """The picture a run saves (`plotting.samples_picture`): an 8x8 image grid, or the vectors over the true modes."""
    from ..plotting import GRID_COLUMNS, GRID_SAMPLES, SCATTER_SAMPLES, samples_picture

    spec = config.builtin_spec
    count = GRID_SAMPLES if pipe.is_image_model else (spec.num_eval_samples if spec else SCATTER_SAMPLES)
    samples = draw_samples(pipe, count, seed=config.seed)
    if metrics and "hq_percent" in metrics:
        title += f"\n{metrics['modes_captured']}/{metrics['num_modes']} modes, {metrics['hq_percent']:.1f}% HQ"
    return samples_picture(samples, config.dataset_name, title, num_columns=GRID_COLUMNS)


def validate_and_log(accelerator, pipe: VEEGAN, config: TrainingConfig, step: int, final: bool) -> dict[str, float]:
    """Samples, a figure under samples/, and the metrics of the built-in dataset (the full protocol when `final`)."""
    samples_dir = Path(config.output_dir) / "samples"
    samples_dir.mkdir(exist_ok=True)
    spec = config.builtin_spec
    scored = spec is not None and (config.eval_at_end or not final)
    # the full protocol at the end; during training at most MAX_VALIDATION_SAMPLES keep validation cheap
    cheap = min(spec.num_eval_samples if spec else 64, MAX_VALIDATION_SAMPLES)
    num = None if final else config.num_validation_samples or cheap
    metrics = evaluate(pipe, config.dataset_name, num_samples=num, seed=config.seed) if scored else {}
    tag = "final" if final else f"step_{step:06d}"
    figure = sample_figure(pipe, config, f"{config.objective} on {config.dataset_name}, step {step}", metrics)
    figure.save(samples_dir / f"{tag}.png")
    _log_figure(accelerator, figure, step)
    accelerator.log({f"metrics/{k}": v for k, v in metrics.items()}, step=step)
    if metrics and not final:
        logger.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "num_samples"))
    return metrics


def _log_figure(accelerator, figure, step: int) -> None:
    import numpy as np

    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            arr = np.asarray(figure)
            tracker.writer.add_image("samples", arr if arr.ndim == 3 else arr[..., None], step, dataformats="HWC")


def summary(config: TrainingConfig, metrics: dict[str, Any], pushed_url: str | None = None) -> str:
    """The end-of-run message: where the model is, the final metrics as a table, the samples and TensorBoard."""
    output_dir = Path(config.output_dir)
    steps, planned = metrics.get("train/steps", "?"), metrics.get("train/max_train_steps", "?")
    reason = metrics.get("train/stop_reason", "completed")
    steps, planned = (f"{n:,}" if isinstance(n, int) else n for n in (steps, planned))  # as the card writes them
    lines = [
        f"Training finished: {steps} of {planned} steps ({reason}) in {metrics.get('train/wall_seconds', 0):.0f} s"
        + (f", on {images:,} training images." if (images := metrics.get("train/num_training_images")) else ".")
    ]
    if reason.startswith("--max_train_seconds") and has_schedule(config):
        lines.append(
            "  note      the run stopped before its schedules ended (the learning rate, lambda or the EMA), so the "
            "model is of an unfinished recipe; --fit_schedules_to_time true fits them to the time"
        )
    lines.append(f"  pipeline  {output_dir.resolve()}  (VEEGAN.from_pretrained({str(output_dir)!r}))")
    shown = {k: v for k, v in metrics.items() if not k.startswith("train/") and k not in ("num_samples", "num_modes")}
    if shown:
        width = max(len(k) for k in shown)
        lines.append("  metrics")
        lines += [
            f"    {k:<{width}}  {v:.4g}" if isinstance(v, float) else f"    {k:<{width}}  {v}" for k, v in shown.items()
        ]
    lines.append(f"  samples   {(output_dir / 'samples').resolve()}")
    if config.report_to == "tensorboard":
        lines.append(f"  logs      tensorboard --logdir {output_dir / 'logs'}")
    if pushed_url:
        lines.append(f"  pushed    {pushed_url}")
    return "\n".join(lines)
