"""Which real images a model cannot make, and why: `coverage_report(pipe, dataset)` -> `CoverageReport`.

`python -m veegan_hf.coverage --model PATH_OR_HUB_ID --dataset NAME_OR_PATH --output_dir DIR` writes the report.
"""

from .neighbours import expected_coverage, neighbour_metrics
from .report import CoverageReport, coverage_report

__all__ = ["CoverageReport", "coverage_report", "expected_coverage", "neighbour_metrics"]
