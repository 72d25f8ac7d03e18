"""Mode coverage against wall-clock time: modes captured and HQ % of every Table 1 method on one dataset and seed.

    python benchmarks/coverage_over_time.py                   # grid, seed 0, scored every 1,000 steps
    python benchmarks/coverage_over_time.py --smoke           # 40 steps, scored every 20: what CI runs

Each method trains with its Table 1 preset and objective (`table1.METHODS`), one thread per run, and is scored with
2,500 samples at every validation. The time axis is the training time only: validations are timed and left out, so
an objective's per-step cost shows as it is. Writes `benchmarks/results/coverage_<dataset>.{json,md,png}`.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from veegan_hf.benchmarking.runs import TABLE1_METHODS as METHODS
from veegan_hf.benchmarking.runs import run_parallel, train_run
from veegan_hf.provenance import REPO, cpu_name, final_commit, git_commit, provenance, write_results


def plot(runs: list[dict], path: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for run in runs:
        seconds = [h["train_seconds"] for h in run["history"]] + [run["train_seconds"]]
        left.plot(
            seconds,
            [h["modes_captured"] for h in run["history"]] + [run["metrics"]["modes_captured"]],
            marker=".",
            label=run["method"],
        )
        right.plot(seconds, [h["hq_percent"] for h in run["history"]] + [run["metrics"]["hq_percent"]], marker=".")
    num_modes = runs[0]["metrics"]["num_modes"]
    left.set(xlabel="training seconds (one CPU thread)", ylabel=f"modes captured (of {num_modes})", xscale="log")
    right.set(xlabel="training seconds (one CPU thread)", ylabel="high-quality samples (%)", xscale="log")
    left.legend(fontsize=8)
    fig.suptitle(f"{dataset}: coverage over time, seed {runs[0]['seed']}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="grid", choices=("ring", "grid", "synthetic1200"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=1000, help="steps between scorings")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel runs, one thread each")
    parser.add_argument("--smoke", action="store_true", help="40 steps scored every 20: checks the pipeline only")
    parser.add_argument("--results_dir", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    every = 20 if args.smoke else args.every
    overrides = ["--validation_steps", str(every), "--num_validation_samples", "2500"]
    if args.smoke:
        overrides += ["--max_train_steps", "40", "--train_batch_size", "64"]
    commit, work = git_commit(), Path(tempfile.mkdtemp(prefix="coverage_"))
    jobs = [
        {
            "method": method,
            "dataset": args.dataset,
            "seed": args.seed,
            "suffix": suffix,
            "objective": objective,
            "output_dir": str(work / f"{objective}{suffix}"),
            "overrides": overrides,
        }
        for method, (suffix, objective) in METHODS.items()
    ]
    start = time.perf_counter()
    runs = []
    for run in run_parallel(train_run, jobs, args.jobs):
        # the final point: the run's training time (validations excluded), scored by the full protocol
        run["train_seconds"] = run["metrics"]["train/wall_seconds"] - run["metrics"]["train/validation_seconds"]
        runs.append(run)
    runs.sort(key=lambda r: list(METHODS).index(r["method"]))
    tag = "_smoke" if args.smoke else ""
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    plot(runs, results / f"coverage_{args.dataset}{tag}.png", args.dataset)
    meta = {
        "commit": final_commit(commit),
        "cpu": cpu_name(),
        "jobs": args.jobs,
        "wall_minutes": (time.perf_counter() - start) / 60,
        "run_minutes": sum(r["wall_seconds"] for r in runs) / 60,
        "command": "python benchmarks/coverage_over_time.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    lines = [
        "| method | " + " | ".join(f"{h['step']} steps" for h in runs[0]["history"]) + " | final |",
        "|---" * (len(runs[0]["history"]) + 2) + "|",
    ]
    for run in runs:
        cells = [f"{h['modes_captured']} / {h['hq_percent']:.1f} ({h['train_seconds']:.0f} s)" for h in run["history"]]
        m = run["metrics"]
        cells.append(f"{m['modes_captured']} / {m['hq_percent']:.1f} ({run['train_seconds']:.0f} s)")
        lines.append(f"| {run['method']} | " + " | ".join(cells) + " |")
    note = (
        f"\nModes / HQ % (training seconds so far, one thread, validations excluded) on {args.dataset}, seed "
        f"{args.seed}; 2,500 samples per scoring. " + provenance(meta)
    )
    payload = {
        "meta": meta,
        "runs": [{k: r[k] for k in ("method", "objective", "history", "metrics", "train_seconds")} for r in runs],
    }
    write_results(results, f"coverage_{args.dataset}{tag}", payload, "\n".join(lines) + "\n" + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
