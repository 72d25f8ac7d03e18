"""The VEEGAN pipeline: round trips, determinism, dtypes, inputs, inversion, interpolation."""

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from tests.conftest import make_pipeline, same_tensors
from veegan_hf import VEEGAN, VEEGANDiscriminator, VEEGANGenerator, VEEGANReconstructor


def _seeded(pipe: VEEGAN, **kwargs) -> torch.Tensor:
    return pipe(batch_size=4, generator=torch.Generator().manual_seed(0), output_type="pt", **kwargs).samples


def test_round_trip_is_bit_exact(family, tmp_path):
    pipe = make_pipeline(family)
    pipe.save_pretrained(tmp_path)
    loaded = VEEGAN.from_pretrained(tmp_path)
    for name in ("generator", "reconstructor", "discriminator"):
        saved, back = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert same_tensors(saved, back), name
        public = [{k: v for k, v in getattr(p, name).config.items() if not k.startswith("_")} for p in (pipe, loaded)]
        assert public[0] == public[1]
    assert torch.equal(_seeded(pipe), _seeded(loaded))
    # a sample image for the card: a grid for images, a scatter for 2-D points, none for 1200-D vectors
    sample_image = {"samples.png"} if family != "mlp-1200d" else set()
    assert {p.name for p in tmp_path.iterdir()} == {
        "model_index.json",
        "README.md",
        "generator",
        "reconstructor",
        "discriminator",
        *sample_image,
    }
    assert (tmp_path / "generator" / "diffusion_pytorch_model.safetensors").is_file()
    # each network also loads on its own, diffusers-style
    for name, cls in (("generator", VEEGANGenerator), ("reconstructor", VEEGANReconstructor)):
        alone, saved = cls.from_pretrained(tmp_path, subfolder=name).state_dict(), getattr(pipe, name).state_dict()
        assert same_tensors(alone, saved), name


def test_discriminator_is_optional(tmp_path):
    pipe = make_pipeline("mlp-2d", discriminator=False)
    pipe.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["discriminator"] == [None, None]
    loaded = VEEGAN.from_pretrained(tmp_path)
    assert loaded.discriminator is None
    assert torch.equal(_seeded(pipe), _seeded(loaded))
    skipped = VEEGAN.from_pretrained(tmp_path, load_discriminator=False)
    assert skipped.discriminator is None


def test_seeded_calls_are_reproducible_and_seeds_differ(family):
    pipe = make_pipeline(family)
    assert torch.equal(_seeded(pipe), _seeded(pipe))
    other = pipe(batch_size=4, generator=torch.Generator().manual_seed(1), output_type="pt").samples
    assert not torch.equal(_seeded(pipe), other)


def test_extra_noise_is_seeded_too():
    pipe = VEEGAN(
        generator=VEEGANGenerator(latent_dim=8, extra_noise_dim=1), reconstructor=VEEGANReconstructor(latent_dim=8)
    )
    assert torch.equal(_seeded(pipe), _seeded(pipe))


def test_bf16_loading(tmp_path):
    pipe = make_pipeline("dcgan-32-3")
    pipe.save_pretrained(tmp_path)
    loaded = VEEGAN.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert loaded.generator.dtype == torch.bfloat16 and loaded.reconstructor.dtype == torch.bfloat16
    out = loaded(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="pt").samples
    assert out.dtype == torch.float32 and out.shape == (2, 3, 32, 32)
    # bf16 keeps ~3 significant digits: the samples match float32 to bf16 precision
    assert (out - _seeded(pipe)[:2]).abs().max() < 0.05
    assert loaded.encode(out).dtype == torch.bfloat16


