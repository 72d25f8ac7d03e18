"""Where training batches come from: built-in data made on the device, or a Hugging Face image dataset.

`resolve_data(config)` fills the data-dependent options (architecture, resolution, channels, image column) into a new
config; `build_source` then yields `(batch, *sample_shape)` tensors on the training device, forever. Built-in data is
generated or gathered on the device in whole batches (no per-item Python work), from each rank's own random stream or
shard; Hub and local image data goes through a DataLoader that Accelerate shards.
"""

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..data import BUILTIN_DATASETS, get_mixture, mnist_pixel_values, mnist_split
from ..image_processor import ImageTransform
from ..layers import IMAGE_SIZES
from .config import ConfigError, TrainingConfig

# Column names tried, in this order, when a dataset has no `datasets.Image` feature.
IMAGE_COLUMN_CANDIDATES = ("image", "img", "images", "pixel_values", "picture", "photo")
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
NUM_PROBED_IMAGES = 16  # images opened to learn the channel count and to catch a corrupt folder early
DEFAULT_RESOLUTION = 64  # anything else is resized and center-cropped to 64 px


def find_image_column(column_names: list[str], features: Any | None = None, requested: str | None = None) -> str:
    r"""
    Picks the column of a Hugging Face dataset that holds the images.

    Args:
        column_names (`list[str]`): the dataset's columns, e.g. `dataset.column_names`.
        features (`datasets.Features`, *optional*): when given, the first column whose feature is `datasets.Image` wins.
        requested (`str`, *optional*): the column the user asked for (`--image_column`); it must exist.

    Returns:
        `str`: the column name.
    """
    column_names = list(column_names)
    if requested is not None:
        if requested not in column_names:
            raise ConfigError(
                f"--image_column {requested!r} is not a column of the dataset; available columns: {column_names}."
            )
        return requested
    if features is not None:
        import datasets

        for name in column_names:
            if isinstance(features.get(name), datasets.Image):
                return name
    lowered = {name.lower(): name for name in reversed(column_names)}  # first spelling wins on case clashes
    for candidate in IMAGE_COLUMN_CANDIDATES:
        if candidate in lowered:
            return lowered[candidate]
    raise ConfigError(f"no image column found in columns {column_names}; pass --image_column NAME.")


def load_image_dataset(config: TrainingConfig):
    """Hub id, or a local imagefolder / parquet / save_to_disk folder -> a `datasets.Dataset` (the train split)."""
    import datasets

    name = config.data_source
    path = Path(name)
    try:
        if path.exists():
            if any((path / marker).is_file() for marker in ("dataset_info.json", "state.json", "dataset_dict.json")):
                dataset = datasets.load_from_disk(str(path))
            elif path.suffix == ".parquet" or any(path.rglob("*.parquet")):
                files = [str(path)] if path.is_file() else sorted(str(p) for p in path.rglob("*.parquet"))
                dataset = datasets.load_dataset("parquet", data_files=files, cache_dir=config.cache_dir)
            else:
                dataset = datasets.load_dataset("imagefolder", data_dir=str(path), cache_dir=config.cache_dir)
        else:
            dataset = datasets.load_dataset(name, config.dataset_config_name, cache_dir=config.cache_dir)
    except FileNotFoundError as err:
        flag = "--train_data_dir" if config.train_data_dir else "--dataset_name"
        if path.is_dir():
            raise ConfigError(f"{flag} {name!r} holds no images datasets can read ({err}).") from None
        raise ConfigError(f"{flag} {name!r}: no such local folder or file, and not found on the Hub ({err}).") from None
    except Exception as err:  # datasets raises many types (ConnectionError, DatasetNotFoundError, ValueError ...)
        flag = "--train_data_dir" if config.train_data_dir else "--dataset_name"
        raise ConfigError(
            f"{flag} {name!r} could not be loaded: {type(err).__name__}: {err}. Built-in offline datasets: "
            f"{tuple(BUILTIN_DATASETS)}."
        ) from None
    if isinstance(dataset, datasets.DatasetDict):
        split = "train" if "train" in dataset else next(iter(dataset))
        dataset = dataset[split]
    return dataset


