"""The interface layer: the image view, stage panels and the pipeline builder."""

from .builder import PipelineBuilder
from .mast_browser import MastBrowser
from .sky import SkyTab, SkyView, add_sky_tab
from .psf_panel import PSFPanel
from .view import ImageView

#: Widgets shown with a stage when the builder's chain holds it (stage name ->
#: factory taking the builder): the variation lives here, not in the builder.
STAGE_PANELS = {
    "psf_photometry": lambda builder: PSFPanel(builder, add_stage=False),
}

__all__ = ["PipelineBuilder", "ImageView", "MastBrowser", "SkyView", "SkyTab", "add_sky_tab",
           "PSFPanel", "STAGE_PANELS"]
