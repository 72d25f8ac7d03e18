"""Regenerates Table 2 of the paper on Stacked MNIST: modes covered, KL, IvOM and amortized reconstruction, per method.

    python benchmarks/table2.py --seeds 3                          # DCGAN and VEEGAN, the preset's 20,000 steps
    python benchmarks/table2.py --methods gan ali unrolled veegan  # the paper's four rows
    python benchmarks/table2.py --smoke                            # 1 seed, 10 steps, batch 16: what CI runs

Every method trains with `training/train.py` on `training/configs/stacked_mnist.yaml`, so the conv networks, batch,
steps and optimizer are shared and only `--objective` differs (DCGAN is `--objective gan` on these networks). After
training, each run is scored by the protocol of benchmarks/BENCHMARKS.md:
- `evaluate(pipe, "stacked_mnist")`: 26,000 samples labelled by the shipped classifier, modes covered out of 1000 and
  KL(p_gen ‖ p_data), with the classifier's held-out accuracy beside them;
- `inversion_metrics`: IvOM and the amortized G(F(x)) error on 64 stacked images built from the classifier's
  held-out digits (never seen by any GAN), the same images, seeds and optimizer budget for every method.

Runs go in parallel, one process and one thread per run. The results carry the commit, the wall time, the CPU and the
command: `benchmarks/results/table2.{json,md}` and an 8x8 sample grid per method, `table2_<method>.png` (first seed).
Wall time: the committed run of the default 2 methods x 3 seeds took 119.5 min with `--jobs 2` on 2 cores. Its
DCGAN runs took 30-48 min and its VEEGAN runs 34-36 min of training each, plus ~25 s of scoring (one thread per run,
on cores shared with other work at times). Extrapolated from 50 steps on one thread: ALI about 49 min, PacGAN 27 min,
Unrolled GAN 4.4 h (5 unrolled D steps); all five methods about 10.6 h.

A long run survives interruption. Rerun the same command with the same `--work_dir DIR`, and it trains
only the missing runs. A finished run is reused only if it came from the same commit of a clean tree.
"""

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `benchmarks` and `training` are script folders, not installed packages

from benchmarks.table1 import (  # noqa: E402  # noqa: E402
    _commit,
    _cpu_name,
    _one_thread,
    final_commit,
    provenance,
    save_record,
    split_finished,
    write_results,
)
from benchmarks.table1 import train_run as train_one  # noqa: E402

if TYPE_CHECKING:
    import torch

DATASET = "stacked_mnist"
# --methods name (the `--objective`) -> row name; rows appear in this order
METHODS = {"gan": "DCGAN", "ali": "ALI", "unrolled": "Unrolled GAN", "pacgan": "PacGAN", "veegan": "VEEGAN"}
DEFAULT_METHODS = ("gan", "veegan")
# Table 2 of the paper: Stacked MNIST modes and KL; its IvOM column is measured on CIFAR-10, not Stacked MNIST
PAPER = {
    "gan": {"modes_covered": 99, "kl": 3.4, "ivom_cifar10": 0.00844},
    "ali": {"modes_covered": 16, "kl": 5.4, "ivom_cifar10": 0.0067},
    "unrolled": {"modes_covered": 48.7, "kl": 4.32, "ivom_cifar10": 0.013},
    "veegan": {"modes_covered": 150, "kl": 2.95, "ivom_cifar10": 0.0068},
}
REPORTED = ("modes_covered", "kl", "ivom", "ivom_from_encoder", "reconstruction_mse")

# The inversion protocol: the same images, starts and Adam budget for every method and seed.
IVOM_BUDGET = {"num_images": 64, "num_restarts": 3, "num_steps": 200, "learning_rate": 0.05}
IVOM_DATA_SEED = 0  # draws the held-out stacked images
IVOM_START_SEED = 0  # draws the random restarts
NUM_EVAL_SAMPLES = 26000  # the paper's count

SMOKE_STEPS = 10
SMOKE_OVERRIDES = ["--train_batch_size", "16", "--checkpointing_steps", "none"]
SMOKE_NUM_EVAL_SAMPLES = 520
SMOKE_IVOM_BUDGET = {**IVOM_BUDGET, "num_images": 8, "num_steps": 5}


