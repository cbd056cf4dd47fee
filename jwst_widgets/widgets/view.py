"""The live image view: bqplot figure, display path, overlays, cursor readout.

The view never ships more pixels than it shows: each update cuts out the
visible region of the current image, reduces it to the figure's pixel size,
passes it through the interval and stretch, colours it and sends one PNG to
a bqplot ``Image`` mark (:func:`jwst_widgets.processing.display.render`).
Interval, stretch and colormap changes only re-render; nothing is
re-processed. Rendering happens in a background thread where the newest
request wins, so zooming and panning never block the kernel.

What the browser receives per change is kept to a few messages: the
catalog's markers are drawn here too, on a transparent picture of the
view's size (:func:`~jwst_widgets.processing.display.render_markers`),
each mark alternates between two image models (:class:`_PngFeed`), and a
zoom or pan asked for in the kernel moves the figure's scales together
with its new picture (BENCHMARKS.md, section 2, has the measurements).
"""

import threading
import weakref

import bqplot as bq
import ipywidgets as w
import numpy as np
import traitlets as t

from ..errors import InputError, describe_choices
from ._sync import hold_sync
from .worker import LatestWorker

__all__ = ["ImageView", "DisplayState", "SourceMarkers", "STRETCHES", "COLORMAPS"]

STRETCHES = ("linear", "sqrt", "log", "asinh", "power", "histeq")
INTERVAL_NAMES = ("zscale", "minmax")
COLORMAPS = ("gray", "gray_r", "viridis", "inferno", "magma", "plasma", "cividis", "hot",
             "afmhot", "cubehelix", "coolwarm", "RdBu_r", "Spectral_r", "twilight")
_MARGIN = dict(top=6, bottom=28, left=48, right=6)
#: Frames with at least this many pixels show a decimated view first while the
#: block-mean level the view needs is built (a 10k x 10k mosaic).
PROGRESSIVE_PIXELS = 32 * 2**20
_EMPTY_PNG = None


#: One Layout shared by every image widget the views make (a new Image per
#: rendering; closing an Image leaves its Layout alive, so they must not own one).
_IMAGE_LAYOUT = None


def _png_widget(png):
    global _IMAGE_LAYOUT
    if _IMAGE_LAYOUT is None:
        _IMAGE_LAYOUT = w.Layout()
    return w.Image(value=png, format="png", layout=_IMAGE_LAYOUT)


class _PngFeed:
    """Shows PNGs in a bqplot ``Image`` mark through two alternating image models.

    bqplot's mark redraws when its ``image`` trait points at another model, not
    when the shown model's ``value`` changes; a new model per picture costs a
    comm open and a close, each handled in turn by the front end. So the next
    picture is written into the spare model, then the mark is pointed at it,
    with its new extent, in one message. The front end (JupyterLab's kernel
    connection, as used by Voila) handles a kernel's messages one after the
    other, each once the previous one's state is set: the mark never sees the
    spare before its new value.
    """

    def __init__(self, **mark_traits):
        self.spare = _png_widget(_empty_png())
        self.mark = bq.Image(image=_png_widget(_empty_png()), **mark_traits)

    def show(self, png, **mark_traits):
        """Show ``png`` (bytes) and set the mark's other traits (x, y, visible) with it."""
        with self.mark.hold_sync():
            if png != self.mark.image.value:  # else the front end would redraw the same
                spare = self.spare
                spare.value = png
                self.spare = self.mark.image
                self.mark.image = spare
            for name, value in mark_traits.items():
                setattr(self.mark, name, value)

    def close(self):
        self.spare.close()
        self.mark.image.close()


def _empty_png():
    global _EMPTY_PNG
    if _EMPTY_PNG is None:
        import io

        from PIL import Image as PILImage
        buf = io.BytesIO()
        PILImage.new("RGBA", (1, 1), (0, 0, 0, 0)).save(buf, format="png")
        _EMPTY_PNG = buf.getvalue()
    return _EMPTY_PNG


