"""Many people on the Space at once: latency per endpoint and the server's memory under a mixed load.

    python benchmarks/space_load.py                       # 64 users for 90 s against the shipped digit model
    python benchmarks/space_load.py --users 8 --seconds 15 --tag _smoke

Starts `python spaces/app.py` as a process (the deployer's command), then `--users` threads of `gradio_client`. Each
loads the page (the client's config and API, and one first sample) first; once all have, the clock starts, the users
arrive evenly over `--ramp_seconds`, and each loops until `--seconds` are up, picking for every request: a /sample of
16 digits (60%), an /invert of a large upload (a ~9 MB PNG, 50 refinement steps; 20%), or an /interpolate of 8 frames
(20%). It records every request's latency and outcome (answered, refused as busy, failed) and the resident memory
(VmRSS) of the server and its inversion workers once a second, and writes
`benchmarks/results/space_load{tag}.{json,md}`: p50 / p95 / max per endpoint over the whole run and after warm-up (the
first 20%, while the users arrive and the inversions' queue fills), failures, CPU seconds per process, and RSS at
start, after warm-up and at the end.
"""

import argparse
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from veegan_hf.benchmarking.memory import descendants, process_cpu_seconds, process_rss_mib
from veegan_hf.provenance import REPO, cpu_name, git_commit, write_results

MIX = (("sample", 0.6), ("invert", 0.2), ("interpolate", 0.2))
REQUEST_GRACE = 120  # seconds a request may take past the end of the run before it counts as failed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _big_upload(folder: Path) -> Path:
    """A ~9 MB PNG (noise compresses badly): decoded, shrunk and inverted by every /invert."""
    import numpy as np
    import PIL.Image

    path = folder / "big.png"
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 255, (1800, 1800, 3), dtype=np.uint8)).save(path)
    return path


def _fetch_outputs(result: object) -> int:
    """GETs every file an answer names, as the page does to show it; returns how many."""
    import urllib.request

    if isinstance(result, dict) and isinstance(result.get("url"), str):
        with urllib.request.urlopen(result["url"], timeout=REQUEST_GRACE) as response:
            response.read()
        return 1
    if isinstance(result, (list, tuple)):
        return sum(_fetch_outputs(item) for item in result)
    return 0


def _user(url: str, upload: str, clock: dict, ready: threading.Barrier, seed: int, records: list, lock) -> None:
    from gradio_client import Client, handle_file

    try:
        # the page's config and API, fetched before the clock starts. The outputs are fetched as a browser does
        # (_fetch_outputs): gradio_client's own download builds an HTTP client and a TLS context per file, which on
        # 2 shared cores cost this script more CPU than the server spent answering
        client = Client(url, verbose=False, download_files=False)
        client.predict(seed, 1, 0.0, api_name="/sample")  # the client's first-call set-up (its event stream), too
    except Exception:
        ready.abort()  # every user then stops: the run would not be the load it claims
        raise
    ready.wait(timeout=600)
    rng, stop_at = random.Random(seed), clock["stop_at"]
    time.sleep(max(0.0, clock["arrivals"][seed] - time.monotonic()))  # this user's arrival
    while time.monotonic() < stop_at:
        kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        start = time.monotonic()
        try:
            if kind == "sample":
                job = client.submit(rng.randrange(1000), 16, 0.0, api_name="/sample")
            elif kind == "invert":
                job = client.submit(handle_file(upload), False, 50, api_name="/invert")
            else:
                seeds = (rng.randrange(1000), rng.randrange(1000))
                job = client.submit(*seeds, 8, None, None, False, api_name="/interpolate")
            result = job.result(timeout=max(0.0, stop_at - time.monotonic()) + REQUEST_GRACE)  # a stall fails it
            files = _fetch_outputs(result)
            outcome = "ok"
            error = None
        except Exception as err:  # gradio_client raises its own types; the text tells busy from broken
            outcome = "busy" if "queue is full" in str(err).lower() or "busy" in str(err).lower() else "failed"
            error, files = f"{type(err).__name__}: {str(err)[:300]}", 0
        with lock:
            records.append(
                {
                    "kind": kind,
                    "seconds": time.monotonic() - start,
                    "outcome": outcome,
                    "at": start,
                    "error": error,
                    "files": files,
                }
            )