def held_out_images(num_images: int, image_size: int) -> "torch.Tensor":
    """`(num_images, 3, image_size, image_size)` stacked images in [-1, 1] from digits no GAN trained on."""
    import torch

    from veegan_hf.data import StackedMNIST

    dataset = StackedMNIST.from_split("classifier_test")  # disjoint from the GANs' "train" digits
    generator = torch.Generator().manual_seed(IVOM_DATA_SEED)
    pixel_values, _ = dataset.sample(num_images, generator=generator, image_size=image_size)
    return pixel_values


def run_one(job: dict) -> dict:
    """One training run in a pool worker (table1's), then the mode metrics, the inversion metrics and the grid."""
    import torch

    from veegan_hf import VEEGAN
    from veegan_hf.evaluation import draw_samples, evaluate, inversion_metrics
    from veegan_hf.plotting import image_grid

    run = train_one(job)  # trains with --eval_at_end false: the scoring below replaces train.py's own
    start = time.perf_counter()
    pipe = VEEGAN.from_pretrained(job["output_dir"], load_discriminator=False)  # the exported (EMA) generator
    metrics = {**run["metrics"], **evaluate(pipe, DATASET, num_samples=job["num_eval_samples"], seed=0)}
    budget = job["ivom_budget"]
    images = held_out_images(budget["num_images"], pipe.generator.config.image_size)
    metrics.update(
        inversion_metrics(
            pipe,
            images,
            num_restarts=budget["num_restarts"],
            num_steps=budget["num_steps"],
            learning_rate=budget["learning_rate"],
            seed=IVOM_START_SEED,
        )
    )
    if job["figure"]:  # here, not in the parent: the parent then never pays for importing torch and diffusers
        image_grid(draw_samples(pipe, 64, seed=0), num_columns=8, scale=2).save(job["figure"])
    eval_seconds = round(time.perf_counter() - start, 1)
    run = {
        **run,
        "torch": torch.__version__,
        "metrics": metrics,
        "train_seconds": run["wall_seconds"],
        "eval_seconds": eval_seconds,
        "wall_seconds": round(run["wall_seconds"] + eval_seconds, 1),
    }
    return save_record(run)  # a rerun with the same --work_dir at the same commit reuses it


def summarize(runs: list[dict]) -> dict:
    """method -> mean, std and values over seeds of modes covered, KL, IvOM and reconstruction MSE."""
    per_method: dict = {}
    for run in runs:
        per_method.setdefault(run["method"], []).append(run["metrics"])
    summary = {}
    for method, metrics in per_method.items():
        cell: dict = {"name": METHODS[method], "num_seeds": len(metrics), "num_modes": metrics[0]["num_modes"]}
        for key in REPORTED:
            values = [m[key] for m in metrics]
            cell[key] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "values": values}
        summary[method] = cell
    return summary


