"""The small image type every layer above the data layer works with."""

import dataclasses
import hashlib
import uuid
from typing import Any

import numpy as np

__all__ = ["Image"]


@dataclasses.dataclass(frozen=True, eq=False)
class Image:
    """A 2-D image with what analysis needs beside the pixels.

    Instances are immutable: a processing step makes a new one with
    :meth:`replace`. Use :func:`jwst_widgets.load_image` to make one from a
    file, or :meth:`from_array` for an array already in memory.

    Attributes
    ----------
    data : ndarray
        The pixels, 2-D float32. For large uncompressed files this is a
        read-only memory map of the file (it may then be big-endian; every
        function of the package accepts that).
    mask : ndarray of bool
        True where a pixel is not to be used: non-finite values and pixels
        whose JWST DQ has the DO_NOT_USE bit set.
    error : ndarray or None
        The 1-sigma uncertainty (the ERR extension) in the unit of ``data``.
    wcs : astropy.wcs.WCS or None
        The celestial WCS of the image (2-D), or None when there is none or
        it could not be read (see ``warnings``).
    unit : astropy.units.Unit or None
        The unit of ``data`` (BUNIT), or None when absent or not understood.
    header : astropy.io.fits.Header
        The header of the image's HDU.
    origin : str
        Where the image came from (a path, a sample name, or ``"array"``).
    meta : dict
        Other facts read from the file: ``extname``, ``index``,
        ``photmjsr``, ``pixar_sr``, ``telescope``, ``instrument``,
        ``filter``, ``primary_header``, ``path``, ``dq`` (the DQ plane) ...
    warnings : tuple of str
        Things that went wrong but did not stop the load, in words.
    key : str
        An identity for caches: equal keys mean equal pixels.
    """

    data: np.ndarray
    mask: np.ndarray
    error: Any = None
    wcs: Any = None
    unit: Any = None
    header: Any = None
    origin: str = "array"
    meta: dict = dataclasses.field(default_factory=dict)
    warnings: tuple = ()
    key: str = ""

    def __post_init__(self):
        if not self.key:
            object.__setattr__(self, "key", uuid.uuid4().hex)

    @classmethod
    def from_array(cls, data, *, mask=None, error=None, wcs=None, unit=None,
                   header=None, origin="array", meta=None):
        """Make an image from a 2-D array (copied to float32).

        ``mask`` is combined with the non-finite pixels of ``data``.
        """
        from ..errors import InputError

        arr = np.asarray(data)
        if arr.ndim != 2:
            raise InputError(f"an image must be 2-D; got an array of shape {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise InputError(f"an image must hold numbers; got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
        bad = ~np.isfinite(arr)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != arr.shape:
                raise InputError(f"mask shape {mask.shape} differs from the image's {arr.shape}")
            bad |= mask
        if error is not None:
            error = np.asarray(error, dtype=np.float32)
            if error.shape != arr.shape:
                raise InputError(f"error shape {error.shape} differs from the image's {arr.shape}")
        if header is None:
            from astropy.io import fits
            header = fits.Header()
        return cls(data=arr, mask=bad, error=error, wcs=wcs, unit=unit, header=header,
                   origin=origin, meta=dict(meta or {}))

    def replace(self, **changes):
        """Return a copy with some attributes changed (a new ``key`` unless given)."""
        changes.setdefault("key", "")
        return dataclasses.replace(self, **changes)

    @property
    def shape(self):
        return self.data.shape

    @property
    def name(self):
        """A short name for titles: the file name or the sample name."""
        import os
        return os.path.basename(str(self.origin)) or str(self.origin)

    def pixel_to_sky(self, x, y):
        """Return (ra, dec) in degrees for 0-based pixel positions, or None."""
        if self.wcs is None:
            return None
        ra, dec = self.wcs.all_pix2world(np.asarray(x, float), np.asarray(y, float), 0)
        return ra, dec

    def __repr__(self):
        unit = self.unit.to_string() if self.unit is not None else "no unit"
        ny, nx = self.data.shape
        return (f"<Image {self.name!r} {nx}x{ny} {unit}, "
                f"{int(self.mask.sum())} masked, wcs={'yes' if self.wcs is not None else 'no'}>")


def content_key(*parts):
    """A short hash of strings and bytes, used for cache keys."""
    h = hashlib.sha1()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]
