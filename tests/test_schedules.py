"""What changes over a run: lambda's schedule, the EMA's start, the mid-run coverage history, and CPU threads."""

import itertools

import pytest
import torch
from torch import nn

from tests.conftest import same_tensors
from veegan_hf import train as train_module
from veegan_hf.training import TrainingConfig, loop, parse_config, schedules, setup
from veegan_hf.training.networks import EMA

TINY = ["--hidden_dim", "16", "--discriminator_hidden_dim", "16", "--latent_dim", "4", "--train_batch_size", "32"]
TINY += ["--report_to", "none", "--eval_at_end", "false"]


@pytest.fixture(autouse=True)
def _reset_accelerate(fresh_accelerate_state):
    """Every test here trains in-process."""


def _lambdas_seen(monkeypatch) -> list[float]:
    """The lambda that each training step's loss reads, in order."""
    seen = []
    original = setup.compute_losses

    def spy(objective, networks, real, latents, options):
        seen.append(float(options.reconstruction_weight))
        return original(objective, networks, real, latents, options)

    monkeypatch.setattr(setup, "compute_losses", spy)
    return seen


def test_lambda_follows_the_learning_rate_schedule(tmp_path, monkeypatch):
    """Under `--reconstruction_weight_schedule lr`, step t's loss sees lambda * lr_factor(t - 1): the same factor
    as the learning rate of that step, down to 0 at the end of a linear decay."""
    seen = _lambdas_seen(monkeypatch)
    args = [*TINY, "--max_train_steps", "10", "--lr_scheduler", "linear", "--lr_decay_start", "0.5"]
    args += ["--reconstruction_weight", "2.0", "--reconstruction_weight_schedule", "lr"]
    config = parse_config([*args, "--output_dir", str(tmp_path / "o"), "--validation_steps", "100"])
    loop.train(config)
    factor = schedules.lr_factor(config)
    assert seen == pytest.approx([2.0 * factor(t) for t in range(10)])
    assert seen[0] == 2.0 and seen[-1] == pytest.approx(2.0 * 0.2)  # decays over steps 5..10


