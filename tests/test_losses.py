"""Algorithm 1: loss values, and gradient routing (each term reaches exactly the networks it updates)."""

import math

import pytest
import torch
import torch.nn.functional as nnf

from tests.conftest import make_pipeline
from veegan_hf import VEEGANDiscriminator
from veegan_hf.losses import (
    adversarial_generator_loss,
    discriminator_loss,
    generator_loss,
    reconstruction_loss,
    sample_reconstruction_loss,
)
from veegan_hf.objectives import LossOptions, Networks, veegan_losses


def test_discriminator_loss_is_the_papers_logistic_loss():
    fake, real = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    expected = -(torch.log(torch.sigmoid(fake)).mean() + torch.log(1 - torch.sigmoid(real)).mean())
    assert torch.allclose(discriminator_loss(fake, real), expected)
    # the optimum is D large on generated pairs and small on data pairs
    assert discriminator_loss(torch.tensor([20.0]), torch.tensor([-20.0])) < 1e-8


def test_reconstruction_loss_sums_dims_and_averages_batch():
    z, z_hat = torch.zeros(4, 3), torch.ones(4, 3)
    assert reconstruction_loss(z, z_hat).item() == 3.0


def test_generator_forms():
    logits = torch.tensor([1.0, -2.0])
    assert adversarial_generator_loss(logits, "paper").item() == pytest.approx(-0.5)
    assert torch.allclose(adversarial_generator_loss(logits, "non_saturating"), nnf.softplus(logits).mean())
    assert generator_loss(logits, torch.tensor(2.0), reconstruction_weight=3.0).item() == pytest.approx(5.5)
    with pytest.raises(ValueError, match="form='wgan'"):
        adversarial_generator_loss(logits, "wgan")


def _grad_norms(loss: torch.Tensor, pipe) -> dict[str, float]:
    """Per-network gradient norm of `loss` (0.0 where the graph does not reach the network)."""
    norms = {}
    for name in ("generator", "reconstructor", "discriminator"):
        params = list(getattr(pipe, name).parameters())
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        norms[name] = math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))
    return norms


@pytest.mark.parametrize("family", ["mlp-2d", "dcgan-28-1"])
@pytest.mark.parametrize("form", ["paper", "non_saturating"])
def test_gradient_routing_matches_algorithm_1(family, form):
    pipe = make_pipeline(family)
    real = pipe(batch_size=6, output_type="pt").samples.detach()
    real = real * 2 - 1 if pipe.is_image_model else real  # back to the model's [-1, 1] space
    latents = torch.randn(6, pipe.latent_dim)
    networks = Networks(pipe.generator, pipe.reconstructor, pipe.discriminator)
    losses = veegan_losses(networks, real, latents, LossOptions(adversarial_loss=form))
    d = _grad_norms(losses.discriminator, pipe)
    assert d["discriminator"] > 0 and d["generator"] == 0 and d["reconstructor"] == 0  # line 7: omega only
    g = _grad_norms(losses.generator, pipe)
    assert g["generator"] > 0 and g["reconstructor"] > 0 and g["discriminator"] == 0  # lines 9 and 11
    # theta's gradient is exactly that of d(z, G(z)) (line 9): the adversarial term does not reach F
    r = _grad_norms(losses.reconstruction, pipe)
    assert r["reconstructor"] == pytest.approx(g["reconstructor"], rel=1e-6)
    assert r["discriminator"] == 0


def test_generator_gradient_equals_algorithm_1(family="mlp-2d"):
    """g_gamma = grad_gamma [D(z, G(z)) + d(z, G(z))] with D's pre-update weights, computed independently."""
    pipe = make_pipeline(family)
    real, latents = torch.randn(5, 2), torch.randn(5, 8)
    torch.manual_seed(0)
    losses = veegan_losses(Networks(pipe.generator, pipe.reconstructor, pipe.discriminator), real, latents)
    ours = torch.autograd.grad(losses.total, list(pipe.generator.parameters()))
    fake = pipe.generator(latents)
    reference = pipe.discriminator(fake, latents).mean() + (latents - pipe.reconstructor(fake)).pow(2).sum(1).mean()
    expected = torch.autograd.grad(reference, list(pipe.generator.parameters()))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, expected))


