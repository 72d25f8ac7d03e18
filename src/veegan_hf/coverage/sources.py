"""The real data a coverage report audits, and the disjoint real data it scores as if generated (the data row).

| `dataset` | audited real data | data row | modes |
|---|---|---|---|
| `"mnist"` | the 2,500 `train` digits the GANs train on | the 2,500 other digits | the digit labels |
| `"stacked_mnist"` | 5,000 triples of `train` digits | 5,000 triples of the other digits | the three labels |
| `"ring"`, `"grid"`, `"synthetic1200"` | 2,500 draws | 2,500 other draws | the component |
| a Hub id, an imagefolder, parquet or `save_to_disk` data | a seeded half | the other half | its `label`, if any |
| `(images, labels)` tensors, `images` in [-1, 1] | a seeded half | the other half | `labels`, if given |

The data row of the digits uses the classifier's own training digits (`classifier_train`, `classifier_test`), which
the feature network has seen; on the classifier's features it may look a little tighter than unseen digits would.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import BUILTIN_DATASETS, StackedMNIST, get_mixture, mnist_pixel_values, mnist_split
from ..image_processor import ImageTransform

DEFAULT_NUM_REAL = 2500  # per side for user datasets: the N x M distances stay seconds on a CPU
NUM_STACKED_AUDITED = 5000  # about 5 real triples per mode; more makes the N x M distances slow on a CPU
LABEL_COLUMN = "label"


@dataclass
class AuditData:
    """Real samples in the model's space ([-1, 1] images or raw vectors), their labels, and the data row.

    Attributes:
        name (`str`): what the report calls the data.
        real (`torch.Tensor`): the audited real samples, `(N, ...)`.
        real_labels (`torch.Tensor`, *optional*): int64 `(N,)` modes of the real samples.
        baseline (`torch.Tensor`): disjoint real samples, scored as if generated.
        baseline_labels (`torch.Tensor`, *optional*): their modes.
        labeller (`str`): how generated samples get a mode: `"digits"`, `"stacked"`, `"mixture"` or `"none"`.
        num_modes (`int`, *optional*): the number of modes.
        builtin (`str`, *optional*): the built-in dataset's name, whose evaluation protocol the mode metrics follow.
    """

    name: str
    real: torch.Tensor
    real_labels: torch.Tensor | None
    baseline: torch.Tensor
    baseline_labels: torch.Tensor | None
    labeller: str
    num_modes: int | None
    builtin: str | None = None


def _split_half(samples: torch.Tensor, labels: torch.Tensor | None, seed: int) -> tuple:
    order = torch.randperm(samples.shape[0], generator=torch.Generator().manual_seed(seed))
    half = samples.shape[0] // 2
    audited, baseline = order[:half], order[half:]
    pick = lambda t, idx: None if t is None else t[idx]  # noqa: E731
    return samples[audited], pick(labels, audited), samples[baseline], pick(labels, baseline)


def _digits(images: torch.Tensor, size: int) -> torch.Tensor:
    return mnist_pixel_values(images, size)  # (N, 1, size, size) in [-1, 1]


def builtin_data(name: str, pipe_shape: tuple[int, ...], seed: int, num_real: int | None) -> AuditData:
    """A built-in dataset at the model's resolution."""
    spec = BUILTIN_DATASETS[name]
    if spec.kind == "mixture":
        mixture = get_mixture(name)
        count = num_real or spec.num_eval_samples
        real, real_labels = mixture.sample(count, torch.Generator().manual_seed(seed), return_modes=True)
        base, base_labels = mixture.sample(count, torch.Generator().manual_seed(seed + 1), return_modes=True)
        return AuditData(name, real, real_labels, base, base_labels, "mixture", spec.num_modes, name)
    size = pipe_shape[-1]
    if size not in spec.resolutions:
        raise ValueError(f"{name} comes at {spec.resolutions} px; this model makes {size} px images.")
    held_out = [mnist_split(split) for split in ("classifier_train", "classifier_test")]
    held_images, held_labels = torch.cat([h[0] for h in held_out]), torch.cat([h[1] for h in held_out])
    if name == "mnist":
        images, labels = mnist_split("train")
        real, real_labels = _digits(images, size), labels
        base, base_labels = _digits(held_images, size), held_labels
        if num_real is not None:  # a seeded subset: the offline digits are stored sorted by label
            generator = torch.Generator().manual_seed(seed)
            pick = torch.randperm(len(real), generator=generator)[:num_real]
            real, real_labels = real[pick], real_labels[pick]
        pick = torch.randperm(len(base), generator=torch.Generator().manual_seed(seed + 1))[: len(real)]
        return AuditData(name, real, real_labels, base[pick], base_labels[pick], "digits", 10, name)
    count = num_real or NUM_STACKED_AUDITED
    real, real_labels = StackedMNIST.from_split("train").sample(count, torch.Generator().manual_seed(seed), size)
    held = StackedMNIST(held_images, held_labels)
    base, base_labels = held.sample(count, torch.Generator().manual_seed(seed + 1), size)
    return AuditData(name, real, real_labels, base, base_labels, "stacked", spec.num_modes, name)


