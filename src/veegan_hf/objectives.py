"""One training step's forward passes for each objective: which network sees what, in which order, with which detaches.

Objectives, all on the same three networks so that only the objective differs. `OBJECTIVES` maps each name to its
`Objective` spec (its losses function, whether D is joint, its pack option, whether it compiles), and every other
place in the package reads that table:
- `veegan`: Algorithm 1 of the paper (joint D, reconstruction of the noise).
- `gan`: non-saturating GAN, D on x only.
- `ali`: ALI / BiGAN, joint D, G and F trained adversarially, no reconstruction.
- `unrolled`: Unrolled GAN (Metz et al., 2017): G's loss looks k differentiable SGD steps of D ahead.
- `pacgan`: PacGAN (Lin et al., 2018): D on x only, judging `pack_size` samples at once.
The GAN-family baselines (gan, unrolled, pacgan) have no reconstructor in their objective; F is still fitted to
invert G, on *detached* samples, so that it never influences G but inversion metrics can be compared.

Each function returns `StepLosses` whose terms reach *exactly* the networks that the objective updates with them, so
the training loop can backpropagate `losses.total` once and step every optimizer: the simultaneous update of
Algorithm 1, line 13, with all gradients taken at the same parameters.

Two devices make the routing exact without extra backward passes:
- inputs that a network must not train through are detached (the discriminator never trains G or F);
- the generator's view of D runs D's *own* weights as detached tensors (`torch.func.functional_call`), so the
  adversarial term trains G without leaving gradients on D, and without touching DDP's gradient hooks.

One forward per network per step, on a concatenated batch (DDP-friendly); a BatchNorm D normalizes the halves apart.
"""

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import torch
from torch import nn
from torch.func import functional_call

from .losses import (
    adversarial_generator_loss,
    ali_encoder_generator_loss,
    discriminator_loss,
    generator_loss,
    pack,
    r1_penalty,
    reconstruction_loss,
    reconstructor_adversarial_loss,
    sample_reconstruction_loss,
)


@dataclass(frozen=True)
class LossOptions:
    """The options of one step's losses; each objective reads the ones that apply to it (`Objective`).

    Attributes:
        noise_std (`float`): std of p_theta(z | x) around F(x) (the reconstructor's `noise_std`); joint objectives.
        reconstruction_weight (`float` or 0-dim `torch.Tensor`): lambda on ||z - F(G(z))||^2 in G's loss; `veegan`
            only. A tensor can be changed in place between steps (a schedule) without recompiling the step.
        adversarial_loss (`str`): G's adversarial form, `"paper"` or `"non_saturating"`; `veegan` only.
        pack_size (`int`): samples (or pairs) D judges at once; set from the objective's `pack_option`.
        unrolled_steps (`int`): Unrolled GAN's k, 0 for no unrolling; `unrolled` only.
        unrolled_learning_rate (`float`): the step size of the unrolled D updates; `unrolled` only.
        discriminator_loss_form (`str`): D's loss, `"logistic"` or `"hinge"`; every objective.
        r1_weight (`float`): gamma of the R1 penalty on D's data inputs; every objective.
        symmetric_latent_noise (`bool`): the generated pair's code gets the data pair's noise too; `veegan` only.
        data_reconstruction_weight (`float`): mu on ||x - G(F(x))||^2 in G's and F's loss, 0 for Algorithm 1;
            `veegan` only.
        reconstructor_input_noise (`float`): std of Gaussian noise added to every image or vector F reads in training,
            so that z must survive it: G cannot hide z in variations finer than the noise; `veegan` only.
        joint_discriminator (`bool`): D judges (z, x) pairs, Algorithm 1; False keeps VEEGAN's noise reconstruction
            but lets D judge x alone (D must then be built with `latent_dim=0`); `veegan` only.
        reconstructor_adversarial_weight (`float`): beta on F's own adversarial term, -log sigmoid(D(F(x) + eps, x)),
            0 for Algorithm 1 (F learns from the reconstruction alone); `veegan` with a joint D only.
    """

    noise_std: float = 1.0
    reconstruction_weight: float | torch.Tensor = 1.0
    adversarial_loss: str = "paper"
    pack_size: int = 1
    unrolled_steps: int = 0
    unrolled_learning_rate: float = 1e-3
    discriminator_loss_form: str = "logistic"
    r1_weight: float = 0.0
    symmetric_latent_noise: bool = False
    data_reconstruction_weight: float = 0.0
    reconstructor_input_noise: float = 0.0
    joint_discriminator: bool = True
    reconstructor_adversarial_weight: float = 0.0


