"""Character preparation: checks of a candidate image, inspection plots, and opt-in repairs."""

from .checks import ERROR, PASS, WARNING, Finding, Report, check_character
from .fixes import REPAIRS, clear_hidden_colour, decontaminate_edges, fit_to_template, remove_specks, save_new
from .plots import alignment_figure, backgrounds_figure, edge_figure, repair_figure, specks_figure

__all__ = ["ERROR", "PASS", "REPAIRS", "WARNING", "Finding", "Report", "alignment_figure", "backgrounds_figure",
           "check_character", "clear_hidden_colour", "decontaminate_edges", "edge_figure", "fit_to_template",
           "remove_specks", "repair_figure", "save_new", "specks_figure"]
