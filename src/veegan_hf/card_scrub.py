"""What a model card may show of a training record: no local filesystem path survives, only last components."""

import os
import re
from typing import Any

from .card_datasets import describe_dataset, last_component

# options of the training record that name files or folders: only their last component is shown
PATH_OPTIONS = frozenset(
    {"output_dir", "train_data_dir", "dataset_name", "cache_dir", "resume_from_checkpoint", "logging_dir"}
)
# an absolute POSIX, home or Windows path inside a longer string, e.g. "--output_dir /tmp/run" or "x=C:\data\faces";
# the look-behind skips the "//host/..." of a URL and the second half of a Hub id
_EMBEDDED_PATH = re.compile(r"(?<![\w.:/\\~-])(?:~|[A-Za-z]:)?[/\\][^\s\"'`,;()\[\]{}]+")


def scrub_text(text: str) -> str:
    """Every absolute path inside `text` replaced by its last component."""
    return _EMBEDDED_PATH.sub(lambda match: last_component(match.group(0)) or match.group(0), text)


def scrub_command(command: str) -> str:
    """A command line with every path reduced to its last component, relative ones after path options included."""
    tokens, previous = [], ""
    for token in command.split(" "):
        flag, sep, value = token.partition("=")
        if sep and flag.lstrip("-") in PATH_OPTIONS:  # --output_dir=runs/ring
            token = f"{flag}={scrub_option(flag.lstrip('-'), value)}"
        elif previous.lstrip("-") in PATH_OPTIONS and not token.startswith("-"):  # --output_dir runs/ring
            token = scrub_option(previous.lstrip("-"), token)
        tokens.append(scrub_text(token))
        previous = token if token.startswith("--") else ""
    return " ".join(tokens)


def scrub_option(key: str, value: Any) -> Any:
    r"""
    One training option as the card may show it: no local filesystem path survives.

    Args:
        key (`str`): the option's name; path options (`PATH_OPTIONS`) keep only their last path component, a
            `dataset_name` keeps a Hub id and loses a local folder's parent path.
        value (`Any`): the option's value; dicts and lists are scrubbed item by item.

    Returns:
        `Any`: the value, with every path reduced to its last component.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, dict):
        return {k: scrub_option(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_option(key, v) for v in value]
    if not isinstance(value, str):
        return value
    if key == "command":
        return scrub_command(value)
    if key == "dataset_name":
        info = describe_dataset(value)
        return info.name if info is not None else value
    if key in PATH_OPTIONS and ("/" in value or "\\" in value):
        return last_component(value)
    return scrub_text(value)
