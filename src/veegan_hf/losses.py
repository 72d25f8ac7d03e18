r"""VEEGAN's objective (Algorithm 1 of Srivastava et al., 2017) and the baselines' as pure tensor functions: logits and
latents in, scalar losses out. Which network produced which tensor, and what is detached, is decided by
`objectives.py`.

Paper symbol -> code name:

| paper                        | code                                              |
|------------------------------|---------------------------------------------------|
| z ~ p_0(z) = N(0, I)         | `latents`                                         |
| x_g ~ q_gamma(x | z) = G(z)  | `fake_samples` (generator, parameters gamma)      |
| x ~ p(x)                     | `real_samples`                                    |
| z_g ~ p_theta(z | x)         | `real_latents` = F(x) + noise (reconstructor, theta) |
| D_omega(z, x)                | `discriminator(samples, latents)` -> logits (omega) |
| d(z, x_g) = ||z - F(x_g)||^2 | `reconstruction_loss(latents, reconstructed_latents)` |

Sign convention (the paper's): D is trained to output a *large* logit on generated pairs (z, G(z)) and a small one
on data pairs (F(x) + noise, x), so that at the optimum D(z, x) = log q(z, x) / p(z, x). The generator then
*minimizes* D(z, G(z)), an estimate of the KL between the two joint distributions.
"""

import torch
import torch.nn.functional as nnf

ADVERSARIAL_LOSSES = ("paper", "non_saturating")
DISCRIMINATOR_LOSSES = ("logistic", "hinge")


def discriminator_loss(fake_logits: torch.Tensor, real_logits: torch.Tensor, form: str = "logistic") -> torch.Tensor:
    r"""
    The discriminator's loss: line 7 of Algorithm 1 (logistic), or the hinge loss of Lim & Ye (2017).

    Args:
        fake_logits (`torch.Tensor` of shape `(batch,)`): D(z, G(z)) on generated pairs.
        real_logits (`torch.Tensor` of shape `(batch,)`): D(F(x) + noise, x) on data pairs.
        form (`str`, *optional*, defaults to `"logistic"`): `"logistic"` is Algorithm 1; `"hinge"` stops pushing a
            logit once it is beyond the margin 1, so D spends its capacity on the pairs it still confuses.

    Returns:
        `torch.Tensor`: the scalar loss, averaged over the batch.
    """
    if form == "logistic":
        # -log sigmoid(D(z, G(z)))          = softplus(-D(z, G(z)))
        # -log(1 - sigmoid(D(z_g, x)))      = softplus(D(z_g, x))
        return nnf.softplus(-fake_logits).mean() + nnf.softplus(real_logits).mean()
    if form == "hinge":
        # max(0, 1 - D(z, G(z))) + max(0, 1 + D(z_g, x)): generated pairs above +1, data pairs below -1
        return nnf.relu(1 - fake_logits).mean() + nnf.relu(1 + real_logits).mean()
    raise ValueError(f"discriminator loss form={form!r} is not supported; use one of {DISCRIMINATOR_LOSSES}.")


def r1_penalty(real_logits: torch.Tensor, real_inputs: list[torch.Tensor]) -> torch.Tensor:
    r"""
    The R1 gradient penalty (Mescheder et al., 2018): 1/2 E ||grad D(real)||^2, at data points only.

    It pushes D towards zero slope on the data, which damps the oscillation around the equilibrium. For a joint D
    the gradient is taken with respect to both halves of a data pair, (F(x) + noise, x).

    Args:
        real_logits (`torch.Tensor` of shape `(batch,)`): D on data, computed from `real_inputs`.
        real_inputs (`list[torch.Tensor]`): the inputs that required grad, each `(batch, ...)`.

    Returns:
        `torch.Tensor`: the scalar penalty, differentiable in D's weights (a double backward).
    """
    # 1/2 ||d D(z_g, x) / d(z_g, x)||^2, averaged over data pairs
    grads = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return 0.5 * sum(g.pow(2).flatten(1).sum(dim=1) for g in grads).mean()


def reconstruction_loss(latents: torch.Tensor, reconstructed_latents: torch.Tensor) -> torch.Tensor:
    r"""
    The autoencoder loss on the noise, d(z, G(z)) = ||z - F(G(z))||^2 (lines 9 and 11 of Algorithm 1).

    Summed over latent dimensions (it is -log N(z; F(G(z)), I) up to a constant and a factor 1/2) and averaged over
    the batch.

    Args:
        latents (`torch.Tensor` of shape `(batch, latent_dim)`): z.
        reconstructed_latents (`torch.Tensor` of shape `(batch, latent_dim)`): F(G(z)), the reconstructor's mean.
    """
    # ||z - F(G(z))||^2
    return (latents - reconstructed_latents).pow(2).sum(dim=1).mean()


