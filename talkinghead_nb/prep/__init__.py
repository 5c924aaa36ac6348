"""Character preparation: background removal, checks of a candidate image (the halo detector among them),
inspection plots, and opt-in repairs."""

from .background import BackgroundError, Cutout, cut_out, remove_background, removed_background
from .checks import ERROR, PASS, WARNING, Finding, Report, check_character
from .fixes import REPAIRS, clear_hidden_colour, decontaminate_edges, fit_to_template, remove_specks, save_new
from .halo import Halo, find_halo
from .matting import MattingUnavailable
from .plots import alignment_figure, backgrounds_figure, cutout_figure, edge_figure, repair_figure, specks_figure

__all__ = ["ERROR", "PASS", "REPAIRS", "WARNING", "BackgroundError", "Cutout", "Finding", "Halo", "MattingUnavailable",
           "Report", "alignment_figure", "backgrounds_figure", "check_character", "clear_hidden_colour", "cut_out",
           "cutout_figure", "decontaminate_edges", "edge_figure", "find_halo", "fit_to_template", "remove_background",
           "remove_specks", "removed_background", "repair_figure", "save_new", "specks_figure"]
