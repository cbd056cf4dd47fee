"""Loading JWST and plain FITS images into :class:`~jwst_widgets.io.Image`."""

import errno
import os
import stat as _stat
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

#: Images that would need more memory than this many bytes to load are refused
#: unless they can be memory-mapped (uncompressed, unscaled float32). None:
#: half the machine's memory.
MEMORY_LIMIT_BYTES = None

_IMAGE_HDU_TYPES = ("PrimaryHDU", "ImageHDU", "CompImageHDU")

#: What astropy raises on a damaged header or data met after the file opened
#: (an unparsable card is parsed only when first read). Turned into InputError.
_CORRUPT = (ValueError, KeyError, TypeError, IndexError, OverflowError, OSError, EOFError)


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
        uncompressed float32 images of 64 MiB and more, see
        ``MMAP_MIN_BYTES``, or bigger than the memory limit), a mask of
        non-finite pixels and of pixels with the DQ bit DO_NOT_USE, ERR when
        present, the celestial WCS, the BUNIT unit, the HDU's header and the
        origin. What could not be used is said in ``image.warnings``: a WCS
        or BUNIT that cannot be read (then None), a DQ or ERR of the wrong
        shape or type (ignored), values beyond the float32 range (masked).

    Raises
    ------
    jwst_widgets.InputError
        When the path is not a readable regular file, the file is not FITS,
        is truncated or corrupt, holds no usable image, would not fit in
        memory (see below), or ``ext`` / ``index`` does not fit it. The
        message names the file and the problem in words.

    Notes
    -----
    Memory: the size an image needs is worked out from its header before
    any pixel is read. An image that needs more than
    ``MEMORY_LIMIT_BYTES`` (default: half the machine's memory) is
    memory-mapped when it is uncompressed, unscaled float32, and refused
    otherwise, with its size and what to do. A header that claims more
    data than the file holds is refused as truncated.

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
        try:
            return _from_hdulist(path_or_hdulist, ext, index, name="HDUList", path=None)
        except InputError:
            raise
        except (*_CORRUPT, fits.VerifyError) as exc:
            raise InputError(f"HDUList: could not be read (a corrupt header or data: "
                             f"{type(exc).__name__}: {exc})") from None

    if not isinstance(path_or_hdulist, (str, bytes, os.PathLike)):
        raise InputError("load_image takes a path, an astropy HDUList or a 2-D array; "
                         f"got {type(path_or_hdulist).__name__}")
    path = os.fspath(path_or_hdulist)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    name = os.path.basename(path) or path
    info = _stat_file(path)
    if info.st_size == 0:
        raise InputError(f"{name}: the file is empty")
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot be opened ({exc.strerror or exc})") from None
    try:
        magic = fh.read(9)
        fh.seek(0)
        if not (magic.startswith(b"SIMPLE  =") or magic[:2] == b"\x1f\x8b"
                or magic[:3] == b"BZh"):
            raise InputError(f"{name}: not a FITS file (it does not start with 'SIMPLE  =')")
        compressed = not magic.startswith(b"SIMPLE")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # astropy is given our file object, which we close: a failed
                # open then leaves no unclosed file behind.
                hdul = fits.open(fh, memmap=True, mode="readonly",
                                 lazy_load_hdus=False)
        except Exception as exc:  # astropy raises a variety on corrupt headers
            raise InputError(f"{name}: could not be read as FITS ({_fits_error(exc)})") from None
        try:
            image = _from_hdulist(hdul, ext, index, name=name, path=path,
                                  file_size=None if compressed else info.st_size,
                                  compressed=compressed)
        except InputError:
            raise
        except (*_CORRUPT, fits.VerifyError) as exc:  # an unparsable card met late
            raise InputError(f"{name}: could not be read as FITS (a corrupt header or "
                             f"data: {type(exc).__name__}: {exc})") from None
        finally:
            # Arrays already taken stay valid after close (a memory map keeps
            # its own handle on the file).
            hdul.close()
    finally:
        fh.close()
    key = content_key(os.path.abspath(path), info.st_size, info.st_mtime_ns,
                      image.meta.get("extname"), image.meta.get("index"))
    return image.replace(key=key)


def _stat_file(path):
    """``os.stat`` of a path that must be a readable regular file, or InputError."""
    if not path:
        raise InputError("the path is empty: give the path of a FITS file")
    try:
        info = os.stat(path)
    except ValueError:  # an embedded NUL byte
        raise InputError(f"{path!r}: not a valid path") from None
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(f"{path}: a broken symbolic link (its target does not "
                             "exist)") from None
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied (a directory on the path cannot be "
                         "searched)") from None
    except OSError as exc:
        why = "a loop of symbolic links" if exc.errno == errno.ELOOP else (exc.strerror or exc)
        raise InputError(f"{path}: cannot be opened ({why})") from None
    if _stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path}: is a directory, not a FITS file")
    if not _stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: not a regular file (a device, pipe or socket), "
                         "not a FITS file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied (the file cannot be read)")
    return info


