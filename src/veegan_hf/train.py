"""Train VEEGAN from the command line: `accelerate launch -m veegan_hf.train [--config NAME] [--flag value ...]`.

The same entry as the repository's `training/train.py`, for an installed wheel (no clone). Arguments go to
`veegan_hf.training.parse_config`; an error prints one line that names the bad value and exits with status 1.
"""

import gc
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace

import torch

from .training import ConfigError, DiskFullError, NonFiniteLossError, TrainingConfig, parse_config, train
from .training.arguments import wants_print_config

_SILENT_RANK_WAIT_S = 60.0  # at most; see main()
_SHUTDOWN_WAIT_S = 30.0  # for the process group's teardown; see _shutdown_distributed()


def _exit_with_launcher() -> None:
    """Under `accelerate launch`, a training process whose launcher dies is ended too (Linux), instead of training
    on unseen and racing the next run in the same folder."""
    if "ACCELERATE_MIXED_PRECISION" not in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when the parent exits
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the launcher was already gone before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _launcher_threads(config: TrainingConfig) -> TrainingConfig:
    """`accelerate launch` gives each process one CPU thread unless `--num_cpu_threads_per_process` says otherwise,
    which leaves all but one core of a CPU machine idle (an image run at 28 px: 3.8 steps/s on 1 of 2 cores, 6.0 on
    both). Unless `--num_cpu_threads` is given, the cores are shared among this machine's processes instead."""
    if config.num_cpu_threads is not None or os.environ.get("OMP_NUM_THREADS") != "1":
        return config
    if "ACCELERATE_MIXED_PRECISION" not in os.environ:  # not under `accelerate launch`: OMP_NUM_THREADS=1 is a choice
        return config
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return replace(config, num_cpu_threads=max(1, cores // local_processes))


def _shutdown_distributed() -> None:
    """Destroys the process group after the DDP wrappers, so that its destructor runs without the GIL."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    # gloo's worker thread needs the GIL to free the last collective's tensors, and the process group's destructor
    # joins that thread. A DDP reducer that drops the last reference destroys the group with the GIL held: both
    # wait forever (seen in CI, one run in many). train() has returned, so collect its DDP wrappers first; then
    # destroy_process_group drops the last reference through a binding that releases the GIL.
    gc.collect()
    # Under load it can still hang (a 2-process CPU run: rank 1 gone, rank 0 stuck after its last file was written),
    # so the teardown gets a bounded wait in a thread; everything is saved by now, and `exit_process` leaves anyway.
    teardown = threading.Thread(target=torch.distributed.destroy_process_group, daemon=True)
    teardown.start()
    teardown.join(_SHUTDOWN_WAIT_S)
    if teardown.is_alive():
        logging.getLogger(__name__).warning(
            "the process group did not shut down within %.0f s; leaving without it (every file is written)",
            _SHUTDOWN_WAIT_S,
        )


def _print_config(argv: list[str]) -> int:
    """The options a command would train with, data-dependent ones resolved, as JSON on stdout; nothing is written."""
    from .training.config import resolved_record
    from .training.sources import resolve_data

    try:
        config, _ = resolve_data(parse_config(argv))
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    record = {k: v for k, v in resolved_record(config).items() if k not in ("command", "launcher_mixed_precision")}
    print(json.dumps(record, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parses `argv` (default: `sys.argv[1:]`), trains, and returns the exit status."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    # Accelerate logs seven lines per checkpoint, naming the temporary folder; the loop logs one, naming the final one
    for name in ("accelerate.accelerator", "accelerate.checkpointing"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _exit_with_launcher()
    rank = int(os.environ.get("RANK", "0"))
    if wants_print_config(argv):
        return _print_config([a for a in (sys.argv[1:] if argv is None else argv) if a != "--print_config"])
    try:
        train(_launcher_threads(parse_config(argv)))
    except (ValueError, TypeError, NonFiniteLossError, DiskFullError) as err:  # ConfigError and input errors too
        # one line, once: only rank 0 speaks, and `accelerate launch` prints its own traceback after a non-zero exit
        if rank == 0 or not isinstance(err, ConfigError):
            print(f"error: {err}", file=sys.stderr, flush=True)
        else:
            # torchrun stops every rank when the first one exits: a silent rank that exits first would kill rank 0
            # before it prints. Rank 0's exit ends this wait at once, so it costs nothing when rank 0 is faster.
            time.sleep(_SILENT_RANK_WAIT_S)
        code = 1
    else:
        code = 0
    _shutdown_distributed()  # outside the except block, whose traceback would keep train()'s DDP wrappers alive
    return code


def exit_process(code: int) -> None:
    """Ends a command-line run with `code`. A process of a distributed run leaves with `os._exit` once its streams
    are flushed: every file is written by then, and the interpreter's own teardown would run gloo's destructors
    again, which is where a loaded machine saw a finished run hang."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    exit_process(main())
