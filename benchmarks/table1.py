"""Regenerates Table 1 of the paper: modes captured and % high-quality samples on ring, grid and 1200-D, per method.

    python benchmarks/table1.py --seeds 5            # the full table (see benchmarks/README.md for the wall time)
    python benchmarks/table1.py --smoke              # 1 seed, a few steps: what CI runs

Every method trains with `veegan_hf.training` on the dataset's preset (`veegan_hf/training/configs/<dataset>.yaml`),
so the networks, batch, steps and optimizer are shared and only `--objective` differs. The paper-faithful VEEGAN recipe
(`<dataset>_paper.yaml`) is its own row. Runs go in parallel, one process and one thread per run. The results carry
the commit, the wall time and the CPU: `benchmarks/results/table1.{json,md}` and `table1_<dataset>.png`.

A long run survives interruption. Rerun the same command with the same `--work_dir DIR`, and it trains
only the missing runs. A finished run is reused only if it came from the same commit of a clean tree.

A change that only one method reads (VEEGAN's lambda schedule) needs only that method's rows again:

    python benchmarks/table1.py --seeds 5 --methods "VEEGAN (ours)" --keep benchmarks/results/table1.json

trains every seed of the named methods and seed 0 of every other method. Each other cell keeps its runs from the file
only if its seed 0 reproduces the file's metrics to the sample at this commit; otherwise nothing is written.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from veegan_hf.benchmarking.runs import TABLE1_METHODS, run_parallel, save_record, split_finished, train_run
from veegan_hf.provenance import REPO, cpu_name, final_commit, git_commit, provenance, write_results

DATASETS = ("ring", "grid", "synthetic1200")
METHODS = TABLE1_METHODS  # row name -> (preset suffix, objective)
PAPER = {  # Table 1 of the paper: (modes, HQ %)
    "GAN": {"ring": (1, 99.3), "grid": (3.3, 0.5), "synthetic1200": (1.6, 2.0)},
    "ALI": {"ring": (2.8, 0.13), "grid": (15.8, 1.6), "synthetic1200": (3, 5.4)},
    "Unrolled GAN": {"ring": (7.6, 35.6), "grid": (23.6, 16), "synthetic1200": (0, 0.0)},
    "VEEGAN": {"ring": (8, 52.9), "grid": (24.6, 40), "synthetic1200": (5.5, 28.29)},
}
# The best published rows on the same mixtures (PacGAN's runs, fjxmlzn/PacGAN `Table1.png`; GDPP, Elfeki et al. 2019):
# ring std 0.01 at radius 1 and grid std 0.05, HQ within 3 std, the same relative rule as ours. (modes, HQ %)
PUBLISHED = {
    "PacGAN3 (PacGAN's runs)": {"ring": (7.8, 97.7)},
    "PacGAN4 (PacGAN's runs)": {"grid": (24.8, 93.6)},
    "ALI (PacGAN's runs)": {"grid": (24.1, 95.7)},
    "GDPP (best published 1200-D)": {"synthetic1200": (7.4, 48.3)},
}
DATA_ROW = "Data (the true mixture)"
SMOKE_OVERRIDES = ["--max_train_steps", "20", "--train_batch_size", "64"]
# relative cost of a run (measured per-step time x steps), to start the longest first: a shorter makespan on few cores
COST = {"unrolled": 4.0, "_paper": 4.0}


def run_one(job: dict) -> dict:
    """`train_run`, then the record that lets an interrupted table reuse it."""
    return save_record(train_run(job))


def data_runs(datasets: list[str], seeds: int) -> list[dict]:
    """The data row: 2,500 draws of each true mixture per seed, scored like a generator's samples. It is what a
    perfect generator scores: every mode, and the HQ share of a Gaussian inside the 3-std rule (98.9% in 2-D)."""
    import torch

    from veegan_hf.data import get_mixture
    from veegan_hf.metrics import mixture_metrics_for

    runs = []
    for dataset in datasets:
        mixture = get_mixture(dataset)
        for seed in range(seeds):
            samples = mixture.sample(2500, generator=torch.Generator().manual_seed(10_000 + seed))
            metrics = mixture_metrics_for(samples, mixture)
            runs.append({"method": DATA_ROW, "dataset": dataset, "seed": seed, "metrics": metrics})
    return runs


def summarize(runs: list[dict]) -> dict:
    """method -> dataset -> mean and std over seeds of modes captured, HQ % and reverse KL."""
    table: dict = {}
    for run in runs:
        table.setdefault(run["method"], {}).setdefault(run["dataset"], []).append(run["metrics"])
    summary: dict = {}
    for method, per_dataset in table.items():
        for dataset, metrics in per_dataset.items():
            cell = {"num_seeds": len(metrics), "num_modes": metrics[0]["num_modes"]}
            for key in ("modes_captured", "hq_percent", "reverse_kl"):
                values = [m[key] for m in metrics]
                cell[key] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "values": values}
            summary.setdefault(method, {})[dataset] = cell
    return summary


def to_markdown(summary: dict, meta: dict) -> str:
    header = "| method | " + " | ".join(f"{d} modes | {d} HQ %" for d in DATASETS) + " |"
    lines = [header, "|---" * (1 + 2 * len(DATASETS)) + "|"]
    for method in (DATA_ROW, *METHODS):
        if method not in summary:
            continue
        cells = []
        for dataset in DATASETS:
            cell = summary[method].get(dataset)
            if cell is None:
                cells += ["–", "–"]
                continue
            modes, hq = cell["modes_captured"], cell["hq_percent"]
            cells += [
                f"{modes['mean']:.1f} ± {modes['std']:.1f} / {cell['num_modes']}",
                f"{hq['mean']:.1f} ± {hq['std']:.1f}",
            ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    for method, values in PAPER.items():
        cells = [f"{values[d][0]} / {values[d][1]}".replace(" / ", " | ") for d in DATASETS]
        lines.append(f"| {method} (paper's Table 1) | " + " | ".join(cells) + " |")
    for method, values in PUBLISHED.items():
        cells = [" | ".join(str(v) for v in values[d]) if d in values else "– | –" for d in DATASETS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    note = (
        f"\nMean ± std over {meta['seeds']} seed(s) of training; 2,500 samples per run, scored as in BENCHMARKS.md. "
        + provenance(meta)
    )
    if "kept" in meta:
        kept = meta["kept"]
        note += (
            f"Only {', '.join(m for m in METHODS if m not in kept['methods'])} trained every seed at this commit. "
            f"The other rows' seeds 1+ are kept from commit `{kept['commit']}` (`{kept['from']}`): their seed 0, "
            "trained again at this commit, reproduced the kept figures to the sample.\n"
        )
    if "rendered" in meta:
        note += f"The data and published rows were added by `{meta['rendered']['command']}` at commit "
        note += f"`{meta['rendered']['commit']}`, without retraining.\n"
    return "\n".join(lines) + "\n" + note


def plot(runs: list[dict], out_dir: Path, tag: str) -> list[str]:
    """One figure per dataset: the first seed of every method, samples over the true modes (the paper's Figure 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from veegan_hf import VEEGAN
    from veegan_hf.data import get_mixture
    from veegan_hf.evaluation import draw_samples
    from veegan_hf.metrics import high_quality_radius
    from veegan_hf.plotting import scatter_over_modes

    written = []
    for dataset in DATASETS:
        chosen = [r for r in runs if r["dataset"] == dataset and r["seed"] == min(x["seed"] for x in runs)]
        chosen.sort(key=lambda r: list(METHODS).index(r["method"]))
        if not chosen:
            continue
        mixture = get_mixture(dataset)
        fig, axes = plt.subplots(1, len(chosen), figsize=(3.2 * len(chosen), 3.4), dpi=110, squeeze=False)
        for ax, run in zip(axes[0], chosen):
            samples = draw_samples(VEEGAN.from_pretrained(run["output_dir"]), 2500, seed=0)
            m = run["metrics"]
            title = f"{run['method']}\n{m['modes_captured']}/{m['num_modes']} modes, {m['hq_percent']:.1f}% HQ"
            if dataset == "synthetic1200":
                # 1200-D: the histogram of nearest modes among HQ samples says what a 2-D scatter cannot
                distances = torch.cdist(samples.double(), mixture.means.double())
                nearest = distances.min(dim=1)
                hq = nearest.values <= high_quality_radius(mixture.std, mixture.noise_dim)
                counts = torch.bincount(nearest.indices[hq], minlength=mixture.num_modes)
                ax.bar(range(mixture.num_modes), counts.numpy(), color="#1f77b4")
                ax.set_xlabel("mode", fontsize=8)
                ax.set_title(title, fontsize=9)
            else:
                scatter_over_modes(samples, mixture.means, title=title, ax=ax)
        fig.tight_layout()
        path = out_dir / f"table1{tag}_{dataset}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path.name)
    return written


def render(source: Path, results: Path) -> int:
    """The table of a finished run set, summarized again: the data row depends on no training, so adding it (or a
    published row) needs no rerun of the hours of training behind the runs."""
    payload = json.loads(source.read_text())
    datasets = sorted({run["dataset"] for run in payload["runs"]}, key=DATASETS.index)
    payload["summary"] = summarize(payload["runs"] + data_runs(datasets, payload["meta"]["seeds"]))
    payload["meta"]["rendered"] = {"commit": git_commit(), "command": f"python benchmarks/table1.py --render {source}"}
    results.mkdir(parents=True, exist_ok=True)
    write_results(results, source.stem, payload, to_markdown(payload["summary"], payload["meta"]))
    return 0


def kept_runs(source: Path, methods: list[str], datasets: list[str], seeds: int) -> list[dict]:
    """The runs of a results file that `--keep` may reuse: the other methods' cells, each run tagged with the commit
    it was trained at (older files record it once, in their meta)."""
    payload = json.loads(source.read_text())
    commit = payload["meta"]["commit"]
    runs = [
        {"commit": commit, **run}
        for run in payload["runs"]
        if run["method"] not in methods and run["dataset"] in datasets and run["seed"] < seeds
    ]
    for method, dataset in {(run["method"], run["dataset"]) for run in runs}:
        have = sorted(run["seed"] for run in runs if (run["method"], run["dataset"]) == (method, dataset))
        if have != list(range(seeds)):
            raise SystemExit(f"--keep {source}: {method} on {dataset} has seeds {have}, not 0-{seeds - 1}.")
    return runs


def check_reproduced(runs: list[dict], kept: list[dict]) -> list[str]:
    """The kept cells whose seed 0, trained again now, differs from the kept record (empty: all reproduced)."""
    fresh = {(run["method"], run["dataset"]): run["metrics"] for run in runs if run["seed"] == 0}
    mismatches = []
    for run in kept:
        if run["seed"] != 0:
            continue
        now = fresh[(run["method"], run["dataset"])]
        then = run["metrics"]
        if any(now[key] != then[key] for key in ("modes_captured", "hq_percent", "reverse_kl")):
            mismatches.append(
                f"{run['method']} on {run['dataset']}: {then['modes_captured']} / {then['hq_percent']:.2f} at "
                f"{run['commit']}, {now['modes_captured']} / {now['hq_percent']:.2f} now"
            )
    return mismatches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=None, help="training seeds per method and dataset (5; smoke: 1)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel runs, one thread each")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--smoke", action="store_true", help="1 seed, 20 steps, batch 64: checks the pipeline only")
    parser.add_argument("--results_dir", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--work_dir", default=None, help="where run folders go (default: a temporary folder)")
    parser.add_argument(
        "--render",
        metavar="TABLE1_JSON",
        help="train nothing: rebuild the table from this results file's runs, with the current data and published "
        "rows (its figures, commit and timings are kept)",
    )
    parser.add_argument(
        "--keep",
        metavar="TABLE1_JSON",
        help="train --methods on every seed and the other methods on seed 0 only; keep the other methods' runs "
        "from this results file where seed 0 reproduces them exactly",
    )
    args = parser.parse_args(argv)
    if args.render:
        return render(Path(args.render), Path(args.results_dir))
    seeds = args.seeds or (1 if args.smoke else 5)
    tag = "_smoke" if args.smoke else ""
    kept = kept_runs(Path(args.keep), args.methods, args.datasets, seeds) if args.keep else []
    checked = sorted({run["method"] for run in kept}, key=list(METHODS).index)

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="table1_"))
    commit = git_commit()  # taken before training: a tree edited mid-run must not relabel finished runs
    jobs = [
        {
            "method": method,
            "dataset": dataset,
            "seed": seed,
            "suffix": METHODS[method][0],
            "objective": METHODS[method][1],
            "output_dir": str(work / f"{dataset}-{METHODS[method][1]}{METHODS[method][0]}-seed{seed}"),
            "overrides": SMOKE_OVERRIDES if args.smoke else [],
            "commit": commit,
        }
        for dataset in args.datasets
        for method in [*args.methods, *checked]
        for seed in range(seeds if method in args.methods else 1)
    ]
    runs, todo = split_finished(jobs, work)
    reused = len(runs)
    todo.sort(key=lambda job: -COST.get(job["objective"], COST.get(job["suffix"], 1.0)))
    start = time.perf_counter()
    for run in run_parallel(run_one, todo, args.jobs):
        m = run["metrics"]
        print(
            f"{run['dataset']:>14} {run['method']:<22} seed {run['seed']}: {m['modes_captured']}/"
            f"{m['num_modes']} modes, {m['hq_percent']:.2f}% HQ ({run['wall_seconds']:.0f} s)",
            flush=True,
        )
        runs.append(run)
    wall = time.perf_counter() - start
    if kept:
        mismatches = check_reproduced(runs, kept)
        if mismatches:
            print(
                "not written: these kept cells did not reproduce at this commit, so their other seeds cannot be "
                "kept; rerun them (drop --keep):\n" + "\n".join(mismatches),
                file=sys.stderr,
            )
            return 1
        runs += [run for run in kept if run["seed"] > 0]
    # runs finish in any order, and the summary lists each cell's seeds in the order of `runs`: sort once, here
    runs.sort(key=lambda r: (r["dataset"], r["method"], r["seed"]))

    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    meta = {
        "commit": final_commit(commit),
        "cpu": cpu_name(),
        "jobs": args.jobs,
        "seeds": seeds,
        "wall_minutes": wall / 60,
        "reused_runs": reused,
        "run_minutes": sum(run["wall_seconds"] for run in runs) / 60,
        "python": platform.python_version(),
        "command": "python benchmarks/table1.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if kept:
        meta["kept"] = {"methods": checked, "commit": kept[0]["commit"], "from": args.keep}
    import torch

    meta["torch"] = torch.__version__
    summary = summarize(runs + data_runs(args.datasets, seeds))
    figures = plot(runs, results, tag)
    payload = {
        "meta": meta,
        "summary": summary,
        "figures": figures,
        "runs": [
            {k: r[k] for k in ("method", "dataset", "seed", "objective", "metrics", "wall_seconds", "commit")}
            for r in runs
        ],
    }
    write_results(results, f"table1{tag}", payload, to_markdown(summary, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
