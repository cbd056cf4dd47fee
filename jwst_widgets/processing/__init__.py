"""The algorithm layer: pure functions on arrays, NaN- and mask-aware.

=============== ============================================================
module          what
=============== ============================================================
``background``  2-D mesh background and rms (:func:`estimate_background`)
``filters``     noise reduction (:func:`reduce_noise`)
``enhance``     intervals and stretches (:func:`enhance.enhance`)
``detect``      point sources and segmentation (:func:`find_point_sources`,
                :func:`find_segments`)
``stats``       robust statistics (:func:`robust_statistics`)
``photometry``  aperture photometry (:func:`aperture_photometry`)
``display``     the image view's display path (:func:`render`)
``psf``         PSF photometry: ePSF, fitting, aperture corrections
                (:func:`psf_photometry`)
=============== ============================================================

The names below are imported from their modules on first use, so importing
one module does not import the others' dependencies.
"""

import importlib

_NAMES = {
    "estimate_background": "background", "global_background": "background",
    "BackgroundResult": "background",
    "reduce_noise": "filters",
    "make_interval": "enhance", "make_stretch": "enhance",
    "display_limits": "enhance",
    "find_point_sources": "detect", "find_segments": "detect", "SegmentationResult": "detect",
    "robust_statistics": "stats",
    "aperture_photometry": "photometry", "measure_aperture_correction": "photometry",
    "ApertureCorrection": "photometry", "FLAG_OUTSIDE": "photometry",
    "FLAG_PARTIAL": "photometry", "FLAG_MASKED": "photometry",
    "FLAG_NO_BACKGROUND": "photometry",
    "render": "display",
    "select_psf_stars": "psf", "build_epsf": "psf", "analytic_psf": "psf", "image_psf": "psf",
    "fit_psf": "psf", "measure_psf_aperture_correction": "psf", "psf_photometry": "psf",
    "encircled_energy": "psf", "psf_fwhm": "psf", "PSFBuild": "psf", "PSFFit": "psf",
    "PSFPhotometryResult": "psf",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
