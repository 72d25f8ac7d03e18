"""Test-wide settings: offline Hub, quiet Gradio, one thread per process (CI has 2 cores)."""

import os

# read by huggingface_hub and diffusers at import: must be set before any test module imports them
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from veegan_hf import VEEGAN, VEEGANDiscriminator, VEEGANGenerator, VEEGANReconstructor

torch.set_num_threads(1)

# (family, kwargs) for every supported architecture and size, small enough for a 2-core CPU
FAMILIES = {
    "mlp-2d": dict(architecture="mlp", latent_dim=8, data_dim=2, hidden_dim=32),
    "mlp-1200d": dict(architecture="mlp", latent_dim=16, data_dim=1200, hidden_dim=32),
    "dcgan-28-1": dict(architecture="dcgan", latent_dim=8, image_size=28, num_channels=1, base_channels=8),
    "dcgan-32-3": dict(architecture="dcgan", latent_dim=8, image_size=32, num_channels=3, base_channels=8),
    "dcgan-64-3": dict(architecture="dcgan", latent_dim=8, image_size=64, num_channels=3, base_channels=8),
    "metz-28-3": dict(architecture="metz", latent_dim=8, image_size=28, num_channels=3, base_channels=2),
}


def make_pipeline(family: str, seed: int = 0, discriminator: bool = True, **overrides) -> VEEGAN:
    """A randomly initialized pipeline of one family; `overrides` go to every network."""
    torch.manual_seed(seed)
    kwargs = {**FAMILIES[family], **overrides}
    return VEEGAN(
        generator=VEEGANGenerator(**kwargs),
        reconstructor=VEEGANReconstructor(**kwargs),
        discriminator=VEEGANDiscriminator(**kwargs) if discriminator else None,
    )


@pytest.fixture(params=sorted(FAMILIES))
def family(request) -> str:
    return request.param


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """The same keys, and bit-identical tensors under each: how every test compares weights."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def fresh_accelerate_state():
    """In-process training runs each build their own Accelerator: reset Accelerate's process-wide singletons."""
    reset_accelerate()
    yield
    reset_accelerate()


def reset_accelerate() -> None:
    """Forgets Accelerate's process-wide state, so that the next in-process run may pick another precision."""
    from veegan_hf.training import reset_accelerate_state

    reset_accelerate_state()


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """Replaces the Hub calls of `push_to_hub`: records them and keeps a copy of each uploaded folder.

    Returns a namespace with `create_repo` (list of `(repo_id, kwargs)`), `uploads` (list of `(repo_id, kwargs)`) and
    `folder`, where the last upload was copied before its temporary folder disappeared.
    """
    import shutil
    import types

    import veegan_hf.loading as pipeline_module  # where push_to_hub calls the Hub

    hub = types.SimpleNamespace(create_repo=[], uploads=[], folder=tmp_path / "uploaded")

    def create_repo(repo_id, **kwargs):
        hub.create_repo.append((repo_id, kwargs))
        return types.SimpleNamespace(repo_id=repo_id)

    def upload_folder(*, repo_id, folder_path, **kwargs):
        hub.uploads.append((repo_id, kwargs))
        shutil.copytree(folder_path, hub.folder, dirs_exist_ok=True)
        return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(pipeline_module, "create_repo", create_repo)
    monkeypatch.setattr(pipeline_module, "upload_folder", upload_folder)
    return hub


# the Space's module-scoped fixtures (a saved digit model, its server, a client), for the test_space* modules
from tests.space_fixtures import client, model_dir, server  # noqa: E402, F401
