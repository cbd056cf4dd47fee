"""The interface layer: the image view, stage panels and the pipeline builder."""

from .builder import PipelineBuilder
from .mast_browser import MastBrowser
from .sky import SkyTab, SkyView, add_sky_tab
from .view import ImageView

__all__ = ["PipelineBuilder", "ImageView", "MastBrowser", "SkyView", "SkyTab", "add_sky_tab"]
