"""Faults at random points, many times over: a killed process, a full disk, a damaged newest checkpoint, a dying rank.

    python benchmarks/fault_soak.py                       # 100 trials, about half an hour on 2 cores
    python benchmarks/fault_soak.py --trials 4 --tag _smoke
    python benchmarks/fault_soak.py --trials 1 --seed 1234 --kinds disk   # replays one trial

Each trial trains the tiny grid run (`ARGS`: 200 steps, a checkpoint every 20, the newest 2 kept) as
`python training/train.py` does, hits it with one fault at a random point, then resumes with
`--resume_from_checkpoint latest` and compares the final weights with an unfaulted run's, bit for bit:

- `kill`: SIGKILL a random 0-40 ms after a random checkpoint appears (often mid-write of the next one);
- `damage`: the same kill, then one random file of the newest checkpoint truncated to a random length or removed, as a
  crash of the machine leaves it;
- `disk`: the run's folder on a tmpfs of a random size (100-500 KB; needs root to mount), so the disk fills at a
  point that depends on the size: a checkpoint, the samples or the final export. The run must stop with one `error:`
  line; the tmpfs then grows (space freed) and the run resumes;
- `rank`: a 2-process CPU run (gloo), rank 1 killed after a random checkpoint: the launcher must end within 30 s and
  name the rank; the resume is compared with an unfaulted 2-process run.

A trial passes when nothing hangs (every process has a deadline), the fault ends in its clear message, the resume
starts at the newest complete checkpoint (so no more than the work since it is lost) and the final weights equal the
reference's. `--seed` makes the draws of a trial replayable. Writes `benchmarks/results/fault_soak{tag}.{json,md}`.
"""

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
from safetensors.torch import load_file

from veegan_hf.benchmarking.memory import rank_pid
from veegan_hf.loading import WEIGHTS_NAME
from veegan_hf.provenance import REPO, cpu_name, git_commit, write_results
from veegan_hf.training.checkpointing import checkpoint_problem, checkpoint_step, list_checkpoints

ARGS = ["--dataset_name", "grid", "--hidden_dim", "32", "--discriminator_hidden_dim", "32", "--latent_dim", "4"]
ARGS += ["--train_batch_size", "64", "--report_to", "none", "--checkpointing_steps", "20", "--max_train_steps", "200"]
ARGS += ["--validation_steps", "100", "--eval_at_end", "false", "--checkpoints_total_limit", "2"]
KINDS = {"kill": 0.3, "damage": 0.25, "disk": 0.3, "rank": 0.15}
DEADLINE = 240  # seconds any one process may take before the trial counts as a hang


def _command(out: Path, processes: int, *extra: str) -> list[str]:
    if processes == 1:
        return [sys.executable, str(REPO / "training" / "train.py"), *ARGS, "--output_dir", str(out), *extra]
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes)]
    launcher += ["--num_machines", "1", "--main_process_port", str(port), "--mixed_precision", "no"]
    launcher += ["--dynamo_backend", "no"]
    return [*launcher, str(REPO / "training" / "train.py"), *ARGS, "--output_dir", str(out), *extra]


def _env(processes: int) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return {**env, "ACCELERATE_USE_CPU": "1"} if processes > 1 else env


