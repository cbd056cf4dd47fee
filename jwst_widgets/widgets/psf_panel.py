"""The PSF panel: PSF stars on the view, the PSF and its profile, data/model/residual.

A :class:`PSFPanel` works inside a :class:`~jwst_widgets.PipelineBuilder`
holding a ``psf_photometry`` stage: the builder shows it under its view as
soon as the stage is added (``builder.stage_extras["psf_photometry"]``), or
``PSFPanel(builder)`` adds the stage and the panel::

    builder = PipelineBuilder("nircam_like_1k")
    builder.add_stage("background_subtraction", box_size=64)
    builder.add_stage("source_detection", threshold_sigma=5, fwhm=2.2)
    builder.add_stage("psf_photometry")
    panel = builder.stage_extras["psf_photometry"]
    builder

It holds no algorithm: it shows the stage's products, and every button
calls a public method (:meth:`show`, :meth:`blink`, :meth:`toggle_star`,
:meth:`set_params`, :meth:`preview`) that scripts and tests call the same
way. Its bqplot figures sit in the panel itself, which is always visible
(never inside a Tab).
"""

import html
import threading

import bqplot as bq
import ipywidgets as w
import numpy as np

from ..errors import InputError
from ._html import error_html
from ._sync import hold_sync
from .worker import LatestWorker

__all__ = ["PSFPanel"]

STAGE = "psf_photometry"
SHOW_CHOICES = ("data", "model", "residual")


