"""Writing results: atomically, never over an input, with provenance."""

import contextlib
import datetime
import errno
import hashlib
import json
import os
import tempfile

import numpy as np

from ..errors import InputError

__all__ = ["atomic_write", "atomic_path", "file_checksum", "write_fits", "package_versions",
           "read_provenance"]

#: Header keyword prefix of the recipe stored in processed FITS files.
RECIPE_EXTNAME = "RECIPE"


def file_checksum(path, algorithm="sha256", chunk=1 << 22):
    """Return ``"sha256:<hex>"`` of a file's bytes, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return f"{algorithm}:{h.hexdigest()}"


def _check_target(path, protect):
    """The real path to write, or InputError naming what is wrong with ``path``."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise InputError(f"an output path must be a string; got {type(path).__name__}") from None
    if not path or not path.strip():
        raise InputError("the output path is empty")
    if "\0" in path:
        raise InputError(f"the output path {path!r} holds a NUL character")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory; give a file name")
    target = os.path.realpath(path)
    for p in protect:
        if p is not None and os.path.exists(p) and os.path.realpath(p) == target:
            raise InputError(f"{path}: refusing to write over an input file")
    directory = os.path.dirname(target) or "."
    if not os.path.isdir(directory):
        raise InputError(f"{path}: the directory {directory} does not exist")
    return target


