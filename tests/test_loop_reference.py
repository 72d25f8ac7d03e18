"""The training loop does exactly what Algorithm 1 and its options say: a few steps of `train` give the same weights,
bit for bit, as a plain loop written here from the package's public pieces (the networks a config builds, one fused
Adam, the objective's losses, the schedules, the EMA). A change to the loop that changes any step fails here."""

import pytest
import torch
from accelerate.utils import set_seed

from tests.training_helpers import weights
from veegan_hf.objectives import Networks, compute_losses
from veegan_hf.training import parse_config, train
from veegan_hf.training.config import loss_options
from veegan_hf.training.networks import EMA, build_networks, make_optimizer
from veegan_hf.training.schedules import lr_factor, reconstruction_weight_factor
from veegan_hf.training.sources import build_source, resolve_data


@pytest.fixture(autouse=True)
def _reset_accelerate(fresh_accelerate_state):
    """Every test here trains in-process."""


def reference_weights(config) -> dict[str, torch.Tensor]:
    """Steps 1..max_train_steps of Algorithm 1 (or its alternating order), no Accelerate involved."""
    config, dataset = resolve_data(config)
    set_seed(config.seed)
    generator, reconstructor, discriminator = build_networks(config)
    set_seed(config.seed, device_specific=True)
    source = build_source(config, dataset, 0, 1)
    ema = EMA(generator, config.ema_decay) if config.use_ema else None
    optimizer = make_optimizer(generator, reconstructor, discriminator, config, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config))
    factor = reconstruction_weight_factor(config)
    weight = torch.tensor(config.reconstruction_weight * (factor(0) if factor else 1.0))
    options = loss_options(config, discriminator.config.pack_size, weight if factor else None)
    networks = Networks(generator, reconstructor, discriminator, discriminator)
    batches = source.batches(torch.device("cpu"), 0)
    for step in range(1, config.max_train_steps + 1):
        real = next(batches)
        losses = compute_losses(
            config.objective, networks, real, torch.randn(config.train_batch_size, config.latent_dim), options
        )
        if config.update_order == "alternating":
            losses.discriminator.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            (losses.regenerate() + losses.encoder).backward()
        else:
            losses.total.backward()
        optimizer.step()
        scheduler.step()
        if factor:
            weight.fill_(config.reconstruction_weight * factor(step))
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(generator, copy=step <= int(config.ema_start * config.max_train_steps))
    exported = {"generator": ema.model if ema is not None else generator, "reconstructor": reconstructor}
    exported["discriminator"] = discriminator
    return {f"{name}.{k}": v for name, net in exported.items() for k, v in net.state_dict().items()}


@pytest.mark.parametrize(
    "flags",
    [
        # ring: MLPs, lambda following the lr schedule, no EMA, packed joint D
        ["--config", "ring", "--max_train_steps", "25", "--lr_decay_start", "0.2"],
        # stacked_mnist: the conv networks, constant lambda, the EMA with a late start
        ["--config", "stacked_mnist", "--max_train_steps", "4", "--train_batch_size", "8", "--ema_start", "0.5"],
        # the reduced-D networks with their BatchNorm D and the alternating update
        ["--config", "stacked_mnist_d4", "--max_train_steps", "3", "--train_batch_size", "8", "--objective", "gan"],
    ],
    ids=["ring", "stacked_mnist", "stacked_mnist_d4"],
)
def test_train_matches_a_plain_loop_bit_for_bit(tmp_path, flags):
    common = ["--report_to", "none", "--validation_steps", "1000000", "--eval_at_end", "false", "--seed", "3"]
    config = parse_config([*flags, *common, "--output_dir", str(tmp_path / "run")])
    train(config)
    trained = weights(tmp_path / "run")
    expected = reference_weights(config)
    assert trained.keys() == expected.keys()
    different = [k for k in trained if not torch.equal(trained[k], expected[k].float())]
    assert different == [], different[:5]
