"""Commits one trained run of a table as an inspectable model: its generator, reconstructor and discriminator (D is a
few kB here, and rejection sampling and `latent_shortcut.py` read it), its card naming the objective that trained it,
the run's scores and its resolved options.

    python benchmarks/export_table_model.py RUN_DIR benchmarks/results/models/dcgan_d4 \
        --log benchmarks/results/table2_reduced_d_runs.jsonl --row gan --column d4 --seed 0

RUN_DIR is the run's output folder (the table keeps it under its temporary work folder); the scores come from the
table's log line for the same row, column and seed, so the card shows what the committed table shows.
"""

import argparse
import json
import sys
from pathlib import Path

SCORES = ("modes_covered", "kl", "mode_share_min", "mode_share_max", "num_modes", "ivom", "reconstruction_mse")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--log", type=Path, required=True, help="the table's runs log (JSON lines)")
    parser.add_argument("--row", required=True)
    parser.add_argument("--column", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--without_discriminator", action="store_true", help="commit G and F only")
    args = parser.parse_args(argv)

    from veegan_hf import VEEGAN

    records = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    matches = [r for r in records if (r["row"], r["column"], r["seed"]) == (args.row, args.column, args.seed)]
    if not matches:
        parser.error(f"no run {args.row}/{args.column} seed {args.seed} in {args.log}")
    record = matches[-1]
    config = json.loads((args.run_dir / "training_config.json").read_text())
    if config.get("seed") != args.seed or config.get("objective") != record["objective"]:
        parser.error(f"{args.run_dir} is not that run: seed {config.get('seed')}, objective {config.get('objective')}")
    metrics = {k: record["metrics"][k] for k in SCORES if k in record["metrics"]}
    pipe = VEEGAN.from_pretrained(args.run_dir, load_discriminator=not args.without_discriminator)
    pipe.save_pretrained(args.output_dir, dataset_name=config["dataset_name"], metrics=metrics, training_config=config)
    (args.output_dir / "table_run.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{args.output_dir}: {record['row']}/{record['column']} seed {args.seed}, commit {record['commit'][:8]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
