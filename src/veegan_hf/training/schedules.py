"""What changes over a run, as a multiplier per optimizer step: the learning rate's and VEEGAN's lambda's."""

import math
from collections.abc import Callable

from .config import TrainingConfig

FIT_AFTER_STEPS = 100  # the step rate that fits the schedules to --max_train_seconds is measured over these steps
FITTED_DONE = 0.98  # a run stopped by the time this close to its fitted end has, in effect, finished its schedules
FIT_MARGIN = 0.95  # validations and checkpoints cost time too: the fitted schedules end a little before the limit


def lr_factor(config: TrainingConfig) -> Callable[[int], float]:
    """The learning-rate multiplier per step: linear warm-up, constant, then linear or cosine decay to 0."""
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


def reconstruction_weight_factor(config: TrainingConfig) -> Callable[[int], float] | None:
    """lambda's multiplier per step, or `None` for a constant lambda.

    "lr" follows the learning-rate multiplier; "linear" falls from 1 at `reconstruction_weight_decay_start` to 0 at
    `reconstruction_weight_decay_end` (fractions of the run) and stays 0, so the last stretch can train G on the
    adversarial term alone while the rate is still above 0.
    """
    if config.reconstruction_weight_schedule == "lr":
        return lr_factor(config)
    if config.reconstruction_weight_schedule != "linear":
        return None
    total = config.max_train_steps
    start, end = config.reconstruction_weight_decay_start * total, config.reconstruction_weight_decay_end * total

    def factor(step: int) -> float:
        if step < start:
            return 1.0
        if step >= end:
            return 0.0
        return 1 - (step - start) / (end - start)

    return factor


def has_schedule(config: TrainingConfig) -> bool:
    """Does anything change over the run (the rate, lambda, the EMA's start), so that stopping early cuts it short?"""
    return (
        config.lr_scheduler != "constant"
        or config.lr_warmup_steps > 0
        or (config.objective == "veegan" and config.reconstruction_weight_schedule != "constant")
        or (config.use_ema and config.ema_start > 0)
    )


def fitted_steps(config: TrainingConfig, done: int, elapsed: float, first_step: int) -> int:
    """How many steps fit in --max_train_seconds at the measured rate (`done` steps in `elapsed` seconds), with a
    margin: the step the fitted schedules end at, never past --max_train_steps."""
    rate = done / max(elapsed, 1e-9)
    remaining = max(0.0, config.max_train_seconds - elapsed)
    return max(
        first_step + done + 1, min(config.max_train_steps, first_step + done + int(FIT_MARGIN * rate * remaining))
    )
