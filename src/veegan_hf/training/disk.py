"""The disk under a run: a full disk (or a quota, or a file-size limit) turned into one clear error, however the
writer reports it, and the flushes that make a renamed checkpoint durable."""

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path


class DiskFullError(RuntimeError):
    """A write failed for want of space (or over a file-size limit); the message names the folder, about how much
    space was needed, and the checkpoint that survives."""


_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
# how the writers below report a full disk when they do not raise OSError (safetensors' Rust errors, PIL, zipfile)
_FULL_WORDS = ("no space left on device", "file too large", "disk quota exceeded", "storagefull", "filetoolarge")
# torch.save's zip writer loses the errno of a short write and reports where it stopped, or its C++ stream's failure
_TORCH_SHORT_WRITE = ("unexpected pos", "failed writing file", "basic_ios::clear: iostream error")


def is_disk_full(err: BaseException) -> bool:
    """Is `err` (or what caused it) a full disk, a quota or a file-size limit?"""
    while err is not None:
        if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
            return True
        text = str(err).lower()
        if any(word in text for word in _FULL_WORDS):
            return True
        if isinstance(err, RuntimeError) and any(word in text for word in _TORCH_SHORT_WRITE):
            return True
        err = err.__cause__ or err.__context__
    return False


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def disk_full_error(
    folder: Path, what: str, needed_bytes: int, last_checkpoint: str | None, err: BaseException
) -> DiskFullError:
    kept = (
        f"The last complete checkpoint, {last_checkpoint}, is intact"
        if last_checkpoint
        else "No checkpoint was saved yet"
    )
    return DiskFullError(
        f"the disk is full: writing {what} in {folder} failed ({type(err).__name__}: {str(err)[:160]}); it needs "
        f"about {max(1, round(needed_bytes / 2**20))} MB more. {kept}: free space, then continue with "
        "--resume_from_checkpoint latest."
    )


@contextlib.contextmanager
def disk_full_guard(folder: Path, what: str, needed_bytes: int, last_checkpoint: str | None) -> Iterator[None]:
    """Turns a full disk while writing `what` into one `DiskFullError` that says what to do; other errors pass."""
    try:
        yield
    except Exception as err:
        if not is_disk_full(err):
            raise
        raise disk_full_error(folder, what, needed_bytes, last_checkpoint, err) from None


def fsync_tree(folder: Path, files: bool = True) -> None:
    """Flushes every file and folder below `folder` to the disk (with `files`), and `folder` itself."""
    paths = [*folder.rglob("*"), folder] if files else [folder]
    for path in paths:
        try:
            descriptor = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(descriptor)
        except OSError:  # some file systems refuse fsync on folders: the files are what matter
            pass
        finally:
            os.close(descriptor)
