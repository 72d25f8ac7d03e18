"""What sampling with the discriminator buys on the mixtures: modes, HQ and samples/s with and without discriminator
rejection sampling (DRS, Azadi et al., 2019), from the same trained models.

    python benchmarks/rejection_sampling.py RUN_DIR [RUN_DIR ...] [--targets 0.5 0.2 0.1] [--seeds 0 1 2]

Each RUN_DIR is a saved pipeline of a `ring`, `grid` or `synthetic1200` run that kept its discriminator (a training
run's output folder does). For each model, each acceptance target (plus plain sampling), and each sampling seed, the
script draws 2,500 samples (the protocol's count), scores them with `veegan_hf.metrics` and times the call. A row
keeps every mode or it says how many it lost: HQ bought by dropping modes shows in the modes column. Writes
`benchmarks/results/rejection_sampling.{json,md}` (or `--output`).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from veegan_hf.provenance import REPO, cpu_name, git_commit, write_results

NUM_SAMPLES = 2500


def measure(run_dir: Path, targets: list[float], seeds: list[int]) -> list[dict]:
    """One row per sampler: modes, HQ % and acceptance (mean over seeds) and samples/s, for one model."""
    from veegan_hf import VEEGAN, RejectionSampling
    from veegan_hf.metrics import mixture_metrics_for
    from veegan_hf.mixtures import get_mixture

    config = json.loads((run_dir / "training_config.json").read_text())
    mixture = get_mixture(config["dataset_name"])
    pipe = VEEGAN.from_pretrained(run_dir)
    rows = []
    for target in [None, *targets]:
        settings = False if target is None else RejectionSampling(target_acceptance=target)
        scores, seconds = [], 0.0
        for seed in seeds:
            start = time.perf_counter()
            out = pipe(
                batch_size=NUM_SAMPLES, generator=torch.Generator().manual_seed(seed), rejection_sampling=settings
            )
            seconds += time.perf_counter() - start
            metrics = mixture_metrics_for(out.samples, mixture)
            metrics["acceptance_rate"] = 1.0 if target is None else out.acceptance_rate
            scores.append(metrics)
        rows.append(
            {
                "model": str(run_dir),
                "dataset": config["dataset_name"],
                "objective": config["objective"],
                "target_acceptance": target,
                "seeds": seeds,
                **{
                    k: statistics.fmean(m[k] for m in scores)
                    for k in ("modes_captured", "hq_percent", "reverse_kl", "acceptance_rate")
                },
                "min_modes": min(m["modes_captured"] for m in scores),
                "num_modes": mixture.num_modes,
                "samples_per_second": NUM_SAMPLES * len(seeds) / seconds,
            }
        )
    return rows


def to_markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "| model | objective | sampler | modes (min) | HQ % | reverse KL | acceptance | samples/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sampler = "plain" if r["target_acceptance"] is None else f"DRS, target {r['target_acceptance']:g}"
        lines.append(
            f"| `{Path(r['model']).name}` ({r['dataset']}) | {r['objective']} | {sampler} | "
            f"{r['modes_captured']:.1f} of {r['num_modes']} ({r['min_modes']}) | {r['hq_percent']:.1f} | "
            f"{r['reverse_kl']:.3f} | {r['acceptance_rate']:.3f} | {r['samples_per_second']:,.0f} |"
        )
    note = (
        f"\nMeans over sampling seeds {meta['seeds']} of {NUM_SAMPLES:,} samples each, from one trained model per row "
        "group; modes and HQ as in Table 1; DRS scores each candidate with the model's own D (the joint logit on "
        "(z, G(z)) for joint objectives) and fits its shift gamma to the target acceptance on 4,096 candidates. "
        f"Commit `{meta['commit']}`, {meta['cpu']}, one thread. Command: `{meta['command']}`."
    )
    return "\n".join(lines) + "\n" + note + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="saved pipelines of mixture runs, with their D")
    parser.add_argument("--targets", nargs="+", type=float, default=[0.5, 0.2, 0.1], help="DRS acceptance targets")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="sampling seeds")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "rejection_sampling")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [row for run in args.runs for row in measure(run, args.targets, args.seeds)]
    meta = {
        "commit": git_commit(),
        "cpu": cpu_name(),
        "seeds": args.seeds,
        "command": "python benchmarks/rejection_sampling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    write_results(args.output.parent, args.output.name, {"meta": meta, "rows": rows}, to_markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
