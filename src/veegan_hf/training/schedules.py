"""What changes over a run, as a multiplier per optimizer step: the learning rate's and VEEGAN's lambda's; and
`Schedules`, the run's schedules as the loop steps them."""

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

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


@dataclass
class Schedules:
    """A run's schedules as the loop steps them: the learning rate, lambda_t, the EMA's start, and the end they are
    fitted to when --max_train_seconds cuts the run short (`fit`).

    Attributes:
        config (`TrainingConfig`): the run's config; its `max_train_steps` is the unfitted end.
        lr (`LambdaLR`): the rate schedule over the one optimizer, stepped once per optimizer step.
        weight (`torch.Tensor`): lambda_t = lambda * factor(t), a device scalar filled in place, so that a compiled step
            sees the same graph input every step and no host sync is added.
        factor (`Callable` or `None`): lambda's multiplier per step; None for a constant lambda.
        ema_from (`int`): until this step the EMA is a copy of G.
        fit_at (`int` or `None`): the step at which the schedules are first fitted to --max_train_seconds.
        stop_at (`int` or `None`): the fitted end.
    """

    config: TrainingConfig
    lr: torch.optim.lr_scheduler.LambdaLR
    weight: torch.Tensor
    factor: Callable[[int], float] | None
    ema_from: int
    fit_at: int | None
    stop_at: int | None = None

    @classmethod
    def start(
        cls, config: TrainingConfig, lr: torch.optim.lr_scheduler.LambdaLR, first_step: int, fit: bool, device
    ) -> "Schedules":
        """The schedules at `first_step`; with `fit`, first fitted once FIT_AFTER_STEPS steps show the rate."""
        weight = torch.tensor(config.reconstruction_weight, device=device)
        ema_from = int(config.ema_start * config.max_train_steps)
        fit_at = first_step + FIT_AFTER_STEPS if fit else None
        schedules = cls(config, lr, weight, reconstruction_weight_factor(config), ema_from, fit_at)
        schedules.set_weight(first_step)
        return schedules

    def step(self, step: int) -> None:
        """After an optimizer step: the next rate, and lambda_t for `step`."""
        self.lr.step()
        self.set_weight(step)

    def set_weight(self, step: int) -> None:
        """lambda_t for `step`; a constant lambda stays as it is."""
        if self.factor:
            self.weight.fill_(self.config.reconstruction_weight * self.factor(step))

    def fit(self, horizon: int) -> None:
        """The lr, lambda and EMA schedules of a run that ends at step `horizon`."""
        schedule = replace(self.config, max_train_steps=horizon)
        self.lr.lr_lambdas[0], self.factor = lr_factor(schedule), reconstruction_weight_factor(schedule)
        self.ema_from, self.stop_at = int(self.config.ema_start * horizon), horizon

    def fitting_due(self, step: int) -> bool:
        """Fit once the rate is known, then refit at logging steps as the rate drifts (other load, validations)."""
        at, every = self.fit_at, self.config.logging_steps
        return at is not None and (step == at or (step > at and step % every == 0))
