"""The Table 1 scripts end to end at smoke size: `table1.py` (every method and dataset, resuming, `--keep`,
`--render`) and `coverage_over_time.py`."""

import json

import pytest

from tests.training_helpers import REPO


@pytest.fixture(autouse=True)
def _reset_accelerate(fresh_accelerate_state):
    """Runs may train in-process."""


def test_table1_smoke(tmp_path):
    """The CI version of `python benchmarks/table1.py`: every method and dataset, 1 seed, a few steps."""
    from benchmarks import table1

    assert (
        table1.main(["--smoke", "--jobs", "2", "--results_dir", str(tmp_path), "--work_dir", str(tmp_path / "runs")])
        == 0
    )
    payload = json.loads((tmp_path / "table1_smoke.json").read_text())
    assert len(payload["runs"]) == len(table1.METHODS) * len(table1.DATASETS)
    assert set(payload["summary"]) == {*table1.METHODS, table1.DATA_ROW}
    for dataset in table1.DATASETS:  # the data row is what a perfect generator scores: every mode, ~98.9% HQ in 2-D
        cell = payload["summary"][table1.DATA_ROW][dataset]
        assert cell["modes_captured"]["mean"] == cell["num_modes"] and cell["hq_percent"]["mean"] > 97, dataset
    assert payload["meta"]["commit"] and payload["meta"]["cpu"]
    for dataset in table1.DATASETS:
        assert (tmp_path / f"table1_smoke_{dataset}.png").is_file()
    markdown = (tmp_path / "table1_smoke.md").read_text()
    assert "VEEGAN (ours)" in markdown and "(paper's Table 1)" in markdown
    assert "| PacGAN3 (PacGAN's runs) | 7.8 | 97.7 |" in markdown  # the best published rows sit beside the paper's


def test_table1_resumes_only_runs_of_the_same_clean_commit(tmp_path, monkeypatch):
    """An interrupted table reruns only what is missing; records from other or uncommitted code are retrained."""
    from benchmarks import table1
    from veegan_hf.benchmarking.runs import RUN_RECORD

    argv = ["--smoke", "--jobs", "1", "--datasets", "ring", "--methods", "GAN"]
    argv += ["--results_dir", str(tmp_path), "--work_dir", str(tmp_path / "runs")]
    record = tmp_path / "runs" / "ring-gan-seed0" / RUN_RECORD

    def meta_at(commit: str) -> dict:
        monkeypatch.setenv("VEEGAN_COMMIT", commit)  # what the table stamps its runs with
        assert table1.main(argv) == 0
        return json.loads((tmp_path / "table1_smoke.json").read_text())["meta"]

    assert meta_at("a" * 40)["reused_runs"] == 0
    first = json.loads(record.read_text())
    assert first["commit"] == "a" * 40 and first["metrics"]["num_samples"] == 2500

    meta = meta_at("a" * 40)  # same commit: nothing trains again
    assert meta["reused_runs"] == 1 and json.loads(record.read_text()) == first
    assert "reused from an interrupted invocation" in (tmp_path / "table1_smoke.md").read_text()

    assert meta_at("b" * 40)["reused_runs"] == 0  # other code: retrained, and the record now says so
    assert json.loads(record.read_text())["commit"] == "b" * 40
    assert meta_at("b" * 40 + "-dirty")["reused_runs"] == 0  # an uncommitted tree is never trusted
    assert meta_at("b" * 40 + "-dirty")["reused_runs"] == 0


