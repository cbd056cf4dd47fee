"""The sky view: where the image lies on the sky, with its sources (ipyaladin).

:class:`SkyView` shows, in Aladin Lite (through ipyaladin), the footprint of
an image from its WCS, the image itself, and the catalog's sources at their
RA/Dec. Selecting a source on the sky selects it in the catalog table and
the image view of a :class:`~jwst_widgets.PipelineBuilder`, and the other way
round. :class:`SkyTab` is the builder's "Sky" tab: it makes the sky view only
when the tab is first shown, so pages that never look at the sky never run
Aladin Lite (which keeps a browser busy even when idle).

Where Aladin Lite comes from
----------------------------
ipyaladin's front end imports Aladin Lite from ``https://esm.sh`` when the
view is drawn, so by default the sky view needs internet in the *browser*.
``aladin_lite="local"`` sends a local copy instead, through the widget's own
connection to the kernel (no server set-up; works in JupyterLab, Voila and
on a remote server alike); ``"auto"`` (the default) uses the local copy when
there is one. Make the copy once with ``python -m jwst_widgets.aladin_offline
fetch`` (see :mod:`jwst_widgets.aladin_offline`; Aladin Lite is LGPL-3.0).

When Aladin Lite cannot be loaded, the view says so in words where the sky
would be, and the kernel learns it (``SkyView.status == "failed"``);
everything else keeps working. The background sky survey (DSS) always needs
internet: without it the sky is black, and the image, the footprint and the
sources are still drawn.

The pure helpers :func:`footprint`, :func:`sky_table` and :func:`image_hdulist`
compute what is sent; they need no browser.
"""

import functools
import html
import json
import threading
import weakref
from pathlib import Path

import ipywidgets as w
import numpy as np

from ..errors import InputError, describe_choices

__all__ = ["SkyView", "SkyTab", "add_sky_tab", "footprint", "sky_table", "image_hdulist",
           "ALADIN_LITE_CHOICES"]

#: Where Aladin Lite may come from (see :class:`SkyView`).
ALADIN_LITE_CHOICES = ("auto", "local", "cdn")
#: Marker colours, the same as the image view's.
SOURCE_COLOR = "#39ff14"
SELECTED_COLOR = "#ff3030"
FOOTPRINT_COLOR = "#00e5ff"
_OVERLAYS = {"footprint": "jw_footprint", "sources": "jw_sources", "selected": "jw_selected",
             "image": "jw_image"}
#: Popup columns copied into the table sent to Aladin Lite (besides row, ra, dec).
_INFO_COLUMNS = ("id", "label", "x_centroid", "y_centroid", "x_fit", "y_fit", "x_center",
                 "y_center", "flux", "flux_fit", "segment_flux", "aperture_sum", "mag_ab")


# ------------------------------------------------------------------------------ helpers

def _celestial(wcs, param="wcs"):
    if wcs is None:
        raise InputError("the image has no WCS (no sky coordinates), so it cannot be placed on "
                         "the sky", param=param)
    cel = getattr(wcs, "celestial", None)
    if cel is None or not getattr(wcs, "has_celestial", False) or cel.naxis != 2:
        raise InputError(f"{param} must be a celestial astropy WCS (RA/Dec axes); got "
                         f"{type(wcs).__name__} without celestial axes", param=param)
    return cel


def _as_icrs(sky):
    """RA, Dec (deg) of a SkyCoord in ICRS (FK5 WCSs differ from ICRS by < 0.1 arcsec)."""
    sky = sky.icrs
    return np.asarray(sky.ra.deg, float), np.asarray(sky.dec.deg, float)


def footprint(wcs, shape):
    """The sky corners of an image: RA, Dec (ICRS, degrees) of its four corner pixels.

    The corners are the centres of the corner pixels, in the order of
    astropy's :meth:`~astropy.wcs.WCS.calc_footprint`: (0, 0), (0, ny-1),
    (nx-1, ny-1), (nx-1, 0) in 0-based (x, y).

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The image's WCS (celestial axes; distortions such as SIP are applied).
    shape : (int, int)
        The image's ``(ny, nx)``.

    Returns
    -------
    ndarray, shape (4, 2)
        ``[[ra, dec], ...]`` in degrees, ICRS.

    Raises
    ------
    jwst_widgets.InputError
        No WCS, a WCS without sky axes, or a bad shape.

    Examples
    --------
    >>> from jwst_widgets import datasets
    >>> image = datasets.load_sample("hst_abell2744")
    >>> footprint(image.wcs, image.shape).round(4)
    array([[  3.5986, -30.3949],
           [  3.5986, -30.3883],
           [  3.5908, -30.3883],
           [  3.5908, -30.3949]])
    """
    cel = _celestial(wcs)
    try:
        ny, nx = (int(n) for n in shape)
    except (TypeError, ValueError):
        ny = nx = 0
    if ny < 1 or nx < 1:
        raise InputError(f"shape must be (ny, nx) with positive sizes; got {shape!r}",
                         param="shape")
    x = np.array([0.0, 0.0, nx - 1.0, nx - 1.0])
    y = np.array([0.0, ny - 1.0, ny - 1.0, 0.0])
    ra, dec = _as_icrs(cel.pixel_to_world(x, y))
    return np.column_stack([ra, dec])


