"""How legible a digit model's samples are, by the shipped digit classifier's confidence, beside real held-out digits.

    python benchmarks/digit_legibility.py veegan-output spaces/veegan-mnist
    python benchmarks/digit_legibility.py RUN_DIR --rejection_sampling 0.5 0.2   # also sampled with D's help

A legible digit is one the classifier reads without doubt. For each model this prints, over 2,000 samples: the mean of
the classifier's top softmax probability, the share of samples whose top probability is at least 0.9, and the KL
from the predicted-digit histogram to uniform (class balance). The first line scores the 500 real `classifier_test`
digits, the ceiling that a perfect sampler reaches. The classifier was trained on digits disjoint from the GAN's
(`benchmarks/train_classifier.py`).

The figures rank digit-like images only: off the digit manifold the classifier can be sure of anything (uniform noise
gets a mean top probability of 0.999), so read them beside the sample grid.
"""

import argparse
import sys

import torch

from veegan_hf import VEEGAN, RejectionSampling
from veegan_hf.classifier import NUM_DIGIT_CLASSES, load_mode_classifier
from veegan_hf.data import mnist_pixel_values, mnist_split
from veegan_hf.evaluation import draw_samples

CONFIDENT = 0.9


def legibility(classifier: torch.nn.Module, digits: torch.Tensor) -> dict[str, float]:
    """`digits` (N, 1, 28, 28) in [-1, 1] -> mean top probability, share confident (%), KL of the labels to uniform."""
    with torch.inference_mode():
        probabilities = torch.cat([classifier(chunk).softmax(dim=1) for chunk in digits.split(1000)])  # (N, 10)
    top = probabilities.max(dim=1).values  # (N,)
    histogram = torch.bincount(probabilities.argmax(dim=1), minlength=NUM_DIGIT_CLASSES).double() / len(digits)
    present = histogram[histogram > 0]
    return {
        "mean_top_probability": top.mean().item(),
        "confident_percent": 100 * (top >= CONFIDENT).double().mean().item(),
        "kl_to_uniform": (present * (present * NUM_DIGIT_CLASSES).log()).sum().item(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="pipeline folders of 1-channel 28 px digit models")
    parser.add_argument("--num_samples", type=int, default=2000)
    parser.add_argument(
        "--rejection_sampling", nargs="*", type=float, default=[], help="also score DRS at these acceptance targets"
    )
    args = parser.parse_args(argv)
    classifier = load_mode_classifier()
    real, _ = mnist_split("classifier_test")  # (N, 28, 28) uint8
    rows = {"real held-out digits": mnist_pixel_values(real)}  # (N, 1, 28, 28) in [-1, 1]
    for path in args.models:
        pipe = VEEGAN.from_pretrained(path)
        rows[path] = draw_samples(pipe, args.num_samples)
        if args.rejection_sampling and pipe.discriminator is None:
            print(f"{path}: saved without its discriminator, so no DRS rows for it", file=sys.stderr)
            continue
        for target in args.rejection_sampling:  # the same model, each sample kept with the probability D gives it
            out = pipe(
                batch_size=args.num_samples,
                generator=torch.Generator().manual_seed(0),
                output_type="pt",
                rejection_sampling=RejectionSampling(target_acceptance=target),
            )
            rows[f"{path}, DRS at {out.acceptance_rate:.2f} acceptance"] = out.samples * 2 - 1  # [0, 1] -> [-1, 1]
    print("| digits | mean top probability | top probability >= 0.9 | KL to uniform |\n|---|---|---|---|")
    for name, digits in rows.items():
        m = legibility(classifier, digits)
        print(
            f"| {name} | {m['mean_top_probability']:.3f} | {m['confident_percent']:.1f}% | {m['kl_to_uniform']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
