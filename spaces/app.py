"""
VEEGAN Space: sample, invert and interpolate with one trained VEEGAN pipeline.

    python spaces/app.py                      # the model committed at spaces/veegan-mnist/
    MODEL_ID=org/veegan-celeba python spaces/app.py --host 0.0.0.0 --port 7860

The model is chosen once, at startup, by the deployer: `--model`, else the `MODEL_ID` environment variable (a Hub id
or a local folder), else `veegan-mnist/` next to this file. A visitor never chooses what is loaded. A local folder
never touches the network. Host and port default to gradio's `GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT`
(HF Spaces sets 0.0.0.0:7860), else 127.0.0.1:7860.

The handlers live in `handlers.py` (`SpaceHandlers`), so that tests call them without a server; the tabs are built in
`tabs.py` and `coverage_tab.py`, and this file assembles and launches them. The API names are stable: `/sample`,
`/invert` (image models only), `/interpolate`, and `/coverage` when the model ships a coverage report.

Visitors' inversions run in a worker process of their own (`--inversion_workers`, `inversion_pool.py`), so that
samples stay fast beside them; inversions beyond the pool's 9 places wait in gradio's queue.
"""

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import gradio as gr
import torch

import tabs
from coverage_tab import add_coverage_tab
from handlers import MAX_IMAGE_PIXELS, SpaceHandlers
from inversion_pool import InversionPool
from tabs import _scratch_dir, image_upload, interpolate_tab, invert_tab, sample_tab
from veegan_hf import VEEGAN

# gradio records every event for its monitoring page and, after each one, summarises all it holds (up to 10,000) in a
# pandas DataFrame, in pyarrow's memory pool. Under 64 users that was the server's one growing cost: 60-100 MiB more
# RSS within 5 minutes (benchmarks/space_load.py), and CPU per event that grew with the count. Summarised every 500
# events over the newest 2,000, it stays small. Read when the queue is made; a deployer's own values win.
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "2000")
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "500")

APP_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = APP_DIR / "veegan-mnist"  # committed with the Space; MODEL_ID overrides it
MAX_UPLOAD_MB = 10  # gradio rejects larger uploads before they reach a handler
DEFAULT_CONCURRENCY = 2  # CPU Spaces have 2 vCPUs; more parallel torch calls only add contention
QUEUE_SIZE = 128
MAX_WAITING_INVERSIONS = 8  # handed to the pool beside the running one; the rest wait in gradio's queue
CACHE_SECONDS = 3600  # visitors' uploads and pictures are deleted from gradio's cache after an hour (examples stay)

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


# ---------------------------------------------------------------------------------------------------- UI


def _model_description(pipe: VEEGAN, model_name: str) -> str:
    config = pipe.generator.config
    if pipe.is_image_model:
        shape = f"{config.image_size}×{config.image_size} {'grayscale' if config.num_channels == 1 else 'RGB'} images"
    else:
        shape = f"{config.data_dim}-D points"
    dataset = pipe.card_metadata.get("dataset_name")
    trained = f", trained on `{dataset}`" if dataset else ""
    codes = f"{config.latent_dim}-D codes"
    network = {"dcgan": "a DCGAN", "metz": "a reduced-D (Metz et al.)", "mlp": "an MLP"}.get(
        config.architecture, f"a {config.architecture}"
    )
    return f"Model: `{model_name}`, {network} generator of {shape} from {codes}{trained}."