def _stcs_polygon(corners):
    return "Polygon ICRS " + " ".join(f"{ra:.9f} {dec:.9f}" for ra, dec in corners)


def sky_table(catalog, *, wcs=None, max_rows=None):
    """The table of sources sent to the sky view: one row per catalog row with a position.

    Parameters
    ----------
    catalog : astropy.table.Table
        A catalog of the pipeline (``ra``/``dec`` columns, or pixel
        positions such as ``x_centroid``/``y_centroid`` with ``wcs``).
    wcs : astropy.wcs.WCS, optional
        Used when the catalog has no ``ra``/``dec`` columns.
    max_rows : int, optional
        Keep at most the first ``max_rows`` rows.

    Returns
    -------
    astropy.table.QTable
        ``row`` (the row's index in ``catalog``), ``ra``, ``dec`` (ICRS,
        deg), then ``id``/``label``, pixel positions and a flux column
        where the catalog has them (shown when a source is clicked). Rows
        without a finite sky position are left out; an empty catalog gives a
        zero-row table with the same columns.

    Raises
    ------
    jwst_widgets.InputError
        The catalog has neither ``ra``/``dec`` nor pixel positions with a WCS.

    Examples
    --------
    >>> from astropy.table import QTable
    >>> cat = QTable({"id": [1, 2], "ra": [10.0, 10.001], "dec": [-5.0, -5.002]})
    >>> t = sky_table(cat)
    >>> list(t["row"]), t.colnames
    ([0, 1], ['row', 'ra', 'dec', 'id'])
    """
    import astropy.units as u
    from astropy.table import QTable

    if catalog is None:
        raise InputError("there is no catalog: add a source_detection stage", param="catalog")
    if "ra" in catalog.colnames and "dec" in catalog.colnames:
        ra = np.asarray(_degrees(catalog["ra"]), float)
        dec = np.asarray(_degrees(catalog["dec"]), float)
    else:
        from ..pipeline.outputs import catalog_xy
        if wcs is None:
            raise InputError("the catalog has no ra/dec columns and the image has no WCS, so "
                             "its sources cannot be placed on the sky", param="catalog")
        cel = _celestial(wcs)
        x, y = catalog_xy(catalog)
        ra = np.full(x.shape, np.nan)
        dec = np.full(x.shape, np.nan)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.any():
            ra[ok], dec[ok] = _as_icrs(cel.pixel_to_world(x[ok], y[ok]))
    keep = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
    if max_rows is not None:
        keep = keep[: int(max_rows)]
    out = QTable()
    out["row"] = keep.astype(np.int64)
    out["ra"] = ra[keep] * u.deg
    out["dec"] = dec[keep] * u.deg
    for name in _INFO_COLUMNS:
        if name in catalog.colnames and catalog[name].ndim == 1 and \
                getattr(catalog[name], "dtype", np.dtype(object)).kind in "iuf":
            col = catalog[name]
            out[name] = col[keep] if len(keep) else col[:0]
    return out


def _degrees(column):
    if hasattr(column, "unit") and column.unit is not None and hasattr(column, "to_value"):
        return column.to_value("deg")
    return np.asarray(column, float)


def image_hdulist(image, *, max_size=1024):
    """A small FITS image with its WCS for the sky view (block mean when larger).

    Parameters
    ----------
    image : jwst_widgets.io.Image
        An image with a WCS. Masked pixels become NaN (blank on the sky).
    max_size : int
        The longest side sent, in pixels (64 to 8192). Larger images are
        reduced by a block mean; the WCS is sliced to match.

    Returns
    -------
    astropy.io.fits.HDUList
        One float32 primary HDU with the celestial WCS in its header.

    Examples
    --------
    >>> from jwst_widgets import datasets
    >>> hdul = image_hdulist(datasets.load_sample("hst_abell2744"), max_size=100)
    >>> hdul[0].data.shape
    (100, 100)
    """
    from astropy.io import fits

    from ..processing.display import reduce_to_size

    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or \
            not 64 <= max_size <= 8192:
        raise InputError(f"max_size must be an integer from 64 to 8192 pixels; got "
                         f"{max_size!r}", param="max_size")
    cel = _celestial(image.wcs)
    small, factor = reduce_to_size(image.data, int(max_size), int(max_size), method="mean",
                                   mask=image.mask)
    small = np.array(small, dtype=np.float32)  # a copy: the image is never touched
    if factor == 1:
        small[np.asarray(image.mask, bool)] = np.nan
        sliced = cel
    else:
        sliced = cel[::factor, ::factor]
    header = sliced.to_header(relax=True)
    header["BUNIT"] = image.unit.to_string() if image.unit is not None else ""
    header["JW_BLOCK"] = (int(factor), "block-mean factor from the original image")
    return fits.HDUList([fits.PrimaryHDU(small, header=header)])


