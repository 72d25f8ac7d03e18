"""Regenerates Table 2 of the paper on Stacked MNIST: modes covered, KL, IvOM and amortized reconstruction, per method.

    python benchmarks/table2.py --seeds 3                        # the five methods' rows, the preset's 20,000 steps
    python benchmarks/table2.py --rows all --device cuda --jobs 15  # every recipe variant too (the GPU run)
    python benchmarks/table2.py --smoke                          # 1 seed, 10 steps, batch 16: what CI runs
    python benchmarks/table2.py --setting reduced_d --seeds 3    # the reduced-D setting (table2_reduced_d.py)

Every row trains with `veegan_hf.training` on the `stacked_mnist` preset: shared conv networks, batch, steps and
optimizer. A row is an objective plus the recipe levers it was given (`ROWS`): DCGAN is `--objective gan` on these
networks, and a lever such as spectral norm on D is tried on every objective that can use it. Scoring (BENCHMARKS.md):
- `evaluate(pipe, "stacked_mnist")`: 26,000 samples labelled by the shipped classifier, modes covered out of 1000 and
  KL(p_gen ‖ p_data), with the classifier's held-out accuracy beside them;
- `inversion_metrics`: IvOM and the amortized G(F(x)) error on 64 stacked images built from the classifier's
  held-out digits (never seen by any GAN), the same images, seeds and optimizer budget for every method.
It also scores real stacked digits (the data row) and quotes the paper's rows and the best published result.

Runs go in parallel, one process and one thread each. `benchmarks/results/table2{tag}.{json,md}` carry the commit,
wall time, device and command, beside an 8x8 sample grid per row (`table2{tag}_<row>.png`, first seed).
`--start_within S` skips runs not started within S seconds and `--train_within S` stops all training S seconds after
the start; a row cut short says how many steps it trained. Rerun with the same `--work_dir` to train only the missing
runs; a finished run is reused only if it came from the same commit of a clean tree.
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.table2_scoring import (  # noqa: F401  (the scoring protocol, shared with table2_reduced_d.py)
    DATA_ROW_SEED,
    DATASET,
    IVOM_BUDGET,
    IVOM_DATA_SEED,
    IVOM_START_SEED,
    NUM_EVAL_SAMPLES,
    _worker_init,
    data_row,
    held_out_images,
    run_one,
)
from veegan_hf.benchmarking.runs import run_parallel, split_finished
from veegan_hf.provenance import (
    REPO,
    cpu_name,
    final_commit,
    git_commit,
    provenance,
    write_results,
)

if TYPE_CHECKING:
    pass

METHOD_NAMES = {"gan": "DCGAN", "ali": "ALI", "unrolled": "Unrolled GAN", "pacgan": "PacGAN", "veegan": "VEEGAN"}
# The levers of benchmarks/README.md's image recipe search, as flags on top of the shared preset.
SN = ("--discriminator_spectral_norm", "true")
MARGINAL = ("--discriminator_marginal_head", "true")
HINGE = ("--discriminator_loss", "hinge")
SYM = ("--symmetric_latent_noise", "true")
# row id -> (objective, levers); a row id names its levers. The default rows (DEFAULT_ROWS) are each method's adopted
# recipe; `--rows all` adds every variant. The order is the table's and the run priority's.
ROWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gan": ("gan", ()),
    "veegan_marginal_sn": ("veegan", (*MARGINAL, *SN)),
    "veegan_marginal": ("veegan", MARGINAL),
    "unrolled": ("unrolled", ()),
    "ali": ("ali", ()),
    "pacgan": ("pacgan", ()),
    "veegan": ("veegan", ()),
    "gan_sn": ("gan", SN),
    "veegan_marginal_sn_noise05": ("veegan", (*MARGINAL, *SN, "--reconstructor_noise_std", "0.5")),
    "veegan_marginal_sn_hinge": ("veegan", (*MARGINAL, *SN, *HINGE)),
    "gan_sn_hinge": ("gan", (*SN, *HINGE)),
    "pacgan_sn": ("pacgan", SN),
    "ali_marginal_sn": ("ali", (*MARGINAL, *SN)),
    "veegan_marginal_sn_lambda01": ("veegan", (*MARGINAL, *SN, "--reconstruction_weight", "0.1")),
    "veegan_marginal_r1": ("veegan", (*MARGINAL, "--r1_weight", "0.1")),
    "gan_r1": ("gan", ("--r1_weight", "0.1")),
    "veegan_marginal_sn_wide_d": ("veegan", (*MARGINAL, *SN, "--discriminator_base_channels", "64")),
    "gan_sn_wide_d": ("gan", (*SN, "--discriminator_base_channels", "64")),
    # the second screen: the codes of data pairs are wider than z, which lets D tell pairs apart by ||z||
    "veegan_marginal_sn_sym": ("veegan", (*MARGINAL, *SN, *SYM)),
    "veegan_marginal_sn_noise03": ("veegan", (*MARGINAL, *SN, "--reconstructor_noise_std", "0.3")),
    "veegan_marginal_sn_noise0": ("veegan", (*MARGINAL, *SN, "--reconstructor_noise_std", "0")),
    "veegan_marginal_sn_sym_lambda01": ("veegan", (*MARGINAL, *SN, *SYM, "--reconstruction_weight", "0.1")),
    "veegan_marginal_sn_sym_lambda03": ("veegan", (*MARGINAL, *SN, *SYM, "--reconstruction_weight", "0.3")),
    "veegan_marginal_sn_sym_noise05": ("veegan", (*MARGINAL, *SN, *SYM, "--reconstructor_noise_std", "0.5")),
    "veegan_marginal_sn_sym_pack2": ("veegan", (*MARGINAL, *SN, *SYM, "--joint_pack_size", "2")),
    "veegan_sn_sym": ("veegan", (*SN, *SYM)),
    "ali_sn": ("ali", SN),
}
DEFAULT_ROWS = ("gan", "ali", "unrolled", "pacgan", "veegan")
SMOKE_ROWS = ("gan", "veegan_marginal_sn")
# Table 2 of the paper: Stacked MNIST modes and KL; its IvOM column is measured on CIFAR-10, not Stacked MNIST
PAPER = {
    "gan": {"modes_covered": 99, "kl": 3.4, "ivom_cifar10": 0.00844},
    "ali": {"modes_covered": 16, "kl": 5.4, "ivom_cifar10": 0.0067},
    "unrolled": {"modes_covered": 48.7, "kl": 4.32, "ivom_cifar10": 0.013},
    "veegan": {"modes_covered": 150, "kl": 2.95, "ivom_cifar10": 0.0068},
}
# the best verified result in the VEEGAN setting (PacGAN's Table 2, benchmarks/BENCHMARKS.md)
BEST_PUBLISHED = {"name": "PacDCGAN2 (PacGAN's Table 2)", "modes_covered": 1000, "kl": 0.06}
REPORTED = ("modes_covered", "kl", "ivom", "ivom_from_encoder", "reconstruction_mse")

SMOKE_STEPS = 10
SMOKE_OVERRIDES = ["--train_batch_size", "16", "--checkpointing_steps", "none"]
SMOKE_NUM_EVAL_SAMPLES = 520
SMOKE_IVOM_BUDGET = {**IVOM_BUDGET, "num_images": 8, "num_steps": 5}


def summarize(runs: list[dict]) -> dict:
    """row -> mean, std and values over seeds of modes covered, KL, IvOM and reconstruction MSE, and steps trained."""
    per_row: dict = {}
    for run in runs:
        per_row.setdefault(run["row"], []).append(run["metrics"])
    summary = {}
    for row, metrics in per_row.items():
        objective, levers = ROWS[row]
        cell: dict = {
            "objective": objective,
            "levers": list(levers),
            "num_seeds": len(metrics),
            "num_modes": metrics[0]["num_modes"],
            "steps": [m["train/steps"] for m in metrics],
        }
        for key in REPORTED:
            values = [m[key] for m in metrics]
            cell[key] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "values": values}
        summary[row] = cell
    return summary


def best_rows(summary: dict) -> dict[str, str]:
    """objective -> its row with the lowest mean KL: each method's best honest number on these networks."""
    best: dict[str, str] = {}
    for row, cell in summary.items():
        current = best.get(cell["objective"])
        if current is None or cell["kl"]["mean"] < summary[current]["kl"]["mean"]:
            best[cell["objective"]] = row
    return best


