"""Pictures of samples for people, chosen in one place (`samples_picture`): a grid for images, a scatter over the true
modes for 2-D data, a histogram of each sample's mean coordinate for more dimensions; and the model card's sample
image. matplotlib is imported lazily, and never through pyplot."""

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image
import torch

from .data import builtin_spec

if TYPE_CHECKING:
    from .pipeline_veegan import VEEGAN

logger = logging.getLogger(__name__)


def image_grid(
    images: torch.Tensor, num_columns: int | None = None, pad: int = 2, scale: int = 1, background: float = -1.0
) -> PIL.Image.Image:
    r"""
    Tiles images into one picture.

    Args:
        images (`torch.Tensor` of shape `(N, C, H, W)`): pixels in [-1, 1] (the model's space).
        num_columns (`int`, *optional*): defaults to the smallest square that fits.
        pad (`int`, *optional*, defaults to 2): gutter width in output pixels.
        scale (`int`, *optional*, defaults to 1): integer upscaling of every tile (nearest neighbour keeps pixels
            crisp, which suits 28-px digits shown on a web page).
        background (`float`, *optional*, defaults to -1.0): gutter value in [-1, 1].
    """
    n, c, h, w = images.shape
    cols = num_columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    tiles = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte()  # (N, C, H, W) uint8
    tiles = tiles.permute(0, 2, 3, 1).numpy().repeat(scale, axis=1).repeat(scale, axis=2)  # (N, sH, sW, C)
    th, tw = h * scale, w * scale
    fill = round((background + 1) * 127.5)
    canvas = np.full((rows * (th + pad) + pad, cols * (tw + pad) + pad, c), fill, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        row, col = divmod(i, cols)
        top, left = pad + row * (th + pad), pad + col * (tw + pad)
        canvas[top : top + th, left : left + tw] = tile
    return PIL.Image.fromarray(canvas[..., 0] if c == 1 else canvas)


def scatter_over_modes(
    samples: torch.Tensor,
    means: torch.Tensor | None = None,
    title: str = "",
    path: str | Path | None = None,
    ax=None,
    size_inches: float = 4.0,
):
    r"""
    A 2-D scatter of samples (blue) over the true mode means (red crosses), as in the paper's Figure 2.

    Drawn on a pyplot-free `matplotlib.figure.Figure`: nothing changes the caller's backend or open figures (in a
    notebook, `matplotlib.use("Agg")` would close them all), and nothing needs closing.

    Args:
        samples (`torch.Tensor` of shape `(N, 2)`): the samples; higher-dimensional ones are shown by their first
            two coordinates.
        means (`torch.Tensor` of shape `(num_modes, 2)`, *optional*): the mixture means; without them the view is a
            square around the bulk of the samples, so that far outliers do not shrink everything else to a dot.
        title (`str`, *optional*): the panel title.
        path (`str` or `Path`, *optional*): save the figure here (PNG).
        ax (`matplotlib.axes.Axes`, *optional*): draw into this axes instead of a new figure.
        size_inches (`float`, *optional*, defaults to 4.0): the side of a new figure, at 100 dpi.

    Returns:
        The matplotlib figure.
    """
    from matplotlib.figure import Figure

    if ax is None:
        ax = Figure(figsize=(size_inches, size_inches), dpi=100).add_subplot()
    xy = samples[:, :2].float().cpu().numpy()
    ax.scatter(xy[:, 0], xy[:, 1], s=2, alpha=0.35, color="#1f77b4", linewidths=0, label="samples")
    if means is not None:
        m = means[:, :2].float().cpu().numpy()
        ax.scatter(m[:, 0], m[:, 1], marker="x", s=30, color="#d62728", linewidths=1.2, label="true modes")
        span = float(np.abs(m).max()) * 1.35 + 0.5
    else:
        finite = xy[np.isfinite(xy).all(axis=1)]
        span = float(np.quantile(np.abs(finite), 0.995)) * 1.2 + 1e-3 if finite.size else 1.0
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    if path is not None:
        ax.figure.savefig(path, bbox_inches="tight")
    return ax.figure


def _figure_image(figure) -> PIL.Image.Image:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    buffer.seek(0)
    return PIL.Image.open(buffer).convert("RGB")


TILE_PIXELS = 96  # the smallest side of a shown image: 28-px digits are enlarged 4x, 64-px faces 2x


def samples_picture(
    samples: torch.Tensor,
    dataset_name: str | None = None,
    title: str = "",
    num_columns: int | None = None,
    tile_pixels: int | None = None,
    background: float = -1.0,
    pad: int = 2,
    as_path: bool = False,
    size_inches: float = 6.0,
) -> PIL.Image.Image:
    r"""
    How the package shows samples to people, whoever asks (a training run, the model card, the benchmarks, the Space).

    Args:
        samples (`torch.Tensor`): `(N, C, H, W)` images in [-1, 1], or `(N, data_dim)` vectors.
        dataset_name (`str`, *optional*): a built-in mixture adds its true modes to a vector picture.
        title (`str`, *optional*): the title of a vector picture.
        num_columns (`int`, *optional*): grid columns (images); defaults to the smallest square that fits.
        tile_pixels (`int`, *optional*, defaults to `TILE_PIXELS`, 96): each image is enlarged by a whole factor
            (nearest neighbour) until it is at least this many pixels wide, so that 28-px digits stay readable.
        background (`float`, *optional*, defaults to -1.0): the grid's gutter value in [-1, 1].
        pad (`int`, *optional*, defaults to 2): the gutter width in output pixels.
        as_path (`bool`, *optional*, defaults to `False`): 2-D points in order (an interpolation), joined by a line.
        size_inches (`float`, *optional*, defaults to 6.0): the side of a vector picture, at 100 dpi.

    Returns:
        `PIL.Image.Image`: a grid for images; for 2-D vectors a scatter over the true modes; for more dimensions a
        histogram of each sample's mean coordinate (the 1200-D mixture's modes differ in that mean).
    """
    if samples.ndim == 4:
        columns = num_columns or int(np.ceil(np.sqrt(samples.shape[0])))
        scale = max(1, math.ceil((tile_pixels or TILE_PIXELS) / samples.shape[-1]))
        return image_grid(samples, num_columns=columns, scale=scale, background=background, pad=pad)
    from matplotlib.figure import Figure

    means = _mixture_means(dataset_name, any_dim=True)
    if samples.shape[1] == 2:
        figure = scatter_over_modes(samples, means, title=title, size_inches=size_inches)
        if as_path:
            points = samples.float().cpu().numpy()
            axis = figure.axes[0]
            axis.plot(points[:, 0], points[:, 1], "-", lw=1.2, color="#1f77b4")
            for end, (x, y) in (("A", points[0]), ("B", points[-1])):
                axis.annotate(end, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=10, weight="bold")
        return _figure_image(figure)
    figure = Figure(figsize=(size_inches, size_inches * 0.55), dpi=100)
    axis = figure.add_subplot()
    axis.hist(samples.float().mean(dim=1).cpu().numpy(), bins=60, color="#1f77b4")
    if means is not None:
        for level in means.float().mean(dim=1).tolist():
            axis.axvline(level, color="#d62728", lw=0.8, ls="--")
    axis.set_xlabel(
        "mean coordinate of each sample" + (" (dashed: true modes)" if means is not None else ""), fontsize=8
    )
    axis.set_title(title, fontsize=9)
    return _figure_image(figure)


# the samples shown to people (the card, a run's validation pictures, the benchmarks): a grid of 64 for image models,
# 2,500 points (the 2-D protocol's count) for vector ones
GRID_COLUMNS = 8
GRID_SAMPLES = GRID_COLUMNS * GRID_COLUMNS
SCATTER_SAMPLES = 2500
SAMPLES_NAME = "samples.png"  # written beside the weights by save_pretrained, embedded in the card, pushed with it


def save_samples_image(pipeline: "VEEGAN", save_directory: str | Path, dataset_name: str | None = None) -> Path | None:
    r"""
    Writes `samples.png` for the model card: an 8x8 grid of seeded samples for image models, a scatter plot over the
    true modes for 2-D vector models. Other vector models get no image (and lose a stale one).

    Args:
        pipeline (`VEEGAN`): the model to sample from; its weights and the global RNG are left untouched.
        save_directory (`str` or `Path`): the folder to write `samples.png` into.
        dataset_name (`str`, *optional*): the training data; a built-in 2-D mixture adds its true means to the plot.

    Returns:
        `Path` or `None`: the file written, or `None` when there is no image for this model.
    """
    from .evaluation import draw_samples

    path = Path(save_directory) / SAMPLES_NAME
    is_image = pipeline.is_image_model
    if not is_image and pipeline.generator.config.data_dim != 2:
        path.unlink(missing_ok=True)  # an image left by another model in this folder would be shown as this one's
        return None
    try:
        samples = draw_samples(pipeline, GRID_SAMPLES if is_image else SCATTER_SAMPLES, seed=0)
    except ValueError as err:  # e.g. non-finite output: the weights are still worth saving, without a picture
        logger.warning("samples.png was not written: %s", err)
        path.unlink(missing_ok=True)
        return None
    title = f"{samples.shape[0]:,} samples (seed 0)"
    samples_picture(samples, dataset_name, title, num_columns=GRID_COLUMNS).save(path)
    return path


def is_2d_mixture(dataset_name: str | None) -> bool:
    spec = builtin_spec(dataset_name)
    return spec is not None and spec.kind == "mixture" and spec.data_dim == 2


def _mixture_means(dataset_name: str | None, any_dim: bool = False) -> Any:
    """The true means of a built-in 2-D mixture (of any built-in mixture with `any_dim`), else None."""
    spec = builtin_spec(dataset_name)
    if spec is None or spec.kind != "mixture" or (not any_dim and spec.data_dim != 2):
        return None
    from .data import get_mixture

    return get_mixture(str(dataset_name)).means