class PSFPanel(w.VBox):
    """PSF stars, the PSF, the fit's residual and a PSF-vs-aperture plot.

    Parameters
    ----------
    builder : PipelineBuilder
        The builder whose ``psf_photometry`` stage this panel shows.
    add_stage : bool
        Add a ``psf_photometry`` stage when the chain has none.

    Attributes
    ----------
    showing : str
        ``"data"``, ``"model"`` or ``"residual"``: what the view shows.
    result : PSFPhotometryResult or None
        The stage's latest full result.
    preview_result : PSFPhotometryResult or None
        The latest preview (the visible region only).
    progress : ipywidgets.FloatProgress
        Fraction of the sources fitted in the running fit.
    """

    def __init__(self, builder, *, add_stage=True):
        self.builder = builder
        self.showing = "data"
        self.result = None
        self.preview_result = None
        self.editing = False
        self._seen = None
        self._lock = threading.RLock()
        self._worker = LatestWorker("jwst-widgets-psf-preview")

        self.status = w.HTML("")
        self.status.add_class("jw-psf-status")
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, description="fit",
                                        bar_style="info", layout=w.Layout(width="300px"))
        self.show_choice = w.ToggleButtons(options=list(SHOW_CHOICES), value="data",
                                           style={"button_width": "80px"})
        self.show_choice.observe(lambda ch: self._guard(self.show, ch["new"]), "value")
        self._blink = w.Play(interval=700, max=1, repeat=True, show_repeat=False,
                             layout=w.Layout(width="110px"))
        self._blink.observe(self._on_blink, "value")
        self.edit_button = w.ToggleButton(value=False, description="edit PSF stars",
                                          icon="star", tooltip="click a source on the view to "
                                          "drop it from the PSF stars or add it")
        self.edit_button.observe(lambda ch: setattr(self, "editing", ch["new"]), "value")
        preview_button = w.Button(description="preview view", icon="eye",
                                  tooltip="fit only the visible region now")
        preview_button.on_click(lambda _: self._guard(self.preview))

        self._build_psf_figures()
        self._build_compare_figure()
        self._build_overlays()
        PROGRESS_HUB().subscribe(self._on_progress)
        builder.view.on_select(self._on_view_select)
        builder.view.on_rendered(self._on_rendered)
        top = w.HBox([w.HTML("<b>PSF photometry</b>"), self.progress, self.status])
        controls = w.HBox([self.show_choice, w.Label("blink data/residual"), self._blink,
                           self.edit_button, preview_button])
        figures = w.HBox([self.psf_figure, self.profile_figure, self.compare_figure])
        super().__init__([top, controls, figures])
        self.add_class("jw-psf-panel")
        # the builder shows this panel under its view (and makes no other one)
        builder.stage_extras[STAGE] = self
        if self.stage_index is None and add_stage:
            builder.add_stage(STAGE)
        else:
            builder._attach_extra_panels()
        self.refresh()

    # -- the stage ------------------------------------------------------------------------
    @property
    def stage_index(self):
        for i, s in enumerate(self.builder.pipeline.stages):
            if s.name == STAGE:
                return i
        return None

    def _need_index(self):
        i = self.stage_index
        if i is None:
            raise InputError("the chain has no psf_photometry stage: add one")
        return i

    @property
    def params(self):
        return self.builder.pipeline.params(self._need_index())

    def set_params(self, **params):
        """Change the stage's parameters: the visible region is fitted first (a preview)."""
        i = self._need_index()
        self.builder.set_params(i, **params)
        self.preview()

    # -- PSF stars --------------------------------------------------------------------------
    @property
    def psf_star_ids(self):
        """The ids of the stars the current PSF was built from."""
        res = self.result
        if res is None or res.psf.stars is None:
            return []
        return [int(i) for i in res.psf.stars["id"]]

    def toggle_star(self, source_id):
        """Drop a PSF star, or add a source as one; the PSF is rebuilt."""
        from ..pipeline.psf_stage import format_ids, parse_ids

        source_id = int(source_id)
        params = self.params
        exclude = set(parse_ids(params["exclude_stars"], "exclude_stars"))
        include = set(parse_ids(params["include_stars"], "include_stars"))
        if source_id in self.psf_star_ids:
            exclude.add(source_id)
            include.discard(source_id)
        else:
            include.add(source_id)
            exclude.discard(source_id)
        new = {"exclude_stars": format_ids(exclude), "include_stars": format_ids(include)}
        self.builder.set_params(self._need_index(), **new)

    def _on_view_select(self, indices):
        if not self.editing or not indices:
            return
        catalog = self.builder.view.catalog
        if catalog is None or "id" not in catalog.colnames:
            return
        try:
            self.toggle_star(int(catalog["id"][indices[0]]))
        except InputError as exc:
            self.status.value = error_html(exc)

    # -- what the view shows ------------------------------------------------------------------
    def show(self, what):
        """Show ``"data"``, ``"model"`` or ``"residual"`` on the builder's view (no re-fit)."""
        if what not in SHOW_CHOICES:
            raise InputError(f"what must be one of {', '.join(SHOW_CHOICES)}; got {what!r}",
                             param="what")
        self.showing = what
        if self.show_choice.value != what:
            self.show_choice.value = what
            return
        self._apply_show()

    def blink(self, on=True):
        """Alternate the view between the data and the residual."""
        self._blink.playing = bool(on)

    def _on_blink(self, change):
        self._apply_show("residual" if change["new"] % 2 else "data")

    def _image_for(self, what):
        b = self.builder
        i = self.stage_index
        if b.result is None or i is None or i >= len(b.result.stages):
            return None
        stage = b.result.stages[i]
        if stage.output is None:
            return None
        image = stage.output.image
        res = self.preview_result if self.preview_result is not None else self.result
        if what == "data" or res is None:
            return image
        array = res.model if what == "model" else res.residual
        if self.preview_result is not None and what == "residual":
            # the preview fitted only a box: the data elsewhere
            array = np.where(res.model != 0, res.residual, image.data)
        return image.replace(data=np.asarray(array, np.float32),
                             key=f"{image.key}-psf-{what}-{id(res)}")

    def _apply_show(self, what=None):
        image = self._image_for(what or self.showing)
        if image is not None:
            self.builder.view.set_image(image, catalog=False, segmentation=False)

    # -- refreshing from the builder's result ------------------------------------------------
    def _on_rendered(self, view):
        b = self.builder
        if b.result is not None and b.result is not self._seen:
            self.refresh()

    def refresh(self):
        """Take the builder's latest result: PSF, stars, overlays, plots."""
        with self._lock:
            b = self.builder
            result = b.result
            self._seen = result
            i = self.stage_index
            if result is None or i is None or i >= len(result.stages):
                self.status.value = "waiting for the chain to run..."
                return
            stage = result.stages[i]
            if not stage.enabled or stage.output is None:
                self.status.value = "the psf_photometry stage is off"
                return
            self.result = stage.products.get("psf_result")
            self.preview_result = None
            self.progress.value = 1.0
            self.progress.bar_style = "success"
            self.status.value = html.escape(" · ".join(stage.messages))
        self._draw_psf()
        self._draw_overlays()
        self._draw_compare()
        if self.showing != "data":
            self._apply_show()

    # -- preview --------------------------------------------------------------------------
    def preview(self, wait=False):
        """Fit the sources in the view's visible region now (the PSF is reused).

        The full fit runs in the builder at the same time; its result
        replaces the preview when it arrives.
        """
        self._worker.submit(lambda g, c: self._preview_job(g))
        if wait:
            self._worker.wait_idle(120)

    def _preview_job(self, generation):
        from ..pipeline.psf_stage import psf_photometry_stage

        b = self.builder
        result = b.result
        i = self.stage_index
        if result is None or i is None:
            return
        image = result.output_of(i - 1)
        products = {k: v for s in result.stages[:i] for k, v in s.products.items()}
        if "catalog" not in products:
            return
        ny, nx = image.data.shape
        x0, x1, y0, y1 = b.view.view_range
        box = [max(0, int(x0)), min(nx, int(np.ceil(x1)) + 1),
               max(0, int(y0)), min(ny, int(np.ceil(y1)) + 1)]
        if box[1] <= box[0] or box[3] <= box[2]:
            return
        params = {**self.params, "region": box}
        try:
            out = psf_photometry_stage(image, products, **params)
        except InputError as exc:
            self.status.value = error_html(exc)
            return
        if not self._worker.is_current(generation):
            return
        with self._lock:
            if b.result is not result:
                return  # the full result arrived first
            self.preview_result = out.products["psf_result"]
            self.status.value = html.escape(f"preview of the visible region: "
                                            f"{out.messages[0] if out.messages else ''}")
        if self.showing != "data":
            self._apply_show()

    def wait_idle(self, timeout=120):
        """Wait for the builder and the preview worker."""
        ok = self.builder.wait_idle(timeout)
        return self._worker.wait_idle(timeout) and ok

    # -- progress ---------------------------------------------------------------------------
    def _on_progress(self, key, done, total):
        fraction = done / total if total else 1.0
        self.progress.value = float(fraction)
        self.progress.bar_style = "success" if fraction >= 1 else "info"

    # -- figures --------------------------------------------------------------------------
    def _build_psf_figures(self):
        sx, sy = bq.LinearScale(min=0.0, max=1.0), bq.LinearScale(min=0.0, max=1.0)
        from .view import _PngFeed
        self._psf_feed = _PngFeed(scales={"x": sx, "y": sy}, x=[0, 1], y=[0, 1])
        self.psf_mark = self._psf_feed.mark
        self.psf_figure = bq.Figure(marks=[self.psf_mark], padding_x=0, padding_y=0,
                                    fig_margin=dict(top=24, bottom=6, left=6, right=6),
                                    title="PSF (log)", animation_duration=0,
                                    layout=w.Layout(width="220px", height="240px"))
        self.profile_x = bq.LinearScale()
        self.profile_y = bq.LogScale()
        self.profile_line = bq.Lines(x=[0.0, 1.0], y=[1.0, 1.0],
                                     scales={"x": self.profile_x, "y": self.profile_y},
                                     colors=["#e67e22"])
        self.profile_half = bq.Lines(x=[0.0, 1.0], y=[0.5, 0.5],
                                     scales={"x": self.profile_x, "y": self.profile_y},
                                     colors=["#888"], line_style="dashed")
        self.profile_figure = bq.Figure(
            marks=[self.profile_line, self.profile_half],
            axes=[bq.Axis(scale=self.profile_x, label="radius (px)", num_ticks=5),
                  bq.Axis(scale=self.profile_y, side="left", label="relative",
                          num_ticks=4)],
            title="radial profile", animation_duration=0,
            fig_margin=dict(top=24, bottom=40, left=56, right=8),
            layout=w.Layout(width="300px", height="240px"))

    def _build_compare_figure(self):
        self.cmp_x = bq.LinearScale()
        self.cmp_y = bq.LinearScale()
        self.compare_mark = bq.Scatter(
            x=np.zeros(0), y=np.zeros(0), scales={"x": self.cmp_x, "y": self.cmp_y},
            default_size=12, colors=["#4a90d9"], interactions={"click": "select"},
            selected_style={"fill": "#ff3030", "stroke": "#ff3030"},
            unselected_style={"opacity": 0.6})
        self.compare_mark.observe(self._on_compare_select, "selected")
        self.compare_figure = bq.Figure(
            marks=[self.compare_mark],
            axes=[bq.Axis(scale=self.cmp_x, label="aperture mag"),
                  bq.Axis(scale=self.cmp_y, side="left", label="PSF − aperture mag")],
            title="PSF vs aperture", animation_duration=0,
            fig_margin=dict(top=24, bottom=40, left=56, right=8),
            layout=w.Layout(width="340px", height="240px"))
        self.compare_rows = np.zeros(0, int)

    def _build_overlays(self):
        view = self.builder.view
        scales = {"x": view.x_scale, "y": view.y_scale}
        self.star_mark = bq.Scatter(x=np.zeros(0), y=np.zeros(0), scales=scales,
                                    marker="square", fill=False, stroke_width=2,
                                    colors=["#ffa500"], default_size=140)
        self.flag_mark = bq.Scatter(x=np.zeros(0), y=np.zeros(0), scales=scales,
                                    marker="cross", colors=["#ff3030"], default_size=50)
        view.figure.marks = [*view.figure.marks, self.star_mark, self.flag_mark]

    def _draw_psf(self):
        from ..processing.display import render

        res = self.result
        if res is None:
            return
        image = np.asarray(res.psf.image, float)
        positive = image[image > 0]
        vmax = float(image.max())
        vmin = float(max(positive.min(), vmax * 1e-5)) if positive.size else vmax * 1e-5
        n = image.shape[0]
        shown = render(image.astype(np.float32), max_size=(200, 200), stretch="log",
                       colormap="inferno", limits=(vmin, vmax))
        self._psf_feed.show(shown.png, x=[0, 1], y=[0, 1])
        self.psf_figure.title = f"PSF ({res.psf.kind}, log), FWHM {res.psf.fwhm:.2f} px"
        os_ = res.psf.oversampling
        c = (n - 1) / 2
        yy, xx = np.mgrid[:n, :n]
        r = np.hypot(xx - c, yy - c) / os_
        edges = np.arange(0, r.max() / np.sqrt(2), 0.25)
        which = np.digitize(r.ravel(), edges)
        sums = np.bincount(which, weights=image.ravel(), minlength=len(edges) + 1)
        counts = np.bincount(which, minlength=len(edges) + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            prof = (sums / counts)[1:len(edges)]
        centers = edges[:-1] + 0.125
        ok = np.isfinite(prof) & (prof > 0)
        prof = prof[ok] / prof[ok].max() if ok.any() else np.ones(1)
        with hold_sync(self.profile_line, self.profile_half):
            self.profile_line.x, self.profile_line.y = centers[ok], prof
            self.profile_half.x = [0.0, res.psf.fwhm / 2, res.psf.fwhm / 2]
            self.profile_half.y = [0.5, 0.5, float(max(prof.min(), 1e-6))]

    def _draw_overlays(self):
        res = self.result
        xs = ys = fx = fy = np.zeros(0)
        if res is not None:
            if res.psf.stars is not None and len(res.psf.stars):
                xs = np.asarray(res.psf.stars["x"], float)
                ys = np.asarray(res.psf.stars["y"], float)
            cat = res.catalog
            if len(cat):
                flagged = np.asarray(cat["flags"]) != 0
                fx = np.asarray(cat["x_fit"], float)[flagged]
                fy = np.asarray(cat["y_fit"], float)[flagged]
                ok = np.isfinite(fx) & np.isfinite(fy)
                fx = np.where(ok, fx, np.asarray(cat["x_init"], float)[flagged])
                fy = np.where(ok, fy, np.asarray(cat["y_init"], float)[flagged])
        with self.star_mark.hold_sync():
            self.star_mark.x, self.star_mark.y = xs, ys
        with self.flag_mark.hold_sync():
            self.flag_mark.x, self.flag_mark.y = fx, fy

    def aperture_comparison(self):
        """Aperture and PSF magnitudes of the same sources: ``(rows, m_ap, m_psf)``.

        Apertures of radius 2 FWHM on the stage's input image at the fitted
        positions, local background from an annulus, corrected to the same
        total as the PSF fluxes with the aperture stage's own correction
        measured on the same stars.
        """
        from ..processing.photometry import aperture_photometry

        res = self.result
        b = self.builder
        i = self.stage_index
        if res is None or b.result is None or not len(res.catalog):
            return np.zeros(0, int), np.zeros(0), np.zeros(0)
        image = b.result.output_of(i - 1)
        cat = res.catalog
        good = (np.asarray(cat["flags"]) == 0) & np.isfinite(np.asarray(cat["x_fit"], float))
        rows = np.flatnonzero(good)
        if not len(rows):
            return rows, np.zeros(0), np.zeros(0)
        radius = max(2.0 * res.psf.fwhm, 2.0)
        xy = np.c_[np.asarray(cat["x_fit"], float)[rows], np.asarray(cat["y_fit"], float)[rows]]
        ap = aperture_photometry(image.data, xy, radius=radius, annulus_inner=radius + 4,
                                 annulus_outer=radius + 8, mask=image.mask)
        f_ap = np.asarray(getattr(ap["flux"], "value", ap["flux"]), float)
        f_psf = np.asarray(getattr(cat["flux_total"], "value", cat["flux_total"]), float)[rows]
        ok = (f_ap > 0) & (f_psf > 0)
        # put the apertures on the PSF fluxes' scale with the median of the brightest
        bright = ok & (f_psf >= np.percentile(f_psf[ok], 80)) if ok.any() else ok
        scale = np.median(f_psf[bright] / f_ap[bright]) if bright.any() else 1.0
        rows, f_ap, f_psf = rows[ok], f_ap[ok] * scale, f_psf[ok]
        return rows, -2.5 * np.log10(f_ap), -2.5 * np.log10(f_psf)

    def _draw_compare(self):
        rows, m_ap, m_psf = self.aperture_comparison()
        self.compare_rows = rows
        with hold_sync(self.compare_mark, self.cmp_x, self.cmp_y):
            self.compare_mark.selected = None
            self.compare_mark.x, self.compare_mark.y = m_ap, m_psf - m_ap
            if len(rows):
                d = m_psf - m_ap
                lim = float(min(max(np.nanpercentile(np.abs(d), 98), 0.05), 1.5))
                self.cmp_y.min, self.cmp_y.max = -lim, lim
                self.cmp_x.min, self.cmp_x.max = float(np.min(m_ap)), float(np.max(m_ap))

    def _on_compare_select(self, change):
        sel = change["new"]
        if sel is None or not len(sel):
            return
        self.select_row(int(self.compare_rows[int(sel[0])]))

    def select_row(self, row):
        """Select catalog row ``row`` everywhere: the view, the table, this plot."""
        b = self.builder
        b.view.select([row], notify=False, center=True)
        b.catalog_table.select([row])
        where = np.flatnonzero(self.compare_rows == row)
        self.compare_mark.selected = [int(where[0])] if len(where) else None

    # -- helpers -------------------------------------------------------------------------
    def _guard(self, fn, *args):
        try:
            fn(*args)
        except InputError as exc:
            self.status.value = error_html(exc)

    def close(self):
        self._worker.close()
        super().close()


def PROGRESS_HUB():
    from ..pipeline.psf_stage import PROGRESS
    return PROGRESS
