"""The networks: shapes for every family and size, config validation, joint/packed discriminators."""

import pytest
import torch

from tests.conftest import FAMILIES
from veegan_hf import VEEGANDiscriminator, VEEGANGenerator, VEEGANReconstructor


def test_shapes_every_family(family):
    kwargs = FAMILIES[family]
    g, f, d = VEEGANGenerator(**kwargs), VEEGANReconstructor(**kwargs), VEEGANDiscriminator(**kwargs)
    latents = torch.randn(3, kwargs["latent_dim"])
    samples = g(latents)
    assert samples.shape == (3, *g.sample_shape)
    assert f(samples).shape == (3, kwargs["latent_dim"])
    assert d(samples, latents).shape == (3,)
    if kwargs["architecture"] == "dcgan":
        assert samples.abs().max() <= 1.0  # tanh output


def test_default_widths_are_sound_for_each_image_size():
    sizes = {}
    for size in (28, 32, 64):
        g = VEEGANGenerator(architecture="dcgan", latent_dim=100, image_size=size, num_channels=3)
        sizes[size] = sum(p.numel() for p in g.parameters())
    # more resolution -> one more stage; every default stays a few million parameters, trainable on one GPU
    assert sizes[28] < sizes[64] and all(2e5 < n < 2e7 for n in sizes.values())


def test_extra_noise_input_changes_samples_but_not_shape():
    g = VEEGANGenerator(architecture="mlp", latent_dim=4, data_dim=2, extra_noise_dim=1)
    z = torch.randn(5, 4)
    a, b = g(z, torch.zeros(5, 1)), g(z, torch.ones(5, 1))
    assert a.shape == (5, 2) and not torch.allclose(a, b)
    assert g(z).shape == (5, 2)  # drawn when omitted


def test_gaussian_and_deterministic_reconstructor():
    x = torch.randn(6, 2)
    gaussian = VEEGANReconstructor(latent_dim=4, noise_std=1.0)
    deterministic = VEEGANReconstructor(latent_dim=4, noise_std=0.0)
    assert not torch.equal(gaussian.sample_latents(x), gaussian(x))
    assert torch.equal(deterministic.sample_latents(x), deterministic(x))


def test_discriminator_x_only_and_packed():
    d = VEEGANDiscriminator(latent_dim=0, data_dim=2)
    assert d(torch.randn(4, 2)).shape == (4,)
    packed = VEEGANDiscriminator(latent_dim=3, data_dim=2, pack_size=4)
    assert packed(torch.randn(5, 8), torch.randn(5, 12)).shape == (5,)
    with pytest.raises(ValueError, match="pass latents"):
        VEEGANDiscriminator(latent_dim=3)(torch.randn(4, 2))


def test_discriminator_paths_are_joint():
    d = VEEGANDiscriminator(latent_dim=3, data_dim=2)
    x = torch.randn(4, 2)
    assert not torch.allclose(d(x, torch.zeros(4, 3)), d(x, torch.ones(4, 3)))


def test_discriminator_marginal_head_adds_a_logit_from_x_alone(tmp_path):
    d = VEEGANDiscriminator(latent_dim=3, data_dim=2, num_hidden_layers=2, marginal_head=True)
    x, z = torch.randn(4, 2), torch.randn(4, 3)
    h_x = d.sample_path(x)
    joint = d.head(h_x + d.latent_path(z)).squeeze(-1)
    assert torch.allclose(d(x, z), joint + d.x_head(h_x).squeeze(-1))
    # the x-only term ignores z: its gradient reaches x's path and the x head, never the latent path
    d.x_head(h_x).sum().backward()
    assert d.latent_path.weight.grad is None and d.x_head[-1][-1].weight.grad.abs().sum() > 0
    d.save_pretrained(tmp_path)
    reloaded = VEEGANDiscriminator.from_pretrained(tmp_path)
    assert reloaded.config.marginal_head and torch.equal(reloaded(x, z), d(x, z))
    with pytest.raises(ValueError, match="marginal_head=True needs a joint discriminator"):
        VEEGANDiscriminator(latent_dim=0, marginal_head=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(architecture="resnet"), "architecture='resnet'"),
        (dict(latent_dim=0), "latent_dim=0"),
        (dict(architecture="mlp", data_dim=None), "data_dim=None"),
        (dict(architecture="dcgan", image_size=48, num_channels=3), "image_size in"),
        (dict(architecture="dcgan", image_size=32, num_channels=4), "num_channels 1 or 3"),
        (dict(activation="gelu"), "activation='gelu'"),
    ],
)
def test_invalid_config_names_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VEEGANGenerator(**kwargs)


def test_negative_noise_std_rejected():
    with pytest.raises(ValueError, match="noise_std=-1"):
        VEEGANReconstructor(noise_std=-1.0)


def test_spectral_norm_discriminator_bounds_every_layer_and_round_trips(tmp_path, family):
    kwargs = FAMILIES[family]
    torch.manual_seed(0)
    d = VEEGANDiscriminator(**kwargs, spectral_norm=True)
    samples, latents = torch.randn(4, *VEEGANGenerator(**kwargs).sample_shape), torch.randn(4, kwargs["latent_dim"])
    for _ in range(30):  # power iterations run in training forwards
        d(samples, latents)
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert layers and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.05)
    d.eval()
    d.save_pretrained(tmp_path)
    loaded = VEEGANDiscriminator.from_pretrained(tmp_path).eval()
    assert loaded.config.spectral_norm is True
    # the saved power-iteration vectors come back, so eval-mode sigma is the same (to float rounding of the matvec)
    torch.testing.assert_close(loaded(samples, latents), d(samples, latents), rtol=1e-6, atol=1e-7)


