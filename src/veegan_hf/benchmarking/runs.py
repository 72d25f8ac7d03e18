"""Training runs for the tables: one per (method, dataset, seed), in parallel worker processes, each leaving a record
that lets an interrupted table resume without training it again."""

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..provenance import one_thread

RUN_RECORD = "benchmark_run.json"
# Table 1's rows: name -> (preset suffix, objective). Every row trains on `<dataset><suffix>.yaml`, so only the
# objective differs, except the paper-faithful recipe, which has presets of its own.
TABLE1_METHODS = {
    "GAN": ("", "gan"),
    "ALI": ("", "ali"),
    "Unrolled GAN": ("", "unrolled"),
    "PacGAN": ("", "pacgan"),
    "VEEGAN (paper recipe)": ("_paper", "veegan"),
    "VEEGAN (ours)": ("", "veegan"),
}


def train_run(job: dict) -> dict:
    """One training run (no trackers; validation only at the end unless the flags ask for it): `job` names the
    preset, objective, seed, output folder and extra flags. Returns the job with the run's metrics, wall time and
    mid-run validation history."""
    from ..training import parse_config, reset_accelerate_state, train

    reset_accelerate_state()  # workers are reused across runs: each run builds its own Accelerator
    argv = [
        "--config",
        f"{job['dataset']}{job.get('suffix', '')}",
        "--objective",
        job["objective"],
        "--seed",
        str(job["seed"]),
        "--output_dir",
        job["output_dir"],
        "--overwrite_output_dir",
        "true",  # a rerun replaces an unfinished run of the same job
        "--report_to",
        "none",
        "--validation_steps",
        "1000000",
        *job["overrides"],
    ]
    start = time.perf_counter()
    result = train(parse_config(argv))
    wall = round(time.perf_counter() - start, 1)
    return {**job, "metrics": result.metrics, "wall_seconds": wall, "history": result.validation_history}


def save_record(run: dict) -> dict:
    """Writes `run` as its folder's record, last and atomically: its presence means the run finished."""
    path = Path(run["output_dir"]) / RUN_RECORD
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(run, indent=2))
    os.replace(partial, path)
    return run


def finished_run(job: dict) -> dict | None:
    """The record of a finished run of exactly this job at exactly this commit, or None.

    A long table survives interruption: rerunning the same command with the same `--work_dir` trains only what is
    missing. A record from other code (another commit, or a dirty tree) is never reused.
    """
    path = Path(job["output_dir"]) / RUN_RECORD
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same_job = all(run.get(key) == value for key, value in job.items())
    clean = not job["commit"].endswith("-dirty") and job["commit"] != "unknown"
    return run if same_job and clean else None


def split_finished(jobs: list[dict], work: Path) -> tuple[list[dict], list[dict]]:
    """(the reusable records of finished runs, the jobs still to train): `finished_run` applied to every job."""
    runs = [run for run in map(finished_run, jobs) if run is not None]
    done = {run["output_dir"] for run in runs}
    if runs:
        print(f"reusing {len(runs)} finished run(s) of commit {jobs[0]['commit']} from {work}", flush=True)
    return runs, [job for job in jobs if job["output_dir"] not in done]


def run_parallel(
    fn: Callable[[dict], dict],
    jobs: list[dict],
    processes: int,
    initializer: Callable[..., None] = one_thread,
    initargs: tuple[Any, ...] = (),
) -> Iterator[dict]:
    """`fn(job)` for every job in `processes` spawned workers of one thread each, yielding results as they finish.
    Workers are reused across jobs, so torch is imported once per worker."""
    if not jobs:
        return
    context = multiprocessing.get_context("spawn")  # clean interpreters: no inherited threads or CUDA state
    with context.Pool(max(1, min(processes, len(jobs))), initializer=initializer, initargs=initargs) as pool:
        yield from pool.imap_unordered(fn, jobs)