def build_demo(pipe: VEEGAN, model_name: str | None = None, inversion_workers: int = 0) -> gr.Blocks:
    """
    The Space UI around one loaded pipeline. Tabs: Sample, Invert (image models), Interpolate, What can't it make?;
    examples are cached at startup. The handlers are reachable as `demo.veegan_handlers` (a `SpaceHandlers`),
    `demo.veegan_coverage` (a `CoverageHandler`) and `demo.veegan_inversion_pool` (an `InversionPool`, or None).

    Args:
        pipe (`VEEGAN`): the pipeline, loaded once by the caller.
        model_name (`str`, *optional*): shown in the header; defaults to "VEEGAN".
        inversion_workers (`int`, *optional*, defaults to 0):
            worker processes for visitors' inversions (`InversionPool`), so that they never hold up cheap requests;
            0 runs them in the server's threads, one at a time. Needs a pipeline loaded from a local folder.
    """
    _scratch_dir()  # before any gr.Examples: it points GRADIO_EXAMPLES_CACHE at a fresh folder
    handlers = SpaceHandlers(pipe)
    is_image = handlers.is_image_model
    pool = None
    if inversion_workers and is_image:
        folder = getattr(pipe, "source_folder", None)
        if folder is None:
            raise ValueError("inversion_workers needs a pipeline loaded with from_pretrained (a folder to load from)")
        pool = InversionPool(handlers, folder, workers=inversion_workers, max_waiting=MAX_WAITING_INVERSIONS)

    with gr.Blocks(title="VEEGAN: sample, invert, interpolate", delete_cache=(CACHE_SECONDS, CACHE_SECONDS)) as demo:
        gr.Markdown(
            "# VEEGAN: sample, invert, interpolate\n"
            "VEEGAN ([Srivastava et al., NeurIPS 2017](https://arxiv.org/abs/1705.07761)) trains a generator "
            "G: z → x together with a **reconstructor network F: x → z** that learns to invert it, which fights "
            "mode collapse. Draw samples, map your own image back to a latent code, or walk between two codes.\n\n"
            + _model_description(pipe, model_name or "VEEGAN"),
            elem_id="header",
        )

        sample_tab(demo, handlers)
        if is_image:
            invert_tab(handlers, pool)
        interpolate_tab(handlers)

        demo.veegan_coverage = add_coverage_tab(handlers, getattr(pipe, "source_folder", None), image_upload)

        gr.Markdown(
            f"Uploads are limited to {MAX_UPLOAD_MB} MB and {MAX_IMAGE_PIXELS / 1e6:.1f} megapixels. Everything runs "
            "on this Space's CPU; the model was chosen when the Space started and cannot be changed from here.",
            elem_id="footnote",
        )

    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=QUEUE_SIZE)
    if pool is not None:
        pool.wait_ready(timeout=600)  # loaded beside the examples above: the first visitors meet warm workers
    demo.veegan_handlers, demo.veegan_inversion_pool = handlers, pool
    return demo


def _exit_on_sigterm(signum, frame) -> None:
    """SIGTERM (docker stop, a Space restart): remove the temporary folder and exit at once, with status 0. A normal
    interpreter shutdown could abort ("terminate called without an active exception") while torch runs in a worker
    thread, e.g. when the examples are still being cached."""
    if tabs._SCRATCH is not None:
        shutil.rmtree(tabs._SCRATCH, ignore_errors=True)
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
    parser.add_argument(
        "--inversion_workers",
        type=int,
        default=int(os.environ.get("SPACE_INVERSION_WORKERS", "1")),
        help="processes for inversions, so that samples stay fast beside them; 0 runs them in the server's threads "
        "(default: $SPACE_INVERSION_WORKERS, else 1)",
    )
    args = parser.parse_args(argv)
    if args.inversion_workers < 0:
        parser.error(f"--inversion_workers must be 0 or more, got {args.inversion_workers}")
    model_name = str(args.model or os.environ.get("MODEL_ID") or DEFAULT_MODEL.name)
    try:
        pipe = load_pipeline(args.model)
    except ValueError as err:  # a clear line, not a traceback
        parser.exit(2, f"error: could not load the model: {err}\n")
    name = Path(model_name).name if Path(model_name).is_dir() else model_name
    demo = build_demo(pipe, model_name=name, inversion_workers=args.inversion_workers)
    # one torch thread per request: on a 2-vCPU Space a refinement then holds one core, and cheap requests the other
    torch.set_num_threads(int(os.environ.get("SPACE_TORCH_THREADS", "1")))
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    demo.launch(server_name=args.host, server_port=args.port, **launch_options())


if __name__ == "__main__":
    main()
