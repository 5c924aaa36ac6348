"""ipywidgets panels for notebooks."""

from .live_view import LiveView
from .pose_panel import PosePanel

__all__ = ["LiveView", "PosePanel"]