def tensor_data(images: torch.Tensor, labels: torch.Tensor | None, seed: int, name: str) -> AuditData:
    """User tensors in the model's space: a seeded half is audited, the other half is the data row."""
    if not isinstance(images, torch.Tensor) or images.ndim < 2 or images.shape[0] < 4:
        raise ValueError(
            "dataset tensors must be (N, ...) samples in the model's space with N >= 4, got "
            f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}."
        )
    if labels is not None and (labels.shape != (images.shape[0],) or labels.is_floating_point()):
        raise ValueError(f"labels must be (N,) integers for N = {images.shape[0]} samples, got {tuple(labels.shape)}.")
    real, real_labels, base, base_labels = _split_half(images.float(), labels, seed)
    num_modes = int(labels.max()) + 1 if labels is not None else None
    return AuditData(name, real, real_labels, base, base_labels, "none", num_modes)


def image_dataset(
    source: Any, resolution: int, num_channels: int, seed: int, num_real: int | None, image_column: str | None
) -> AuditData:
    """A Hub id, a local folder or file, or a `datasets.Dataset`: images decoded and resized once, halves split."""
    import datasets

    from ..training.config import ConfigError, TrainingConfig
    from ..training.sources import _as_image_column, _decode, find_image_column, load_image_dataset

    if isinstance(source, datasets.Dataset):
        dataset, name = source, "a datasets.Dataset"
    else:
        if not isinstance(source, (str, Path)):
            raise TypeError(
                f"dataset must be a name, a path, a datasets.Dataset or tensors, got {type(source).__name__}."
            )
        name = str(source)
        path = Path(name)
        if not path.exists() and (name.count("/") != 1 or name.startswith((".", "/", "~"))):
            raise ValueError(
                f"dataset={name!r} is not a built-in dataset {tuple(BUILTIN_DATASETS)}, not an existing local folder "
                "or file, and not a Hub id of the form 'org/name'."
            )
        local = path.is_dir() and not any(path.rglob("*.parquet"))
        config = TrainingConfig(dataset_name=name, train_data_dir=name if local else None)
        try:
            dataset = load_image_dataset(config)
        except ConfigError as err:  # worded for the training flags: name this function's argument instead
            raise ValueError(str(err).replace("--dataset_name", "dataset")) from None
    try:
        column = find_image_column(dataset.column_names, dataset.features, image_column)
    except ConfigError as err:
        raise ValueError(str(err).replace("--image_column", "image_column")) from None
    if num_real is not None:  # the audited half and the data row: twice num_real images
        dataset = dataset.shuffle(seed=seed).select(range(min(len(dataset), 2 * num_real)))
    has_labels = LABEL_COLUMN in dataset.column_names and isinstance(
        dataset.features[LABEL_COLUMN], datasets.ClassLabel
    )
    transform = ImageTransform(resolution, num_channels)
    cells = _as_image_column(dataset, column)
    images = torch.stack([transform(_decode(row[column], skip=False)) for row in cells])  # (N, C, H, W)
    labels = torch.tensor(dataset[LABEL_COLUMN]) if has_labels else None
    data = tensor_data(images, labels, seed, name)
    if has_labels:
        data.num_modes = dataset.features[LABEL_COLUMN].num_classes
    return data


def resolve_audit_data(dataset: Any, pipe: Any, seed: int, num_real: int | None, image_column: str | None) -> AuditData:
    shape = pipe.generator.sample_shape
    if isinstance(dataset, str) and dataset in BUILTIN_DATASETS:
        return builtin_data(dataset, shape, seed, num_real)
    if isinstance(dataset, torch.Tensor):
        return tensor_data(dataset, None, seed, "tensors")
    if isinstance(dataset, tuple) and len(dataset) == 2 and isinstance(dataset[0], torch.Tensor):
        return tensor_data(dataset[0], dataset[1], seed, "tensors")
    if not pipe.is_image_model:
        raise ValueError(f"dataset={dataset!r}: a vector model is audited on a built-in mixture or on tensors.")
    return image_dataset(dataset, shape[-1], shape[0], seed, num_real or DEFAULT_NUM_REAL, image_column)
