"""What the benchmark scripts share: print a report and, when asked, keep it under ``bench/results/``."""

from __future__ import annotations

from pathlib import Path


def publish(lines: list[str], out: Path | None) -> None:
    """Print ``lines``; with ``out``, also write them there."""
    text = "\n".join(lines)
    print(text)
    if out:
        out.write_text(text + "\n")
