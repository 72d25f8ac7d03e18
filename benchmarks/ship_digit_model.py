"""Scores a trained MNIST run and writes it as the Space's shipped model, with its measured card.

    python benchmarks/ship_digit_model.py RUN_DIR --command "..." --commit SHA     # writes spaces/veegan-mnist/

The run's exported pipeline (the EMA generator and the reconstructor; D is not shipped) is scored by the protocol of
benchmarks/BENCHMARKS.md: 10,000 samples labelled by the shipped classifier give the digit histogram, its KL to uniform
and the smallest and largest digit shares; IvOM and the one-pass G(F(x)) error come from 64 held-out digits. The
numbers go into the model card and `metrics.json` (the layout a training run writes: metrics at the top level, the
run's facts under `train/` and the scoring command under `eval/`).
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from veegan_hf import VEEGAN
from veegan_hf.classifier import load_mode_classifier, predict_digits
from veegan_hf.data import mnist_pixel_values, mnist_split
from veegan_hf.evaluation import draw_samples, evaluate, inversion_metrics
from veegan_hf.provenance import REPO

NUM_SAMPLES, NUM_IVOM_IMAGES, SEED = 10000, 64, 0


def digit_shares(pipe: VEEGAN) -> list[float]:
    """The share of each digit among NUM_SAMPLES samples, as the shipped classifier labels them."""
    digits = predict_digits(load_mode_classifier(), draw_samples(pipe, NUM_SAMPLES, seed=SEED))
    return (torch.bincount(digits, minlength=10).double() / len(digits)).tolist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a finished `--config mnist` run's output folder")
    parser.add_argument("--command", required=True, help="the command that trained the run, for the record")
    parser.add_argument("--commit", required=True, help="the commit that trained the run, for the record")
    parser.add_argument("--out", default=str(REPO / "spaces" / "veegan-mnist"))
    args = parser.parse_args(argv)
    pipe = VEEGAN.from_pretrained(args.run_dir, load_discriminator=False)
    if not pipe.is_image_model or pipe.generator.config.num_channels != 1:
        parser.error(f"{args.run_dir} is not a grayscale digit model.")
    evaluation = evaluate(pipe, "mnist", num_samples=NUM_SAMPLES, seed=SEED)
    shares = digit_shares(pipe)
    images = mnist_pixel_values(mnist_split("classifier_test")[0][:NUM_IVOM_IMAGES])  # digits no GAN trained on
    evaluation.update(inversion_metrics(pipe, images, seed=SEED))
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    scores = {k: v for k, v in evaluation.items() if not k.startswith("ivom_num") and k != "ivom_learning_rate"}
    pipe.save_pretrained(out, dataset_name="mnist", metrics=scores)
    run = json.loads((Path(args.run_dir) / "metrics.json").read_text())
    record = {
        **evaluation,
        "mode_shares": shares,
        **{k: v for k, v in run.items() if k.startswith("train/")},
        "train/command": args.command,
        "train/commit": args.commit,
        "eval/command": "python benchmarks/ship_digit_model.py RUN_DIR --command ... --commit " + args.commit,
    }
    (out / "metrics.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
