"""Does the coverage report find a digit the model never saw? Trains the `mnist` preset on the training digits without
one digit, once per seed, and asks `coverage_report` which mode it most often cannot make.

    python benchmarks/coverage_dropped_digit.py --digit 3 --seeds 0 1 2
    python benchmarks/coverage_dropped_digit.py --smoke          # 1 seed, 20 steps: checks the code

Writes `benchmarks/results/coverage_dropped_digit.{json,md}`: per seed the dropped digit's rank in `per_mode` (0 is
most dropped: the largest share of real images not makeable), its not-makeable rate against the next digit's, the
rank the generated share alone would give it, its generated share, and its share of the worst-covered images. With
`--save_model`, seed `--seeds[0]`'s pipeline and report go to `benchmarks/results/models/mnist_without_<digit>/`,
which a CI test audits again.
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from veegan_hf.benchmarking.runs import run_parallel, train_run
from veegan_hf.provenance import REPO, cpu_name, git_commit, provenance, write_results

RESULTS = REPO / "benchmarks" / "results"


def _write_digits(folder: Path, digit: int) -> int:
    """The 2,500 training digits without `digit`, as PNGs: an imagefolder, as a user's own data would be."""
    import PIL.Image

    from veegan_hf.data import mnist_split

    images, labels = mnist_split("train")
    folder.mkdir(parents=True, exist_ok=True)
    kept = 0
    for i, (image, label) in enumerate(zip(images.numpy(), labels.tolist())):
        if label != digit:
            PIL.Image.fromarray(image, "L").save(folder / f"{i:04d}.png")
            kept += 1
    return kept


def run_one(job: dict) -> dict:
    from veegan_hf import VEEGAN
    from veegan_hf.coverage import coverage_report

    run = train_run(job)
    pipe = VEEGAN.from_pretrained(job["output_dir"], load_discriminator=False)
    report = coverage_report(pipe, "mnist", seed=job["seed"], progress=False, **job["report"])
    modes = list(report.per_mode["mode"])
    digit = job["digit"]
    worst = report.worst(32)
    labels = list(report.per_image["label"])
    if job["report_dir"]:
        report.save(job["report_dir"])
    rows = list(report.per_mode)
    by_share = [row["mode"] for row in sorted(rows, key=lambda row: row["relative_gap"])]
    others = [row["not_makeable_rate"] for row in rows if row["mode"] != digit]
    return {
        "seed": job["seed"],
        "rank": modes.index(digit),
        "most_dropped": modes[0],
        "not_makeable_rate": rows[modes.index(digit)]["not_makeable_rate"],
        "next_not_makeable_rate": max(others),
        "rank_by_share": by_share.index(digit),
        "generated_share": rows[modes.index(digit)]["generated_share"],
        "worst32_share": sum(labels[i] == digit for i in worst) / len(worst),
        "coverage": report.metrics["coverage"],
        "train_seconds": run["wall_seconds"],
        "steps": run["metrics"]["train/steps"],
        "output_dir": job["output_dir"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digit", type=int, default=3, choices=range(10))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=4000, help="training steps per seed (the preset has 9,000)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--save_model", action="store_true", help="keep the first seed's model and report")
    parser.add_argument("--smoke", action="store_true", help="1 seed, 20 steps, a small report")
    args = parser.parse_args(argv)
    seeds, steps = (args.seeds[:1], 20) if args.smoke else (args.seeds, args.steps)
    work = Path(tempfile.mkdtemp(prefix="dropped_digit_"))
    kept = _write_digits(work / "digits", args.digit)
    commit = git_commit()
    report_kwargs = {"num_real": 500, "refine_worst": 4, "refine_steps": 5, "fid": False} if args.smoke else {}
    model_dir = RESULTS / "models" / f"mnist_without_{args.digit}"
    jobs = [
        {
            "dataset": "mnist",
            "objective": "veegan",
            "seed": seed,
            "digit": args.digit,
            "output_dir": str(work / f"seed{seed}"),
            "overrides": [
                "--train_data_dir",
                str(work / "digits"),
                "--resolution",
                "28",
                "--max_train_steps",
                str(steps),
            ]
            + (["--train_batch_size", "16", "--checkpointing_steps", "none"] if args.smoke else [])
            + ["--eval_at_end", "false"],
            "report": report_kwargs,
            "report_dir": str(model_dir / "coverage") if args.save_model and seed == seeds[0] else None,
        }
        for seed in seeds
    ]
    start = time.perf_counter()
    runs = sorted(run_parallel(run_one, jobs, args.jobs), key=lambda r: r["seed"])
    wall = time.perf_counter() - start
    if args.save_model:
        from veegan_hf import VEEGAN

        VEEGAN.from_pretrained(runs[0]["output_dir"], load_discriminator=False).save_pretrained(
            model_dir, dataset_name="mnist"
        )
    lines = [
        "| seed | steps | rank of the dropped digit | most dropped | its real images not makeable | next digit's "
        "| its rank by generated share | its generated share | of the 32 worst |"
    ]
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        lines.append(
            f"| {r['seed']} | {r['steps']} | {r['rank']} | {r['most_dropped']} | {100 * r['not_makeable_rate']:.1f}% | "
            f"{100 * r['next_not_makeable_rate']:.1f}% | {r['rank_by_share']} | {100 * r['generated_share']:.2f}% | "
            f"{100 * r['worst32_share']:.0f}% |"
        )
    meta = {
        "commit": commit,
        "wall_minutes": wall / 60,
        "jobs": args.jobs,
        "cpu": cpu_name(),
        "run_minutes": sum(r["train_seconds"] for r in runs) / 60,
        "command": "python benchmarks/coverage_dropped_digit.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    ranked_first = sum(r["rank"] == 0 for r in runs)
    note = (
        f"\nThe `mnist` preset trained for {steps} steps on the {kept} training digits that are not {args.digit} (an "
        f"imagefolder), then `coverage_report(pipe, 'mnist')` on all 2,500 training digits. The dropped digit is "
        f"ranked most dropped on {ranked_first} of {len(runs)} seeds; ranked by generated share alone it is first on "
        f"{sum(r['rank_by_share'] == 0 for r in runs)} (mean generated share "
        f"{100 * statistics.fmean(r['generated_share'] for r in runs):.2f}% against 10% real: the classifier reads "
        "the model's unfinished strokes as the missing digit). Ranks count from 0. " + provenance(meta)
    )
    name = "coverage_dropped_digit" + ("_smoke" if args.smoke else "")
    write_results(RESULTS, name, {"meta": meta, "digit": args.digit, "runs": runs}, "\n".join(lines) + "\n" + note)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
