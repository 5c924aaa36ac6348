"""Matplotlib figures. Every function returns a Figure and shows nothing by itself."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
from matplotlib import figure


class Figure(figure.Figure):
    """A matplotlib Figure that shows itself in Jupyter without pyplot (no global state, safe from threads)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=self.dpi, facecolor=self.get_facecolor())
        return buffer.getvalue()


def contact_sheet(images: Mapping[str, np.ndarray], *, columns: int = 7, crop: tuple[int, int, int, int] | None =
                  (152, 24, 360, 232), tile_inches: float = 1.6, background: str = "#f4f1ea",
                  title: str | None = None) -> Figure:
    """A grid of labelled RGBA images over a flat background. ``crop`` = (left, top, right, bottom) of each image;
    the default frames the head of a THA3 character."""
    rows = math.ceil(len(images) / columns)
    fig = Figure(figsize=(columns * tile_inches, rows * (tile_inches + 0.25)), facecolor=background)
    for i, (label, image) in enumerate(images.items()):
        ax = fig.add_subplot(rows, columns, i + 1)
        if crop is not None:
            left, top, right, bottom = crop
            image = image[top:bottom, left:right]
        ax.imshow(image, interpolation="lanczos")
        ax.set_title(label, fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def stages_figure(stages: Mapping[str, object], names: list[str] | None = None, *, columns: int = 4,
                  tile_inches: float = 2.6, title: str | None = None) -> Figure:
    """Intermediate outputs of ``Poser.render_stages`` (first pose of the batch), each shown by
    ``imaging.visualize`` over a checkerboard, titled with its name and size."""
    from .imaging import visualize

    names = names or list(stages)
    rows = math.ceil(len(names) / columns)
    fig = Figure(figsize=(columns * tile_inches, rows * (tile_inches + 0.3)))
    for i, name in enumerate(names):
        picture = visualize(stages[name])[0]
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.imshow(_checkerboard(picture.shape[0]), cmap="gray", vmin=0, vmax=1)
        ax.imshow(picture, interpolation="lanczos")
        ax.set_title(f"{name} ({picture.shape[1]}²)", fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _checkerboard(size: int, square: int = 16) -> np.ndarray:
    """Light grey squares under transparent pixels, so transparency is visible."""
    index = np.arange(size) // max(1, size // (512 // square))
    return 0.8 + 0.15 * ((index[:, None] + index[None, :]) % 2)