def test_batch_norm_mlp_generator_samples_with_running_statistics_and_round_trips(tmp_path):
    torch.manual_seed(0)
    g = VEEGANGenerator(latent_dim=2, data_dim=2, hidden_dim=16, num_hidden_layers=3, batch_norm=True)
    norms = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(norms) == 3  # one per hidden layer
    for _ in range(5):  # training forwards move the running statistics off their initial values
        g(torch.randn(64, 2) * 3 + 1)
    assert all(not torch.equal(m.running_mean, torch.zeros(16)) for m in norms)
    g.eval()
    z = torch.randn(1, 2)
    one = g(z)  # eval mode: a sample does not depend on the rest of its batch
    torch.testing.assert_close(g(torch.cat([z, torch.randn(7, 2)]))[:1], one)
    g.save_pretrained(tmp_path)
    loaded = VEEGANGenerator.from_pretrained(tmp_path).eval()
    assert loaded.config.batch_norm is True and torch.equal(loaded(z), one)
    with pytest.raises(TypeError, match="batch_norm='yes' must be true or false"):
        VEEGANGenerator(batch_norm="yes")
    with pytest.raises(ValueError, match="batch_norm=True applies to the mlp generator only"):
        VEEGANGenerator(architecture="dcgan", image_size=28, num_channels=1, batch_norm=True)


def test_generator_batch_norm_option_reaches_the_mlp_generator_and_is_refused_for_images():
    from veegan_hf.training import ConfigError, parse_config
    from veegan_hf.training.networks import build_networks
    from veegan_hf.training.sources import resolve_data

    argv = ["--dataset_name", "ring", "--generator_batch_norm", "--hidden_dim", "8", "--num_hidden_layers", "3"]
    generator, reconstructor, _ = build_networks(resolve_data(parse_config(argv))[0])
    assert generator.config.batch_norm is True
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in generator.modules()) == 3
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in reconstructor.modules())  # F sees real and fake
    with pytest.raises(ConfigError, match="--generator_batch_norm applies to the mlp generator of vector data"):
        resolve_data(parse_config(["--dataset_name", "mnist", "--generator_batch_norm"]))


def _metz(network, **kwargs):
    """A reduced-D ("metz") network of the reference's Stacked MNIST size: 256-D z, G of base 8."""
    return network(**{"architecture": "metz", "latent_dim": 256, "image_size": 28, "num_channels": 3, **kwargs})


def test_metz_networks_have_the_reference_parameter_counts():
    """PacGAN's D=0.25G / D=0.5G code: G 287,875 parameters; D 585 and 1,889, with no hidden fully connected layer."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(_metz(VEEGANGenerator, base_channels=8)) == 287_875
    quarter = _metz(VEEGANDiscriminator, latent_dim=0, base_channels=2)
    assert count(quarter) == 585 and count(_metz(VEEGANDiscriminator, latent_dim=0, base_channels=4)) == 1_889
    assert [m.out_features for m in quarter.modules() if isinstance(m, torch.nn.Linear)] == [1]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in quarter.modules()) == 3  # BatchNorm on every conv
    # the joint D reads z through one map into the last stage's 8 channels: 256 * 8 + 8 more weights
    assert count(_metz(VEEGANDiscriminator, base_channels=2)) == 585 + 256 * 8 + 8
    # the reference's N(0, 0.02) initialization, biases at 0
    weights = torch.cat([m.weight.flatten() for m in quarter.modules() if isinstance(m, torch.nn.Conv2d)])
    assert 0.01 < weights.std() < 0.03 and weights.abs().max() <= 0.04


def test_metz_discriminator_normalizes_generated_and_data_halves_apart():
    """batch_groups=2 gives exactly what two calls give (the reference calls D on each batch): BatchNorm statistics
    never mix a generated half with a data half. In eval mode, the running statistics make it one call."""
    torch.manual_seed(0)
    d = _metz(VEEGANDiscriminator, latent_dim=0, base_channels=2)
    fake, real = torch.randn(6, 3, 28, 28) * 0.1, torch.randn(6, 3, 28, 28)
    together = d(torch.cat([fake, real]), batch_groups=2)
    assert torch.allclose(together, torch.cat([d(fake), d(real)]), atol=1e-6)
    assert not torch.allclose(together, d(torch.cat([fake, real])), atol=1e-4)  # one group mixes the statistics
    with pytest.raises(ValueError, match="batch_groups=2"):
        d(torch.randn(5, 3, 28, 28), batch_groups=2)
    d.eval()
    assert torch.allclose(d(torch.cat([fake, real]), batch_groups=2), d(torch.cat([fake, real])))


def test_metz_joint_discriminator_reads_z_and_x_together():
    """The logit is not f(x) + g(z): how much z moves it depends on x, so D can judge whether z fits x."""
    torch.manual_seed(0)
    d = _metz(VEEGANDiscriminator, base_channels=2).eval()
    x, z0, z1 = torch.randn(8, 3, 28, 28), torch.zeros(8, 256), torch.randn(8, 256) * 3
    shift = d(x, z1) - d(x, z0)  # (8,)
    assert shift.std() > 1e-4 * shift.abs().mean()
    with pytest.raises(ValueError, match="pass latents"):
        d(x)