def _run(out: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(out, processes, *extra), env=_env(processes), capture_output=True, text=True, timeout=DEADLINE
    )


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    nets = ("generator", "reconstructor", "discriminator")
    return {f"{net}.{k}": v for net in nets for k, v in load_file(folder / net / WEIGHTS_NAME).items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _newest_complete(out: Path) -> int:
    """The step of the newest checkpoint a resume may use (0: none), judged as `latest` judges it."""
    for path in reversed(list_checkpoints(out)):
        with contextlib.suppress(OSError, ValueError):  # a damaged record is a damaged checkpoint
            use_ema = json.loads((path / "training_config.json").read_text())["use_ema"]
            if checkpoint_problem(path, use_ema=use_ema) is None:
                return checkpoint_step(path)
    return 0


def _resumed_from(out: Path) -> int | None:
    """The first step of the run's last segment, as its record states it."""
    with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
        return json.loads((out / "training_config.json").read_text())["segments"][-1]["from_step"]
    return None


def _kill_after_checkpoint(out: Path, processes: int, rng: random.Random) -> dict:
    """Starts the run and SIGKILLs it (rank 1 of it with several processes) a random moment after a random
    checkpoint appears; returns what the launch said and how long it took to end."""
    after = rng.choice(range(20, 200, 20))
    process = subprocess.Popen(
        _command(out, processes), env=_env(processes), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline, pid = time.monotonic() + DEADLINE, None
    try:
        while not (out / f"checkpoint-{after}").is_dir():
            if process.poll() is not None or time.monotonic() > deadline:
                return {"error": f"the run ended or stalled before checkpoint-{after}", "after": after}
            if processes > 1:
                pid = pid or rank_pid(process.pid, 1)
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.04))
        if processes > 1:
            pid = pid or rank_pid(process.pid, 1)
            if pid is None:
                return {"error": "rank 1 not found", "after": after}
        os.kill(pid or process.pid, signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = process.communicate(timeout=DEADLINE)
        return {"after": after, "ended_seconds": round(time.monotonic() - killed, 2), "stderr": stderr}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _damage(out: Path, rng: random.Random) -> str:
    """Truncates or removes one random file of the newest checkpoint; says which."""
    newest = list_checkpoints(out)[-1]
    files = sorted(p for p in newest.rglob("*") if p.is_file())
    victim = rng.choice(files)
    if rng.random() < 0.3:
        victim.unlink()
        return f"{victim.relative_to(out)} removed"
    size = victim.stat().st_size
    keep = rng.randrange(0, max(1, size))
    with open(victim, "r+b") as handle:
        handle.truncate(keep)
    return f"{victim.relative_to(out)} truncated {size} -> {keep} bytes"


@contextlib.contextmanager
def _small_disk(size_kb: int):
    """A tmpfs of `size_kb` KB mounted on a fresh folder; yields (folder, grow), where grow() frees space."""
    mount = Path(tempfile.mkdtemp(prefix="soak_disk_"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount)], check=True)
    try:
        yield mount, lambda: subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


