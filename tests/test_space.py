"""
The Gradio Space (spaces/app.py), through `gradio_client`: every endpoint, bad inputs, and the handlers without a
server. `test_space_process.py` starts it as a process, loads it with concurrent clients and clicks it in Chromium.
"""

import json
import math
import os
import re
import warnings

import httpx
import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageOps
import pytest
from gradio_client import handle_file

from tests.space_fixtures import MNIST_LIKE, _error_of, _png, app  # its fixtures come in through conftest.py
from veegan_hf.provenance import REPO

from .conftest import make_pipeline

# -------------------------------------------------------------------------------------------- endpoints


def test_api_names_are_stable(client):
    assert set(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == {
        "/sample",
        "/invert",
        "/interpolate",
    }


def test_sample(client):
    path = client.predict(0, 16, 0.0, api_name="/sample")
    grid = PIL.Image.open(path)
    assert grid.format == "PNG" and grid.width > 4 * 28 * 4  # 4x4 tiles, each enlarged at least 4x
    again = client.predict(0, 16, 0.0, api_name="/sample")
    assert np.array_equal(np.asarray(PIL.Image.open(again)), np.asarray(grid)), "a seed must reproduce its samples"
    assert PIL.Image.open(client.predict(5, 1, 1.0, api_name="/sample")).width < grid.width


@pytest.mark.parametrize(
    "args, message",
    [((-1, 4, 0.0), "Seed"), ((0, 65, 0.0), "64"), ((0, 0, 0.0), "1"), ((0, 4, 3.5), "3")],
)
def test_sample_rejects_out_of_range(client, args, message):
    assert message in _error_of(client, *args, api_name="/sample")


def _raw_api_error(url: str, body: str, api_name: str) -> str:
    """The error event of one call to the HTTP API, sent as raw JSON: gradio_client will not encode NaN or inf."""
    base = url.rstrip("/")
    response = httpx.post(
        f"{base}/gradio_api/call{api_name}", content=body, headers={"content-type": "application/json"}
    )
    response.raise_for_status()
    with httpx.stream("GET", f"{base}/gradio_api/call{api_name}/{response.json()['event_id']}", timeout=60) as stream:
        events = stream.read().decode()
    assert "event: error" in events, events
    data = [line[len("data: ") :] for line in events.splitlines() if line.startswith("data: ")]
    return json.loads(data[-1])["error"]


@pytest.mark.parametrize("value", ["3", 2.5, True, "", [1], None])
@pytest.mark.parametrize("field, position", [("Seed", 0), ("Number of samples", 1)])
def test_whole_number_fields_refuse_hostile_values_by_name(client, field, position, value):
    """A string, a fraction or a bool in a whole-number field is refused, never rounded or coerced (2.5 -> 2,
    True -> 1), with an error that names the field rather than gradio's opaque "verbose error reporting" line."""
    args = [0, 4, 0.0]
    args[position] = value
    message = _error_of(client, *args, api_name="/sample")
    assert message.startswith(f"{field} must be a whole number"), message
    assert repr(value) in message and "verbose error reporting" not in message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_by_name(server, client, value):
    with pytest.raises(ValueError, match="not JSON compliant"):  # gradio_client refuses to send them at all ...
        client.predict(value, 4, 0.0, api_name="/sample")
    token = json.dumps(value)  # NaN, Infinity, -Infinity: what a hand-written request can still send
    url = server[0]
    assert _raw_api_error(url, f'{{"data": [{token}, 4, 0.0]}}', "/sample").startswith("Seed must be a whole")
    assert _raw_api_error(url, f'{{"data": [0, {token}, 0.0]}}', "/sample").startswith("Number of samples must")
    assert _raw_api_error(url, f'{{"data": [0, 4, {token}]}}', "/sample").startswith("Truncation must be a number")
    frames = f'{{"data": [0, 1, {token}, null, null, false]}}'
    assert _raw_api_error(url, frames, "/interpolate").startswith("Frames must be a whole number")


def test_other_whole_number_fields_refuse_fractions_and_bools(client, tmp_path):
    assert "Seed B must be a whole number" in _error_of(client, 0, 2.5, 4, None, None, False, api_name="/interpolate")
    assert "Frames must be a whole number" in _error_of(client, 0, 1, True, None, None, False, api_name="/interpolate")
    image = handle_file(_png(tmp_path, "x.png", PIL.Image.new("L", (28, 28))))
    assert "Refinement steps must be a whole number" in _error_of(client, image, False, 10.5, api_name="/invert")
    assert "Truncation must be a number" in _error_of(client, 0, 4, "0.5", api_name="/sample")
    # in-range plain numbers still pass, and gradio's bounds messages now say which field they are about
    assert "Frames: Value 1 is less than minimum value 2" in _error_of(
        client, 0, 1, 1, None, None, False, api_name="/interpolate"
    )
    assert PIL.Image.open(client.predict(0, 4.0, 0.0, api_name="/sample")).width > 0  # 4.0 is a whole number


def test_every_api_output_is_named(client):
    """`view_api` names every parameter and output of every public endpoint: no `value_31` placeholders."""
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert endpoints
    for api_name, endpoint in endpoints.items():
        for item in endpoint["parameters"] + endpoint["returns"]:
            label = item.get("label")
            assert label and not re.fullmatch(r"value_\d+", label), (api_name, item)
    assert [r["label"] for r in endpoints["/invert"]["returns"]] == [
        "Input x",
        "G(F(x))",
        "G(z*), refined",
        "Latent code F(x)",
        "Summary",
        "Details",
    ]


def test_samples_are_shown_when_the_page_opens(server):
    """A load event fills the Sample output from the inputs' defaults, privately (not a fourth API endpoint)."""
    demo = server[1]
    handlers = demo.veegan_handlers
    sample_click = next(fn for fn in demo.fns.values() if fn.api_name == "sample")
    on_load = [fn for fn in demo.fns.values() if any(trigger == "load" for _, trigger in fn.targets)]
    assert len(on_load) == 1, on_load
    load = on_load[0]
    assert load.fn == handlers.sample and load.api_visibility == "private"
    assert load.outputs == sample_click.outputs and load.inputs == sample_click.inputs
    # what the load event computes from the defaults is a full grid (seed 0, 16 samples, no truncation)
    defaults = [component.value for component in load.inputs]
    assert defaults == [0, 16, 0.0]
    assert handlers.sample(*defaults).width > 4 * 112


@pytest.mark.parametrize(
    "name, image",
    [
        ("rgba.png", PIL.Image.new("RGBA", (64, 48), (255, 255, 255, 0))),
        ("tiny.png", PIL.Image.new("L", (1, 1), 200)),
        ("huge.png", PIL.Image.fromarray(np.tile(np.arange(3000, dtype=np.uint16) % 256, (2000, 1)).astype(np.uint8))),
        ("palette.gif", PIL.Image.new("P", (40, 90), 3)),
    ],
)
def test_invert_converts_any_image(client, tmp_path, name, image):
    view, reconstruction, refined, latent_plot, summary, details = client.predict(
        handle_file(_png(tmp_path, name, image)), True, 20, api_name="/invert"
    )
    assert PIL.Image.open(view).size == PIL.Image.open(reconstruction).size == PIL.Image.open(refined).size
    assert PIL.Image.open(latent_plot).width > 200
    assert len(details["latent"]) == MNIST_LIKE["latent_dim"] and details["refine_steps"] == 20
    # refinement starts at F(x) and keeps the best iterate, so it never ends worse
    assert details["refined_mse"] <= details["reconstruction_mse"] + 1e-6
    assert "MSE" in summary and "after 20 refinement steps" in summary


def test_transparent_background_counts_as_white(client, tmp_path):
    drawing = PIL.Image.new("RGBA", (280, 280), (0, 0, 0, 0))  # black strokes on transparent, as a sketch app saves
    drawing.paste((0, 0, 0, 255), (120, 40, 160, 240))
    view = client.predict(handle_file(_png(tmp_path, "sketch.png", drawing)), True, 0, api_name="/invert")[0]
    pixels = np.asarray(PIL.Image.open(view).convert("L"))
    assert pixels.mean() < 100 and pixels.max() > 200  # inverted: a light stroke on a dark background


def test_invert_without_refinement(client, tmp_path):
    outputs = client.predict(
        handle_file(_png(tmp_path, "x.png", PIL.Image.new("L", (28, 28)))), False, 0, api_name="/invert"
    )
    assert outputs[2] is None and outputs[5]["refined_mse"] is None and outputs[5]["inverted_colors"] is False


def test_invert_rejects_bad_input(client, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert "notes.txt is not an image" in _error_of(client, handle_file(str(text)), False, 0, api_name="/invert")
    disguised = tmp_path / "fake.png"
    disguised.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    assert "fake.png is not an image" in _error_of(client, handle_file(str(disguised)), False, 0, api_name="/invert")
    truncated = tmp_path / "cut.png"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:600])
    assert "truncated or corrupt" in _error_of(client, handle_file(str(truncated)), False, 0, api_name="/invert")
    # over the pixel cap: rejected from the header, before decoding 20 megapixels
    giant = _png(tmp_path, "giant.png", PIL.Image.new("L", (5000, 4000)))
    assert "megapixels" in _error_of(client, handle_file(giant), False, 0, api_name="/invert")
    small = handle_file(_png(tmp_path, "ok.png", PIL.Image.new("L", (28, 28))))
    assert "500" in _error_of(client, small, False, 501, api_name="/invert")
    assert "Upload the image first" in _error_of(client, None, False, 0, api_name="/invert")
    # a checkbox takes true or false only, through the API too: 'yes' is not coerced by its truthiness
    assert "Invert colors must be true or false, got 'yes'" in _error_of(client, small, "yes", 0, api_name="/invert")
    assert "Invert colors must be true or false" in _error_of(client, 0, 1, 4, None, None, 1, api_name="/interpolate")