def _cpu_seconds(server: int) -> dict[str, float]:
    """CPU seconds used so far by the server's own process, by its workers, and by this script's users."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    workers = [process_cpu_seconds(child) for child in descendants(server)]
    return {
        "server": process_cpu_seconds(server) or 0.0,
        "workers": sum(w for w in workers if w is not None),
        "users": usage.ru_utime + usage.ru_stime,
    }


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.5), "p95": pick(0.95), "max": ordered[-1], "count": len(values)}


def _start_server(scratch: Path, port: int, inversion_workers: int | None) -> subprocess.Popen:
    """`python spaces/app.py` as a deployer starts it, its log in `scratch/server.log`."""
    options = [] if inversion_workers is None else ["--inversion_workers", str(inversion_workers)]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with open(scratch / "server.log", "w") as log:  # a file, not a pipe: a full pipe would stall the server mid-write
        return subprocess.Popen(
            [sys.executable, str(REPO / "spaces" / "app.py"), "--port", str(port), *options],
            cwd=scratch,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait_until_up(url: str, server: subprocess.Popen, scratch: Path) -> None:
    import urllib.request

    deadline = time.monotonic() + 180
    while True:  # up when the page answers
        try:
            urllib.request.urlopen(url, timeout=2).read(100)
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                tail = (scratch / "server.log").read_text()[-2000:]
                raise SystemExit(f"the Space did not start: {tail}") from None
            time.sleep(0.5)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument(
        "--ramp_seconds",
        type=float,
        default=10,
        help="users arrive evenly over this many seconds from the start, as visitors do (0: all at the same instant)",
    )
    parser.add_argument(
        "--inversion_workers",
        type=int,
        default=None,
        help="passed to spaces/app.py (default: the app's own, 1); 0 runs inversions in the server's threads",
    )
    parser.add_argument("--tag", default="")
    parser.add_argument("--results_dir", default=str(REPO / "benchmarks" / "results"))
    return parser.parse_args(argv)


def _drive(args: argparse.Namespace, url: str, upload: str, server: subprocess.Popen) -> dict:
    """The users' requests against a running server: every request's record, the server's RSS once a second (with
    its workers, and alone) and the CPU seconds each side used, from the moment the clock starts."""
    records: list[dict] = []
    lock, clock = threading.Lock(), {}

    # the clock starts once every user has loaded the page: 64 first visits in one second are another load
    def start_clock() -> None:
        now = time.monotonic()
        arrivals = [now + args.ramp_seconds * user / args.users for user in range(args.users)]
        clock.update(start=now, stop_at=now + args.seconds, arrivals=arrivals)

    ready = threading.Barrier(args.users + 1, action=start_clock)
    threads = [
        threading.Thread(target=_user, args=(url, upload, clock, ready, seed, records, lock), daemon=True)
        for seed in range(args.users)
    ]
    for thread in threads:
        thread.start()
    before = process_rss_mib(server.pid, with_children=True)
    ready.wait(timeout=600)
    start = clock["start"]
    cpu_before = _cpu_seconds(server.pid)
    memory: list[tuple[float, float, float]] = [(0.0, before, process_rss_mib(server.pid))]
    while any(t.is_alive() for t in threads):
        rss = process_rss_mib(server.pid, with_children=True)
        if rss is not None:
            memory.append((time.monotonic() - start, rss, process_rss_mib(server.pid)))
        time.sleep(1)
    cpu = {k: round(v - cpu_before[k], 1) for k, v in _cpu_seconds(server.pid).items()}
    return {"records": records, "memory": memory, "start": start, "cpu": cpu}


def _summary(args: argparse.Namespace, run: dict, command: str) -> tuple[dict, str]:
    """The results file's payload and its Markdown: latency per endpoint, outcomes, failures, RSS and CPU."""
    records, memory, start, cpu = run["records"], run["memory"], run["start"], run["cpu"]
    # warm-up: the first 20% of the run, while the users arrive and the inversions' queue fills
    warm = [(rss, own) for at, rss, own in memory if at >= 0.2 * args.seconds]
    warm_from = start + 0.2 * args.seconds

    def latency(after: float) -> dict[str, dict]:
        return {
            kind: _quantiles(
                [r["seconds"] for r in records if r["kind"] == kind and r["outcome"] == "ok" and r["at"] >= after]
            )
            for kind, _ in MIX
        }

    whole, warmed = latency(float("-inf")), latency(warm_from)
    outcomes = {o: sum(r["outcome"] == o for r in records) for o in ("ok", "busy", "failed")}
    rss = {
        "start": memory[0][1],
        "after_warmup": warm[0][0] if warm else None,
        "end": memory[-1][1],
        "max": max(m for _, m, _ in memory),
        "server_only_after_warmup": warm[0][1] if warm else None,
        "server_only_end": memory[-1][2],
    }
    errors = sorted({f"/{r['kind']}: {r['error']}" for r in records if r["outcome"] == "failed"})
    meta = {
        "users": args.users,
        "seconds": args.seconds,
        "ramp_seconds": args.ramp_seconds,
        "inversion_workers": args.inversion_workers,
        "cpu_seconds": cpu,
        "output_files_fetched": sum(r["files"] for r in records),
        "commit": git_commit(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
    }
    lines = [
        "| endpoint | answered | p50 s | p95 s | max s | p95 s after warm-up |",
        "|---|---|---|---|---|---|",
    ]
    for kind, q in whole.items():
        if q:
            after = f"{warmed[kind]['p95']:.2f}" if warmed[kind] else "-"
            lines.append(f"| /{kind} | {q['count']} | {q['p50']:.2f} | {q['p95']:.2f} | {q['max']:.2f} | {after} |")
    growth = 100 * (rss["end"] / rss["after_warmup"] - 1) if rss["after_warmup"] else float("nan")
    note = (
        f"\n{args.users} `gradio_client` users (arriving over {args.ramp_seconds:g} s) for {args.seconds:g} s "
        f"against `python spaces/app.py` (the shipped digit model) on {meta['cores']} cores of {meta['cpu']}: "
        f"{outcomes['ok']} answered, {outcomes['busy']} refused as busy, {outcomes['failed']} failed. "
        f"Server RSS (with its inversion workers) {rss['start']:.0f} MiB at start, {rss['after_warmup'] or 0:.0f} "
        f"after warm-up, {rss['end']:.0f} at the end ({growth:+.1f}% after warm-up), {rss['max']:.0f} at most; "
        f"the server alone {rss['server_only_after_warmup'] or 0:.0f} after warm-up and "
        f"{rss['server_only_end'] or 0:.0f} at the end. "
        + f"CPU seconds in the run: server {cpu['server']:g}, inversion workers {cpu['workers']:g}, the users "
        f"(this script) {cpu['users']:g}. "
        + (f"Failures: {'; '.join(errors[:3])}. " if errors else "")
        + f"Command: `python benchmarks/space_load.py {command}` at commit `{meta['commit']}`.\n"
    )
    payload = {
        "meta": meta,
        "latency": whole,
        "latency_after_warmup": warmed,
        "outcomes": outcomes,
        "errors": errors,
        "requests": [[r["kind"], round(r["at"] - start, 2), round(r["seconds"], 3), r["outcome"]] for r in records],
        "rss_mib": rss,
        "memory": memory,
    }
    return payload, "\n".join(lines) + note


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    port, scratch = _free_port(), Path(tempfile.mkdtemp(prefix="space_load_"))
    server = _start_server(scratch, port, args.inversion_workers)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, server, scratch)
        run = _drive(args, url, str(_big_upload(scratch)), server)
    finally:
        server.terminate()
        server.wait(timeout=30)
    payload, markdown = _summary(args, run, " ".join(argv or sys.argv[1:]))
    write_results(Path(args.results_dir), f"space_load{args.tag}", payload, markdown)
    return 0 if payload["outcomes"]["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
