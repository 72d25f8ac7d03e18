"""A run's meter: its clock, the device-side sums of the logged losses, and the validations' history.

The loop adds each step's losses here without a host sync; a logging step reads the means back in one sync. The step
times give steps/s after a warm-up, and the validations' own time is kept apart so that coverage can be set against
training time.
"""

import time
from dataclasses import dataclass, field
from typing import Any

import torch

WARMUP_STEPS = 10  # steps/s is timed after these (allocator, torch.compile, first dataloader batches)


@dataclass
class Meter:
    """What a run measures as it goes; `Run.meter`.

    Attributes:
        setup_start (`float`): `time.perf_counter()` when the launch began.
        start_time (`float`): `time.perf_counter()` just before the first step (`start`).
        progress: the progress bar (`reporting.progress_bar`), None until the run starts.
        running (`dict[str, torch.Tensor]` or `None`): the device-side sums of the logged losses since the last read.
        num_running (`int`): how many steps those sums hold.
        scales (`list[float]`): the GradScaler's loss scale at logging steps (fp16 on GPU).
        step_end_times (`list[float]`): `time.perf_counter()` at the end of every step.
        history (`list[dict]`): the mid-run validations, each with its step and training seconds.
        validation_seconds (`float`): the time spent validating, within the wall time.
    """

    setup_start: float
    start_time: float = 0.0
    progress: Any = None
    running: dict[str, torch.Tensor] | None = None
    num_running: int = 0
    scales: list[float] = field(default_factory=list)
    step_end_times: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    validation_seconds: float = 0.0

    def start(self) -> float:
        """Starts the clock of the steps; returns the start time."""
        self.start_time = time.perf_counter()
        return self.start_time

    def elapsed(self) -> float:
        """Wall seconds since the first step began, validations included."""
        return time.perf_counter() - self.start_time

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        """Adds one step's losses to the sums: device-side, no host sync. A NaN or Inf stays in them until checked."""
        self.running = logs if self.running is None else {k: self.running[k] + v for k, v in logs.items()}
        self.num_running += 1

    def diverged(self) -> bool:
        """One host sync: is any running sum NaN or Inf?"""
        return self.running is not None and not bool(torch.isfinite(torch.stack(list(self.running.values()))).all())

    def read_back(self) -> dict[str, float]:
        """The means since the last read (one host sync), and empty sums."""
        values = {k: v.item() / self.num_running for k, v in self.running.items()}
        self.running, self.num_running = None, 0
        return values

    def end_step(self) -> None:
        self.progress.update(1)
        self.step_end_times.append(time.perf_counter())

    def add_validation(self, step: int, began: float, scores: dict[str, Any]) -> None:
        """Records a validation that began at `began`: its step, the training seconds before it, and its scores."""
        train_seconds = began - self.start_time - self.validation_seconds
        self.history.append({"step": step, "train_seconds": round(train_seconds, 3), **scores})
        self.validation_seconds += time.perf_counter() - began

    def steps_per_second(self) -> float:
        """Steps/s after the first `WARMUP_STEPS` steps (short runs: all but the last step warm up)."""
        times = self.step_end_times
        warmup = min(WARMUP_STEPS, max(0, len(times) - 1))
        timed_from = times[warmup - 1] if warmup else self.start_time
        timed_steps = len(times) - warmup
        return timed_steps / (times[-1] - timed_from) if timed_steps > 0 else 0.0