class Networks(NamedTuple):
    """The three networks of one step, as the training loop holds them (possibly wrapped by DDP).

    Attributes:
        generator (`nn.Module`): G.
        reconstructor (`nn.Module`): F (its mean).
        discriminator (`nn.Module`): D(samples, latents), trained on this step's D loss.
        discriminator_module (`nn.Module`, *optional*): the unwrapped D, run with its weights detached for G's view
            of D; defaults to `discriminator`.
    """

    generator: nn.Module
    reconstructor: nn.Module
    discriminator: nn.Module
    discriminator_module: nn.Module | None = None

    @property
    def frozen_discriminator(self) -> nn.Module:
        return self.discriminator_module or self.discriminator


@dataclass
class StepLosses:
    """The differentiable terms of one step; each reaches exactly the networks named.

    Attributes:
        discriminator (`torch.Tensor`): reaches the discriminator only.
        generator (`torch.Tensor`): reaches the generator, and for `veegan` and `ali` the reconstructor too.
        encoder (`torch.Tensor`): reaches the reconstructor only (GAN-family baselines fit F on detached samples);
            zero for `veegan` and `ali`.
        reconstruction (`torch.Tensor`): ||z - F(G(z))||^2, for logging (inside `generator` for `veegan`).
        real_logits (`torch.Tensor`): D on data, for logging.
        fake_logits (`torch.Tensor`): D on generated samples, for logging.
        regenerate (`Callable`, *optional*): `generator` again, against D's weights as they are when called, from
            this step's samples and codes: after D has stepped, the alternating update's G term, with no second
            forward of G or F (their weights have not moved, so the step's graph through them is still valid).
    """

    discriminator: torch.Tensor
    generator: torch.Tensor
    encoder: torch.Tensor
    reconstruction: torch.Tensor
    real_logits: torch.Tensor
    fake_logits: torch.Tensor
    regenerate: Callable[[], torch.Tensor] | None = None

    @property
    def total(self) -> torch.Tensor:
        """The one scalar to backpropagate: its gradient on each network is that network's own gradient."""
        return self.discriminator + self.generator + self.encoder

    def logs(self) -> dict[str, torch.Tensor]:
        """Detached scalars under namespaced keys; call `.item()` on them only at logging intervals."""
        return {
            "loss/discriminator": self.discriminator.detach(),
            "loss/generator": self.generator.detach(),
            "loss/reconstruction": self.reconstruction.detach(),
            "logits/real": self.real_logits.detach().mean(),
            "logits/fake": self.fake_logits.detach().mean(),
        }


def _frozen_forward(module: nn.Module, *args: torch.Tensor, batch_groups: int = 1) -> torch.Tensor:
    """`module(*args)` with its parameters detached: gradients flow to the inputs, never to the weights."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, args, {"batch_groups": batch_groups})


def _discriminate(
    discriminator: nn.Module,
    fake: tuple[torch.Tensor, ...],
    real: tuple[torch.Tensor, ...],
    form: str,
    r1_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """D's loss on one concatenated forward of generated and data inputs (`(x,)` or `(x, z)` each), plus the R1
    penalty on the data inputs when `r1_weight > 0`. Returns the loss and the `(2 * num,)` logits, generated first."""
    if r1_weight > 0:
        real = tuple(t.detach().requires_grad_(True) for t in real)
    num = fake[0].shape[0]
    # one forward; a BatchNorm D normalizes the two halves apart, as if called on each (batch_groups=2)
    logits = discriminator(*(torch.cat(pair) for pair in zip(fake, real)), batch_groups=2)  # (2 * num,)
    loss = discriminator_loss(logits[:num], logits[num:], form)
    if r1_weight > 0:
        # + gamma / 2 * ||grad D(real)||^2
        loss = loss + r1_weight * r1_penalty(logits[num:], list(real))
    return loss, logits


def _noisy(means: torch.Tensor, noise_std: float) -> torch.Tensor:
    """z_g ~ N(F(x), noise_std^2 I), reparameterized; also F's input jitter x + N(0, noise_std^2 I)."""
    return means + noise_std * torch.randn_like(means) if noise_std > 0 else means


