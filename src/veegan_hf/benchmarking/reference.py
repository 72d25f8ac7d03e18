"""The bare PyTorch loop that the package's training speed is measured against: Algorithm 1 written out by hand,
on the same networks, data and batch, with no Accelerate, no logging and no checks.

`bare_losses` is the step's arithmetic alone, so a test can hold it equal to `objectives.veegan_losses`; `bare_run`
times it. The package loop should be no slower than this floor.
"""

import contextlib
import itertools
import time
from collections.abc import Callable

import torch
import torch.nn.functional as nnf
from torch import nn
from torch.func import functional_call

from ..data import get_mixture, mnist_pixel_values, mnist_split
from ..training import TrainingConfig
from ..training.meter import WARMUP_STEPS
from ..training.networks import build_networks, make_optimizer
from .memory import peak_memory


def step_quantiles(stamps: list[float]) -> dict[str, float]:
    """Per-step wall time from step end times: the 10th percentile is the one least moved by other processes."""
    durations = sorted(b - a for a, b in itertools.pairwise(stamps))
    if not durations:
        return {}
    pick = lambda q: durations[min(len(durations) - 1, int(q * len(durations)))] * 1e3  # noqa: E731
    return {"step_ms_p10": pick(0.1), "step_ms_p50": pick(0.5)}


def batch_sampler(config: TrainingConfig, device: torch.device | str = "cpu") -> Callable[[], torch.Tensor]:
    """The data as the package's built-in sources make it, on `device`: fresh mixture draws, or digits gathered per
    channel (scaled up when an image-size sweep asks for more than the digits' 28 or 32 px)."""
    if config.architecture == "mlp":
        mixture, batch = get_mixture(config.dataset_name), config.train_batch_size
        return lambda: mixture.sample(batch, device=device)  # (batch, data_dim)
    images, _ = mnist_split("train")
    digit_size = config.resolution if config.resolution in (28, 32) else 28
    pool = mnist_pixel_values(images, digit_size)  # (N, 1, H, W) in [-1, 1]
    if config.resolution != digit_size:
        pool = nnf.interpolate(pool, size=config.resolution, mode="bilinear", align_corners=False)
    channels, batch, pool = config.num_channels, config.train_batch_size, pool.to(device)
    return lambda: pool[torch.randint(pool.shape[0], (batch, channels), device=device), 0]  # (batch, C, H, W)


def bare_losses(
    generator: nn.Module,
    reconstructor: nn.Module,
    discriminator: nn.Module,
    real_samples: torch.Tensor,
    latents: torch.Tensor,
    noise_std: float,
    reconstruction_weight: float,
    adversarial_loss: str,
    frozen_discriminator: nn.Module | None = None,
) -> torch.Tensor:
    """The one scalar of Algorithm 1's simultaneous update, written out: D's loss + G's loss (which holds F's)."""
    batch = real_samples.shape[0]
    fake_samples = generator(latents)
    both_latents = reconstructor(torch.cat([real_samples, fake_samples]))  # (2 * batch, latent_dim)
    real_latents = both_latents[:batch].detach()
    if noise_std > 0:
        real_latents = real_latents + noise_std * torch.randn_like(real_latents)
    logits = discriminator(torch.cat([fake_samples.detach(), real_samples]), torch.cat([latents, real_latents]))
    # softplus(-D(z, G(z))) + softplus(D(F(x) + noise, x))
    d_loss = nnf.softplus(-logits[:batch]).mean() + nnf.softplus(logits[batch:]).mean()
    frozen = frozen_discriminator or discriminator
    params = {name: p.detach() for name, p in frozen.named_parameters()}
    fake_logits = functional_call(frozen, params, (fake_samples, latents))  # (batch,)
    # D(z, G(z)) (or its non-saturating form) + lambda ||z - F(G(z))||^2
    adversarial = fake_logits.mean() if adversarial_loss == "paper" else nnf.softplus(fake_logits).mean()
    reconstruction = (latents - both_latents[batch:]).pow(2).sum(dim=1).mean()
    return d_loss + adversarial + reconstruction_weight * reconstruction


def bare_run(
    config: TrainingConfig,
    steps: int,
    *,
    compile: bool,
    warmup_steps: int = WARMUP_STEPS,
    memory: dict | None = None,
    device: torch.device | str = "cpu",
) -> dict:
    """Times `steps` bare steps (after `warmup_steps`) of a resolved VEEGAN config with a joint, unpacked D.

    With `memory`, the peak RSS of the timed steps alone is recorded there: the per-step working set (activations,
    gradients) above what the warm-up left allocated (weights, Adam state, data).
    """
    if config.objective != "veegan" or config.joint_pack_size != 1:
        raise ValueError(f"objective={config.objective!r}: the bare loop writes out VEEGAN's unpacked step only.")
    if compile:
        torch._dynamo.reset()
    torch.manual_seed(config.seed)
    generator, reconstructor, discriminator = (m.to(device) for m in build_networks(config))
    optimizer = make_optimizer(generator, reconstructor, discriminator, config, foreach=True)
    frozen_discriminator = discriminator  # G's view of D: functional_call on the plain module, compiled or not
    if compile:
        generator, reconstructor, discriminator = (torch.compile(m) for m in (generator, reconstructor, discriminator))
    next_batch = batch_sampler(config, device)
    latent_shape = (config.train_batch_size, config.latent_dim)
    # GPU kernels run asynchronously: a time stamp counts only once the queued steps are done
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None

    def step() -> None:
        real_samples = next_batch()
        latents = torch.randn(latent_shape, device=device)  # (batch, latent_dim)
        bare_losses(
            generator,
            reconstructor,
            discriminator,
            real_samples,
            latents,
            config.reconstructor_noise_std,
            config.reconstruction_weight,
            config.adversarial_loss,
            frozen_discriminator,
        ).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    warmup_steps = min(warmup_steps, steps - 1)
    start = time.perf_counter()
    for _ in range(warmup_steps):
        step()
    sync()
    with peak_memory(memory) if memory is not None else contextlib.nullcontext():
        stamps = [time.perf_counter()]
        for _ in range(steps - warmup_steps):
            step()
            stamps.append(time.perf_counter())
        sync()
        stamps[-1] = time.perf_counter()
    steps_per_second = (steps - warmup_steps) / (stamps[-1] - stamps[0])
    return {
        "steps_per_second": steps_per_second,
        "samples_per_second": steps_per_second * config.train_batch_size,
        "warmup_seconds": stamps[0] - start,
        "run_seconds": stamps[-1] - start,
        **step_quantiles(stamps),
    }
