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


SHAPE_COLOURS = {"aaa": "#d32f2f", "iii": "#f9a825", "uuu": "#1976d2", "eee": "#7b1fa2", "ooo": "#00897b",
                 "delta": "#6d4c41"}


def speech_figure(audio: np.ndarray, sample_rate: int, track, *, title: str | None = None) -> Figure:
    """The waveform with the viseme track under it: each mouth parameter over time, and the phonemes at their
    times. ``track`` is a :class:`talkinghead_nb.speech.Track`."""
    from .speech import MOUTH_KEYS
    seconds = max(len(audio) / sample_rate, track.end)
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    wave_ax, mouth_ax = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1.4))
    wave_ax.plot(np.arange(len(audio)) / sample_rate, audio, lw=0.4, color="#455a64")
    wave_ax.set_ylabel("audio")
    wave_ax.set_title(title or f"{len(track)} visemes over {seconds:.2f} s")
    times = np.linspace(0, seconds, max(2, int(seconds * 200)))
    mouth = track.mouth_array(times)
    for column, key in enumerate(MOUTH_KEYS):
        shape = key.removeprefix("mouth_").removesuffix("_index")
        mouth_ax.plot(times, mouth[:, column], lw=1.2, label=shape, color=SHAPE_COLOURS.get(shape))
    for keyframe in track.keyframes:
        if keyframe.phoneme:
            mouth_ax.text((keyframe.start + keyframe.end) / 2, 1.02, keyframe.phoneme, ha="center", va="bottom",
                          fontsize=7, transform=mouth_ax.get_xaxis_transform())
    mouth_ax.set_ylim(0, 1.0)
    mouth_ax.set_xlim(0, seconds)
    mouth_ax.set_xlabel("seconds")
    mouth_ax.set_ylabel("mouth")
    mouth_ax.legend(loc="upper right", ncols=6, fontsize=7, frameon=False)
    return fig