def test_torch_dtype_is_accepted_as_diffusers_users_type_it_and_fp16_loads_quietly(tmp_path, caplog):
    """`torch_dtype=` works as `dtype=` (a disagreement is refused), and a float16 load prints none of diffusers'
    empty "should be kept in float32: []" warnings."""
    make_pipeline("dcgan-28-1").save_pretrained(tmp_path)
    with caplog.at_level("WARNING"):
        loaded = VEEGAN.from_pretrained(tmp_path, torch_dtype=torch.float16)
    assert loaded.generator.dtype == torch.float16 and loaded.reconstructor.dtype == torch.float16
    assert not [r for r in caplog.records if "float32" in r.getMessage()]
    with pytest.raises(ValueError, match="disagree; pass dtype= alone"):
        VEEGAN.from_pretrained(tmp_path, dtype=torch.bfloat16, torch_dtype=torch.float16)


def test_output_types_for_images():
    pipe = make_pipeline("dcgan-28-1")
    gen = torch.Generator().manual_seed(0)
    pil = pipe(batch_size=2, generator=gen).images
    assert isinstance(pil[0], PIL.Image.Image) and pil[0].size == (28, 28) and pil[0].mode == "L"
    arr = pipe(batch_size=2, output_type="np").samples
    assert arr.shape == (2, 28, 28, 1) and arr.min() >= 0 and arr.max() <= 1
    pt = pipe(batch_size=2, output_type="pt").samples
    assert pt.shape == (2, 1, 28, 28)
    samples, latents = pipe(batch_size=2, return_dict=False)
    assert len(samples) == 2 and latents.shape == (2, 8)


def test_vector_models_default_to_tensors_and_reject_pil():
    pipe = make_pipeline("mlp-2d")
    out = pipe(batch_size=2500)
    assert out.samples.shape == (2500, 2) and out.images is None
    assert pipe(batch_size=3, output_type="np").samples.shape == (3, 2)
    with pytest.raises(ValueError, match="output_type='pil' needs an image model"):
        pipe(batch_size=3, output_type="pil")


def test_latents_and_truncation():
    pipe = make_pipeline("mlp-2d")
    z = torch.randn(5, 8)
    assert torch.equal(pipe(latents=z).samples, pipe(latents=z).samples)
    out = pipe(batch_size=200, truncation=0.5, generator=torch.Generator().manual_seed(0))
    assert out.latents.abs().max() <= 0.5
    with pytest.raises(ValueError, match="truncation=-1"):
        pipe(batch_size=2, truncation=-1)


def test_encode_reconstruct_accept_pil_numpy_tensor():
    pipe = make_pipeline("dcgan-32-3")
    pt = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="pt").samples
    arr = pt.permute(0, 2, 3, 1).numpy()
    pil = [PIL.Image.fromarray((a * 255).round().astype(np.uint8)) for a in arr]
    z_pt, z_np, z_pil = pipe.encode(pt), pipe.encode(arr), pipe.encode(pil)
    assert z_pt.shape == (2, 8)
    assert torch.allclose(z_pt, z_np, atol=1e-5)
    assert torch.allclose(z_pt, z_pil, atol=0.05)  # PIL quantizes to uint8
    assert pipe.encode(pt[0]).shape == (1, 8)  # one (C, H, W) image
    # uint8 pixels in [0, 255] are the same images as float pixels in [0, 1]
    as_uint8 = (pt * 255).round().to(torch.uint8)
    torch.testing.assert_close(pipe.encode(as_uint8), pipe.encode(as_uint8.float() / 255))
    assert pipe.reconstruct(pt, output_type="pt").shape == (2, 3, 32, 32)
    assert [image.size for image in pipe.reconstruct(pt)] == [(32, 32)] * 2  # PIL by default, as __call__ and decode
    assert len(pipe.reconstruct(pil, output_type="pil")) == 2