def check_interval(value):
    """Return a canonical interval: a name, a percentile (float) or a (vmin, vmax) tuple."""
    if isinstance(value, str):
        if value in INTERVAL_NAMES:
            return value
        try:
            value = float(value)
        except ValueError:
            raise InputError(f"interval must be {describe_choices(INTERVAL_NAMES)}, a percentile "
                             f"such as 99.5, or (vmin, vmax); got {value!r}",
                             param="interval") from None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        value = float(value)
        if not 0 < value <= 100:
            raise InputError(f"interval as a percentile must be in (0, 100]; got {value:g}",
                             param="interval")
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            lo, hi = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            lo = hi = float("nan")
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise InputError(f"interval (vmin, vmax) needs finite vmin < vmax; got {value!r}",
                             param="interval")
        return (lo, hi)
    raise InputError(f"interval must be {describe_choices(INTERVAL_NAMES)}, a percentile such "
                     f"as 99.5, or (vmin, vmax); got {value!r}", param="interval")


def check_stretch(value):
    if value not in STRETCHES:
        raise InputError(f"stretch must be one of {describe_choices(STRETCHES)}; got {value!r}",
                         param="stretch")
    return value


def check_colormap(value):
    from ..processing.display import colormap_lut
    colormap_lut(value)  # raises InputError naming valid ones
    return value


class DisplayState(t.HasTraits):
    """What the view shows and how: widget-free, so it can be tested and shared."""

    interval = t.Any("zscale")
    stretch = t.Unicode("linear")
    colormap = t.Unicode("gray")
    reduce = t.Unicode("mean")  # "mean" or "max" (sparse sources)
    show_catalog = t.Bool(True)
    show_segmentation = t.Bool(False)
    color_column = t.Unicode(None, allow_none=True)

    @t.validate("interval")
    def _v_interval(self, proposal):
        return check_interval(proposal["value"])

    @t.validate("stretch")
    def _v_stretch(self, proposal):
        return check_stretch(proposal["value"])

    @t.validate("colormap")
    def _v_colormap(self, proposal):
        return check_colormap(proposal["value"])


class SourceMarkers(t.HasTraits):
    """The catalog overlay: the circles the view draws over the image.

    Attributes
    ----------
    x, y : ndarray
        The centres, in the image's pixel coordinates (one per catalog row).
    size : ndarray
        The square of each circle's radius, in image pixels.
    color : ndarray or None
        Values coloured through viridis (the view's "colour by" column), or
        None for one colour.
    selected : list of int or None
        The selected rows, ringed in red.
    visible : bool
    """

    x = t.Any(np.zeros(0))
    y = t.Any(np.zeros(0))
    size = t.Any(np.zeros(0))
    color = t.Any(None, allow_none=True)
    selected = t.Any(None, allow_none=True)
    visible = t.Bool(False)


