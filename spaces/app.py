"""
VEEGAN Space: sample, invert and interpolate with one trained VEEGAN pipeline.

    python spaces/app.py                      # the model committed at spaces/veegan-mnist/
    MODEL_ID=org/veegan-celeba python spaces/app.py --host 0.0.0.0 --port 7860

The model is chosen once, at startup, by the deployer: `--model`, else the `MODEL_ID` environment variable (a Hub id
or a local folder), else `veegan-mnist/` next to this file. A visitor never chooses what is loaded. A local folder
never touches the network. Host and port default to gradio's `GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT`
(HF Spaces sets 0.0.0.0:7860), else 127.0.0.1:7860.

Handlers live in `SpaceHandlers` so that tests call them without a server. The API names are stable:
`/sample`, `/invert` (image models only) and `/interpolate`.
"""

import argparse
import atexit
import io
import math
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageOps
import torch
from matplotlib.figure import Figure

from veegan_hf import VEEGAN
from veegan_hf.data import ImageTransform, get_mixture
from veegan_hf.metrics import reconstruction_mse
from veegan_hf.plotting import image_grid

APP_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = APP_DIR / "veegan-mnist"  # committed with the Space; MODEL_ID overrides it

MAX_SEED = 2**31 - 1
MAX_IMAGE_SAMPLES = 64  # one grid; more tiles are too small to see
MAX_VECTOR_SAMPLES = 2048  # a scatter plot needs many points to show which modes are covered
MAX_TRUNCATION = 3.0  # |z_i| <= 3 keeps 99.7% of N(0, 1): larger values change nothing visible
MAX_REFINE_STEPS = 500  # ~1 s per 100 steps for a small DCGAN on a CPU Space
MAX_FRAMES = 16
REFINE_LEARNING_RATE = 0.05  # the pipeline default: converges within a few hundred Adam steps
MAX_UPLOAD_MB = 10  # gradio rejects larger uploads before they reach a handler
MAX_IMAGE_PIXELS = 4096 * 4096  # checked from the header, before any pixel is decoded
TILE_PIXELS = 112  # tiles are enlarged (nearest neighbour) to at least this size, so 28x28 digits stay sharp
DEFAULT_CONCURRENCY = 2  # CPU Spaces have 2 vCPUs; more parallel torch calls only add contention
QUEUE_SIZE = 128
NOT_AN_IMAGE = "{name} is not an image this Space can read; upload a PNG, JPEG, WebP, GIF or BMP file."

CSS = """
.gradio-container { max-width: 1180px !important; margin: 0 auto !important; }
#header h1 { margin-bottom: 0.2em; }
#header p { color: var(--body-text-color-subdued); }
.pixelated img { image-rendering: pixelated; }
#footnote p { font-size: 0.85em; color: var(--body-text-color-subdued); }
"""
THEME = gr.themes.Soft(primary_hue="emerald", secondary_hue="teal", neutral_hue="slate")


def launch_options() -> dict[str, Any]:
    """What `launch()` takes in Gradio 6 besides host and port: theme, css and the upload cap."""
    return {"theme": THEME, "css": CSS, "max_file_size": f"{MAX_UPLOAD_MB}mb"}


# ---------------------------------------------------------------------------------------------------- loading


def load_pipeline(model_id: str | os.PathLike | None = None) -> VEEGAN:
    """Loads the deployer's model: `model_id`, else `$MODEL_ID`, else the folder committed next to this file."""
    source = str(model_id or os.environ.get("MODEL_ID") or DEFAULT_MODEL)
    folder = Path(source).expanduser()
    if folder.is_dir():
        return VEEGAN.from_pretrained(folder, load_discriminator=False)
    if folder.is_absolute() or source.startswith(".") or source.count("/") > 1:
        hint = " Commit a save_pretrained folder there, or set MODEL_ID." if folder == DEFAULT_MODEL else ""
        raise ValueError(f"no model folder at {folder}.{hint} MODEL_ID may also be a Hub id such as org/veegan-mnist.")
    return VEEGAN.from_pretrained(source, load_discriminator=False)  # a Hub id; honours HF_HUB_OFFLINE