def test_table1_keeps_other_rows_only_where_seed_0_reproduces(tmp_path, monkeypatch):
    """`--keep` retrains the named methods on every seed and the others on seed 0; the others' later seeds come from
    the old file, stamped with its commit, and a cell whose seed 0 no longer reproduces stops the table unwritten."""
    from benchmarks import table1

    base = ["--smoke", "--seeds", "2", "--jobs", "2", "--datasets", "ring"]
    monkeypatch.setenv("VEEGAN_COMMIT", "a" * 40)
    assert table1.main([*base, "--results_dir", str(tmp_path / "old"), "--work_dir", str(tmp_path / "r1")]) == 0
    old_file = tmp_path / "old" / "table1_smoke.json"
    old = json.loads(old_file.read_text())

    monkeypatch.setenv("VEEGAN_COMMIT", "b" * 40)
    keep = [*base, "--methods", "VEEGAN (ours)", "--keep", str(old_file)]
    assert table1.main([*keep, "--results_dir", str(tmp_path / "new"), "--work_dir", str(tmp_path / "r2")]) == 0
    new = json.loads((tmp_path / "new" / "table1_smoke.json").read_text())
    assert new["summary"] == old["summary"]  # same code: every cell reproduces
    assert new["meta"]["kept"]["commit"] == "a" * 40
    assert new["meta"]["kept"]["methods"] == [m for m in table1.METHODS if m != "VEEGAN (ours)"]
    commits = {(r["method"], r["seed"]): r["commit"] for r in new["runs"]}
    assert commits[("VEEGAN (ours)", 1)] == commits[("GAN", 0)] == "b" * 40 and commits[("GAN", 1)] == "a" * 40
    assert "reproduced the kept figures to the sample" in (tmp_path / "new" / "table1_smoke.md").read_text()

    gan_seed0 = next(r for r in old["runs"] if (r["method"], r["seed"]) == ("GAN", 0))
    gan_seed0["metrics"]["hq_percent"] += 1.0  # a kept figure the code no longer produces
    old_file.write_text(json.dumps(old))
    assert table1.main([*keep, "--results_dir", str(tmp_path / "bad"), "--work_dir", str(tmp_path / "r2")]) == 1
    assert not (tmp_path / "bad" / "table1_smoke.json").exists()


def test_table1_render_adds_the_data_row_to_finished_runs(tmp_path):
    """`--render` rebuilds a committed table with the data and published rows, training nothing."""
    from benchmarks import table1

    source = REPO / "benchmarks" / "results" / "table1.json"
    assert table1.main(["--render", str(source), "--results_dir", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "table1.json").read_text())
    before = json.loads(source.read_text())
    assert payload["runs"] == before["runs"] and payload["meta"]["commit"] == before["meta"]["commit"]
    assert payload["meta"]["rendered"]["commit"]
    data = payload["summary"][table1.DATA_ROW]
    assert data["ring"]["modes_captured"]["mean"] == 8 and 97 < data["ring"]["hq_percent"]["mean"] < 100
    assert data["ring"]["num_seeds"] == before["meta"]["seeds"]
    markdown = (tmp_path / "table1.md").read_text()
    assert markdown.index(table1.DATA_ROW) < markdown.index("| GAN |") and "GDPP" in markdown


def test_coverage_over_time_smoke(tmp_path):
    """The CI version of `python benchmarks/coverage_over_time.py`: every method scored during and after training."""
    from benchmarks import coverage_over_time

    assert coverage_over_time.main(["--smoke", "--jobs", "2", "--results_dir", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "coverage_grid_smoke.json").read_text())
    assert [r["method"] for r in payload["runs"]] == list(coverage_over_time.METHODS)
    for run in payload["runs"]:
        assert [h["step"] for h in run["history"]] == [20]  # the mid-run scoring; the final one is run["metrics"]
        assert 0 <= run["history"][0]["modes_captured"] <= 25 and run["metrics"]["modes_captured"] <= 25
        # validation time is excluded from the training clock, so the curve's x-axis is comparable across methods
        assert 0 < run["history"][0]["train_seconds"] <= run["train_seconds"]
    assert (tmp_path / "coverage_grid_smoke.png").stat().st_size > 0
    assert "VEEGAN (ours)" in (tmp_path / "coverage_grid_smoke.md").read_text()