def test_pil_inputs_are_converted_rgba_grayscale_and_resized():
    """Half-transparent red on white is (255, 127, 127); gray 200 becomes RGB (200, 200, 200); both at 32x32."""
    pipe = make_pipeline("dcgan-32-3")
    rgba = PIL.Image.new("RGBA", (100, 60), (255, 0, 0, 128))
    gray = PIL.Image.new("L", (7, 9), 200)
    for image, rgb in ((rgba, (255, 127, 127)), (gray, (200, 200, 200))):
        expected = torch.tensor(rgb, dtype=torch.float32)[:, None, None].expand(1, 3, 32, 32) / 255
        # one uint8 level of compositing rounding at most
        torch.testing.assert_close(pipe.encode([image]), pipe.encode(expected), atol=2e-3, rtol=0)
    assert pipe.encode(gray).shape == (1, 8)  # one PIL image, not a list


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.rand(2, 4, 32, 32), "images must be 3x32x32 images"),
        (torch.rand(2, 3, 28, 28), "got 3x28x28"),
        (torch.rand(2, 3, 32, 32) * 2 - 1, r"in \[0, 1\]"),
        (torch.full((1, 3, 32, 32), float("nan")), r"in \[0, 1\]"),
        (torch.rand(32, 32), r"\(N, C, H, W\)"),
        (np.random.rand(2, 32, 32, 4), r"as numpy must be \(N, 32, 32, 3\) images \(height x width x channels"),
        ("image.png", "images must be PIL images, a numpy array or a tensor"),
        ([], "empty"),
    ],
)
def test_bad_image_inputs_raise_clear_errors(bad, message):
    pipe = make_pipeline("dcgan-32-3")
    with pytest.raises((ValueError, TypeError), match=message):
        pipe.encode(bad)


def test_bad_vector_inputs():
    pipe = make_pipeline("mlp-2d")
    with pytest.raises(ValueError, match=r"shape \(batch, 2\)"):
        pipe.encode(torch.randn(4, 3))
    assert pipe.encode(np.zeros((4, 2), dtype=np.float32)).shape == (4, 8)


def test_invert_improves_on_encode_and_leaves_generator_untouched():
    pipe = make_pipeline("dcgan-28-1")
    target = pipe(batch_size=3, generator=torch.Generator().manual_seed(5), output_type="pt").samples
    before = {k: v.clone() for k, v in pipe.generator.state_dict().items()}

    def mse(z):
        return ((pipe(latents=z, output_type="pt").samples - target) ** 2).mean().item()

    z0 = pipe.encode(target)
    z = pipe.invert(target, num_steps=30)
    assert z.shape == (3, 8)
    assert mse(z) < mse(z0)
    assert all(p.grad is None for p in pipe.generator.parameters())
    assert same_tensors(before, pipe.generator.state_dict())
    assert torch.equal(pipe.invert(target, num_steps=0), z0)


def test_invert_from_given_latents_and_errors():
    pipe = make_pipeline("mlp-2d")
    x = torch.randn(4, 2)
    assert pipe.invert(x, num_steps=3, latents=torch.zeros(4, 8)).shape == (4, 8)
    with pytest.raises(ValueError, match="num_steps=-1"):
        pipe.invert(x, num_steps=-1)
    with pytest.raises(ValueError, match="latents has 2 rows for 4 samples"):
        pipe.invert(x, latents=torch.zeros(2, 8))


def test_interpolate_hits_both_ends_and_slerps_between():
    pipe = make_pipeline("dcgan-28-1")
    z0, z1 = torch.randn(8), torch.randn(1, 8)
    for method in ("slerp", "linear"):
        out = pipe.interpolate(z0, z1, num_steps=6, method=method, output_type="pt")
        assert out.samples.shape == (6, 1, 28, 28)
        assert torch.allclose(out.latents[0], z0, atol=1e-5) and torch.allclose(out.latents[-1], z1[0], atol=1e-5)
        ends = pipe(latents=torch.stack([z0, z1[0]]), output_type="pt").samples
        assert torch.allclose(out.samples[[0, -1]], ends, atol=1e-5)
    assert len(pipe.interpolate(z0, z1).images) == 8
    # two orthogonal codes of norm 3: slerp's midpoint stays on the sphere, the straight line's shrinks by sqrt(2)
    a, b = torch.zeros(8), torch.zeros(8)
    a[0], b[1] = 3.0, 3.0
    mid = {m: pipe.interpolate(a, b, num_steps=3, method=m, output_type="pt").latents[1] for m in ("slerp", "linear")}
    torch.testing.assert_close(mid["slerp"], (a + b) / 2**0.5)
    torch.testing.assert_close(mid["linear"], (a + b) / 2)
    with pytest.raises(ValueError, match="num_steps=1"):
        pipe.interpolate(z0, z1, num_steps=1)
    with pytest.raises(ValueError, match="method='cubic'"):
        pipe.interpolate(z0, z1, method="cubic")


