"""What the Space's truncation slider does to a digit model: legibility, balance and variety per truncation level.

    python benchmarks/truncation.py spaces/veegan-mnist

Truncation redraws every latent coordinate with |z_i| above the level (`pipe(..., truncation=t)`). For each level
this measures, over 10,000 samples (seed 0): the shipped classifier's mean top probability (legibility,
`digit_legibility.py`), the share read at >= 0.9, the KL of the digit histogram to uniform and its smallest and
largest digit shares (balance), and the mean pixel distance between samples (variety). Writes
`benchmarks/results/truncation.{json,md}`.
"""

import argparse
import sys

import torch

from benchmarks.digit_legibility import legibility
from veegan_hf import VEEGAN
from veegan_hf.classifier import NUM_DIGIT_CLASSES, load_mode_classifier
from veegan_hf.provenance import REPO, cpu_name, git_commit, write_results

LEVELS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)
NUM_SAMPLES, SEED = 10000, 0


def measure(pipe: VEEGAN, truncation: float, classifier: torch.nn.Module) -> dict[str, float]:
    generator = torch.Generator().manual_seed(SEED)
    out = pipe(batch_size=NUM_SAMPLES, generator=generator, output_type="pt", truncation=truncation or None)
    digits = out.samples * 2 - 1  # (N, 1, 28, 28) in [-1, 1]
    result = legibility(classifier, digits)
    with torch.inference_mode():
        labels = torch.cat([classifier(chunk).argmax(dim=1) for chunk in digits.split(1000)])
    shares = torch.bincount(labels, minlength=NUM_DIGIT_CLASSES).double() / len(labels)
    flat = digits[:1000].flatten(1)
    variety = torch.cdist(flat, flat).mean().item() / flat.shape[1] ** 0.5  # mean per-pixel RMS distance
    return {**result, "share_min": shares.min().item(), "share_max": shares.max().item(), "variety": variety}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="spaces/veegan-mnist")
    args = parser.parse_args(argv)
    pipe = VEEGAN.from_pretrained(args.model, load_discriminator=False)
    classifier = load_mode_classifier()
    rows = {level: measure(pipe, level, classifier) for level in LEVELS}
    lines = [
        "| truncation | mean top probability | read at >= 0.9 | KL to uniform | digit shares | variety |",
        "|---|---|---|---|---|---|",
    ]
    for level, m in rows.items():
        lines.append(
            f"| {'off' if level == 0 else level} | {m['mean_top_probability']:.3f} | {m['confident_percent']:.1f}% | "
            f"{m['kl_to_uniform']:.3f} | {100 * m['share_min']:.1f}-{100 * m['share_max']:.1f}% | {m['variety']:.3f} |"
        )
    meta = {"model": args.model, "commit": git_commit(), "cpu": cpu_name(), "num_samples": NUM_SAMPLES, "seed": SEED}
    note = (
        f"\n`{args.model}`, {NUM_SAMPLES:,} samples per level (seed {SEED}). Variety: the mean RMS pixel distance "
        "(pixels in [-1, 1]) between 1,000 of the samples. Command: `python benchmarks/truncation.py "
        f"{args.model}` at commit `{meta['commit']}`.\n"
    )
    write_results(
        REPO / "benchmarks" / "results", "truncation", {"meta": meta, "levels": rows}, "\n".join(lines) + note
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