def row_name(row: str) -> str:
    objective, levers = ROWS[row]
    flags = " ".join(levers).replace(" true", "")
    return METHOD_NAMES[objective] + (f" `{flags}`" if flags else "")


def to_markdown(summary: dict, data: dict, meta: dict) -> str:
    lines = [
        "| row | steps | modes covered (of 1000) | KL | IvOM | IvOM from F(x) only | reconstruction MSE G(F(x)) |",
        "|---|---|---|---|---|---|---|",
    ]
    best = set(best_rows(summary).values())
    for row in ROWS:
        cell = summary.get(row)
        if cell is None:
            continue
        modes, kl = cell["modes_covered"], cell["kl"]
        inversions = [f"{cell[k]['mean']:.5f} ± {cell[k]['std']:.5f}" for k in REPORTED[2:]]
        steps = "/".join(str(s) for s in sorted(set(cell["steps"])))
        seeds = f" ({cell['num_seeds']} seed{'s' if cell['num_seeds'] > 1 else ''})"
        name = f"**{row_name(row)}**" if row in best else row_name(row)
        lines.append(
            f"| {name}{seeds} | {steps} | {modes['mean']:.1f} ± {modes['std']:.1f} | {kl['mean']:.3f} ± "
            f"{kl['std']:.3f} | " + " | ".join(inversions) + " |"
        )
    lines.append(f"| *real stacked digits (data row)* | – | {data['modes_covered']} | {data['kl']:.3f} | – | – | – |")
    for method, paper in PAPER.items():
        lines.append(
            f"| *{METHOD_NAMES[method]} (paper's Table 2)* | – | {paper['modes_covered']} | {paper['kl']} | "
            f"{paper['ivom_cifar10']} (CIFAR-10) | – | – |"
        )
    lines.append(
        f"| *{BEST_PUBLISHED['name']}* | – | {BEST_PUBLISHED['modes_covered']} | {BEST_PUBLISHED['kl']} | – | – | – |"
    )
    budget = meta["ivom"]
    note = (
        f"\nMean ± std over up to {meta['seeds']} training seed(s) on the `{DATASET}` preset "
        f"({meta['max_train_steps']} steps unless the steps column says otherwise); a row differs from the preset "
        "only by its objective and the flags it names. **Bold**: the row of each objective with the lowest mean KL. "
        f"Modes and KL(p_gen ‖ p_data): {meta['num_eval_samples']:,} samples per run, each channel labelled by the "
        f"shipped classifier, whose held-out accuracy is {100 * meta['classifier_accuracy']:.1f}%; the data row "
        f"scores {meta['num_eval_samples']:,} real stacked triples the same way (seed {DATA_ROW_SEED}). IvOM: "
        f"{budget['num_images']} held-out stacked images (`classifier_test` digits, seed {IVOM_DATA_SEED}), per "
        f"image the best of {budget['num_restarts']} random N(0, I) starts and F(x), each with {budget['num_steps']} "
        f"Adam steps of lr {budget['learning_rate']}; per-pixel MSE with pixels in [0, 1]. The paper's IvOM values "
        f"are for CIFAR-10, not Stacked MNIST. Device: {meta['device_name']}. " + provenance(meta)
    )
    if meta.get("skipped_runs"):
        note += f"{meta['skipped_runs']} run(s) could not start within --start_within and are missing.\n"
    return "\n".join(lines) + "\n" + note


