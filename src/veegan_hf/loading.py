"""Loading a saved VEEGAN pipeline from a local folder or the Hub, with every file checked and every error mapped.

A folder holds `model_index.json`, one subfolder per network (`config.json` + safetensors) and `README.md`. Each file
is checked before anything is built: JSON that does not decode, a component entry of the wrong shape, a config key
that is unknown, missing or of the wrong type, a size beyond the networks' limits, a weights file that is truncated,
of another dtype, non-finite or of another shape. The error names the file, the key or tensor, and the way out.
Weights load from safetensors only; no code is imported from the folder.
"""

import inspect
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import create_repo, snapshot_download, upload_folder
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .hub_retry import with_hub_retries
from .model_card import create_model_card, read_model_card_metadata
from .modeling_veegan import VEEGANDiscriminator, VEEGANGenerator, VEEGANReconstructor
from .plotting import save_samples_image

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
PIPELINE_CLASS = "VEEGAN"
NETWORKS: dict[str, type[nn.Module]] = {
    "generator": VEEGANGenerator,
    "reconstructor": VEEGANReconstructor,
    "discriminator": VEEGANDiscriminator,
}
NETWORK_LIBRARY = "veegan_hf.modeling_veegan"
# config keys added after models were first saved, with the value that reproduces those models
ADDED_CONFIG_KEYS: dict[str, dict[str, Any]] = {
    "VEEGANDiscriminator": {"spectral_norm": False},
    "VEEGANGenerator": {"batch_norm": False},
}
MAX_JSON_BYTES = 1 << 20  # a config is a few hundred bytes; a megabyte is not a config
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def is_regular_file(path: Path, what: str) -> bool:
    """`path.is_file()`, with an I/O error on the lookup itself (EIO from a device link, a dying disk) turned into a
    ValueError that names the file."""
    try:
        return path.is_file()
    except OSError as err:
        raise ValueError(f"{path} cannot be read ({err.strerror or err}); {what}.") from None


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`, or a ValueError that names the file and what is wrong with it."""
    if not is_regular_file(path, what):
        if path.is_symlink() or path.exists():
            raise ValueError(f"{path} is not a regular file (a folder, a device or a broken link); {what}.")
        raise ValueError(f"{path} is missing; {what}.")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)  # a bounded read: never the whole of a huge or endless file
    except OSError as err:  # e.g. a link to a device, a permission, an I/O error on the disk
        raise ValueError(f"{path} cannot be read ({err.strerror or err}); {what}.") from None
    if len(raw) > MAX_JSON_BYTES:
        raise ValueError(f"{path} is over {MAX_JSON_BYTES:,} bytes, not a config ({what}); re-save the model.")
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); re-save the model.") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); re-save the model with save_pretrained.") from None
    except RecursionError:
        raise ValueError(f"{path} nests too deeply to be a config; re-save the model with save_pretrained.") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got a {type(value).__name__}; re-save the model.")
    return value


def read_model_index(folder: Path) -> dict[str, tuple[str, str] | None]:
    """`model_index.json` -> component name -> (library, class), or None for an absent optional component."""
    path = folder / "model_index.json"
    what = f"{folder} is not a VEEGAN pipeline saved by save_pretrained"
    if not is_regular_file(path, what) and is_regular_file(folder / "pipeline" / "model_index.json", what):
        raise ValueError(
            f"{folder} is a training checkpoint (optimizer state and all): its model is in {folder / 'pipeline'}. "
            f"Load VEEGAN.from_pretrained({str(folder / 'pipeline')!r})."
        )
    index = read_json(path, what)
    class_name = index.get("_class_name", PIPELINE_CLASS)
    if class_name != PIPELINE_CLASS:
        raise ValueError(
            f"{path} describes a {class_name!r} pipeline, not {PIPELINE_CLASS!r}; load it with the library it "
            "belongs to."
        )
    components: dict[str, tuple[str, str] | None] = {}
    for name, network_cls in NETWORKS.items():
        entry = index.get(name)
        if entry is None or (isinstance(entry, list) and len(entry) == 2 and entry[1] is None):
            components[name] = None
            continue
        valid = isinstance(entry, list) and len(entry) == 2 and all(isinstance(part, str) for part in entry)
        if not valid:
            raise ValueError(
                f"{path}: {name!r} must be [library, class] such as {[NETWORK_LIBRARY, network_cls.__name__]}, "
                f"got {entry!r}."
            )
        if tuple(entry) != (NETWORK_LIBRARY, network_cls.__name__):
            raise ValueError(
                f"{path} lists {name} as {entry!r}, expected {[NETWORK_LIBRARY, network_cls.__name__]}; this package "
                "loads only its own networks."
            )
        components[name] = (entry[0], entry[1])
    return components


def load_network(cls: type[nn.Module], folder: Path, dtype: torch.dtype | None) -> nn.Module:
    """Builds `cls` from `folder/config.json` and strictly loads `folder/<WEIGHTS_NAME>`; errors name the file."""
    config_path, weights_path = folder / "config.json", folder / WEIGHTS_NAME
    config = read_json(config_path, f"a VEEGAN network folder holds config.json and {WEIGHTS_NAME}")
    if config.get("_class_name", cls.__name__) != cls.__name__:
        raise ValueError(f"{config_path} describes a {config['_class_name']!r}, expected {cls.__name__!r}.")
    config = {**ADDED_CONFIG_KEYS.get(cls.__name__, {}), **config}
    expected = set(inspect.signature(cls.__init__).parameters) - {"self"}
    given = {key for key in config if not key.startswith("_")}
    if given - expected or expected - given:
        raise ValueError(
            f"{config_path} does not match {cls.__name__}: unknown keys {sorted(given - expected)}, missing keys "
            f"{sorted(expected - given)}. Expected exactly {sorted(expected)}; re-save the model with this version."
        )
    try:
        model = cls.from_config(config)
    except (TypeError, ValueError) as err:  # the networks check types and bounds before allocating anything
        raise ValueError(f"{config_path} holds an invalid value: {err}") from None

    if not weights_path.is_file():
        found = sorted(p.name for p in folder.iterdir())
        raise ValueError(f"{weights_path} is missing (found {found}); weights load from safetensors only.")
    try:
        state_dict = load_file(weights_path)
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"{weights_path} is truncated or corrupt ({err}); re-download or re-save it.") from None
    _check_state_dict(model.state_dict(), state_dict, weights_path, config_path)
    model.load_state_dict(state_dict)
    if dtype is not None:
        model.to(dtype)
    return model.eval()


def _check_state_dict(
    reference: dict[str, torch.Tensor], state_dict: dict[str, torch.Tensor], weights_path: Path, config_path: Path
) -> None:
    missing, unexpected = sorted(reference.keys() - state_dict.keys()), sorted(state_dict.keys() - reference.keys())
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs config {tuple(v.shape)}"
        for k, v in reference.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{weights_path} does not fit {config_path}: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"shape mismatches {mismatched[:5]}. The weights and the config come from different models."
        )
    for key, tensor in state_dict.items():
        wanted = reference[key]
        if wanted.is_floating_point() != tensor.is_floating_point() or (
            tensor.is_floating_point() and tensor.dtype not in FLOAT_DTYPES
        ):
            raise ValueError(f"{weights_path}: tensor {key!r} is {tensor.dtype}, expected {wanted.dtype}.")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(
                f"{weights_path}: tensor {key!r} holds NaN or infinite values; the model diverged before it was "
                "saved. Load an earlier checkpoint."
            )


def resolve_folder(
    name_or_path: str | os.PathLike,
    revision: str | None,
    local_files_only: bool | None,
    cache_dir: str | os.PathLike | None,
    token: str | bool | None,
) -> Path:
    """A local pipeline folder, or a Hub id downloaded (or found in the cache) to one."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"pretrained_model_name_or_path must be a folder or a Hub id (str), got {type(name_or_path).__name__}."
        )
    folder = Path(name_or_path)
    if folder.is_dir():
        return folder
    if folder.exists():
        raise ValueError(f"{folder} is a file; pass the folder that holds model_index.json, or a Hub id.")
    text = str(name_or_path)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise ValueError(f"{text!r} is not a local folder, and not a Hub id of the form 'org/name'; check the path.")
    return Path(_download(text, revision, local_files_only, cache_dir, token))


def _download(
    repo_id: str,
    revision: str | None,
    local_files_only: bool | None,
    cache_dir: str | os.PathLike | None,
    token: str | bool | None,
) -> str:
    """Hub id -> local snapshot folder (the cache when offline), with errors that say what to do."""
    try:
        return with_hub_retries(
            lambda: snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=bool(local_files_only),
                token=token,
                # exact paths: fnmatch's "*" also crosses "/", which would pull in checkpoint folders
                allow_patterns=["model_index.json", "README.md"]
                + [f"{name}/{file}" for name in NETWORKS for file in ("config.json", WEIGHTS_NAME)],
            ),
            f"downloading {repo_id!r}",
        )
    except HFValidationError as err:
        raise ValueError(f"{repo_id!r} is not a local folder, and not a valid Hub id: {err}") from None
    except LocalEntryNotFoundError as err:
        raise ValueError(
            f"{repo_id!r} is neither a local folder nor in the Hugging Face cache, and the Hub cannot be reached "
            "(offline mode or no network). Pass a local folder, or download it once with network access."
        ) from err
    except RevisionNotFoundError as err:
        raise ValueError(
            f"{repo_id!r} has no revision {revision!r} on the Hub (pass a branch, tag or commit)."
        ) from err
    except GatedRepoError as err:  # before RepositoryNotFoundError, its parent class
        raise ValueError(f"{repo_id!r} is gated: accept its conditions on the Hub, then pass token=.") from err
    except (RepositoryNotFoundError, EntryNotFoundError) as err:
        raise ValueError(f"{repo_id!r} was not found on the Hub (or is private: pass token=).") from err
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        raise ValueError(f"the Hub refused {repo_id!r} (HTTP {status}): check token= or your login. {err}") from err


class PretrainedIO:
    """`from_pretrained`, `save_pretrained` and `push_to_hub` of the `VEEGAN` pipeline, which mixes this class in."""

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        dtype: torch.dtype | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        token: str | bool | None = None,
        load_discriminator: bool = True,
        torch_dtype: torch.dtype | None = None,
    ) -> "PretrainedIO":
        r"""
        Loads a pipeline saved by `save_pretrained`, from a local folder or a Hub repository.

        Weights are read from safetensors only, and every file is checked (`loading.py`): undecodable JSON, a config
        key that is unknown, missing, mistyped or out of bounds, a truncated, mistyped or non-finite weights file, or
        a shape mismatch raises a `ValueError` that names the file and the key.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): a local folder or a Hub id such as
                `"org/veegan-celeba"`.
            dtype (`torch.dtype`, *optional*): cast the networks to this dtype, e.g. `torch.bfloat16`.
            revision (`str`, *optional*): branch, tag or commit of a Hub repository.
            local_files_only (`bool`, *optional*): only use the local Hub cache (also implied by `HF_HUB_OFFLINE=1`).
            cache_dir (`str` or `os.PathLike`, *optional*): Hub cache folder.
            token (`str` or `bool`, *optional*): Hub token for private repositories.
            load_discriminator (`bool`, *optional*, defaults to `True`): set `False` to skip D, which sampling and
                inversion never use.
            torch_dtype (`torch.dtype`, *optional*): the older name of `dtype`, as diffusers users type it.

        Example:

        ```py
        >>> from veegan_hf import VEEGAN

        >>> pipe = VEEGAN.from_pretrained("org/veegan-celeba")  # doctest: +SKIP
        ```
        """
        if torch_dtype is not None:
            if dtype is not None and dtype != torch_dtype:
                raise ValueError(f"dtype={dtype} and torch_dtype={torch_dtype} disagree; pass dtype= alone.")
            dtype = torch_dtype
        if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating torch.dtype such as torch.bfloat16, got {dtype!r}.")
        folder = resolve_folder(pretrained_model_name_or_path, revision, local_files_only, cache_dir, token)
        index = read_model_index(folder)
        components: dict[str, nn.Module | None] = {}
        for name, network_cls in NETWORKS.items():
            if index[name] is None or (name == "discriminator" and not load_discriminator):
                if name not in cls._optional_components:
                    raise ValueError(f"{folder / 'model_index.json'} has no {name!r}; a VEEGAN pipeline needs one.")
                components[name] = None
                continue
            components[name] = load_network(network_cls, folder / name, dtype)
        pipe = cls(**components)
        pipe.card_metadata = read_model_card_metadata(folder / "README.md")
        # what was asked for, and where its files are (a Hub snapshot); plain attributes, so that a saved copy does
        # not carry this machine's paths into model_index.json
        pipe.source_name, pipe.source_folder = str(pretrained_model_name_or_path), folder
        return pipe

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        dataset_name: str | None = None,
        metrics: dict[str, float] | None = None,
        training_config: dict[str, Any] | None = None,
        repo_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        r"""
        Saves `model_index.json`, one folder per network (config.json + safetensors), a model card `README.md` and,
        for the card, `samples.png`: an 8x8 grid of 64 samples (seed 0) for image models, a scatter plot over the
        true modes for 2-D vector models (none for other vector models).

        Args:
            save_directory (`str` or `os.PathLike`): the folder to write.
            dataset_name (`str`, *optional*): the training data, for the model card metadata: a built-in dataset, a
                Hub id or a local folder (the card shows only its last path component).
            metrics (`dict[str, float]`, *optional*): measured evaluation metrics, for the card's model-index.
            training_config (`dict`, *optional*): the resolved training options, shown in the card without local paths.
            repo_id (`str`, *optional*): the Hub id, used in the card's title and usage snippet.
        """
        kwargs.pop("safe_serialization", None)  # safetensors is the only format this package reads
        super().save_pretrained(save_directory, safe_serialization=True, **kwargs)
        for key, value in (("dataset_name", dataset_name), ("metrics", metrics), ("training_config", training_config)):
            if value is not None:
                self.card_metadata[key] = value
        # before the card, which embeds the image only if it was written; push_to_hub uploads it with the weights
        save_samples_image(self, save_directory, self.card_metadata.get("dataset_name"))
        card = create_model_card(self, repo_id=repo_id, save_directory=save_directory, **self.card_metadata)
        card.save(os.path.join(save_directory, "README.md"))

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        dataset_name: str | None = None,
        metrics: dict[str, float] | None = None,
        training_config: dict[str, Any] | None = None,
    ) -> str:
        r"""
        Uploads the pipeline and its model card to the Hub (creating the repository if needed).

        Args:
            repo_id (`str`): the target repository, e.g. `"org/veegan-celeba"`.
            commit_message (`str`, *optional*): defaults to `"Upload VEEGAN pipeline"`.
            private (`bool`, *optional*): create the repository as private.
            token (`str`, *optional*): Hub token; defaults to the stored login.
            revision (`str`, *optional*): branch to push to.
            create_pr (`bool`, *optional*, defaults to `False`): open a pull request instead of committing.
            dataset_name, metrics, training_config: as in `save_pretrained`, for the model card.

        Returns:
            `str`: the URL of the commit.
        """
        name = repo_id
        repo_id = with_hub_retries(
            lambda: create_repo(name, private=private, token=token, exist_ok=True).repo_id, f"creating {name!r}"
        )
        with tempfile.TemporaryDirectory() as tmpdir:
            self.save_pretrained(
                tmpdir, dataset_name=dataset_name, metrics=metrics, training_config=training_config, repo_id=repo_id
            )
            # one commit: a retry after a failure finds the repo with that commit or without it, never half of it
            commit = with_hub_retries(
                lambda: upload_folder(
                    repo_id=repo_id,
                    folder_path=tmpdir,
                    token=token,
                    revision=revision,
                    commit_message=commit_message or "Upload VEEGAN pipeline",
                    create_pr=create_pr,
                ),
                f"pushing to {repo_id!r}",
            )
        return str(commit)