# ---------------------------------------------------------------------------------------------------- helpers


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_in_range(name: str, value: Any, low: int, high: int) -> int:
    """A whole number in [low, high], or a gr.Error that says what was given and what is allowed."""
    if not _is_number(value) or value != int(value):
        raise gr.Error(f"{name} must be a whole number between {low} and {high}, got {value!r}.")
    if not low <= value <= high:
        raise gr.Error(f"{name} must be between {low} and {high}, got {int(value)}.")
    return int(value)


def _float_in_range(name: str, value: Any, low: float, high: float) -> float:
    if not _is_number(value):
        raise gr.Error(f"{name} must be a number between {low} and {high}, got {value!r}.")
    if not low <= value <= high:
        raise gr.Error(f"{name} must be between {low} and {high}, got {value}.")
    return float(value)


def _open_image(value: Any, what: str = "the image") -> PIL.Image.Image:
    """An upload (file path) or a PIL image -> a decoded PIL image, with the pixel count checked before decoding."""
    if value is None:
        raise gr.Error(f"Upload {what} first.")
    if isinstance(value, PIL.Image.Image):
        _check_pixel_count(value, what)
        return value
    try:
        image = PIL.Image.open(value)  # reads the header only
    except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as err:
        raise gr.Error(NOT_AN_IMAGE.format(name=Path(str(value)).name)) from err
    with image:
        _check_pixel_count(image, what)
        try:
            image.load()
            return PIL.ImageOps.exif_transpose(image)  # a copy, upright: phone photos store their rotation in EXIF
        except (OSError, ValueError, SyntaxError) as err:
            raise gr.Error(f"{what[0].upper()}{what[1:]} is truncated or corrupt ({err}); upload it again.") from err


def _check_pixel_count(image: PIL.Image.Image, what: str) -> None:
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise gr.Error(
            f"{what[0].upper()}{what[1:]} is {width}x{height} = {width * height / 1e6:.1f} megapixels; the limit is "
            f"{MAX_IMAGE_PIXELS / 1e6:.1f}. Downscale it first (the model sees it at a few dozen pixels anyway)."
        )


def is_mostly_bright(image: PIL.Image.Image) -> bool:
    """True for dark strokes on a light background (a drawing, a scan): the opposite of MNIST's white on black."""
    gray = ImageTransform(resolution=32, num_channels=1)(image)  # (1, 32, 32) in [-1, 1]; alpha -> white
    return bool(gray.mean() > 0)


def _figure_to_image(fig: Figure) -> PIL.Image.Image:
    # Figure without pyplot: no global state, so concurrent requests cannot draw into each other's plots
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.25)
    buffer.seek(0)
    return PIL.Image.open(buffer).convert("RGB")


def _tile(images: torch.Tensor, num_columns: int | None = None, pad: int = 4) -> PIL.Image.Image:
    """(N, C, H, W) in [0, 1] -> one grid image, every tile enlarged by an integer factor, on dark gutters."""
    scale = max(1, math.ceil(TILE_PIXELS / max(images.shape[-2:])))
    return image_grid(images * 2 - 1, num_columns, pad=pad, scale=scale, background=24 / 127.5 - 1)