def _fov_deg(corners):
    """A field of view (deg) that shows the whole footprint with a margin."""
    from astropy.coordinates import SkyCoord

    pts = SkyCoord(corners[:, 0], corners[:, 1], unit="deg")
    size = max(pts[i].separation(pts[j]).deg for i in range(4) for j in range(i + 1, 4))
    return float(min(max(1.6 * size, 1.0 / 60), 180.0))


def _center(corners):
    """The mean position of the corners (on the sphere), as (ra, dec) degrees."""
    from astropy.coordinates import SkyCoord

    v = SkyCoord(corners[:, 0], corners[:, 1], unit="deg").cartesian.xyz.value.mean(axis=1)
    mean = SkyCoord(x=v[0], y=v[1], z=v[2], representation_type="cartesian", frame="icrs")
    mean = mean.represent_as("unitspherical")
    return float(mean.lon.deg % 360.0), float(mean.lat.deg)


# ---------------------------------------------------------------- the ipyaladin widget

_WRAPPER_JS = r"""
// jwst-widgets: ipyaladin's front end, loaded so that a failure is seen and said.
// Aladin Lite comes from esm.sh (ipyaladin's own import) or, when the kernel sent
// a local copy in `_jw_aladin_js`, from that copy (a blob: module).
const ALADIN_URL = __ALADIN_URL__;
const WIDGET_SOURCE = __WIDGET_SOURCE__;
const LOADS = (globalThis.__jwstWidgetsAladinLoads ??= new Map());

function moduleURL(parts) {
  return URL.createObjectURL(new Blob(parts, { type: "text/javascript" }));
}

function loadIpyaladin(model) {
  const local = model.get("_jw_aladin_js");
  const hasLocal = !!local && local.byteLength > 0;
  const key = hasLocal ? "local:" + model.get("_jw_aladin_key") : "cdn:" + ALADIN_URL;
  let promise = LOADS.get(key);
  if (!promise) {
    const urls = [];
    let source = WIDGET_SOURCE;
    if (hasLocal) {
      urls.push(moduleURL([local]));
      source = source.split(ALADIN_URL).join(urls[0]);
    }
    urls.push(moduleURL([source]));
    promise = import(urls[urls.length - 1]).then((mod) => {
      urls.forEach((u) => URL.revokeObjectURL(u));
      return mod.default;
    });
    promise.catch(() => LOADS.delete(key));
    LOADS.set(key, promise);
  }
  return promise;
}

function describe(err) {
  if (err === undefined || err === null) return "unknown error";
  return String((err && err.message) || err);
}

function report(model, status, detail) {
  try {
    model.send({ event_type: "jw_status", status: status, detail: detail || "" });
  } catch (e) {
    console.warn("jwst-widgets sky view: cannot report to the kernel", e);
  }
}

function render(args) {
  const { model, el } = args;
  const texts = model.get("_jw_texts") || {};
  const note = document.createElement("div");
  note.className = "jw-aladin-note";
  note.style.cssText = "padding:10px 12px;margin:4px 0;border:1px solid #bbb;" +
    "border-radius:4px;background:#f6f6f6;color:#222;font-size:13px;line-height:1.4;";
  note.textContent = texts.loading || "Loading Aladin Lite...";
  el.appendChild(note);
  let cleanup = null;
  let closed = false;
  const slow = setTimeout(() => {
    if (closed) return;
    note.textContent = texts.slow || "Aladin Lite is still loading.";
    note.classList.add("jw-aladin-slow");
    report(model, "slow", "");
  }, model.get("_jw_timeout_ms") || 20000);
  loadIpyaladin(model)
    .then(async (widget) => {
      if (widget.initialize) await widget.initialize({ model });
      if (closed) return;
      clearTimeout(slow);
      note.remove();
      cleanup = widget.render(args);
      report(model, "ready", "");
    })
    .catch((err) => {
      clearTimeout(slow);
      if (closed) return;
      note.textContent = (texts.failed || "Aladin Lite could not be loaded.") +
        " (The browser said: " + describe(err) + ")";
      note.classList.remove("jw-aladin-slow");
      note.classList.add("jw-aladin-failed");
      note.style.background = "#fff4e5";
      note.style.borderColor = "#e0a040";
      console.warn("jwst-widgets sky view: Aladin Lite could not be loaded:", err);
      report(model, "failed", describe(err));
    });
  return () => {
    closed = true;
    clearTimeout(slow);
    if (typeof cleanup === "function") cleanup();
  };
}

export default { render };
"""