def to_markdown(summary: dict, meta: dict) -> str:
    lines = [
        "| method | modes covered (of 1000) | KL | IvOM | IvOM from F(x) only | reconstruction MSE G(F(x)) |",
        "|---|---|---|---|---|---|",
    ]
    for method in METHODS:
        cell = summary.get(method)
        if cell is None:
            continue
        modes, kl = cell["modes_covered"], cell["kl"]
        inversions = [f"{cell[k]['mean']:.5f} ± {cell[k]['std']:.5f}" for k in REPORTED[2:]]
        lines.append(
            f"| {cell['name']} | {modes['mean']:.1f} ± {modes['std']:.1f} | {kl['mean']:.3f} ± {kl['std']:.3f} | "
            + " | ".join(inversions)
            + " |"
        )
    for method, paper in PAPER.items():
        lines.append(
            f"| {METHODS[method]} (paper's Table 2) | {paper['modes_covered']} | {paper['kl']} | "
            f"{paper['ivom_cifar10']} (CIFAR-10) | – | – |"
        )
    budget = meta["ivom"]
    note = (
        f"\nMean ± std over {meta['seeds']} training seed(s) of {meta['max_train_steps']} steps on the "
        f"`{DATASET}` preset; only `--objective` differs between rows. Modes and KL(p_gen ‖ p_data): "
        f"{meta['num_eval_samples']:,} samples per run, each channel labelled by the shipped classifier, whose "
        f"held-out accuracy is {100 * meta['classifier_accuracy']:.1f}%. IvOM: {budget['num_images']} held-out stacked "
        f"images (`classifier_test` digits, seed {IVOM_DATA_SEED}), per image the best of {budget['num_restarts']} "
        f"random N(0, I) starts and F(x), each with {budget['num_steps']} Adam steps of lr {budget['learning_rate']}; "
        "per-pixel MSE with pixels in [0, 1]. The paper's IvOM values are for CIFAR-10, not Stacked MNIST. "
        + provenance(meta)
    )
    return "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per method")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel runs, one thread each")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=list(METHODS))
    parser.add_argument("--steps", type=int, default=None, help="override the preset's max_train_steps")
    parser.add_argument("--num_eval_samples", type=int, default=None, help=f"default {NUM_EVAL_SAMPLES:,}, the paper's")
    parser.add_argument("--smoke", action="store_true", help="1 seed, 10 steps, batch 16, small eval: checks the code")
    parser.add_argument("--results_dir", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--work_dir", default=None, help="where run folders go (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or (args.steps is not None and args.steps < 1):
        parser.error(f"--seeds {args.seeds}, --jobs {args.jobs} and --steps {args.steps} must be >= 1.")
    seeds = 1 if args.smoke else args.seeds
    tag = "_smoke" if args.smoke else ""
    steps = args.steps or (SMOKE_STEPS if args.smoke else None)
    num_eval_samples = args.num_eval_samples or (SMOKE_NUM_EVAL_SAMPLES if args.smoke else NUM_EVAL_SAMPLES)
    ivom_budget = SMOKE_IVOM_BUDGET if args.smoke else IVOM_BUDGET
    overrides = ["--eval_at_end", "false", *(SMOKE_OVERRIDES if args.smoke else [])]
    if steps is not None:
        overrides += ["--max_train_steps", str(steps)]

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="table2_"))
    commit = _commit()  # taken before training: a tree edited mid-run must not relabel finished runs
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    jobs = [
        {
            "method": method,
            "dataset": DATASET,
            "seed": seed,
            "suffix": "",
            "objective": method,
            "output_dir": str(work / f"{DATASET}-{method}-seed{seed}"),
            "overrides": overrides,
            "num_eval_samples": num_eval_samples,
            "ivom_budget": ivom_budget,
            # an 8x8 sample grid per method, from its first seed (the paper's Figure 3)
            "figure": str(results / f"table2{tag}_{method}.png") if seed == 0 else None,
            "commit": commit,
        }
        for method in args.methods
        for seed in range(seeds)
    ]
    runs, todo = split_finished(jobs, work)
    reused = len(runs)
    processes = max(1, min(args.jobs, len(todo)))
    start = time.perf_counter()
    # spawn: clean interpreters with one thread each, reused across runs so torch is imported once per worker
    with multiprocessing.get_context("spawn").Pool(processes, initializer=_one_thread) as pool:
        for run in pool.imap_unordered(run_one, todo):
            m = run["metrics"]
            print(
                f"{METHODS[run['method']]:<13} seed {run['seed']}: {m['modes_covered']}/{m['num_modes']} modes, "
                f"KL {m['kl']:.3f}, IvOM {m['ivom']:.5f}, G(F(x)) MSE {m['reconstruction_mse']:.5f} "
                f"({run['train_seconds']:.0f} s training + {run['eval_seconds']:.0f} s scoring)",
                flush=True,
            )
            runs.append(run)
    wall = time.perf_counter() - start

    first = runs[0]["metrics"]
    meta = {
        "commit": final_commit(commit),
        "cpu": _cpu_name(),
        "jobs": processes,
        "seeds": seeds,
        "max_train_steps": first["train/steps"],
        "num_eval_samples": num_eval_samples,
        "classifier_accuracy": first["classifier_accuracy"],
        "ivom": {**ivom_budget, "data_seed": IVOM_DATA_SEED, "start_seed": IVOM_START_SEED, "split": "classifier_test"},
        "wall_minutes": wall / 60,
        "reused_runs": reused,
        "run_minutes": sum(run["wall_seconds"] for run in runs) / 60,
        "python": platform.python_version(),
        "torch": runs[0]["torch"],
        "command": "python benchmarks/table2.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    summary = summarize(runs)
    figures = sorted(Path(r["figure"]).name for r in runs if r["figure"])
    payload = {
        "meta": meta,
        "summary": summary,
        "paper": {METHODS[m]: values for m, values in PAPER.items()},
        "figures": figures,
        "runs": [
            {k: r[k] for k in ("method", "seed", "objective", "metrics", "train_seconds", "eval_seconds")}
            for r in sorted(runs, key=lambda r: (list(METHODS).index(r["method"]), r["seed"]))
        ],
    }
    write_results(results, f"table2{tag}", payload, to_markdown(summary, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
