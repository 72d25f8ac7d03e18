"""Table 2: `inversion_metrics` on random pipelines, and `benchmarks/table2.py --smoke` end to end."""

import json

import pytest
import torch

from benchmarks import table2
from tests.conftest import make_pipeline
from veegan_hf.evaluation import draw_samples, inversion_metrics
from veegan_hf.provenance import REPO

BUDGET_KEYS = ("ivom_num_restarts", "ivom_num_steps", "ivom_learning_rate", "ivom_num_images")


@pytest.fixture(scope="module")
def pipe_and_images():
    pipe = make_pipeline("dcgan-28-1")
    # images G can reach (from other codes than any start), so the optimization has somewhere to go
    return pipe, draw_samples(pipe, 6, seed=1)  # (6, 1, 28, 28) in [-1, 1]


def test_inversion_improves_on_every_start(pipe_and_images):
    pipe, images = pipe_and_images
    at_starts = inversion_metrics(pipe, images, num_restarts=3, num_steps=0)  # the best start, unoptimized
    optimized = inversion_metrics(pipe, images, num_restarts=3, num_steps=30)
    # 0 steps: the F(x) run is G(F(x)) itself
    assert at_starts["ivom_from_encoder"] == pytest.approx(at_starts["reconstruction_mse"], rel=1e-6)
    assert optimized["reconstruction_mse"] == at_starts["reconstruction_mse"]
    # the best start per image can only beat the F(x) start alone; optimizing only lowers each start's error
    tolerance = 1e-6 * at_starts["reconstruction_mse"]  # invert ranks iterates in float32
    assert optimized["ivom"] <= optimized["ivom_from_encoder"] + tolerance
    assert optimized["ivom_from_encoder"] < optimized["reconstruction_mse"]
    assert optimized["ivom"] < at_starts["ivom"]
    assert at_starts["ivom"] <= at_starts["ivom_from_encoder"] + tolerance
    assert {k: optimized[k] for k in BUDGET_KEYS} == {
        "ivom_num_restarts": 3,
        "ivom_num_steps": 30,
        "ivom_learning_rate": 0.05,
        "ivom_num_images": 6,
    }


def test_inversion_without_restarts_is_the_encoder_run(pipe_and_images):
    pipe, images = pipe_and_images
    result = inversion_metrics(pipe, images, num_restarts=0, num_steps=10)
    assert result["ivom"] == result["ivom_from_encoder"]


def test_inversion_is_deterministic_and_seeded(pipe_and_images):
    pipe, images = pipe_and_images
    first = inversion_metrics(pipe, images, num_restarts=2, num_steps=10, seed=3)
    assert inversion_metrics(pipe, images, num_restarts=2, num_steps=10, seed=3) == first
    # the seed moves only the random restarts, never the F(x) run
    other = inversion_metrics(pipe, images, num_restarts=2, num_steps=10, seed=4)
    assert other["ivom_from_encoder"] == first["ivom_from_encoder"]


def test_inversion_rejects_bad_inputs(pipe_and_images):
    pipe, images = pipe_and_images
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        inversion_metrics(pipe, images * 3, num_steps=1)
    with pytest.raises(ValueError, match="num_steps=-1"):
        inversion_metrics(pipe, images, num_steps=-1)
    with pytest.raises(ValueError, match="image model"):
        inversion_metrics(make_pipeline("mlp-2d"), torch.zeros(2, 2), num_steps=1)


@pytest.mark.slow
def test_smoke_run_writes_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("VEEGAN_COMMIT", "c" * 40)  # a clean commit, so that the rerun below may reuse
    results = tmp_path / "results"
    assert table2.main(["--smoke", "--jobs", "2", "--results_dir", str(results), "--work_dir", str(tmp_path)]) == 0

    payload = json.loads((results / "table2_smoke.json").read_text())
    meta = payload["meta"]
    assert meta["seeds"] == 1 and meta["max_train_steps"] == table2.SMOKE_STEPS
    assert meta["num_eval_samples"] == table2.SMOKE_NUM_EVAL_SAMPLES
    assert 0 < meta["classifier_accuracy"] <= 1
    assert {"commit", "cpu", "jobs", "wall_minutes", "command", "torch"} <= set(meta)
    assert meta["ivom"]["num_images"] == 8 and meta["ivom"]["split"] == "classifier_test"

    assert set(payload["summary"]) == set(table2.SMOKE_ROWS)
    assert set(payload["best_rows"]) == {table2.ROWS[row][0] for row in table2.SMOKE_ROWS}
    for cell in payload["summary"].values():
        assert cell["num_seeds"] == 1 and cell["num_modes"] == 1000
        for key in table2.REPORTED:
            assert set(cell[key]) == {"mean", "std", "values"} and len(cell[key]["values"]) == 1
        assert 0 <= cell["modes_covered"]["mean"] <= 1000
        assert cell["ivom"]["mean"] <= cell["ivom_from_encoder"]["mean"] + 1e-9
    for run in payload["runs"]:  # every method and seed scored with the same stated budget
        metrics = run["metrics"]
        assert metrics["num_samples"] == table2.SMOKE_NUM_EVAL_SAMPLES
        assert (metrics["ivom_num_restarts"], metrics["ivom_num_steps"], metrics["ivom_num_images"]) == (3, 5, 8)
    assert set(payload["paper"]) == {"DCGAN", "ALI", "Unrolled GAN", "VEEGAN"}
    data = payload["data_row"]  # real triples through the same classifier: near every mode at this sample count
    assert data["num_samples"] == table2.SMOKE_NUM_EVAL_SAMPLES and data["modes_covered"] > 300

    markdown = (results / "table2_smoke.md").read_text()
    for row in ("DCGAN", "VEEGAN `--discriminator", "(paper's Table 2)", "(CIFAR-10)", "held-out accuracy", "data row"):
        assert row in markdown
    assert table2.BEST_PUBLISHED["name"] in markdown and meta["commit"] in markdown
    assert payload["figures"] == sorted(f"table2_smoke_{row}.png" for row in table2.SMOKE_ROWS)
    for name in payload["figures"]:
        assert (results / name).stat().st_size > 0

    # the same command again reuses every finished run and trains nothing: the same numbers, marked as reused
    assert table2.main(["--smoke", "--jobs", "2", "--results_dir", str(results), "--work_dir", str(tmp_path)]) == 0
    again = json.loads((results / "table2_smoke.json").read_text())
    assert again["meta"]["reused_runs"] == len(payload["runs"]) and again["summary"] == payload["summary"]
    assert again["meta"]["commit"] == "c" * 40


