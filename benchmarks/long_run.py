"""A long training run: resident memory and speed over time, as checkpoints accumulate and rotate.

    python benchmarks/long_run.py                              # the digit preset for 30 minutes
    python benchmarks/long_run.py --seconds 40 --checkpointing_steps 20 --tag _smoke

Starts `python training/train.py --config mnist` (the deployer's command, one process) with
`--max_train_seconds`, a checkpoint every `--checkpointing_steps` and the newest `--checkpoints_total_limit` kept.
Four times a second it reads the trainer's resident memory (VmRSS) and the checkpoints in its output folder; a
checkpoint gets its final name only when it is complete, so the time its name first appears dates the step. It writes
`benchmarks/results/long_run{tag}.{json,md,png}`: RSS over time, steps/s in every interval between two checkpoints,
and how many checkpoints the folder held at most.

What a leak or a slowdown would look like: RSS that keeps rising after warm-up (here the first checkpoint), or
steps/s in the last intervals below those of the first ones. The intervals that hold a validation (the preset's sample
grid and digit metrics, every 1,000 steps) are slower by the same amount all run long, so they are compared with
their own kind.
"""

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from veegan_hf.benchmarking.memory import process_rss_mib
from veegan_hf.provenance import REPO, cpu_name, git_commit, write_results
from veegan_hf.training.checkpointing import checkpoint_step, list_checkpoints


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def summarize(memory: list[tuple[float, float]], seen: dict[int, float], validation_steps: int) -> dict:
    """
    RSS after warm-up (the first checkpoint) and at the end, and steps/s per interval between checkpoints, with the
    first and last thirds of the intervals compared, each kind (with or without a validation) with its own kind.
    """
    steps = sorted(seen)
    intervals = [
        {
            "to_step": b,
            "at": round(seen[b], 1),
            "steps_per_second": (b - a) / (seen[b] - seen[a]),
            "validation": bool(validation_steps) and any(s % validation_steps == 0 for s in range(a + 1, b + 1)),
        }
        for a, b in itertools.pairwise(steps)
        if seen[b] > seen[a]
    ]
    warm_at = seen[steps[0]] if steps else 0.0
    warm = [rss for at, rss in memory if at >= warm_at]
    rss = {
        "start": memory[0][1] if memory else None,
        "after_warmup": warm[0] if warm else None,
        "end": memory[-1][1] if memory else None,
        "max_after_warmup": max(warm) if warm else None,
    }
    rss["growth_percent"] = 100 * (rss["end"] / rss["after_warmup"] - 1) if warm else None
    speed = {}
    for kind, with_validation in (("plain", False), ("with_validation", True)):
        rates = [i["steps_per_second"] for i in intervals if i["validation"] == with_validation]
        third = max(1, len(rates) // 3)
        speed[kind] = {
            "intervals": len(rates),
            "first_third": _mean(rates[:third]),
            "last_third": _mean(rates[-third:]),
        }
        speed[kind]["change_percent"] = 100 * (speed[kind]["last_third"] / speed[kind]["first_third"] - 1)
    return {"rss_mib": rss, "speed": speed, "intervals": intervals}


def _plot(memory: list[tuple[float, float]], intervals: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot([at / 60 for at, _ in memory], [rss for _, rss in memory], color="tab:blue")
    top.set_ylabel("trainer RSS (MiB)")
    top.set_ylim(bottom=0)
    top.set_title(title, fontsize=10)
    for with_validation, color, label in ((False, "tab:green", "plain"), (True, "tab:orange", "holds a validation")):
        chosen = [i for i in intervals if i["validation"] == with_validation]
        bottom.plot(
            [i["at"] / 60 for i in chosen],
            [i["steps_per_second"] for i in chosen],
            "o-",
            ms=3,
            color=color,
            label=label,
        )
    bottom.set_ylabel("steps/s between checkpoints")
    bottom.set_xlabel("minutes")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mnist", help="the preset to train (default: the digit preset)")
    parser.add_argument("--seconds", type=float, default=1800, help="training time (default: 30 minutes)")
    parser.add_argument("--checkpointing_steps", type=int, default=500)
    parser.add_argument("--checkpoints_total_limit", type=int, default=2)
    parser.add_argument("--validation_steps", type=int, default=1000, help="the preset's value")
    parser.add_argument("--tag", default="")
    parser.add_argument("--results_dir", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    output = Path(tempfile.mkdtemp(prefix="long_run_")) / "run"
    command = [
        sys.executable, str(REPO / "training" / "train.py"), "--config", args.config, "--output_dir", str(output),
        "--max_train_steps", "10000000", "--max_train_seconds", str(args.seconds),
        "--checkpointing_steps", str(args.checkpointing_steps),
        "--checkpoints_total_limit", str(args.checkpoints_total_limit),
        "--validation_steps", str(args.validation_steps), "--report_to", "none",
    ]  # fmt: skip
    log = output.parent / "train.log"
    with open(log, "w") as sink:
        trainer = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=output.parent)
        memory: list[tuple[float, float]] = []
        seen: dict[int, float] = {}
        most_kept = 0
        start = time.monotonic()
        while trainer.poll() is None:
            now = time.monotonic() - start
            rss = process_rss_mib(trainer.pid)
            if rss is not None:
                memory.append((round(now, 1), rss))
            present = [checkpoint_step(path) for path in list_checkpoints(output)]  # complete ones only
            most_kept = max(most_kept, len(present))
            for step in present:
                seen.setdefault(step, now)
            time.sleep(0.25)
    if trainer.returncode != 0:
        raise SystemExit(f"the training run failed (exit {trainer.returncode}): {log.read_text()[-3000:]}")
    summary = summarize(memory, seen, args.validation_steps)
    final_steps = max(seen) if seen else 0
    meta = {
        "command": " ".join(command[1:]),
        "seconds": args.seconds,
        "commit": git_commit(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "checkpoints_seen": len(seen),
        "last_checkpoint_step": final_steps,
        "most_checkpoints_kept": most_kept,
        "checkpoints_total_limit": args.checkpoints_total_limit,
    }
    rss, speed = summary["rss_mib"], summary["speed"]
    title = f"{args.config} preset, {args.seconds / 60:g} min, a checkpoint every {args.checkpointing_steps} steps"
    _plot(memory, summary["intervals"], Path(args.results_dir) / f"long_run{args.tag}.png", title)
    lines = [
        "| intervals | count | steps/s, first third | steps/s, last third | change |",
        "|---|---|---|---|---|",
    ]
    for kind, s in speed.items():
        if s["intervals"]:
            lines.append(
                f"| {kind.replace('_', ' ')} | {s['intervals']} | {s['first_third']:.2f} | {s['last_third']:.2f} "
                f"| {s['change_percent']:+.1f}% |"
            )
    note = (
        f"\n`{args.config}` preset trained for {args.seconds:g} s on {meta['cores']} cores of {meta['cpu']}: "
        f"{len(seen)} checkpoints written (the last at step {final_steps}), at most {most_kept} on disk at once "
        f"(limit {args.checkpoints_total_limit}). Trainer RSS "
        f"{rss['after_warmup'] or 0:.0f} MiB at the first checkpoint, {rss['end'] or 0:.0f} at the end "
        f"({rss['growth_percent'] or 0:+.1f}%), {rss['max_after_warmup'] or 0:.0f} at most after the first "
        f"checkpoint. Command: `python benchmarks/long_run.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
        f" at commit `{meta['commit']}`.\n"
    )
    payload = {"meta": meta, **summary, "memory": memory}
    write_results(Path(args.results_dir), f"long_run{args.tag}", payload, "\n".join(lines) + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
