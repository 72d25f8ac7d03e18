"""The output folder and its checkpoints: one run per folder, atomic saves, rotation, and resumes that fit.

A checkpoint is written under a temporary name and renamed when complete, and an old one is renamed away before it is
deleted, so a kill at any moment leaves every `checkpoint-N` complete. A running job holds `.veegan.lock` in its output
folder, so a second job cannot write into the same folder. Resuming checks that the checkpoint was made by a run of
the same architecture and objective, and names the option that differs.
"""

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from .config import ConfigError, TrainingConfig
from .disk import DiskFullError, disk_full_error, disk_full_guard, folder_bytes, fsync_tree, is_disk_full  # noqa: F401

logger = logging.getLogger("veegan_hf.train")
CHECKPOINT_PREFIX = "checkpoint-"
LOCK_NAME = ".veegan.lock"
RECORD_NAME = "training_config.json"
# what a finished or running job leaves in its output folder; --overwrite_output_dir removes exactly these
RUN_ARTIFACTS = (
    "model_index.json",
    "README.md",
    "samples.png",
    "metrics.json",
    RECORD_NAME,
    "generator",
    "reconstructor",
    "discriminator",
    "samples",
    "logs",
)
# options that fix the networks' shapes or the meaning of the saved state: a resume must not change them
ARCHITECTURE_OPTIONS = (
    "objective",
    "architecture",
    "latent_dim",
    "hidden_dim",
    "num_hidden_layers",
    "discriminator_hidden_dim",
    "discriminator_num_hidden_layers",
    "base_channels",
    "discriminator_base_channels",
    "reconstructor_base_channels",
    "discriminator_marginal_head",
    "discriminator_reads_latents",
    "discriminator_spectral_norm",
    "extra_noise_dim",
    "activation",
    "generator_batch_norm",
    "resolution",
    "num_channels",
    "pack_size",
    "joint_pack_size",
    "use_ema",
)


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. Half-written ones keep a temporary name and never match."""
    found = [p for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[11:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def checkpoint_step(path: Path) -> int:
    return int(path.name[len(CHECKPOINT_PREFIX) :])


def prepare_output_dir(config: TrainingConfig, is_main_process: bool = True) -> None:
    """Checks the output folder before anything is built: writable, a folder, and not another run's results.

    Every rank checks (so every rank stops on the same error) before any rank writes; only the main process deletes
    what `--overwrite_output_dir` replaces.
    """
    output_dir = Path(config.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"--output_dir {output_dir} is a file; pass a folder (it is created if missing).")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".veegan.write-test.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"--output_dir {output_dir} is not writable ({err.strerror}); pick another folder.") from None
    checkpoints = [p.name for p in list_checkpoints(output_dir)]
    previous = [name for name in RUN_ARTIFACTS if (output_dir / name).exists()] + checkpoints
    if not previous:
        return
    resuming = config.resume_from_checkpoint
    if resuming and (checkpoints or resuming != "latest"):
        return
    if resuming and not (output_dir / "model_index.json").exists():
        return  # a run that stopped before its first checkpoint (a full disk, a kill): `latest` starts it at step 0
    if resuming and not config.overwrite_output_dir:  # starting over from step 0 would quietly replace a finished model
        raise ConfigError(
            f"--resume_from_checkpoint latest: --output_dir {output_dir} holds a run ({', '.join(previous[:4])}) but "
            "no checkpoint to continue from (it was trained without --checkpointing_steps). Pass "
            "--overwrite_output_dir to train it anew from step 0, or another --output_dir."
        )
    if not config.overwrite_output_dir:
        raise ConfigError(
            f"--output_dir {output_dir} holds another run ({', '.join(previous[:4])}). Pass --overwrite_output_dir "
            "to replace it, --resume_from_checkpoint latest to continue it, or another --output_dir."
        )
    if not is_main_process:
        return
    for name in previous:  # the old run goes whole: no stale plots or TensorBoard runs beside the new model
        path = output_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


class OutputLock:
    """An exclusive lock on the output folder for the life of the run (released by the OS if the process dies)."""

    def __init__(self, output_dir: Path):
        self.path, self.handle = output_dir / LOCK_NAME, None

    def __enter__(self) -> "OutputLock":
        import fcntl

        self.handle = open(self.path, "a+")  # held open until __exit__
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.seek(0)
            owner = self.handle.read().strip() or "another process"
            self.handle.close()
            raise ConfigError(
                f"--output_dir {self.path.parent} is in use by a running job ({owner}); wait for it, stop it, or "
                "pick another folder."
            ) from None
        self.handle.truncate(0)
        self.handle.write(f"pid {os.getpid()}\n")
        self.handle.flush()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            self.path.unlink(missing_ok=True)  # while still held: no other job can have taken it in between
            self.handle.close()


# what Accelerate's save_state and save_extra_state write for one process: all of it must load to resume
CHECKPOINT_FILES = (
    "model.safetensors",
    "model_1.safetensors",
    "model_2.safetensors",
    "optimizer.bin",
    "scheduler.json",
)


def checkpoint_problem(path: Path, use_ema: bool) -> str | None:
    """Why the checkpoint at `path` cannot be resumed (a missing, truncated or corrupt file, named), or None.

    Weights are read whole from their safetensors; the optimizer's and the RNG's torch files are zip archives whose
    CRCs are checked without unpickling anything."""
    import zipfile

    from safetensors import safe_open

    names = [*CHECKPOINT_FILES, RECORD_NAME, *(["ema.safetensors"] if use_ema else [])]
    names += sorted(p.name for p in path.glob("random_states_*.pkl")) or ["random_states_0.pkl"]
    for name in names:
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        try:
            if name.endswith(".safetensors"):
                with safe_open(str(file), framework="pt") as handle:
                    for key in handle.keys():  # noqa: SIM118  (a safetensors handle is not iterable)
                        handle.get_tensor(key)
            elif name.endswith((".bin", ".pkl")):
                with zipfile.ZipFile(file) as archive:
                    bad = archive.testzip()
                if bad is not None:
                    return f"{name} is corrupt (a bad CRC in {bad})"
            else:
                json.loads(file.read_text())
        except Exception as err:  # safetensors, zipfile and json each raise their own types for a damaged file
            return f"{name} is truncated or corrupt ({type(err).__name__}: {str(err)[:120]})"
    return None


def resolve_resume(config: TrainingConfig) -> Path | None:
    """The checkpoint to resume from, checked to fit this run; None to start fresh. `latest` skips damaged newest
    checkpoints (a crash of the machine can leave one whose files never reached the disk) and says so."""
    if not config.resume_from_checkpoint:
        return None
    output_dir = Path(config.output_dir)
    if config.resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        if not checkpoints:
            logger.warning(
                "--resume_from_checkpoint latest: %s holds no checkpoint yet; starting from step 0", output_dir
            )
            return None
        skipped = []
        for path in reversed(checkpoints):
            problem = checkpoint_problem(path, config.use_ema)
            if problem is None:
                break
            skipped.append(f"{path.name} ({problem})")
            logger.warning("--resume_from_checkpoint latest: skipping %s: %s", path.name, problem)
        else:
            raise ConfigError(
                f"--resume_from_checkpoint latest: no checkpoint in {output_dir} can be resumed: {'; '.join(skipped)}. "
                "Start a new run (--overwrite_output_dir) or restore a checkpoint from a backup."
            )
        if skipped:
            logger.warning("--resume_from_checkpoint latest: resuming from %s", path.name)
    else:
        path = Path(config.resume_from_checkpoint)
        if not path.is_dir() and (output_dir / path).is_dir():
            path = output_dir / path
        if not path.is_dir() or not path.name[len(CHECKPOINT_PREFIX) :].isdigit():
            raise ConfigError(
                f"--resume_from_checkpoint {config.resume_from_checkpoint!r} is not a checkpoint-N folder; found "
                f"{[p.name for p in list_checkpoints(output_dir)]}. Use 'latest' to pick the newest."
            )
        problem = checkpoint_problem(path, config.use_ema)
        if problem is not None:
            raise ConfigError(
                f"--resume_from_checkpoint {path}: {problem}. Resume from an earlier checkpoint, or pass 'latest' to "
                "take the newest one that loads."
            )
    step = checkpoint_step(path)
    if step > config.max_train_steps:
        raise ConfigError(
            f"{path.name} is past --max_train_steps {config.max_train_steps}; raise --max_train_steps to continue it, "
            "or start a new run in another --output_dir."
        )
    _check_compatible(path, config)
    return path


def saved_record(path: Path) -> dict[str, Any]:
    """The training record a checkpoint was saved with, or {} for one made by an older version."""
    record_path = path / RECORD_NAME
    if not record_path.is_file():
        return {}
    try:
        return json.loads(record_path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"{record_path} is unreadable ({err}); resume from another checkpoint.") from None


def _same_data(saved: dict[str, Any], config: TrainingConfig) -> bool:
    before = saved.get("train_data_dir") or saved.get("dataset_name")
    now = config.data_source
    if before == now:
        return saved.get("dataset_config_name") == config.dataset_config_name
    both_local = before is not None and Path(before).exists() and Path(now).exists()
    return both_local and Path(before).resolve() == Path(now).resolve()


def _check_compatible(path: Path, config: TrainingConfig) -> None:
    saved = saved_record(path)
    if not saved:
        return  # made by an older version: Accelerate's strict load still catches shape mismatches
    if not _same_data(saved, config):
        before = saved.get("train_data_dir") or saved.get("dataset_name")
        flag = "--train_data_dir" if saved.get("train_data_dir") else "--dataset_name"
        raise ConfigError(
            f"{path.name} was trained on {before!r}, and this run asks for {config.data_source!r}; resume with the "
            f"same data ({flag} {before}), or train on the new data in another --output_dir (a new run), so that "
            "the card describes what the model saw."
        )
    for name in ARCHITECTURE_OPTIONS:
        if name in saved and saved[name] != getattr(config, name):
            raise ConfigError(
                f"--{name} {getattr(config, name)!r} does not match {path.name}, which was trained with "
                f"{saved[name]!r}; pass --{name} {saved[name]} to resume it, or start a new run in another "
                "--output_dir."
            )


def save_extra_state(folder: Path, scheduler, ema) -> None:
    """The scheduler as JSON and the EMA generator as safetensors: nothing that needs unpickling to resume."""
    (folder / "scheduler.json").write_text(json.dumps(scheduler.state_dict(), default=lambda _: None))
    if ema is not None:
        save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, folder / "ema.safetensors")


def load_extra_state(folder: Path, scheduler, ema) -> None:
    scheduler.load_state_dict(json.loads((folder / "scheduler.json").read_text()))
    if ema is not None:
        if not (folder / "ema.safetensors").is_file():
            raise ConfigError(f"{folder} holds no EMA weights; resume with --use_ema false, or from another run.")
        ema.load_state_dict(load_file(folder / "ema.safetensors"))


def save_checkpoint(
    accelerator, output_dir: Path, step: int, limit: int | None, export: Callable[[Path], None]
) -> Path:
    """`save_state` into a temporary folder, then one atomic rename: a kill leaves the previous checkpoint intact,
    and so does a full disk (the partial folder is removed, and the error says how much space the save needs)."""
    final = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    partial = output_dir / f".{CHECKPOINT_PREFIX}{step}.partial"
    previous = list_checkpoints(output_dir)
    needed = folder_bytes(previous[-1]) if previous else 0
    try:
        _save_checkpoint_files(accelerator, partial, export)
    except BaseException as err:
        if accelerator.is_main_process:
            needed = max(needed, folder_bytes(partial))
            shutil.rmtree(partial, ignore_errors=True)  # its space back; the previous checkpoint is untouched
        if isinstance(err, Exception) and is_disk_full(err):
            raise disk_full_error(
                output_dir, final.name, needed, previous[-1].name if previous else None, err
            ) from None
        raise
    if accelerator.is_main_process:
        if final.exists():
            _delete_checkpoint(final)
        os.replace(partial, final)
        fsync_tree(output_dir, files=False)  # the rename itself, in the parent folder's entry
        logger.info("saved %s", final)
        if limit is not None:
            for old in list_checkpoints(output_dir)[:-limit]:
                _delete_checkpoint(old)
        for stale in output_dir.glob(f".{CHECKPOINT_PREFIX}*.deleting"):  # left by a kill during an earlier delete
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _save_checkpoint_files(accelerator, partial: Path, export: Callable[[Path], None]) -> None:
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    if accelerator.is_main_process:
        export(partial)
        fsync_tree(partial)  # on disk before it is named: a crash of the machine cannot leave a hollow checkpoint-N


def _delete_checkpoint(folder: Path) -> None:
    # rmtree removes file by file, so a kill mid-way would leave a checkpoint-N that looks complete and is not;
    # renaming first hides it from `list_checkpoints` in one atomic step
    trash = folder.with_name(f".{folder.name}.deleting")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(folder, trash)
    shutil.rmtree(trash)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Writes JSON under a temporary name, then renames: readers never see half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(partial, path)
