"""Training and sampling speed: the package's Accelerate loop against a bare PyTorch loop of the same networks.

    python benchmarks/speed.py                   # the full measurement (a quiet machine: nothing else running)
    python benchmarks/speed.py --threads 1       # one core, as table1.py's parallel runs use
    python benchmarks/speed.py --device cuda --skip_sampling --skip_scaling   # training on a GPU
    python benchmarks/speed.py --smoke           # every code path but compile, 1 thread, < 60 s: tests/test_speed.py

One run measures, on the same networks, batch, threads and data:
1. training steps/s of `veegan_hf.training.train` (with and without EMA) and of the bare loop of
   `veegan_hf.benchmarking.reference`, for the `grid` MLP preset and the `stacked_mnist` conv preset, alternating
   package and bare in each of R repeats; the bare loop steps `Adam(foreach=True)`, `train()` the fused Adam kernel;
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
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from veegan_hf.benchmarking.measure import measure_sampling, measure_scaling, plot_scaling, preset_config, summary
from veegan_hf.benchmarking.memory import peak_memory
from veegan_hf.benchmarking.reference import bare_run, step_quantiles
from veegan_hf.provenance import REPO, cpu_name, device_name, git_commit, load_average
from veegan_hf.training import load_preset, parse_config, reset_accelerate_state, train
from veegan_hf.training.meter import WARMUP_STEPS

PRESETS = ("grid", "stacked_mnist")
# preset -> optimizer steps per training run, warm-up included
FULL_STEPS = {"grid": 1010, "stacked_mnist": 70}
SMOKE_STEPS = {"grid": 12, "stacked_mnist": 4}
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
SCALING_IMAGE_BATCH = 64  # the stacked_mnist preset's batch, for the image-size sweep (4 in --smoke)


def _error(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return text if len(text) <= 800 else text[:800] + " ..."


# ----------------------------------------------------------------------------------------------- the package's loop


def package_run(
    preset: str, steps: int, work_dir: Path, *, use_ema: bool, compile: bool, flags: tuple[str, ...] = ()
) -> dict:
    """One `train()` of the preset, in-process; steps/s is the loop's own `train/steps_per_second`, and the loop's
    `TrainResult` gives setup and warm-up seconds and per-step quantiles that a busy CPU disturbs less than the mean."""
    if compile:
        torch._dynamo.reset()  # every run compiles afresh: earlier runs' graphs must not count against its warm-up
    reset_accelerate_state()
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
    start = time.perf_counter()
    try:
        result = train(parse_config(argv))
    finally:
        reset_accelerate_state()
    metrics = result.metrics
    out = {
        "steps_per_second": metrics["train/steps_per_second"],
        "samples_per_second": metrics["train/samples_per_second"],
        "run_seconds": time.perf_counter() - start,
        "setup_seconds": result.setup_seconds,
    }
    stamps, warmup_steps = result.step_end_times, min(WARMUP_STEPS, steps - 1)
    if len(stamps) == steps:
        out["warmup_seconds"] = stamps[warmup_steps - 1] - result.loop_start if warmup_steps else 0.0
        out.update(step_quantiles(stamps[max(0, warmup_steps - 1) :]))
    return out


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
            key: summary([r[key] for r in rows])
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
            **summary(ratios),
            "of_medians": out[variant]["steps_per_second"]["median"] / out["bare"]["steps_per_second"]["median"],
        }
        if all("step_ms_p10" in r for r in runs[variant] + runs["bare"]):
            # bare p10 step time / package p10 step time: the same ratio, read off the least disturbed steps
            fast = [b["step_ms_p10"] / p["step_ms_p10"] for p, b in zip(runs[variant], runs["bare"])]
            out[f"ratio_{variant}_to_bare"]["from_p10_step_time"] = summary(fast)
    return out


def training_config_record(preset: str, steps: int) -> dict:
    """The preset as read now (it may be retuned between runs) and what it resolves to."""
    c = preset_config(preset)
    return {
        "preset": load_preset(preset),
        "resolved": {"architecture": c.architecture, "resolution": c.resolution, "num_channels": c.num_channels},
        "steps_per_run": steps,
        "warmup_steps": min(WARMUP_STEPS, steps - 1),
    }


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


def measure_preset(preset: str, steps: int, repeats: int, compile: bool, work: Path, device: str, smoke: bool) -> dict:
    """Eager training of the package's loop against the bare loop, and the compiled pair when `compile`."""
    result: dict = {"config": training_config_record(preset, steps)}
    result["eager"] = measure_training(preset, steps, repeats, False, work, device)
    if not compile:
        result["compile"] = {"skipped": "--smoke (use --compile to force)" if smoke else "--no_compile"}
        return result
    block = result["compile"] = measure_training(preset, steps, repeats, True, work, device)
    if "error" not in block["package"]:
        # the --compile goal: the compiled package against the hand-written loop as people run it, eager
        block["ratio_package_to_bare_eager"] = (
            block["package"]["steps_per_second"]["median"] / result["eager"]["bare"]["steps_per_second"]["median"]
        )
    return result


def _arguments(argv: list[str] | None) -> argparse.Namespace:
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
    if args.device == "cuda" and not (args.skip_sampling and args.skip_scaling):
        parser.error("--device cuda measures training only: add --skip_sampling --skip_scaling.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    smoke = args.smoke
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
        "cpu": cpu_name(),
        "device": args.device,
        "device_name": device_name(args.device),
        "num_cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": git_commit().removesuffix("-dirty"),
        "dirty": git_commit().endswith("-dirty"),
        "smoke": smoke,
        "repeats": repeats,
        "command": "python benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "load_average_start": load_average(),
        "notes": [
            "steps/s: after a 10-step warm-up, as train() reports it; step_ms_p10 is the 10th-percentile step time, "
            "which other processes on the CPU disturb least",
            "compile warmup_seconds include compilation; inductor's on-disk cache makes every compile after the "
            "first of a shape faster",
            "peak_rss_mib: the phase's own peak (VmHWM reset at its start) where rss_method says so",
        ],
    }
    try:
        training = {p: measure_preset(p, steps[p], repeats, compile, work, args.device, smoke) for p in args.presets}
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
    meta["load_average_end"] = load_average()
    meta["wall_seconds"] = round(time.perf_counter() - start, 1)
    (results / f"speed{tag}.json").write_text(json.dumps(payload, indent=2, allow_nan=False))
    print(to_text(payload))
    print(f"wrote {results / f'speed{tag}.json'} ({meta['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