def _fits_error(exc):
    """astropy's complaint about a corrupt header, in words for the panel."""
    text = str(exc)
    if "SIMPLE card" in text:
        return "no valid SIMPLE card: not a FITS file or a corrupt one"
    if "END card" in text:
        return "the header has no END card: truncated or not FITS"
    if "Empty or corrupt" in text:
        return "empty, truncated or corrupt"
    return f"{type(exc).__name__}: {text}"


def _pick_hdu(hdul, ext, name):
    if ext is not None:
        if isinstance(ext, (bool, float)) or not isinstance(ext, (int, np.integer, str, tuple)):
            raise InputError(f"{name}: ext must be an HDU number, a name such as 'SCI', or "
                             f"(name, version); got {ext!r}", param="ext")
        try:
            hdu = hdul[ext]
        except (KeyError, IndexError, TypeError, ValueError):
            names = [h.name for h in hdul]
            raise InputError(f"{name}: no extension {ext!r}; it has {names}",
                             param="ext") from None
        if type(hdu).__name__ not in _IMAGE_HDU_TYPES:
            raise InputError(f"{name}: extension {ext!r} is a {type(hdu).__name__}, not an "
                             "image", param="ext")
        return hdu
    names = [h.name for h in hdul]
    if "SCI" in names:
        return hdul["SCI"]
    for hdu in hdul:
        if type(hdu).__name__ in _IMAGE_HDU_TYPES:
            naxis = _int_card(hdu.header, "NAXIS")
            if naxis >= 2 and all(_int_card(hdu.header, f"NAXIS{i}") > 0
                                  for i in range(1, naxis + 1)):
                return hdu
    for hdu in hdul:
        if type(hdu).__name__ in _IMAGE_HDU_TYPES and _int_card(hdu.header, "NAXIS") == 1:
            raise InputError(f"{name}: holds only 1-D data (a spectrum or a table?), not an image")
    raise InputError(f"{name}: holds no image HDU (extensions: {names})")


