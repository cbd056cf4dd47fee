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

import html
import itertools
import threading
import weakref

import ipywidgets as w
import numpy as np

from ..errors import InputError, describe_choices
from .tabs import DeferredTab

__all__ = ["SkyView", "SkyTab", "add_sky_tab", "footprint", "sky_table", "image_hdulist",
           "ALADIN_LITE_CHOICES"]

#: Where Aladin Lite may come from (see :class:`SkyView`).
ALADIN_LITE_CHOICES = ("auto", "local", "cdn")
#: Marker colours, the same as the image view's.
SOURCE_COLOR = "#39ff14"
SELECTED_COLOR = "#ff3030"
FOOTPRINT_COLOR = "#00e5ff"
#: The name of the image layer (a new image replaces the layer of the same name).
IMAGE_LAYER = "jw_image"
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
    return float(min(max(2.5 * size, 1.0 / 60), 180.0))


def _center(corners):
    """The mean position of the corners (on the sphere), as (ra, dec) degrees."""
    from astropy.coordinates import SkyCoord

    v = SkyCoord(corners[:, 0], corners[:, 1], unit="deg").cartesian.xyz.value.mean(axis=1)
    mean = SkyCoord(x=v[0], y=v[1], z=v[2], representation_type="cartesian", frame="icrs")
    mean = mean.represent_as("unitspherical")
    return float(mean.lon.deg % 360.0), float(mean.lat.deg)


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
        The image is sent at most this many pixels on a side (block mean;
        64 to 8192).
    max_sources : int
        At most this many sources are sent (the first rows of the catalog).
    show_image : bool
        Send the image's pixels (False: only the footprint and sources).
    survey : str, optional
        The background HiPS survey (ipyaladin's default is DSS colour).
    load_timeout : float
        Seconds (1 to 600) after which a view still loading Aladin Lite says so.

    Attributes
    ----------
    aladin : ipyaladin.Aladin or None
        The Aladin Lite widget, made when the first image with a WCS arrives.
    status : str
        See :attr:`status`.
    corners : ndarray or None
        The footprint sent, ``(4, 2)`` RA/Dec in degrees.
    table : astropy.table.QTable or None
        The sources sent (its ``row`` column is the catalog row).
    selected : list of int
        Selected catalog rows.
    drawn : set of str
        What the browser reported drawn, of ``"footprint"``, ``"sources"``
        and ``"selected"`` (the latest version of each).
    source : str
        ``"cdn"`` or ``"local"``: where Aladin Lite comes from.

    Notes
    -----
    The kernel cannot see the browser, so the front end reports: "ready"
    for each view drawn (the view is then sent the footprint, the image,
    the sources and the selection), "slow" when Aladin Lite takes longer than
    ``load_timeout`` to load, "failed" (with the reason) when it cannot be
    loaded. The view itself says so in words in place of the sky.

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

    _closed = False

    def __init__(self, image=None, catalog=None, *, aladin_lite="auto", height=420,
                 max_image_size=1024, max_sources=50_000, show_image=True, survey=None,
                 load_timeout=20.0):
        from .. import aladin_offline

        if aladin_lite not in ALADIN_LITE_CHOICES:
            raise InputError(f"aladin_lite must be {describe_choices(ALADIN_LITE_CHOICES)}; "
                             f"got {aladin_lite!r}", param="aladin_lite")
        self.height = _check_number("height", height, 200, 2000, "pixels", integer=True)
        self.max_image_size = _check_number("max_image_size", max_image_size, 64, 8192,
                                            "pixels", integer=True)
        self.max_sources = _check_number("max_sources", max_sources, 1, 10_000_000, "rows",
                                         integer=True)
        self.load_timeout = _check_number("load_timeout", load_timeout, 1, 600, "seconds")
        self.show_image = bool(show_image)
        self.survey = survey
        self.version = aladin_offline.required_version()
        self._local_path = aladin_offline.local_copy(self.version)
        if aladin_lite == "local" and self._local_path is None:
            aladin_offline.read_source(self.version)  # raises InputError saying what to run
        self.source = "local" if self._local_path is not None and aladin_lite != "cdn" \
            else "cdn"

        self.aladin = None
        self.image = None
        self.catalog = None
        self.corners = None
        self.table = None
        self.selected = []
        self._current = {}       # "footprint"/"sources"/"selected" -> overlay name sent
        self._on_screen = set()  # overlay names the browser reported added
        self._retired = set()    # replaced overlays to remove once the browser has them
        self._serial = itertools.count(1)
        self.frontend = "waiting"  # what the browser reported: waiting, ready, slow, failed
        self.detail = ""
        self._wcs_problem = ""
        self._note = ""
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
        self.set_image(image)
        if catalog is not None:
            self.set_catalog(catalog)

    @property
    def status(self):
        """Where the view stands, in one word.

        ``"no image"``, ``"no wcs"`` (the image cannot be placed on the
        sky), or what the browser reported: ``"waiting"`` (not drawn yet),
        ``"ready"``, ``"slow"`` (Aladin Lite still loading after
        ``load_timeout``) or ``"failed"`` (it could not be loaded).
        """
        if self.image is None:
            return "no image"
        if self.corners is None:
            return "no wcs"
        return self.frontend

    # -- content --------------------------------------------------------------------------
    def set_image(self, image):
        """Show an image's footprint (and pixels) on the sky; None clears.

        An image without a WCS is not an error: the view says in words that
        it cannot be placed on the sky, and the rest keeps working. The
        catalog of an earlier image is dropped (give the new one with
        :meth:`set_catalog`).
        """
        from astropy.coordinates import SkyCoord

        with self._lock:
            self.image = image
            self.catalog = self.corners = self.table = None
            self.selected = []
            self._wcs_problem = self._note = ""
            if image is not None:
                try:
                    self.corners = footprint(image.wcs, image.shape)
                except InputError as exc:
                    self._wcs_problem = str(exc)
            if self.corners is None:
                if self.aladin is not None:
                    self.holder.layout.display = "none"
                    self._push(clear=True)
            else:
                self._ensure_aladin()
                self.holder.layout.display = None
                ra, dec = _center(self.corners)
                self.aladin.target = SkyCoord(ra, dec, unit="deg")
                self.aladin.fov = _fov_deg(self.corners)
                self._push(footprint=True, image=True, sources=True)
            self._say()

    def set_catalog(self, catalog):
        """Show a catalog's sources at their RA/Dec (None clears).

        Selected rows that are still in the catalog stay selected (as in the
        builder's catalog table); a catalog equal to the one shown is not
        sent again.
        """
        with self._lock:
            old = self.table
            self.catalog, self.table, self._note = catalog, None, ""
            if catalog is not None and self.corners is not None:
                try:
                    self.table = sky_table(catalog, wcs=self.image.wcs,
                                           max_rows=self.max_sources)
                except InputError as exc:
                    self._note = str(exc)
                else:
                    if len(catalog) > self.max_sources:
                        self._note = (f"the first {self.max_sources} of {len(catalog)} sources "
                                      f"are shown on the sky")
            rows = set() if self.table is None else set(np.asarray(self.table["row"]).tolist())
            self.selected = [i for i in self.selected if i in rows]
            if not _same_table(old, self.table):
                self._push(sources=True)
            self._say()

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
        from astropy.coordinates import SkyCoord

        with self._lock:
            known = set() if self.table is None else set(np.asarray(self.table["row"]).tolist())
            self.selected = [int(i) for i in (indices or []) if int(i) in known]
            self._push(selection=True)
            if center and self.selected and self.aladin is not None:
                row = self._table_row(self.selected[0])
                self.aladin.target = SkyCoord(row["ra"], row["dec"])
            self._say()
            chosen = list(self.selected)
        if notify:
            for cb in list(self._callbacks):
                cb(chosen)

    def rows_of(self, objects):
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

    def _table_row(self, catalog_row):
        i = int(np.flatnonzero(np.asarray(self.table["row"]) == catalog_row)[0])
        return self.table[i]

    # -- what the browser says ----------------------------------------------------------------
    def _on_message(self, content):
        if not isinstance(content, dict):
            return
        kind = content.get("event_type")
        if kind == "jw_status":
            self._on_status(str(content.get("status", "")), str(content.get("detail", "")))
        elif kind == "stack_changed":
            info = content.get("content") or {}
            self._on_stack(info.get("name"), info.get("change"))
        elif kind == "object_clicked":
            rows = self.rows_of([content.get("content") or {}])
            if rows:
                self.select(rows, notify=True, center=False)
        elif kind == "select":
            self.select(self.rows_of(content.get("content") or []), notify=True, center=False)

    def _on_status(self, status, detail):
        with self._lock:
            if status == "ready":
                self.frontend, self.detail = "ready", ""
                self._rendered = True
                # A new view (the first drawing, another output, a reloaded page) starts
                # empty: send it the whole scene.
                self._current.clear()
                self._on_screen.clear()
                self._retired.clear()
                self._push(footprint=True, image=True, sources=True)
            elif status in ("slow", "failed") and self.frontend != "ready":
                self.frontend, self.detail = status, detail
            self._say()

    def _on_stack(self, name, change):
        """The browser added or removed an overlay."""
        with self._lock:
            if change == "added":
                self._on_screen.add(name)
                if name in self._retired:       # replaced while it was being drawn
                    self._retired.discard(name)
                    self._remove(name)
            elif change == "removed":
                self._on_screen.discard(name)

    @property
    def drawn(self):
        """What the browser reported drawn: ``"footprint"``, ``"sources"``, ``"selected"``."""
        return {key for key, name in self._current.items() if name in self._on_screen}

    # -- the Aladin widget ---------------------------------------------------------------
    def _ensure_aladin(self):
        if self.aladin is not None:
            return
        from .. import aladin_offline
        from .aladin import aladin_class, load_texts

        cls = aladin_class()
        if self.source == "local" and not cls.import_url_found:
            self.source = "cdn"
        options = {"survey": self.survey} if self.survey else {}
        if self.source == "local":
            options["aladin_js"] = aladin_offline.read_source(self.version)
            options["aladin_key"] = f"{self.version}:{len(options['aladin_js'])}"
        ra, dec = _center(self.corners)
        # Coordinates as decimal strings: ipyaladin would send a name to a resolver.
        aladin = cls(target=f"{ra:.8f} {dec:+.8f}", fov=_fov_deg(self.corners),
                     height=self.height, show_simbad_pointer_control=False,
                     layout=w.Layout(width="100%"),
                     texts=load_texts(self.source, self.version),
                     timeout_ms=int(self.load_timeout * 1000), **options)
        ref = weakref.ref(self)

        def handler(_widget, content, _buffers):
            view = ref()
            if view is not None:
                view._on_message(content)
        aladin.on_msg(handler)
        self.aladin = aladin
        self.holder.children = [aladin]

    def _remove(self, name):
        if name in self.aladin.overlays:
            self.aladin.remove_overlay(name)

    def _replace(self, key, add=None):
        """Put a new overlay for ``key`` (``add(name)`` sends it) in place of the old one.

        Aladin Lite adds catalogs asynchronously, so an overlay is removed
        only once the browser has reported it added (removing it earlier
        would fail there and leave it drawn for good); each version has its
        own name.
        """
        old = self._current.pop(key, None)
        if old is not None:
            if old in self._on_screen:
                self._remove(old)
            else:
                self._retired.add(old)
        if add is not None:
            name = f"jw_{key}_{next(self._serial)}"
            add(name)
            self._current[key] = name

    def _push(self, *, footprint=False, image=False, sources=False, selection=False,
              clear=False):
        """Send what changed to the browser (the whole scene again after each new view).

        New sources bring the selection with them (it is drawn over them).
        """
        aladin = self.aladin
        if aladin is None or not self._rendered:
            return
        if clear or self.corners is None:
            for key in ("footprint", "sources", "selected"):
                self._replace(key)
            return
        if footprint:
            self._replace("footprint", lambda name: aladin.add_graphic_overlay_from_stcs(
                _stcs_polygon(self.corners), name=name, color=FOOTPRINT_COLOR, line_width=2))
        if image and self.show_image:
            try:
                hdul = image_hdulist(self.image, max_size=self.max_image_size)
            except InputError as exc:
                self._note = str(exc)
            else:
                aladin.add_fits(hdul, name=IMAGE_LAYER, opacity=0.9)
        table = self.table
        if sources:
            self._replace("sources", None if table is None or not len(table) else
                          lambda name: aladin.add_table(
                              table, shape="square", name=name, color=SOURCE_COLOR,
                              source_size=12, ra_field="ra", dec_field="dec"))
        if sources or selection:
            chosen = None if not self.selected or table is None else \
                table[np.isin(np.asarray(table["row"]), self.selected)]
            self._replace("selected", None if chosen is None else
                          lambda name: aladin.add_table(
                              chosen, shape="circle", name=name, color=SELECTED_COLOR,
                              source_size=24, ra_field="ra", dec_field="dec"))

    # -- words ---------------------------------------------------------------------------
    def _say(self):
        """The header line (what is shown) and the message line (problems, in words)."""
        status = self.status
        parts, problems = [], []
        if status == "no image":
            problems.append(_note("No image yet: load one and it is placed on the sky here."))
        elif status == "no wcs":
            text = self._wcs_problem
            problems.append(_note(f"{text[:1].upper()}{text[1:]}. Everything else works as "
                                  "usual.", "warn"))
        else:
            ra, dec = _center(self.corners)
            name = html.escape(str(getattr(self.image, "name", "image")))
            parts.append(f"<b>{name}</b> at RA {ra:.5f}°, Dec {dec:+.5f}°")
        if status == "failed":
            problems.append(_note("The sky view is not available: Aladin Lite could not be "
                                  "loaded (see the message above). Everything else keeps "
                                  "working.", "error"))
        elif status in ("waiting", "ready", "slow"):
            if self.table is not None:
                parts.append(f"{len(self.table)} sources on the sky")
            if self.selected:
                row = self._table_row(self.selected[0])
                parts.append(f"selected: row {self.selected[0]} at RA "
                             f"{row['ra'].to_value('deg'):.6f}°, Dec "
                             f"{row['dec'].to_value('deg'):+.6f}°")
            parts.append("Aladin Lite from the local copy (the background survey needs "
                         "internet)" if self.source == "local" else "Aladin Lite from esm.sh")
            if status == "slow":
                problems.append(_note("Aladin Lite is slow to load (see the message above).",
                                      "warn"))
        if self._note:
            problems.append(_note(self._note[:1].upper() + self._note[1:], "warn"))
        self.header.value = " · ".join(parts)
        self.message.value = "<br>".join(problems)

    # -- the builder ---------------------------------------------------------------------
    @classmethod
    def for_builder(cls, builder, **options):
        """A sky view that follows a builder (see :meth:`connect`)."""
        return cls(**options).connect(builder)

    def connect(self, builder):
        """Follow ``builder``'s image and latest catalog; share its selection both ways.

        A click on a source on the sky selects it in the builder's catalog
        table and image view (which centres on it); selecting a row in the
        table or a source in the image view highlights it on the sky and
        centres the sky on it. Returns the sky view.
        """
        ref = weakref.ref(self)
        owner = weakref.ref(builder)

        def me():           # a closed sky view follows nothing
            sky = ref()
            return None if sky is None or sky._closed else sky

        def follow(_view=None):
            sky, b = me(), owner()
            if sky is None or b is None:
                return
            image, result = b.image, b.result
            if image is not sky.image:
                sky.set_image(image)
            catalog = None if result is None else result.catalog
            if catalog is not sky.catalog:
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

        # The view draws after every new image and result: a cheap place to follow them.
        builder.view.on_rendered(follow)
        builder.view.on_select(from_builder)
        builder.catalog_table.on_select(from_builder)
        self.on_select(to_builder)
        follow()
        return self

    def close(self):
        self._closed = True
        aladin = getattr(self, "aladin", None)  # None when __init__ failed early
        if aladin is not None:
            aladin.close()
        super().close()


def _check_number(name, value, lo, hi, unit, *, integer=False):
    kind = "an integer" if integer else "a number"
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer) if integer
                                                    else (int, float, np.integer, np.floating))
    if not ok or not lo <= value <= hi:
        raise InputError(f"{name} must be {kind} from {lo} to {hi} {unit}; got {value!r}",
                         param=name)
    return int(value) if integer else float(value)


