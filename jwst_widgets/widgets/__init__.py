"""The interface layer: the image view, stage panels and the pipeline builder."""

from .builder import PipelineBuilder
from .mast_browser import MastBrowser
from .view import ImageView

__all__ = ["PipelineBuilder", "ImageView", "MastBrowser"]
