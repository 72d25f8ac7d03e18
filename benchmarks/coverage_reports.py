"""Coverage reports for the committed models, and what one costs: the command's wall time on this machine.

    python benchmarks/coverage_reports.py                     # every model below whose folder exists
    python benchmarks/coverage_reports.py --only shipped_mnist

Each report is what `python -m veegan_hf.coverage --model MODEL --dataset DATA --output_dir OUT` writes, run here as
that very command in a subprocess (so the wall time includes starting Python and loading the model), with the
default settings and 2 threads. `benchmarks/results/coverage_reports.json` records per report the command, the wall
time, the headline numbers, the commit, the CPU and its load.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from veegan_hf.provenance import REPO, cpu_name, git_commit, load_average

RESULTS = REPO / "benchmarks" / "results"
# name -> (model folder, dataset, where the report goes)
REPORTS = {
    "shipped_mnist": ("spaces/veegan-mnist", "mnist", "spaces/veegan-mnist/coverage"),
    "veegan_d4": ("benchmarks/results/models/veegan_d4", "stacked_mnist", "benchmarks/results/coverage/veegan_d4"),
    "dcgan_d4": ("benchmarks/results/models/dcgan_d4", "stacked_mnist", "benchmarks/results/coverage/dcgan_d4"),
}
HEADLINE = ("coverage", "baseline_coverage", "precision", "recall", "uncovered_fraction", "not_makeable_fraction")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=tuple(REPORTS), default=None, help="these reports only")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the command (the machine's cores)")
    args = parser.parse_args(argv)
    path = RESULTS / "coverage_reports.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    for name in args.only or REPORTS:
        model, dataset, output = REPORTS[name]
        if not (REPO / model / "model_index.json").is_file():
            print(f"{name}: no model at {model}; skipped")
            continue
        command = [sys.executable, "-m", "veegan_hf.coverage", "--model", model, "--dataset", dataset]
        command += ["--output_dir", output]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
        load_before = load_average()
        start = time.perf_counter()
        subprocess.run(command, cwd=REPO, env=env, check=True)
        wall = round(time.perf_counter() - start, 1)
        metrics = json.loads((REPO / output / "metrics.json").read_text())
        record[name] = {
            "command": "python -m veegan_hf.coverage " + " ".join(command[3:]),
            "wall_seconds": wall,
            "report_seconds": metrics["info"]["seconds"],
            "threads": args.threads,
            "headline": {key: metrics[key] for key in HEADLINE},
            "commit": git_commit(),
            "cpu": cpu_name(),
            "load_average_before": load_before,
        }
        print(f"{name}: {wall} s wall ({metrics['info']['seconds']} s in coverage_report)")
        path.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
