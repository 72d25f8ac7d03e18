"""Resident memory: the peak of a block of code, per phase (what a training step or a sampling call holds at its
peak), and the memory and CPU time of a running process and those below it (a server and its workers)."""

import contextlib
import os
import re
from pathlib import Path


def _proc_status_kib(key: str, pid: int | str = "self") -> int | None:
    try:
        match = re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _lifetime_peak_kib() -> int:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset // 1024


def _release_free_memory() -> None:
    """glibc keeps freed blocks mapped; returning them first makes a phase's RSS growth its own allocations."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _reset_peak() -> bool:
    """Linux >= 4.0 resets VmHWM (peak RSS) to the current RSS when "5" is written to clear_refs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status_kib("VmHWM") is not None
    except OSError:
        return False


@contextlib.contextmanager
def peak_memory(record: dict):
    """Fills `record` with the RSS at the start of the block and its peak inside it (MiB).

    With a resettable VmHWM the peak is the block's own; otherwise it is the process's lifetime peak (ru_maxrss), which
    only grows, and `rss_method` says so.
    """
    import psutil

    _release_free_memory()
    resettable = _reset_peak()
    start = psutil.Process().memory_info().rss / 2**20
    yield
    peak = (_proc_status_kib("VmHWM") if resettable else _lifetime_peak_kib()) / 1024
    record.update(
        rss_start_mib=round(start, 1),
        peak_rss_mib=round(peak, 1),
        peak_growth_mib=round(max(0.0, peak - start), 1),
        lifetime_peak_rss_mib=round(_lifetime_peak_kib() / 1024, 1),
        rss_method="VmHWM reset per phase" if resettable else "ru_maxrss (process lifetime)",
    )


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux): its children, theirs, and so on. Each thread lists the children it
    started, so a pool's workers are found whichever thread started them."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                todo += children
    return found


def rank_pid(launcher: int, rank: int) -> int | None:
    """The process below `launcher` (an `accelerate launch`) whose environment says RANK=`rank` (Linux), or None."""
    for pid in descendants(launcher):
        with contextlib.suppress(OSError):
            if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                return pid
    return None


def process_rss_mib(pid: int, with_children: bool = False) -> float | None:
    """
    The resident memory of process `pid` in MiB (Linux), with all the processes below it when `with_children` (a
    server's worker pool, say); None once `pid` has ended.
    """
    own = _proc_status_kib("VmRSS", pid)
    if own is None:
        return None
    below = [_proc_status_kib("VmRSS", child) for child in descendants(pid)] if with_children else []
    return (own + sum(kib for kib in below if kib is not None)) / 1024  # a child that just ended counts 0


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time process `pid` has used so far (Linux), or None once it has ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