def _remove_stale_parts(directory, stem, suffix):
    """Remove temporary files of earlier writes of this target whose process is gone
    (a writer killed mid-write cannot clean up after itself)."""
    import glob
    for part in glob.glob(os.path.join(glob.escape(directory),
                                       f".jw-{glob.escape(stem)}-*{suffix}")):
        try:
            pid = int(os.path.basename(part)[len(f".jw-{stem}-"):].split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(part)
        except OSError:
            pass  # alive, or not ours to ask about


@contextlib.contextmanager
def atomic_path(path, *, protect=(), suffix=".part"):
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    For libraries that write to a file name (astropy's ``writeto``). On any
    exception the temporary file is removed and ``path`` is left as it was.
    OS errors (a full disk, a name too long, no permission) become
    InputError naming ``path``.
    """
    target = _check_target(path, protect)
    directory = os.path.dirname(target) or "."
    stem = os.path.basename(target)[:80]
    _remove_stale_parts(directory, stem, suffix)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".jw-{stem}-{os.getpid()}-", suffix=suffix,
                                   dir=directory)
        os.close(fd)
    except OSError as exc:
        raise InputError(f"{path}: cannot write here ({exc.strerror})") from None
    try:
        yield tmp
        os.replace(tmp, target)
        with contextlib.suppress(OSError):
            os.chmod(target, 0o644)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        full = exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
        raise InputError(f"{path}: could not be written ({exc.strerror or exc})"
                         + ("; the disk is full (or the file is over the size allowed): "
                            "free space or write elsewhere" if full else "")
                         + "; the previous file, if any, is unchanged") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode="wb", *, protect=()):
    """Write a file atomically: into a temporary file beside it, then rename.

    On any exception the temporary file is removed and an existing file at
    ``path`` is left as it was. ``protect`` lists paths (the inputs) that
    must never be written over. Problems with the path or the disk raise
    InputError naming the path.

    Examples
    --------
    >>> with atomic_write("out.json", "w") as fh:  # doctest: +SKIP
    ...     fh.write("{}")
    """
    with atomic_path(path, protect=protect) as tmp:
        with open(tmp, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def package_versions():
    """The versions of the packages that shaped a result, for provenance."""
    from importlib import metadata
    out = {}
    for name in ("jwst-widgets", "numpy", "scipy", "astropy", "photutils", "sep"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_fits(path, data, *, header=None, wcs=None, unit=None, recipe=None,
               input_path=None, input_checksum=None, history=(), extra_hdus=(),
               overwrite=True):
    """Write a processed image with its provenance, atomically.

    The primary HDU holds no data; the ``SCI`` extension holds ``data``
    (float32) with the WCS and unit; a ``RECIPE`` extension holds the recipe
    as JSON text. The SCI header records the input's name and checksum, the
    package versions and one HISTORY card per processing step.

    Parameters
    ----------
    path : str
        The output file. Never an input file (``input_path``).
    data : ndarray
        The 2-D image.
    header : `~astropy.io.fits.Header`, optional
        The input image's header; its WCS and descriptive cards are kept.
    recipe : dict, optional
        The recipe that made the image (``Pipeline.to_recipe()``).
    input_path, input_checksum : str, optional
        The input file and its checksum (computed from ``input_path`` when
        not given).
    history : iterable of str
        HISTORY lines, one per step.
    extra_hdus : iterable of HDU
        Further extensions (e.g. a background model).
    """
    from astropy.io import fits

    path = os.fspath(path)
    if not overwrite and os.path.exists(path):
        raise InputError(f"{path}: exists (pass overwrite=True to replace it)")
    if input_path is not None and input_checksum is None and os.path.exists(input_path):
        input_checksum = file_checksum(input_path)

    sci_header = fits.Header()
    if header is not None:
        skip = {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3",
                "NAXIS4", "EXTEND", "PCOUNT", "GCOUNT", "BZERO", "BSCALE", "BLANK",
                "CHECKSUM", "DATASUM", "EXTNAME", "EXTVER", "BUNIT"}
        for card in header.cards:
            if card.keyword not in skip and card.keyword not in ("", "COMMENT", "HISTORY"):
                try:
                    sci_header.append(card)
                except Exception:
                    pass
    if wcs is not None:
        sci_header.update(wcs.to_header(relax=True))
    if unit is not None:
        sci_header["BUNIT"] = (unit.to_string("fits") if hasattr(unit, "to_string") else str(unit),
                               "unit of the processed data")
    versions = package_versions()
    sci_header["JWVERS"] = (versions.get("jwst-widgets", "unknown"), "jwst-widgets version")
    sci_header["DATE"] = (datetime.datetime.now(datetime.timezone.utc)
                          .strftime("%Y-%m-%dT%H:%M:%S"), "UTC date this file was written")
    if input_path is not None:
        sci_header["INFILE"] = (os.path.basename(input_path), "input file")
    if input_checksum is not None:
        sci_header["INSUM"] = (input_checksum, "checksum of the input file")
    for name, v in versions.items():
        sci_header["HISTORY"] = f"{name} {v}"
    for line in history:
        sci_header["HISTORY"] = str(line)

    primary = fits.PrimaryHDU()
    primary.header["ORIGIN"] = "jwst-widgets"
    hdus = [primary, fits.ImageHDU(np.asarray(data, dtype=np.float32), sci_header, name="SCI")]
    for h in extra_hdus:
        hdus.append(h)
    if recipe is not None:
        text = json.dumps(recipe, sort_keys=True)
        col = fits.Column(name="JSON", format=f"{max(len(text), 1)}A", array=np.array([text]))
        rhdu = fits.BinTableHDU.from_columns([col], name=RECIPE_EXTNAME)
        rhdu.header["COMMENT"] = "the jwst-widgets recipe that made this file, as JSON"
        hdus.append(rhdu)
    hdul = fits.HDUList(hdus)
    hdul[0].header["NEXTEND"] = len(hdus) - 1
    with atomic_path(path, protect=(input_path,)) as tmp:
        hdul.writeto(tmp, checksum=True, overwrite=True)
    return path


def read_provenance(path):
    """Return ``{"recipe": dict or None, "input": name, "input_checksum": str}`` of a written file."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        sci = hdul["SCI"].header
        recipe = None
        if RECIPE_EXTNAME in hdul:
            text = hdul[RECIPE_EXTNAME].data["JSON"][0]
            if isinstance(text, bytes):
                text = text.decode()
            recipe = json.loads(text)
        return {"recipe": recipe, "input": sci.get("INFILE"), "input_checksum": sci.get("INSUM"),
                "history": [str(h) for h in sci.get("HISTORY", [])]}