def _is_integer(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int_card(header, key):
    """An integer card's value (0 when absent, -1 when not an integer)."""
    value = header.get(key, 0)
    return int(value) if _is_integer(value) else -1


def _select_plane(arr, index, name):
    """Return (plane, index used)."""
    nd = arr.ndim
    if nd == 2:
        if index is None or (isinstance(index, tuple) and not index) or (
                _is_integer(index) and index == 0):
            return arr, None
        raise InputError(f"{name}: index={index!r} given but the image is 2-D", param="index")
    if nd > 4:
        raise InputError(f"{name}: data of {nd} dimensions {arr.shape} are not supported "
                         "(2-D images, 3-D cubes and 4-D ramps are)")
    if index is None:
        index = "cds" if (nd == 4 and arr.shape[1] >= 2) else (0,) * (nd - 2)
    if isinstance(index, str):
        if index != "cds" or nd != 4:
            raise InputError(f"{name}: index={index!r} is not understood; give an integer "
                             f"or a tuple of {nd - 2} integers"
                             + (" or 'cds'" if nd == 4 else ""), param="index")
        if arr.shape[1] < 2:
            raise InputError(f"{name}: index='cds' needs at least 2 groups; the ramp has 1",
                             param="index")
        plane = arr[0, -1].astype(np.float32) - arr[0, 0].astype(np.float32)
        return plane, "cds"
    if _is_integer(index):
        index = (int(index),)
    if not isinstance(index, (tuple, list)) or not all(_is_integer(i) for i in index):
        raise InputError(f"{name}: index must be an integer or a tuple of integers; "
                         f"got {index!r}", param="index")
    index = tuple(int(i) for i in index)
    if nd == 4 and len(index) == 1:
        index = (index[0], 0) if arr.shape[1] == 1 else None
        if index is None:
            raise InputError(f"{name}: the data are 4-D {arr.shape}: give index=(integration, "
                             "group) or index='cds'", param="index")
    if len(index) != nd - 2:
        raise InputError(f"{name}: the data are {nd}-D {arr.shape}; index needs {nd - 2} "
                         f"integer(s), got {index!r}", param="index")
    for i, (k, n) in enumerate(zip(index, arr.shape)):
        if not -n <= k < n:
            raise InputError(f"{name}: index {index!r} is out of range for axis {i} of "
                             f"length {n}", param="index")
    return arr[index], index


def _declared(hdu):
    """(shape, bytes per value, scaled) of an image HDU as its header declares it."""
    header = hdu.header
    naxis = _int_card(header, "NAXIS")
    dims = [_int_card(header, f"NAXIS{i}") for i in range(1, max(naxis, 0) + 1)]
    if naxis < 1 or any(d < 0 for d in dims):
        return None, 0, False
    bitpix = header.get("BITPIX")
    itemsize = abs(bitpix) // 8 if isinstance(bitpix, int) and bitpix in (
        8, 16, 32, 64, -32, -64) else 0
    # astropy reads these into memory (it cannot memory-map them)
    scaled = any(k in header and header[k] != v for k, v in (("BZERO", 0), ("BSCALE", 1))) or (
        "BLANK" in header and isinstance(bitpix, int) and bitpix > 0)
    return tuple(reversed(dims)), itemsize, scaled


def _size(nbytes):
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _check_before_reading(hdu, *, name, file_size, compressed):
    """Refuse, from the header alone, a truncated file or an image too big for memory.

    Nothing is read before this check, so a header claiming a huge image
    costs nothing.
    """
    header = hdu.header
    bitpix = header.get("BITPIX")
    if bitpix not in (8, 16, 32, 64, -32, -64) or isinstance(bitpix, bool):
        raise InputError(f"{name}: BITPIX {bitpix!r} is not a FITS data type (8, 16, 32, 64, "
                         "-32 or -64): a corrupt header")
    for key in ("BZERO", "BSCALE", "BLANK"):
        value = header.get(key)
        if value is not None and (isinstance(value, bool) or
                                  not isinstance(value, (int, float, np.number))):
            raise InputError(f"{name}: {key} {value!r} is not a number: a corrupt header")
    shape, itemsize, scaled = _declared(hdu)
    if not shape or not itemsize:
        return False
    n_values = int(np.prod([int(d) for d in shape], dtype=object))
    if n_values == 0:
        return False
    tile_compressed = type(hdu).__name__ == "CompImageHDU"
    dims = "x".join(str(d) for d in reversed(shape))
    if file_size is not None and not tile_compressed:
        start = hdu.fileinfo()["datLoc"] if hdu.fileinfo() else 0
        need = n_values * itemsize
        if start + need > file_size:
            raise InputError(f"{name}: the file is truncated: its header declares a {dims} "
                             f"image ({_size(need)} of data) but the file holds only "
                             f"{file_size - start} bytes of it (an interrupted download or "
                             "copy? fetch the file again)")
    ny, nx = shape[-2:] if len(shape) >= 2 else (1, shape[0])
    plane_values = int(ny) * int(nx)
    mappable = not (compressed or tile_compressed or scaled)
    limit = _memory_limit()
    # Read into memory: the whole HDU unless it is memory-mapped (scaled
    # integers become float32, or float64 for 32- and 64-bit integers).
    read = 0 if mappable else n_values * (8 if scaled and itemsize >= 4 else max(itemsize, 4))
    keep_map = mappable and bitpix == -32 and len(shape) < 4 and (
        plane_values * 4 >= MMAP_MIN_BYTES or plane_values * 4 > limit)
    # a ramp's default plane is a difference of two planes: three float32 planes
    copy = 0 if keep_map else plane_values * 4 * (3 if len(shape) == 4 else 1)
    need = read + copy + plane_values  # + the mask
    if need > limit:
        advice = ("decompress it (gunzip / funpack) so that it can be memory-mapped"
                  if not mappable and not scaled else
                  "save it uncompressed as float32 (BITPIX -32, no BZERO/BSCALE) so that it "
                  "can be memory-mapped")
        raise InputError(f"{name}: this {dims} image needs about {_size(need)} of memory to "
                         f"load, more than the {_size(limit)} allowed "
                         f"(jwst_widgets.io.load.MEMORY_LIMIT_BYTES); {advice}, or cut out a "
                         "region first (astropy.nddata.Cutout2D)")
    return keep_map


