"""From a preset and the command line to a validated `TrainingConfig`.

Defaults <- a preset (`--config NAME` or a YAML path) <- command-line flags. A built-in dataset brings its own tuned
preset, and image data without a preset gets the `image` preset, so `train.py --train_data_dir photos/` starts from
values that fit images. The presets ship inside the package (`veegan_hf/training/configs/*.yaml`). Flags are never
abbreviated, and a mistyped one is answered with the nearest valid name.
"""

import argparse
import difflib
import inspect
import math
import re
import sys
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from ..data import BUILTIN_DATASETS
from ..objectives import OBJECTIVES
from .config import OBJECTIVE_SPECIFIC, ConfigError, TrainingConfig, fields, validate

PRESET_PACKAGE = "veegan_hf.training.configs"
IMAGE_PRESET = "image"  # the defaults for image data that names no preset


def base_type(annotation: Any) -> type:
    """`int | None` -> int."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


FIELD_TYPES = typing.get_type_hints(TrainingConfig)


def coerce(name: str, value: Any, source: str) -> Any:
    """Casts a preset or flag value to the field's type, with an error naming the field and the source."""
    kind = base_type(FIELD_TYPES[name])
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and kind is not str):
        if type(None) not in typing.get_args(FIELD_TYPES[name]):
            raise ConfigError(f"{source}: {name}={value!r} needs a value; it cannot be None. Drop it for the default.")
        return None
    try:
        if kind is bool:
            text = str(value).lower()
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text in ("true", "1", "yes")
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)  # accepts "1e4" and 10000.0, rejects 2.5
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"{source}: {name}={value!r} must be a finite number.")
            return number
        if kind is str and not isinstance(value, (str, int, float)):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError, OverflowError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{source}: {name}={value!r} is not a valid {kind.__name__}.") from None


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(PRESET_PACKAGE).iterdir() if p.name.endswith(".yaml"))