def _same_table(a, b):
    """True when two sky tables hold the same values (nothing new to send)."""
    if a is None or b is None:
        return a is None and b is None
    if len(a) != len(b) or a.colnames != b.colnames:
        return False
    for name in a.colnames:
        x = np.asarray(getattr(a[name], "value", a[name]))
        y = np.asarray(getattr(b[name], "value", b[name]))
        if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f" and y.dtype.kind == "f"):
            return False
    return True


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

class SkyTab(DeferredTab):
    """The builder's "Sky" tab: makes its :class:`SkyView` when the tab is first shown.

    Aladin Lite keeps a browser busy even when idle, so the sky view is
    made only when asked for: when its tab is selected, or by :meth:`open_sky`
    (a :class:`~jwst_widgets.widgets.tabs.DeferredTab`).

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
    >>> tab.open_sky().status                                # doctest: +SKIP
    'waiting'
    """

    def __init__(self, builder, **options):
        self._options = options
        self._builder = weakref.ref(builder)
        intro = w.HTML(_note("The sky view (Aladin Lite) opens when this tab is shown."))
        button = w.Button(description="show on the sky", icon="globe",
                          layout=w.Layout(width="160px"))
        button.on_click(lambda _: self._build_quietly())
        super().__init__(self._make_sky, placeholder=[intro, button])
        self.add_class("jw-sky-tab")

    @property
    def sky(self):
        """The :class:`SkyView`, None until made."""
        return self.content

    def open_sky(self):
        """Make the sky view now (if not made yet) and return it."""
        return self.build()

    def _make_sky(self):
        builder = self._builder()
        if builder is None:
            raise InputError("the pipeline builder of this tab is gone", param="builder")
        return SkyView.for_builder(builder, **self._options)

    def configure(self, **options):
        """Set :class:`SkyView` options; a sky view already made is made again with them."""
        if options == self._options:
            return
        self._options = options
        self.rebuild()


def add_sky_tab(builder, *, title="Sky", **options):
    """Add a "Sky" tab to a builder (the sky view is made when the tab is shown).

    A builder has one already (``builder.sky_tab``): asked for a tab of the
    same title, this returns that one with ``options`` applied.

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
    tab = getattr(builder, "extra_tabs", {}).get(title)
    if isinstance(tab, SkyTab):   # the builder's own Sky tab: one sky view, not two
        tab.configure(**options)
        return tab
    tab = SkyTab(builder, **options)
    builder.add_tab(title, tab)  # which makes the sky view when the tab is selected
    return tab
