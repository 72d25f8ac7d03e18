"""Training and sampling speed on CPU: the package's Accelerate loop against a bare PyTorch loop of the same networks.

    python benchmarks/speed.py                   # the full measurement (a quiet machine: nothing else running)
    python benchmarks/speed.py --threads 1       # one core, as table1.py's parallel runs use
    python benchmarks/speed.py --smoke           # every code path but compile, 1 thread, < 60 s: tests/test_speed.py

One run measures, on the same networks, batch, threads and data:
1. training steps/s of `training/train.py`'s `train()` (with and without EMA) and of a bare loop written out below,
   for the `grid` MLP preset and the `stacked_mnist` conv preset, alternating package and bare in each of R repeats;
   the bare loop steps `Adam(foreach=True)`, `train()` the fused Adam kernel where torch builds it (CPU, CUDA);
2. the same with `torch.compile` (an error is recorded instead of raised; off in `--smoke`, `--compile` forces it):
   `train()` compiles the step's whole forward as one graph, the bare loop each network on its own, as hand-written
   loops usually do; the compiled package is also compared with the eager bare loop;
3. latency and throughput of `pipe(...)`, `pipe.encode` and `pipe.invert` at batch 1 and 64, and `encode` ms per
   64-px image on a default-width 64x64x3 DCGAN (goal: <= 5 ms per image);
4. peak resident memory per phase (Linux VmHWM, reset at the start of each phase);
5. cost growth with batch size and image size: bare-loop steps/s and the timed steps' RSS growth, plotted in
   `speed_scaling.png`.

The presets are read at run time, so a retuned preset is measured as it is. Both loops time the steps after a 10-step
warm-up (the allocator, torch.compile) exactly as `train()` does for its `train/steps_per_second`; the 10th-percentile
step time (`step_ms_p10`) gives a second package/bare ratio that a shared CPU disturbs much less. The first compiled
run of a shape pays the cold compile (tens of seconds); later ones hit inductor's on-disk cache. Numbers go to
`benchmarks/results/speed.json` (`speed_smoke.json` with `--smoke`) with the CPU, threads, torch and commit. Nothing
here asserts a speed: the JSON is the judgement.
"""

import argparse
import contextlib
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as nnf
from torch.func import functional_call

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `training.train` is a script folder, not an installed package

from benchmarks.table1 import _cpu_name  # noqa: E402
from training import train as train_module  # noqa: E402
from veegan_hf import VEEGAN, VEEGANGenerator, VEEGANReconstructor  # noqa: E402
from veegan_hf.data import get_mixture, mnist_pixel_values, mnist_split  # noqa: E402

PRESETS = ("grid", "stacked_mnist")
WARMUP_STEPS = 10  # train() times its steps after 10 warm-up steps; the bare loop does the same
# preset -> optimizer steps per training run, warm-up included
FULL_STEPS = {"grid": 1010, "stacked_mnist": 70}
SMOKE_STEPS = {"grid": 12, "stacked_mnist": 4}
ENCODE_GOAL_MS = 5.0  # ms per 64-px image for amortized inversion on a CPU
# name -> (model, batch sizes, steps incl. warm-up): scaling uses the bare loop and a 3-step warm-up
FULL_SCALING = {
    "conv_batch": ("stacked_mnist", (64, 128, 256, 512), 23),
    "mlp_batch": ("grid", (64, 100, 500, 2000), 103),
    "conv_image_size": ("stacked_mnist", (28, 32, 64), 23),
}
SMOKE_SCALING = {
    "conv_batch": ("stacked_mnist", (4, 8), 3),
    "mlp_batch": ("grid", (100, 200), 3),
    "conv_image_size": ("stacked_mnist", (28, 32, 64), 3),
}
SCALING_WARMUP_STEPS = 3
SCALING_IMAGE_BATCH = 64  # the stacked_mnist preset's batch, for the image-size sweep (4 in --smoke)


# ------------------------------------------------------------------------------------------------------- environment


