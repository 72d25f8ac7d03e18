"""Screens recipe variants on the built-in data: each variant's flags on top of a preset, over seeds, in parallel.

    python benchmarks/screen.py --dataset ring --seeds 0 1 \\
        --variant base= --variant lam_lr="--reconstruction_weight_schedule lr"
    python benchmarks/screen.py --dataset ring --summary      # mean modes / HQ per variant, from the log
    python benchmarks/screen.py --dataset stacked_mnist_d4 --objective gan veegan --seeds 0 --variant base=

`--dataset` names a preset: a mixture (scored as modes / % high quality) or a reduced-D Stacked MNIST preset (modes
of 1000 / KL to uniform). Every finished run appends one line to `benchmarks/results/screens/<dataset>.jsonl`: the
variant, its flags, the seed, the commit, the metrics, the validation history and the wall time. A search keeps its
evidence as it goes, so a session that ends loses nothing, and `--summary` tabulates it. Runs use one thread each,
as in `table1.py`.
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
MIXTURES = ("ring", "grid", "synthetic1200")
STACKED = ("stacked_mnist_d4", "stacked_mnist_d2", "stacked_mnist")
# what a run keeps: the mixtures' modes and HQ, the digit data's modes and KL
KEEP = ("modes_captured", "num_modes", "hq_percent", "reverse_kl", "kl_to_uniform", "inversion_mse", "modes_covered")
KEEP_HISTORY = ("step", "train_seconds", "modes_captured", "hq_percent", "modes_covered", "kl")


def headline(metrics: dict) -> tuple[float, float]:
    """(modes, quality): modes captured and % HQ for a mixture, modes covered and KL for Stacked MNIST."""
    if "modes_covered" in metrics:
        return metrics["modes_covered"], metrics["kl"]
    return metrics["modes_captured"], metrics["hq_percent"]


def run_one(job: dict) -> dict:
    run = train_run(job)
    m = run["metrics"]
    return {
        **{k: job[k] for k in ("variant", "flags", "dataset", "objective", "seed", "commit")},
        "metrics": {k: m[k] for k in (*KEEP, "kl", "train/steps") if k in m},
        "history": [{k: h[k] for k in KEEP_HISTORY if k in h} for h in run["history"]],
        "wall_seconds": run["wall_seconds"],
    }


def summarize(path: Path) -> str:
    """Mean modes and HQ (or KL) per (variant, objective), with the seeds and each run, in the order first run."""
    cells: dict[tuple[str, str], list[dict]] = {}
    for line in path.read_text().splitlines():
        run = json.loads(line)
        cells.setdefault((run["variant"], run["objective"]), []).append(run)
    quality = "KL" if path.stem in STACKED else "HQ %"
    lines = [f"| variant | objective | flags | seeds | modes | {quality} | runs (seed: modes / {quality}) |"]
    lines.append("|---" * 7 + "|")
    for (variant, objective), runs in cells.items():
        scores = [headline(r["metrics"]) for r in runs]
        each = ", ".join(f"s{r['seed']}: {m:g} / {q:.3g}" for r, (m, q) in zip(runs, scores))
        lines.append(
            f"| {variant} | {objective} | `{runs[0]['flags'] or '(preset)'}` | {len(runs)} | "
            f"{statistics.fmean(m for m, _ in scores):.1f} | {statistics.fmean(q for _, q in scores):.3g} | {each} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=(*MIXTURES, *STACKED), help="the preset to start from")
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
        modes, quality = headline(run["metrics"])
        shown = f"KL {quality:.3f}" if run["dataset"] in STACKED else f"{quality:.1f}% HQ"
        print(
            f"{run['variant']:<24} {run['objective']:<8} seed {run['seed']}: {modes}/{run['metrics']['num_modes']}"
            f" modes, {shown} ({run['wall_seconds']:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
