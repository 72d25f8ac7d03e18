"""Table 2 in the literature's collapse-prone setting: Stacked MNIST with the discriminator reduced to 1/4 or 1/2 of
the generator's width (Metz et al.'s Unrolled GAN experiment, rerun in PacGAN's Table 3).

    python benchmarks/table2.py --setting reduced_d --seeds 3                # every row at D = 1/4 and 1/2
    python benchmarks/table2.py --setting reduced_d --columns d1 --rows gan pacgan4 ali veegan   # the sweep's D = G
    python benchmarks/table2.py --setting reduced_d --smoke                  # 1 seed, 10 steps: what CI runs

Every run trains the `stacked_mnist_d4` or `stacked_mnist_d2` preset (`architecture: metz`, the reference's networks
and optimizer), and a row differs from the preset only by its objective and the flags it names (`ROWS`). The scoring
is `table2.py`'s: modes of 1000 and KL to uniform from 26,000 samples labelled per channel by the shipped classifier,
IvOM and the one-pass G(F(x)) error on 64 held-out stacked images. Every row reports D's parameter count: the joint D
of ALI and VEEGAN reads z through one linear map into its last conv stage, which adds weights the x-only D lacks.

Each finished run appends a line to `benchmarks/results/table2_reduced_d_runs.jsonl`; a rerun reuses every line of
the same job at the same clean commit, so an interrupted table, or one built over several sessions, trains only what
is missing. The table is written from every logged run of the current commit: `table2_reduced_d.{json,md}`, and one
sample grid per row and column.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import table2
from veegan_hf.benchmarking.runs import run_parallel
from veegan_hf.provenance import REPO, cpu_name, git_commit, provenance, write_results

# column -> (preset, flags on top, what the column is called)
COLUMNS = {
    "d4": ("stacked_mnist_d4", (), "D = 1/4 G"),
    "d2": ("stacked_mnist_d2", (), "D = 1/2 G"),
    "d1": ("stacked_mnist_d2", ("--discriminator_base_channels", "8"), "D = G's width"),
}
SN = ("--discriminator_spectral_norm", "true")
# row -> (objective, flags, name). PacGAN packs the batch's own 128 samples (64 packs of 2, 32 of 4): every row sees
# the same images per step, where PacGAN's code draws m batches of 128.
ROWS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "gan": ("gan", (), "DCGAN"),
    "ali": ("ali", (), "ALI"),
    "unrolled5": ("unrolled", ("--unrolled_steps", "5"), "Unrolled GAN, 5 steps"),
    "unrolled10": ("unrolled", ("--unrolled_steps", "10"), "Unrolled GAN, 10 steps"),
    "pacgan2": ("pacgan", ("--pack_size", "2"), "PacGAN2"),
    "pacgan4": ("pacgan", ("--pack_size", "4"), "PacGAN4"),
    "veegan": ("veegan", (), "VEEGAN (Algorithm 1, λ = 1)"),
}
DEFAULT_ROWS = ("gan", "ali", "unrolled5", "pacgan2", "pacgan4", "veegan")
DEFAULT_COLUMNS = ("d4", "d2")
SMOKE_ROWS = ("gan", "veegan")
# PacGAN's Table 3 (fjxmlzn/PacGAN, stacked_MNIST_experiments/results/Table3.png): modes / KL at D = 1/4 | D = 1/2,
# 500,000 iterations; the DCGAN (Metz) and Unrolled rows are cited from Metz et al.
PUBLISHED = {
    "DCGAN (Metz et al.)": ((30.6, 5.99), (628.0, 2.58)),
    "Unrolled GAN, 5 steps (Metz et al.)": ((236.4, 4.67), (732.0, 1.66)),
    "Unrolled GAN, 10 steps (Metz et al.)": ((327.2, 4.66), (817.4, 1.43)),
    "DCGAN (PacGAN's run)": ((78.5, 5.21), (487.7, 2.24)),
    "PacDCGAN2": ((484.5, 2.61), (840.7, 1.00)),
    "PacDCGAN3": ((601.3, 2.00), (866.6, 0.90)),
    "PacDCGAN4": ((667.4, 1.81), (820.2, 1.15)),
}
IDENTITY = ("row", "column", "seed", "objective", "overrides", "num_eval_samples", "ivom_budget", "device", "commit")
REPORTED = ("modes_covered", "kl", "ivom", "reconstruction_mse")
VALIDATION_STEPS = 2000


def _log_key(record: dict) -> str:
    return json.dumps({k: record.get(k) for k in IDENTITY}, sort_keys=True)


def read_log(path: Path) -> dict[str, dict]:
    """key -> the newest finished record of each job in the log."""
    if not path.is_file():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {_log_key(r): r for r in records}


def summarize(runs: list[dict]) -> dict:
    """'row/column' -> mean, std and values over seeds of each reported metric, the steps and D's size."""
    cells: dict[str, list[dict]] = {}
    for run in runs:
        cells.setdefault(f"{run['row']}/{run['column']}", []).append(run["metrics"])
    summary = {}
    for key, metrics in cells.items():
        cell = {"num_seeds": len(metrics), "steps": sorted({m["train/steps"] for m in metrics})}
        cell["discriminator_parameters"] = metrics[0]["discriminator_parameters"]
        for name in REPORTED:
            values = [m[name] for m in metrics]
            cell[name] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "values": values}
        summary[key] = cell
    return summary


