"""Loading JWST and plain FITS images into :class:`~jwst_widgets.io.Image`."""

import os
import warnings

import numpy as np

from ..errors import InputError
from .image import Image, content_key

__all__ = ["load_image", "DO_NOT_USE", "MEMORY_LIMIT_BYTES"]

#: The JWST DQ bit meaning "do not use this pixel" (``jwst.datamodels.dqflags``).
DO_NOT_USE = 1

#: Uncompressed float32 images at least this big stay memory-mapped (read-only,
#: in the file's big-endian order); smaller ones are read into native float32.
MMAP_MIN_BYTES = 64 * 2**20

#: Images whose float32 copy would exceed this many bytes are refused unless
#: they can be memory-mapped. The default is half the machine's memory.
MEMORY_LIMIT_BYTES = None

_IMAGE_HDU_TYPES = ("PrimaryHDU", "ImageHDU", "CompImageHDU")


def _memory_limit():
    if MEMORY_LIMIT_BYTES is not None:
        return MEMORY_LIMIT_BYTES
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
        return pages * size // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 * 2**30


def load_image(path_or_hdulist, ext=None, index=None):
    """Load a 2-D image from a FITS file, an HDUList or an array.

    Parameters
    ----------
    path_or_hdulist : str, os.PathLike, `~astropy.io.fits.HDUList` or ndarray
        A FITS file (plain, gzip-compressed or tile-compressed), an open
        HDUList, or a 2-D array.
    ext : int, str or (str, int), optional
        The HDU holding the image. By default the ``SCI`` extension when
        there is one (JWST ``cal``, ``i2d``, ``rate`` and ``uncal`` files),
        otherwise the first HDU that holds an image of 2 or more dimensions.
    index : int, tuple of int or str, optional
        For data of 3 or 4 dimensions, which 2-D plane to take, counted
        from the outermost axis as numpy sees it: ``index=k`` takes
        ``cube[k]`` of a 3-D cube, ``index=(i, g)`` takes ``ramp[i, g]`` of
        a 4-D ramp (integration *i*, group *g*). Negative values count
        from the end. ``index="cds"`` takes the last minus the first group
        of integration 0 (a correlated double sample). The default is plane
        0 for a 3-D cube and ``"cds"`` for a 4-D JWST ramp
        (``nints, ngroups, ny, nx``), which shows what accumulated during the
        integration. The chosen index is recorded in ``image.meta["index"]``.

    Returns
    -------
    image : `~jwst_widgets.io.Image`
        Data as float32 (scaled by BZERO/BSCALE; a read-only memory map for
        uncompressed float32 images of 64 MiB and more, see ``MMAP_MIN_BYTES``), a mask of non-finite pixels and of
        pixels with the DQ bit DO_NOT_USE, ERR when present, the celestial
        WCS, the BUNIT unit, the HDU's header and the origin.

    Raises
    ------
    jwst_widgets.InputError
        When the file cannot be read, holds no usable image, or ``ext`` /
        ``index`` does not fit it. The message names the file.

    Examples
    --------
    >>> from jwst_widgets import load_image, datasets
    >>> img = load_image(datasets.sample_path("hst_abell2744"))
    >>> img.data.shape
    (400, 400)
    """
    from astropy.io import fits

    if isinstance(path_or_hdulist, Image):
        return path_or_hdulist
    if isinstance(path_or_hdulist, np.ndarray):
        return Image.from_array(path_or_hdulist)
    if isinstance(path_or_hdulist, fits.HDUList):
        return _from_hdulist(path_or_hdulist, ext, index, name="HDUList", path=None)

    if not isinstance(path_or_hdulist, (str, os.PathLike)):
        raise InputError("load_image takes a path, an astropy HDUList or a 2-D array; "
                         f"got {type(path_or_hdulist).__name__}")
    path = os.fspath(path_or_hdulist)
    name = os.path.basename(path) or path
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a FITS file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied (the file cannot be read)")
    size = os.path.getsize(path)
    if size == 0:
        raise InputError(f"{name}: the file is empty")
    with open(path, "rb") as fh:
        magic = fh.read(9)
    if not (magic.startswith(b"SIMPLE  =") or magic[:2] == b"\x1f\x8b"
            or magic[:3] == b"BZh"):
        raise InputError(f"{name}: not a FITS file (it does not start with 'SIMPLE  =')")

    stat = os.stat(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdul = fits.open(path, memmap=True, mode="readonly", lazy_load_hdus=False)
    except OSError as exc:
        raise InputError(f"{name}: could not be read as FITS ({exc})") from None
    except Exception as exc:  # astropy raises a variety on corrupt headers
        raise InputError(f"{name}: could not be read as FITS ({type(exc).__name__}: {exc})") from None
    try:
        image = _from_hdulist(hdul, ext, index, name=name, path=path)
    finally:
        # Arrays already taken stay valid after close (astropy keeps the map).
        hdul.close()
    key = content_key(os.path.abspath(path), stat.st_size, stat.st_mtime_ns,
                      image.meta.get("extname"), image.meta.get("index"))
    return image.replace(key=key)


def _pick_hdu(hdul, ext, name):
    if ext is not None:
        try:
            return hdul[ext]
        except (KeyError, IndexError):
            names = [h.name for h in hdul]
            raise InputError(f"{name}: no extension {ext!r}; it has {names}") from None
    names = [h.name for h in hdul]
    if "SCI" in names:
        return hdul["SCI"]
    for hdu in hdul:
        if type(hdu).__name__ in _IMAGE_HDU_TYPES:
            naxis = hdu.header.get("NAXIS", 0)
            if naxis >= 2 and all(hdu.header.get(f"NAXIS{i}", 0) > 0 for i in range(1, naxis + 1)):
                return hdu
    for hdu in hdul:
        if type(hdu).__name__ in _IMAGE_HDU_TYPES and hdu.header.get("NAXIS", 0) == 1:
            raise InputError(f"{name}: holds only 1-D data (a spectrum or a table?), not an image")
    raise InputError(f"{name}: holds no image HDU (extensions: {names})")


def _select_plane(arr, index, name):
    """Return (plane, index used, is_cds)."""
    nd = arr.ndim
    if nd == 2:
        if index not in (None, 0, ()):
            raise InputError(f"{name}: index={index!r} given but the image is 2-D")
        return arr, None
    if nd > 4:
        raise InputError(f"{name}: data of {nd} dimensions {arr.shape} are not supported "
                         "(2-D images, 3-D cubes and 4-D ramps are)")
    if index is None:
        index = "cds" if (nd == 4 and arr.shape[1] >= 2) else (0,) * (nd - 2)
    if isinstance(index, str):
        if index != "cds" or nd != 4:
            raise InputError(f"{name}: index={index!r} is not understood; give an integer "
                             f"or a tuple of {nd - 2} integers"
                             + (" or 'cds'" if nd == 4 else ""))
        if arr.shape[1] < 2:
            raise InputError(f"{name}: index='cds' needs at least 2 groups; the ramp has 1")
        plane = arr[0, -1].astype(np.float32) - arr[0, 0].astype(np.float32)
        return plane, "cds"
    if isinstance(index, (int, np.integer)):
        index = (int(index),)
    try:
        index = tuple(int(i) for i in index)
    except (TypeError, ValueError):
        raise InputError(f"{name}: index must be an integer or a tuple of integers; "
                         f"got {index!r}") from None
    if nd == 4 and len(index) == 1:
        index = (index[0], 0) if arr.shape[1] == 1 else None
        if index is None:
            raise InputError(f"{name}: the data are 4-D {arr.shape}: give index=(integration, group) "
                             "or index='cds'")
    if len(index) != nd - 2:
        raise InputError(f"{name}: the data are {nd}-D {arr.shape}; index needs {nd - 2} "
                         f"integer(s), got {index!r}")
    for i, (k, n) in enumerate(zip(index, arr.shape)):
        if not -n <= k < n:
            raise InputError(f"{name}: index {index!r} is out of range for axis {i} of length {n}")
    return arr[index], index


def _from_hdulist(hdul, ext, index, *, name, path):
    from astropy.io import fits

    hdu = _pick_hdu(hdul, ext, name)
    try:
        raw = _hdu_data(hdul, hdu)
    except Exception as exc:
        raise InputError(f"{name}: the image data could not be read "
                         f"(truncated or corrupt file? {type(exc).__name__}: {exc})") from None
    if raw is None:
        raise InputError(f"{name}: the HDU {hdu.name!r} holds a header but no data")
    if raw.dtype.kind not in "biuf":
        raise InputError(f"{name}: the HDU {hdu.name!r} holds {raw.dtype} data, not an image")
    if raw.ndim < 2:
        raise InputError(f"{name}: holds only {raw.ndim}-D data, not an image")

    nbytes = int(np.prod(raw.shape[-2:])) * 4
    is_map = _is_mapped(raw)
    if nbytes > _memory_limit() and not (is_map and raw.dtype.kind == "f" and raw.dtype.itemsize == 4):
        gib = nbytes / 2**30
        raise InputError(f"{name}: a float32 copy of this {raw.shape[-1]}x{raw.shape[-2]} image "
                         f"needs {gib:.1f} GiB, more than the memory allowed "
                         f"({_memory_limit() / 2**30:.1f} GiB); save it uncompressed as float32 "
                         "so it can be memory-mapped, or cut out a region first")

    try:
        plane, used_index = _select_plane(raw, index, name)
    except InputError:
        raise
    except Exception as exc:  # truncated data raise on first access
        raise InputError(f"{name}: the image data could not be read ({exc})") from None

    try:
        if (is_map and plane.dtype.kind == "f" and plane.dtype.itemsize == 4
                and plane.nbytes >= MMAP_MIN_BYTES):
            data = plane  # keep the memory map; read-only below
        else:
            data = plane.astype(np.float32)  # native byte order
    except Exception as exc:
        raise InputError(f"{name}: the image data could not be read "
                         f"(truncated file? {exc})") from None
    if data.shape[0] < 1 or data.shape[1] < 1:
        raise InputError(f"{name}: the image is empty (shape {data.shape})")

    notes = []
    with np.errstate(invalid="ignore", over="ignore"):
        try:
            mask = ~np.isfinite(data)
        except Exception as exc:
            raise InputError(f"{name}: the image data could not be read "
                             f"(truncated file? {exc})") from None
    if mask.all():
        notes.append("every pixel is NaN or infinite")

    dq = None
    names = [h.name for h in hdul]
    if "DQ" in names and hdu.name == "SCI":
        try:
            dq_all = _hdu_data(hdul, hdul["DQ"])
            dq, _ = _select_plane(dq_all, None if used_index in (None, "cds") else used_index, "DQ") \
                if dq_all is not None and dq_all.ndim > 2 else (dq_all, None)
            if dq is not None and dq.shape != data.shape:
                notes.append(f"DQ has shape {dq.shape}, not the image's {data.shape}: ignored")
                dq = None
            elif dq is not None:
                mask |= (np.asarray(dq).astype(np.int64) & DO_NOT_USE) != 0
        except InputError:
            notes.append("DQ could not be matched to the image plane: ignored")
            dq = None
        except Exception as exc:
            notes.append(f"DQ could not be read ({exc}): ignored")
            dq = None

    error = None
    if "ERR" in names and hdu.name == "SCI" and used_index is None:
        try:
            err = _hdu_data(hdul, hdul["ERR"])
            if err is not None and err.shape == data.shape:
                error = np.asarray(err, dtype=np.float32)
            elif err is not None:
                notes.append(f"ERR has shape {err.shape}, not the image's {data.shape}: ignored")
        except Exception as exc:
            notes.append(f"ERR could not be read ({exc}): ignored")

    if isinstance(data, np.ndarray) and data.flags.writeable and data is plane:
        data = data.view()
    if isinstance(data, np.ndarray):
        try:
            data.flags.writeable = False
        except ValueError:  # pragma: no cover - some views refuse
            data = np.array(data, dtype=np.float32)
            data.flags.writeable = False

    header = hdu.header.copy()
    primary = hdul[0].header if len(hdul) else fits.Header()
    wcs, wcs_note = _read_wcs(header, hdul)
    if wcs_note:
        notes.append(wcs_note)
    unit, unit_note = _read_unit(header)
    if unit_note:
        notes.append(unit_note)

    def card(key):
        for h in (header, primary):
            if key in h:
                return h[key]
        return None

    meta = {
        "extname": hdu.name,
        "index": used_index,
        "photmjsr": card("PHOTMJSR"),
        "pixar_sr": card("PIXAR_SR"),
        "telescope": card("TELESCOP"),
        "instrument": card("INSTRUME"),
        "filter": card("FILTER"),
        "primary_header": primary.copy(),
        "path": path,
        "dq": dq,
    }
    return Image(data=data, mask=mask, error=error, wcs=wcs, unit=unit, header=header,
                 origin=path or name, meta=meta, warnings=tuple(notes))


def _is_mapped(arr):
    """True when an array's memory is a map of a file (astropy's memmap=True)."""
    import mmap

    base = arr
    while base is not None:
        if isinstance(base, (np.memmap, mmap.mmap)):
            return True
        base = getattr(base, "base", None)
    return False


def _hdu_data(hdul, hdu):
    """An HDU's data; scaled integers (BZERO/BSCALE), which cannot be memory-mapped, are read."""
    from astropy.io import fits

    try:
        return hdu.data
    except ValueError as exc:
        if "memory-mapped" not in str(exc):
            raise
    index = [id(h) for h in hdul].index(id(hdu))
    source = hdul.filename()
    if source is None:
        raise ValueError("the HDUList has scaled data that cannot be memory-mapped")
    with fits.open(source, memmap=False, mode="readonly") as fresh:
        return fresh[index].data


def _read_wcs(header, hdul):
    from astropy.wcs import WCS, FITSFixedWarning

    if not any(k.startswith(("CTYPE", "CRVAL", "CD1_", "PC1_")) for k in header.keys()):
        return None, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            warnings.simplefilter("ignore", UserWarning)
            w = WCS(header, fobj=hdul, naxis=2)
            if not w.has_celestial:
                return None, "the header's WCS is not celestial: no sky coordinates"
            w = w.celestial
            w.all_pix2world([[0.0, 0.0]], 0)  # fail now, not in the cursor readout
        return w, None
    except Exception as exc:
        return None, f"the WCS could not be read ({type(exc).__name__}: {exc}): no sky coordinates"


def _read_unit(header):
    import astropy.units as u

    bunit = header.get("BUNIT")
    if bunit is None or not str(bunit).strip():
        return None, None
    try:
        unit = u.Unit(str(bunit).strip(), parse_strict="silent")
    except Exception:
        return None, f"BUNIT {bunit!r} is not a unit astropy understands: values shown without unit"
    if isinstance(unit, u.UnrecognizedUnit):
        return None, f"BUNIT {bunit!r} is not a unit astropy understands: values shown without unit"
    return unit, None
