"""benchmarks/speed.py: the smoke run writes every section, and every measured number is positive and finite.

Nothing here asserts a speed: the benchmark's JSON, run on a quiet machine, is where speed is judged.
"""

import json
import math
from collections.abc import Iterator

import pytest
import torch

from benchmarks import speed
from veegan_hf.benchmarking.measure import ENCODE_GOAL_MS


@pytest.fixture(autouse=True)
def _reset_accelerate(fresh_accelerate_state):
    """Every test here trains in-process."""


def numbers(node, path: str = "") -> Iterator[tuple[str, float]]:
    """Every int/float leaf (booleans and None are not measurements) with its path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from numbers(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from numbers(value, f"{path}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


def test_speed_smoke(tmp_path):
    threads = torch.get_num_threads()
    argv = ["--smoke", "--threads", "1", "--results_dir", str(tmp_path), "--work_dir", str(tmp_path / "runs")]
    assert speed.main(argv) == 0
    assert torch.get_num_threads() == threads  # the benchmark gives the thread setting back
    payload = json.loads((tmp_path / "speed_smoke.json").read_text())

    meta = payload["meta"]
    assert meta["cpu"] and meta["torch"] == torch.__version__ and meta["commit"]
    assert meta["threads"] == 1 and meta["smoke"] is True and isinstance(meta["dirty"], (bool, type(None)))

    assert set(payload["training"]) == set(speed.PRESETS)
    for preset, entry in payload["training"].items():
        assert entry["config"]["preset"]["dataset_name"] == preset and entry["config"]["warmup_steps"] > 0
        eager = entry["eager"]
        for variant in speed.VARIANTS:
            for key in ("steps_per_second", "samples_per_second", "warmup_seconds", "step_ms_p10"):
                assert set(eager[variant][key]) >= {"min", "median", "max", "values"}, (preset, variant, key)
            assert eager[variant]["memory"]["peak_rss_mib"] > 0
        assert "setup_seconds" in eager["package"]  # the loop's start was timed from outside train()
        for ratio in ("ratio_package_to_bare", "ratio_package_ema_to_bare"):
            assert {"min", "median", "max", "of_medians", "from_p10_step_time"} <= set(eager[ratio])
        assert "skipped" in entry["compile"]  # --smoke leaves compile out unless --compile is given

    sampling = payload["sampling"]
    for model in ("mlp_grid", "conv_stacked_mnist", "dcgan64"):
        ops = {(r["op"], r["batch_size"]) for r in sampling[model]["results"]}
        expected = {"sample", "encode"} | ({"invert"} if model != "dcgan64" else set())
        assert {(op, b) for op in expected for b in (1, 4)} <= ops, model
        assert sampling[model]["memory"]["peak_rss_mib"] > 0
    encode = sampling["encode_64px"]
    assert encode["goal_ms_per_image"] == ENCODE_GOAL_MS
    assert {"ms_per_image_batch1", "ms_per_image_batch4"} <= set(encode)

    assert set(payload["scaling"]) == set(speed.SMOKE_SCALING)
    for name, sweep in payload["scaling"].items():
        assert len(sweep["points"]) == len(speed.SMOKE_SCALING[name][1]), name
    assert payload["figures"] == ["speed_smoke_scaling.png"]
    assert (tmp_path / "speed_smoke_scaling.png").stat().st_size > 0

    sections = {k: payload[k] for k in ("training", "sampling", "scaling")}
    # configs hold options (a preset may set 0), not measurements
    measured = [(path, v) for path, v in numbers(sections) if "/config/" not in path]
    assert len(measured) > 100
    for path, value in measured:
        assert math.isfinite(value), path
        # peak growth may be 0 when the phase reused memory the process already held
        assert value >= 0 if path.endswith("peak_growth_mib") else value > 0, (path, value)


def test_compile_failure_is_recorded_not_raised(tmp_path, monkeypatch):
    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", no_compiler)
    result = speed.measure_training("grid", steps=3, repeats=1, compile=True, work_dir=tmp_path)
    for variant in speed.VARIANTS:
        assert "RuntimeError: no C++ compiler" in result[variant]["error"], variant
    assert not any(key.startswith("ratio") for key in result)


@pytest.mark.parametrize("form", ["paper", "non_saturating"])
def test_bare_reference_losses_equal_the_package_losses(form):
    """The speed baseline computes the same step as the package: the same loss and the same gradients."""
    from tests.conftest import make_pipeline
    from veegan_hf.benchmarking.reference import bare_losses
    from veegan_hf.objectives import LossOptions, Networks, veegan_losses

    pipe = make_pipeline("dcgan-28-1")
    g, f, d = pipe.generator, pipe.reconstructor, pipe.discriminator
    real, latents = torch.rand(6, 1, 28, 28) * 2 - 1, torch.randn(6, pipe.latent_dim)
    torch.manual_seed(0)  # both draw the data pairs' noise from the global RNG, once
    bare = bare_losses(g, f, d, real, latents, 1.0, 0.5, form)
    bare_grads = torch.autograd.grad(bare, [*g.parameters(), *f.parameters(), *d.parameters()])
    torch.manual_seed(0)
    options = LossOptions(noise_std=1.0, reconstruction_weight=0.5, adversarial_loss=form)
    ours = veegan_losses(Networks(g, f, d), real, latents, options).total
    our_grads = torch.autograd.grad(ours, [*g.parameters(), *f.parameters(), *d.parameters()])
    torch.testing.assert_close(bare, ours)
    for a, b in zip(bare_grads, our_grads):
        torch.testing.assert_close(a, b)
