"""Latency of the pipeline's calls and the training cost's growth with batch and image size, for `benchmarks/speed.py`.

Random weights throughout: the speed of a forward pass does not depend on training.
"""

import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..data import get_mixture
from ..modeling_veegan import VEEGANGenerator, VEEGANReconstructor
from ..pipeline_veegan import VEEGAN
from ..training import TrainingConfig, parse_config
from ..training.networks import build_networks
from ..training.sources import resolve_data
from .memory import peak_memory
from .reference import bare_run

ENCODE_GOAL_MS = 5.0  # ms per 64-px image for amortized inversion on a CPU
SCALING_WARMUP_STEPS = 3


def preset_config(preset: str, *flags: str) -> TrainingConfig:
    """The preset's resolved TrainingConfig (architecture, resolution, channels filled in), with `flags` applied."""
    return resolve_data(parse_config(["--config", preset, *flags]))[0]


def summary(values: list[float]) -> dict:
    """min, median and max of repeated measurements, and the values themselves."""
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "values": [round(v, 4) for v in values],
    }


def time_calls(fn: Callable[[], object], repeats: int, min_seconds: float) -> list[float]:
    """ms per call in each of `repeats` rounds of at least `min_seconds`, after 2 warm-up calls."""
    fn()
    fn()
    per_call = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while calls < 1 or time.perf_counter() - start < min_seconds:
            fn()
            calls += 1
        per_call.append((time.perf_counter() - start) / calls * 1e3)
    return per_call


def sampling_pipelines() -> dict[str, VEEGAN]:
    """Random weights: the speed of a forward pass does not depend on training."""
    torch.manual_seed(0)
    pipes = {}
    for name, preset in (("mlp_grid", "grid"), ("conv_stacked_mnist", "stacked_mnist")):
        generator, reconstructor, _ = build_networks(preset_config(preset))
        pipes[name] = VEEGAN(generator=generator, reconstructor=reconstructor)
    # the default widths (base_channels=64) at 64x64x3, DCGAN's latent_dim=100
    dcgan = dict(architecture="dcgan", latent_dim=100, image_size=64, num_channels=3)
    pipes["dcgan64"] = VEEGAN(generator=VEEGANGenerator(**dcgan), reconstructor=VEEGANReconstructor(**dcgan))
    return pipes


def _inputs(pipe: VEEGAN, batch: int) -> torch.Tensor:
    if pipe.is_image_model:
        c = pipe.generator.config
        return torch.rand(batch, c.num_channels, c.image_size, c.image_size)  # [0, 1], as encode() takes them
    return get_mixture("grid").sample(batch)  # (batch, 2)


def measure_sampling(repeats: int, min_seconds: float, invert_steps: int, batches: tuple[int, ...]) -> dict:
    pipes = sampling_pipelines()
    out: dict = {}
    for name, pipe in pipes.items():
        record: dict = {}
        rows = []
        with peak_memory(record):
            for batch in batches:
                # 64-px inversion by optimization takes minutes per call: encode is that model's path
                ops = _sampling_ops(pipe, batch, invert_steps if name != "dcgan64" else 0)
                for op, fn in ops.items():
                    ms = summary(time_calls(fn, repeats, min_seconds))
                    row = {
                        "op": op,
                        "batch_size": batch,
                        "ms_per_call": ms,
                        "ms_per_sample": ms["median"] / batch,
                        "samples_per_second": batch / ms["median"] * 1e3,
                    }
                    if op == "invert":
                        row["num_steps"] = invert_steps
                        row["ms_per_step"] = ms["median"] / invert_steps
                    rows.append(row)
        config = dict(pipe.generator.config)
        out[name] = {
            "config": {k: config[k] for k in ("architecture", "latent_dim", "data_dim", "image_size", "base_channels")},
            "results": rows,
            "memory": record,
        }
    encode = {r["batch_size"]: r["ms_per_sample"] for r in out["dcgan64"]["results"] if r["op"] == "encode"}
    out["encode_64px"] = {
        "goal_ms_per_image": ENCODE_GOAL_MS,
        **{f"ms_per_image_batch{b}": v for b, v in encode.items()},
        "meets_goal": {f"batch{b}": v <= ENCODE_GOAL_MS for b, v in encode.items()},
    }
    return out


def _sampling_ops(pipe: VEEGAN, batch: int, invert_steps: int) -> dict[str, Callable[[], object]]:
    """The calls to time at one batch size; `invert_steps=0` leaves inversion out."""
    x = _inputs(pipe, batch)
    ops: dict[str, Callable[[], object]] = {
        "sample": lambda: pipe(batch_size=batch, output_type="pt"),
        "encode": lambda: pipe.encode(x),
    }
    if pipe.is_image_model:
        ops["sample_pil"] = lambda: pipe(batch_size=batch, output_type="pil")
        # F's bare forward: how much of encode() is input checking and conversion
        ops["reconstructor_forward"] = lambda: _no_grad_forward(pipe.reconstructor, x * 2 - 1)
    if invert_steps:
        ops["invert"] = lambda: pipe.invert(x, num_steps=invert_steps)
    return ops


@torch.no_grad()
def _no_grad_forward(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module(x)


def measure_scaling(plan: dict, image_batch: int) -> dict:
    """Bare-loop steps/s and the timed steps' peak memory as the batch or the image grows (one run per point)."""
    out: dict = {}
    for name, (preset, values, steps) in plan.items():
        rows = []
        for value in values:
            config = preset_config(preset)
            if name == "conv_image_size":
                config = dataclasses.replace(config, resolution=value, train_batch_size=image_batch)
            else:
                config = dataclasses.replace(config, train_batch_size=value)
            record: dict = {}
            result = bare_run(config, steps, compile=False, warmup_steps=SCALING_WARMUP_STEPS, memory=record)
            rows.append(
                {
                    "batch_size": config.train_batch_size,
                    "resolution": config.resolution,
                    "steps_per_second": result["steps_per_second"],
                    "samples_per_second": result["samples_per_second"],
                    # from the 10th-percentile step: what the plot shows, as one run per point is exposed to noise
                    "samples_per_second_p10": config.train_batch_size / result["step_ms_p10"] * 1e3,
                    "memory": record,
                }
            )
            print(f"  {name:<16} {value:>5}: {result['samples_per_second']:10.0f} samples/s", flush=True)
        out[name] = {"preset": preset, "steps_per_run": steps, "warmup_steps": SCALING_WARMUP_STEPS, "points": rows}
    return out


def plot_scaling(scaling: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(scaling), figsize=(4 * len(scaling), 6), dpi=100, squeeze=False)
    for col, (name, entry) in enumerate(scaling.items()):
        key = "resolution" if name == "conv_image_size" else "batch_size"
        xs = [p[key] for p in entry["points"]]
        axes[0, col].plot(xs, [p["samples_per_second"] for p in entry["points"]], "o-", label="mean")
        axes[0, col].plot(xs, [p["samples_per_second_p10"] for p in entry["points"]], "s--", label="p10 step time")
        axes[0, col].set_title(f"{name} ({entry['preset']} networks, bare loop)", fontsize=9)
        axes[0, col].set_ylabel("training samples / s")
        axes[0, col].legend(fontsize=8)
        axes[1, col].plot(xs, [p["memory"]["peak_growth_mib"] for p in entry["points"]], "o-", color="#d62728")
        axes[1, col].set_ylabel("per-step peak RSS growth (MiB)")
        axes[1, col].set_xlabel("image side (px)" if key == "resolution" else "batch size")
        for ax in axes[:, col]:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(x) for x in xs])
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
