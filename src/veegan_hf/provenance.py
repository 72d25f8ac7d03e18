"""Where a result came from: the commit, the CPU or GPU, the threads, and the sentence printed under every table.

Shared by the training record (`training_config.json`) and the benchmark scripts."""

import json
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # a source checkout's root (benchmarks run from a clone)


def git_commit() -> str:
    """The commit under test, `-dirty` when the package's or benchmarks' sources differ from it, else "unknown".

    A copy of the tree on a remote GPU machine gets its commit from `VEEGAN_COMMIT`, which the sending script sets.
    """
    if os.environ.get("VEEGAN_COMMIT"):
        return os.environ["VEEGAN_COMMIT"]
    if not (REPO / ".git").exists():  # an installed wheel: no checkout to ask
        return "unknown"
    try:
        sha = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=REPO, text=True, stderr=subprocess.DEVNULL)
        paths = ["src", "training", "benchmarks"]
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", *paths], cwd=REPO, capture_output=True)
        return sha.strip() + ("-dirty" if dirty.returncode else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def final_commit(commit: str) -> str:
    """`commit`, marked dirty if the tree changed while the runs trained."""
    return commit if git_commit() == commit else commit.removesuffix("-dirty") + "-dirty"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    """ "NVIDIA H200" for a CUDA device, the CPU's model name otherwise."""
    import torch

    return torch.cuda.get_device_name() if device == "cuda" and torch.cuda.is_available() else cpu_name()


def one_thread() -> None:
    """Pins a worker to one thread: parallel runs then share the cores without oversubscribing them."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def load_average() -> list[float] | None:
    """1, 5 and 15 min load: how busy the CPU was, i.e. how far to trust the numbers."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def provenance(meta: dict) -> str:
    """The sentence under a results table: commit, wall time, machine, command, and how many runs were reused."""
    text = (
        f"Commit `{meta['commit']}`, {meta['wall_minutes']:.1f} min wall on {meta['jobs']} process(es) of "
        f"{meta['cpu']}; the runs' own times sum to {meta['run_minutes']:.1f} min. Command: `{meta['command']}`."
    )
    if meta.get("reused_runs"):
        text += f" {meta['reused_runs']} run(s) were reused from an interrupted invocation at the same commit."
    return text + "\n"


def write_results(results: Path, name: str, payload: dict, markdown: str) -> None:
    """`<name>.json` and `<name>.md` in `results`, and the table on stdout."""
    (results / f"{name}.json").write_text(json.dumps(payload, indent=2))
    (results / f"{name}.md").write_text(markdown)
    print(markdown)
