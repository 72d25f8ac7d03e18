"""Many people on the Space at once: latency per endpoint and the server's memory under a mixed load.

    python benchmarks/space_load.py                       # 64 users for 90 s against the shipped digit model
    python benchmarks/space_load.py --users 8 --seconds 15 --tag _smoke

Starts `python spaces/app.py` as a process (the deployer's command), then `--users` threads of `gradio_client` that
each loop until `--seconds` are up, picking for every request: a /sample of 16 digits (60%), an /invert of a large
upload (a ~9 MB PNG, 50 refinement steps; 20%), or an /interpolate of 8 frames (20%). It records every request's
latency and outcome (answered, refused as busy, failed) and the resident memory (VmRSS) of the server and its
inversion workers once a second, and writes `benchmarks/results/space_load{tag}.{json,md}`: p50 / p95 / max per
endpoint, failures, and RSS at start, after warm-up (the first 20% of the run) and at the end.
"""

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from veegan_hf.benchmarking.memory import process_rss_mib
from veegan_hf.provenance import REPO, cpu_name, git_commit, write_results

MIX = (("sample", 0.6), ("invert", 0.2), ("interpolate", 0.2))


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


def _user(url: str, upload: str, stop_at: float, seed: int, records: list, lock: threading.Lock) -> None:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        start = time.monotonic()
        try:
            if kind == "sample":
                client.predict(rng.randrange(1000), 16, 0.0, api_name="/sample")
            elif kind == "invert":
                client.predict(handle_file(upload), False, 50, api_name="/invert")
            else:
                client.predict(rng.randrange(1000), rng.randrange(1000), 8, None, None, False, api_name="/interpolate")
            outcome = "ok"
        except Exception as err:  # gradio_client raises its own types; the text tells busy from broken
            outcome = "busy" if "queue is full" in str(err).lower() or "busy" in str(err).lower() else "failed"
        with lock:
            records.append({"kind": kind, "seconds": time.monotonic() - start, "outcome": outcome, "at": start})


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.5), "p95": pick(0.95), "max": ordered[-1], "count": len(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--tag", default="")
    parser.add_argument("--results_dir", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    port, scratch = _free_port(), Path(tempfile.mkdtemp(prefix="space_load_"))
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(
        [sys.executable, str(REPO / "spaces" / "app.py"), "--port", str(port)],
        cwd=scratch,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:  # up when the page answers
            try:
                import urllib.request

                urllib.request.urlopen(url, timeout=2).read(100)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the Space did not start: {server.stderr.read()[-2000:]}") from None
                time.sleep(0.5)
        upload = str(_big_upload(scratch))
        records: list[dict] = []
        memory: list[tuple[float, float]] = []
        lock = threading.Lock()
        start = time.monotonic()
        stop_at = start + args.seconds
        threads = [
            threading.Thread(target=_user, args=(url, upload, stop_at, seed, records, lock), daemon=True)
            for seed in range(args.users)
        ]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            rss = process_rss_mib(server.pid, with_children=True)
            if rss is not None:
                memory.append((time.monotonic() - start, rss))
            time.sleep(1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    warm = [rss for at, rss in memory if at >= 0.2 * args.seconds]
    latency = {
        kind: _quantiles([r["seconds"] for r in records if r["kind"] == kind and r["outcome"] == "ok"])
        for kind, _ in MIX
    }
    outcomes = {o: sum(r["outcome"] == o for r in records) for o in ("ok", "busy", "failed")}
    rss = {
        "start": memory[0][1],
        "after_warmup": warm[0] if warm else None,
        "end": memory[-1][1],
        "max": max(m for _, m in memory),
    }
    meta = {
        "users": args.users,
        "seconds": args.seconds,
        "commit": git_commit(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
    }
    lines = ["| endpoint | answered | p50 s | p95 s | max s |", "|---|---|---|---|---|"]
    for kind, q in latency.items():
        if q:
            lines.append(f"| /{kind} | {q['count']} | {q['p50']:.2f} | {q['p95']:.2f} | {q['max']:.2f} |")
    growth = 100 * (rss["end"] / rss["after_warmup"] - 1) if rss["after_warmup"] else float("nan")
    note = (
        f"\n{args.users} `gradio_client` users for {args.seconds:g} s against `python spaces/app.py` (the shipped "
        f"digit model) on {meta['cores']} cores of {meta['cpu']}: {outcomes['ok']} answered, {outcomes['busy']} "
        f"refused as busy, {outcomes['failed']} failed. Server RSS (with its inversion workers) "
        f"{rss['start']:.0f} MiB at start, "
        f"{rss['after_warmup'] or 0:.0f} after warm-up, {rss['end']:.0f} at the end ({growth:+.1f}% after "
        f"warm-up), {rss['max']:.0f} at most. "
        f"Command: `python benchmarks/space_load.py {' '.join(argv or sys.argv[1:])}` at commit `{meta['commit']}`.\n"
    )
    payload = {"meta": meta, "latency": latency, "outcomes": outcomes, "rss_mib": rss, "memory": memory}
    write_results(Path(args.results_dir), f"space_load{args.tag}", payload, "\n".join(lines) + note)
    return 0 if outcomes["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
