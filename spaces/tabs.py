"""The Space's Sample, Invert and Interpolate tabs: their components, their wiring to `SpaceHandlers`, and the
cached examples. `app.py` assembles them into the demo."""

import atexit
import io
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import PIL.Image
import PIL.ImageDraw
import torch
from gradio import processing_utils

from handlers import MAX_FRAMES, MAX_REFINE_STEPS, MAX_TRUNCATION, NOT_AN_IMAGE, SpaceHandlers
from inversion_pool import InversionPool

# Two queues: a refinement of hundreds of Adam steps runs one at a time ("heavy"; with an InversionPool, in its worker
# processes), so the other core stays free for the requests that take milliseconds (samples, interpolations, coverage
# verdicts), which never wait behind it
LIGHT = {"concurrency_id": "light", "concurrency_limit": 2}
HEAVY = {"concurrency_id": "heavy", "concurrency_limit": 1}
DEFAULT_IMAGE_COUNT = 16  # one 4x4 grid: shown when the page opens
DEFAULT_VECTOR_COUNT = 1000  # enough points to see which modes are covered


def checked_number(component: gr.Number | gr.Slider) -> gr.Number | gr.Slider:
    """
    A `gr.Number` or `gr.Slider` whose preprocessing never coerces: a string, a bool, NaN or infinity, or (in a
    whole-number field, `precision=0`) a fraction reaches the handler as sent, which refuses it by name. gradio's own
    preprocessing would round 2.5 to 2 and turn True into 1 unseen, and answer a string or NaN with an opaque server
    error. Plain numbers keep gradio's bounds check, its message prefixed with the field's label.
    """
    preprocess = component.preprocess
    whole, label = component.precision == 0, component.label or "This field"

    def checked_preprocess(payload: Any) -> Any:
        plain = isinstance(payload, (int, float)) and not isinstance(payload, bool) and math.isfinite(payload)
        if not plain or (whole and payload != int(payload)):
            return payload  # SpaceHandlers checks types before ranges and names the field
        try:
            return preprocess(payload)
        except gr.Error as err:  # "Value 1 is less than minimum value 2." does not say which field
            raise gr.Error(f"{label}: {err.message}") from None

    # per instance, as in image_upload: a Component subclass would make gradio write a .pyi stub beside this file
    component.preprocess = checked_preprocess
    return component


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


def output_image(**kwargs: Any) -> gr.Image:
    """
    A `gr.Image` output whose pictures reach gradio's cache whole. gradio writes a PIL output into its cache in place
    (`save_pil_to_cache`), under a name taken from the picture's bytes, so two visitors who get the same picture at
    once (the same seed, the same upload) can download it half-rewritten, and the download fails. Here each picture
    is written under a temporary name and renamed into place, and the finished file is handed to gradio.
    """
    component = gr.Image(**kwargs)
    postprocess = component.postprocess

    def whole_postprocess(value: Any) -> Any:
        if isinstance(value, PIL.Image.Image):
            value = _png_in_cache(value, Path(component.GRADIO_CACHE))
        return postprocess(value)

    component.postprocess = whole_postprocess  # per instance, as in image_upload
    return component


def _png_in_cache(image: PIL.Image.Image, cache: Path) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="png")
    data = buffer.getvalue()
    # gradio's own name for these bytes (hash_bytes): its copy into the cache then finds the file and writes nothing
    path = cache / processing_utils.hash_bytes(data) / "image.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(dir=path.parent, prefix=".image.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(staging, path)
    return str(path)


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