def _as_image_column(dataset, column: str):
    """Image cells left undecoded ({"bytes", "path"}), so that a corrupt file is reported by name, not mid-batch."""
    import datasets

    feature = dataset.features.get(column)
    return dataset.cast_column(column, datasets.Image(decode=not isinstance(feature, datasets.Image)))


def _decode(cell: Any, skip: bool):
    """One cell as a PIL image (or the array it holds); a file that does not decode is a ConfigError naming it,
    or None with `skip`."""
    import io

    import PIL.Image

    if not isinstance(cell, dict):  # decoded by `datasets` (a column cast to Image from arrays)
        return cell
    where = cell.get("path") or "an in-memory image"
    try:
        image = PIL.Image.open(io.BytesIO(cell["bytes"]) if cell.get("bytes") else cell["path"])
        image.load()
        return image
    except (OSError, ValueError, SyntaxError) as err:  # PIL's UnidentifiedImageError is an OSError
        if skip:
            return None
        raise ConfigError(
            f"image {where} cannot be decoded ({type(err).__name__}: {err}); remove it, or pass "
            "--skip_corrupt_images to skip and count such images."
        ) from None


def _probe_images(dataset, column: str, config: TrainingConfig) -> tuple[str, int]:
    """Opens the first images: the mode they share decides the channels, and a square size they share that the
    networks support (`layers.IMAGE_SIZES`) is the resolution (64 otherwise); a corrupt one is reported by name."""
    probe = _as_image_column(dataset.select(range(min(NUM_PROBED_IMAGES, len(dataset)))), column)
    images = [image for row in probe if (image := _decode(row[column], config.skip_corrupt_images)) is not None]
    if not images:
        raise ConfigError(f"none of the first {len(probe)} images of {config.data_source!r} could be decoded.")
    modes = [getattr(image, "mode", "RGB") for image in images]
    sizes = {getattr(image, "size", None) for image in images}
    side = next(iter(sizes))[0] if len(sizes) == 1 and next(iter(sizes)) is not None else None
    native = side if side in IMAGE_SIZES and next(iter(sizes))[1] == side else DEFAULT_RESOLUTION
    return ("gray" if all(m in GRAY_MODES for m in modes) else "color"), native


def resolve_data(config: TrainingConfig) -> tuple[TrainingConfig, Any]:
    """A new config with the data-dependent options filled in, and the loaded dataset (None for built-in data)."""
    spec = config.builtin_spec
    if spec is not None and spec.kind == "mixture":
        return dataclasses.replace(config, architecture="mlp"), None
    if spec is not None:  # the digits
        resolution, channels = config.resolution or spec.resolutions[0], spec.num_channels
        resolved = dataclasses.replace(
            config, architecture=config.architecture or "dcgan", resolution=resolution, num_channels=channels
        )
        return resolved, None
    dataset = load_image_dataset(config)
    if len(dataset) == 0:
        raise ConfigError(f"dataset {config.data_source!r} has no rows.")
    column = find_image_column(dataset.column_names, dataset.features, config.image_column)
    kind, native = _probe_images(dataset, column, config)
    channels = config.num_channels or (1 if kind == "gray" else 3)
    resolved = dataclasses.replace(
        config,
        architecture=config.architecture or "dcgan",
        resolution=config.resolution or native,
        num_channels=channels,
        image_column=column,
    )
    if len(dataset) < config.train_batch_size:
        raise ConfigError(
            f"dataset has {len(dataset)} images, fewer than --train_batch_size {config.train_batch_size}."
        )
    return resolved, dataset


class BatchSource:
    """Yields `(batch, *sample_shape)` tensors on the training device, forever."""

    sample_shape: tuple[int, ...]
    dataloader: torch.utils.data.DataLoader | None = None
    skipped_images = 0
    num_images: int | None = None  # the training images (all ranks); None: fresh draws every step (the mixtures)

    def batches(self, device: torch.device, start_step: int) -> Iterator[torch.Tensor]:
        raise NotImplementedError


