"""The Space test modules' shared setup: the app loaded as `python spaces/app.py` loads it, a small digit model saved
as the Space finds it, one server per module and its client, and the helpers that read its errors."""

import importlib.util
import os
import sys
from pathlib import Path

import PIL.Image
import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError

from veegan_hf import VEEGAN, VEEGANGenerator, VEEGANReconstructor

REPO = Path(__file__).resolve().parents[1]
APP_PATH = REPO / "spaces" / "app.py"
ARTIFACTS = Path(os.environ.get("VEEGAN_ARTIFACTS_DIR", REPO / "tests" / "artifacts"))
CHROMIUM = os.environ.get("VEEGAN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MNIST_LIKE = dict(architecture="dcgan", latent_dim=32, image_size=28, num_channels=1, base_channels=16)


def _load_app():
    if str(APP_PATH.parent) not in sys.path:  # app.py imports handlers.py beside it, as `python spaces/app.py` does
        sys.path.insert(0, str(APP_PATH.parent))
    spec = importlib.util.spec_from_file_location("veegan_space_app", APP_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


app = _load_app()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A small 28x28 grayscale DCGAN VEEGAN saved as the Space would find it (the committed model's shape)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("veegan-mnist")
    VEEGAN(generator=VEEGANGenerator(**MNIST_LIKE), reconstructor=VEEGANReconstructor(**MNIST_LIKE)).save_pretrained(
        folder
    )
    return folder


@pytest.fixture(scope="module")
def server(model_dir):
    """The Space launched once for the module, loaded through MODEL_ID as a deployer would; yields (url, demo)."""
    previous = os.environ.get("MODEL_ID")
    os.environ["MODEL_ID"] = str(model_dir)
    try:
        pipe = app.load_pipeline()
    finally:
        if previous is None:
            os.environ.pop("MODEL_ID")
        else:
            os.environ["MODEL_ID"] = previous
    # inversions in a worker process, as `python spaces/app.py` runs them: every /invert test goes through the pool
    demo = app.build_demo(pipe, model_name="test-mnist", inversion_workers=1)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **app.launch_options())
    yield url, demo
    demo.close()
    demo.veegan_inversion_pool.close()


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server[0], verbose=False)


def _png(tmp_path: Path, name: str, image: PIL.Image.Image) -> str:
    path = tmp_path / name
    image.save(path)
    return str(path)


def _error_of(client: Client, *args, api_name: str) -> str:
    with pytest.raises(AppError) as excinfo:
        client.predict(*args, api_name=api_name)
    return str(excinfo.value)