def sample_reconstruction_loss(samples: torch.Tensor, reconstructed_samples: torch.Tensor) -> torch.Tensor:
    r"""
    The autoencoder loss on the data, ||x - G(F(x))||^2: the cycle term of ALICE (Li et al., 2017), optional.

    Averaged over sample elements and the batch, so that its weight does not depend on the resolution.

    Args:
        samples (`torch.Tensor` of shape `(batch, *sample_shape)`): x.
        reconstructed_samples (`torch.Tensor` of shape `(batch, *sample_shape)`): G(F(x)).
    """
    # mean over elements of (x - G(F(x)))^2
    return (samples - reconstructed_samples).pow(2).mean()


def adversarial_generator_loss(fake_logits: torch.Tensor, form: str = "paper") -> torch.Tensor:
    r"""
    The generator's adversarial term.

    Args:
        fake_logits (`torch.Tensor` of shape `(batch,)`): D(z, G(z)) computed with the discriminator's weights held
            fixed.
        form (`str`, *optional*, defaults to `"paper"`): `"paper"` is line 11 of Algorithm 1, the raw logit D(z, G(z));
            `"non_saturating"` is -log(1 - sigmoid(D(z, G(z)))), the usual non-saturating GAN loss in this sign
            convention, whose gradient stays bounded when D is confident.
    """
    if form == "paper":
        # D(z, G(z)) ~= log q(z, x) / p(z, x)
        return fake_logits.mean()
    if form == "non_saturating":
        # -log(1 - sigmoid(D(z, G(z)))) = softplus(D(z, G(z)))
        return nnf.softplus(fake_logits).mean()
    raise ValueError(f"adversarial loss form={form!r} is not supported; use one of {ADVERSARIAL_LOSSES}.")


def generator_loss(
    fake_logits: torch.Tensor,
    reconstruction: torch.Tensor,
    reconstruction_weight: float = 1.0,
    form: str = "paper",
) -> torch.Tensor:
    r"""
    VEEGAN's generator objective, line 11 of Algorithm 1: the adversarial term plus the weighted noise autoencoder loss.

    Args:
        fake_logits (`torch.Tensor` of shape `(batch,)`): D(z, G(z)) with the discriminator's weights held fixed.
        reconstruction (`torch.Tensor`): the scalar `reconstruction_loss(latents, F(G(z)))`, shared with F's update.
        reconstruction_weight (`float`, *optional*, defaults to 1.0): lambda; the paper uses 1.
        form (`str`, *optional*, defaults to `"paper"`): see `adversarial_generator_loss`.
    """
    # D(z, G(z)) + lambda * ||z - F(G(z))||^2
    return adversarial_generator_loss(fake_logits, form) + reconstruction_weight * reconstruction


def ali_encoder_generator_loss(fake_logits: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    r"""
    ALI / BiGAN (Dumoulin et al., 2017; Donahue et al., 2017): G and the encoder F both fool the joint D, with no
    reconstruction term. Non-saturating form in this module's sign convention (D large on generated pairs).

    Args:
        fake_logits (`torch.Tensor` of shape `(batch,)`): D(z, G(z)), D's weights held fixed.
        real_logits (`torch.Tensor` of shape `(batch,)`): D(F(x) + noise, x), D's weights held fixed.
    """
    # -log(1 - sigmoid(D(z, G(z)))) - log sigmoid(D(F(x) + eps, x))
    return nnf.softplus(fake_logits).mean() + reconstructor_adversarial_loss(real_logits)


def reconstructor_adversarial_loss(real_logits: torch.Tensor) -> torch.Tensor:
    r"""
    F's adversarial term: F's codes of data, paired with the data, must pass for generated pairs (z ~ N(0, I), G(z)).
    BiGAN's encoder objective, added to VEEGAN's F by `--reconstructor_adversarial_weight`; this module's sign
    convention (D large on generated pairs).

    Args:
        real_logits (`torch.Tensor` of shape `(batch,)`): D(F(x) + noise, x), D's weights held fixed.
    """
    # -log sigmoid(D(F(x) + eps, x))
    return nnf.softplus(-real_logits).mean()


def pack(samples: torch.Tensor, pack_size: int) -> torch.Tensor:
    r"""
    PacGAN (Lin et al., 2018): groups `pack_size` consecutive samples into one discriminator input, concatenated along
    features (vectors) or channels (images). D judging m samples jointly sees the lack of diversity of a collapsed G.

    Args:
        samples (`torch.Tensor` of shape `(batch, *sample_shape)`): `batch` must be a multiple of `pack_size`.

    Returns:
        `torch.Tensor` of shape `(batch // pack_size, pack_size * sample_shape[0], *sample_shape[1:])`.
    """
    batch = samples.shape[0]
    if batch % pack_size:
        raise ValueError(f"batch size {batch} is not a multiple of pack_size={pack_size}.")
    return samples.reshape(batch // pack_size, pack_size * samples.shape[1], *samples.shape[2:])
