"""The Space's "What can't it make?" tab: the model's precomputed coverage report, and a verdict on one upload.

The report is the folder `python -m veegan_hf.coverage` writes, shipped beside the model (`<model>/coverage/`). An
upload is judged against cached features (`veegan_hf.coverage.index.CoverageIndex`, built once, on first use): its
F(x) and G(F(x)), its coverage ratio against the model's samples, and whether the model can make it.
"""

import json
import threading
from pathlib import Path
from typing import Any

import gradio as gr
import PIL.Image

from handlers import SpaceHandlers, _checkbox, _tile
from tabs import LIGHT, output_image
from veegan_hf.data import BUILTIN_DATASETS

REPORT_FOLDER = "coverage"
SHOWN_FIGURES = ("modes", "worst_covered")


class CoverageHandler:
    """Judges uploads against the coverage of the Space's model; the index is built on first use, under a lock."""

    def __init__(self, handlers: SpaceHandlers, report_dir: Path | None):
        self.handlers, self.report_dir = handlers, report_dir
        self.metrics = json.loads((report_dir / "metrics.json").read_text()) if report_dir else None
        dataset = (self.metrics or {}).get("info", {}).get("dataset")
        self.dataset = dataset if dataset in BUILTIN_DATASETS else None
        self._index, self._lock = None, threading.Lock()

    @property
    def can_judge(self) -> bool:
        return self.dataset is not None and self.handlers.is_image_model

    def index(self):
        with self._lock:
            if self._index is None:
                from veegan_hf.coverage.index import CoverageIndex

                self._index = CoverageIndex.build(self.handlers.pipe, self.dataset)
            return self._index

    def judge(self, image: Any, invert_colors: Any = False) -> tuple[Any, Any, Any, str, dict[str, Any]]:
        """The model's view of the upload, G(F(x)), the nearest generated sample, a verdict and the raw numbers."""
        if not self.can_judge:
            raise gr.Error("This model ships no coverage report on built-in data, so uploads cannot be judged.")
        inverted = _checkbox("Invert colors", invert_colors)
        pixel_values = self.handlers._model_input(image, inverted)  # (1, C, H, W) in [0, 1]
        result = self.index().judge(pixel_values * 2 - 1)[0]
        verdict = "**makeable**" if result["makeable"] else "**not makeable**"
        why = (
            "a generated sample lies inside its neighbourhood"
            if result["covered"]
            else (
                "no generated sample comes near it, but G(F(x)) reproduces it as well as the model reproduces its own "
                "samples"
                if result["makeable"]
                else "no generated sample comes near it, and G(F(x)) misses it by more than the model misses its own "
                "samples"
            )
        )
        summary = (
            f"{verdict}: {why}.\n\n| | value |\n|---|---|\n"
            f"| coverage ratio (≤ 1 is covered) | {result['coverage_ratio']:.2f} |\n"
            f"| reconstruction MSE of G(F(x)) | {result['reconstruction_mse']:.4f} |\n"
            f"| the model's floor (99th percentile on its own samples) | {result['floor']:.4f} |"
        )
        details = {k: v for k, v in result.items() if k not in ("reconstruction", "nearest_generated")}
        to_unit = lambda t: (t[None] + 1) / 2  # noqa: E731  (the model's [-1, 1] -> [0, 1] tiles)
        return (
            _tile(pixel_values, pad=0),
            _tile(to_unit(result["reconstruction"]), pad=0),
            _tile(to_unit(result["nearest_generated"]), pad=0),
            summary,
            details,
        )

    def verdict(self) -> str:
        if self.metrics is None:
            return (
                "No coverage report ships with this model. Make one with `python -m veegan_hf.coverage --model MODEL "
                "--dataset DATA --output_dir MODEL/coverage`."
            )
        m = self.metrics
        text = (
            f"On `{m['info']['dataset']}`, {100 * m['uncovered_fraction']:.1f}% of {m['info']['num_real']:,} real "
            f"images are uncovered (real data against itself: {100 * m['baseline_uncovered_fraction']:.1f}%) and "
            f"{100 * m['not_makeable_fraction']:.1f}% are not makeable."
        )
        if m.get("most_dropped_ties", 1) > 1:
            text += f" {m['most_dropped_ties']} modes tie as the ones it most often cannot make."
        elif "most_dropped_mode" in m:
            text += f" The mode it most often cannot make is **{m['most_dropped_mode']}**."
        return text + f" Features: {m['info']['feature_extractor']}."


def add_coverage_tab(handlers: SpaceHandlers, model_dir: Path | None, image_upload: Any) -> CoverageHandler:
    """Builds the tab inside the caller's `gr.Blocks`; returns its handler (the API name is `/coverage`).
    `image_upload` makes the app's upload component (size limits checked before decoding)."""
    report_dir = (
        model_dir / REPORT_FOLDER if model_dir and (model_dir / REPORT_FOLDER / "metrics.json").is_file() else None
    )
    handler = CoverageHandler(handlers, report_dir)
    with gr.Tab("What can't it make?"):
        gr.Markdown(
            "Which real images can this model not make? Each real image is *covered* when one of the model's samples "
            "lies within its neighbourhood among real images, and *makeable* when it is covered or F inverts it as "
            "well as the model's own samples.\n\n" + handler.verdict()
        )
        if report_dir is not None:
            with gr.Row():
                for name in SHOWN_FIGURES:
                    gr.Image(
                        PIL.Image.open(report_dir / "figures" / f"{name}.png"),
                        label=name.replace("_", " "),
                        interactive=False,
                        buttons=["fullscreen"],
                    )
        if handler.can_judge:
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=260):
                    upload = image_upload(label="Your image", height=220)
                    invert_colors = gr.Checkbox(value=False, label="Invert colors")
                    button = gr.Button("Can it make this?", variant="primary", elem_id="coverage-button")
                with gr.Column(scale=2):
                    with gr.Row():
                        view = {"format": "png", "elem_classes": ["pixelated"], "height": 180, "buttons": []}
                        outputs = [
                            output_image(label="Input x", **view),
                            output_image(label="G(F(x))", **view),
                            output_image(label="Nearest generated sample", **view),
                        ]
                    outputs += [gr.Markdown(label="Verdict"), gr.JSON(label="Raw numbers")]
            button.click(handler.judge, [upload, invert_colors], outputs, api_name="coverage", **LIGHT)
            upload.change(handlers.auto_invert, upload, invert_colors, api_visibility="private", queue=False)
    return handler
