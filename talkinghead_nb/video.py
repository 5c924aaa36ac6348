"""RGBA frames → an animation file, streamed through ffmpeg (the one the ``imageio-ffmpeg`` wheel ships), so a long
recording never sits in memory. The format follows the file's suffix:

- ``.webp``: animated WebP, lossless, with alpha; ``.png``: APNG with alpha; ``.gif``: GIF (on/off transparency,
  256 colours); ``.webm``: VP9 with alpha (yuva420p) and Opus sound; ``.mp4``: H.264 over a background colour (MP4
  players show no alpha) with AAC sound.

Files appear whole or not at all: ffmpeg writes into a scratch folder beside the target (in its nearest existing
folder: missing folders are made only for the finished file), renamed into place when it succeeds. Every path goes to
ffmpeg as ``file:`` and an absolute path, so that no name is read as a protocol (``http:``) or an option (``-out``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import numpy as np

from .atomic import write_bytes

SIZE = 512
ALPHA_FORMATS = (".webp", ".png", ".webm")
SOUND_FORMATS = (".webm", ".mp4")
FORMATS = {
    ".webp": ["-c:v", "libwebp_anim", "-lossless", "1", "-loop", "0", "-pix_fmt", "bgra"],
    ".png": ["-f", "apng", "-plays", "0", "-pix_fmt", "rgba"],
    ".gif": ["-filter_complex",
             "split[a][b];[a]palettegen=reserve_transparent=1[p];[b][p]paletteuse=alpha_threshold=128", "-loop", "0"],
    ".webm": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-b:v", "0", "-crf", "30", "-row-mt", "1",
              "-deadline", "good", "-cpu-used", "4", "-auto-alt-ref", "0"],
    ".mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "20", "-movflags", "+faststart"],
}
AUDIO = {".webm": ["-c:a", "libopus", "-b:a", "96k"], ".mp4": ["-c:a", "aac", "-b:a", "128k"]}


def ffmpeg_exe() -> str:
    """The ffmpeg to encode with: the ``imageio-ffmpeg`` wheel's, else one on the PATH."""
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found is None:
            raise RuntimeError("recording needs ffmpeg: pip install imageio-ffmpeg (it ships one)") from None
        return found


