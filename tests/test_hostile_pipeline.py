"""Hostile input at the pipeline's boundaries: `from_pretrained` on broken folders, and every public call.

Each case either works, or raises a `ValueError`/`TypeError` whose message names the argument or the file; nothing
raises an internal exception, allocates without bound, or returns a non-finite value. The table-driven tests cover
the cases users reported; the property-based tests (hypothesis) throw arbitrary values, shapes, dtypes and JSON.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from tests.conftest import make_pipeline
from veegan_hf import VEEGAN
from veegan_hf.loading import WEIGHTS_NAME
from veegan_hf.validation import MAX_INTERPOLATION_STEPS, MAX_INVERT_STEPS

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def image_pipe() -> VEEGAN:
    return make_pipeline("dcgan-28-1")


@pytest.fixture(scope="module")
def vector_pipe() -> VEEGAN:
    return make_pipeline("mlp-2d")


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("saved")
    make_pipeline("mlp-2d").save_pretrained(folder)
    return folder


def _copy(saved: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(saved, target)
    return target


def _edit_json(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


# ------------------------------------------------------------------------------------------------ from_pretrained


def _index(value):
    return lambda folder: (folder / "model_index.json").write_text(json.dumps(value))


def _generator_config(**changes):
    return lambda folder: _edit_json(folder / "generator" / "config.json", lambda c: c.update(changes))


BROKEN_FOLDERS = {
    "non-UTF-8 model_index": (lambda f: (f / "model_index.json").write_bytes(b"\xff\xfe{"), "not UTF-8"),
    "model_index holds a list": (_index([1, 2]), "must hold a JSON object"),
    "generator entry is 5": (
        lambda f: _edit_json(f / "model_index.json", lambda i: i.update(generator=5)),
        r"'generator' must be \[library, class\]",
    ),
    "generator entry is a string": (
        lambda f: _edit_json(f / "model_index.json", lambda i: i.update(generator="VEEGANGenerator")),
        r"'generator' must be \[library, class\]",
    ),
    "deeply nested JSON": (
        lambda f: (f / "model_index.json").write_text("[" * 100_000 + "]" * 100_000),
        "nests too deeply|must hold a JSON object",
    ),
    "foreign pipeline class": (
        lambda f: _edit_json(f / "model_index.json", lambda i: i.update(_class_name="StableDiffusionPipeline")),
        "'StableDiffusionPipeline' pipeline",
    ),
    "latent_dim as a string": (_generator_config(latent_dim="32"), "latent_dim='32'"),
    "latent_dim as a float": (_generator_config(latent_dim=32.0), "latent_dim=32.0"),
    "latent_dim infinite": (
        lambda f: (f / "generator" / "config.json").write_text(
            (f / "generator" / "config.json").read_text().replace('"latent_dim": 8', '"latent_dim": Infinity')
        ),
        "latent_dim=inf",
    ),
    "latent_dim 10**9": (_generator_config(latent_dim=10**9), r"latent_dim=1000000000 must lie in \[1, 4096\]"),
    "hidden_dim 10**6": (_generator_config(hidden_dim=10**6), "hidden_dim=1000000 must lie in"),
    "num_hidden_layers 10**7": (_generator_config(num_hidden_layers=10**7), "num_hidden_layers=10000000"),
    "reconstructor noise_std NaN": (
        lambda f: (f / "reconstructor" / "config.json").write_text(
            (f / "reconstructor" / "config.json").read_text().replace('"noise_std": 1.0', '"noise_std": NaN')
        ),
        "noise_std=nan must be a finite number",
    ),
    "NaN weights": (
        lambda f: save_file(
            {k: torch.full_like(v, float("nan")) for k, v in load_file(f / "generator" / WEIGHTS_NAME).items()},
            f / "generator" / WEIGHTS_NAME,
        ),
        "holds NaN or infinite values",
    ),
    "integer weights": (
        lambda f: save_file(
            {k: v.long() for k, v in load_file(f / "generator" / WEIGHTS_NAME).items()}, f / "generator" / WEIGHTS_NAME
        ),
        "is torch.int64, expected torch.float32",
    ),
    "model_index links to a device": (
        lambda f: ((f / "model_index.json").unlink(), (f / "model_index.json").symlink_to("/dev/null")),
        "is not a regular file",
    ),
    "truncated weights": (
        lambda f: (f / "generator" / WEIGHTS_NAME).write_bytes((f / "generator" / WEIGHTS_NAME).read_bytes()[:100]),
        "truncated or corrupt",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_FOLDERS))
def test_broken_folders_give_errors_that_name_the_file(saved, tmp_path, case):
    break_it, message = BROKEN_FOLDERS[case]
    folder = _copy(saved, tmp_path)
    break_it(folder)
    with pytest.raises(ValueError, match=message) as info:
        VEEGAN.from_pretrained(folder)
    assert str(folder) in str(info.value)  # the file (or folder) is named


@pytest.mark.parametrize(
    ("path", "message"),
    [("/no/such/folder", "not a local folder"), ("./relative/missing", "not a local folder"), (5, "must be a folder")],
)
def test_missing_paths_and_wrong_types(path, message):
    with pytest.raises((ValueError, TypeError), match=message):
        VEEGAN.from_pretrained(path)


def test_a_file_instead_of_a_folder(saved):
    with pytest.raises(ValueError, match="is a file; pass the folder"):
        VEEGAN.from_pretrained(saved / "model_index.json")


@PROPERTY
@given(
    st.dictionaries(
        st.sampled_from(["latent_dim", "hidden_dim", "num_hidden_layers", "data_dim", "activation", "architecture"]),
        st.one_of(
            st.integers(-(10**12), 10**12),
            st.floats(allow_nan=True, allow_infinity=True),
            st.text(max_size=8),
            st.booleans(),
            st.none(),
            st.lists(st.integers(), max_size=3),
        ),
        min_size=1,
    )
)
def test_any_generator_config_loads_or_names_the_problem(saved, tmp_path_factory, changes):
    folder = _copy(saved, tmp_path_factory.mktemp("prop"))
    path = folder / "generator" / "config.json"
    config = {**json.loads(path.read_text()), **changes}
    path.write_text(json.dumps(config))
    try:
        pipe = VEEGAN.from_pretrained(folder)
    except ValueError as err:
        assert str(path) in str(err) or "model_index" in str(err) or "must agree" in str(err)
        return
    # it loaded: then the config was a valid one, and the model runs
    assert torch.isfinite(pipe(batch_size=2, output_type="pt").samples).all()


# ------------------------------------------------------------------------------------------------ calls


CALLS = {
    "batch_size 2.5": (lambda p: p(batch_size=2.5), TypeError, "batch_size"),
    "batch_size '3'": (lambda p: p(batch_size="3"), TypeError, "batch_size"),
    "batch_size None": (lambda p: p(batch_size=None), TypeError, "batch_size"),
    "batch_size 0": (lambda p: p(batch_size=0), ValueError, "batch_size"),
    "latents of the wrong width": (lambda p: p(latents=torch.zeros(2, 3)), ValueError, "latents"),
    "latents as numpy": (lambda p: p(latents=np.zeros((2, 8))), TypeError, "latents"),
    "NaN latents": (lambda p: p(latents=torch.full((2, 8), float("nan"))), ValueError, "latents"),
    "integer latents": (lambda p: p(latents=torch.zeros(2, 8, dtype=torch.long)), TypeError, "latents"),
    "generator=5": (lambda p: p(generator=5), TypeError, "generator"),
    "truncation NaN": (lambda p: p(truncation=float("nan")), ValueError, "truncation"),
    "truncation -1": (lambda p: p(truncation=-1.0), ValueError, "truncation"),
    "output_type 'jpg'": (lambda p: p(output_type="jpg"), ValueError, "output_type"),
    "encode a path string": (lambda p: p.encode("digit.png"), TypeError, "images"),
    "encode None": (lambda p: p.encode(None), TypeError, "images"),
    "encode an empty list": (lambda p: p.encode([]), ValueError, "images"),
    "encode an empty batch": (lambda p: p.encode(torch.zeros(0, 1, 28, 28)), ValueError, "images"),
    "encode mixed sizes": (
        lambda p: p.encode([np.zeros((28, 28, 1), np.uint8), np.zeros((20, 20, 1), np.uint8)]),
        ValueError,
        "different shapes",
    ),
    "encode object arrays": (lambda p: p.encode(np.array([None, 1], dtype=object)), TypeError, "images"),
    "encode NaN pixels": (lambda p: p.encode(torch.full((1, 1, 28, 28), float("nan"))), ValueError, "images"),
    "invert num_steps 2.5": (lambda p: p.invert(torch.rand(1, 1, 28, 28), num_steps=2.5), TypeError, "num_steps"),
    "invert num_steps 10**7": (
        lambda p: p.invert(torch.rand(1, 1, 28, 28), num_steps=10**7),
        ValueError,
        f"num_steps=10000000 must lie in \\[0, {MAX_INVERT_STEPS}\\]",
    ),
    "invert learning_rate NaN": (
        lambda p: p.invert(torch.rand(1, 1, 28, 28), learning_rate=float("nan")),
        ValueError,
        "learning_rate",
    ),
    "invert latents of other rows": (
        lambda p: p.invert(torch.rand(2, 1, 28, 28), latents=torch.zeros(3, 8)),
        ValueError,
        "latents has 3 rows for 2 samples",
    ),
    "interpolate num_steps 10**7": (
        lambda p: p.interpolate(torch.zeros(8), torch.ones(8), num_steps=10**7),
        ValueError,
        f"num_steps=10000000 must lie in \\[2, {MAX_INTERPOLATION_STEPS}\\]",
    ),
    "interpolate num_steps 2.0": (
        lambda p: p.interpolate(torch.zeros(8), torch.ones(8), num_steps=2.0),
        TypeError,
        "num_steps",
    ),
    "interpolate numpy ends": (lambda p: p.interpolate(np.zeros(8), np.ones(8)), TypeError, "z0"),
    "interpolate NaN end": (
        lambda p: p.interpolate(torch.zeros(8), torch.full((8,), float("nan"))),
        ValueError,
        "z1",
    ),
    "decode a wrong shape": (lambda p: p.decode(torch.zeros(2, 2, 8)), ValueError, "latents"),
    "decode noise without an extra input": (
        lambda p: p.decode(torch.zeros(1, 8), noise=torch.zeros(1, 1)),
        ValueError,
        "no extra noise input",
    ),
}


@pytest.mark.parametrize("case", sorted(CALLS))
def test_bad_calls_name_the_argument(image_pipe, case):
    call, kind, message = CALLS[case]
    with pytest.raises(kind, match=message):
        call(image_pipe)


def test_pil_la_and_other_modes_are_converted(image_pipe):
    for mode in ("La", "LA", "P", "I;16", "F", "1", "CMYK", "RGBA"):
        image = PIL.Image.new("L", (30, 40), 200).convert(mode) if mode != "La" else PIL.Image.new("LA", (30, 40))
        if mode == "La":
            image = image.convert("La")
        z = image_pipe.encode(image)
        assert z.shape == (1, 8) and torch.isfinite(z).all(), mode


def test_interpolation_from_the_zero_code_is_the_straight_line(image_pipe):
    zero, end = torch.zeros(8), torch.randn(8)
    frames = image_pipe.interpolate(zero, end, num_steps=5, output_type="pt")
    assert torch.isfinite(frames.latents).all() and torch.isfinite(frames.images).all()
    torch.testing.assert_close(frames.latents[2], 0.5 * end)  # the midpoint of the line, not NaN
    opposite = image_pipe.interpolate(end, -end, num_steps=3, output_type="pt")
    assert torch.isfinite(opposite.latents).all()


def test_decode_reproduces_what_invert_optimized():
    from tests.conftest import FAMILIES
    from veegan_hf import VEEGANGenerator, VEEGANReconstructor

    torch.manual_seed(0)  # a generator with the notebook's extra noise input: decode must hold it where invert did
    kwargs = FAMILIES["dcgan-28-1"]
    pipe = VEEGAN(VEEGANGenerator(**kwargs, extra_noise_dim=3), VEEGANReconstructor(**kwargs))
    images = torch.rand(3, 1, 28, 28)
    z = pipe.invert(images, num_steps=5)
    decoded = pipe.decode(z, output_type="pt")
    again = pipe.decode(z, output_type="pt")
    assert torch.equal(decoded, again)  # no noise is drawn: decode is a function of z
    error = (decoded - images).pow(2).flatten(1).sum(1)
    start_error = (pipe.decode(pipe.encode(images), output_type="pt") - images).pow(2).flatten(1).sum(1)
    assert (error <= start_error + 1e-4).all()  # invert keeps each sample's best code, scored by this decode


def test_vector_models_validate_their_inputs(vector_pipe):
    with pytest.raises(ValueError, match=r"images must be float vectors of shape \(batch, 2\)"):
        vector_pipe.encode(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="NaN or infinite"):
        vector_pipe.encode(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(TypeError, match="must hold numbers"):
        vector_pipe.encode(np.array([["a", "b"]]))
    assert vector_pipe.encode(np.zeros((4, 2))).shape == (4, vector_pipe.latent_dim)


@PROPERTY
@given(
    batch_size=st.one_of(st.integers(-5, 40), st.floats(allow_nan=True), st.text(max_size=3), st.none(), st.booleans()),
    truncation=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-3, 50)),
    output_type=st.sampled_from(["pt", "np", "pil", "jpg", None, 3]),
)
def test_any_sampling_call_works_or_names_the_argument(image_pipe, batch_size, truncation, output_type):
    try:
        out = image_pipe(batch_size=batch_size, truncation=truncation, output_type=output_type)
    except (ValueError, TypeError) as err:
        assert any(name in str(err) for name in ("batch_size", "truncation", "output_type")), err
        return
    samples = out.samples
    if isinstance(samples, list):
        samples = np.stack([np.asarray(s) for s in samples])
    assert np.isfinite(np.asarray(samples, dtype=np.float64)).all()


@PROPERTY
@given(
    shape=st.lists(st.integers(0, 30), min_size=0, max_size=5),
    dtype=st.sampled_from([np.uint8, np.float32, np.float64, np.int64, np.bool_, np.complex64, object]),
    fill=st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(0, 255)),
)
def test_any_array_to_encode_works_or_names_the_argument(image_pipe, shape, dtype, fill):
    try:
        array = np.full(shape, fill, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        return  # numpy itself refuses the combination
    try:
        z = image_pipe.encode(array)
    except (ValueError, TypeError) as err:
        assert "images" in str(err), err
        return
    assert z.shape[1] == image_pipe.latent_dim and torch.isfinite(z).all()


@PROPERTY
@given(
    num_steps=st.one_of(st.integers(-3, 20), st.floats(allow_nan=True), st.just(10**9), st.text(max_size=2)),
    method=st.sampled_from(["slerp", "linear", "cubic", 1]),
    scale0=st.floats(-1e3, 1e3),
    scale1=st.one_of(st.floats(-1e3, 1e3), st.just(0.0)),
)
def test_any_interpolation_works_or_names_the_argument(image_pipe, num_steps, method, scale0, scale1):
    z0, z1 = torch.full((8,), scale0), torch.full((8,), scale1)
    try:
        out = image_pipe.interpolate(z0, z1, num_steps=num_steps, method=method, output_type="pt")
    except (ValueError, TypeError) as err:
        assert any(name in str(err) for name in ("num_steps", "method")), err
        return
    assert torch.isfinite(out.latents).all() and torch.isfinite(out.images).all()


def test_an_io_error_on_model_index_names_the_file(saved, tmp_path, monkeypatch):
    """EIO on the lookup itself (a link to a device that fails, a dying disk) is named, never a raw OSError."""
    folder = _copy(saved, tmp_path)
    real_is_file = Path.is_file

    def failing(path):
        if path.name == "model_index.json":
            raise OSError(5, "Input/output error")
        return real_is_file(path)

    monkeypatch.setattr(Path, "is_file", failing)
    with pytest.raises(ValueError, match=r"model_index.json cannot be read \(Input/output error\)"):
        VEEGAN.from_pretrained(folder)


def test_a_checkpoint_folder_points_to_its_pipeline(saved, tmp_path):
    """`from_pretrained("run/checkpoint-478")` names the loadable `checkpoint-478/pipeline` inside it."""
    checkpoint = tmp_path / "checkpoint-478"
    shutil.copytree(saved, checkpoint / "pipeline")
    with pytest.raises(ValueError, match=r"is a training checkpoint .* Load VEEGAN.from_pretrained\(.*pipeline'\)"):
        VEEGAN.from_pretrained(checkpoint)
    assert VEEGAN.from_pretrained(checkpoint / "pipeline").latent_dim > 0
