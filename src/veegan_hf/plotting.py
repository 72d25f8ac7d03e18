"""Figures: sample grids for images, scatter plots over the true modes for 2-D data. matplotlib is imported lazily."""

from pathlib import Path

import numpy as np
import PIL.Image
import torch


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
):
    r"""
    A 2-D scatter of samples (blue) over the true mode means (red crosses), as in the paper's Figure 2.

    Args:
        samples (`torch.Tensor` of shape `(N, 2)`): the samples; higher-dimensional ones are shown by their first
            two coordinates.
        means (`torch.Tensor` of shape `(num_modes, 2)`, *optional*): the mixture means.
        title (`str`, *optional*): the panel title.
        path (`str` or `Path`, *optional*): save the figure here (PNG).
        ax (`matplotlib.axes.Axes`, *optional*): draw into this axes instead of a new figure.

    Returns:
        The matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    xy = samples[:, :2].float().cpu().numpy()
    ax.scatter(xy[:, 0], xy[:, 1], s=2, alpha=0.35, color="#1f77b4", linewidths=0)
    if means is not None:
        m = means[:, :2].float().cpu().numpy()
        ax.scatter(m[:, 0], m[:, 1], marker="x", s=30, color="#d62728", linewidths=1.2)
        span = np.abs(m).max() * 1.35 + 0.5
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    fig = fig or ax.figure
    if path is not None:
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
    return fig
