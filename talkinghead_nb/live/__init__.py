"""Live mode: the animator, the frame pump, and the live server (SillyTavern-Extras talkinghead API)."""

from .animator import Animator
from .pump import FramePump, Viewer
from .server import LiveServer
from .session import CommandError, LiveSession
from .settings import AnimatorSettings, load_settings

__all__ = ["Animator", "AnimatorSettings", "CommandError", "FramePump", "LiveServer", "LiveSession", "Viewer",
           "load_settings"]