def _cell(cell: dict | None, name: str, digits: int) -> str:
    if cell is None:
        return "–"
    value = cell[name]
    return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"


def to_markdown(summary: dict, rows: list[str], columns: list[str], data: dict, meta: dict) -> str:
    names = [COLUMNS[c][2] for c in columns]
    head = "| row | " + " | ".join(f"{n}: modes | KL | D params" for n in names) + " |"
    lines = [head, "|---|" + "---|---|---|" * len(columns)]
    for row in rows:
        cells = [summary.get(f"{row}/{c}") for c in columns]
        if all(c is None for c in cells):
            continue
        parts = []
        for cell in cells:
            size = "–" if cell is None else f"{cell['discriminator_parameters']:,}"
            # the seeds' own mode counts beside the mean: collapse is often one seed in three
            each = "" if cell is None else " (" + ", ".join(f"{v:g}" for v in cell["modes_covered"]["values"]) + ")"
            parts.append(f"{_cell(cell, 'modes_covered', 1)}{each} | {_cell(cell, 'kl', 2)} | {size}")
        lines.append(f"| {ROWS[row][2]} | " + " | ".join(parts) + " |")
    lines.append(
        "| *real stacked digits (data row)* | "
        + " | ".join(f"{data['modes_covered']} | {data['kl']:.3f} | –" for _ in columns)
        + " |"
    )
    published = {"d4": 0, "d2": 1}
    for name, values in PUBLISHED.items():
        parts = [
            f"*{values[published[c]][0]:.1f}* | *{values[published[c]][1]:.2f}* | –" if c in published else "– | – | –"
            for c in columns
        ]
        lines.append(f"| *{name}, 500k iterations (PacGAN's Table 3)* | " + " | ".join(parts) + " |")
    inversion = ["", "| row | " + " | ".join(f"{n}: IvOM | G(F(x)) MSE" for n in names) + " |"]
    inversion.append("|---|" + "---|---|" * len(columns))
    for row in rows:
        cells = [summary.get(f"{row}/{c}") for c in columns]
        if any(cells):
            inversion.append(
                f"| {ROWS[row][2]} | "
                + " | ".join(f"{_cell(c, 'ivom', 4)} | {_cell(c, 'reconstruction_mse', 4)}" for c in cells)
                + " |"
            )
    steps = sorted({s for cell in summary.values() for s in cell["steps"]})
    note = (
        "\nMean ± std over training seeds, each seed's modes in parentheses; "
        f"{', '.join(f'{s:,}' for s in steps)} steps of batch 128 (the reference "
        "trains 500,000 iterations: these CPU runs compare the methods early in training). Modes of 1000 and KL to "
        f"uniform: {meta['num_eval_samples']:,} samples per run, each channel labelled by the shipped classifier "
        f"({100 * meta['classifier_accuracy']:.1f}% held-out accuracy); IvOM and G(F(x)) MSE as in `table2.md`. D "
        "params: the discriminator's trainable parameters (ALI's and VEEGAN's joint D reads z through one linear map "
        "into its last conv stage; both also train a reconstructor F as large as G). PacGAN packs the same 128 samples "
        "per step as every other row. " + provenance(meta)
    )
    return "\n".join(lines + inversion) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first_seed", type=int, default=0)
    parser.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), choices=list(ROWS))
    parser.add_argument("--columns", nargs="+", default=list(DEFAULT_COLUMNS), choices=list(COLUMNS))
    parser.add_argument("--steps", type=int, default=None, help="override the presets' max_train_steps")
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs, one thread each")
    parser.add_argument("--smoke", action="store_true", help="1 seed, 10 steps, batch 16, small eval")
    parser.add_argument("--log", default=None, help="finished runs, read to resume and appended to (default: below)")
    parser.add_argument("--results_dir", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--render_only", action="store_true", help="train nothing: rewrite the table from the log")
    args = parser.parse_args(argv)
    rows = list(SMOKE_ROWS) if args.smoke and args.rows == list(DEFAULT_ROWS) else args.rows
    seeds = range(args.first_seed, args.first_seed + (1 if args.smoke else args.seeds))
    steps = 10 if args.smoke else args.steps
    overrides = ["--eval_at_end", "false", *(table2.SMOKE_OVERRIDES if args.smoke else [])]
    overrides += ["--max_train_steps", str(steps)] if steps else []
    # modes over the run, from 2,500 samples at each validation: where a method stands when the budget ends
    overrides += [] if args.smoke else ["--validation_steps", str(VALIDATION_STEPS), "--checkpointing_steps", "none"]
    num_eval = table2.SMOKE_NUM_EVAL_SAMPLES if args.smoke else table2.NUM_EVAL_SAMPLES
    budget = table2.SMOKE_IVOM_BUDGET if args.smoke else table2.IVOM_BUDGET
    tag = "_smoke" if args.smoke else ""
    results = Path(args.results_dir)
    log = Path(args.log) if args.log else results / f"table2_reduced_d{tag}_runs.jsonl"
    results.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="table2_reduced_d_"))
    commit = git_commit()
    jobs = []
    for row in rows:
        objective, levers, _ = ROWS[row]
        for column in args.columns:
            preset, column_flags, _ = COLUMNS[column]
            for seed in seeds:
                jobs.append(
                    {
                        "row": row,
                        "column": column,
                        "dataset": preset,
                        "seed": seed,
                        "objective": objective,
                        "overrides": [*overrides, *column_flags, *levers],
                        "num_eval_samples": num_eval,
                        "ivom_budget": budget,
                        "device": "cpu",
                        "commit": commit,
                        "output_dir": str(work / f"{row}-{column}-seed{seed}"),
                        "figure": str(results / f"table2_reduced_d{tag}_{row}_{column}.png")
                        if seed == seeds[0]
                        else None,
                        "start_by": float("inf"),
                        "train_until": None,
                    }
                )
    clean = not commit.endswith("-dirty") and commit != "unknown"
    logged = read_log(log) if clean else {}
    todo = [] if args.render_only else [job for job in jobs if _log_key(job) not in logged]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} run(s) already in {log.name}; training {len(todo)}", flush=True)
    start = time.perf_counter()
    for run in run_parallel(table2.run_one, todo, args.jobs, initializer=table2._worker_init, initargs=("cpu",)):
        record = {k: run[k] for k in (*IDENTITY, "dataset", "metrics", "train_seconds", "eval_seconds", "history")}
        with log.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        m = run["metrics"]
        print(
            f"{run['row']:<10} {run['column']} seed {run['seed']}: {m['modes_covered']} modes, KL {m['kl']:.3f}, "
            f"IvOM {m['ivom']:.4f}, D {m['discriminator_parameters']:,} params ({run['train_seconds']:.0f} s)",
            flush=True,
        )
    # the table holds every logged run, the newest of each job: a later call for one row or column adds to it, and a
    # row trained at a later commit (a new option, off by default elsewhere) sits beside the others with its commit
    newest: dict[str, dict] = {}
    for record in read_log(log).values():
        job = json.dumps({k: record[k] for k in IDENTITY if k != "commit"}, sort_keys=True)
        newest[job] = record
    runs = [r for r in newest.values() if r["row"] in ROWS]
    rows = [row for row in ROWS if any(r["row"] == row for r in runs)]
    columns = [column for column in COLUMNS if any(r["column"] == column for r in runs)]
    if not runs:
        print("no run finished: nothing to tabulate", file=sys.stderr)
        return 1
    meta = {
        "commit": ", ".join(sorted({r["commit"] for r in runs})),
        "cpu": cpu_name(),
        "jobs": args.jobs,
        "seeds": max(cell["num_seeds"] for cell in summarize(runs).values()),
        "num_eval_samples": num_eval,
        "classifier_accuracy": runs[0]["metrics"]["classifier_accuracy"],
        "ivom": budget,
        "wall_minutes": (time.perf_counter() - start) / 60,
        "run_minutes": sum(r["train_seconds"] + r["eval_seconds"] for r in runs) / 60,
        "reused_runs": len(runs) if args.render_only else len(jobs) - len(todo),
        "command": "python benchmarks/table2.py --setting reduced_d " + " ".join(argv or []),
    }
    summary = summarize(runs)
    data = table2.data_row(num_eval)
    payload = {"meta": meta, "summary": summary, "data_row": data, "published": PUBLISHED, "runs": runs}
    markdown = to_markdown(summary, rows, columns, data, meta)
    write_results(results, f"table2_reduced_d{tag}", payload, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