def veegan_losses(
    networks: Networks, real_samples: torch.Tensor, latents: torch.Tensor, options: LossOptions = LossOptions()
) -> StepLosses:
    r"""
    The VEEGAN step of Algorithm 1: lines 3-11 for one batch.

    Args:
        networks (`Networks`): G, F and D, possibly wrapped by DDP, and the unwrapped D for G's frozen view.
        real_samples (`torch.Tensor` of shape `(batch, *sample_shape)`): x ~ p(x).
        latents (`torch.Tensor` of shape `(batch, latent_dim)`): z ~ N(0, I).
        options (`LossOptions`, *optional*): `noise_std`, `reconstruction_weight` (lambda), `adversarial_loss`,
            `pack_size` (D judges that many (z, x) pairs at once, PacGAN's packing on the joint D; 1 is Algorithm 1),
            `discriminator_loss_form`, `r1_weight`, and `symmetric_latent_noise`: D also sees the generated pair's code
            with the same noise, (z + eps', G(z)), so ||z|| alone cannot tell the pairs apart, and the two joints
            still match exactly when the model is right. With `data_reconstruction_weight` mu > 0, G and F also
            minimize mu * ||x - G(F(x))||^2 (benchmarks/README.md: a small gain on digits, collapse on the mixtures).
    """
    generator, reconstructor, discriminator, _ = networks
    batch, o, pack_size = real_samples.shape[0], options, options.pack_size
    jitter = o.reconstructor_input_noise  # F reads x + N(0, jitter^2 I): z must be coarser than the noise
    if o.data_reconstruction_weight > 0:
        # F(x) first, so one G forward decodes both z and F(x): (2 * batch, *sample_shape)
        real_means = reconstructor(_noisy(real_samples, jitter))  # (batch, latent_dim), trains theta via G(F(x))
        both_samples = generator(torch.cat([latents, real_means]))
        fake_samples, cycled_samples = both_samples[:batch], both_samples[batch:]
        reconstructed_latents = reconstructor(_noisy(fake_samples, jitter))  # (batch, latent_dim)
    else:
        fake_samples = generator(latents)  # (batch, *sample_shape), trains gamma
        # One F forward on real and fake: F(x) for the data pairs, F(G(z)) for the reconstruction term.
        both_latents = reconstructor(_noisy(torch.cat([real_samples, fake_samples]), jitter))  # (2 * batch, latent)
        real_means, reconstructed_latents = both_latents[:batch], both_latents[batch:]
    # z_g ~ N(F(x), noise_std^2 I); detached because line 7 updates omega only. The noise is what keeps D from telling
    # data pairs by z alone (F(x) lies on a data_dim-dimensional manifold inside latent space).
    real_latents = _noisy(real_means.detach(), o.noise_std)

    # Packed per side (a pack never mixes generated and data pairs): (num, pack_size * dim) each
    fake_x, real_x = pack(fake_samples.detach(), pack_size), pack(real_samples, pack_size)
    fake_codes = _noisy(latents, o.noise_std) if o.symmetric_latent_noise else latents  # (batch, latent_dim)
    fake_z, real_z = pack(fake_codes, pack_size), pack(real_latents, pack_size)
    num = fake_x.shape[0]
    # D's inputs per side: the pair (x, z), or x alone when D does not read codes
    fake_in, real_in = ((fake_x, fake_z), (real_x, real_z)) if o.joint_discriminator else ((fake_x,), (real_x,))
    d_loss, logits = _discriminate(discriminator, fake_in, real_in, o.discriminator_loss_form, o.r1_weight)

    reconstruction = reconstruction_loss(latents, reconstructed_latents)
    cycle = 0.0
    if o.data_reconstruction_weight > 0:
        # + mu * ||x - G(F(x))||^2: trains gamma and theta on the data itself (ALICE's cycle term, Li et al., 2017)
        cycle = o.data_reconstruction_weight * sample_reconstruction_loss(real_samples, cycled_samples)

    def generator_terms() -> torch.Tensor:
        # G's view of D (its weights when called), held fixed: line 11 trains gamma only.
        codes = (fake_z,) if o.joint_discriminator else ()
        fake_logits = _frozen_forward(networks.frozen_discriminator, pack(fake_samples, pack_size), *codes)  # (num,)
        # d(z, G(z)) trains theta (line 9) and gamma (line 11); lambda only rescales F's gradient, which Adam ignores.
        loss = generator_loss(fake_logits, reconstruction, o.reconstruction_weight, o.adversarial_loss) + cycle
        if o.reconstructor_adversarial_weight > 0 and o.joint_discriminator:
            # + beta * -log sigmoid(D(F(x) + eps, x)): without it nothing keeps F(x) near N(0, I), and a joint D can
            # tell the pairs apart by z alone (benchmarks/latent_shortcut.py)
            codes = pack(_noisy(real_means, o.noise_std), pack_size)  # (num, pack_size * latent_dim), trains theta
            real_logits = _frozen_forward(networks.frozen_discriminator, real_x, codes)  # (num,)
            loss = loss + o.reconstructor_adversarial_weight * reconstructor_adversarial_loss(real_logits)
        return loss

    zero = d_loss.new_zeros(())
    return StepLosses(
        d_loss, generator_terms(), zero, reconstruction, logits[num:], logits[:num], regenerate=generator_terms
    )