def test_upload_size_is_capped(server, client, tmp_path):
    too_big = os.urandom((app.MAX_UPLOAD_MB + 1) * 1024 * 1024)
    # the server refuses it (a raw upload, as a browser sends it) ...
    response = httpx.post(f"{server[0].rstrip('/')}/gradio_api/upload", files={"files": ("big.png", too_big)})
    assert response.status_code == 413
    # ... and gradio_client checks the same limit before sending
    big = tmp_path / "big.png"
    big.write_bytes(too_big)
    with pytest.raises(ValueError, match="maximum file size"):
        client.predict(handle_file(str(big)), False, 0, api_name="/invert")


def test_interpolate(client, tmp_path):
    strip = PIL.Image.open(client.predict(0, 1, 8, None, None, False, api_name="/interpolate"))
    assert strip.width > 7 * strip.height  # one row of 8 frames
    first_sample = PIL.Image.open(client.predict(0, 1, 0.0, api_name="/sample"))
    assert np.array_equal(  # frame A is seed 0's sample
        np.asarray(strip)[4 : 4 + 112, 4 : 4 + 112], np.asarray(first_sample)[4 : 4 + 112, 4 : 4 + 112]
    )
    image_a = handle_file(_png(tmp_path, "a.png", PIL.Image.new("RGBA", (300, 200), (0, 0, 0, 255))))
    image_b = handle_file(_png(tmp_path, "b.png", PIL.Image.new("L", (7, 7), 255)))
    strip = PIL.Image.open(client.predict(0, 0, 4, image_a, image_b, True, api_name="/interpolate"))
    assert strip.width > 3 * strip.height
    assert "minimum value 2" in _error_of(client, 0, 1, 1, None, None, False, api_name="/interpolate")
    assert "both images" in _error_of(client, 0, 1, 4, image_a, None, False, api_name="/interpolate")


