"""Mixed-precision training, checked end to end: finite losses, finite weights, and for fp16 a loss scale that moves.

    python benchmarks/precision_check.py --device cuda --steps 2500   # fp16 (GradScaler) and bf16 on a GPU
    python benchmarks/precision_check.py --smoke                      # bf16 on CPU, a few steps: what CI runs

Each precision trains `training/train.py` on the `stacked_mnist` preset (conv networks, BatchNorm in G) for `--steps`
steps. fp16 on CUDA runs under a GradScaler: its scale starts at 2^16 and halves on every overflow, so a scale that
never changes in a few thousand steps would mean the scaler is not in the loop. fp16 on CPU is a no-op (no autocast,
no scaler) and is skipped there. The record, with the device, commit and command, goes to
`benchmarks/results/precision{tag}.json`.
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from veegan_hf.benchmarking.runs import train_run
from veegan_hf.loading import WEIGHTS_NAME
from veegan_hf.provenance import REPO, device_name, git_commit


def check(precision: str, steps: int, work: Path) -> dict:
    """One training run at `precision`; what it logged, and whether the paths did what they claim."""
    import torch
    from safetensors.torch import load_file

    job = {
        "dataset": "stacked_mnist",
        "suffix": "",
        "objective": "veegan",
        "seed": 0,
        "output_dir": str(work / precision),
        "overrides": [
            "--mixed_precision",
            precision,
            "--max_train_steps",
            str(steps),
            "--logging_steps",
            "10",
            "--checkpointing_steps",
            "none",
            "--eval_at_end",
            "false",
        ],
    }
    try:
        run = train_run(job)
    except Exception as err:  # a NaN loss stops train() with an error: that is a failed check, not a crash
        return {"ok": False, "error": f"{type(err).__name__}: {err}"}
    metrics = run["metrics"]
    weights = {
        name: load_file(Path(job["output_dir"]) / name / WEIGHTS_NAME)
        for name in ("generator", "reconstructor", "discriminator")
    }
    finite = all(bool(torch.isfinite(t).all()) for tensors in weights.values() for t in tensors.values())
    result = {
        "steps": metrics["train/steps"],
        "steps_per_second": metrics["train/steps_per_second"],
        "weights_finite": finite,
        "loss_scale_min": metrics.get("train/loss_scale_min"),
        "loss_scale_max": metrics.get("train/loss_scale_max"),
    }
    scaled = precision == "fp16"
    moved = scaled and result["loss_scale_min"] is not None and result["loss_scale_min"] != result["loss_scale_max"]
    result["loss_scale_moved"] = moved if scaled else None
    result["ok"] = finite and result["steps"] == steps and (moved or not scaled)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=2500, help="training steps per precision")
    parser.add_argument("--smoke", action="store_true", help="bf16 on CPU for a few steps")
    parser.add_argument("--results_dir", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible.")
    steps = 20 if args.smoke else args.steps
    # fp16 on CPU is a silent no-op in Accelerate: nothing to check there
    precisions = ("fp16", "bf16") if args.device == "cuda" else ("bf16",)
    work = Path(tempfile.mkdtemp(prefix="precision_"))
    start = time.perf_counter()
    checks = {precision: check(precision, steps, work) for precision in precisions}
    payload = {
        "meta": {
            "device": args.device,
            "device_name": device_name(args.device),
            "torch": torch.__version__,
            "commit": git_commit(),
            "steps": steps,
            "wall_seconds": round(time.perf_counter() - start, 1),
            "command": "python benchmarks/precision_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        },
        "checks": checks,
    }
    tag = ("_smoke" if args.smoke else "") + ("_cuda" if args.device == "cuda" else "")
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, allow_nan=False, default=lambda v: None if math.isnan(v) else v)
    (results / f"precision{tag}.json").write_text(text)
    print(text)
    return 0 if all(c["ok"] for c in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