class MixtureSource(BatchSource):
    """Fresh mixture samples each step from the global RNG (seeded per rank, and saved in checkpoints)."""

    def __init__(self, name: str, batch_size: int):
        self.mixture, self.batch_size = get_mixture(name), batch_size
        self.sample_shape = (self.mixture.data_dim,)

    def batches(self, device, start_step):
        while True:
            yield self.mixture.sample(self.batch_size, device=device)  # (batch, data_dim), drawn on the device


class DigitSource(BatchSource):
    """MNIST digits (`mnist`) or freshly stacked triples (`stacked_mnist`) from this rank's shard of the digit pool."""

    def __init__(self, name: str, batch_size: int, resolution: int, rank: int, world_size: int):
        images, labels = mnist_split("train")
        # disjoint shards: rank r owns digits r, r + world_size, ...
        self.num_images = len(images)  # the digit pool; stacked_mnist draws fresh triples from it
        self.images, self.labels = images[rank::world_size], labels[rank::world_size]
        self.channels, self.batch_size, self.resolution = BUILTIN_DATASETS[name].num_channels, batch_size, resolution
        self.sample_shape = (self.channels, resolution, resolution)

    def batches(self, device, start_step):
        pool = mnist_pixel_values(self.images, self.resolution).to(device)  # (N, 1, H, W) in [-1, 1]
        while True:
            index = torch.randint(pool.shape[0], (self.batch_size, self.channels), device=device)
            yield pool[index, 0]  # (batch, channels, H, W): one independent digit per channel


class _Collate:
    """Stacks decoded rows; rows that failed to decode (None) are dropped and counted."""

    def __init__(self):
        self.skipped = 0

    def __call__(self, rows: list[dict]) -> torch.Tensor:
        kept = [r["pixel_values"] for r in rows if r["pixel_values"] is not None]
        self.skipped += len(rows) - len(kept)
        if not kept:
            raise ConfigError("a whole batch of images failed to decode; the dataset is mostly corrupt.")
        return torch.stack(kept)


class DataLoaderSource(BatchSource):
    """A Hugging Face dataset of images (Hub id, imagefolder, parquet or save_to_disk)."""

    def __init__(self, config: TrainingConfig, dataset):
        column, skip = config.image_column, config.skip_corrupt_images
        transform = ImageTransform(config.resolution, config.num_channels, config.center_crop, config.random_flip)

        def to_pixels(examples: dict) -> dict:
            images = [_decode(cell, skip) for cell in examples[column]]
            return {"pixel_values": [None if image is None else transform(image) for image in images]}

        dataset = _as_image_column(dataset, column).with_transform(to_pixels, columns=[column])
        self.collate = _Collate()
        self.dataloader = torch.utils.data.DataLoader(
            dataset,
            batch_size=config.train_batch_size,
            shuffle=True,
            drop_last=True,  # equal batches on every rank keep DDP in step
            num_workers=config.dataloader_num_workers,
            collate_fn=self.collate,
            persistent_workers=config.dataloader_num_workers > 0,
        )
        self.sample_shape = (config.num_channels, config.resolution, config.resolution)
        self.num_images = len(dataset)
        self.accelerator = None  # set by the loop: skipping batches on resume needs it

    @property
    def skipped_images(self) -> int:
        return self.collate.skipped

    def batches(self, device, start_step):
        epoch_length = len(self.dataloader)
        epoch, skip = divmod(start_step, epoch_length)
        while True:
            if hasattr(self.dataloader, "set_epoch"):
                self.dataloader.set_epoch(epoch)
            loader = self.accelerator.skip_first_batches(self.dataloader, skip) if skip else self.dataloader
            yield from loader
            epoch, skip = epoch + 1, 0


def build_source(config: TrainingConfig, dataset, rank: int, world_size: int) -> BatchSource:
    """The batch source of a resolved config (`resolve_data`)."""
    spec = config.builtin_spec
    if spec is not None and spec.kind == "mixture":
        return MixtureSource(config.dataset_name, config.train_batch_size)
    if spec is not None:
        return DigitSource(config.dataset_name, config.train_batch_size, config.resolution, rank, world_size)
    return DataLoaderSource(config, dataset)
