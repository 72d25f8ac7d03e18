"""`python -m veegan_hf.coverage --model PATH_OR_HUB_ID --dataset NAME_OR_PATH --output_dir DIR`: writes a coverage
report (report.md, report.html, metrics.json, per_image.csv, per_mode.csv, figures/) and prints its verdict."""

import argparse
import sys

from .features import FEATURE_EXTRACTORS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m veegan_hf.coverage",
        description="Which real images a VEEGAN model cannot make, and why: a per-image, per-mode coverage report.",
    )
    parser.add_argument("--model", required=True, help="a saved pipeline folder or a Hub model id")
    parser.add_argument(
        "--dataset",
        required=True,
        help="mnist, stacked_mnist, ring, grid, synthetic1200, a Hub dataset id, or a local imagefolder / parquet path",
    )
    parser.add_argument("--output_dir", required=True, help="where the report goes (created if missing)")
    parser.add_argument("--num_real", type=int, default=None, help="real images audited (default: see the docs)")
    parser.add_argument("--num_generated", type=int, default=None, help="generated samples (default: num_real)")
    parser.add_argument(
        "--feature_extractor", default="auto", choices=("auto", *FEATURE_EXTRACTORS), help="the feature space"
    )
    parser.add_argument("--nearest_k", type=int, default=5, help="k of the k-NN balls (default 5)")
    parser.add_argument("--refine_worst", type=int, default=32, help="worst images refined with invert (default 32)")
    parser.add_argument("--refine_steps", type=int, default=100, help="Adam steps per refinement (default 100)")
    parser.add_argument("--no_fid", action="store_true", help="skip classifier-FID and KID")
    parser.add_argument("--image_column", default=None, help="the image column of a Hub or local dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--push_to_hub", default=None, metavar="REPO_ID", help="also upload the report beside the model"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ..pipeline_veegan import VEEGAN
    from .report import coverage_report

    try:
        pipe = VEEGAN.from_pretrained(args.model)
        report = coverage_report(
            pipe,
            args.dataset,
            num_real=args.num_real,
            num_generated=args.num_generated,
            feature_extractor=args.feature_extractor,
            nearest_k=args.nearest_k,
            refine_worst=args.refine_worst,
            refine_steps=args.refine_steps,
            fid=not args.no_fid,
            image_column=args.image_column,
            seed=args.seed,
        )
        report.save(args.output_dir)
    except (ValueError, TypeError, OSError) as err:  # ConfigError is a ValueError; a missing folder an OSError
        print(f"error: {err}", file=sys.stderr)
        return 1
    from .render import _verdict

    print(_verdict(report))
    print(f"report: {args.output_dir}/report.md (and report.html, metrics.json, per_image.csv, figures/)")
    if args.push_to_hub:
        print(f"pushed: {report.push_to_hub(args.push_to_hub)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
