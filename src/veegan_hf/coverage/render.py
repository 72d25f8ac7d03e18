"""A coverage report as people read it: five figures, a Markdown and a self-contained HTML page, and the files."""

import base64
import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..metrics import modes_to_digits
from ..plotting import samples_picture

NUM_WORST_SHOWN = 16
NUM_MODES_SHOWN = 30  # Stacked MNIST has 1000 modes: the chart shows the most under-generated
FIGURES = {
    "modes": "Real share (bars) against generated share (red) per mode, and the relative gap (gen - real) / real.",
    "worst_covered": "The worst-covered real images. Columns: real x | G(F(x)) | G(z*) refined | nearest generated.",
    "coverage_ratio": "log10 coverage ratio of each real image, model against the data row; right of 0 is uncovered.",
    "reconstruction_error": "Reconstruction MSE of real images against the model's own samples (the inverter's floor).",
    "confusion": "Real label -> label of G(F(x)), row-normalized: what reconstruction turns each mode into.",
}
METRIC_ROWS = (
    ("precision", "share of generated samples inside the real manifold"),
    ("recall", "share of real images inside the generated manifold"),
    ("density", "how many real neighbourhoods a generated sample falls in, over k (1 for a perfect model)"),
    ("coverage", "share of real images with a generated sample inside their k-NN ball"),
    ("uncovered_fraction", "1 - coverage: real images no sample comes near"),
    ("fid", "classifier-FID on these features (not comparable with Inception FID)"),
    ("kid_mean", "KID on these features"),
    ("modes_covered", "modes with at least one sample (the package's evaluation protocol)"),
    ("kl", "KL(p_gen ‖ uniform over modes)"),
    ("modes_captured", "mixture components with a high-quality sample"),
    ("hq_percent", "% of samples within the mixture's high-quality radius"),
)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _to_image(fig) -> Any:
    import PIL.Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    buffer.seek(0)
    return PIL.Image.open(buffer).convert("RGB")


def _modes_figure(report) -> Any:
    plt = _plt()
    rows = list(report.per_mode)[:NUM_MODES_SHOWN] if report.per_mode is not None else []
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, height_ratios=(2, 1))
    if not rows:
        top.text(0.5, 0.5, "no modes: the data has no labels", ha="center", va="center")
        return _to_image(fig)
    rows = sorted(rows, key=lambda r: -r["real_share"])
    names = [str(r["mode"]) for r in rows]
    positions = np.arange(len(rows))
    top.bar(positions, [r["real_share"] for r in rows], color="#9db4d0", label="real")
    top.plot(positions, [r["generated_share"] for r in rows], "o-", color="#c0392b", label="generated")
    top.set_ylabel("share")
    top.legend(loc="upper right")
    gaps = [max(-1.0, min(1.1, r["relative_gap"])) for r in rows]
    bottom.bar(positions, gaps, color=["#c0392b" if g < 0 else "#27ae60" for g in gaps])
    for x, row in zip(positions, rows):
        if row["relative_gap"] > 1.1:
            bottom.text(x, 1.1, f"{row['relative_gap']:.1f}", ha="center", va="bottom", fontsize=7)
    bottom.axhline(0, color="black", linewidth=0.8)
    bottom.set_ylabel("(gen - real) / real")
    bottom.set_ylim(-1.05, 1.3)
    bottom.set_xticks(positions, names, rotation=90 if len(rows) > 12 else 0, fontsize=8)
    bottom.set_xlabel("mode" + (f" (the {len(rows)} most dropped)" if report.per_mode.num_rows > len(rows) else ""))
    return _to_image(fig)


def _worst_figure(report) -> Any:
    art = report.artifacts
    real = art["worst_real"][:NUM_WORST_SHOWN]
    if not report.info["is_image_model"]:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(5, 5))
        points = real[:, :2].numpy()
        ax.scatter(points[:, 0], points[:, 1], c="#c0392b", label="worst-covered real points", s=12)
        nearest = art["worst_nearest"][:NUM_WORST_SHOWN, :2].numpy()
        ax.scatter(nearest[:, 0], nearest[:, 1], c="#2c3e50", marker="x", label="their nearest samples", s=12)
        ax.legend(loc="upper right", fontsize=8)
        return _to_image(fig)
    refined = torch.full_like(real, -1.0)  # a blank tile where an image was not refined
    if art["worst_refined"] is not None:
        count = min(len(real), len(art["worst_refined"]))
        refined[:count] = art["worst_refined"][:count]
    columns = [real, art["worst_reconstructed"][:NUM_WORST_SHOWN], refined, art["worst_nearest"][:NUM_WORST_SHOWN]]
    tiles = torch.stack(columns, dim=1).flatten(0, 1)  # (rows * 4, C, H, W): one row per image
    return samples_picture(tiles, num_columns=4)