def _from_hdulist(hdul, ext, index, *, name, path, file_size=None, compressed=False):
    from astropy.io import fits

    hdu = _pick_hdu(hdul, ext, name)
    kind = type(hdu).__name__
    if kind == "_CorruptedHDU":
        raise InputError(f"{name}: the HDU {hdu.name!r} is corrupt (its header cannot be "
                         "parsed or does not fit its data)")
    if kind not in _IMAGE_HDU_TYPES:
        raise InputError(f"{name}: the HDU {hdu.name!r} is a {kind} (a table), not an image")
    keep_map = _check_before_reading(hdu, name=name, file_size=file_size,
                                     compressed=compressed)
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

    is_map = _is_mapped(raw)
    try:
        plane, used_index = _select_plane(raw, index, name)
    except InputError:
        raise
    except Exception as exc:  # truncated data raise on first access
        raise InputError(f"{name}: the image data could not be read ({exc})") from None

    notes = []
    try:
        if (is_map and plane.dtype.kind == "f" and plane.dtype.itemsize == 4
                and (keep_map or plane.nbytes >= MMAP_MIN_BYTES)):
            data = plane  # keep the memory map; read-only below
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                data = plane.astype(np.float32)  # native byte order
            if plane.dtype.kind == "f" and plane.dtype.itemsize > 4:
                with np.errstate(invalid="ignore"):
                    n_over = int(np.count_nonzero(np.isinf(data) & np.isfinite(plane)))
                if n_over:
                    notes.append(f"{n_over} pixel value(s) beyond the float32 range "
                                 "(±3.4e38) became infinite and are masked")
    except Exception as exc:
        raise InputError(f"{name}: the image data could not be read "
                         f"(truncated file? {type(exc).__name__}: {exc})") from None
    if data.shape[0] < 1 or data.shape[1] < 1:
        raise InputError(f"{name}: the image is empty (shape {data.shape})")

    with np.errstate(invalid="ignore", over="ignore"):
        try:
            mask = _nonfinite(data)
        except Exception as exc:
            raise InputError(f"{name}: the image data could not be read "
                             f"(truncated file? {exc})") from None
    if mask.all():
        notes.append("every pixel is NaN or infinite")

    dq = None
    names = [h.name for h in hdul]
    if "DQ" in names and hdu.name == "SCI":
        dq, note = _read_dq(hdul, raw.shape, used_index, data.shape)
        if note:
            notes.append(note)
        if dq is not None:
            mask |= (dq.astype(np.int64) & DO_NOT_USE) != 0

    error = None
    if "ERR" in names and hdu.name == "SCI" and used_index is None:
        try:
            err = _hdu_data(hdul, hdul["ERR"])
            if err is not None and err.dtype.kind in "iuf" and err.shape == data.shape:
                if data is plane and err.dtype.kind == "f" and err.dtype.itemsize == 4:
                    error = err  # memory-mapped like the data: no 4-bytes-a-pixel copy
                    error.flags.writeable = False
                else:
                    with np.errstate(over="ignore", invalid="ignore"):
                        error = np.asarray(err, dtype=np.float32)
            elif err is not None:
                what = "is a table" if err.dtype.names else f"has shape {err.shape}"
                notes.append(f"ERR {what}, not an image of the image's shape {data.shape}: "
                             "ignored")
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


