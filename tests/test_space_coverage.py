"""The Space's "What can't it make?" tab, end to end through `gradio_client`, on the committed digit model and its
committed coverage report."""

import json
from pathlib import Path

import PIL.Image
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from veegan_hf.data import mnist_split

from .test_space import app

MODEL = Path(__file__).resolve().parents[1] / "spaces" / "veegan-mnist"


@pytest.fixture(scope="module")
def served():
    demo = app.build_demo(app.load_pipeline(MODEL), model_name="veegan-mnist")
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **app.launch_options())
    yield Client(url, verbose=False), demo
    demo.close()


def _digit(tmp_path: Path, invert: bool = False) -> str:
    images, _ = mnist_split("classifier_test")  # digits no GAN trained on
    pixels = images[0].numpy()
    path = tmp_path / ("dark_on_light.png" if invert else "digit.png")
    PIL.Image.fromarray(255 - pixels if invert else pixels, "L").resize((112, 112)).save(path)
    return str(path)


def test_the_committed_report_is_shown_and_matches_its_files(served):
    client, demo = served
    handler = demo.veegan_coverage
    metrics = json.loads((MODEL / "coverage" / "metrics.json").read_text())
    assert handler.can_judge and handler.dataset == "mnist"
    assert f"{100 * metrics['uncovered_fraction']:.1f}%" in handler.verdict()
    assert "/coverage" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]


def test_a_real_digit_is_makeable_and_its_negative_is_not(served, tmp_path):
    client, _ = served
    *images, verdict, details = client.predict(handle_file(_digit(tmp_path)), False, api_name="/coverage")
    assert all(PIL.Image.open(path).size[0] >= 28 for path in images)
    assert details["makeable"] and verdict.startswith("**makeable**")
    # light strokes on dark are what the model knows: the negative is far from anything it draws ...
    _, _, _, verdict, details = client.predict(handle_file(_digit(tmp_path, True)), False, api_name="/coverage")
    assert not details["makeable"] and not details["covered"] and details["coverage_ratio"] > 2
    # ... until its colours are inverted back
    _, _, _, _, details = client.predict(handle_file(_digit(tmp_path, True)), True, api_name="/coverage")
    assert details["makeable"]


def test_bad_input_is_refused_by_name(served, tmp_path):
    client, _ = served
    with pytest.raises(AppError, match="Invert colors must be true or false"):
        client.predict(handle_file(_digit(tmp_path)), "yes", api_name="/coverage")
    with pytest.raises(AppError, match="Upload"):
        client.predict(None, False, api_name="/coverage")