@pytest.mark.parametrize("family", ["mlp-2d", "dcgan-28-1"])
def test_data_reconstruction_adds_mu_times_the_cycle_loss_to_g_and_f_only(family):
    """mu > 0: G's loss gains mu * mean (x - G(F(x)))^2, which trains G and F and never D; D's loss is unchanged."""
    pipe = make_pipeline(family)
    pipe.generator.eval(), pipe.reconstructor.eval()  # BatchNorm on running statistics: one batch or two agree
    real = pipe(batch_size=4, output_type="pt").samples.detach()
    real = real * 2 - 1 if pipe.is_image_model else real
    latents = torch.randn(4, pipe.latent_dim)
    args = (Networks(pipe.generator, pipe.reconstructor, pipe.discriminator), real, latents)
    base = veegan_losses(*args, LossOptions(noise_std=0.0))
    mu = 2.5
    cycled = veegan_losses(*args, LossOptions(noise_std=0.0, data_reconstruction_weight=mu))
    expected = (real - pipe.generator(pipe.reconstructor(real))).pow(2).mean()
    assert sample_reconstruction_loss(real, real).item() == 0.0
    assert torch.allclose(cycled.generator - base.generator, mu * expected, atol=1e-5)
    assert torch.allclose(cycled.discriminator, base.discriminator, atol=1e-6)
    g = _grad_norms(cycled.generator, pipe)
    assert g["generator"] > 0 and g["reconstructor"] > 0 and g["discriminator"] == 0
    # the cycle term alone (the difference of the two losses) reaches F through G(F(x)), and G
    c = _grad_norms(cycled.generator - base.generator, pipe)
    assert c["generator"] > 0 and c["reconstructor"] > 0 and c["discriminator"] == 0


def test_noise_std_zero_gives_deterministic_real_pairs():
    pipe = make_pipeline("mlp-2d")
    real, latents = torch.randn(5, 2), torch.randn(5, 8)
    args = (Networks(pipe.generator, pipe.reconstructor, pipe.discriminator), real, latents)
    a, b = veegan_losses(*args, LossOptions(noise_std=0.0)), veegan_losses(*args, LossOptions(noise_std=0.0))
    assert torch.equal(a.real_logits, b.real_logits)
    c = veegan_losses(*args, LossOptions(noise_std=1.0))
    assert not torch.equal(a.real_logits, c.real_logits)
    assert set(a.logs()) == {
        "loss/discriminator",
        "loss/generator",
        "loss/reconstruction",
        "logits/real",
        "logits/fake",
    }


@pytest.mark.parametrize("mu", [0.0, 1.0])
def test_reconstructor_input_noise_jitters_everything_f_reads_in_training(mu):
    """F reads x + N(0, s^2 I): its every input in a step (data, generated, and the cycle's data) is off by noise of
    std s, while G and D see the clean samples; s = 0 leaves F's input exact."""
    pipe = make_pipeline("mlp-2d")
    seen = []
    pipe.reconstructor.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    real, latents = torch.randn(400, 2), torch.randn(400, 8)
    networks = Networks(pipe.generator, pipe.reconstructor, pipe.discriminator)
    veegan_losses(networks, real, latents, LossOptions(reconstructor_input_noise=0.0, data_reconstruction_weight=mu))
    clean = torch.cat(seen)
    seen.clear()
    torch.manual_seed(1)
    veegan_losses(networks, real, latents, LossOptions(reconstructor_input_noise=0.5, data_reconstruction_weight=mu))
    jitter = torch.cat(seen) - clean  # (num_inputs, 2)
    assert torch.equal(clean[:400], real)  # the data itself, exactly, without the noise
    assert jitter.std().item() == pytest.approx(0.5, rel=0.05) and abs(jitter.mean().item()) < 0.05


def test_packed_veegan_judges_whole_packs_of_pairs():
    """pack_size=m: D sees m (z, x) pairs concatenated, and G still gets exactly Algorithm 1's gradient from it."""
    pipe = make_pipeline("mlp-2d")
    discriminator = VEEGANDiscriminator(latent_dim=8, data_dim=2, hidden_dim=16, pack_size=2)
    real, latents = torch.randn(6, 2), torch.randn(6, 8)
    args = (Networks(pipe.generator, pipe.reconstructor, discriminator), real, latents)
    losses = veegan_losses(*args, LossOptions(noise_std=0.0, pack_size=2))
    assert losses.fake_logits.shape == losses.real_logits.shape == (3,)  # one judgement per pack of 2

    fake = pipe.generator(latents)
    fake_logits = discriminator(fake.reshape(3, 4), latents.reshape(3, 16))  # pairs (0, 1), (2, 3), (4, 5)
    real_logits = discriminator(real.reshape(3, 4), pipe.reconstructor(real).reshape(3, 16))
    assert torch.allclose(losses.discriminator, discriminator_loss(fake_logits, real_logits))
    reference = fake_logits.mean() + (latents - pipe.reconstructor(fake)).pow(2).sum(1).mean()
    ours = torch.autograd.grad(losses.total, list(pipe.generator.parameters()))
    expected = torch.autograd.grad(reference, list(pipe.generator.parameters()))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, expected))
    with pytest.raises(ValueError, match="not a multiple of pack_size=4"):
        veegan_losses(*args, LossOptions(noise_std=0.0, pack_size=4))