@functools.cache
def _aladin_class():
    """ipyaladin's ``Aladin`` with the front end above (built on first use)."""
    import ipyaladin
    import traitlets
    from ipyaladin.utils.call_store import CallStore

    from ..aladin_offline import cdn_url, required_version

    widget_js = (Path(ipyaladin.__file__).parent / "static" / "widget.js").read_text("utf-8")
    url = cdn_url(required_version())
    esm = (_WRAPPER_JS.replace("__ALADIN_URL__", json.dumps(url))
           .replace("__WIDGET_SOURCE__", json.dumps(widget_js)))

    class SkyAladin(ipyaladin.Aladin):
        """ipyaladin's widget, loaded by jwst-widgets' front end (local copy, failures)."""

        _esm = esm
        _jw_aladin_js = traitlets.Bytes(b"").tag(sync=True)
        _jw_aladin_key = traitlets.Unicode("").tag(sync=True)
        _jw_texts = traitlets.Dict().tag(sync=True)
        _jw_timeout_ms = traitlets.Int(20000).tag(sync=True)

        def __init__(self, **options):
            # ipyaladin keeps one store of waiting calls for all its widgets (a class
            # attribute): give each widget its own.
            self._call_store = CallStore()
            super().__init__(**options)

    SkyAladin.import_url_found = url in widget_js
    return SkyAladin


def _texts(source, version):
    cdn = f"https://esm.sh/aladin-lite@{version}"
    offline = ("For the sky view without internet, run 'python -m jwst_widgets.aladin_offline "
               "fetch' once (it needs the npm registry, or a tarball made with 'npm pack "
               f"aladin-lite@{version}'), then run this cell again.")
    if source == "local":
        return {
            "loading": f"Loading Aladin Lite {version} from the local copy...",
            "slow": f"Aladin Lite {version} (local copy) is still starting...",
            "failed": (f"The sky view could not start Aladin Lite {version} from the local copy "
                       "(it needs a browser with WebGL2). Everything else keeps working."),
        }
    return {
        "loading": f"Loading Aladin Lite {version} from {cdn} ...",
        "slow": (f"Aladin Lite is still loading from {cdn}: the network may be slow or "
                 f"blocked. Everything else keeps working. {offline}"),
        "failed": (f"The sky view could not load Aladin Lite from {cdn}: this browser cannot "
                   f"reach the internet, or that site is blocked. Everything else keeps "
                   f"working. {offline}"),
    }


# ------------------------------------------------------------------------ the view

def _note(text, kind="info"):
    color = {"info": "#444", "warn": "#8a5a00", "error": "#c0392b"}[kind]
    return f'<span style="color:{color}">{html.escape(text)}</span>'