def ali_losses(
    networks: Networks, real_samples: torch.Tensor, latents: torch.Tensor, options: LossOptions = LossOptions()
) -> StepLosses:
    """ALI / BiGAN: the joint D and pairs of VEEGAN, G and F both trained adversarially, nothing reconstructed.
    It reads `options.noise_std`, `discriminator_loss_form` and `r1_weight`."""
    generator, reconstructor, discriminator, _ = networks
    batch = real_samples.shape[0]
    fake_samples = generator(latents)  # (batch, *sample_shape)
    real_latents = _noisy(reconstructor(real_samples), options.noise_std)  # (batch, latent_dim), trains theta via D
    d_loss, logits = _discriminate(
        discriminator,
        (fake_samples.detach(), latents),
        (real_samples, real_latents.detach()),
        options.discriminator_loss_form,
        options.r1_weight,
    )  # logits: (2 * batch,)

    def generator_terms() -> torch.Tensor:
        frozen = _frozen_forward(
            networks.frozen_discriminator,
            torch.cat([fake_samples, real_samples]),
            torch.cat([latents, real_latents]),
            batch_groups=2,
        )
        return ali_encoder_generator_loss(frozen[:batch], frozen[batch:])

    with torch.no_grad():  # logged only: how well F happens to invert G
        reconstruction = reconstruction_loss(latents, reconstructor(fake_samples))
    zero = d_loss.new_zeros(())
    return StepLosses(
        d_loss, generator_terms(), zero, reconstruction, logits[batch:], logits[:batch], regenerate=generator_terms
    )


