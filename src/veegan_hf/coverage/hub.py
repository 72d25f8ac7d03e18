"""A coverage report on the Hub: the saved files beside the model, and a section of the model card that links them."""

import re
import tempfile
from pathlib import Path

from huggingface_hub import CommitOperationAdd, create_commit, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError

SECTION_START = "<!-- coverage-report -->"
SECTION_END = "<!-- /coverage-report -->"


def card_section(report, path_in_repo: str) -> str:
    """The model card's coverage section: the headline numbers beside their data row, and links to the report."""
    m = report.metrics
    rows = [
        ("coverage", m["coverage"], m["baseline_coverage"]),
        ("precision", m["precision"], m["baseline_precision"]),
        ("recall", m["recall"], m["baseline_recall"]),
        ("uncovered real images", m["uncovered_fraction"], m["baseline_uncovered_fraction"]),
        ("not makeable real images", m["not_makeable_fraction"], None),
    ]
    table = "\n".join(
        f"| {name} | {value:.3f} | {'–' if base is None else f'{base:.3f}'} |" for name, value, base in rows
    )
    ties = m.get("most_dropped_ties", 1)
    dropped = (
        ""
        if "most_dropped_mode" not in m
        else f" {ties} modes tie as most dropped (least often makeable)."
        if ties > 1
        else f" Most dropped mode (least often makeable): {m['most_dropped_mode']}."
    )
    return (
        f"{SECTION_START}\n## Coverage report\n\nWhich real images this model cannot make "
        f"([report]({path_in_repo}/report.md), [per image]({path_in_repo}/per_image.csv)), measured on "
        f"`{report.info['dataset']}` with {report.info['feature_extractor']}, k = {report.info['nearest_k']}."
        f"{dropped}\n\n"
        f"| metric | model | data row |\n|---|---|---|\n{table}\n\n![modes]({path_in_repo}/figures/modes.png)\n"
        f"{SECTION_END}\n"
    )


def with_section(card: str, section: str) -> str:
    """`card` with its coverage section replaced by `section`, or `section` appended."""
    pattern = re.compile(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END) + "\n?", re.S)
    if pattern.search(card):
        return pattern.sub(lambda _: section, card)
    return card.rstrip("\n") + "\n\n" + section


def push_report(report, repo_id: str, path_in_repo: str = "coverage", token: str | None = None) -> str:
    """One commit: the report's files under `path_in_repo`, and the model card with its coverage section."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        written = report.save(str(folder / "report"))
        try:
            card = Path(hf_hub_download(repo_id, "README.md", token=token)).read_text()
        except EntryNotFoundError:
            card = ""
        (folder / "README.md").write_text(with_section(card, card_section(report, path_in_repo)))
        operations = [CommitOperationAdd(f"{path_in_repo}/{name}", str(folder / "report" / name)) for name in written]
        operations.append(CommitOperationAdd("README.md", str(folder / "README.md")))
        commit = create_commit(
            repo_id, operations, commit_message="Add a coverage report", token=token, repo_type="model"
        )
    return str(commit.commit_url)
