"""The first hour of a new user, end to end in subprocesses: the README's first command (on a reduced budget), the
README's snippets as written, a custom imagefolder run, a second run into the same folder, and a push to a local Hub
whose card is then read back."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import PIL.Image
import pytest

REPO = Path(__file__).resolve().parents[1]
TRAIN = str(REPO / "training" / "train.py")
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip


def readme_snippets(section: str) -> list[str]:
    """The ```python blocks of one `## section` of README.md, as written."""
    text = (REPO / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.DOTALL)


def readme_bash(section: str) -> list[str]:
    """The command lines of the ```bash blocks of one `### section` of README.md."""
    text = (REPO / "README.md").read_text()
    body = text.split(f"### {section}\n", 1)[1].split("\n### ", 1)[0]
    return [line for block in re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL) for line in block.splitlines()]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A user's folder: the README's first command has run there, on a reduced budget."""
    home = tmp_path_factory.mktemp("newcomer")
    (home / "spaces").symlink_to(REPO / "spaces")  # the snippets name the shipped model by its repository path
    result = _run([*LAUNCH, TRAIN, "--max_train_steps", "60", "--validation_steps", "30"], home)
    assert result.returncode == 0, result.stderr[-3000:]
    return home


def test_the_first_command_ends_with_a_summary(workspace):
    out = workspace / "veegan-output"
    for name in ("model_index.json", "README.md", "metrics.json", "training_config.json", "samples/final.png"):
        assert (out / name).exists(), name
    log = (workspace / "veegan-output" / "training_config.json").read_text()
    assert json.loads(log)["preset"] == "ring"


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_readme_snippets_run_as_written(workspace, index):
    snippets = readme_snippets("Use a trained model")
    # the default 2-D model, the shipped image model, sampling with D, and the torch.export of the shipped G
    assert len(snippets) == 4
    checks = {
        2: "\nassert abs(out.acceptance_rate - 0.5) < 0.1 and len(strict.samples) == 2500\n",
        3: "\nassert images.shape == (5, 1, 28, 28)\n",
    }
    script = workspace / f"snippet{index}.py"
    script.write_text(snippets[index] + checks.get(index, ""))
    result = _run([sys.executable, str(script)], workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    if index == 1:
        assert PIL.Image.open(workspace / "sample.png").size == (28, 28)
    if index == 3:
        assert (workspace / "generator.pt2").stat().st_size > 100_000


def test_a_second_run_into_the_same_folder_is_refused(workspace):
    before = (workspace / "veegan-output" / "metrics.json").read_text()
    result = _run([*LAUNCH, "-q", TRAIN, "--max_train_steps", "5"], workspace)
    assert result.returncode != 0
    assert result.stderr.count("holds another run") == 1 and "--overwrite_output_dir" in result.stderr
    assert (workspace / "veegan-output" / "metrics.json").read_text() == before  # the first run is untouched


def test_a_custom_imagefolder_trains_a_grayscale_model(workspace):
    """The README's "Train on your own images": its export snippet as written, then its command on a short budget."""
    (snippet,) = readme_snippets("Train")
    (workspace / "export.py").write_text(snippet)
    result = _run([sys.executable, "export.py"], workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = workspace / "my_digits"
    assert len(list(folder.glob("*.png"))) == 2500
    assert PIL.Image.open(folder / "0000.png").mode == "L"
    (command,) = [line for line in readme_bash("Train on your own images") if "--train_data_dir" in line]
    cmd = [*LAUNCH, TRAIN, *command.split("training/train.py", 1)[1].split()]  # the README's flags, as written
    cmd = [*cmd, "--max_train_steps", "6", "--train_batch_size", "16"]  # a short budget on top
    assert "--output_dir" in cmd and "digits-model" in cmd  # its own folder: veegan-output holds the first run
    result = _run(cmd, workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((workspace / "digits-model" / "training_config.json").read_text())
    assert (config["preset"], config["num_channels"], config["image_column"]) == ("image", 1, "image")
    assert config["learning_rate"] == 2e-4 and config["adversarial_loss"] == "non_saturating"  # image defaults
    assert "Training finished" in result.stderr and "tensorboard --logdir" in result.stderr


def test_a_push_to_the_hub_carries_a_card_worth_reading(workspace):
    from huggingface_hub import ModelCard

    from tests.hub_server import FakeHub

    cmd = [*LAUNCH, TRAIN, "--max_train_steps", "20", "--output_dir", str(workspace / "pushed-run")]
    cmd += ["--push_to_hub", "--hub_model_id", "newcomer/veegan-ring", "--hub_token", "hf_test"]
    with FakeHub() as server:
        env = {**_env(), "HF_ENDPOINT": server.endpoint, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}
        result = subprocess.run(cmd, cwd=workspace, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        files = server.files("newcomer/veegan-ring")
    assert {"model_index.json", "README.md", "samples.png", "generator/config.json"} <= set(files)
    text = files["README.md"].decode()
    card = ModelCard(text)
    assert card.data.library_name == "veegan-hf" and "veegan" in card.data.tags
    assert str(workspace) not in text and "/tmp/" not in text  # no local path reaches the Hub
    assert "![samples](samples.png)" in text and "VEEGAN: veegan" not in text
    assert "pushed" in result.stderr  # the end-of-run summary says where it went
