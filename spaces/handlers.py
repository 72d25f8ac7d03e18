"""The Space's event handlers: plain values in (what gradio passes), images and text out, and a `gr.Error` with a
message for the visitor on any bad input. Types are checked before ranges, so a string, NaN, 2.5 or True in a
whole-number field is refused by name rather than coerced. `app.py` builds the UI around them; tests call them
without a server.
"""

import io
import math
import warnings
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
from matplotlib.figure import Figure

from veegan_hf import VEEGAN
from veegan_hf.data import get_mixture
from veegan_hf.image_processor import ImageTransform, reversed_polarity
from veegan_hf.metrics import reconstruction_mse
from veegan_hf.plotting import samples_picture

MAX_SEED = 2**31 - 1
MAX_IMAGE_SAMPLES = 64  # one grid; more tiles are too small to see
MAX_VECTOR_SAMPLES = 2048  # a scatter plot needs many points to show which modes are covered
MAX_TRUNCATION = 3.0  # |z_i| <= 3 keeps 99.7% of N(0, 1): larger values change nothing visible
MAX_REFINE_STEPS = 500  # ~1 s per 100 steps for a small DCGAN on a CPU Space
MAX_FRAMES = 16
REFINE_LEARNING_RATE = 0.05  # the pipeline default: converges within a few hundred Adam steps
MAX_IMAGE_PIXELS = 4096 * 4096  # checked from the header, before any pixel is decoded
VECTOR_MODEL = "This model generates vectors, not images: only Sample and Interpolate by seeds apply."
NOT_AN_IMAGE = "{name} is not an image this Space can read; upload a PNG, JPEG, WebP, GIF or BMP file."


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


def _checkbox(name: str, value: Any) -> bool:
    """A checkbox's value: True or False (or None, unset), never a string or number coerced by truthiness."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise gr.Error(f"{name} must be true or false, got {value!r}.")
    return value


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


def _tile(images: torch.Tensor, num_columns: int | None = None, pad: int = 2) -> PIL.Image.Image:
    """(N, C, H, W) in [0, 1] -> one grid image, as the package shows images (`plotting.samples_picture`)."""
    return samples_picture(images * 2 - 1, num_columns=num_columns, pad=pad)


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
            raise gr.Error(VECTOR_MODEL)
        pixel_values = self.transform(_open_image(image, what))  # (C, H, W) in [-1, 1]
        if invert_colors:
            pixel_values = -pixel_values
        return ((pixel_values + 1) / 2)[None]

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        # G(z) with any extra noise at its mean: what invert() optimizes, so z* decodes to what it was scored on
        return self.pipe.decode(latents, output_type="pt")

    def _picture(self, samples: torch.Tensor, title: str, num_columns: int | None = None, as_path: bool = False):
        """The package's one picture of samples (`plotting.samples_picture`): a grid of images (the pipeline's
        [0, 1]), or vectors over the true modes of the model's mixture."""
        if samples.ndim == 4:
            samples = samples * 2 - 1  # the picture takes the model's range, [-1, 1]
        name = self.mixture.name if self.mixture is not None else None
        return samples_picture(samples.float().cpu(), name, title, num_columns=num_columns, as_path=as_path)

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
        trunc = f", truncation {truncation:g}" if truncation else ""
        return self._picture(output.samples, f"{count} samples (seed {seed}{trunc})")

    def check_invert_arguments(self, image: Any, invert_colors: Any, refine_steps: Any) -> tuple[int, bool]:
        """`invert`'s checks that need no decoding: the step count, the checkbox and that an image was given. Returns
        the step count and the checkbox's value; raises `gr.Error` naming the field otherwise."""
        steps = _int_in_range("Refinement steps", refine_steps, 0, MAX_REFINE_STEPS)
        inverted = _checkbox("Invert colors", invert_colors)
        if not self.is_image_model:
            raise gr.Error(VECTOR_MODEL)
        if image is None:
            raise gr.Error("Upload the image first.")
        return steps, inverted

    def invert(
        self, image: Any, invert_colors: Any = False, refine_steps: Any = 0
    ) -> tuple[PIL.Image.Image, PIL.Image.Image, PIL.Image.Image | None, PIL.Image.Image, str, dict[str, Any]]:
        """
        Encodes an image, z = F(x), decodes it, G(F(x)), and optionally refines z by `refine_steps` Adam steps on
        ||G(z) - x||^2.

        Returns the model's view of the input, G(F(x)), G(z*) (or None), a latent bar plot, a Markdown summary and
        the raw numbers.
        """
        steps, inverted = self.check_invert_arguments(image, invert_colors, refine_steps)
        pixel_values = self._model_input(image, inverted)  # (1, C, H, W) in [0, 1]
        try:
            with warnings.catch_warnings():  # a reversed upload is told in the answer, not as library advice in the log
                warnings.filterwarnings("ignore", message=".*look like the negative of what this model makes")
                latents = self.pipe.encode(pixel_values)  # (1, latent_dim)
                reconstruction = self._decode(latents)  # (1, C, H, W) in [0, 1]
                refined_latents = refined = None
                if steps > 0:
                    refined_latents = self.pipe.invert(
                        pixel_values, num_steps=steps, learning_rate=REFINE_LEARNING_RATE
                    )
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
        # the UI flips a reversed upload itself; an API caller gets told, as the Python API warns
        looks_reversed = not inverted and bool(reversed_polarity(real, self.pipe.sample_brightness)[0])
        if inverted:
            summary += "\n\nColors were inverted before encoding (dark strokes on light → light on dark)."
        elif looks_reversed:
            summary += (
                "\n\n**This image looks like the negative of what the model makes** (dark strokes on light for a model "
                "of light strokes on dark), so F(x) and G(F(x)) are far off. Tick *Invert colors* (`invert_colors` "
                "true through the API) to encode it the model's way round."
            )
        details = {
            "latent": [round(v, 5) for v in z.tolist()],
            "latent_norm": round(norm, 5),
            "reconstruction_mse": round(mse, 6),
            "refine_steps": steps,
            "refined_latent": None if refined_latents is None else [round(v, 5) for v in refined_latents[0].tolist()],
            "refined_mse": None if refined_mse is None else round(refined_mse, 6),
            "inverted_colors": inverted,
            "looks_reversed": looks_reversed,
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
        inverted = _checkbox("Invert colors", invert_colors)  # checked even when unused: a wrong type is a mistake
        if image_a is not None or image_b is not None:
            if image_a is None or image_b is None:
                raise gr.Error("Upload both images A and B, or clear them to interpolate between the two seeds.")
            start = self._model_input(image_a, inverted, "image A")
            end = self._model_input(image_b, inverted, "image B")
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
        title = f"{frames} steps from seed {start} (A) to seed {end} (B)"
        return self._picture(output.samples, title, num_columns=frames, as_path=True)

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
