"""One training step's forward passes for each objective: which network sees what, in which order, with which detaches.

Each function returns `StepLosses` whose terms reach *exactly* the networks that the objective updates with them, so
the training loop can backpropagate `losses.total` once and step every optimizer: the simultaneous update of
Algorithm 1, line 13, with all gradients taken at the same parameters.

Two devices make the routing exact without extra backward passes:
- inputs that a network must not train through are detached (the discriminator never trains G or F);
- the generator's view of D runs D's *own* weights as detached tensors (`torch.func.functional_call`), so the
  adversarial term trains G without leaving gradients on D, and without touching DDP's gradient hooks.

Every network runs forward once per step on a concatenated batch, which keeps DDP and BatchNorm happy.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from .losses import discriminator_loss, generator_loss, reconstruction_loss


@dataclass
class StepLosses:
    """The differentiable terms of one step.

    Attributes:
        discriminator (`torch.Tensor`): reaches the discriminator only.
        generator (`torch.Tensor`): reaches the generator and the reconstructor (through the reconstruction term).
        reconstruction (`torch.Tensor`): ||z - F(G(z))||^2 (zero for objectives without it); for logging.
        real_logits (`torch.Tensor` of shape `(batch,)`): D on data pairs; for logging.
        fake_logits (`torch.Tensor` of shape `(batch,)`): D on generated pairs; for logging.
    """

    discriminator: torch.Tensor
    generator: torch.Tensor
    reconstruction: torch.Tensor
    real_logits: torch.Tensor
    fake_logits: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """The one scalar to backpropagate: its gradient on each network is that network's Algorithm 1 gradient."""
        return self.discriminator + self.generator

    def logs(self) -> dict[str, torch.Tensor]:
        """Detached scalars under namespaced keys; call `.item()` on them only at logging intervals."""
        return {
            "loss/discriminator": self.discriminator.detach(),
            "loss/generator": self.generator.detach(),
            "loss/reconstruction": self.reconstruction.detach(),
            "logits/real": self.real_logits.detach().mean(),
            "logits/fake": self.fake_logits.detach().mean(),
        }


def _frozen_forward(module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
    """`module(*args)` with its parameters detached: gradients flow to the inputs, never to the weights."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, args)


def veegan_losses(
    generator: nn.Module,
    reconstructor: nn.Module,
    discriminator: nn.Module,
    real_samples: torch.Tensor,
    latents: torch.Tensor,
    *,
    noise_std: float,
    reconstruction_weight: float = 1.0,
    adversarial_loss: str = "paper",
    discriminator_module: nn.Module | None = None,
) -> StepLosses:
    r"""
    The VEEGAN step of Algorithm 1: lines 3-11 for one batch.

    Args:
        generator (`nn.Module`): G, possibly wrapped by DDP.
        reconstructor (`nn.Module`): F (its mean), possibly wrapped by DDP.
        discriminator (`nn.Module`): D(samples, latents), possibly wrapped by DDP.
        real_samples (`torch.Tensor` of shape `(batch, *sample_shape)`): x ~ p(x).
        latents (`torch.Tensor` of shape `(batch, latent_dim)`): z ~ N(0, I).
        noise_std (`float`): std of p_theta(z | x) around F(x); the reconstructor's `noise_std`.
        reconstruction_weight (`float`, *optional*, defaults to 1.0): lambda on ||z - F(G(z))||^2 in G's loss.
        adversarial_loss (`str`, *optional*, defaults to `"paper"`): `"paper"` or `"non_saturating"`.
        discriminator_module (`nn.Module`, *optional*): the unwrapped discriminator, used for G's frozen view of D;
            defaults to `discriminator`.
    """
    batch = real_samples.shape[0]
    fake_samples = generator(latents)  # (batch, *sample_shape), trains gamma
    # One F forward on real and fake: F(x) for the data pairs, F(G(z)) for the reconstruction term.
    both_latents = reconstructor(torch.cat([real_samples, fake_samples]))  # (2 * batch, latent_dim)
    real_means, reconstructed_latents = both_latents[:batch], both_latents[batch:]
    # z_g ~ N(F(x), noise_std^2 I); detached because line 7 updates omega only. The noise is what keeps D from telling
    # data pairs by z alone (F(x) lies on a data_dim-dimensional manifold inside latent space).
    real_latents = real_means.detach()
    if noise_std > 0:
        real_latents = real_latents + noise_std * torch.randn_like(real_latents)

    logits = discriminator(
        torch.cat([fake_samples.detach(), real_samples]), torch.cat([latents, real_latents])
    )  # (2 * batch,)
    d_loss = discriminator_loss(logits[:batch], logits[batch:])

    # G's view of the same D (the pre-update weights), held fixed: line 11 trains gamma only.
    fake_logits = _frozen_forward(discriminator_module or discriminator, fake_samples, latents)  # (batch,)
    reconstruction = reconstruction_loss(latents, reconstructed_latents)
    # d(z, G(z)) trains theta (line 9) and gamma (line 11); lambda only rescales F's gradient, which Adam ignores.
    g_loss = generator_loss(fake_logits, reconstruction, reconstruction_weight, adversarial_loss)
    return StepLosses(d_loss, g_loss, reconstruction, real_logits=logits[batch:], fake_logits=logits[:batch])