def load_preset(name_or_path: str | Path) -> dict[str, Any]:
    """Reads a YAML preset: a shipped preset's name (`grid`) or a path to a file of option: value lines."""
    import yaml

    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        if str(name_or_path) not in preset_names():
            raise ConfigError(f"--config {name_or_path} is not a preset or a file; presets: {preset_names()}.")
        text = resources.files(PRESET_PACKAGE).joinpath(f"{name_or_path}.yaml").read_bytes()
    elif not path.is_file():
        raise ConfigError(f"--config {path} does not exist; presets: {preset_names()}.")
    else:
        text = path.read_bytes()
    try:
        raw = yaml.safe_load(text.decode("utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"--config {name_or_path} is not UTF-8 text ({err.reason} at byte {err.start}).") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--config {name_or_path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {name_or_path} must be a mapping of option: value.")
    unknown = sorted(str(k) for k in set(raw) - set(fields()))
    if unknown:
        raise ConfigError(f"--config {name_or_path}: unknown options {unknown}; `train.py --help` lists the options.")
    return {k: coerce(k, v, str(name_or_path)) for k, v in raw.items()}


class _Parser(argparse.ArgumentParser):
    """No abbreviations, and one line per error, with the nearest valid flag for a typo."""

    def error(self, message: str) -> typing.NoReturn:
        if message.startswith("unrecognized arguments:"):
            flags = [a for a in message.split(":", 1)[1].split() if a.startswith("--")]
            valid = [f"--{name}" for name in fields()] + ["--config"]
            hints = [
                f"{flag} (did you mean {m[0]}?)" for flag in flags if (m := difflib.get_close_matches(flag, valid, 1))
            ]
            if hints:
                message = "unrecognized arguments: " + ", ".join(hints)
        raise ConfigError(f"{message}. `--help` lists the options.")


def _join_negative_values(argv: list[str]) -> list[str]:
    """`--learning_rate -1e-5` -> `--learning_rate=-1e-5`: argparse would read a value that starts with '-' as an
    unknown option, and the error would not name the flag it was given to."""
    options = {f"--{name}" for name in fields()} | {"--config"}
    out: list[str] = []
    for token in argv:
        flag = out[-1] if out else None
        if flag in options and token.startswith("--") and token.split("=", 1)[0] not in options | {"--print_config"}:
            # `--use_ema --` or `--seed --1`: argparse would blame the token alone ("unrecognized arguments: --")
            near = difflib.get_close_matches(token.split("=", 1)[0], sorted(options), 1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ConfigError(f"{flag} was followed by {token!r}, which is neither its value nor an option{hint}.")
        if flag in options and token.startswith("-") and not token.startswith("--"):
            out[-1] = f"{flag}={token}"
        else:
            out.append(token)
    return out


def field_comments() -> dict[str, str]:
    """option -> the why-comment beside it in `TrainingConfig` (or the comment lines right above it)."""
    source = inspect.getsource(TrainingConfig).splitlines()
    comments: dict[str, str] = {}
    above: list[str] = []
    for line in source:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        match = re.match(r"(\w+): [^=]+=[^#]*(?:#\s*(.*))?$", stripped)
        if match and match.group(1) in FIELD_TYPES:
            comments[match.group(1)] = match.group(2) or " ".join(above)
        above = []
    return comments


def _shown(value: Any) -> str:
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def help_text(name: str, comment: str, ring: dict[str, Any], image: dict[str, Any]) -> str:
    """One option's `--help` line: what it does, its choices, and its default, which can depend on the data."""
    from .config import _CHOICES

    text = comment or ""
    choices = [c for c in _CHOICES.get(name, ()) if c is not None]
    if choices:
        text += f" {{{', '.join(_shown(c) for c in choices)}}}"
    default = ring.get(name, fields()[name].default)
    text += f" (default: {_shown(default)}"
    if name in ring:
        text += " from the ring preset"
    if image.get(name, fields()[name].default) != default:
        text += f"; image data without a preset: {_shown(image.get(name, fields()[name].default))}"
    return text.replace("%", "%%") + "; a --config preset may set it)"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="train.py",
        usage="train.py [--config PRESET] [--print_config] [--OPTION VALUE ...]",
        description=(
            "Train VEEGAN with Accelerate. Defaults <- a preset <- flags: a built-in --dataset_name brings its own "
            "preset (ring when nothing is given), image data without a preset starts from the image preset, and "
            "--config NAME or a YAML path picks another. --print_config shows what a command would run."
        ),
        allow_abbrev=False,  # `--max_train_step 5` must not quietly mean --max_train_steps
    )
    parser.add_argument(
        "--config", dest="preset", default=None, help=f"a preset ({', '.join(preset_names())}) or a YAML path"
    )
    parser.add_argument(
        "--print_config", action="store_true", help="print the fully resolved options (preset, data, flags) and exit"
    )
    comments, ring, image = field_comments(), load_preset("ring"), load_preset(IMAGE_PRESET)
    for name in fields():
        text = help_text(name, comments.get(name, ""), ring, image)
        if base_type(FIELD_TYPES[name]) is bool:  # `--use_ema` alone means true; `--use_ema false` turns it off
            parser.add_argument(f"--{name}", nargs="?", const="true", default=None, help=text, metavar="BOOL")
        else:
            parser.add_argument(f"--{name}", type=str, default=None, help=text, metavar="VALUE")
    return parser


def wants_print_config(argv: list[str] | None) -> bool:
    return "--print_config" in (sys.argv[1:] if argv is None else argv)


def parse_config(argv: list[str] | None = None) -> TrainingConfig:
    """Defaults <- the preset <- command-line flags, validated."""
    args = _parser().parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    given = {
        name: coerce(name, getattr(args, name), "command line") for name in fields() if getattr(args, name) is not None
    }
    dataset = given.get(
        "dataset_name", None if args.preset or "train_data_dir" in given else TrainingConfig.dataset_name
    )
    # a built-in dataset brings its tuned preset unless --config names another; image data gets the image preset
    preset = args.preset or (dataset if dataset in BUILTIN_DATASETS else IMAGE_PRESET)
    values = {**load_preset(preset), **given, "preset": preset}
    objective = OBJECTIVES.get(values.get("objective", TrainingConfig.objective))
    for name, (option, _) in OBJECTIVE_SPECIFIC.items():  # a preset's value the objective cannot read: the default
        if objective and option not in objective.options and name not in given:
            values.pop(name, None)
    config = TrainingConfig(**values)
    validate(config)
    return config
