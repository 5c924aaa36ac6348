"""ipywidgets panels for notebooks."""

from .effects_panel import EffectsPanel
from .live_view import LiveView, recording_bar
from .pose_panel import PosePanel

__all__ = ["EffectsPanel", "LiveView", "PosePanel", "recording_bar"]