class ImageView(w.VBox):
    """A zoomable, pannable image with colorbar, overlays and cursor readout.

    Parameters
    ----------
    image : Image, optional
        What to show first (see :meth:`set_image`).
    width, height : int
        The figure's size in screen pixels; the rendered image never exceeds
        the plot area inside it.
    interval, stretch, colormap
        Display settings (see the attributes of the same names).

    Attributes
    ----------
    figure : bqplot.Figure
        The figure holding the image mark and the overlays.
    interval : str, float or (float, float)
        ``"zscale"``, ``"minmax"``, a percentile such as ``99.5``, or
        ``(vmin, vmax)``.
    stretch : str
        ``"linear"``, ``"sqrt"``, ``"log"``, ``"asinh"``, ``"power"`` or
        ``"histeq"``.
    colormap : str
        A matplotlib colormap name (``"gray"``, ``"viridis"``, ``"inferno"``...).
    shown : RenderResult or None
        What the image mark shows now (size, region, reduction factor, limits).
    """

    def __init__(self, image=None, *, width=640, height=600, interval="zscale",
                 stretch="linear", colormap="gray"):
        self.state = DisplayState(interval=interval, stretch=stretch, colormap=colormap)
        self.width, self.height = int(width), int(height)
        self.image = None
        self.catalog = None
        self.segmentation = None
        self.shown = None
        self.limits = None
        self.selected = []
        self.renders = 0
        self._limits_key = None
        self._last_hash = None
        self._size_hint = 3.0
        self._select_callbacks = []
        import collections
        self._pyramids = collections.OrderedDict()
        self._render_callbacks = []
        self._apply_lock = threading.Lock()
        self._range_lock = threading.Lock()
        self._worker = LatestWorker("jwst-widgets-render", on_error=self._on_worker_error)

        self.x_scale = bq.LinearScale(min=0.0, max=1.0, allow_padding=False)
        self.y_scale = bq.LinearScale(min=0.0, max=1.0, allow_padding=False)
        scales = {"x": self.x_scale, "y": self.y_scale}
        self._feed = _PngFeed(scales=scales, x=[0, 1], y=[0, 1])
        self._segment_feed = _PngFeed(scales=scales, x=[0, 1], y=[0, 1], visible=False)
        self.mark, self.segment_mark = self._feed.mark, self._segment_feed.mark
        # The markers are drawn in the kernel, on a transparent picture of the view's
        # size (render_markers): bqplot's SVG markers cost the browser ~0.3 ms each on
        # every zoom, pan and repaint, and WebGL ones (bqplot-gl) a read-back of the
        # canvas per frame where no GPU composites (~37 ms here; BENCHMARKS.md).
        self.sources = SourceMarkers()
        self._marker_feed = _PngFeed(scales=scales, x=[0, 1], y=[0, 1], visible=False)
        self.marker_mark = self._marker_feed.mark
        self._markers_version = 0
        self._markers_png = (None, None)
        axes = [bq.Axis(scale=self.x_scale, label="x (px)", grid_lines="none",
                        num_ticks=5, tick_format="d"),
                bq.Axis(scale=self.y_scale, side="left", label="y (px)",
                        grid_lines="none", num_ticks=5, tick_format="d")]
        self.figure = bq.Figure(
            marks=[self.mark, self.segment_mark, self.marker_mark], axes=axes, padding_x=0,
            padding_y=0, fig_margin=dict(_MARGIN), animation_duration=0,
            layout=w.Layout(width=f"{self.width}px", height=f"{self.height}px"),
            background_style={"fill": "#202020"})
        self.figure.add_class("jw-image-figure")
        self._panzoom = bq.interacts.PanZoom(scales={"x": [self.x_scale], "y": [self.y_scale]})
        self.figure.interaction = self._make_mouse(self._panzoom)

        self.readout = w.HTML("&nbsp;", layout=w.Layout(min_height="22px"))
        self.readout.add_class("jw-readout")
        self.colorbar = _Colorbar(self.width)
        buttons = [("search-plus", "Zoom in", lambda _: self.zoom(2.0)),
                   ("search-minus", "Zoom out", lambda _: self.zoom(0.5)),
                   ("expand", "Reset the view to the whole image", lambda _: self.reset_view()),
                   ("search", "Full resolution (1 image pixel per screen pixel)",
                    lambda _: self.zoom_to_native())]
        self.toolbar = w.HBox([self._button(i, tip, cb) for i, tip, cb in buttons])
        self.status = w.HTML("")
        super().__init__([self.toolbar, self.figure, self.colorbar, self.readout,
                          self.status])
        self.add_class("jw-image-view")

        for s in (self.x_scale, self.y_scale):
            s.observe(self._on_scale, names=["min", "max"])
        self.state.observe(self._on_settings, names=["interval", "stretch", "colormap", "reduce"])
        self.state.observe(self._on_overlay_settings,
                           names=["show_catalog", "show_segmentation", "color_column"])
        self.sources.observe(self._on_markers)
        if image is not None:
            self.set_image(image)

    # -- settings ---------------------------------------------------------------
    interval = property(lambda self: self.state.interval,
                        lambda self, v: setattr(self.state, "interval", v))
    stretch = property(lambda self: self.state.stretch,
                       lambda self, v: setattr(self.state, "stretch", v))
    colormap = property(lambda self: self.state.colormap,
                        lambda self, v: setattr(self.state, "colormap", v))

    @property
    def plot_size(self):
        """(width, height) of the plot area in screen pixels."""
        return (self.width - _MARGIN["left"] - _MARGIN["right"],
                self.height - _MARGIN["top"] - _MARGIN["bottom"])

    # -- content ----------------------------------------------------------------
    def set_image(self, image, *, reset=None, catalog=None, segmentation=None, size_hint=None,
                  binning=1):
        """Show an :class:`~jwst_widgets.io.Image` (or a 2-D array).

        The view keeps its zoom when the new image covers the same frame as
        the old one (a new stage output), and resets to the whole image
        otherwise (``reset`` forces either). ``binning`` > 1 says that each
        pixel of ``image`` covers ``binning`` x ``binning`` pixels of the frame
        (a preview computed on a binned copy); coordinates stay the frame's.
        """
        from ..io import Image
        if not isinstance(image, Image):
            image = Image.from_array(image)
        old_shape = self.frame_shape
        self.image = image
        self.binning = int(binning)
        if size_hint is not None:
            self._size_hint = float(size_hint)
        if reset is None:
            reset = old_shape is None or old_shape != self.frame_shape
        if catalog is not False:
            self.catalog = catalog
        if segmentation is not False:
            self.segmentation = segmentation
        if reset:
            self.reset_view(render=False)
        self._update_overlay()
        self.refresh()

    def set_catalog(self, catalog, *, size_hint=None):
        """Overlay a catalog (a table with x/y centroid columns), or None to clear."""
        if size_hint is not None:
            self._size_hint = float(size_hint)
        self.catalog = catalog
        self._update_overlay()
        self.refresh()

    def set_segmentation(self, segmentation):
        self.segmentation = segmentation
        self.refresh()

    # -- navigation -------------------------------------------------------------------
    binning = 1

    @property
    def frame_shape(self):
        """(ny, nx) of the full-resolution frame shown (None when empty)."""
        if self.image is None:
            return None
        ny, nx = self.image.data.shape
        return (ny * self.binning, nx * self.binning)

    def reset_view(self, render=True):
        """Show the whole image with square pixels, centred."""
        if self.image is None:
            return
        ny, nx = self.frame_shape
        pw, ph = self.plot_size
        s = max(nx / pw, ny / ph)
        cx, cy = (nx - 1) / 2, (ny - 1) / 2
        self._set_ranges(cx - pw * s / 2, cx + pw * s / 2, cy - ph * s / 2, cy + ph * s / 2,
                         render)

    def zoom(self, factor, center=None):
        """Zoom by ``factor`` (2 = twice as close) about ``center`` (x, y) or the view's centre."""
        x0, x1, y0, y1 = self.view_range
        cx, cy = center if center is not None else ((x0 + x1) / 2, (y0 + y1) / 2)
        hx, hy = (x1 - x0) / 2 / factor, (y1 - y0) / 2 / factor
        self._set_ranges(cx - hx, cx + hx, cy - hy, cy + hy)

    def zoom_to_native(self):
        """One image pixel per screen pixel, about the view's centre."""
        x0, x1, y0, y1 = self.view_range
        pw, _ = self.plot_size
        self.zoom((x1 - x0) / pw)

    def pan(self, dx, dy):
        """Move the view by (dx, dy) image pixels."""
        x0, x1, y0, y1 = self.view_range
        self._set_ranges(x0 + dx, x1 + dx, y0 + dy, y1 + dy)

    def center_on(self, x, y):
        x0, x1, y0, y1 = self.view_range
        hx, hy = (x1 - x0) / 2, (y1 - y0) / 2
        self._set_ranges(x - hx, x + hx, y - hy, y + hy)

    @property
    def view_range(self):
        """(x0, x1, y0, y1): the visible data range, in pixel coordinates.

        After :meth:`zoom`, :meth:`pan` and the like this is the new range at
        once; the figure's scales move to it with the new picture.
        """
        if self._pending_range is not None:
            return self._pending_range
        return (float(self.x_scale.min), float(self.x_scale.max),
                float(self.y_scale.min), float(self.y_scale.max))

    _pending_range = None

    def _set_ranges(self, x0, x1, y0, y1, render=True):
        ranges = (float(x0), float(x1), float(y0), float(y1))
        if self.image is None:
            self._move_scales(ranges)
            return
        # The scales move with the picture of the new range (in _apply): each scale
        # change makes the browser lay out and redraw the figure (markers included),
        # and the new picture waited behind that work (~70 ms at 2048², BENCHMARKS.md).
        with self._range_lock:
            self._pending_range = ranges
        if render:
            self.refresh()

    def _move_scales(self, ranges):
        x0, x1, y0, y1 = ranges
        with hold_sync(self.x_scale, self.y_scale):  # one message per scale
            self._quiet = True
            try:
                self.x_scale.min, self.x_scale.max = x0, x1
                self.y_scale.min, self.y_scale.max = y0, y1
            finally:
                self._quiet = False

    # -- rendering ------------------------------------------------------------------------
    _quiet = False

    def refresh(self):
        """Ask for a new rendering of the current state (returns at once)."""
        if self.image is not None:
            self._worker.submit(self._render_job)

    def wait_idle(self, timeout=30):
        """Wait until the view shows the latest state; False on timeout."""
        return self._worker.wait_idle(timeout)

    def _on_scale(self, change):
        if not self._quiet:  # moved in the browser (pan, zoom with the mouse)
            with self._range_lock:
                self._pending_range = None
            self.refresh()

    def _on_settings(self, change):
        if change["name"] == "interval":
            self._limits_key = None
        self.refresh()

    def _on_overlay_settings(self, change):
        self._update_overlay()
        self.refresh()

    def _snapshot(self):
        st = self.state
        return dict(image=self.image, binning=self.binning, interval=st.interval,
                    stretch=st.stretch,
                    colormap=st.colormap, reduce=st.reduce, view=self.view_range,
                    size=self.plot_size, segmentation=self.segmentation if st.show_segmentation
                    else None, markers=self._markers_version)

    def _limits(self, snap):
        from ..processing.enhance import display_limits, make_interval
        image, interval = snap["image"], snap["interval"]
        key = (image.key, interval if not isinstance(interval, tuple) else tuple(interval))
        if key != self._limits_key:
            if isinstance(interval, tuple):
                limits = interval
            else:
                spec = interval if isinstance(interval, str) else "percentile"
                kw = {} if isinstance(interval, str) else {"percentile": interval}
                # a regular grid of about 400k pixels: a few rows of a memory-mapped
                # mosaic are read, not the whole file
                step = max(1, int(np.sqrt(image.data.size / 400_000)))
                limits = display_limits(image.data[::step, ::step], make_interval(spec, **kw),
                                        mask=image.mask[::step, ::step])
            self.limits = (float(limits[0]), float(limits[1]))
            self._limits_key = key
            self._histeq = None
        return self.limits

    def _stretch_for(self, snap):
        """The stretch to use: by name, or (histeq) one built once on the image's values."""
        if snap["stretch"] != "histeq":
            return snap["stretch"]
        if self._histeq is None:
            from astropy.visualization import ManualInterval

            from ..processing.enhance import make_stretch, sample_values
            image = snap["image"]
            sample = ManualInterval(*self.limits)(sample_values(image.data, mask=image.mask),
                                                  clip=True)
            self._histeq = make_stretch("histeq", data=sample)
        return self._histeq

    _histeq = None

    def _pyramid(self, image, method):
        from ..processing.display import Pyramid
        key = (image.key, method)
        pyr = self._pyramids.get(key)
        if pyr is None:
            pyr = Pyramid(image.data, image.mask, method=method)
            self._pyramids[key] = pyr
            while len(self._pyramids) > 3:
                self._pyramids.pop(next(iter(self._pyramids)))
        return pyr

    def _render_job(self, generation, cancelled):
        from ..processing.display import decimated, needed_level, render_view
        snap = self._snapshot()
        image = snap["image"]
        x0, x1, y0, y1 = snap["view"]
        seg = snap["segmentation"]
        picture = (image.key, snap["binning"], snap["interval"], snap["stretch"],
                   snap["colormap"], snap["reduce"], round(x0, 3), round(x1, 3), round(y0, 3),
                   round(y1, 3), snap["size"], id(seg))
        digest = (picture, snap["markers"])
        if digest == self._last_hash:
            self._settle(snap["view"])
            return
        if self._last_hash is not None and picture == self._last_hash[0]:
            # only the markers changed (a selection, a new catalog of the same image)
            result, seg_png, bar, limits = self._last_picture
            self._apply(result, snap["view"], seg_png, self._render_markers(snap), bar, limits,
                        generation, cancelled, digest)
            return
        limits = self._limits(snap)
        if cancelled():
            return
        stretch = self._stretch_for(snap)
        pyramid = self._pyramid(image, snap["reduce"])
        kw = dict(x_range=(x0, x1), y_range=(y0, y1), max_size=snap["size"],
                  stretch=stretch, colormap=snap["colormap"], limits=limits)
        bar = self.colorbar.make(limits, stretch, snap["colormap"])
        markers = self._render_markers(snap)
        k = needed_level(pyramid, x_range=(x0, x1), y_range=(y0, y1), max_size=snap["size"],
                         scale=snap["binning"])
        if k and not pyramid.has_level(k) and image.data.size >= PROGRESSIVE_PIXELS:
            # a huge frame: show every 2**k-th pixel at once, then the block means
            quick = render_view(decimated(pyramid, k), scale=snap["binning"] * 2**k, **kw)
            self._apply(quick, snap["view"], None, markers, bar, limits, generation, cancelled,
                        None)
            if cancelled():
                return
        result = render_view(pyramid, scale=snap["binning"], **kw)
        seg_png = None
        if seg is not None and result.extent is not None:
            from ..processing.display import render_labels
            seg_png = render_labels(seg, result.region, result.factor)
        self._apply(result, snap["view"], seg_png, markers, bar, limits, generation, cancelled,
                    digest)

    def _settle(self, view):
        """Move the scales to ``view`` (a picture's range) if it is the one asked for last.

        Only a move asked for in the kernel (zoom, pan, reset...) waits for its
        picture; a range from the browser (a mouse drag) is on the scales already,
        and an older picture must not drag them back.
        """
        with self._range_lock:
            if self._pending_range is not None and self._pending_range == view:
                self._move_scales(view)
                self._pending_range = None

    def _render_markers(self, snap):
        """The markers' picture over the snapshot's view, or None when none are shown."""
        m = self.sources
        x, y, size = np.asarray(m.x, float), np.asarray(m.y, float), np.asarray(m.size, float)
        if not m.visible or not len(x) or len(y) != len(x) or len(size) != len(x):
            return None
        key = (snap["markers"], snap["view"], snap["size"])
        if self._markers_png[0] != key:
            from ..processing.display import render_markers
            x0, x1, y0, y1 = snap["view"]
            png = render_markers(x, y, np.sqrt(size), x_range=(x0, x1), y_range=(y0, y1),
                                 size=snap["size"], values=m.color, selected=m.selected or ())
            self._markers_png = (key, png)
        return self._markers_png[1]

    def _apply(self, result, view, seg_png, markers, bar, limits, generation, cancelled,
               digest):
        with self._apply_lock:
            if not self._worker.is_current(generation) and cancelled():
                return
            ex0, ex1, ey0, ey1 = result.extent or (0, 1, 0, 1)
            self._settle(view)
            self._feed.show(result.png or _empty_png(), x=[ex0, ex1], y=[ey0, ey1])
            if seg_png is not None:
                self._segment_feed.show(seg_png, x=[ex0, ex1], y=[ey0, ey1], visible=True)
            else:
                self.segment_mark.visible = False
            if markers is not None:  # they cover the view, not the picture's blocks
                self._marker_feed.show(markers, x=list(view[:2]), y=list(view[2:]),
                                       visible=True)
            else:
                self.marker_mark.visible = False
            self.colorbar.show(bar, limits)
            self.shown = result
            self.renders += 1
            self._last_hash = digest
            if digest is not None:
                self._last_picture = (result, seg_png, bar, limits)
        for cb in list(self._render_callbacks):
            cb(self)

    def on_rendered(self, callback):
        """Call ``callback(view)`` after each new rendering."""
        self._render_callbacks.append(callback)

    def _on_worker_error(self, exc, text):
        self._settle(self._pending_range)  # navigation still moves the figure
        self.status.value = (f'<span style="color:#c0392b">display error: '
                             f'{type(exc).__name__}: {exc}</span>')

    # -- overlays ---------------------------------------------------------------------------
    def _catalog_xy(self):
        from ..pipeline.outputs import catalog_xy
        cat = self.catalog
        if cat is None or len(cat) == 0:
            return np.zeros(0), np.zeros(0)
        try:
            return catalog_xy(cat)
        except InputError:
            return np.zeros(0), np.zeros(0)

    def _catalog_sizes(self):
        cat = self.catalog
        n = 0 if cat is None else len(cat)
        if n and "semimajor_axis" in cat.colnames:
            r = 2.5 * np.asarray(getattr(cat["semimajor_axis"], "value", cat["semimajor_axis"]),
                                 float)
            return np.clip(np.nan_to_num(r, nan=self._size_hint), 2.0, None)
        return np.full(n, 1.5 * self._size_hint)

    def _update_overlay(self):
        x, y = self._catalog_xy()
        col = self.state.color_column
        color = None
        if col and self.catalog is not None and col in self.catalog.colnames and len(x):
            color = np.asarray(getattr(self.catalog[col], "value", self.catalog[col]), float)
        with self.sources.hold_trait_notifications():
            self.sources.selected = None
            self.sources.x, self.sources.y = x, y
            self.sources.size = self._catalog_sizes() ** 2
            self.sources.color = color
            self.sources.visible = self.state.show_catalog and len(x) > 0
        self.selected = []

    def _on_markers(self, change):
        self._markers_version += 1
        self.refresh()

    def on_select(self, callback):
        """Call ``callback(indices)`` when the selection of sources changes here."""
        self._select_callbacks.append(callback)

    def select(self, indices, *, notify=True, center=False):
        """Select catalog rows (a list of row indices) and highlight their markers."""
        indices = [int(i) for i in (indices or [])]
        self.selected = indices
        self.sources.selected = indices or None
        if center and indices:
            x, y = self._catalog_xy()
            self.center_on(x[indices[0]], y[indices[0]])
        if notify:
            for cb in list(self._select_callbacks):
                cb(indices)

    def nearest_source(self, x, y, radius=None):
        """Index of the catalog source nearest (x, y) within ``radius`` pixels, or None."""
        xs, ys = self._catalog_xy()
        if not len(xs):
            return None
        d2 = (xs - x) ** 2 + (ys - y) ** 2
        i = int(np.nanargmin(d2))
        if radius is None:
            x0, x1, _, _ = self.view_range
            radius = max(8 * (x1 - x0) / self.plot_size[0], 2 * self._size_hint)
        return i if d2[i] <= radius**2 else None

    # -- mouse -------------------------------------------------------------------------------
    def _make_mouse(self, panzoom):
        try:
            from bqplot_image_gl.interacts import MouseInteraction
        except ImportError:  # pragma: no cover - bqplot-image-gl is a dependency
            return panzoom
        mouse = MouseInteraction(x_scale=self.x_scale, y_scale=self.y_scale, move_throttle=70,
                                 next=panzoom, events=["click", "mousemove", "mouseleave"])
        ref = weakref.ref(self)

        def handler(_, content, buffers=None):
            view = ref()
            if view is not None:
                view._on_mouse(content)
        mouse.on_msg(handler)
        return mouse

    def _on_mouse(self, content):
        event = content.get("event")
        if event == "mouseleave":
            return
        domain = content.get("domain") or {}
        x, y = domain.get("x"), domain.get("y")
        if x is None or y is None:
            return
        if event == "mousemove":
            self.readout.value = self.describe_pixel(x, y)
        elif event == "click":
            i = self.nearest_source(x, y)
            if i is not None:
                self.select([i])

    def describe_pixel(self, x, y):
        """The readout text at data position (x, y): pixel, RA/Dec, value with unit."""
        image = self.image
        if image is None:
            return ""
        ix, iy = int(round(x)), int(round(y))
        ny, nx = self.frame_shape
        if not (0 <= ix < nx and 0 <= iy < ny):
            return f"x {x:.1f}, y {y:.1f} (outside the image)"
        b = self.binning
        jy, jx = min(iy // b, image.data.shape[0] - 1), min(ix // b, image.data.shape[1] - 1)
        value = float(image.data[jy, jx])
        unit = f" {image.unit.to_string()}" if image.unit is not None else ""
        masked = " (masked)" if image.mask[jy, jx] else ""
        if b > 1:
            masked += f" (preview, {b}x{b} binned)"
        parts = [f"x {ix}, y {iy}"]
        if image.wcs is not None:
            try:
                from astropy.coordinates import SkyCoord
                import astropy.units as u
                ra, dec = image.wcs.all_pix2world([[x, y]], 0)[0]
                c = SkyCoord(ra * u.deg, dec * u.deg)
                parts.append(f"RA {c.ra.to_string(u.hour, sep=':', precision=2)} "
                             f"Dec {c.dec.to_string(sep=':', precision=1, alwayssign=True)} "
                             f"({ra:.6f}°, {dec:+.6f}°)")
            except Exception:
                pass
        parts.append(f"value {value:.5g}{unit}{masked}")
        return " &nbsp;|&nbsp; ".join(parts)

    @staticmethod
    def _button(icon, tooltip, callback):
        b = w.Button(icon=icon, tooltip=tooltip, layout=w.Layout(width="36px"))
        b.on_click(callback)
        return b

    def close(self):
        self._worker.close()
        self._feed.close()
        self._segment_feed.close()
        self._marker_feed.close()
        self.colorbar.close()
        super().close()


class _Colorbar(w.VBox):
    """A horizontal colorbar: the colormap through the stretch, with value ticks."""

    def __init__(self, width):
        self.scale = bq.LinearScale(min=0.0, max=1.0, allow_padding=False)
        ys = bq.LinearScale(min=0.0, max=1.0)
        self._feed = _PngFeed(scales={"x": self.scale, "y": ys}, x=[0, 1], y=[0, 1])
        self.mark = self._feed.mark
        axis = bq.Axis(scale=self.scale, num_ticks=6, tick_format=".3g")
        self.figure = bq.Figure(marks=[self.mark], axes=[axis], padding_x=0, padding_y=0,
                                fig_margin=dict(top=2, bottom=22, left=_MARGIN["left"],
                                                right=_MARGIN["right"]),
                                animation_duration=0,
                                layout=w.Layout(width=f"{width}px", height="52px"))
        self.figure.add_class("jw-colorbar")
        super().__init__([self.figure])

    @staticmethod
    def make(limits, stretch, colormap):
        from ..processing.display import render
        vmin, vmax = limits
        ramp = np.linspace(vmin, vmax, 256, dtype=np.float64).astype(np.float32)[None, :]
        ramp = np.repeat(ramp, 2, axis=0)
        return render(ramp, max_size=(256, 2), stretch=stretch, colormap=colormap,
                      limits=limits).png

    def show(self, png, limits):
        lo, hi = float(limits[0]), float(limits[1])
        with self.scale.hold_sync():
            self.scale.min, self.scale.max = lo, hi
        self._feed.show(png, x=[lo, hi])

    def close(self):
        self._feed.close()
        super().close()
