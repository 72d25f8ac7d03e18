"""Where a mixture model's non-HQ samples lie: modes drawn too wide, or transitions between modes.

    python benchmarks/hq_breakdown.py RUN_DIR [RUN_DIR ...] [--num_samples 20000] [--dataset ring]

Each RUN_DIR is a pipeline folder trained on `ring` or `grid` (its `training_config.json` names the dataset, or
`--dataset` does; `synthetic1200`'s modes lie closer than its HQ radius, so the split does not apply there). For
each, and for the true mixture first, this prints the HQ share, the near misses (between r* and 2 r* from the nearest
mean: a mode too wide), the share between modes (beyond 2 r*), and the width ratio of the modes (1: as wide as the
data's). A continuous generator cannot jump from one mode to the next, so it draws some samples on the way; the
between-modes share is that cost, and a width ratio above 1 is the cost of loose modes.
"""

import argparse
import json
from pathlib import Path

import torch

from veegan_hf import VEEGAN
from veegan_hf.data import get_mixture
from veegan_hf.evaluation import draw_samples
from veegan_hf.metrics import hq_breakdown


def breakdown_row(name: str, m: dict[str, float]) -> str:
    return (
        f"| {name} | {m['hq_percent']:.1f} | {m['near_miss_percent']:.1f} | {m['between_modes_percent']:.1f} | "
        f"{m['width_ratio']:.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="pipeline folders of models trained on ring or grid")
    parser.add_argument("--num_samples", type=int, default=20000)
    parser.add_argument("--dataset", default=None, help="the mixture (default: each run's training_config.json)")
    args = parser.parse_args(argv)
    print("| samples | HQ % | near miss % (r* to 2 r*) | between modes % (> 2 r*) | width ratio |")
    print("|---|---|---|---|---|")
    seen: set[str] = set()
    for run in args.runs:
        dataset = args.dataset or json.loads((Path(run) / "training_config.json").read_text())["dataset_name"]
        mixture = get_mixture(dataset)
        if dataset not in seen:  # the ceiling first: the true mixture under the same split
            seen.add(dataset)
            data = mixture.sample(args.num_samples, generator=torch.Generator().manual_seed(0))
            print(breakdown_row(f"{dataset} data", hq_breakdown(data, mixture)))
        samples = draw_samples(VEEGAN.from_pretrained(run), args.num_samples)
        print(breakdown_row(run, hq_breakdown(samples, mixture)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