def _read_dq(hdul, sci_shape, used_index, shape):
    """(the DQ plane matching the image plane, None) or (None, why it was ignored)."""
    try:
        dq_all = _hdu_data(hdul, hdul["DQ"])
    except Exception as exc:
        return None, f"DQ could not be read ({type(exc).__name__}: {exc}): ignored"
    if dq_all is None:
        return None, None
    if dq_all.dtype.names or dq_all.dtype.kind not in "biu":
        what = "a table" if dq_all.dtype.names else f"{dq_all.dtype} values"
        return None, f"DQ holds {what}, not integer flags: ignored"
    if dq_all.ndim == 2:
        dq = dq_all
    elif dq_all.shape != sci_shape or used_index is None:
        return None, f"DQ has shape {dq_all.shape}, not the image's {shape}: ignored"
    elif used_index == "cds":  # flags of either group count
        dq = dq_all[0, 0] | dq_all[0, -1]
    else:
        dq = dq_all[used_index]
    if dq.shape != shape:
        return None, f"DQ has shape {dq.shape}, not the image's {shape}: ignored"
    return np.asarray(dq), None


def _nonfinite(data, band=1 << 22):
    """``~isfinite(data)``, in bands of rows: a memory map is read once, in order."""
    ny, nx = data.shape
    mask = np.empty(data.shape, bool)
    rows = max(1, band // max(nx, 1))
    for y0 in range(0, ny, rows):
        np.logical_not(np.isfinite(data[y0:y0 + rows]), out=mask[y0:y0 + rows])
    return mask


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
    # our own file object: astropy leaves its own unclosed when a damaged file
    # makes it raise
    with open(source, "rb") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(fh, memmap=False, mode="readonly") as fresh:
            return fresh[index].data


_WCS_NUMBERS = ("CRVAL", "CRPIX", "CDELT", "CROTA", "CD1_", "CD2_", "PC1_", "PC2_")


def _read_wcs(header, hdul):
    from astropy.wcs import WCS, FITSFixedWarning

    if not any(k.startswith(("CTYPE", "CRVAL", "CD1_", "PC1_")) for k in header.keys()):
        return None, None
    for key in header.keys():
        # astropy.wcs silently takes 0 for a number it cannot read: refuse instead
        if key.startswith(_WCS_NUMBERS) and key[-1:].isdigit():
            value = header[key]
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                return None, (f"the WCS keyword {key} = {value!r} is not a number: "
                              "no sky coordinates")
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
        return None, f"the WCS could not be read ({_wcs_error(exc)}): no sky coordinates"


def _wcs_error(exc):
    """wcslib's complaint without its C file and line numbers."""
    lines = [ln.strip().rstrip(".") for ln in str(exc).splitlines() if ln.strip()]
    words = [ln for ln in lines if not ln.startswith("ERROR ")]
    return "; ".join(dict.fromkeys(words)) or type(exc).__name__


def _read_unit(header):
    import astropy.units as u

    bunit = header.get("BUNIT")
    if bunit is None or (isinstance(bunit, str) and not bunit.strip()):
        return None, None
    if not isinstance(bunit, str):
        return None, f"BUNIT {bunit!r} is not a unit (not text): values shown without unit"
    unknown = f"BUNIT {bunit!r} is not a unit astropy understands: values shown without unit"
    try:
        unit = u.Unit(bunit.strip(), parse_strict="silent")
    except Exception:
        return None, unknown
    if isinstance(unit, u.UnrecognizedUnit) or (
            not unit.bases and unit.scale != 1):  # a bare number such as '5'
        return None, unknown
    return unit, None
