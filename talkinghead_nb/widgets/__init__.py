"""ipywidgets panels for notebooks."""

from .live_view import LiveView

__all__ = ["LiveView"]