def gan_losses(
    networks: Networks, real_samples: torch.Tensor, latents: torch.Tensor, options: LossOptions = LossOptions()
) -> StepLosses:
    r"""
    The GAN family on x alone: DCGAN-style GAN, PacGAN (`options.pack_size > 1`; D has `pack_size=m`) and Unrolled GAN
    (`options.unrolled_steps > 0`: G is trained against D after k differentiable SGD steps of D's loss of size
    `options.unrolled_learning_rate`, with gradients through the unrolling, as Metz et al.). D has `latent_dim=0`.
    D's loss is `options.discriminator_loss_form`, and G's loss is its pair: the non-saturating loss for
    `"logistic"`, the raw logit for `"hinge"` (Lim & Ye, 2017).
    """
    generator, reconstructor, discriminator, _ = networks
    pack_size, discriminator_loss_form = options.pack_size, options.discriminator_loss_form
    unrolled_steps, d_module = options.unrolled_steps, networks.frozen_discriminator
    fake_samples = generator(latents)  # (batch, *sample_shape)
    fake_packed, real_packed = pack(fake_samples, pack_size), pack(real_samples, pack_size)
    num = fake_packed.shape[0]
    d_loss, logits = _discriminate(
        discriminator, (fake_packed.detach(),), (real_packed,), discriminator_loss_form, options.r1_weight
    )  # logits: (2 * batch / pack_size,)

    def generator_terms() -> torch.Tensor:
        if unrolled_steps > 0:
            # theta_D^{k}: k SGD steps on D's loss from its current weights, differentiable in G's samples
            params = {name: p.detach().requires_grad_(True) for name, p in d_module.named_parameters()}
            for _ in range(unrolled_steps):
                unrolled_logits = functional_call(
                    d_module, params, (torch.cat([fake_packed, real_packed]),), {"batch_groups": 2}
                )
                step_loss = discriminator_loss(unrolled_logits[:num], unrolled_logits[num:], discriminator_loss_form)
                grads = torch.autograd.grad(step_loss, list(params.values()), create_graph=True)
                params = {name: p - options.unrolled_learning_rate * g for (name, p), g in zip(params.items(), grads)}
            fake_logits = functional_call(d_module, params, (fake_packed,))
        else:
            fake_logits = _frozen_forward(d_module, fake_packed)
        # -log(1 - sigmoid(D(G(z)))) (non-saturating, in this module's sign convention), or D(G(z)) against a hinge D
        return adversarial_generator_loss(
            fake_logits, "paper" if discriminator_loss_form == "hinge" else "non_saturating"
        )

    # F learns to invert G on detached samples: it never influences G
    reconstruction = reconstruction_loss(latents, reconstructor(fake_samples.detach()))
    return StepLosses(
        d_loss, generator_terms(), reconstruction, reconstruction.detach(), logits[num:], logits[:num], generator_terms
    )


@dataclass(frozen=True)
class Objective:
    """What the rest of the package needs to know about an objective; `OBJECTIVES` holds one per name.

    Attributes:
        losses (`Callable`): `(networks, real_samples, latents, options) -> StepLosses`, one step's terms.
        joint (`bool`): D judges (z, x) pairs (`latent_dim > 0`); otherwise x alone.
        pack_option (`str` or `None`): the training option that sets how many samples (or pairs) D judges at once;
            `None` means 1.
        compiles (`bool`): `torch.compile` can build the step; a double backward (unrolling) cannot be compiled.
        options (`tuple[str, ...]`): the `LossOptions` fields it reads; the others keep their neutral defaults.
    """

    losses: Callable[..., StepLosses]
    joint: bool
    pack_option: str | None
    compiles: bool
    options: tuple[str, ...]


_D_OPTIONS = ("discriminator_loss_form", "r1_weight")
OBJECTIVES: dict[str, Objective] = {
    "veegan": Objective(
        veegan_losses,
        joint=True,
        pack_option="joint_pack_size",
        compiles=True,
        options=(
            *_D_OPTIONS,
            "noise_std",
            "reconstruction_weight",
            "adversarial_loss",
            "pack_size",
            "symmetric_latent_noise",
            "data_reconstruction_weight",
            "reconstructor_input_noise",
            "joint_discriminator",
            "reconstructor_adversarial_weight",
        ),
    ),
    "gan": Objective(gan_losses, joint=False, pack_option=None, compiles=True, options=_D_OPTIONS),
    "ali": Objective(ali_losses, joint=True, pack_option=None, compiles=True, options=(*_D_OPTIONS, "noise_std")),
    "unrolled": Objective(
        gan_losses,
        joint=False,
        pack_option=None,
        compiles=False,
        options=(*_D_OPTIONS, "unrolled_steps", "unrolled_learning_rate"),
    ),
    "pacgan": Objective(
        gan_losses, joint=False, pack_option="pack_size", compiles=True, options=(*_D_OPTIONS, "pack_size")
    ),
}


def compute_losses(
    objective: str, networks: Networks, real_samples: torch.Tensor, latents: torch.Tensor, options: LossOptions
) -> StepLosses:
    r"""
    One step's losses for `objective`, a key of `OBJECTIVES`; the options that do not apply to it are ignored.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r} is not supported; use one of {tuple(OBJECTIVES)}.")
    spec = OBJECTIVES[objective]
    # the options the objective does not read keep their neutral defaults: a plain GAN never unrolls or packs
    used = replace(
        LossOptions(), **{f.name: getattr(options, f.name) for f in fields(options) if f.name in spec.options}
    )
    return spec.losses(networks, real_samples, latents, used)