def sample_tab(demo: gr.Blocks, handlers: SpaceHandlers) -> None:
    """The Sample tab: a seed, a count and a truncation; samples on arrival, cached examples."""
    is_image = handlers.is_image_model
    output_class = ["pixelated"] if is_image else []
    with gr.Tab("Sample"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=260):
                seed = checked_number(gr.Number(0, label="Seed", precision=0))  # range checked by the handler
                count = checked_number(
                    gr.Slider(
                        1,
                        handlers.max_samples,
                        value=DEFAULT_IMAGE_COUNT if is_image else DEFAULT_VECTOR_COUNT,
                        step=1,
                        precision=0,
                        label="Number of samples",
                    )
                )
                truncation = checked_number(
                    gr.Slider(
                        0.0,
                        MAX_TRUNCATION,
                        value=0.0,
                        step=0.1,
                        label="Truncation (0 = off)",
                        info=(
                            "Redraw latent coordinates with |z_i| above this: samples nearer the average code, "
                            "with less variety. On the shipped digit model it costs balance and does not make "
                            "digits more legible (benchmarks/results/truncation.md)."
                        ),
                    )
                )
                sample_button = gr.Button("Sample", variant="primary", elem_id="sample-button")
            sample_output = output_image(
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
        sample_button.click(handlers.sample, sample_inputs, sample_output, api_name="sample", **LIGHT)
        # samples on arrival, from the inputs' defaults: an empty output tells a visitor nothing about the model
        demo.load(handlers.sample, sample_inputs, sample_output, api_visibility="private", **LIGHT)
        gr.Examples(
            [[0, 16, 0.0], [7, 64, 0.0], [42, 16, 1.0]] if is_image else [[0, 1000, 0.0], [1, 2048, 1.0]],
            inputs=sample_inputs,
            outputs=sample_output,
            fn=handlers.sample,
            cache_examples=True,
            cache_mode="eager",  # milliseconds each: computed at startup, so no visitor waits for them
        )


def invert_tab(handlers: SpaceHandlers, pool: InversionPool | None = None) -> None:
    """The Invert tab (image models): an upload or a drawing, F(x), G(F(x)), refinement, and the numbers. With a
    `pool`, visitors' inversions run in its worker processes, and the pool bounds how many wait."""
    invert = pool.invert if pool is not None else handlers.invert
    # with a pool, gradio hands on as many as the pool takes; the rest wait in gradio's queue (capped by its
    # max_size), which costs the server nothing more: an upload is parsed once, when its visitor sends it
    heavy = {**HEAVY, "concurrency_limit": pool.capacity} if pool is not None else HEAVY
    grayscale = handlers.pipe.generator.config.num_channels == 1
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
                refine_steps = checked_number(
                    gr.Slider(
                        0,
                        MAX_REFINE_STEPS,
                        value=100,
                        step=10,
                        precision=0,
                        label="Refinement steps",
                        info="Adam steps on z, started from F(x); 0 shows the encoder alone.",
                    )
                )
                invert_button = gr.Button("Invert", variant="primary", elem_id="invert-button")
            with gr.Column(scale=2):
                with gr.Row():
                    pixel_view = {"format": "png", "elem_classes": ["pixelated"], "height": 210, "buttons": []}
                    model_view = output_image(label="Input x", elem_id="invert-model-view", **pixel_view)
                    reconstruction = output_image(label="G(F(x))", elem_id="invert-reconstruction", **pixel_view)
                    refined = output_image(label="G(z*), refined", elem_id="invert-refined", **pixel_view)
                latent_plot = output_image(label="Latent code F(x)", format="png", show_label=True)
                summary = gr.Markdown(label="Summary")  # the label names this output in the API
                with gr.Accordion("Raw numbers", open=False):
                    details = gr.JSON(label="Details")
        invert_inputs = [image, invert_colors, refine_steps]
        invert_outputs = [model_view, reconstruction, refined, latent_plot, summary, details]
        invert_button.click(invert, invert_inputs, invert_outputs, api_name="invert", **heavy)
        image.change(handlers.auto_invert, image, invert_colors, api_visibility="private", queue=False)
        draw_button.click(handlers.use_drawing, sketch, [image, invert_colors], api_visibility="private").success(
            invert, invert_inputs, invert_outputs, api_visibility="private", **heavy
        )
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


def interpolate_tab(handlers: SpaceHandlers) -> None:
    """The Interpolate tab: between two seeds, or two images for image models."""
    is_image = handlers.is_image_model
    output_class = ["pixelated"] if is_image else []
    with gr.Tab("Interpolate"):
        gr.Markdown(
            "Decodes evenly spaced codes on the great circle (slerp) from code A to code B. The codes are the "
            "first sample of each seed" + (", or F(image) when you upload two images." if is_image else ".")
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=260):
                with gr.Row():
                    seed_a = checked_number(gr.Number(0, label="Seed A", precision=0))
                    seed_b = checked_number(gr.Number(1, label="Seed B", precision=0))
                num_frames = checked_number(gr.Slider(2, MAX_FRAMES, value=8, step=1, precision=0, label="Frames"))
            with gr.Column(scale=2, visible=is_image):
                gr.Markdown("**Or between two images** (used instead of the seeds when both are given)")
                with gr.Row():
                    image_a = image_upload(label="Image A", height=180)
                    image_b = image_upload(label="Image B", height=180)
                interp_invert = gr.Checkbox(value=False, label="Invert colors")
        interpolate_button = gr.Button("Interpolate", variant="primary", elem_id="interpolate-button")
        strip = output_image(
            label="Frames A → B", format="png", elem_classes=output_class, buttons=["download", "fullscreen"]
        )
        interpolate_inputs = [seed_a, seed_b, num_frames, image_a, image_b, interp_invert]
        interpolate_button.click(handlers.interpolate, interpolate_inputs, strip, api_name="interpolate", **LIGHT)
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
