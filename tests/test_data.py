import math
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from veegan_hf.data import (
    MIXTURE_NAMES,
    GaussianMixture,
    StackedMNIST,
    get_mixture,
    load_mnist_digits,
    mnist_pixel_values,
    mnist_split,
)
from veegan_hf.image_processor import ImageTransform
from veegan_hf.training.sources import find_image_column

# c_k of benchmarks/BENCHMARKS.md ("synthetic1200"), the levels of the public PacGAN code, typed in independently
SYNTHETIC1200_LEVELS = [-1.0, -0.5, 0.0, 0.5, -2.0, -2.5, 10.0, 0.25, -13.0, -5.5]


# ---------------------------------------------------------------------------------------------- mixtures


def test_ring_has_eight_distinct_means_at_radius_two():
    ring = get_mixture("ring")
    assert (ring.num_modes, ring.data_dim, ring.std, ring.noise_dim) == (8, 2, 0.02, 2)
    expected = torch.tensor([[2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)] for k in range(8)])
    torch.testing.assert_close(ring.means, expected.float())
    assert torch.cdist(ring.means, ring.means).add(torch.eye(8) * 10).min() > 1.5  # all distinct
    # The last center is at angle 2π·7/8, not back at angle 0 (the linspace bug).
    torch.testing.assert_close(ring.means[7], torch.tensor([math.sqrt(2), -math.sqrt(2)]))


