"""Peak resident memory of a block of code, per phase: what a training step or a sampling call holds at its peak."""

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
