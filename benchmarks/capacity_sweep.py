"""Where each method stops collapsing: modes and KL on Stacked MNIST against the size of the discriminator.

    python benchmarks/capacity_sweep.py

Reads the committed results, trains nothing:
- `table2_reduced_d.json`: the reduced-D networks (`architecture: metz`) with D at 1/4, 1/2 and the full width of G's
  mirrored layers (`python benchmarks/table2.py --setting reduced_d`, with `--columns d1` for the last);
- `table2.json`: the package's own `stacked_mnist` preset, a D several times G's size (the strong setting).

Writes `benchmarks/results/capacity_sweep.{png,md}`: modes covered and KL against D's parameter count (log scale),
one line per method, with the standard deviation over seeds as error bars.
"""

import argparse
import json
import sys
from pathlib import Path

from veegan_hf.provenance import REPO

RESULTS = REPO / "benchmarks" / "results"
# the sweep's methods: table2_reduced_d row -> (table2 row of the strong setting, name)
METHODS = {"gan": ("gan", "DCGAN"), "pacgan2": ("pacgan", "PacGAN2"), "ali": ("ali", "ALI"), "veegan": (None, "VEEGAN")}
COLUMN_NAMES = {"d4": "1/4", "d2": "1/2", "d1": "1"}


def strong_discriminator_parameters(objective: str) -> int:
    """D's size in the `stacked_mnist` preset for one objective (the strong table trained these networks)."""
    from veegan_hf.training import parse_config
    from veegan_hf.training.networks import build_networks
    from veegan_hf.training.sources import resolve_data

    config, _ = resolve_data(parse_config(["--config", "stacked_mnist", "--objective", objective]))
    return sum(p.numel() for p in build_networks(config)[2].parameters())


def points(reduced: dict, strong: dict, veegan_row: str) -> dict[str, list[tuple]]:
    """method -> [(D params, modes mean, modes std, KL mean, KL std, label, seeds)], smallest D first."""
    out: dict[str, list[tuple]] = {}
    for row, (strong_row, name) in METHODS.items():
        key_row = veegan_row if row == "veegan" else row
        series = []
        for column, label in COLUMN_NAMES.items():
            cell = reduced["summary"].get(f"{key_row}/{column}")
            if cell:
                series.append(
                    (
                        cell["discriminator_parameters"],
                        cell["modes_covered"]["mean"],
                        cell["modes_covered"]["std"],
                        cell["kl"]["mean"],
                        cell["kl"]["std"],
                        f"D = {label} G",
                        cell["num_seeds"],
                    )
                )
        strong_cell = strong["summary"].get(strong_row or "veegan")
        if strong_cell:
            from benchmarks.table2 import ROWS as STRONG_ROWS

            objective = STRONG_ROWS[strong_row or "veegan"][0]
            series.append(
                (
                    strong_discriminator_parameters(objective),
                    strong_cell["modes_covered"]["mean"],
                    strong_cell["modes_covered"]["std"],
                    strong_cell["kl"]["mean"],
                    strong_cell["kl"]["std"],
                    "stacked_mnist preset",
                    strong_cell["num_seeds"],
                )
            )
        out[name] = sorted(series)
    return out


def plot(series: dict[str, list[tuple]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in series.items():
        if not rows:
            continue
        x = [r[0] for r in rows]
        left.errorbar(x, [r[1] for r in rows], yerr=[r[2] for r in rows], marker="o", capsize=3, label=name)
        right.errorbar(x, [r[3] for r in rows], yerr=[r[4] for r in rows], marker="o", capsize=3, label=name)
    for axis, label in ((left, "modes covered (of 1000)"), (right, "KL to uniform (lower is better)")):
        axis.set_xscale("log")
        axis.set_xlabel("discriminator parameters")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    left.legend()
    fig.suptitle("Stacked MNIST: mode coverage against the discriminator's size")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, default=RESULTS, help="where capacity_sweep.{png,md} go")
    output = parser.parse_args(argv).output_dir
    reduced = json.loads((RESULTS / "table2_reduced_d.json").read_text())
    strong = json.loads((RESULTS / "table2.json").read_text())
    veegan_row = reduced.get("meta", {}).get("veegan_row", "veegan")
    series = points(reduced, strong, veegan_row)
    plot(series, output / "capacity_sweep.png")
    lines = ["| method | D | D params | seeds | modes | KL |", "|---|---|---|---|---|---|"]
    for name, rows in series.items():
        for params, modes, modes_std, kl, kl_std, label, seeds in rows:
            lines.append(
                f"| {name} | {label} | {params:,} | {seeds} | {modes:.1f} ± {modes_std:.1f} | {kl:.2f} ± {kl_std:.2f} |"
            )
    note = (
        f"\nFrom `table2_reduced_d.json` (commit `{reduced['meta']['commit']}`, "
        f"{', '.join(str(s) for s in sorted({s for c in reduced['summary'].values() for s in c['steps']}))} steps) "
        f"and `table2.json` (commit `{strong['meta']['commit']}`, {strong['meta']['max_train_steps']} steps, the "
        "`stacked_mnist` preset's own networks). Mean ± std over seeds. Command: `python benchmarks/capacity_sweep.py`."
        "\n"
    )
    (output / "capacity_sweep.md").write_text("\n".join(lines) + "\n" + note)
    print("\n".join(lines) + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