def _trial(kind: str, seed: int, rng: random.Random, scratch: Path, references: dict) -> dict:
    result: dict = {"kind": kind, "seed": seed}
    processes = 2 if kind == "rank" else 1
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        if kind == "disk":
            size_kb = rng.randrange(100, 500)
            mount, grow = stack.enter_context(_small_disk(size_kb))
            out = mount / "o"
            faulted = _run(out, 1)
            # the script's `error:` lines; a progress bar may share the line, as tqdm writes without a newline
            errors = [line[line.index("error: ") :] for line in faulted.stderr.splitlines() if "error: " in line]
            result.update(fault=f"tmpfs of {size_kb} KB", returncode=faulted.returncode, message=errors[-1:])
            if faulted.returncode == 0:
                result["hit"] = "nothing: the run fit"
                if not _same(_weights(out), references[1]):
                    result["failure"] = "the final weights differ from the unfaulted run's"
                result["seconds"] = round(time.monotonic() - start, 1)
                return result
            if len(errors) != 1 or "the disk is full" not in errors[0]:
                result["failure"] = f"not one clear line: {faulted.stderr[-600:]}"
            result["hit"] = errors[0].split(" in ")[0].removeprefix("error: the disk is full: ") if errors else "?"
            grow()
        else:
            out = scratch / f"trial-{seed}"
            killed = _kill_after_checkpoint(out, processes, rng)
            if "error" in killed:
                result["failure"] = killed["error"]
                return result
            result.update(fault=f"killed after checkpoint-{killed['after']}", ended_seconds=killed["ended_seconds"])
            result["hit"] = f"after checkpoint-{killed['after']}"
            if kind == "rank":
                named = "rank" in killed["stderr"].lower() and "signal 9" in killed["stderr"].lower().replace(
                    "sigkill", "signal 9"
                )
                if killed["ended_seconds"] > 30 or not named:
                    result["failure"] = f"the launcher took {killed['ended_seconds']} s or did not name the rank"
            if kind == "damage":
                damaged = _damage(out, rng)
                result["fault"] += f"; {damaged}"
                result["hit"] = damaged.split(" ")[0].split("/", 1)[-1] + (" removed" if "removed" in damaged else "")
        expected_from = _newest_complete(out)
        on_disk = list_checkpoints(out)
        newest = checkpoint_step(on_disk[-1]) if on_disk else 0
        resumed = _run(out, processes, "--resume_from_checkpoint", "latest")
        if newest != expected_from and f"skipping checkpoint-{newest}" not in resumed.stderr:
            result["failure"] = f"checkpoint-{newest} is damaged, but the resume did not say it skipped it"
        if on_disk and expected_from == 0:  # every checkpoint damaged: `latest` refuses, naming them; start over
            if resumed.returncode == 0 or f"no checkpoint in {out} can be resumed" not in resumed.stderr:
                result.setdefault("failure", "no checkpoint is complete, but latest did not refuse by name")
            result["message"] = [line for line in resumed.stderr.splitlines() if "error: " in line][-1:]
            resumed = _run(out, processes, "--overwrite_output_dir")
        result.update(newest_complete=expected_from, resumed_from=_resumed_from(out), resume_rc=resumed.returncode)
        if kind == "damage" and "skipping" in resumed.stderr:
            result["message"] = [line for line in resumed.stderr.splitlines() if "skipping" in line][-1:]
        if resumed.returncode != 0:
            result.setdefault("failure", f"the resume failed: {resumed.stderr[-600:]}")
        elif result["resumed_from"] != expected_from:
            result.setdefault("failure", f"resumed from step {result['resumed_from']}, not {expected_from}")
        elif not _same(_weights(out), references[processes]):
            result.setdefault("failure", "the final weights differ from the unfaulted run's")
    result["seconds"] = round(time.monotonic() - start, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="the first trial's seed (default: from the clock)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="which faults to draw from, comma-separated")
    parser.add_argument("--tag", default="")
    parser.add_argument("--results_dir", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"--kinds {sorted(unknown)}: choose from {list(KINDS)}")
    if "disk" in kinds and os.geteuid() != 0:
        parser.error("the disk trials mount a small tmpfs, which needs root; leave them out with --kinds")
    first_seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000
    scratch = Path(tempfile.mkdtemp(prefix="fault_soak_"))
    try:
        references = {}
        for processes in sorted({2 if k == "rank" else 1 for k in kinds}):
            done = _run(scratch / f"reference-{processes}", processes)
            if done.returncode != 0:
                raise SystemExit(f"the unfaulted {processes}-process run failed: {done.stderr[-2000:]}")
            references[processes] = _weights(scratch / f"reference-{processes}")
        trials = []
        for index in range(args.trials):
            seed = first_seed + index
            rng = random.Random(seed)  # the kind first, then the trial's own draws: one stream, replayable
            kind = rng.choices(kinds, [KINDS[k] for k in kinds])[0]
            try:
                trial = _trial(kind, seed, rng, scratch, references)
            except subprocess.TimeoutExpired as err:
                trial = {"kind": kind, "seed": seed, "failure": f"hung: {' '.join(map(str, err.cmd[:3]))} ..."}
            trials.append(trial)
            status = trial.get("failure", "ok")
            print(f"[{index + 1}/{args.trials}] {kind} seed {seed}: {trial.get('fault', '')} -> {status}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    failures = [t for t in trials if "failure" in t]
    counts = Counter(t["kind"] for t in trials)
    failed = Counter(t["kind"] for t in failures)
    lost = [t["newest_complete"] for t in trials if "newest_complete" in t]
    lines = ["| fault | trials | passed | distinct points hit | most frequent |", "|---|---|---|---|---|"]
    for kind in KINDS:
        if counts[kind]:
            hits = Counter(t.get("hit", "?") for t in trials if t["kind"] == kind)
            common = ", ".join(f"{hit} ({n})" for hit, n in hits.most_common(3))
            lines.append(f"| {kind} | {counts[kind]} | {counts[kind] - failed[kind]} | {len(hits)} | {common} |")
    meta = {"trials": len(trials), "first_seed": first_seed, "commit": git_commit(), "cpu": cpu_name()}
    meta["cores"], meta["args"] = os.cpu_count(), ARGS
    note = (
        f"\n{len(trials)} trials (first seed {first_seed}), {len(failures)} failed, at commit `{meta['commit']}` on "
        f"{meta['cores']} cores of {meta['cpu']}. Resumes started at steps {sorted(set(lost))}. Command: "
        f"`python benchmarks/fault_soak.py {' '.join(argv or sys.argv[1:])}`.\n"
        + "".join(f"- seed {t['seed']} ({t['kind']}): {t['failure']}\n" for t in failures[:10])
    )
    payload = {"meta": meta, "trials": trials}
    write_results(Path(args.results_dir), f"fault_soak{args.tag}", payload, "\n".join(lines) + note)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