@pytest.mark.slow
def test_reduced_d_smoke_logs_every_run_and_resumes(tmp_path, monkeypatch):
    """`--setting reduced_d --smoke`: both rows at both D sizes, D's size beside each, the published rows, and a
    second call that finds every run in the log and trains nothing."""
    from benchmarks import table2_reduced_d

    monkeypatch.setenv("VEEGAN_COMMIT", "d" * 40)
    args = ["--setting", "reduced_d", "--smoke", "--results_dir", str(tmp_path)]
    assert table2.main(args) == 0
    payload = json.loads((tmp_path / "table2_reduced_d_smoke.json").read_text())
    assert set(payload["summary"]) == {"gan/d4", "gan/d2", "veegan/d4", "veegan/d2"}
    sizes = {key: cell["discriminator_parameters"] for key, cell in payload["summary"].items()}
    assert sizes["gan/d4"] == 585 and sizes["gan/d2"] == 1889  # the reference's reduced discriminators
    assert sizes["veegan/d4"] == 585 + 256 * 8 + 8  # plus the one linear map that reads z
    markdown = (tmp_path / "table2_reduced_d_smoke.md").read_text()
    assert "PacDCGAN4, 500k iterations" in markdown and "*667.4* | *1.81*" in markdown and "data row" in markdown
    log = tmp_path / "table2_reduced_d_smoke_runs.jsonl"
    assert len(log.read_text().splitlines()) == 4
    assert table2_reduced_d.main(args[2:]) == 0  # the same runs again: all reused, nothing appended
    assert len(log.read_text().splitlines()) == 4
    assert json.loads((tmp_path / "table2_reduced_d_smoke.json").read_text())["summary"] == payload["summary"]
    # --render_only at another commit trains nothing and still tabulates every logged run, each seed's modes shown
    monkeypatch.setenv("VEEGAN_COMMIT", "e" * 40)
    assert table2_reduced_d.main([*args[2:], "--render_only"]) == 0
    assert len(log.read_text().splitlines()) == 4
    rendered = json.loads((tmp_path / "table2_reduced_d_smoke.json").read_text())
    assert rendered["summary"] == payload["summary"] and rendered["meta"]["commit"] == "d" * 40
    modes = payload["summary"]["gan/d4"]["modes_covered"]["values"]
    assert f"({', '.join(f'{v:g}' for v in modes)})" in (tmp_path / "table2_reduced_d_smoke.md").read_text()


def test_the_committed_reduced_d_veegan_judges_pairs_by_their_code_alone():
    """benchmarks/latent_shortcut.py on the committed VEEGAN at D = 1/4: its D tells generated from data pairs by z
    alone (swapping the codes swaps every verdict), and F's codes of real images lie far from N(0, I)."""
    from benchmarks import latent_shortcut

    result = latent_shortcut.diagnose(REPO / "benchmarks" / "results" / "models" / "veegan_d4", num=256)
    verdicts = {name: (v["first_right"], v["second_right"]) for name, v in result["verdicts"].items()}
    assert min(verdicts["as_trained"]) > 0.95 and min(verdicts["images_swapped"]) > 0.95
    assert max(verdicts["codes_swapped"]) < 0.05
    assert result["f_of_x_mean_abs"] > 1.0


def test_the_capacity_sweep_reads_the_committed_tables(tmp_path):
    """benchmarks/capacity_sweep.py on the committed reduced-D and strong tables: one row per method and D size, with
    its seeds, and the figure."""
    from benchmarks import capacity_sweep

    assert capacity_sweep.main(["--output_dir", str(tmp_path)]) == 0
    markdown = (tmp_path / "capacity_sweep.md").read_text()
    assert "| DCGAN | D = 1/4 G | 585 |" in markdown and "| DCGAN | stacked_mnist preset |" in markdown
    assert (tmp_path / "capacity_sweep.png").stat().st_size > 10_000


def test_training_f_against_the_joint_d_makes_d_read_the_image():
    """The committed screen with --reconstructor_adversarial_weight 1: D's verdicts follow the images, not the codes,
    and F's codes of real images sit near N(0, I)'s mean."""
    from benchmarks import latent_shortcut

    result = latent_shortcut.diagnose(REPO / "benchmarks" / "results" / "models" / "veegan_d4_fadv1", num=256)
    assert min(result["verdicts"]["codes_swapped"].values()) > 0.9
    assert max(result["verdicts"]["images_swapped"].values()) < 0.1
    assert result["f_of_x_mean_abs"] < 1.0