def test_grid_means():
    grid = get_mixture("grid")
    assert (grid.num_modes, grid.data_dim, grid.std, grid.noise_dim) == (25, 2, 0.05, 2)
    expected = {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert {tuple(row) for row in grid.means.int().tolist()} == expected
    assert torch.equal(grid.means, grid.means.round())


def test_synthetic1200_means():
    mixture = get_mixture("synthetic1200")
    assert (mixture.num_modes, mixture.data_dim, mixture.std, mixture.noise_dim) == (10, 1200, 1.0, 700)
    torch.testing.assert_close(mixture.means, torch.tensor(SYNTHETIC1200_LEVELS)[:, None].expand(10, 1200))


def test_unknown_mixture_names_value_and_choices():
    with pytest.raises(ValueError, match=r"'spiral'.*ring.*grid.*synthetic1200"):
        get_mixture("spiral")
    assert MIXTURE_NAMES == ("ring", "grid", "synthetic1200")


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_2d_samples_have_the_right_std_around_their_mode(name):
    mixture = get_mixture(name)
    samples, modes = mixture.sample(4000, generator=torch.Generator().manual_seed(0), return_modes=True)
    assert samples.shape == (4000, 2) and samples.dtype == torch.float32
    assert modes.shape == (4000,) and modes.dtype == torch.int64
    residual = samples - mixture.means[modes]
    assert abs(residual.std().item() / mixture.std - 1) < 0.05
    assert residual.mean(0).abs().max() < 4 * mixture.std / math.sqrt(4000) * 2
    # Equal weights: every mode gets roughly num_samples / num_modes samples.
    counts = torch.bincount(modes, minlength=mixture.num_modes).float()
    assert counts.min() > 0.6 * 4000 / mixture.num_modes


def test_synthetic1200_noise_only_on_the_first_700_coordinates():
    mixture = get_mixture("synthetic1200")
    samples, modes = mixture.sample(300, generator=torch.Generator().manual_seed(1), return_modes=True)
    assert samples.shape == (300, 1200)
    levels = torch.tensor(SYNTHETIC1200_LEVELS)[modes]  # (300,)
    assert torch.equal(samples[:, 700:], levels[:, None].expand(300, 500))  # exactly c_k
    noise = samples[:, :700] - levels[:, None]
    assert abs(noise.std().item() - 1.0) < 0.02
    assert abs(noise.mean().item()) < 0.02


def test_seeded_sampling_is_reproducible_and_device_independent():
    grid = get_mixture("grid")
    first = grid.sample(100, generator=torch.Generator().manual_seed(3), return_modes=True)
    second = grid.sample(100, generator=torch.Generator().manual_seed(3), return_modes=True)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    other = grid.sample(100, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(first[0], other)
    as_double = grid.sample(100, generator=torch.Generator().manual_seed(3), device="cpu", dtype=torch.float64)
    assert as_double.dtype == torch.float64
    assert grid.sample(0).shape == (0, 2)
    with pytest.raises(ValueError, match=r"-1"):
        grid.sample(-1)


def test_mixture_is_frozen():
    ring = get_mixture("ring")
    assert isinstance(ring, GaussianMixture)
    with pytest.raises(AttributeError):
        ring.std = 1.0


# ---------------------------------------------------------------------------------------------- MNIST


def test_load_mnist_digits():
    images, labels = load_mnist_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (5000,) and labels.dtype == torch.int64
    assert torch.equal(torch.bincount(labels), torch.full((10,), 500))
    assert images.max() == 255 and images.min() == 0
    # Digits are white on black: the border is background.
    assert images[:, 0, :].float().mean() < 5
    images[0] = 7  # callers get copies
    assert not torch.equal(load_mnist_digits()[0][0], images[0])


def test_mnist_splits_are_disjoint_stratified_and_deterministic():
    all_images, _ = load_mnist_digits()
    keys = {}
    for split, per_class in [("train", 250), ("classifier_train", 200), ("classifier_test", 50)]:
        images, labels = mnist_split(split)
        assert images.shape == (10 * per_class, 28, 28) and images.dtype == torch.uint8
        assert torch.equal(torch.bincount(labels, minlength=10), torch.full((10,), per_class))
        keys[split] = {image.numpy().tobytes() for image in images}
        again, _ = mnist_split(split)
        assert torch.equal(images, again)
    assert not keys["train"] & keys["classifier_test"]
    assert not keys["train"] & keys["classifier_train"]
    assert not keys["classifier_train"] & keys["classifier_test"]
    assert sum(len(k) for k in keys.values()) <= len({image.numpy().tobytes() for image in all_images})
    with pytest.raises(ValueError, match=r"'test'.*classifier_test"):
        mnist_split("test")


def test_mnist_pixel_values_range_and_padding():
    digits = torch.zeros(2, 28, 28, dtype=torch.uint8)
    digits[:, 10:18, 10:18] = 255
    pixel_values = mnist_pixel_values(digits)
    assert pixel_values.shape == (2, 1, 28, 28) and pixel_values.dtype == torch.float32
    assert pixel_values.min() == -1 and pixel_values.max() == 1
    padded = mnist_pixel_values(digits, image_size=32)
    assert padded.shape == (2, 1, 32, 32)
    assert torch.equal(padded[:, :, 2:30, 2:30], pixel_values)
    assert (padded[:, :, :2] == -1).all() and (padded[:, :, :, 30:] == -1).all()
    with pytest.raises(ValueError, match=r"64"):
        mnist_pixel_values(digits, image_size=64)
    with pytest.raises(ValueError, match=r"uint8"):
        mnist_pixel_values(digits.float())


def _labelled_pool():
    # Every digit of label d is filled with the gray level 20·d + 5, so a channel's label can be read back.
    labels = torch.arange(10).repeat_interleave(3)  # (30,)
    images = (20 * labels + 5).to(torch.uint8)[:, None, None].expand(30, 28, 28).contiguous()
    return images, labels


def test_stacked_mnist_modes_match_the_channel_digits():
    dataset = StackedMNIST(*_labelled_pool())
    pixel_values, modes = dataset.sample(500, generator=torch.Generator().manual_seed(0))
    assert pixel_values.shape == (500, 3, 28, 28) and pixel_values.dtype == torch.float32
    assert modes.shape == (500,) and modes.dtype == torch.int64
    gray = ((pixel_values[:, :, 14, 14] + 1) * 127.5).round()  # (500, 3)
    digits = ((gray - 5) / 20).round().long()
    assert torch.equal(modes, 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2])
    assert (pixel_values.amin(dim=(2, 3)) == pixel_values.amax(dim=(2, 3))).all()  # whole channel is one digit
    assert len(modes.unique()) > 300  # channels drawn independently


def test_stacked_mnist_padding_and_histogram():
    dataset = StackedMNIST(*_labelled_pool())
    padded, modes = dataset.sample(8, generator=torch.Generator().manual_seed(1), image_size=32)
    assert padded.shape == (8, 3, 32, 32)
    assert (padded[:, :, 0] == -1).all() and (padded[:, :, :, 31] == -1).all()
    histogram = dataset.mode_histogram(8, generator=torch.Generator().manual_seed(1))
    assert histogram.shape == (1000,) and histogram.sum() == 8
    assert torch.equal(histogram, torch.bincount(modes, minlength=1000))  # same draws as sample()


def test_stacked_mnist_from_split_and_validation():
    dataset = StackedMNIST.from_split("train")
    assert len(dataset) == 2500
    histogram = dataset.mode_histogram(20000, generator=torch.Generator().manual_seed(0))
    assert (histogram > 0).sum() > 990
    with pytest.raises(ValueError, match=r"0..9"):
        StackedMNIST(torch.zeros(2, 28, 28, dtype=torch.uint8), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        StackedMNIST(torch.zeros(2, 32, 32, dtype=torch.uint8), torch.tensor([0, 1]))


# ---------------------------------------------------------------------------------------------- transforms


def _check_output(pixel_values, num_channels, resolution):
    assert pixel_values.shape == (num_channels, resolution, resolution)
    assert pixel_values.dtype == torch.float32
    assert pixel_values.min() >= -1 and pixel_values.max() <= 1


def test_transform_rgba_is_composited_onto_white():
    image = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # fully transparent red
    image.paste((0, 0, 255, 255), (0, 0, 40, 15))  # opaque blue top half
    pixel_values = ImageTransform(16, 3)(image)
    _check_output(pixel_values, 3, 16)
    torch.testing.assert_close(pixel_values[:, -1, 8], torch.tensor([1.0, 1.0, 1.0]))  # white, not red
    torch.testing.assert_close(pixel_values[:, 0, 8], torch.tensor([-1.0, -1.0, 1.0]))
    _check_output(ImageTransform(16, 1)(image), 1, 16)


def test_transform_la_and_palette_with_transparency():
    la = Image.new("LA", (20, 20), (0, 0))
    assert (ImageTransform(8, 1)(la) == 1).all()
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    torch.testing.assert_close(ImageTransform(8, 3)(palette)[:, 0, 0], torch.tensor([10, 20, 30]) / 127.5 - 1)
    palette.info["transparency"] = 0
    assert (ImageTransform(8, 3)(palette) == 1).all()


def test_transform_grayscale_is_replicated_and_rgb_becomes_luminance():
    gray = Image.new("L", (10, 10), 51)
    pixel_values = ImageTransform(10, 3)(gray)
    _check_output(pixel_values, 3, 10)
    torch.testing.assert_close(pixel_values, torch.full((3, 10, 10), 51 / 127.5 - 1))
    rgb = Image.new("RGB", (10, 10), (255, 0, 0))
    expected = round(255 * 299 / 1000) / 127.5 - 1  # ITU-R 601-2 luma of pure red
    torch.testing.assert_close(ImageTransform(10, 1)(rgb), torch.full((1, 10, 10), expected))


def test_transform_16_bit_is_scaled_not_clipped():
    image = Image.new("I;16", (12, 12), 32896)  # 128 · 257
    torch.testing.assert_close(ImageTransform(12, 1)(image), torch.full((1, 12, 12), 128 / 127.5 - 1))
    image = Image.new("I", (12, 12), 65535)
    assert (ImageTransform(12, 3)(image) == 1).all()


def test_transform_other_modes():
    for image in [
        Image.new("1", (9, 9), 1),
        Image.new("CMYK", (9, 9), (0, 0, 0, 0)),
        Image.new("F", (9, 9), 1.0),
    ]:
        pixel_values = ImageTransform(9, 3)(image)
        _check_output(pixel_values, 3, 9)
        assert (pixel_values == 1).all(), image.mode


def test_transform_tiny_and_huge_images():
    tiny = Image.fromarray(np.arange(35, dtype=np.uint8).reshape(7, 5) * 7)  # 5 wide, 7 high
    _check_output(ImageTransform(32, 1)(tiny), 1, 32)
    huge = Image.new("RGB", (2000, 1500), (10, 200, 30))
    pixel_values = ImageTransform(64, 3)(huge)
    _check_output(pixel_values, 3, 64)
    torch.testing.assert_close(pixel_values[:, 5, 5], torch.tensor([10, 200, 30]) / 127.5 - 1, atol=0.02, rtol=0)


def test_transform_center_and_random_crop():
    array = np.zeros((10, 30), dtype=np.uint8)  # wide image: the crop keeps a 10x10 square
    array[:, 10:20] = 255
    assert (ImageTransform(10, 1)(array) == 1).all()  # the center is the white band
    torch.manual_seed(0)
    crops = {ImageTransform(10, 1, center_crop=False)(array).mean().item() for _ in range(30)}
    assert len(crops) > 3


def test_transform_random_flip_uses_the_global_rng():
    array = np.zeros((8, 8), dtype=np.uint8)
    array[:, :4] = 255  # white left half
    transform = ImageTransform(8, 1, random_flip=True)
    torch.manual_seed(0)
    lefts = [transform(array)[0, 0, 0].item() for _ in range(40)]
    assert set(lefts) == {-1.0, 1.0}
    torch.manual_seed(0)
    assert [transform(array)[0, 0, 0].item() for _ in range(40)] == lefts
    assert (ImageTransform(8, 1)(array)[0, :, 0] == 1).all()  # no flip by default


def test_transform_numpy_inputs():
    transform = ImageTransform(6, 3)
    torch.testing.assert_close(transform(np.full((6, 6), 255, dtype=np.uint8)), torch.ones(3, 6, 6))
    torch.testing.assert_close(transform(np.full((6, 6, 3), 0.0, dtype=np.float32)), -torch.ones(3, 6, 6))
    torch.testing.assert_close(transform(np.full((6, 6, 1), 1.0)), torch.ones(3, 6, 6))  # [0, 1] float
    torch.testing.assert_close(transform(np.full((6, 6), -1.0)), -torch.ones(3, 6, 6))  # [-1, 1] float
    torch.testing.assert_close(transform(np.full((6, 6), 255.0)), torch.ones(3, 6, 6))  # 0..255 float
    torch.testing.assert_close(transform(np.full((6, 6), 65535, dtype=np.uint16)), torch.ones(3, 6, 6))
    rgba = np.zeros((6, 6, 4), dtype=np.uint8)  # transparent -> white
    torch.testing.assert_close(transform(rgba), torch.ones(3, 6, 6))


def test_transform_errors_name_the_input():
    transform = ImageTransform(8, 3)
    with pytest.raises(ValueError, match=r"PIL.Image.Image or a numpy array.*list"):
        transform([[0, 1]])
    with pytest.raises(ValueError, match=r"\(4, 4, 5\)"):
        transform(np.zeros((4, 4, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"int64"):
        transform(np.zeros((4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[-3, 7\]"):
        transform(np.array([[-3.0, 7.0]]))
    with pytest.raises(ValueError, match=r"NaN"):
        transform(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match=r"num_channels.*2"):
        ImageTransform(8, 2)
    with pytest.raises(ValueError, match=r"resolution.*0"):
        ImageTransform(0, 3)


def test_transform_pickles():
    transform = pickle.loads(pickle.dumps(ImageTransform(8, 1, center_crop=False, random_flip=True)))
    assert (transform.resolution, transform.num_channels, transform.center_crop, transform.random_flip) == (
        8,
        1,
        False,
        True,
    )
    _check_output(transform(Image.new("RGB", (20, 12))), 1, 8)


# ---------------------------------------------------------------------------------------------- columns


def test_find_image_column():
    import datasets

    assert find_image_column(["label", "img"]) == "img"
    assert find_image_column(["label", "Image"]) == "Image"
    assert find_image_column(["img", "image"]) == "image"  # candidate order decides
    features = datasets.Features({"label": datasets.Value("int64"), "face": datasets.Image()})
    assert find_image_column(["label", "face"], features=features) == "face"
    assert find_image_column(["label", "face"], requested="label") == "label"
    with pytest.raises(ValueError, match=r"'pic'.*\['label', 'face'\]"):
        find_image_column(["label", "face"], requested="pic")
    with pytest.raises(ValueError, match=r"no image column found in columns \['label', 'text'\]; pass --image_column"):
        find_image_column(["label", "text"])