def test_hinge_discriminator_loss_stops_at_the_margin():
    from veegan_hf.losses import discriminator_loss as d_loss

    fake, real = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    # relu(1 - fake) = [0, 0.5]; relu(1 + real) = [0, 1]
    assert d_loss(fake, real, "hinge").item() == pytest.approx(0.25 + 0.5)
    assert d_loss(torch.tensor([1.0]), torch.tensor([-1.0]), "hinge").item() == 0.0  # beyond the margin: no push
    with pytest.raises(ValueError, match="form='wgan'"):
        d_loss(fake, real, "wgan")


def test_r1_penalty_of_a_linear_discriminator_is_half_its_squared_slope():
    from veegan_hf.losses import r1_penalty

    w = torch.tensor([3.0, -4.0], requires_grad=True)
    x = torch.randn(8, 2, requires_grad=True)
    z = torch.randn(8, 1, requires_grad=True)
    logits = x @ w + 2 * z[:, 0]
    penalty = r1_penalty(logits, [x, z])
    assert penalty.item() == pytest.approx(0.5 * (25 + 4))  # ||(w, 2)||^2 / 2 at every data point
    (gw,) = torch.autograd.grad(penalty, w)  # differentiable in D's weights: d/dw 1/2 ||w||^2 = w
    assert torch.allclose(gw, w.detach())


@pytest.mark.parametrize("objective", ["veegan", "gan", "ali"])
def test_r1_and_hinge_reach_the_discriminator_only(objective):
    from tests.conftest import FAMILIES
    from veegan_hf.objectives import compute_losses

    pipe = make_pipeline("mlp-2d")
    if objective == "gan":  # D judges x alone
        pipe.discriminator = VEEGANDiscriminator(**{**FAMILIES["mlp-2d"], "latent_dim": 0})
    real, latents = torch.randn(8, 2), torch.randn(8, pipe.latent_dim)
    networks = Networks(pipe.generator, pipe.reconstructor, pipe.discriminator)
    plain = compute_losses(objective, networks, real, latents, LossOptions())
    options = LossOptions(r1_weight=10.0, discriminator_loss_form="hinge")
    penalized = compute_losses(objective, networks, real, latents, options)
    assert penalized.discriminator.item() != plain.discriminator.item()
    # the penalty and the hinge change D's loss; G's gradient comes from the frozen D view, which they never touch
    for name in ("generator", "reconstructor"):
        grads = torch.autograd.grad(penalized.discriminator, list(getattr(pipe, name).parameters()), allow_unused=True)
        assert all(g is None or g.abs().max() == 0 for g in grads), name


def test_veegan_on_an_x_only_discriminator_keeps_the_noise_reconstruction():
    """joint_discriminator=False: D judges x alone (no codes reach it), while G and F still get ||z - F(G(z))||^2."""
    pipe = make_pipeline("mlp-2d")
    discriminator = VEEGANDiscriminator(latent_dim=0, data_dim=2, hidden_dim=16)
    real, latents = torch.randn(6, 2), torch.randn(6, 8)
    networks = Networks(pipe.generator, pipe.reconstructor, discriminator)
    losses = veegan_losses(networks, real, latents, LossOptions(joint_discriminator=False))
    fake = pipe.generator(latents)
    expected_d = discriminator_loss(discriminator(fake), discriminator(real))
    assert torch.allclose(losses.discriminator, expected_d)
    assert torch.allclose(losses.reconstruction, reconstruction_loss(latents, pipe.reconstructor(fake)))
    reference = discriminator(fake).mean() + reconstruction_loss(latents, pipe.reconstructor(fake))
    ours = torch.autograd.grad(losses.total, list(pipe.generator.parameters()))
    expected = torch.autograd.grad(reference, list(pipe.generator.parameters()))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, expected))


def test_reconstructor_adversarial_weight_trains_f_against_the_joint_d():
    """beta > 0 adds beta * -log sigmoid(D(F(x) + eps, x)) to G's and F's loss: F's gradient changes, G's does not,
    and beta = 0 is Algorithm 1 exactly."""
    pipe = make_pipeline("mlp-2d")
    real, latents = torch.randn(64, 2), torch.randn(64, 8)
    networks = Networks(pipe.generator, pipe.reconstructor, pipe.discriminator)

    def grads(beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        for module in (pipe.generator, pipe.reconstructor):
            module.zero_grad()
        torch.manual_seed(0)
        losses = veegan_losses(networks, real, latents, LossOptions(reconstructor_adversarial_weight=beta))
        losses.generator.backward()
        g = torch.cat([p.grad.flatten() for p in pipe.generator.parameters()])
        f = torch.cat([p.grad.flatten() for p in pipe.reconstructor.parameters()])
        return losses.generator.detach(), g, f

    base, g0, f0 = grads(0.0)
    torch.manual_seed(0)
    alg1 = veegan_losses(networks, real, latents, LossOptions())
    assert torch.equal(base, alg1.generator.detach())
    loss, g1, f1 = grads(2.0)
    assert loss > base  # the added term is a positive softplus
    assert torch.allclose(g1, g0, atol=1e-6)  # G's gradient is untouched: the term reads x from the data
    assert not torch.allclose(f1, f0)