class SkyView(w.VBox):
    """The image's place on the sky, with its sources, in Aladin Lite (ipyaladin).

    Parameters
    ----------
    image : jwst_widgets.io.Image, optional
        The image: its footprint (from the WCS) and its pixels are shown.
    catalog : astropy.table.Table, optional
        Sources with ``ra``/``dec`` (or pixel positions and the image's WCS).
    aladin_lite : {"auto", "local", "cdn"}
        Where the browser gets Aladin Lite: ``"cdn"`` from esm.sh (needs
        internet in the browser), ``"local"`` from the local copy (see
        :mod:`jwst_widgets.aladin_offline`; InputError when there is none),
        ``"auto"`` the local copy when there is one, else esm.sh.
    height : int
        Height of the sky view in screen pixels (200 to 2000).
    max_image_size : int
        The image is sent at most this many pixels on a side (block mean).
    max_sources : int
        At most this many sources are sent (the first rows of the catalog).
    show_image : bool
        Send the image's pixels (False: only the footprint and sources).
    survey : str, optional
        The background HiPS survey (ipyaladin's default is DSS colour).
    load_timeout : float
        Seconds after which a view still loading Aladin Lite says so.

    Attributes
    ----------
    aladin : ipyaladin.Aladin or None
        The Aladin Lite widget, made when the first image with a WCS arrives.
    status : str
        ``"no image"``, ``"no wcs"``, ``"waiting"`` (made, not drawn yet),
        ``"ready"`` (drawn in a browser), ``"slow"`` or ``"failed"`` (Aladin
        Lite could not be loaded; the view says so in words).
    corners : ndarray or None
        The footprint sent, ``(4, 2)`` RA/Dec in degrees.
    table : astropy.table.QTable or None
        The sources sent (``row`` is the catalog row).
    selected : list of int
        Selected catalog rows.
    source : str
        ``"cdn"`` or ``"local"``: where Aladin Lite comes from.

    Examples
    --------
    >>> from jwst_widgets import Pipeline, datasets
    >>> from jwst_widgets.widgets.sky import SkyView
    >>> image = datasets.load_sample("hst_abell2744")
    >>> result = Pipeline([("source_detection", {"threshold_sigma": 5.0})]).run(image)
    >>> sky = SkyView(image, result.catalog)                         # doctest: +SKIP
    >>> sky                                                          # doctest: +SKIP
    >>> sky.select([0])   # highlight and centre on the first source  # doctest: +SKIP
    """

    def __init__(self, image=None, catalog=None, *, aladin_lite="auto", height=420,
                 max_image_size=1024, max_sources=50_000, show_image=True, survey=None,
                 load_timeout=20.0):
        from .. import aladin_offline

        if aladin_lite not in ALADIN_LITE_CHOICES:
            raise InputError(f"aladin_lite must be {describe_choices(ALADIN_LITE_CHOICES)}; "
                             f"got {aladin_lite!r}", param="aladin_lite")
        if isinstance(height, bool) or not isinstance(height, (int, np.integer)) or \
                not 200 <= height <= 2000:
            raise InputError(f"height must be an integer from 200 to 2000 pixels; got "
                             f"{height!r}", param="height")
        if isinstance(max_sources, bool) or not isinstance(max_sources, (int, np.integer)) or \
                max_sources < 1:
            raise InputError(f"max_sources must be a positive integer; got {max_sources!r}",
                             param="max_sources")
        try:
            timeout_ok = 1 <= float(load_timeout) <= 600
        except (TypeError, ValueError):
            timeout_ok = False
        if not timeout_ok:
            raise InputError(f"load_timeout must be from 1 to 600 seconds; got "
                             f"{load_timeout!r}", param="load_timeout")
        if isinstance(max_image_size, bool) or \
                not isinstance(max_image_size, (int, np.integer)) or \
                not 64 <= max_image_size <= 8192:
            raise InputError(f"max_image_size must be from 64 to 8192 pixels; got "
                             f"{max_image_size!r}", param="max_image_size")
        self.version = aladin_offline.required_version()
        local = aladin_offline.local_copy(self.version)
        if aladin_lite == "local" and local is None:
            aladin_offline.read_source(self.version)  # raises InputError with what to run
        self.source = "local" if (aladin_lite == "local" or
                                  (aladin_lite == "auto" and local is not None)) else "cdn"
        self._local_path = local
        self.height = int(height)
        self.max_image_size = int(max_image_size)
        self.max_sources = int(max_sources)
        self.show_image = bool(show_image)
        self.survey = survey
        self.load_timeout = float(load_timeout)

        self.aladin = None
        self.image = None
        self.catalog = None
        self.corners = None
        self.table = None
        self.selected = []
        self.frontend = "waiting"  # what the browser reported: waiting, ready, slow, failed
        self.detail = ""
        self._wcs_problem = ""
        self._rendered = False
        self._callbacks = []
        self._lock = threading.RLock()

        self.header = w.HTML("")
        self.header.add_class("jw-sky-header")
        self.message = w.HTML("")
        self.message.add_class("jw-sky-message")
        self.holder = w.Box([], layout=w.Layout(width="100%"))
        super().__init__([self.header, self.holder, self.message],
                         layout=w.Layout(width="100%"))
        self.add_class("jw-sky-view")
        self._say()
        if image is not None:
            self.set_image(image)
        if catalog is not None:
            self.set_catalog(catalog)

    # -- content --------------------------------------------------------------------------
    def set_image(self, image):
        """Show an image's footprint (and pixels) on the sky; None clears.

        An image without a WCS is not an error: the view says in words that
        it cannot be placed on the sky, and the rest keeps working. The
        catalog of an earlier image is dropped (give the new one with
        :meth:`set_catalog`).
        """
        with self._lock:
            self.image = image
            self.catalog = None
            self.corners = None
            self.table = None
            self.selected = []
            self._wcs_problem = ""
            self._catalog_note = ""
            if image is not None:
                try:
                    self.corners = footprint(image.wcs, image.shape)
                except InputError as exc:
                    self._wcs_problem = str(exc)
            if self.corners is None:
                self._clear_overlays()
                self._say()
                return
            self._ensure_aladin()
            from astropy.coordinates import SkyCoord
            ra, dec = _center(self.corners)
            self.aladin.target = SkyCoord(ra, dec, unit="deg")
            self.aladin.fov = _fov_deg(self.corners)
            self._push(footprint=True, image=True, sources=True, selection=True)
            self._say()

    @property
    def status(self):
        """``"no image"``, ``"no wcs"``, or what the browser reported: ``"waiting"``
        (nothing yet), ``"ready"``, ``"slow"`` or ``"failed"``."""
        if self.image is None:
            return "no image"
        if self.corners is None:
            return "no wcs"
        return self.frontend

    def set_catalog(self, catalog):
        """Show a catalog's sources at their RA/Dec (None clears)."""
        with self._lock:
            self.catalog = catalog
            self.selected = []
            self.table = None
            self._catalog_note = ""
            if catalog is not None and self.corners is not None:
                try:
                    self.table = sky_table(catalog, wcs=self.image.wcs,
                                           max_rows=self.max_sources)
                except InputError as exc:
                    self._catalog_note = str(exc)
                else:
                    n = len(catalog)
                    if n > self.max_sources:
                        self._catalog_note = (f"the first {self.max_sources} of {n} sources "
                                              f"are shown")
            self._push(sources=True, selection=True)
            self._say()

    _catalog_note = ""

    # -- selection ------------------------------------------------------------------------
    def on_select(self, callback):
        """Call ``callback(indices)`` when sources are selected on the sky (catalog rows)."""
        self._callbacks.append(callback)

    def select(self, indices, *, notify=False, center=True):
        """Highlight catalog rows on the sky (and centre on the first one).

        Parameters
        ----------
        indices : sequence of int
            Catalog rows; rows without a sky position are ignored.
        notify : bool
            Call the :meth:`on_select` callbacks (as a click on the sky does).
        center : bool
            Move the sky view to the first selected source.
        """
        with self._lock:
            known = set() if self.table is None else {int(r) for r in self.table["row"]}
            self.selected = [int(i) for i in (indices or []) if int(i) in known]
            self._push(selection=True)
            if center and self.selected and self.aladin is not None:
                from astropy.coordinates import SkyCoord
                row = self._table_row(self.selected[0])
                self.aladin.target = SkyCoord(float(row["ra"].to_value("deg")),
                                              float(row["dec"].to_value("deg")), unit="deg")
            self._say()
        if notify:
            for cb in list(self._callbacks):
                cb(list(self.selected))

    def _table_row(self, catalog_row):
        i = int(np.flatnonzero(np.asarray(self.table["row"]) == catalog_row)[0])
        return self.table[i]

    def rows_at(self, objects):
        """Catalog rows of objects as Aladin Lite reports them (clicked or selected).

        Each object is a dict with ``data`` (the row's columns, ``row``
        among them) and ``ra``/``dec``; an object without ``row`` is matched
        to the nearest source within 1 arcsec.
        """
        rows = []
        for obj in objects or []:
            row = _row_of(obj, self.table)
            if row is not None and row not in rows:
                rows.append(row)
        return rows

    def _on_message(self, _widget, content, _buffers):
        kind = content.get("event_type") if isinstance(content, dict) else None
        if kind == "jw_status":
            self._on_status(str(content.get("status", "")), str(content.get("detail", "")))
        elif kind == "object_clicked":
            rows = self.rows_at([content.get("content") or {}])
            if rows:
                self.select(rows, notify=True, center=False)
        elif kind == "select":
            rows = self.rows_at(content.get("content") or [])
            self.select(rows, notify=True, center=False)

    def _on_status(self, status, detail):
        with self._lock:
            if status == "ready":
                self.frontend, self.detail = "ready", ""
                self._rendered = True
                # A new view (first drawing, another output, a reloaded page) starts
                # empty: send it the whole scene.
                self._push(footprint=True, image=True, sources=True, selection=True)
            elif status in ("slow", "failed") and self.frontend != "ready":
                self.frontend, self.detail = status, detail
            self._say()

    # -- the Aladin widget ---------------------------------------------------------------
    def _ensure_aladin(self):
        if self.aladin is not None:
            return
        from .. import aladin_offline

        cls = _aladin_class()
        if self.source == "local" and not cls.import_url_found:
            self.source = "cdn"
            self._catalog_note = ("this ipyaladin imports Aladin Lite from another place; the "
                                  "local copy cannot be used")
        options = {}
        if self.survey:
            options["survey"] = self.survey
        ra, dec = _center(self.corners)
        aladin = cls(target=f"{ra:.8f} {dec:+.8f}", fov=_fov_deg(self.corners),
                     height=self.height, show_simbad_pointer_control=False,
                     show_context_menu=True, layout=w.Layout(width="100%"), **options)
        aladin._jw_texts = _texts(self.source, self.version)
        aladin._jw_timeout_ms = int(self.load_timeout * 1000)
        if self.source == "local":
            aladin._jw_aladin_key = f"{self.version}:{self._local_path.stat().st_size}"
            aladin._jw_aladin_js = aladin_offline.read_source(self.version)
        ref = weakref.ref(self)

        def handler(widget, content, buffers):
            view = ref()
            if view is not None:
                view._on_message(widget, content, buffers)
        aladin.on_msg(handler)
        self.aladin = aladin
        self.holder.children = [aladin]

    def _clear_overlays(self):
        """No image with a WCS: hide the sky and forget what it showed."""
        if self.aladin is None:
            return
        self.holder.layout.display = "none"
        if self._rendered:
            for key in ("footprint", "sources", "selected"):
                self._remove(_OVERLAYS[key])

    def _remove(self, name):
        if name in self.aladin.overlays:
            self.aladin.remove_overlay(name)

    def _push(self, *, footprint=False, image=False, sources=False, selection=False):
        """Send what changed to the front end (all of it again after each new drawing)."""
        aladin = self.aladin
        if aladin is None or not self._rendered or self.corners is None:
            return
        self.holder.layout.display = None
        if footprint:
            self._remove(_OVERLAYS["footprint"])
            aladin.add_graphic_overlay_from_stcs(
                _stcs_polygon(self.corners), name=_OVERLAYS["footprint"],
                color=FOOTPRINT_COLOR, line_width=2)
        if image and self.show_image:
            try:
                hdul = image_hdulist(self.image, max_size=self.max_image_size)
            except InputError as exc:
                self._catalog_note = str(exc)
            else:
                aladin.add_fits(hdul, name=_OVERLAYS["image"], opacity=0.9)
        if sources:
            self._remove(_OVERLAYS["sources"])
            if self.table is not None and len(self.table):
                aladin.add_table(self.table, shape="square", name=_OVERLAYS["sources"],
                                 color=SOURCE_COLOR, source_size=12, ra_field="ra",
                                 dec_field="dec")
        if selection or sources:
            self._remove(_OVERLAYS["selected"])
            if self.selected and self.table is not None:
                rows = np.isin(np.asarray(self.table["row"]), self.selected)
                aladin.add_table(self.table[rows], shape="circle", name=_OVERLAYS["selected"],
                                 color=SELECTED_COLOR, source_size=24, ra_field="ra",
                                 dec_field="dec")

    # -- words ---------------------------------------------------------------------------
    def _say(self):
        """The header line (what is shown) and the message line (problems, in words)."""
        parts, problems = [], []
        status = self.status
        if status == "no image":
            problems.append(_note("No image yet: load one and it is placed on the sky here."))
        elif status == "no wcs":
            problems.append(_note(f"{self._wcs_problem}. Everything else works as usual.",
                                  "warn"))
        else:
            ra, dec = _center(self.corners)
            name = getattr(self.image, "name", "image")
            parts.append(f"<b>{html.escape(str(name))}</b> at RA {ra:.5f}°, Dec {dec:+.5f}°")
            if self.table is not None:
                parts.append(f"{len(self.table)} sources on the sky")
            if self.selected:
                row = self._table_row(self.selected[0])
                parts.append(f"selected: row {self.selected[0]} at RA "
                             f"{row['ra'].to_value('deg'):.6f}°, Dec "
                             f"{row['dec'].to_value('deg'):+.6f}°")
            parts.append("Aladin Lite from the local copy; the background survey needs "
                         "internet" if self.source == "local" else "Aladin Lite from esm.sh")
            if status == "failed":
                problems.append(_note("The sky view is not available: Aladin Lite could not "
                                      "be loaded (see the message above). Everything else "
                                      "keeps working.", "error"))
            elif status == "slow":
                problems.append(_note("Aladin Lite is slow to load (see the message above).",
                                      "warn"))
        if self._catalog_note:
            problems.append(_note(self._catalog_note, "warn"))
        self.header.value = " · ".join(parts)
        self.message.value = "<br>".join(problems)

    # -- the builder ---------------------------------------------------------------------
    @classmethod
    def for_builder(cls, builder, **options):
        """A sky view that follows a builder: its image, its catalog and its selection."""
        sky = cls(**options)
        sky.connect(builder)
        return sky

    def connect(self, builder):
        """Follow ``builder``'s image and latest catalog; share its selection both ways.

        A click on a source on the sky selects it in the builder's catalog
        table and image view (which centres on it); selecting a row in the
        table or a source in the image view highlights it on the sky.
        """
        me = weakref.ref(self)
        owner = weakref.ref(builder)

        def follow(_view=None):
            sky, b = me(), owner()
            if sky is None or b is None:
                return
            image, result = b.image, b.result
            catalog = None if result is None else result.catalog
            if image is not sky.image:
                sky.set_image(image)
            if catalog is not sky.catalog and (result is None or image is sky.image):
                sky.set_catalog(catalog)

        def from_builder(indices):
            sky = me()
            if sky is not None:
                sky.select(indices, notify=False, center=True)

        def to_builder(indices):
            b = owner()
            if b is not None:
                b.catalog_table.select(indices)
                b.view.select(indices, notify=False, center=True)

        builder.view.on_rendered(follow)
        builder.view.on_select(from_builder)
        builder.catalog_table.on_select(from_builder)
        self.on_select(to_builder)
        self._follow = follow
        follow()
        return self