def test_linear_lambda_reaches_zero_before_the_rate(tmp_path, monkeypatch):
    """`--reconstruction_weight_schedule linear` falls from lambda to 0 between its two fractions of the run and
    stays 0 after, independently of the learning rate."""
    seen = _lambdas_seen(monkeypatch)
    args = [*TINY, "--max_train_steps", "10", "--reconstruction_weight", "2.0"]
    args += ["--reconstruction_weight_schedule", "linear"]
    args += ["--reconstruction_weight_decay_start", "0.2", "--reconstruction_weight_decay_end", "0.6"]
    loop.train(parse_config([*args, "--output_dir", str(tmp_path / "o"), "--validation_steps", "100"]))
    assert seen == pytest.approx([2.0, 2.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("start, end", [(0.0, 0.0), (0.3, 0.3), (0.0, 1.0), (0.7, 0.9)])
def test_linear_lambda_factor_is_monotone_from_one_to_zero(start, end):
    config = TrainingConfig(
        reconstruction_weight_schedule="linear",
        reconstruction_weight_decay_start=start,
        reconstruction_weight_decay_end=end,
        max_train_steps=50,
    )
    factors = [schedules.reconstruction_weight_factor(config)(t) for t in range(51)]
    assert all(a >= b for a, b in itertools.pairwise(factors))
    assert all(f == 1.0 for t, f in enumerate(factors) if t < start * 50)
    assert all(f == 0.0 for t, f in enumerate(factors) if t >= end * 50)
    assert all(0.0 <= f <= 1.0 for f in factors)


def test_lambda_window_must_be_ordered(tmp_path, capsys):
    argv = [*TINY, "--reconstruction_weight_decay_start", "0.8", "--reconstruction_weight_decay_end", "0.5"]
    assert train_module.main([*argv, "--output_dir", str(tmp_path)]) == 1
    assert "--reconstruction_weight_decay_end 0.5 comes before" in capsys.readouterr().err


def test_lambda_schedule_needs_a_reconstruction_term(tmp_path, capsys):
    argv = [*TINY, "--objective", "gan", "--reconstruction_weight_schedule", "lr", "--output_dir", str(tmp_path)]
    assert train_module.main(argv) == 1
    assert "--objective gan has no reconstruction term" in capsys.readouterr().err


def test_ema_copies_until_it_starts_then_warms_up_again():
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.999)
    for _ in range(5):
        with torch.no_grad():
            model.weight.add_(1.0)
        ema.update(model, copy=True)
        assert same_tensors(dict(ema.model.named_parameters()), dict(model.named_parameters()))
    assert int(ema.num_updates) == 0  # the warm-up restarts where averaging begins
    before = ema.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(11.0)
    ema.update(model)
    # t = 1: decay min(0.999, 2 / 11), so the average moves 9/11 of the way to the model
    torch.testing.assert_close(ema.model.weight, before + 9.0)


def test_validation_history_times_coverage(tmp_path):
    config = parse_config([*TINY, "--max_train_steps", "20", "--validation_steps", "5", "--output_dir", str(tmp_path)])
    result = loop.train(config)
    history = result.validation_history
    assert [h["step"] for h in history] == [5, 10, 15]
    seconds = [h["train_seconds"] for h in history]
    assert all(0 < a < b for a, b in itertools.pairwise(seconds)) and seconds[-1] < result.metrics["train/wall_seconds"]
    assert all(0 <= h["modes_captured"] <= 8 and 0 <= h["hq_percent"] <= 100 for h in history)
    assert 0 < result.metrics["train/validation_seconds"] < result.metrics["train/wall_seconds"]


@pytest.mark.parametrize(
    ("env", "given", "expected"),
    [
        ({"OMP_NUM_THREADS": "1", "ACCELERATE_MIXED_PRECISION": "no"}, None, "cores"),  # accelerate's default
        ({"OMP_NUM_THREADS": "1", "ACCELERATE_MIXED_PRECISION": "no", "LOCAL_WORLD_SIZE": "2"}, None, "half"),
        ({"OMP_NUM_THREADS": "1", "ACCELERATE_MIXED_PRECISION": "no"}, 1, 1),  # --num_cpu_threads wins
        ({"OMP_NUM_THREADS": "1"}, None, None),  # plain python: OMP_NUM_THREADS=1 is the user's choice
        ({"OMP_NUM_THREADS": "2", "ACCELERATE_MIXED_PRECISION": "no"}, None, None),  # the launcher was told
    ],
)
def test_accelerate_launch_uses_the_cores(monkeypatch, env, given, expected):
    for name in ("OMP_NUM_THREADS", "ACCELERATE_MIXED_PRECISION", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(train_module.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    threads = train_module._launcher_threads(TrainingConfig(num_cpu_threads=given)).num_cpu_threads
    assert threads == {"cores": 4, "half": 2}.get(expected, expected)


def test_a_shared_preset_runs_every_objective(tmp_path):
    """A preset holding VEEGAN's lambda schedule also runs the baselines (only --objective differs): the option
    falls back to its default for an objective without a reconstruction term, and stays for VEEGAN."""
    preset = tmp_path / "shared.yaml"
    preset.write_text(
        "dataset_name: ring\nreconstruction_weight_schedule: linear\nsymmetric_latent_noise: true\n"
        "data_reconstruction_weight: 2.0\n"
    )
    veegan = parse_config(["--config", str(preset)])
    assert veegan.reconstruction_weight_schedule == "linear" and veegan.symmetric_latent_noise
    assert veegan.data_reconstruction_weight == 2.0
    for objective in ("gan", "ali", "pacgan", "unrolled"):
        config = parse_config(["--config", str(preset), "--objective", objective])
        assert config.reconstruction_weight_schedule == "constant" and not config.symmetric_latent_noise
        assert config.data_reconstruction_weight == 0.0
