"""The training library: `TrainingConfig` and its presets, data sources, checkpointing, the loop and its reports.

Everything that drives Accelerate lives here (benchmarks call `reset_accelerate_state` between runs in one process).
`veegan_hf.train` (and the repository's `training/train.py`) is the command-line entry; code calls
`train(parse_config([...]))` or `train(TrainingConfig(...))` directly.
"""

from .arguments import load_preset, parse_config, preset_names
from .checkpointing import DiskFullError
from .config import ConfigError, TrainingConfig
from .loop import NonFiniteLossError, TrainResult, reset_accelerate_state, train

__all__ = [
    "ConfigError",
    "DiskFullError",
    "NonFiniteLossError",
    "TrainResult",
    "TrainingConfig",
    "load_preset",
    "parse_config",
    "preset_names",
    "reset_accelerate_state",
    "train",
]