def _latent_plot(latents: torch.Tensor, refined: torch.Tensor | None) -> PIL.Image.Image:
    """Bar chart of F(x), with the refined code z* as dots."""
    z = latents.float().cpu().numpy()
    fig = Figure(figsize=(6.4, 2.1), dpi=100)
    ax = fig.add_subplot()
    ax.bar(np.arange(z.size), z, color="#10b981", width=0.8, label="F(x)")
    if refined is not None:
        ax.plot(np.arange(z.size), refined.float().cpu().numpy(), "o", ms=3, color="#0f172a", label="z* (refined)")
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=7, frameon=False)
    ax.axhline(0, color="#94a3b8", lw=0.6)
    ax.set_xlabel("latent coordinate", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_xlim(-0.8, z.size - 0.2)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _figure_to_image(fig)


def _markdown_list(values: torch.Tensor, count: int = 6) -> str:
    shown = ", ".join(f"{v:+.2f}" for v in values[:count].tolist())
    return f"[{shown}{', …' if values.numel() > count else ''}]"


# ---------------------------------------------------------------------------------------------------- handlers


class SpaceHandlers:
    """
    The Space's event handlers, bound to one pipeline. Each takes plain values (what gradio passes) and returns
    what the output components show; bad input raises `gr.Error` with a message for the visitor.

    Args:
        pipe (`VEEGAN`): the loaded pipeline.
    """

    def __init__(self, pipe: VEEGAN):
        self.pipe = pipe
        config = pipe.generator.config
        self.is_image_model = pipe.is_image_model
        self.max_samples = MAX_IMAGE_SAMPLES if self.is_image_model else MAX_VECTOR_SAMPLES
        if self.is_image_model:
            self.transform = ImageTransform(resolution=config.image_size, num_channels=config.num_channels)
        self.mixture = None
        dataset_name = pipe.card_metadata.get("dataset_name")
        if not self.is_image_model and dataset_name:
            try:
                mixture = get_mixture(str(dataset_name).split("/")[-1].lower())
            except (ValueError, KeyError):
                mixture = None  # trained on some other data: plot without the true modes
            if mixture is not None and mixture.means.shape[1] == config.data_dim:
                self.mixture = mixture

    # ------------------------------------------------------------------ shared steps

    def _seed_latents(self, seed: int) -> torch.Tensor:
        """The code the Sample tab draws first for this seed, so that both tabs agree."""
        return self.pipe(batch_size=1, generator=torch.Generator().manual_seed(seed), output_type="pt").latents[0]

    def _model_input(self, image: Any, invert_colors: bool, what: str = "the image") -> torch.Tensor:
        """An upload -> `(1, C, H, W)` in [0, 1] at the model's size, colors inverted on request."""
        if not self.is_image_model:
            raise gr.Error("This model generates vectors, not images: only Sample and Interpolate by seeds apply.")
        pixel_values = self.transform(_open_image(image, what))  # (C, H, W) in [-1, 1]
        if invert_colors:
            pixel_values = -pixel_values
        return ((pixel_values + 1) / 2)[None]

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        # G(z) with any extra noise at its mean, as reconstruct() and invert()'s objective use it
        return self.pipe.interpolate(latents, latents, num_steps=2, method="linear", output_type="pt").images[:1]

    def _plot_vectors(self, samples: torch.Tensor, title: str, as_path: bool = False) -> PIL.Image.Image:
        """Samples over the true modes (2-D), or, in more dimensions, a histogram of each sample's mean coordinate."""
        points = samples.float().cpu().numpy()
        fig = Figure(figsize=(5.2, 5.2) if points.shape[1] == 2 else (6.4, 3.4), dpi=100)
        ax = fig.add_subplot()
        means = self.mixture.means.numpy() if self.mixture is not None else None
        if points.shape[1] == 2:
            label = "frames A → B" if as_path else "samples"
            ax.scatter(points[:, 0], points[:, 1], s=10, alpha=0.55, color="#10b981", linewidths=0, label=label)
            if as_path:
                ax.plot(points[:, 0], points[:, 1], "-", color="#10b981", lw=1.2)
                for end, (x, y) in (("A", points[0]), ("B", points[-1])):
                    ax.annotate(end, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=10, weight="bold")
            if means is not None:
                ax.scatter(means[:, 0], means[:, 1], marker="x", s=60, color="#dc2626", label="true modes")
                span = np.abs(means).max() * 1.3 + 0.3
                ax.set_xlim(-span, span)
                ax.set_ylim(-span, span)
            ax.set_aspect("equal")
            ax.legend(loc="upper right", fontsize=8, frameon=True)
        else:
            ax.hist(points.mean(axis=1), bins=60, color="#10b981")
            if means is not None:
                for level in means.mean(axis=1):
                    ax.axvline(level, color="#dc2626", lw=0.8, ls="--")
            ax.set_xlabel("mean coordinate of each sample (dashed: true modes)", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
        return _figure_to_image(fig)

    # ------------------------------------------------------------------ endpoints

    def sample(self, seed: Any, count: Any, truncation: Any = 0.0) -> PIL.Image.Image:
        """
        Draws `count` samples G(z), z ~ N(0, I) from `seed`. `truncation` > 0 redraws every |z_i| above it (0: off).

        Returns a grid of the images, or for vector models a scatter plot over the true modes.
        """
        seed = _int_in_range("Seed", seed, 0, MAX_SEED)
        count = _int_in_range("Number of samples", count, 1, self.max_samples)
        truncation = _float_in_range("Truncation", 0.0 if truncation is None else truncation, 0.0, MAX_TRUNCATION)
        try:
            output = self.pipe(
                batch_size=count,
                generator=torch.Generator().manual_seed(seed),
                truncation=truncation or None,
                output_type="pt",
            )
        except ValueError as err:
            raise gr.Error(str(err)) from err
        if self.is_image_model:
            return _tile(output.images)
        trunc = f", truncation {truncation:g}" if truncation else ""
        return self._plot_vectors(output.samples, f"{count} samples (seed {seed}{trunc})")

    def invert(
        self, image: Any, invert_colors: Any = False, refine_steps: Any = 0
    ) -> tuple[PIL.Image.Image, PIL.Image.Image, PIL.Image.Image | None, PIL.Image.Image, str, dict[str, Any]]:
        """
        Encodes an image, z = F(x), decodes it, G(F(x)), and optionally refines z by `refine_steps` Adam steps on
        ||G(z) - x||^2.

        Returns the model's view of the input, G(F(x)), G(z*) (or None), a latent bar plot, a Markdown summary and
        the raw numbers.
        """
        steps = _int_in_range("Refinement steps", refine_steps, 0, MAX_REFINE_STEPS)
        inverted = bool(invert_colors)
        pixel_values = self._model_input(image, inverted)  # (1, C, H, W) in [0, 1]
        try:
            latents = self.pipe.encode(pixel_values)  # (1, latent_dim)
            reconstruction = self._decode(latents)  # (1, C, H, W) in [0, 1]
            refined_latents = refined = None
            if steps > 0:
                refined_latents = self.pipe.invert(pixel_values, num_steps=steps, learning_rate=REFINE_LEARNING_RATE)
                refined = self._decode(refined_latents)
        except ValueError as err:
            raise gr.Error(str(err)) from err

        real = pixel_values * 2 - 1  # the metrics take the model's range [-1, 1]
        mse = reconstruction_mse(real, reconstruction * 2 - 1)
        refined_mse = reconstruction_mse(real, refined * 2 - 1) if refined is not None else None
        z = latents[0]
        norm, typical = z.norm().item(), math.sqrt(z.numel())
        rows = [f"| G(F(x)): one encoder pass | {mse:.4f} |"]
        if refined_mse is not None:
            rows.append(f"| G(z\\*): after {steps} refinement steps | {refined_mse:.4f} |")
        summary = "\n".join(
            [
                "| reconstruction | MSE (pixels in [0, 1]) |",
                "|---|---|",
                *rows,
                "",
                f"**‖F(x)‖ = {norm:.2f}** (a typical N(0, I) code has norm ≈ √{z.numel()} = {typical:.2f}) · "
                f"F(x) = {_markdown_list(z)}",
            ]
        )
        if inverted:
            summary += "\n\nColors were inverted before encoding (dark strokes on light → light on dark)."
        details = {
            "latent": [round(v, 5) for v in z.tolist()],
            "latent_norm": round(norm, 5),
            "reconstruction_mse": round(mse, 6),
            "refine_steps": steps,
            "refined_latent": None if refined_latents is None else [round(v, 5) for v in refined_latents[0].tolist()],
            "refined_mse": None if refined_mse is None else round(refined_mse, 6),
            "inverted_colors": inverted,
        }
        return (
            _tile(pixel_values, pad=0),
            _tile(reconstruction, pad=0),
            _tile(refined, pad=0) if refined is not None else None,
            _latent_plot(z, None if refined_latents is None else refined_latents[0]),
            summary,
            details,
        )

    def interpolate(
        self,
        seed_a: Any,
        seed_b: Any,
        num_frames: Any = 8,
        image_a: Any = None,
        image_b: Any = None,
        invert_colors: Any = False,
    ) -> PIL.Image.Image:
        """
        A strip of `num_frames` decodings along the slerp from code A to code B. The codes are F(image) when both
        images are given, else the first sample of each seed.
        """
        frames = _int_in_range("Frames", num_frames, 2, MAX_FRAMES)
        if image_a is not None or image_b is not None:
            if image_a is None or image_b is None:
                raise gr.Error("Upload both images A and B, or clear them to interpolate between the two seeds.")
            start = self._model_input(image_a, bool(invert_colors), "image A")
            end = self._model_input(image_b, bool(invert_colors), "image B")
            source = "images"
        else:
            start = _int_in_range("Seed A", seed_a, 0, MAX_SEED)
            end = _int_in_range("Seed B", seed_b, 0, MAX_SEED)
            source = "seeds"
        try:
            if source == "images":
                z0, z1 = self.pipe.encode(start)[0], self.pipe.encode(end)[0]
            else:
                z0, z1 = self._seed_latents(start), self._seed_latents(end)
            output = self.pipe.interpolate(z0, z1, num_steps=frames, output_type="pt")
        except ValueError as err:
            raise gr.Error(str(err)) from err
        if self.is_image_model:
            return _tile(output.images, num_columns=frames)
        title = f"{frames} steps from seed {start} (A) to seed {end} (B)"
        return self._plot_vectors(output.samples, title, as_path=True)

    def use_drawing(self, drawing: dict[str, Any] | None) -> tuple[PIL.Image.Image, bool]:
        """Sketchpad value -> (its composite for the image input, the invert-colors default)."""
        composite = (drawing or {}).get("composite")
        gray = None if composite is None else ImageTransform(resolution=32, num_channels=1)(composite)
        if gray is None or gray.max() - gray.min() < 0.1:  # blank: one color everywhere
            raise gr.Error("The canvas is empty: draw a digit first.")
        return composite, self.auto_invert(composite)

    def auto_invert(self, image: Any) -> bool:
        """The invert-colors default: on for grayscale models when the image is mostly bright."""
        if image is None or not self.is_image_model or self.pipe.generator.config.num_channels != 1:
            return False
        try:
            return is_mostly_bright(_open_image(image))
        except gr.Error:
            return False  # the invert button reports the problem


# ---------------------------------------------------------------------------------------------------- UI


def image_upload(**kwargs: Any) -> gr.Image:
    """
    A `gr.Image` (file path input) whose unreadable uploads, such as a text file or a truncated PNG, raise a
    `gr.Error` for the visitor: gradio's own preprocessing would answer with an opaque server error.
    """
    # image_mode=None hands the file over untouched: gradio's default "RGB" would drop alpha, turning a drawing's
    # transparent background black, where the pipeline composites it onto white
    component = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"], **kwargs)
    preprocess = component.preprocess

    def checked_preprocess(payload):
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as err:
            raise gr.Error(NOT_AN_IMAGE.format(name=getattr(payload, "orig_name", None) or "The upload")) from err

    # per instance rather than a subclass: gradio writes a .pyi stub next to the file of every Component subclass
    component.preprocess = checked_preprocess
    return component


_SCRATCH: Path | None = None


def _scratch_dir() -> Path:
    """One temporary folder per process for example inputs and, unless the deployer set GRADIO_EXAMPLES_CACHE, the
    example cache, so that a cache from another model or an older version is never served (and nothing lands in git)."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = Path(tempfile.mkdtemp(prefix="veegan-space-"))
        atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
        os.environ.setdefault("GRADIO_EXAMPLES_CACHE", str(_SCRATCH / "cached_examples"))
    return _SCRATCH


def _example_images(handlers: SpaceHandlers) -> list[Path]:
    """Two invert examples: one of the model's own samples, and a black-on-transparent drawing of a 7."""
    folder = _scratch_dir() / f"examples-{id(handlers)}"
    folder.mkdir(parents=True, exist_ok=True)
    sample = handlers.pipe(batch_size=1, generator=torch.Generator().manual_seed(0), output_type="pil").images[0]
    sample_path = folder / "model_sample_seed0.png"
    sample.save(sample_path)
    drawing = PIL.Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    PIL.ImageDraw.Draw(drawing).line([(70, 70), (205, 70), (125, 225)], fill=(0, 0, 0, 255), width=24, joint="curve")
    drawing_path = folder / "drawn_seven_rgba.png"
    drawing.save(drawing_path)
    return [sample_path, drawing_path]


def _model_description(pipe: VEEGAN, model_name: str) -> str:
    config = pipe.generator.config
    if pipe.is_image_model:
        shape = f"{config.image_size}×{config.image_size} {'grayscale' if config.num_channels == 1 else 'RGB'} images"
    else:
        shape = f"{config.data_dim}-D points"
    dataset = pipe.card_metadata.get("dataset_name")
    trained = f", trained on `{dataset}`" if dataset else ""
    codes = f"{config.latent_dim}-D codes"
    network = {"dcgan": "a DCGAN", "mlp": "an MLP"}.get(config.architecture, f"a {config.architecture}")
    return f"Model: `{model_name}`, {network} generator of {shape} from {codes}{trained}."


def build_demo(pipe: VEEGAN, model_name: str | None = None) -> gr.Blocks:
    """
    The Space UI around one loaded pipeline. Tabs: Sample, Invert (image models), Interpolate; examples are cached at
    startup. The handlers are reachable as `demo.veegan_handlers` (a `SpaceHandlers`).

    Args:
        pipe (`VEEGAN`): the pipeline, loaded once by the caller.
        model_name (`str`, *optional*): shown in the header; defaults to "VEEGAN".
    """
    _scratch_dir()  # before any gr.Examples: it points GRADIO_EXAMPLES_CACHE at a fresh folder
    handlers = SpaceHandlers(pipe)
    is_image = handlers.is_image_model
    grayscale = is_image and pipe.generator.config.num_channels == 1
    output_class = ["pixelated"] if is_image else []

    with gr.Blocks(title="VEEGAN: sample, invert, interpolate") as demo:
        gr.Markdown(
            "# VEEGAN: sample, invert, interpolate\n"
            "VEEGAN ([Srivastava et al., NeurIPS 2017](https://arxiv.org/abs/1705.07761)) trains a generator "
            "G: z → x together with a **reconstructor network F: x → z** that learns to invert it, which fights "
            "mode collapse. Draw samples, map your own image back to a latent code, or walk between two codes.\n\n"
            + _model_description(pipe, model_name or "VEEGAN"),
            elem_id="header",
        )

        with gr.Tab("Sample"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=260):
                    seed = gr.Number(0, label="Seed", precision=0)  # checked by the handler
                    count = gr.Slider(
                        1, handlers.max_samples, value=16 if is_image else 1000, step=1, precision=0, label="Samples"
                    )
                    truncation = gr.Slider(
                        0.0,
                        MAX_TRUNCATION,
                        value=0.0,
                        step=0.1,
                        label="Truncation (0 = off)",
                        info="Redraw latent coordinates with |z_i| above this: fewer oddities, less variety.",
                    )
                    sample_button = gr.Button("Sample", variant="primary", elem_id="sample-button")
                sample_output = gr.Image(
                    label="Samples" if is_image else "Samples over the true modes",
                    format="png",
                    type="pil",
                    interactive=False,
                    buttons=["download", "fullscreen"],
                    elem_id="sample-output",
                    elem_classes=output_class,
                    scale=2,
                )
            sample_inputs = [seed, count, truncation]
            sample_button.click(handlers.sample, sample_inputs, sample_output, api_name="sample")
            gr.Examples(
                [[0, 16, 0.0], [7, 64, 0.0], [42, 16, 1.0]] if is_image else [[0, 1000, 0.0], [1, 2048, 1.0]],
                inputs=sample_inputs,
                outputs=sample_output,
                fn=handlers.sample,
                cache_examples=True,
                cache_mode="eager",  # milliseconds each: computed at startup, so no visitor waits for them
            )

        if is_image:
            with gr.Tab("Invert"):
                gr.Markdown(
                    "Upload (or paste) an image: F encodes it in one pass, G decodes the code again, and optional "
                    "gradient steps refine the code to minimise ‖G(z) − x‖². Any size or mode is accepted; it is "
                    "converted and center-cropped to what the model was trained on."
                    + (
                        " Grayscale models such as MNIST know light digits on a dark background, so **Invert colors** "
                        "switches on by itself when your image is mostly bright (e.g. black strokes on white); "
                        "untick it to override."
                        if grayscale
                        else ""
                    )
                )
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=280):
                        image = image_upload(
                            label="Your image",
                            format="png",
                            height=260,
                            elem_id="invert-input",
                        )
                        with gr.Accordion("✏️ Or draw one", open=False):
                            gr.Markdown("Pick the brush in the canvas toolbar, draw, then press *Invert the drawing*.")
                            sketch = gr.Sketchpad(
                                type="pil",
                                image_mode="RGBA",
                                canvas_size=(280, 280),
                                fixed_canvas=True,
                                layers=False,
                                transforms=(),
                                brush=gr.Brush(default_size=22, colors=["#000000"], color_mode="fixed"),
                                format="png",
                                show_label=False,
                            )
                            draw_button = gr.Button("Invert the drawing")
                        invert_colors = gr.Checkbox(value=False, label="Invert colors", visible=True)
                        refine_steps = gr.Slider(
                            0,
                            MAX_REFINE_STEPS,
                            value=100,
                            step=10,
                            precision=0,
                            label="Refinement steps",
                            info="Adam steps on z, started from F(x); 0 shows the encoder alone.",
                        )
                        invert_button = gr.Button("Invert", variant="primary", elem_id="invert-button")
                    with gr.Column(scale=2):
                        with gr.Row():
                            pixel_view = {"format": "png", "elem_classes": ["pixelated"], "height": 210, "buttons": []}
                            model_view = gr.Image(label="Input x", elem_id="invert-model-view", **pixel_view)
                            reconstruction = gr.Image(label="G(F(x))", elem_id="invert-reconstruction", **pixel_view)
                            refined = gr.Image(label="G(z*), refined", elem_id="invert-refined", **pixel_view)
                        latent_plot = gr.Image(label="Latent code F(x)", format="png", show_label=True)
                        summary = gr.Markdown()
                        with gr.Accordion("Raw numbers", open=False):
                            details = gr.JSON(label="Details")
                invert_inputs = [image, invert_colors, refine_steps]
                invert_outputs = [model_view, reconstruction, refined, latent_plot, summary, details]
                invert_button.click(handlers.invert, invert_inputs, invert_outputs, api_name="invert")
                image.change(handlers.auto_invert, image, invert_colors, api_visibility="private", queue=False)
                draw_button.click(
                    handlers.use_drawing, sketch, [image, invert_colors], api_visibility="private"
                ).success(handlers.invert, invert_inputs, invert_outputs, api_visibility="private")
                sample_path, drawing_path = _example_images(handlers)
                gr.Examples(
                    [[str(sample_path), False, 100], [str(drawing_path), grayscale, 100]],
                    inputs=invert_inputs,
                    outputs=invert_outputs,
                    fn=handlers.invert,
                    cache_examples=True,
                    cache_mode="eager",
                    example_labels=["one of the model's own samples", "a drawn 7 (RGBA, black on transparent)"],
                )

        with gr.Tab("Interpolate"):
            gr.Markdown(
                "Decodes evenly spaced codes on the great circle (slerp) from code A to code B. The codes are the "
                "first sample of each seed" + (", or F(image) when you upload two images." if is_image else ".")
            )
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=260):
                    with gr.Row():
                        seed_a = gr.Number(0, label="Seed A", precision=0)
                        seed_b = gr.Number(1, label="Seed B", precision=0)
                    num_frames = gr.Slider(2, MAX_FRAMES, value=8, step=1, precision=0, label="Frames")
                with gr.Column(scale=2, visible=is_image):
                    gr.Markdown("**Or between two images** (used instead of the seeds when both are given)")
                    with gr.Row():
                        image_a = image_upload(label="Image A", height=180)
                        image_b = image_upload(label="Image B", height=180)
                    interp_invert = gr.Checkbox(value=False, label="Invert colors")
            interpolate_button = gr.Button("Interpolate", variant="primary", elem_id="interpolate-button")
            strip = gr.Image(
                label="Frames A → B", format="png", elem_classes=output_class, buttons=["download", "fullscreen"]
            )
            interpolate_inputs = [seed_a, seed_b, num_frames, image_a, image_b, interp_invert]
            interpolate_button.click(handlers.interpolate, interpolate_inputs, strip, api_name="interpolate")
            if is_image:
                image_a.change(handlers.auto_invert, image_a, interp_invert, api_visibility="private", queue=False)
            gr.Examples(
                [[0, 1, 8], [3, 11, 12]],
                inputs=[seed_a, seed_b, num_frames],
                outputs=strip,
                fn=handlers.interpolate,
                cache_examples=True,
                cache_mode="eager",
            )

        gr.Markdown(
            f"Uploads are limited to {MAX_UPLOAD_MB} MB and {MAX_IMAGE_PIXELS / 1e6:.1f} megapixels. Everything runs "
            "on this Space's CPU; the model was chosen when the Space started and cannot be changed from here.",
            elem_id="footnote",
        )

    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=QUEUE_SIZE)
    demo.veegan_handlers = handlers
    return demo