def _row_of(obj, table):
    """The catalog row of an object reported by Aladin Lite, or None."""
    if table is None or not len(table) or not isinstance(obj, dict):
        return None
    data = obj.get("data") or {}
    value = data.get("row") if isinstance(data, dict) else None
    if value not in (None, ""):
        try:
            row = int(float(value))
        except (TypeError, ValueError):
            row = None
        if row is not None and np.any(np.asarray(table["row"]) == row):
            return row
    try:
        ra, dec = float(obj["ra"]), float(obj["dec"])
    except (KeyError, TypeError, ValueError):
        return None
    tra = np.radians(np.asarray(table["ra"].to_value("deg"), float))
    tdec = np.radians(np.asarray(table["dec"].to_value("deg"), float))
    ra, dec = np.radians(ra), np.radians(dec)
    cos = np.sin(dec) * np.sin(tdec) + np.cos(dec) * np.cos(tdec) * np.cos(tra - ra)
    i = int(np.argmax(cos))
    sep_arcsec = np.degrees(np.arccos(np.clip(cos[i], -1, 1))) * 3600
    return int(table["row"][i]) if sep_arcsec <= 1.0 else None


# ------------------------------------------------------------------------- the tab

class SkyTab(w.VBox):
    """The builder's "Sky" tab: makes its :class:`SkyView` when the tab is first shown.

    Aladin Lite keeps a browser busy even when idle, so the sky view is
    made only when asked for: when its tab is selected, or by :meth:`open`.

    Parameters
    ----------
    builder : PipelineBuilder
        The builder whose image, catalog and selection the sky view follows.
    **options
        Passed to :class:`SkyView` (``aladin_lite``, ``height``...).

    Examples
    --------
    >>> from jwst_widgets import PipelineBuilder
    >>> from jwst_widgets.widgets.sky import add_sky_tab
    >>> builder = PipelineBuilder("hst_abell2744")       # doctest: +SKIP
    >>> tab = add_sky_tab(builder)                       # doctest: +SKIP
    >>> tab.open().status                                # doctest: +SKIP
    'waiting'
    """

    def __init__(self, builder, **options):
        self.sky = None
        self._options = options
        self._builder = weakref.ref(builder)
        self._index = None
        intro = w.HTML(_note("The sky view (Aladin Lite) opens when this tab is shown."))
        button = w.Button(description="show on the sky", icon="globe",
                          layout=w.Layout(width="160px"))
        button.on_click(lambda _: self._open_quietly())
        super().__init__([intro, button], layout=w.Layout(width="100%"))
        self.add_class("jw-sky-tab")

    def open(self):
        """Make the sky view now (if not made yet) and return it."""
        if self.sky is None:
            builder = self._builder()
            if builder is None:
                raise InputError("the pipeline builder of this tab is gone", param="builder")
            self.sky = SkyView.for_builder(builder, **self._options)
            self.children = [self.sky]
        return self.sky

    def _open_quietly(self):
        try:
            self.open()
        except InputError as exc:
            self.children = [w.HTML(_note(str(exc), "error"))]

    def _watch(self, tabs, index):
        self._index = index
        me = weakref.ref(self)

        def on_tab(change):
            tab = me()
            if tab is not None and change["new"] == tab._index and tab.sky is None:
                tab._open_quietly()
        tabs.observe(on_tab, "selected_index")


def add_sky_tab(builder, *, title="Sky", **options):
    """Add a "Sky" tab to a builder (the sky view is made when the tab is shown).

    Parameters
    ----------
    builder : PipelineBuilder
    title : str
        The tab's title.
    **options
        Passed to :class:`SkyView`.

    Returns
    -------
    SkyTab

    Examples
    --------
    >>> from jwst_widgets import PipelineBuilder
    >>> builder = PipelineBuilder("hst_abell2744")             # doctest: +SKIP
    >>> tab = add_sky_tab(builder)                             # doctest: +SKIP
    >>> builder.tabs.selected_index = len(builder.tabs.children) - 1   # doctest: +SKIP
    >>> tab.sky.status                                         # doctest: +SKIP
    'waiting'
    """
    tab = SkyTab(builder, **options)
    builder.add_tab(title, tab)
    tab._watch(builder.tabs, len(builder.tabs.children) - 1)
    return tab
