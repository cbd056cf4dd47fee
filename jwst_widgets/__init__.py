"""jwst-widgets: interactive analysis of JWST images in JupyterLab.

The public names are imported on first use, so ``import jwst_widgets`` stays
cheap: photutils, bqplot, dask and astroquery load only with the parts that
need them.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "InputError": "jwst_widgets.errors",
    "Image": "jwst_widgets.io",
    "load_image": "jwst_widgets.io",
    "write_fits": "jwst_widgets.io",
    "algorithms": "jwst_widgets.pipeline",
    "Pipeline": "jwst_widgets.pipeline",
    "PipelineResult": "jwst_widgets.pipeline",
    "run_batch": "jwst_widgets.pipeline.batch",
    "PipelineBuilder": "jwst_widgets.widgets",
    "ImageView": "jwst_widgets.widgets",
}
_MODULES = ("datasets", "io", "processing", "pipeline", "widgets", "mast", "errors",
            "aladin_offline")

__all__ = sorted(_PUBLIC) + list(_MODULES)


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    if name in _MODULES:
        return importlib.import_module(f"jwst_widgets.{name}")
    raise AttributeError(f"module 'jwst_widgets' has no attribute {name!r}")


def __dir__():
    return __all__