def _exit_on_sigterm(signum, frame) -> None:
    """SIGTERM (docker stop, a Space restart): remove the temporary folder and exit at once, with status 0. A normal
    interpreter shutdown could abort ("terminate called without an active exception") while torch runs in a worker
    thread, e.g. when the examples are still being cached."""
    if _SCRATCH is not None:
        shutil.rmtree(_SCRATCH, ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The VEEGAN Gradio Space.")
    parser.add_argument(
        "--model",
        default=None,
        help=f"Hub id or local save_pretrained folder; defaults to $MODEL_ID, else {DEFAULT_MODEL}.",
    )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="bind address")
    parser.add_argument("--port", type=int, default=os.environ.get("GRADIO_SERVER_PORT", "7860"), help="port")
    args = parser.parse_args(argv)
    model_name = str(args.model or os.environ.get("MODEL_ID") or DEFAULT_MODEL.name)
    try:
        pipe = load_pipeline(args.model)
    except ValueError as err:  # a clear line, not a traceback
        parser.exit(2, f"error: could not load the model: {err}\n")
    demo = build_demo(pipe, model_name=Path(model_name).name if Path(model_name).is_dir() else model_name)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    demo.launch(server_name=args.host, server_port=args.port, **launch_options())


if __name__ == "__main__":
    main()