def check_target(path: str | os.PathLike, *, audio: bool = False, overwrite: bool = True) -> Path:
    """``path`` as a Path if its suffix names a format we write; else a ValueError listing them. Unless
    ``overwrite``, a FileExistsError if it exists, or (``audio`` in a format without sound) ``<name>.wav`` does."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{path.name}: name the recording .webp, .png (APNG), .gif, .webm or .mp4; the suffix picks "
                         "the format")
    taken = [output for output in outputs(path, audio=audio) if output.exists() or output.is_symlink()]
    if taken and not overwrite:
        raise FileExistsError(f"{taken[0]} exists: choose a new name, or pass overwrite=True to replace it")
    return path


def outputs(path: Path, *, audio: bool) -> list[Path]:
    """The files a recording into ``path`` writes: the animation, and its sound beside it where the format holds
    none."""
    beside = audio and path.suffix.lower() not in SOUND_FORMATS
    return [path, path.with_suffix(".wav")] if beside else [path]


def nearest_folder(path: str | os.PathLike) -> Path:
    """The nearest existing folder above ``path``: where its scratch goes (the same disk), before any folder is
    made."""
    return next(parent for parent in Path(path).absolute().parents if parent.exists())


def ffmpeg_path(path: str | os.PathLike) -> str:
    """``path`` as ffmpeg must read it: a file, never a protocol (``http:…``) or an option (``-out/…``)."""
    return f"file:{Path(path).absolute()}"


class AnimationWriter:
    """Write frames (``(512, 512, 4) uint8`` RGBA) at ``fps`` to ``path``; ``audio``: a WAV file (or its bytes) muxed
    into WebM and MP4 whole, so the file lasts as long as the longer of the two (give it sound as long as the frames;
    other formats have no sound: it is then copied beside them as ``<name>.wav``). ``background``: what MP4 shows
    under transparent pixels. ``overwrite``: replace an existing file (else a FileExistsError before any work). Use
    as a context manager: leaving it by an exception leaves nothing behind."""

    def __init__(self, path: str | os.PathLike, fps: float, *, audio: bytes | str | os.PathLike | None = None,
                 background: tuple[int, int, int] = (255, 255, 255), overwrite: bool = True):
        self.path = check_target(path, audio=audio is not None, overwrite=overwrite)
        self.fps, self.background, self.overwrite = fps, background, overwrite
        self.frames = 0
        self._scratch = tempfile.TemporaryDirectory(dir=nearest_folder(self.path), prefix=".recording-")
        scratch = Path(self._scratch.name)
        self._partial = scratch / f"partial{self.path.suffix.lower()}"
        # ffmpeg's messages go to a file: a pipe nobody reads while frames are written could fill and stall it.
        self._log = open(scratch / "ffmpeg.log", "w+b")  # noqa: SIM115 — closed with the scratch
        try:
            self.audio = write_bytes(scratch / "sound.wav", audio) if isinstance(audio, bytes) else audio
            # A session of its own: a Ctrl-C in the terminal reaches this process only, which then stops ffmpeg.
            self._process = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             stderr=self._log, start_new_session=True)
        except BaseException:
            self._cleanup()
            raise

    def _command(self) -> list[str]:
        suffix = self.path.suffix.lower()
        command = [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgba", "-s", f"{SIZE}x{SIZE}",
                   "-framerate", f"{self.fps:g}", "-i", "pipe:0"]
        sound = self.audio is not None and suffix in SOUND_FORMATS
        if sound:
            command += ["-i", ffmpeg_path(self.audio)]
        if suffix == ".mp4":
            colour = "0x{:02x}{:02x}{:02x}".format(*self.background)
            command += ["-filter_complex", f"color=c={colour}:s={SIZE}x{SIZE}:r={self.fps:g}[bg];"
                        "[bg][0:v]overlay=shortest=1:format=auto"]
        command += FORMATS[suffix]
        if sound:  # no -shortest: ffmpeg would stop reading frames where the sound ends, racing the writer
            command += AUDIO[suffix]
        return [*command, ffmpeg_path(self._partial)]

    def add(self, frame: np.ndarray) -> None:
        if frame.shape != (SIZE, SIZE, 4) or frame.dtype != np.uint8:
            raise ValueError(f"a frame is a ({SIZE}, {SIZE}, 4) uint8 RGBA array, got {frame.shape} {frame.dtype}")
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            self._fail()
        self.frames += 1

    def _fail(self) -> None:
        self._stop()
        self._log.seek(0)
        error = self._log.read().decode(errors="replace").strip()[-400:]
        self.abort()
        raise RuntimeError(f"ffmpeg could not write {self.path.name}: {error or 'it stopped'}")

    def _stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def _cleanup(self) -> None:
        self._log.close()
        self._scratch.cleanup()

    def close(self) -> Path:
        """Finish the file and move it into place (with, in a format without sound, the sound beside it)."""
        try:
            with contextlib.suppress(BrokenPipeError):  # ffmpeg has stopped already: its exit status says why
                self._process.stdin.close()
            if self._process.wait(timeout=600) != 0:
                self._fail()
            check_target(self.path, audio=self.audio is not None, overwrite=self.overwrite)  # made meanwhile?
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._partial, self.path)
            if self.audio is not None and self.path.suffix.lower() not in SOUND_FORMATS:
                write_bytes(self.path.with_suffix(".wav"), Path(self.audio).read_bytes())
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and remove the scratch (and the partial file in it); nothing else changes."""
        self._stop()
        if not self._log.closed:
            self._cleanup()

    def __enter__(self) -> AnimationWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
