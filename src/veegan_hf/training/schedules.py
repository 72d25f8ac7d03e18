"""What changes over a run, as a multiplier per optimizer step: the learning rate's and VEEGAN's lambda's."""

import math
from collections.abc import Callable

from .config import TrainingConfig


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