def _histogram_figure(values: list[torch.Tensor], labels: list[str], xlabel: str, line: float | None) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3))
    finite = [v[torch.isfinite(v)].double().numpy() for v in values]
    low = min(float(np.min(v)) for v in finite if len(v))
    high = max(float(np.max(v)) for v in finite if len(v))
    bins = np.linspace(low, high if high > low else low + 1, 50)
    for data, label, color in zip(finite, labels, ("#c0392b", "#2c3e50")):
        ax.hist(data, bins=bins, alpha=0.55, density=True, label=label, color=color)
    if line is not None:
        ax.axvline(line, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
    return _to_image(fig)


def _confusion_figure(report) -> Any:
    plt = _plt()
    art = report.artifacts
    fig, ax = plt.subplots(figsize=(4.5, 4))
    real, recon = art["real_labels"], art["reconstruction_labels"]
    if real is None or recon is None:
        ax.text(0.5, 0.5, "no labels to compare", ha="center", va="center")
        return _to_image(fig)
    if art["labeller"] == "stacked":  # per channel: the digits of the three channels, pooled
        real, recon = modes_to_digits(real).flatten(), modes_to_digits(recon).flatten()
    size = int(max(real.max(), recon.max())) + 1
    if size > 50:
        ax.text(0.5, 0.5, f"{size} labels: too many to draw", ha="center", va="center")
        return _to_image(fig)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix.index_put_((real, recon), torch.ones(len(real), dtype=torch.float64), accumulate=True)
    matrix = matrix / matrix.sum(dim=1, keepdim=True).clamp_min(1)
    ax.imshow(matrix.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("label of G(F(x))")
    ax.set_ylabel("real label" + (" (each channel)" if art["labeller"] == "stacked" else ""))
    ax.set_xticks(range(size)), ax.set_yticks(range(size))
    return _to_image(fig)


def figures(report) -> dict[str, Any]:
    art = report.artifacts
    floor = report.metrics["generated_reconstruction_mse_p99"]
    return {
        "modes": _modes_figure(report),
        "worst_covered": _worst_figure(report),
        "coverage_ratio": _histogram_figure(
            [art["ratios"].clamp_min(1e-12).log10(), art["baseline_ratios"].clamp_min(1e-12).log10()],
            ["model", "data row (real vs real)"],
            "log10 coverage ratio (> 0: uncovered)",
            0.0,
        ),
        "reconstruction_error": _histogram_figure(
            [art["errors"], art["generated_errors"]],
            ["real images: G(F(x))", "generated samples: G(F(G(z)))"],
            "reconstruction MSE",
            floor,
        ),
        "confusion": _confusion_figure(report),
    }


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _verdict(report) -> str:
    m = report.metrics
    text = (
        f"{100 * m['not_makeable_fraction']:.1f}% of the audited real images are not makeable and "
        f"{100 * m['uncovered_fraction']:.1f}% are uncovered (data row: {100 * m['baseline_uncovered_fraction']:.1f}% "
        f"uncovered; a perfect model leaves about {100 * (1 - m['expected_coverage']):.1f}%)."
    )
    if report.per_mode is not None:
        row = report.per_mode[0]
        ties = m.get("most_dropped_ties", 1)
        if ties > 1:
            text += (
                f" No single mode stands out: {ties} of {len(report.per_mode)} modes tie as most dropped "
                f"({100 * row['not_makeable_rate']:.1f}% of their real images not makeable; generated share "
                f"{100 * row['generated_share']:.2f}% each)."
            )
        else:
            text += (
                f" Most dropped mode: {row['mode']} ({100 * row['not_makeable_rate']:.1f}% of its real images not "
                "makeable; "
                f"generated share {100 * row['generated_share']:.2f}% against {100 * row['real_share']:.2f}% real)."
            )
        under = m.get("most_under_generated_mode")
        if under is not None and under != row["mode"]:
            text += f" Most under-generated by share: {under}."
    return text


def to_markdown(report, figure_dir: str = "figures") -> str:
    m, info = report.metrics, report.info
    lines = [
        "# Coverage report: which real images the model cannot make",
        "",
        f"Model `{info['model']}` against `{info['dataset']}`: {info['num_real']:,} real images audited, "
        f"{info['num_generated']:,} generated samples, {info['num_baseline']:,} disjoint real images as the data row. "
        f"Features: {info['feature_extractor']} ({info['feature_dim']}-D); k = {info['nearest_k']}; modes by "
        f"{info['labeller']}; seed {info['seed']}; {info['seconds']} s; veegan-hf {info['veegan_hf']}, torch "
        f"{info['torch']}.",
        "",
        f"**{_verdict(report)}**",
        "",
        "| metric | model | data row | what it means |",
        "|---|---|---|---|",
    ]
    for key, meaning in METRIC_ROWS:
        if key in m:
            lines.append(f"| {key} | {_fmt(m[key])} | {_fmt(m.get('baseline_' + key))} | {meaning} |")
    lines += [
        f"| not makeable | {_fmt(m['not_makeable_fraction'])} | – | uncovered, and reconstructed worse than the "
        "model's own samples' 99th percentile |",
        f"| reconstruction MSE (median) | {_fmt(m['reconstruction_mse_median'])} | "
        f"{_fmt(m['generated_reconstruction_mse_median'])} (generated) | G(F(x)) on real images vs on samples |",
        "",
    ]
    lines += [f"_{note}_" for note in info["notes"]]
    for name, caption in FIGURES.items():
        lines += [
            "",
            f"## {name.replace('_', ' ').capitalize()}",
            "",
            caption,
            "",
            f"![{name}]({figure_dir}/{name}.png)",
        ]
    if report.per_mode is not None:
        title = "## Per mode (most dropped first: least often makeable, then most under-generated)"
        lines += ["", title, "", _mode_rows(report)]
    lines += [
        "",
        "## How to read it",
        "",
        f"- A real image is covered when its nearest generated sample lies within the distance to its "
        f"{info['nearest_k']}-th nearest real neighbour. A perfect model covers about "
        f"{100 * m['expected_coverage']:.1f}% (1 - 2^-k), which the data row shows.",
        "- The reconstruction G(F(x)) is one forward pass of each network; the worst-covered images are refined "
        f"with {info['refine']['steps']} Adam steps from F(x). Reconstruction error is an upper bound on the distance "
        "from x to anything G makes.",
        "- Every number depends on the feature space; classifier-FID is not comparable with Inception FID.",
    ]
    return "\n".join(lines) + "\n"


def _mode_rows(report, limit: int = 20) -> str:
    keys = (
        "mode",
        "real_count",
        "real_share",
        "generated_share",
        "relative_gap",
        "coverage_rate",
        "not_makeable_rate",
        "kept_label_rate",
    )
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in list(report.per_mode)[:limit]:
        lines.append("| " + " | ".join(_fmt(row[k]) for k in keys) + " |")
    if report.per_mode.num_rows > limit:
        lines.append(f"\n{report.per_mode.num_rows - limit} more modes in `per_mode.csv`.")
    return "\n".join(lines)


def to_html(report) -> str:
    """The Markdown's content as a page with the figures embedded as base64 PNGs: no script, nothing fetched."""
    body = []
    images = {}
    for name, image in figures(report).items():
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        images[name] = base64.b64encode(buffer.getvalue()).decode()
    for line in to_markdown(report).splitlines():
        if line.startswith("!["):
            name = line[2 : line.index("]")]
            body.append(f'<img alt="{name}" src="data:image/png;base64,{images[name]}">')
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("|"):
            if set(line) <= set("|-"):
                continue
            cells = "".join(f"<td>{html.escape(c.strip())}</td>" for c in line.strip("|").split("|"))
            body.append(f"<tr>{cells}</tr>")
        elif line:
            body.append(f"<p>{html.escape(line.strip('*_'))}</p>")
    text = "\n".join(body)
    text = text.replace("</p>\n<tr>", "</p>\n<table><tr>").replace("</tr>\n<p>", "</tr></table>\n<p>")
    text = text.replace("</tr>\n<h2>", "</tr></table>\n<h2>").replace("</tr>\n<img", "</tr></table>\n<img")
    if text.rstrip().endswith("</tr>"):
        text += "</table>"
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:auto}td{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%}"
    )
    head = f'<meta charset="utf-8"><title>Coverage report</title><style>{style}</style>'
    return f"<!doctype html><html><head>{head}</head><body>{text}</body></html>\n"


def _write_csv(path: Path, table) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=table.column_names)
        writer.writeheader()
        for row in table:
            writer.writerow(row)


def save(report, directory: str) -> list[str]:
    folder = Path(directory)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    written = []
    for name, image in figures(report).items():
        image.save(folder / "figures" / f"{name}.png")
        written.append(f"figures/{name}.png")
    (folder / "report.md").write_text(to_markdown(report))
    (folder / "report.html").write_text(to_html(report))
    payload = {**report.metrics, "info": report.info}  # the metrics at the top level, the protocol beside them
    (folder / "metrics.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    _write_csv(folder / "per_image.csv", report.per_image)
    written += ["report.md", "report.html", "metrics.json", "per_image.csv"]
    if report.per_mode is not None:
        _write_csv(folder / "per_mode.csv", report.per_mode)
        written.append("per_mode.csv")
    return written
