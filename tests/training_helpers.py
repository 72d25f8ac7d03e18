"""What the training tests share: the tiny networks' flags, an in-process run, and a run's weights."""

import os
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from safetensors.torch import load_file

from veegan_hf import train as train_module
from veegan_hf.loading import WEIGHTS_NAME

REPO = Path(__file__).resolve().parents[1]
TRAIN = str(REPO / "training" / "train.py")
TINY = [
    "--train_batch_size",
    "64",
    "--hidden_dim",
    "32",
    "--discriminator_hidden_dim",
    "32",
    "--latent_dim",
    "4",
    "--report_to",
    "none",
    "--logging_steps",
    "5",
]


def run(*args: str) -> int:
    return train_module.main([*TINY, *args])


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return {
        f"{net}.{k}": v
        for net in ("generator", "reconstructor", "discriminator")
        for k, v in load_file(folder / net / WEIGHTS_NAME).items()
    }


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}
    return env


def write_images(folder: Path, count: int) -> None:
    """Mixed modes on purpose: RGBA, grayscale and RGB of odd sizes."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        mode, size = [("RGBA", (40, 30)), ("L", (20, 20)), ("RGB", (64, 48))][i % 3]
        channels = {"RGBA": 4, "L": 1, "RGB": 3}[mode]
        arr = rng.integers(0, 255, (size[1], size[0], channels), dtype=np.uint8)
        PIL.Image.fromarray(arr[..., 0] if channels == 1 else arr, mode).save(folder / f"{i}.png")
