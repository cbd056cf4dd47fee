"""The interface layer: the image view, stage panels and the pipeline builder."""

from .builder import PipelineBuilder
from .view import ImageView

__all__ = ["PipelineBuilder", "ImageView"]
