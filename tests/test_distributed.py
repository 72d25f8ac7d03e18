"""Real 2-rank DDP on CPU (gloo): the README's launch command, identical weights across ranks, disjoint shards."""

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from veegan_hf import VEEGAN

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    """A port no other launch is using: two launches on accelerate's default 29500 would wait on each other."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env_extra or {})}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--main_process_port",
        str(_free_port()),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(REPO / "training" / "train.py"),
        *args,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def test_two_process_cpu_run_keeps_ranks_identical(tmp_path):
    out = tmp_path / "OUT"
    result = _launch(
        "--config",
        "training/configs/grid.yaml",
        "--max_train_steps",
        "50",
        "--output_dir",
        str(out),
        "--train_batch_size",
        "64",
        "--report_to",
        "none",
        env_extra={"ACCELERATE_USE_CPU": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    # train() gathers a weight checksum from both ranks and fails the run if they differ
    assert metrics["train/num_processes"] == 2 and metrics["train/steps"] == 50
    config = json.loads((out / "training_config.json").read_text())
    assert config["effective_batch_size"] == 128
    pipe = VEEGAN.from_pretrained(out)
    assert pipe(batch_size=4, output_type="pt").samples.shape == (4, 2)


def test_multi_gpu_flag_without_gpus_is_refused(tmp_path):
    """The trap from ECOSYSTEM.md: without ACCELERATE_USE_CPU=1 both processes would train alone, silently."""
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            str(REPO / "training" / "train.py"),
            "--max_train_steps",
            "2",
            "--output_dir",
            str(tmp_path / "o"),
        ],
        env={**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "set ACCELERATE_USE_CPU=1" in result.stderr


def _shards_worker(parquet: str, results_dir: str) -> None:
    """Runs in each of 2 ranks: the training data pipeline, prepared by Accelerate, over one epoch."""
    from accelerate import Accelerator

    from veegan_hf.training import TrainingConfig
    from veegan_hf.training.sources import DataLoaderSource, DigitSource, resolve_data

    accelerator = Accelerator(cpu=True)
    config, dataset = resolve_data(TrainingConfig(dataset_name=parquet, train_batch_size=4, resolution=28))
    assert config.num_channels == 1 and config.image_column == "image"  # detected: the images are grayscale
    source = DataLoaderSource(config, dataset)
    source.dataloader = accelerator.prepare(source.dataloader)
    source.accelerator = accelerator
    seen = []
    for batch, _ in zip(source.batches(accelerator.device, 0), range(len(source.dataloader))):
        # every image is one flat gray level that encodes its row index
        seen += ((batch.mean(dim=(1, 2, 3)) + 1) * 127.5 / 8).round().long().tolist()
    digits = DigitSource("mnist", 8, 28, accelerator.process_index, accelerator.num_processes)
    rank = accelerator.process_index
    Path(results_dir, f"rank{rank}.json").write_text(
        json.dumps(
            {
                "rows": seen,
                "world": accelerator.num_processes,
                "digit_hashes": [hashlib.sha1(image.numpy().tobytes()).hexdigest() for image in digits.images],
            }
        )
    )


def test_each_rank_gets_its_own_shard(tmp_path):
    import datasets
    from accelerate import debug_launcher

    rows = []
    for i in range(16):
        buffer = PIL.Image.fromarray(np.full((28, 28), i * 8, dtype=np.uint8))
        path = tmp_path / f"{i}.png"
        buffer.save(path)
        rows.append({"bytes": path.read_bytes(), "path": None})
    features = datasets.Features({"image": datasets.Image()})
    datasets.Dataset.from_dict({"image": rows}, features=features).to_parquet(str(tmp_path / "data.parquet"))
    debug_launcher(lambda: _shards_worker(str(tmp_path / "data.parquet"), str(tmp_path)), num_processes=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world"] == 2 for r in ranks)
    a, b = set(ranks[0]["rows"]), set(ranks[1]["rows"])
    assert len(ranks[0]["rows"]) == len(a) == 8 and len(b) == 8  # each rank: half an epoch, no repeats
    assert not a & b and a | b == set(range(16))  # disjoint, and together the whole dataset
    digits = [set(r["digit_hashes"]) for r in ranks]
    assert len(digits[0]) == len(digits[1]) == 1250 and not digits[0] & digits[1]


@pytest.mark.parametrize("objective", ["veegan", "unrolled"])
def test_objectives_under_ddp(tmp_path, objective):
    """functional_call views of D (VEEGAN's frozen D, the unrolled copies) must not upset DDP's reducer."""
    out = tmp_path / objective
    result = _launch(
        "--dataset_name",
        "ring",
        "--max_train_steps",
        "4",
        "--train_batch_size",
        "32",
        "--objective",
        objective,
        "--unrolled_steps",
        "2",
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        "--eval_at_end",
        "false",
        env_extra={"ACCELERATE_USE_CPU": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.isfinite(VEEGAN.from_pretrained(out)(batch_size=2, output_type="pt").samples).all()
