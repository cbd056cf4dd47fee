"""Running a recipe on one file and writing its outputs with provenance."""

import os
import time

import numpy as np

from ..errors import InputError
from ..io import load_image
from ..io.write import atomic_write, file_checksum, write_fits

__all__ = ["output_paths", "write_result", "write_catalog", "write_regions", "catalog_xy",
           "process_file"]

_SUFFIXES = (".fits.gz", ".fits.fz", ".fits", ".fit", ".fts", ".fz")


def _stem(path):
    base = os.path.basename(os.fspath(path))
    for suffix in _SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return os.path.splitext(base)[0]


def output_paths(input_path, outdir):
    """The files a run writes for one input: ``{"fits": ..., "catalog": ...}``."""
    stem = _stem(input_path)
    return {"fits": os.path.join(outdir, f"{stem}_processed.fits"),
            "catalog": os.path.join(outdir, f"{stem}_catalog.ecsv")}


def write_catalog(table, path, *, protect=()):
    """Write a catalog as ECSV, atomically."""
    with atomic_write(path, "w", protect=protect) as fh:
        table.write(fh, format="ascii.ecsv")
    return path


def history_lines(result):
    lines = []
    for s in result.stages:
        if not s.enabled:
            lines.append(f"{s.name}: disabled")
            continue
        params = ", ".join(f"{k}={v}" for k, v in s.params.items())
        lines.append(f"{s.name}({params})")
    return lines


def write_result(result, path, *, recipe, input_path=None, input_checksum=None):
    """Write a pipeline result's final image as FITS with provenance."""
    from astropy.io import fits

    final = result.final
    extra = []
    if final.error is not None:
        extra.append(fits.ImageHDU(np.asarray(final.error, np.float32), name="ERR"))
    extra.append(fits.ImageHDU(np.asarray(final.mask, np.uint8), name="DQ"))
    extra[-1].header["COMMENT"] = "1 = pixel not used (non-finite or DO_NOT_USE in the input)"
    if result.segmentation is not None:
        extra.append(fits.ImageHDU(np.asarray(result.segmentation, np.int32), name="SEGM"))
    return write_fits(path, final.data, header=final.header, wcs=final.wcs, unit=final.unit,
                      recipe=recipe, input_path=input_path, input_checksum=input_checksum,
                      history=history_lines(result), extra_hdus=extra)


def process_file(recipe, path, outdir, *, overwrite=False, pipeline=None):
    """Run a recipe on one file and write its processed FITS and catalog.

    Returns a dict: ``file``, ``status`` ("done", "skipped" or "failed"),
    ``seconds``, ``n_sources``, ``outputs`` (paths), ``message``. Problems
    with the file or the recipe are reported in ``message``, never raised,
    so one bad file does not stop a batch.
    """
    from .core import Pipeline

    t0 = time.perf_counter()
    row = {"file": os.fspath(path), "status": "failed", "seconds": 0.0, "n_sources": -1,
           "outputs": "", "message": ""}
    try:
        pipe = pipeline or Pipeline.from_recipe(recipe)
        recipe_dict = pipe.to_recipe()
        paths = output_paths(path, outdir)
        if not _makes_catalog(pipe):
            del paths["catalog"]
        checksum = file_checksum(path) if os.path.isfile(path) else None
        if not overwrite and _up_to_date(paths, recipe_dict, checksum):
            row.update(status="skipped", outputs=";".join(paths.values()),
                       n_sources=_count_rows(paths.get("catalog")),
                       message="outputs exist for this recipe and input")
            return row
        image = load_image(path)
        result = pipe.run(image)
        # The catalog first, the FITS (which records the recipe and the input's
        # checksum) last: a FITS that matches means the whole file was written.
        written = []
        if result.catalog is not None:
            written.append(write_catalog(result.catalog, paths["catalog"], protect=(path,)))
            row["n_sources"] = len(result.catalog)
        written.insert(0, write_result(result, paths["fits"], recipe=recipe_dict,
                                       input_path=path, input_checksum=checksum))
        row.update(status="done", outputs=";".join(written),
                   message="; ".join(m for s in result.stages for m in s.messages))
    except InputError as exc:
        row["message"] = str(exc)
    except MemoryError:
        row["message"] = f"{os.path.basename(path)}: out of memory while processing"
    except Exception as exc:  # a batch reports, it does not stop
        row["message"] = f"{os.path.basename(path)}: {type(exc).__name__}: {exc}"
    finally:
        row["seconds"] = round(time.perf_counter() - t0, 4)
    return row


def _makes_catalog(pipe):
    return any(s.enabled and "catalog" in s.spec.outputs for s in pipe.stages)


def _count_rows(path):
    if path is None or not os.path.exists(path):
        return -1
    from astropy.table import Table
    return len(Table.read(path, format="ascii.ecsv"))


def _up_to_date(paths, recipe, checksum):
    """True when every output exists and the processed FITS's provenance matches."""
    from ..io.write import read_provenance

    if checksum is None or not all(os.path.exists(p) for p in paths.values()):
        return False
    try:
        prov = read_provenance(paths["fits"])
    except Exception:
        return False
    if prov["input_checksum"] != checksum or prov["recipe"] is None:
        return False
    return prov["recipe"].get("stages") == recipe["stages"]


def write_regions(catalog, path, *, wcs=None, radius=5.0, protect=()):
    """Write a catalog as DS9 regions (circles; in sky coordinates when ``wcs`` is given)."""
    from astropy.coordinates import SkyCoord
    import astropy.units as u
    from regions import CirclePixelRegion, CircleSkyRegion, PixCoord, Regions

    xs, ys = catalog_xy(catalog)
    ids = catalog["id"] if "id" in catalog.colnames else range(1, len(catalog) + 1)
    regs = []
    for x, y, i in zip(xs, ys, ids):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        reg = CirclePixelRegion(PixCoord(x, y), radius=radius)
        if wcs is not None:
            ra, dec = wcs.all_pix2world([[x, y]], 0)[0]
            scale = wcs.proj_plane_pixel_scales()[0].to(u.arcsec)
            reg = CircleSkyRegion(SkyCoord(ra * u.deg, dec * u.deg), radius=radius * scale)
        reg.meta["text"] = str(i)
        regs.append(reg)
    text = Regions(regs).serialize(format="ds9")
    with atomic_write(path, "w", protect=protect) as fh:
        fh.write(text)
    return path


def catalog_xy(catalog):
    """The (x, y) pixel positions of a catalog's rows, whatever stage made it."""
    for xc, yc in (("x_fit", "y_fit"), ("x_centroid", "y_centroid"), ("x_center", "y_center"),
                   ("x", "y")):
        if xc in catalog.colnames and yc in catalog.colnames:
            return (np.asarray(getattr(catalog[xc], "value", catalog[xc]), float),
                    np.asarray(getattr(catalog[yc], "value", catalog[yc]), float))
    raise InputError("the catalog has no pixel position columns (x_centroid/y_centroid)")
