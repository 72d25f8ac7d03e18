"""What a model card may say about its training data: a built-in dataset, a Hub dataset id, or a local folder named
by its last path component only (`model_card.py` writes the card)."""

import re
from dataclasses import dataclass
from pathlib import Path

from .data import BUILTIN_DATASETS, builtin_spec

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9_]$")


@dataclass(frozen=True)
class DatasetInfo:
    """What the card may say about the training data.

    Attributes:
        source (`str`): `"builtin"`, `"hub"` (an `org/name` Hub dataset id), `"local"` (a folder on the training
            machine) or `"named"` (any other name, such as a legacy Hub id without an org).
        name (`str`): the name shown: the built-in key, the Hub id, a local folder's last path component.
        description (`str`): the built-in dataset's one-line description; empty otherwise.
    """

    source: str
    name: str
    description: str = ""

    @property
    def phrase(self) -> str:
        """The data in a sentence: "on `ring` (8 Gaussians ...)", "on a local image folder (`faces`)"."""
        if self.source == "builtin":
            return f"`{self.name}` ({self.description})"
        if self.source == "hub":
            return f"[`{self.name}`](https://huggingface.co/datasets/{self.name})"
        if self.source == "local":
            return f"a local image folder (`{self.name}`)"
        return f"`{self.name}`"

    @property
    def short(self) -> str:
        """The data in a title: the built-in description, or the name."""
        if self.source == "builtin":
            return self.description
        if self.source == "local":
            return f"a local image folder ({self.name})"
        return self.name

    @property
    def hub_datasets(self) -> list[str] | None:
        """The card's standard `datasets` key: Hub ids only, a Hub dataset's own or the one a built-in is drawn from."""
        if self.source == "hub":
            return [self.name]
        spec = builtin_spec(self.name) if self.source == "builtin" else None
        return [spec.hub_dataset] if spec is not None and spec.hub_dataset else None

    @property
    def dataset_name(self) -> str:
        """The value `read_model_card_metadata` hands back: a local folder stays recognisably local ("./faces"), so
        that a re-save neither calls it a Hub dataset nor mistakes a folder named "mnist" for the built-in one."""
        return f"./{self.name}" if self.source == "local" else self.name


def last_component(path: str) -> str:
    """`/tmp/run/faces/` -> `faces`; POSIX and Windows separators both count."""
    parts = [part for part in re.split(r"[/\\]+", path.strip()) if part]
    return parts[-1] if parts else ""


def _looks_like_path(text: str) -> bool:
    """True for what can only be a filesystem path: absolute, home-relative, explicitly relative, or 2+ separators."""
    return (
        text.startswith(("/", "\\", "~", "./", "../", ".\\", "..\\"))
        or bool(re.match(r"^[A-Za-z]:[/\\]", text))
        or "\\" in text
        or text.count("/") > 1
    )


def describe_dataset(dataset_name: str | None) -> DatasetInfo | None:
    r"""
    Classifies the training data named by `dataset_name`, as the card shows it.

    Args:
        dataset_name (`str`, *optional*): a built-in dataset (`veegan_hf.data.BUILTIN_DATASETS`), a Hub dataset id
            (`org/name`), or a local folder (the `--train_data_dir` of a run).

    Returns:
        `DatasetInfo` or `None`: `None` when no dataset is named.
    """
    if dataset_name is None or not str(dataset_name).strip():
        return None
    text = str(dataset_name).strip()
    if text in BUILTIN_DATASETS:
        return DatasetInfo("builtin", text, BUILTIN_DATASETS[text].description)
    # an existing folder wins over the Hub: training read the data from it
    if _looks_like_path(text) or Path(text).expanduser().exists():
        return DatasetInfo("local", last_component(text) or "data")
    if _HUB_ID.match(text):
        return DatasetInfo("hub", text)
    return DatasetInfo("named", text)