def test_pipeline_call_restores_training_mode():
    pipe = make_pipeline("dcgan-28-1")
    pipe.generator.train()
    pipe(batch_size=2)
    assert pipe.generator.training  # a trainer's module is handed back as it was


def test_mismatched_networks_rejected():
    with pytest.raises(ValueError, match="must agree"):
        VEEGAN(generator=VEEGANGenerator(latent_dim=4), reconstructor=VEEGANReconstructor(latent_dim=5))


def test_design_md_snippet_runs_as_written(tmp_path, monkeypatch, fake_hub):
    """The Public API block of DESIGN.md, with the Hub id served from a local cache and the push replaced."""
    from tests.test_hub import fill_hub_cache

    g = VEEGANGenerator(architecture="mlp", latent_dim=16, data_dim=2)
    g = VEEGANGenerator(architecture="dcgan", latent_dim=100, image_size=64, num_channels=3)
    f = VEEGANReconstructor(architecture="dcgan", latent_dim=100, image_size=64, num_channels=3)
    d = VEEGANDiscriminator(architecture="dcgan", latent_dim=100, image_size=64, num_channels=3)
    pipe = VEEGAN(generator=g, reconstructor=f, discriminator=d)
    pipe.save_pretrained(tmp_path / "out")
    fill_hub_cache(tmp_path / "out", tmp_path / "cache", "org/veegan-celeba", monkeypatch)
    pipe = VEEGAN.from_pretrained("org/veegan-celeba")
    pipe.push_to_hub("org/veegan-celeba")
    assert fake_hub.uploads and fake_hub.uploads[0][0] == "org/veegan-celeba"

    out = pipe(batch_size=16, generator=torch.Generator().manual_seed(0), output_type="pil")
    images = out.images
    assert len(images) == 16
    out = pipe(batch_size=2500, output_type="pt")
    assert out.samples.shape == (2500, 3, 64, 64)
    z = pipe.encode(images)
    x_hat = pipe.reconstruct(images)
    z = pipe.invert(images, num_steps=2)
    frames = pipe.interpolate(z[0], z[1], num_steps=8)
    assert z.shape == (16, 100) and len(x_hat) == 16 and x_hat[0].size == (64, 64) and len(frames.images) == 8


def test_inputs_of_the_other_polarity_warn_and_auto_inverts_them():
    """A digit model makes light strokes on black: a dark-on-white digit warns (naming the way out), "auto" inverts
    only such images, True inverts all, and a wrong value is refused by name."""
    import warnings

    from veegan_hf.data import mnist_split

    pipe = VEEGAN.from_pretrained(Path(__file__).resolve().parents[1] / "spaces" / "veegan-mnist")
    digits = mnist_split("classifier_test")[0][:4].float()[:, None] / 255  # (4, 1, 28, 28) light on dark
    paper = 1 - digits
    assert pipe.sample_brightness < 0.3
    with pytest.warns(UserWarning, match="4 of 4 images look like the negative.*invert_colors='auto'"):
        pipe.encode(paper)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the model's own polarity: no warning
        light = pipe.encode(digits)
        assert torch.allclose(pipe.encode(paper, invert_colors="auto"), light, atol=1e-5)
        assert torch.allclose(pipe.encode(paper, invert_colors=True), light, atol=1e-5)
        mixed = pipe.encode(torch.cat([digits[:2], paper[2:]]), invert_colors="auto")
        assert torch.allclose(mixed, light, atol=1e-5)
        fixed = pipe.reconstruct(paper, output_type="pt", invert_colors="auto")
        assert ((fixed - digits) ** 2).mean() < 0.1 < ((pipe.reconstruct(digits, output_type="pt") - paper) ** 2).mean()
    with pytest.raises(ValueError, match="invert_colors must be True, False or 'auto'"):
        pipe.encode(digits, invert_colors="yes")