# -------------------------------------------------------------------------------------------- handlers and startup


def test_vector_model_plots_over_the_true_modes(tmp_path):
    pipe = make_pipeline("mlp-2d", discriminator=False)
    pipe.save_pretrained(tmp_path, dataset_name="ring", metrics={"modes_captured": 8.0})
    handlers = app.build_demo(app.load_pipeline(tmp_path)).veegan_handlers
    assert handlers.mixture is not None and handlers.mixture.means.shape == (8, 2)
    assert min(handlers.sample(0, 2048, 1.0).size) >= 500  # readable at full width
    assert min(handlers.interpolate(0, 1, 16).size) >= 500
    with pytest.raises(app.gr.Error, match="vectors, not images"):
        handlers.invert(PIL.Image.new("L", (28, 28)), False, 0)


def test_rgb_model_handlers():
    handlers = app.SpaceHandlers(make_pipeline("dcgan-32-3", discriminator=False))
    assert handlers.sample(3, 5, 0.0).mode == "RGB"
    assert handlers.auto_invert(PIL.Image.new("L", (9, 9), 255)) is False  # only grayscale models flip colors
    outputs = handlers.invert(PIL.Image.new("CMYK", (40, 30)), False, 3)
    assert outputs[5]["refine_steps"] == 3


def test_invert_colors_default_follows_brightness(server):
    handlers = server[1].veegan_handlers
    assert handlers.auto_invert(PIL.Image.new("L", (50, 50), 250)) is True  # black strokes on white
    assert handlers.auto_invert(PIL.Image.new("L", (50, 50), 5)) is False  # MNIST-like white on black
    assert handlers.auto_invert(PIL.Image.new("RGBA", (50, 50), (0, 0, 0, 0))) is True  # transparent -> white
    drawing = {"composite": PIL.Image.new("RGBA", (280, 280), (0, 0, 0, 0)), "background": None, "layers": []}
    with pytest.raises(app.gr.Error, match="empty"):
        handlers.use_drawing(drawing)


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as excinfo:
        app.main(["--model", str(tmp_path / "missing")])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "no model folder" in err and "Traceback" not in err


def test_an_api_invert_of_a_reversed_digit_says_so():
    """Dark strokes on white sent to `/invert` without `invert_colors`: the answer says the image looks reversed and
    how to fix it, as the Python API warns; inverted, or the model's way round, it does not."""
    from veegan_hf import VEEGAN

    handlers = app.SpaceHandlers(VEEGAN.from_pretrained(REPO / "spaces" / "veegan-mnist"))
    paper = PIL.Image.new("L", (28, 28), 255)
    PIL.ImageDraw.Draw(paper).line([(14, 4), (14, 24)], fill=0, width=3)  # a "1" drawn in ink
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # told in the answer, not as the library's advice in the server's log
        summary, details = handlers.invert(paper, False, 0)[4:]
    assert details["looks_reversed"] is True and "looks like the negative" in summary and "Invert colors" in summary
    summary, details = handlers.invert(paper, True, 0)[4:]
    assert details["looks_reversed"] is False and "looks like the negative" not in summary
    assert handlers.invert(PIL.ImageOps.invert(paper), False, 0)[5]["looks_reversed"] is False