def _commit() -> dict:
    if os.environ.get("VEEGAN_COMMIT"):  # as table1._commit: a copy of the tree on a remote GPU machine
        return {"commit": os.environ["VEEGAN_COMMIT"], "dirty": False}
    try:
        sha = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=REPO, text=True).strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True)
        return {"commit": sha, "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def _load_average() -> list[float] | None:
    """1, 5 and 15 min load: how busy the CPU was, i.e. how far to trust the numbers."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ------------------------------------------------------------------------------------------------------------ memory


def _proc_status_kib(key: str) -> int | None:
    try:
        match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _lifetime_peak_kib() -> int:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset // 1024


def _release_free_memory() -> None:
    """glibc keeps freed blocks mapped; returning them first makes a phase's RSS growth its own allocations."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _reset_peak() -> bool:
    """Linux >= 4.0 resets VmHWM (peak RSS) to the current RSS when "5" is written to clear_refs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status_kib("VmHWM") is not None
    except OSError:
        return False


@contextlib.contextmanager
def peak_memory(record: dict):
    """Fills `record` with the RSS at the start of the block and its peak inside it (MiB).

    With a resettable VmHWM the peak is the block's own; otherwise it is the process's lifetime peak (ru_maxrss), which
    only grows, and `rss_method` says so.
    """
    import psutil

    _release_free_memory()
    resettable = _reset_peak()
    start = psutil.Process().memory_info().rss / 2**20
    yield
    peak = (_proc_status_kib("VmHWM") if resettable else _lifetime_peak_kib()) / 1024
    record.update(
        rss_start_mib=round(start, 1),
        peak_rss_mib=round(peak, 1),
        peak_growth_mib=round(max(0.0, peak - start), 1),
        lifetime_peak_rss_mib=round(_lifetime_peak_kib() / 1024, 1),
        rss_method="VmHWM reset per phase" if resettable else "ru_maxrss (process lifetime)",
    )


# ----------------------------------------------------------------------------------------------------------- helpers


def _summary(values: list[float]) -> dict:
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "values": [round(v, 4) for v in values],
    }


def _error(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return text if len(text) <= 800 else text[:800] + " ..."


def preset_config(preset: str, *flags: str) -> "train_module.TrainingConfig":
    """The preset's resolved TrainingConfig (architecture, resolution, channels filled in), with `flags` applied."""
    config = train_module.parse_config(["--config", preset, *flags])
    train_module.resolve_data_options(config)
    return config


def _reset_accelerate() -> None:
    """Each in-process train() builds its own Accelerator."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


# ----------------------------------------------------------------------------------------------- the package's loop


def package_run(
    preset: str, steps: int, work_dir: Path, *, use_ema: bool, compile: bool, flags: tuple[str, ...] = ()
) -> dict:
    """One `train()` of the preset, in-process; steps/s is the loop's own `train/steps_per_second`.

    `train._progress` is wrapped (not edited) so that the loop's start and the end of every step are timed from the
    outside: setup and warm-up seconds, and per-step quantiles that a busy CPU disturbs less than the mean.
    """
    if compile:
        torch._dynamo.reset()  # every run compiles afresh: earlier runs' graphs must not count against its warm-up
    _reset_accelerate()
    output_dir = Path(tempfile.mkdtemp(prefix=f"{preset}-", dir=work_dir))
    argv = [
        "--config",
        preset,
        "--max_train_steps",
        str(steps),
        "--output_dir",
        str(output_dir),
        "--report_to",
        "none",
        "--validation_steps",
        "1000000",
        "--eval_at_end",
        "false",
        "--checkpointing_steps",
        "none",  # a preset's end-of-run checkpoint is I/O outside the timed loop, and not what is measured
        "--use_ema",
        str(use_ema).lower(),
        "--compile",
        str(compile).lower(),
        *flags,
    ]
    marks: dict[str, float] = {}
    stamps: list[float] = []  # the end of every step, from the progress bar's update
    original = getattr(train_module, "_progress", None)

    def timed_progress(*args, **kwargs):
        bar = original(*args, **kwargs)
        marks["loop_start"], update = time.perf_counter(), bar.update

        def counting_update(n=1):
            stamps.append(time.perf_counter())
            return update(n)

        bar.update = counting_update
        return bar

    start = time.perf_counter()
    try:
        if original is not None:
            train_module._progress = timed_progress
        train_module.train(train_module.parse_config(argv))
    finally:
        if original is not None:
            train_module._progress = original
        _reset_accelerate()
    wall = time.perf_counter() - start
    metrics = json.loads((output_dir / "metrics.json").read_text())
    result = {
        "steps_per_second": metrics["train/steps_per_second"],
        "samples_per_second": metrics["train/samples_per_second"],
        "run_seconds": wall,
    }
    warmup_steps = min(WARMUP_STEPS, steps - 1)
    if "loop_start" in marks and len(stamps) == steps:
        result["setup_seconds"] = marks["loop_start"] - start
        result["warmup_seconds"] = stamps[warmup_steps - 1] - marks["loop_start"] if warmup_steps else 0.0
        result.update(_step_quantiles(stamps[max(0, warmup_steps - 1) :]))
    return result


def _step_quantiles(stamps: list[float]) -> dict:
    """Per-step wall time after the warm-up: the 10th percentile is the one least moved by other processes."""
    durations = sorted(b - a for a, b in itertools.pairwise(stamps))
    if not durations:
        return {}
    pick = lambda q: durations[min(len(durations) - 1, int(q * len(durations)))] * 1e3  # noqa: E731
    return {"step_ms_p10": pick(0.1), "step_ms_p50": pick(0.5)}


# ----------------------------------------------------------------------------------------------------- the bare loop


def batch_sampler(config, device: torch.device | str = "cpu") -> Callable[[], torch.Tensor]:
    """The data as `train()`'s built-in sources make it: fresh mixture draws, or digits gathered per channel, made on
    `device` as `train()` makes them."""
    if config.architecture == "mlp":
        mixture, batch = get_mixture(config.dataset_name), config.train_batch_size
        return lambda: mixture.sample(batch, device=device)  # (batch, data_dim)
    images, _ = mnist_split("train")
    digit_size = config.resolution if config.resolution in (28, 32) else 28
    pool = mnist_pixel_values(images, digit_size)  # (N, 1, H, W) in [-1, 1]
    if config.resolution != digit_size:  # the digit data comes at 28 or 32: scaled up for the 64-px sweep only
        pool = nnf.interpolate(pool, size=config.resolution, mode="bilinear", align_corners=False)
    channels, batch, pool = config.num_channels, config.train_batch_size, pool.to(device)
    return lambda: pool[torch.randint(pool.shape[0], (batch, channels), device=device), 0]  # (batch, channels, H, W)


def bare_run(
    config,
    steps: int,
    *,
    compile: bool,
    warmup_steps: int = WARMUP_STEPS,
    memory: dict | None = None,
    device: torch.device | str = "cpu",
) -> dict:
    """Algorithm 1's simultaneous update written out with no framework: the floor the package loop is compared with.

    With `memory`, the peak RSS of the timed steps alone is recorded there: the per-step working set (activations,
    gradients) above what the warm-up left allocated (weights, Adam state, data).
    """
    if config.objective != "veegan":
        raise ValueError(f"objective={config.objective!r}: the bare loop writes out VEEGAN's step only.")
    if compile:
        torch._dynamo.reset()
    torch.manual_seed(config.seed)
    generator, reconstructor, discriminator = (m.to(device) for m in train_module.build_networks(config))
    d_lr = config.discriminator_learning_rate or config.learning_rate
    optimizer = torch.optim.Adam(
        [
            {"params": generator.parameters(), "lr": config.learning_rate},
            {"params": reconstructor.parameters(), "lr": config.learning_rate},
            {"params": discriminator.parameters(), "lr": d_lr},
        ],
        betas=(config.adam_beta1, config.adam_beta2),
        foreach=True,
    )
    frozen_discriminator = discriminator  # G's view of D: functional_call on the plain module, compiled or not
    if compile:
        generator, reconstructor, discriminator = (torch.compile(m) for m in (generator, reconstructor, discriminator))
    next_batch = batch_sampler(config, device)
    batch, noise_std = config.train_batch_size, config.reconstructor_noise_std
    latent_shape = (batch, config.latent_dim)
    # GPU kernels run asynchronously: a time stamp counts only once the queued steps are done
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None

    def step() -> None:
        real_samples = next_batch()
        latents = torch.randn(latent_shape, device=device)  # (batch, latent_dim)
        fake_samples = generator(latents)
        both_latents = reconstructor(torch.cat([real_samples, fake_samples]))  # (2 * batch, latent_dim)
        real_latents = both_latents[:batch].detach()
        if noise_std > 0:
            real_latents = real_latents + noise_std * torch.randn_like(real_latents)
        logits = discriminator(torch.cat([fake_samples.detach(), real_samples]), torch.cat([latents, real_latents]))
        # softplus(-D(z, G(z))) + softplus(D(F(x) + noise, x))
        d_loss = nnf.softplus(-logits[:batch]).mean() + nnf.softplus(logits[batch:]).mean()
        params = {name: p.detach() for name, p in frozen_discriminator.named_parameters()}
        fake_logits = functional_call(frozen_discriminator, params, (fake_samples, latents))  # (batch,)
        # D(z, G(z)) (or its non-saturating form) + lambda ||z - F(G(z))||^2
        adversarial = fake_logits.mean() if config.adversarial_loss == "paper" else nnf.softplus(fake_logits).mean()
        reconstruction = (latents - both_latents[batch:]).pow(2).sum(dim=1).mean()
        (d_loss + adversarial + config.reconstruction_weight * reconstruction).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    warmup_steps = min(warmup_steps, steps - 1)
    start = time.perf_counter()
    for _ in range(warmup_steps):
        step()
    sync()
    with peak_memory(memory) if memory is not None else contextlib.nullcontext():
        stamps = [time.perf_counter()]
        for _ in range(steps - warmup_steps):
            step()
            stamps.append(time.perf_counter())
        sync()
        stamps[-1] = time.perf_counter()
    steps_per_second = (steps - warmup_steps) / (stamps[-1] - stamps[0])
    return {
        "steps_per_second": steps_per_second,
        "samples_per_second": steps_per_second * batch,
        "warmup_seconds": stamps[0] - start,
        "run_seconds": stamps[-1] - start,
        **_step_quantiles(stamps),
    }


# --------------------------------------------------------------------------------------------------------- training

VARIANTS = ("package", "package_ema", "bare")


def measure_training(preset: str, steps: int, repeats: int, compile: bool, work_dir: Path, device: str = "cpu") -> dict:
    """R repeats of package, package with EMA and bare, in a rotating order so that load changes hit all three."""
    config = preset_config(preset, "--max_train_steps", str(steps))
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    errors: dict[str, str] = {}
    memory: dict[str, dict] = {v: {} for v in VARIANTS}
    for repeat in range(repeats):
        order = VARIANTS[repeat % 3 :] + VARIANTS[: repeat % 3]
        for variant in order:
            if variant in errors:
                continue
            record: dict = {}
            try:
                with peak_memory(record):
                    if variant == "bare":
                        result = bare_run(config, steps, compile=compile, device=device)
                    else:
                        result = package_run(preset, steps, work_dir, use_ema=variant == "package_ema", compile=compile)
            except Exception as err:  # compile on CPU may fail (compiler, inductor); recorded, not raised
                if not compile:
                    raise
                errors[variant] = _error(err)
                continue
            runs[variant].append(result)
            if record.get("peak_rss_mib", 0) >= memory[variant].get("peak_rss_mib", 0):
                memory[variant] = record
            print(
                f"  {preset:<14} {'compile' if compile else 'eager':<8} {variant:<12} repeat {repeat + 1}/{repeats}: "
                f"{result['steps_per_second']:8.2f} steps/s",
                flush=True,
            )
    out: dict = {}
    for variant in VARIANTS:
        if variant in errors:
            out[variant] = {"error": errors[variant]}
            continue
        rows = runs[variant]
        out[variant] = {
            key: _summary([r[key] for r in rows])
            for key in (
                "steps_per_second",
                "samples_per_second",
                "step_ms_p10",
                "step_ms_p50",
                "warmup_seconds",
                "setup_seconds",
                "run_seconds",
            )
            if all(key in r for r in rows)
        }
        out[variant]["memory"] = memory[variant]
    for variant in ("package", "package_ema"):
        if variant in errors or "bare" in errors:
            continue
        # the repeat's own pair: measured minutes apart at most, so the ratio is less noisy than either number
        ratios = [p["steps_per_second"] / b["steps_per_second"] for p, b in zip(runs[variant], runs["bare"])]
        out[f"ratio_{variant}_to_bare"] = {
            **_summary(ratios),
            "of_medians": out[variant]["steps_per_second"]["median"] / out["bare"]["steps_per_second"]["median"],
        }
        if all("step_ms_p10" in r for r in runs[variant] + runs["bare"]):
            # bare p10 step time / package p10 step time: the same ratio, read off the least disturbed steps
            fast = [b["step_ms_p10"] / p["step_ms_p10"] for p, b in zip(runs[variant], runs["bare"])]
            out[f"ratio_{variant}_to_bare"]["from_p10_step_time"] = _summary(fast)
    return out


def training_config_record(preset: str, steps: int) -> dict:
    """The preset as read now (it may be retuned between runs) and what it resolves to."""
    c = preset_config(preset)
    return {
        "preset": train_module.load_preset(preset),
        "resolved": {"architecture": c.architecture, "resolution": c.resolution, "num_channels": c.num_channels},
        "steps_per_run": steps,
        "warmup_steps": min(WARMUP_STEPS, steps - 1),
    }


# --------------------------------------------------------------------------------------------------------- sampling


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
        generator, reconstructor, _ = train_module.build_networks(preset_config(preset))
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
                    ms = _summary(time_calls(fn, repeats, min_seconds))
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


# ---------------------------------------------------------------------------------------------------------- scaling


def measure_scaling(plan: dict, image_batch: int) -> dict:
    """Bare-loop steps/s and the timed steps' peak memory as the batch or the image grows (one run per point)."""
    out: dict = {}
    for name, (preset, values, steps) in plan.items():
        rows = []
        for value in values:
            config = preset_config(preset)
            if name == "conv_image_size":
                config.resolution, config.train_batch_size = value, image_batch
            else:
                config.train_batch_size = value
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


# ------------------------------------------------------------------------------------------------------------ report


def _fmt(entry: dict, key: str = "steps_per_second") -> str:
    if "error" in entry:
        return f"error: {entry['error'][:60]}"
    s = entry[key]
    return f"{s['min']:9.2f} {s['median']:9.2f} {s['max']:9.2f}"


def to_text(payload: dict) -> str:
    meta = payload["meta"]
    lines = [
        f"CPU {meta['cpu']}, {meta['threads']} thread(s), torch {meta['torch']}, commit {meta['commit'][:10]}"
        f"{' (dirty)' if meta['dirty'] else ''}, load {meta['load_average_start']} -> {meta['load_average_end']}",
        "",
        f"{'training':<30} {'min':>9} {'median':>9} {'max':>9}  steps/s   warm-up s   peak RSS MiB",
    ]
    for preset, entry in payload["training"].items():
        for mode in ("eager", "compile"):
            if mode not in entry:
                continue
            block = entry[mode]
            if "skipped" in block:
                lines.append(f"{preset + ' ' + mode:<30} skipped: {block['skipped']}")
                continue
            for variant in VARIANTS:
                v = block[variant]
                warm = f"{v['warmup_seconds']['median']:8.2f}" if "warmup_seconds" in v else " " * 8
                mem = f"{v['memory']['peak_rss_mib']:10.0f}" if v.get("memory") else ""
                lines.append(f"{preset + ' ' + mode + ' ' + variant:<30} {_fmt(v)}  {warm}    {mem}")
            for variant in ("package", "package_ema"):
                r = block.get(f"ratio_{variant}_to_bare")
                if r:
                    lines.append(
                        f"{'  ratio ' + variant + '/bare':<30} {r['min']:9.3f} {r['median']:9.3f} {r['max']:9.3f}"
                        f"  (of medians {r['of_medians']:.3f})"
                    )
            if "ratio_package_to_bare_eager" in block:
                eager_ratio = block["ratio_package_to_bare_eager"]
                lines.append(f"{'  ratio package/bare eager':<30} {eager_ratio:19.3f}  (of medians)")
    sampling, scaling = payload.get("sampling") or {}, payload.get("scaling") or {}
    if sampling:
        lines += ["", f"{'sampling':<34} {'batch':>5} {'ms/call':>10} {'ms/sample':>10} {'samples/s':>11}"]
    for name, entry in sampling.items():
        if name == "encode_64px":
            continue
        for r in entry["results"]:
            lines.append(
                f"{name + ' ' + r['op']:<34} {r['batch_size']:>5} {r['ms_per_call']['median']:10.3f} "
                f"{r['ms_per_sample']:10.3f} {r['samples_per_second']:11.0f}"
            )
    if sampling:
        enc = sampling["encode_64px"]
        per_image = ", ".join(f"{k.split('_')[-1]} {v:.2f} ms" for k, v in enc.items() if k.startswith("ms_per_image"))
        lines.append(f"encode 64x64x3 (goal <= {enc['goal_ms_per_image']} ms/image): {per_image}")
    if scaling:
        lines += [
            "",
            f"{'scaling (bare loop)':<34} {'batch':>5} {'px':>4} {'steps/s':>9} {'samples/s':>10} {'+MiB':>7}",
        ]
    for name, entry in scaling.items():
        for p in entry["points"]:
            lines.append(
                f"{name:<34} {p['batch_size']:>5} {p['resolution'] or '':>4} {p['steps_per_second']:9.2f} "
                f"{p['samples_per_second']:10.0f} {p['memory']['peak_growth_mib']:7.1f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few steps and 1 repeat: checks every code path")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measurement (default 3; 1 in --smoke)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: every CPU; 1 in --smoke, which checks code paths, not speed, and "
        "stays quick on a shared CI CPU where spinning OpenMP threads wait on each other)",
    )
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--steps", type=int, default=None, help="steps per training run for every preset")
    compile_group = parser.add_mutually_exclusive_group()
    compile_group.add_argument("--compile", dest="compile", action="store_true", default=None, help="force on")
    compile_group.add_argument("--no_compile", dest="compile", action="store_false", help="skip torch.compile")
    parser.add_argument("--invert_steps", type=int, default=None, help="pipe.invert num_steps (default 50; 2 smoke)")
    parser.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="where training runs (both loops); sampling and scaling are CPU measurements and need cpu",
    )
    parser.add_argument("--skip_sampling", action="store_true")
    parser.add_argument("--skip_scaling", action="store_true")
    parser.add_argument("--results_dir", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--work_dir", default=None, help="where training runs write (default: a temporary folder)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    if args.device == "cuda" and not (args.skip_sampling and args.skip_scaling):
        parser.error("--device cuda measures training only: add --skip_sampling --skip_scaling.")
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # train()'s Accelerator would otherwise pick a GPU
    repeats = args.repeats or (1 if smoke else 3)
    # compile costs minutes per run on CPU: on by default in the full run, off in --smoke unless forced
    compile = (not smoke) if args.compile is None else args.compile
    steps = {p: args.steps or (SMOKE_STEPS if smoke else FULL_STEPS)[p] for p in args.presets}
    invert_steps = args.invert_steps or (2 if smoke else 50)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or (1 if smoke else os.cpu_count() or 1))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="speed_"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    meta = {
        "cpu": _cpu_name(),
        "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device == "cuda" else _cpu_name(),
        "num_cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        **_commit(),
        "smoke": smoke,
        "repeats": repeats,
        "command": "python benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "load_average_start": _load_average(),
        "notes": [
            "steps/s: after a 10-step warm-up, as train() reports it; step_ms_p10 is the 10th-percentile step time, "
            "which other processes on the CPU disturb least",
            "compile warmup_seconds include compilation; inductor's on-disk cache makes every compile after the "
            "first of a shape faster",
            "peak_rss_mib: the phase's own peak (VmHWM reset at its start) where rss_method says so",
        ],
    }
    try:
        training: dict = {}
        for preset in args.presets:
            training[preset] = {"config": training_config_record(preset, steps[preset])}
            training[preset]["eager"] = measure_training(preset, steps[preset], repeats, False, work, args.device)
            if compile:
                block = training[preset]["compile"] = measure_training(
                    preset, steps[preset], repeats, True, work, args.device
                )
                if "error" not in block["package"]:
                    # the --compile goal: the compiled package against the hand-written loop as people run it, eager
                    block["ratio_package_to_bare_eager"] = (
                        block["package"]["steps_per_second"]["median"]
                        / training[preset]["eager"]["bare"]["steps_per_second"]["median"]
                    )
            else:
                training[preset]["compile"] = {
                    "skipped": "--smoke (use --compile to force)" if smoke else "--no_compile"
                }
        payload = {"meta": meta, "training": training}
        if not args.skip_sampling:
            payload["sampling"] = measure_sampling(
                repeats=repeats,
                min_seconds=0.01 if smoke else 0.5,
                invert_steps=invert_steps,
                batches=(1, 4) if smoke else (1, 64),
            )
        figures = []
        results = Path(args.results_dir)
        results.mkdir(parents=True, exist_ok=True)
        tag = ("_smoke" if smoke else "") + ("_cuda" if args.device == "cuda" else "")
        if not args.skip_scaling:
            payload["scaling"] = measure_scaling(
                SMOKE_SCALING if smoke else FULL_SCALING, image_batch=4 if smoke else SCALING_IMAGE_BATCH
            )
            plot_scaling(payload["scaling"], results / f"speed{tag}_scaling.png")
            figures.append(f"speed{tag}_scaling.png")
        payload["figures"] = figures
    finally:
        torch.set_num_threads(previous_threads)
    meta["load_average_end"] = _load_average()
    meta["wall_seconds"] = round(time.perf_counter() - start, 1)
    (results / f"speed{tag}.json").write_text(json.dumps(payload, indent=2, allow_nan=False))
    print(to_text(payload))
    print(f"wrote {results / f'speed{tag}.json'} ({meta['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
