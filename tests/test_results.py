"""The committed benchmark results and the docs agree: every Table 1 and 2 figure quoted in benchmarks/README.md's
results, and in the top-level README's summary, is the committed mean."""

import json
from pathlib import Path

from benchmarks import table1

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _readme_rows(after: str | None = None) -> dict[str, list[str]]:
    """benchmarks/README.md table rows keyed by their first cell: `| GAN | 7.0 / 89.2 |` -> {"GAN": ["7.0 / 89.2"]}.
    With `after`, only the first table that follows the line holding that text."""
    lines = (REPO / "benchmarks" / "README.md").read_text().splitlines()
    if after is not None:
        lines = lines[next(i for i, line in enumerate(lines) if after in line) :]
    rows: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith("| ") and line.endswith(" |"):
            cells = [cell.strip() for cell in line[2:-2].split(" | ")]
            rows.setdefault(cells[0], cells[1:])  # the first table that names a row wins
        elif after is not None and rows and not line.strip():
            break
    return rows


def test_readme_table1_quotes_the_committed_five_seed_means():
    payload = json.loads((RESULTS / "table1.json").read_text())
    assert payload["meta"]["seeds"] == 5 and not payload["meta"]["commit"].endswith("-dirty")
    rows = _readme_rows()
    for method in table1.METHODS:
        expected = []
        for dataset in table1.DATASETS:
            cell = payload["summary"][method][dataset]
            assert cell["num_seeds"] == 5, (method, dataset)
            expected.append(f"{cell['modes_captured']['mean']:.1f} / {cell['hq_percent']['mean']:.1f}")
        assert rows[method] == expected, method
    assert (RESULTS / "table1.md").read_text().count(" ± ") >= len(table1.METHODS) * len(table1.DATASETS)


def test_readme_table2_quotes_the_committed_means():
    payload = json.loads((RESULTS / "table2.json").read_text())
    meta = payload["meta"]
    assert meta["seeds"] >= 3 and not meta["commit"].endswith("-dirty")
    rows, readme = _readme_rows(), (REPO / "benchmarks" / "README.md").read_text()
    for method, cell in payload["summary"].items():
        assert cell["num_seeds"] == meta["seeds"], method
        expected = [
            f"{cell['modes_covered']['mean']:.1f}",
            f"{cell['kl']['mean']:.3f}",
            f"{cell['ivom']['mean']:.4f}",
            f"{cell['reconstruction_mse']['mean']:.4f}",
        ]
        assert rows[cell["name"]] == expected, method
    # every mode count is read with the classifier's accuracy beside it
    assert f"{100 * meta['classifier_accuracy']:.1f}% held-out accuracy" in readme


def test_readme_quotes_the_gpu_table2():
    payload = json.loads((RESULTS / "table2_cuda.json").read_text())
    rows = _readme_rows(after="**Table 2 on one GPU")
    names = {"gan": "DCGAN", "ali": "ALI", "veegan_marginal_sn": "VEEGAN, marginal head + spectral norm"}
    names["unrolled"] = "Unrolled GAN"
    for row, name in names.items():
        cell = payload["summary"][row]
        expected = [
            f"{cell['modes_covered']['mean']:.1f}",
            f"{cell['kl']['mean']:.3f}",
            f"{cell['ivom']['mean']:.4f}",
            f"{cell['reconstruction_mse']['mean']:.4f}",
        ]
        assert rows[name] == expected, row
    assert payload["meta"]["device_name"] == "NVIDIA H200" and payload["data_row"]["modes_covered"] == 1000


def test_the_readme_summary_quotes_the_committed_figures():
    """The top-level README's short results: the same committed means as the full tables."""
    readme = (REPO / "README.md").read_text()
    summary = readme.split("## Results\n", 1)[1].split("\n## ", 1)[0]
    table1_payload = json.loads((RESULTS / "table1.json").read_text())["summary"]["VEEGAN (ours)"]
    for dataset in ("ring", "grid"):
        cell = table1_payload[dataset]
        assert f"{cell['modes_captured']['mean']:.0f} / {cell['hq_percent']['mean']:.1f}" in summary, dataset
    table2_payload = json.loads((RESULTS / "table2.json").read_text())["summary"]
    assert f"1000 / 1000 modes at KL {table2_payload['gan']['kl']['mean']:.3f}" in summary
    veegan = table2_payload["veegan"]
    assert f"VEEGAN {veegan['modes_covered']['mean']:.0f} at {veegan['kl']['mean']:.3f}" in summary