def _payload(runs: list[dict], meta: dict, device: str) -> tuple[dict, dict, dict]:
    """The results file: the protocol and provenance, the summary per row, the data row, the published rows, and
    every run."""
    meta.update(
        {
            "cpu": cpu_name(),
            "device": device,
            "device_name": runs[0].get("device_name", cpu_name()),
            "max_train_steps": max(r["metrics"]["train/steps"] for r in runs),
            "classifier_accuracy": runs[0]["metrics"]["classifier_accuracy"],
            "run_minutes": sum(run["wall_seconds"] for run in runs) / 60,
            "python": platform.python_version(),
            "torch": runs[0]["torch"],
        }
    )
    summary = summarize(runs)
    data = data_row(meta["num_eval_samples"])
    payload = {
        "meta": meta,
        "summary": summary,
        "best_rows": best_rows(summary),
        "data_row": data,
        "paper": {METHOD_NAMES[m]: values for m, values in PAPER.items()},
        "best_published": BEST_PUBLISHED,
        "figures": sorted(Path(r["figure"]).name for r in runs if r["figure"]),
        "runs": [
            {k: r[k] for k in ("row", "seed", "objective", "overrides", "metrics", "train_seconds", "eval_seconds")}
            for r in sorted(runs, key=lambda r: (list(ROWS).index(r["row"]), r["seed"]))
        ],
    }
    return payload, summary, data


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per row")
    parser.add_argument("--first_seed", type=int, default=0, help="seeds are first_seed .. first_seed + seeds - 1")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel runs, one thread each")
    parser.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), help=f"'all', or among {list(ROWS)}")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where every run trains and scores")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's max_train_steps")
    parser.add_argument("--start_within", type=float, default=None, help="skip runs not started within S seconds")
    parser.add_argument("--train_within", type=float, default=None, help="every run stops training by S seconds")
    parser.add_argument("--num_eval_samples", type=int, default=None, help=f"default {NUM_EVAL_SAMPLES:,}, the paper's")
    parser.add_argument("--smoke", action="store_true", help="1 seed, 10 steps, batch 16, small eval: checks the code")
    parser.add_argument("--tag", default=None, help="results file suffix (default: '_smoke' with --smoke, else '')")
    parser.add_argument("--results_dir", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--work_dir", default=None, help="where run folders go (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or (args.steps is not None and args.steps < 1):
        parser.error(f"--seeds {args.seeds}, --jobs {args.jobs} and --steps {args.steps} must be >= 1.")
    unknown = sorted(set(list(ROWS) if args.rows == ["all"] else args.rows) - set(ROWS))
    if unknown:
        parser.error(f"--rows {unknown} are not rows of the table; choose from {list(ROWS)} or 'all'.")
    return args


def _jobs(args, rows: list[str], seeds: range, overrides: list[str], scoring: dict, work: Path, figure_stem: Path):
    """One job per (row, seed): what `run_one` trains and scores (`scoring`: the sample count and IvOM budget), and
    where its run folder and figure go."""
    return [
        {
            "row": row,
            "dataset": DATASET,
            "seed": seed,
            "suffix": "",
            "objective": ROWS[row][0],
            "output_dir": str(work / f"{DATASET}-{row}-seed{seed}"),
            "overrides": [*overrides, *ROWS[row][1]],
            **scoring,
            "device": args.device,
            # an 8x8 sample grid per row, from its first seed (the paper's Figure 3)
            "figure": f"{figure_stem}_{row}.png" if seed == seeds[0] else None,
        }
        for row in rows
        for seed in seeds
    ]


def _train_and_score(todo: list[dict], args, processes: int) -> tuple[list[dict], int]:
    """Trains and scores the jobs not yet finished, `processes` at a time, printing each as it ends; returns the
    finished runs and how many were skipped (not started within --start_within)."""
    start_wall = time.time()
    start_by = start_wall + args.start_within if args.start_within is not None else float("inf")
    train_until = start_wall + args.train_within if args.train_within is not None else None
    for job in todo:  # not part of a job's identity: a resumed table is not told to skip or stop early
        job["start_by"], job["train_until"] = start_by, train_until
    runs, skipped = [], 0
    for run in run_parallel(run_one, todo, processes, initializer=_worker_init, initargs=(args.device,)):
        if run.get("skipped"):
            skipped += 1
            continue
        m = run["metrics"]
        print(
            f"{run['row']:<28} seed {run['seed']}: {m['modes_covered']}/{m['num_modes']} modes, KL {m['kl']:.3f}, "
            f"IvOM {m['ivom']:.5f}, G(F(x)) MSE {m['reconstruction_mse']:.5f}, {m['train/steps']} steps "
            f"({run['train_seconds']:.0f} s training + {run['eval_seconds']:.0f} s scoring)",
            flush=True,
        )
        runs.append(run)
    return runs, skipped


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["--setting", "reduced_d"]:  # the literature's reduced-discriminator table: its own rows
        sys.path.insert(0, str(REPO))  # `python benchmarks/table2.py` puts benchmarks/, not the root, on the path
        from benchmarks import table2_reduced_d

        return table2_reduced_d.main(argv[2:])
    args = _arguments(argv)
    rows = list(ROWS) if args.rows == ["all"] else args.rows
    if args.smoke and args.rows == list(DEFAULT_ROWS):
        rows = list(SMOKE_ROWS)
    seeds = range(args.first_seed, args.first_seed + (1 if args.smoke else args.seeds))
    tag = args.tag if args.tag is not None else ("_smoke" if args.smoke else "")
    steps = args.steps or (SMOKE_STEPS if args.smoke else None)
    num_eval_samples = args.num_eval_samples or (SMOKE_NUM_EVAL_SAMPLES if args.smoke else NUM_EVAL_SAMPLES)
    ivom_budget = SMOKE_IVOM_BUDGET if args.smoke else IVOM_BUDGET
    overrides = ["--eval_at_end", "false", *(SMOKE_OVERRIDES if args.smoke else [])]
    if steps is not None:
        overrides += ["--max_train_steps", str(steps)]

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="table2_"))
    commit = git_commit()  # taken before training: a tree edited mid-run must not relabel finished runs
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    scoring = {"num_eval_samples": num_eval_samples, "ivom_budget": ivom_budget, "commit": commit}
    jobs = _jobs(args, rows, seeds, overrides, scoring, work, results / f"table2{tag}")
    runs, todo = split_finished(jobs, work)
    reused = len(runs)
    processes = max(1, min(args.jobs, len(todo)))
    start = time.perf_counter()
    finished, skipped = _train_and_score(todo, args, processes)
    runs += finished
    wall = time.perf_counter() - start
    if not runs:
        print("no run finished: nothing to tabulate", file=sys.stderr)
        return 1

    meta = {
        "commit": final_commit(commit),
        "jobs": processes,
        "seeds": len(seeds),
        "first_seed": seeds[0],
        "num_eval_samples": num_eval_samples,
        "ivom": {**ivom_budget, "data_seed": IVOM_DATA_SEED, "start_seed": IVOM_START_SEED, "split": "classifier_test"},
        "wall_minutes": wall / 60,
        "reused_runs": reused,
        "skipped_runs": skipped,
        "command": "python benchmarks/table2.py " + " ".join(argv),
    }
    payload, summary, data = _payload(runs, meta, args.device)
    write_results(results, f"table2{tag}", payload, to_markdown(summary, data, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
