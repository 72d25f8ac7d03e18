"""Screens recipe variants on the built-in data: each variant's flags on top of a preset, over seeds, in parallel.

    python benchmarks/screen.py --dataset ring --seeds 0 1 \\
        --variant base= --variant lam_lr="--reconstruction_weight_schedule lr"
    python benchmarks/screen.py --dataset ring --summary      # mean modes / HQ per variant, from the log

Every finished run appends one line to `benchmarks/results/screens/<dataset>.jsonl`: the variant, its flags, the
seed, the commit, the metrics and the wall time. A search keeps its evidence as it goes, so a session that ends loses
nothing, and `--summary` tabulates it. Runs use one thread each, as in `table1.py`.
"""

import argparse
import json
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

from veegan_hf.benchmarking.runs import run_parallel, train_run
from veegan_hf.provenance import REPO, git_commit

LOG_DIR = REPO / "benchmarks" / "results" / "screens"


def run_one(job: dict) -> dict:
    run = train_run(job)
    m = run["metrics"]
    keep = ("modes_captured", "num_modes", "hq_percent", "reverse_kl", "kl_to_uniform", "inversion_mse")
    return {
        **{k: job[k] for k in ("variant", "flags", "dataset", "objective", "seed", "commit")},
        "metrics": {k: m[k] for k in keep if k in m},
        "history": [
            {k: h[k] for k in ("step", "train_seconds", "modes_captured", "hq_percent") if k in h}
            for h in run["history"]
        ],
        "wall_seconds": run["wall_seconds"],
    }


def summarize(path: Path) -> str:
    """Mean modes and HQ per (variant, objective), with the seeds and each run, in the order first run."""
    cells: dict[tuple[str, str], list[dict]] = {}
    for line in path.read_text().splitlines():
        run = json.loads(line)
        cells.setdefault((run["variant"], run["objective"]), []).append(run)
    lines = ["| variant | objective | flags | seeds | modes | HQ % | runs (seed: modes / HQ) |", "|---" * 7 + "|"]
    for (variant, objective), runs in cells.items():
        modes = [r["metrics"]["modes_captured"] for r in runs]
        hq = [r["metrics"]["hq_percent"] for r in runs]
        each = ", ".join(
            f"s{r['seed']}: {r['metrics']['modes_captured']} / {r['metrics']['hq_percent']:.1f}" for r in runs
        )
        lines.append(
            f"| {variant} | {objective} | `{runs[0]['flags'] or '(preset)'}` | {len(runs)} | "
            f"{statistics.fmean(modes):.1f} | {statistics.fmean(hq):.1f} | {each} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=("ring", "grid", "synthetic1200"))
    parser.add_argument("--variant", action="append", default=[], help="NAME=FLAGS on top of the preset")
    parser.add_argument("--objective", nargs="+", default=["veegan"], help="objectives to run every variant with")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs, one thread each")
    parser.add_argument("--summary", action="store_true", help="print the table of the log and exit")
    parser.add_argument("--log", default=None, help="the JSONL log (default: results/screens/<dataset>.jsonl)")
    args = parser.parse_args(argv)
    log = Path(args.log) if args.log else LOG_DIR / f"{args.dataset}.jsonl"
    if args.summary:
        print(summarize(log))
        return 0
    commit = git_commit()
    work = Path(tempfile.mkdtemp(prefix=f"screen_{args.dataset}_"))
    jobs = []
    for spec in args.variant:
        name, _, flags = spec.partition("=")
        for objective in args.objective:
            for seed in args.seeds:
                jobs.append(
                    {
                        "variant": name,
                        "flags": flags,
                        "dataset": args.dataset,
                        "objective": objective,
                        "seed": seed,
                        "commit": commit,
                        "output_dir": str(work / f"{name}-{objective}-{seed}"),
                        "overrides": shlex.split(flags),
                    }
                )
    log.parent.mkdir(parents=True, exist_ok=True)
    for run in run_parallel(run_one, jobs, args.jobs):
        with log.open("a") as f:
            f.write(json.dumps(run) + "\n")
        m = run["metrics"]
        print(
            f"{run['variant']:<24} {run['objective']:<8} seed {run['seed']}: {m['modes_captured']}/{m['num_modes']}"
            f" modes, {m['hq_percent']:.1f}% HQ ({run['wall_seconds']:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
