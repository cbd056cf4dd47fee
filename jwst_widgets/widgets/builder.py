"""The pipeline builder: load an image, chain stages, watch every change live."""

import html
import threading
import time

import ipywidgets as w
import numpy as np

from ..errors import Cancelled, InputError
from ._html import error_html
from ..pipeline import Pipeline, default_registry
from .catalog import CatalogTable
from .histogram import Histogram
from .panels import StagePanel
from .view import COLORMAPS, STRETCHES, ImageView
from .worker import LatestWorker

__all__ = ["PipelineBuilder"]

#: A preview is drawn first when the stages a change re-runs took longer than this (s)
#: last time: the full result reaches the browser ~2x later than their compute (the
#: view, the panels, the page share the 2 cores), ~0.2 s after a 0.1 s compute.
PREVIEW_AFTER_SECONDS = 0.1
#: The preview image's longest side, in pixels.
PREVIEW_SIZE = 512
#: The full run waits at most this long (s) for the preview to be computed and drawn.
PREVIEW_HEAD_START = 0.5


class PipelineBuilder(w.VBox):
    """Build a processing chain stage by stage on an image, with a live view.

    Parameters
    ----------
    image : Image, str or None
        An image (:func:`~jwst_widgets.load_image` result), a path, or the
        name of a bundled sample (``"nircam_like"``, ``"hst_abell2744"``...).
    stages : iterable, optional
        Stages to start with, as for :class:`~jwst_widgets.Pipeline`.
    width, height : int
        The image view's size in screen pixels.

    Attributes
    ----------
    pipeline : Pipeline
        The chain being built.
    result : PipelineResult or None
        The latest full-resolution result.
    view : ImageView
        The image view (``.figure``, ``.interval``, ``.stretch``, ``.colormap``).
    panels : list of StagePanel
        One per stage, in order; ``panels[i].controls["box_size"]``.
    tabs : ipywidgets.Tab
        The tabs under the view: Catalog, Statistics, Export, MAST, Apply to
        files (the chain over many files, on Dask), Sky.
    stats_panel, export_panel, mast, batch_panel
        The panels of the tabs. A tab not shown first makes its panel when it
        is first selected, or when its attribute is first read: a cell that
        makes a builder sends fewer widgets.

    Notes
    -----
    Every button and control calls a public method of this class, so a
    notebook can script the builder exactly as a user drives it:
    :meth:`add_stage`, :meth:`set_params`, :meth:`remove_stage`,
    :meth:`move_stage`, :meth:`enable_stage`, :meth:`show_stage`,
    :meth:`load`, the ``export_*`` methods and :meth:`wait_idle`.

    Processing runs in a background thread. Each change supersedes the work
    of older ones; when the chain is slow a reduced-resolution preview is
    drawn first, then the full-resolution result.

    Examples
    --------
    >>> from jwst_widgets import PipelineBuilder
    >>> b = PipelineBuilder("nircam_like_1k")                # doctest: +SKIP
    >>> b.add_stage("background_subtraction", box_size=64)   # doctest: +SKIP
    >>> b.add_stage("source_detection", threshold_sigma=5)   # doctest: +SKIP
    >>> b.wait_idle(); len(b.result.catalog)                 # doctest: +SKIP
    """

    def __init__(self, image=None, stages=(), *, width=640, height=600):
        self.registry = default_registry()
        self.pipeline = Pipeline(stages, registry=self.registry, cache_bytes=1 << 30)
        self.image = None
        self.result = None
        self.preview = None
        self.shown_stage = None  # None: the last stage; -1: the input; i: stage i
        self.errors = []  # unexpected errors (bugs), in words
        self._gen = 0
        self._lock = threading.RLock()
        self._good = {}  # stage uid -> parameters of its last successful run
        self._applied_gen = 0
        self._last_full_seconds = 0.0
        self._preview_inputs = {}
        self._full = LatestWorker("jwst-widgets-pipeline", on_error=self._on_bug)
        self._fast = LatestWorker("jwst-widgets-preview", on_error=self._on_bug)
        self._preview_done = threading.Event()  # the preview the full run lets go first
        self._preview_done.set()
        # previews run on a binned copy through a pipeline of their own, whose
        # cache keeps the binned outputs of the stages that did not change
        self._preview_pipeline = Pipeline(registry=self.registry, cache_bytes=256 << 20)

        self.view = ImageView(width=width, height=height)
        self.histogram = Histogram(self.view, width=min(width, 520), height=150)
        self.catalog_table = CatalogTable()
        self.view.on_select(lambda idx: self.catalog_table.select(idx))
        self.catalog_table.on_select(lambda idx: self.view.select(idx, notify=False, center=True))

        self.panels = [StagePanel(self, s) for s in self.pipeline.stages]
        self._build_layout()
        self._attach_extra_panels()
        if image is not None:
            self.load(image)

    # -- layout -------------------------------------------------------------------------
    def _build_layout(self):
        from ..datasets import SAMPLES
        from .export_panel import ExportPanel
        from .stats_panel import StatisticsPanel

        # loader
        self.sample = w.Dropdown(options=[("bundled sample...", "")] +
                                 [(f"{k}: {v[1]}", k) for k, v in SAMPLES.items()],
                                 layout=w.Layout(width="330px"))
        self.sample.observe(lambda ch: ch["new"] and self._guard_load(ch["new"]), "value")
        self.path = w.Text(placeholder="path to a FITS file", layout=w.Layout(width="280px"),
                           continuous_update=False)
        open_button = w.Button(description="open", icon="folder-open",
                               layout=w.Layout(width="80px"))
        open_button.on_click(lambda _: self.path.value and self._guard_load(self.path.value))
        self.upload = w.FileUpload(accept=".fits,.fit,.fts,.gz,.fz", multiple=False,
                                   description="upload")
        self.upload.observe(self._on_upload, "value")
        self.load_status = w.HTML("")
        self.load_status.add_class("jw-load-status")
        loader = w.VBox([w.HBox([self.sample, self.path, open_button, self.upload]),
                         self.load_status])

        # stages
        self.add_choice = w.Dropdown(options=list(self.registry.names),
                                     layout=w.Layout(width="220px"))
        add_button = w.Button(description="add stage", icon="plus", layout=w.Layout(width="110px"))
        add_button.on_click(lambda _: self._guard(self.add_stage, self.add_choice.value))
        self.stage_box = w.VBox(self.panels)
        self.stage_box.add_class("jw-stages")
        self.chain_status = w.HTML("")
        self.chain_status.add_class("jw-chain-status")
        left = w.VBox([w.HBox([self.add_choice, add_button]), self.stage_box, self.chain_status],
                      layout=w.Layout(width="470px", min_width="470px", margin="0 8px 0 0"))

        # display settings
        self.show_choice = w.Dropdown(description="show", layout=w.Layout(width="260px"))
        self.show_choice.observe(self._on_show_choice, "value")
        self.interval_choice = w.Dropdown(
            description="interval", options=["zscale", "minmax", "99.5", "99", "98", "95", "90"],
            value="zscale", layout=w.Layout(width="200px"))
        self.interval_choice.observe(
            lambda ch: self._guard(setattr, self.view, "interval", ch["new"]), "value")
        self.stretch_choice = w.Dropdown(description="stretch", options=list(STRETCHES),
                                         value=self.view.stretch, layout=w.Layout(width="200px"))
        self.stretch_choice.observe(
            lambda ch: self._guard(setattr, self.view, "stretch", ch["new"]), "value")
        self.colormap_choice = w.Dropdown(description="colormap", options=list(COLORMAPS),
                                          value=self.view.colormap,
                                          layout=w.Layout(width="200px"))
        self.colormap_choice.observe(
            lambda ch: self._guard(setattr, self.view, "colormap", ch["new"]), "value")
        self.show_sources = w.Checkbox(value=True, description="sources", indent=False,
                                       layout=w.Layout(width="90px"))
        w.link((self.show_sources, "value"), (self.view.state, "show_catalog"))
        self.show_segments = w.Checkbox(value=False, description="segments", indent=False,
                                        layout=w.Layout(width="90px"))
        w.link((self.show_segments, "value"), (self.view.state, "show_segmentation"))
        self.color_by = w.Dropdown(description="colour by", options=[("(none)", None)],
                                   layout=w.Layout(width="230px"))
        self.color_by.observe(lambda ch: setattr(self.view.state, "color_column", ch["new"]),
                              "value")
        self.compare_choice = w.Dropdown(description="compare", options=[("off", None)],
                                         layout=w.Layout(width="230px"))
        self.compare_mode = w.ToggleButtons(options=["split", "blink"], value="split",
                                            style={"button_width": "60px"})
        self.compare_choice.observe(lambda _: self._apply_compare(), "value")
        self.compare_mode.observe(lambda _: self._apply_compare(), "value")
        self.compare_box = w.HBox([])
        self._blink = w.Play(interval=800, max=1, repeat=True, show_repeat=False,
                             layout=w.Layout(width="120px"))
        self._blink.observe(self._on_blink, "value")
        display = w.VBox([
            w.HBox([self.show_choice, self.interval_choice]),
            w.HBox([self.stretch_choice, self.colormap_choice]),
            w.HBox([self.show_sources, self.show_segments, self.color_by]),
            w.HBox([self.compare_choice, self.compare_mode, self._blink]),
        ])
        right = w.VBox([self.view, display, self.histogram])

        from .batch_panel import BatchPanel
        from .mast_browser import MastBrowser
        from .tabs import DeferredTab

        # bqplot figures are kept out of the tabs: a figure laid out while its
        # tab is hidden has no size and breaks in the front end.
        # The tabs not shown first make their panels when first shown (or asked
        # for: the properties below); ~200 widget models fewer to send at start.
        self._deferred_tabs = {
            "Statistics": DeferredTab(lambda: StatisticsPanel(self)),
            "Export": DeferredTab(lambda: ExportPanel(self)),
            "MAST": DeferredTab(lambda: MastBrowser(on_open=self._open_downloads)),
            "Apply to files": DeferredTab(lambda: BatchPanel(self)),
        }
        tabs = [("Catalog", self.catalog_table), *self._deferred_tabs.items()]
        self.tabs = w.Tab(children=[c for _, c in tabs], titles=[t for t, _ in tabs])
        for tab in self._deferred_tabs.values():
            tab.watch(self.tabs)
        self.extra_tabs = {}
        from .sky import add_sky_tab  # the sky view itself is made when its tab is shown
        self.sky_tab = add_sky_tab(self)
        main = w.HBox([left, right, self.compare_box], layout=w.Layout(flex_flow="row wrap"))
        self.stage_extras = {}
        self.extras_box = w.VBox([])  # always visible: extra panels hold bqplot figures
        super().__init__([loader, main, self.extras_box, self.tabs])
        self.add_class("jw-pipeline-builder")
        self._refresh_choices()

    def add_tab(self, title, widget):
        """Add a tab (the sky view plugs in here).

        A :class:`~jwst_widgets.widgets.tabs.DeferredTab` makes its content
        when the tab is first selected.
        """
        from .tabs import DeferredTab

        self.tabs.children = [*self.tabs.children, widget]
        self.tabs.set_title(len(self.tabs.children) - 1, title)
        self.extra_tabs[title] = widget
        if isinstance(widget, DeferredTab):
            widget.watch(self.tabs)
        return widget

    # the panels of the deferred tabs, made when first asked for
    @property
    def stats_panel(self):
        """The Statistics tab's :class:`~.stats_panel.StatisticsPanel`."""
        return self._deferred_tabs["Statistics"].build()

    @property
    def export_panel(self):
        """The Export tab's :class:`~.export_panel.ExportPanel`."""
        return self._deferred_tabs["Export"].build()

    @property
    def mast(self):
        """The MAST tab's :class:`~.mast_browser.MastBrowser`."""
        return self._deferred_tabs["MAST"].build()

    @property
    def batch_panel(self):
        """The "Apply to files" tab's :class:`~.batch_panel.BatchPanel`."""
        return self._deferred_tabs["Apply to files"].build()

    # -- loading ---------------------------------------------------------------------------
    def load(self, source, *, ext=None, index=None):
        """Load an image: an Image, a path, an HDUList or a bundled sample's name.

        The chain is kept and re-run on the new image. Raises InputError
        (also shown beside the loader) when the file cannot be used.
        """
        from ..datasets import SAMPLES, load_sample
        from ..io import Image, load_image

        try:
            if isinstance(source, Image):
                image = source
            elif isinstance(source, str) and source in SAMPLES:
                self.load_status.value = f"preparing sample {html.escape(source)}..."
                image = load_sample(source)
            else:
                image = load_image(source, ext=ext, index=index)
        except InputError as exc:
            self.load_status.value = error_html(exc)
            raise
        with self._lock:
            self.image = image
            self.result = None
            self.preview = None
            self._preview_inputs = {}
            self._applied_gen = 0
        ny, nx = image.data.shape
        notes = "".join(f"<br>{error_html(n)}" for n in image.warnings)
        unit = image.unit.to_string() if image.unit is not None else "no unit"
        self.load_status.value = (f"<b>{html.escape(image.name)}</b>: {nx} x {ny}, {unit}, "
                                  f"{int(image.mask.sum())} masked pixels, "
                                  f"WCS {'yes' if image.wcs is not None else 'no'}{notes}")
        self.view.set_image(image, reset=True, catalog=None, segmentation=None)
        self._request_run(reason="load")
        return image

    def _open_downloads(self, paths):
        """The MAST browser's "open in the pipeline builder": load the first file."""
        if paths:
            self._guard_load(paths[0])
            self.downloads = list(paths)

    downloads = ()

    def _guard_load(self, source):
        try:
            self.load(source)
        except InputError:
            pass  # shown beside the loader

    def _on_upload(self, change):
        import os

        from ..datasets import cache_dir
        files = change["new"]
        if not files:
            return
        item = files[0]
        name = os.path.basename(item["name"]) or "upload.fits"
        folder = os.path.join(cache_dir(), "uploads")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name)
        from ..io.write import atomic_write
        with atomic_write(path, "wb") as fh:
            fh.write(bytes(item["content"]))
        self._guard_load(path)

    # -- the chain: public API mirrored by the controls ----------------------------------------
    def add_stage(self, name, index=None, **params):
        """Add a stage (validated); returns its panel.

        Stages with a panel of their own (``psf_photometry``: the PSF panel)
        bring it along, shown under the image view.
        """
        i = self.pipeline.add(name, index=index, **params)
        try:
            self._check_chain()
        except InputError as exc:
            self.pipeline.remove(i)
            self.chain_status.value = error_html(exc)
            raise
        stage = self.pipeline.stages[i]
        panel = StagePanel(self, stage)
        self.panels.insert(i, panel)
        self._sync_panels()
        self._attach_extra_panels()
        self._request_run(reason=f"add {name}")
        return panel

    def _attach_extra_panels(self):
        """Show the extra panel of each stage that has one (see STAGE_PANELS)."""
        from . import STAGE_PANELS
        for name, factory in STAGE_PANELS.items():
            present = any(p.name == name for p in self.panels)
            if present and name not in self.stage_extras:
                self.stage_extras[name] = factory(self)
            elif not present and name in self.stage_extras:
                self.stage_extras.pop(name).close()
        self.extras_box.children = list(self.stage_extras.values())

    def remove_stage(self, i):
        """Remove stage ``i``."""
        i = self.pipeline._index(i)
        stages = self.pipeline.stages
        del stages[i]
        self._check_chain(stages)  # e.g. photometry left without detection
        self.pipeline.remove(i)
        panel = self.panels.pop(i)
        panel.close()
        self._sync_panels()
        self._attach_extra_panels()
        self._request_run(reason="remove")

    def move_stage(self, i, j):
        """Move stage ``i`` to position ``j``."""
        stages = self.pipeline.stages
        stages.insert(self.pipeline._index(j), stages.pop(self.pipeline._index(i)))
        self._check_chain(stages)
        self.pipeline.move(i, j)
        self.panels.insert(j, self.panels.pop(i))
        self._sync_panels()
        self._request_run(reason="move")

    def enable_stage(self, i, enabled=True):
        """Switch stage ``i`` on or off (off: it passes its input through)."""
        stages = self.pipeline.stages
        stages[self.pipeline._index(i)].enabled = bool(enabled)
        try:
            self._check_chain(stages)
        except InputError:
            self.panels[i].enabled.value = not enabled
            raise
        self.pipeline.set_enabled(i, enabled)
        if self.panels[i].enabled.value != bool(enabled):
            self.panels[i].enabled.value = bool(enabled)
        self._request_run(reason="enable")

    def set_params(self, i, **params):
        """Change stage ``i``'s parameters: the same as moving its controls.

        Values are validated against the stage's schema and the image; a bad
        value raises InputError, shows its message beside its control and
        leaves the chain as it was.
        """
        i = self.pipeline._index(i)
        panel = self.panels[i]
        old = self.pipeline.params(i)
        try:
            self.pipeline.set_params(i, **params)
            self._check_chain()
        except InputError as exc:
            self.pipeline.set_params(i, **old)
            panel.set_values(old)
            panel.show_error(str(exc), exc.param)
            raise
        panel.clear_errors()
        panel.set_values(self.pipeline.params(i))
        self._request_run(reason="params", stage=i)

    def _on_control(self, panel, name, value):
        try:
            self.set_params(self._panel_index(panel), **{name: value})
        except InputError:
            pass  # shown beside the control

    def _check_chain(self, stages=None):
        self.pipeline.check(self.image, stages)

    def _panel_index(self, panel):
        for i, p in enumerate(self.panels):
            if p is panel:
                return i
        raise InputError("this stage is no longer in the pipeline")

    def _sync_panels(self):
        self.stage_box.children = list(self.panels)
        self._refresh_choices()

    def _guard(self, fn, *args):
        try:
            fn(*args)
        except InputError as exc:
            self.chain_status.value = error_html(exc)

    # -- running ----------------------------------------------------------------------------
    def _request_run(self, reason="", stage=None):
        if self.image is None:
            return
        with self._lock:
            self._gen += 1
            gen = self._gen
        for p in self.panels[stage if stage is not None else 0:]:
            p.set_status("running...", busy=True)
        self._preview_done.set()  # a full run still waiting for an older preview: go
        if self._expected_seconds(stage) > PREVIEW_AFTER_SECONDS and len(self.pipeline):
            done = self._preview_done = threading.Event()
            self._fast.submit(lambda g, c: self._preview_job(gen, done))
        self._full.submit(lambda g, c: self._full_job(gen))

    def _expected_seconds(self, stage):
        """What running the chain from ``stage`` on took last time (cached stages included)."""
        if self.result is None:
            return self._last_full_seconds
        return sum(s.seconds for s in self.result.stages[stage or 0:])

    def _superseded(self, gen):
        return gen != self._gen

    def _full_job(self, gen):
        # The preview runs and is drawn first, alone: run side by side on 2 cores, the
        # full run took the GIL from it (scipy's filters hold it ~0.1 s at a time) and
        # doubled its latency (BENCHMARKS.md); the full run starts ~0.1 s later.
        self._preview_done.wait(PREVIEW_HEAD_START)
        if self._superseded(gen):
            return
        image = self.image
        t0 = time.perf_counter()
        try:
            result = self.pipeline.run(image, cancel=lambda: self._superseded(gen))
        except Cancelled:
            return
        except InputError as exc:
            self._on_run_error(gen, exc)
            return
        if self._superseded(gen):
            return
        self._last_full_seconds = time.perf_counter() - t0
        with self._lock:
            if self._superseded(gen) or image is not self.image:
                return
            self.result = result
            self._applied_gen = gen
            for s, panel in zip(result.stages, self.panels):
                self._good[panel.uid] = dict(s.params)
            self._show(result, preview_factor=None)

    def _preview_job(self, gen, done):
        try:
            if self._preview(gen):
                self.view.wait_idle(PREVIEW_HEAD_START)  # drawn, not only computed
        finally:
            done.set()

    def _preview(self, gen):
        """Run the chain on a binned copy of the image and show it; True if shown."""
        image = self.image
        factor = max(1, int(np.ceil(max(image.data.shape) / PREVIEW_SIZE)))
        if factor == 1:
            return False
        small = self._preview_input(image, factor)
        pipe = self._preview_pipeline
        try:
            stages = []
            for s in self.pipeline.stages:
                params = {}
                for p in s.spec.params:
                    v = s.params[p.name]
                    if p.pixel_length and v is not None:
                        v = v / factor
                        if p.type == "integer":
                            v = int(round(v)) + (1 if p.odd and round(v) % 2 == 0 else 0)
                        floor = max(p.min or 0, min(p.preview_min or 0, s.params[p.name]))
                        v = p.validate(max(floor, v))
                    params[p.name] = v
                stages.append((s.name, params, s.enabled and s.spec.preview))
            pipe.set_stages(stages)
            result = pipe.run(small, cancel=lambda: self._superseded(gen))
        except (Cancelled, InputError):
            return False
        with self._lock:
            if self._superseded(gen) or self._applied_gen >= gen or image is not self.image:
                return False
            self.preview = result
            self._show(result, preview_factor=factor)
        return True

    def _preview_input(self, image, factor):
        key = (image.key, factor)
        if key not in self._preview_inputs:
            from ..processing.display import reduce_to_size
            ny, nx = image.data.shape
            data, _ = reduce_to_size(image.data, nx // factor, ny // factor, method="mean",
                                     mask=image.mask)
            self._preview_inputs = {key: image.replace(
                data=data, mask=~np.isfinite(data), error=None, wcs=None,
                key=f"{image.key}-preview{factor}")}
        return self._preview_inputs[key]

    def _on_run_error(self, gen, exc):
        with self._lock:
            if self._superseded(gen):
                return
            index = next((i for i, p in enumerate(self.panels) if p.name == exc.stage), None)
            if index is None:
                self.chain_status.value = error_html(exc)
                return
            panel = self.panels[index]
            good = self._good.get(panel.uid)
            if good is not None and good != self.pipeline.params(index):
                self.pipeline.set_params(index, **good)
                panel.set_values(good)
            panel.show_error(str(exc), exc.param)
            self._applied_gen = gen

    def _on_bug(self, exc, text):
        self.errors.append(text)
        self.chain_status.value = error_html(
            f"unexpected error ({type(exc).__name__}: {exc}); the chain is kept")

    def _show(self, result, *, preview_factor):
        """Put a result on the view, the panels, the catalog table (under the lock)."""
        stages = result.stages
        for s, panel in zip(stages, self.panels):
            if preview_factor:
                panel.set_status(f"preview (1/{preview_factor} resolution)...", busy=True)
            elif not s.enabled:
                panel.set_status("off")
            else:
                # messages beside controls stay: they belong to values refused since
                text = (f"from the cache (ran in {s.seconds * 1000:.0f} ms)" if s.cached
                        else f"ran in {s.seconds * 1000:.0f} ms")
                if s.messages:
                    text += " · " + " · ".join(s.messages)
                panel.set_status(text)
        shown = self._shown_image(result)
        catalog = result.catalog
        seg = result.segmentation
        if preview_factor:
            catalog = _scale_catalog(catalog, preview_factor)
            seg = None
        self.view.set_image(shown, catalog=catalog, segmentation=seg,
                            size_hint=self._size_hint(), binning=preview_factor or 1)
        if not preview_factor:
            self.catalog_table.set_catalog(catalog)
            self._refresh_color_columns(catalog)
            self.chain_status.value = (f"chain ran in {result.seconds * 1000:.0f} ms"
                                       + (f" · {len(catalog)} sources" if catalog is not None
                                          else ""))
            self._refresh_compare()

    def _shown_image(self, result):
        k = self.shown_stage
        if k is None or k >= len(result.stages):
            return result.final
        return result.output_of(k)

    def _size_hint(self):
        for s in self.pipeline.stages:
            if s.name == "source_detection":
                return s.params["fwhm"]
        return 3.0

    def wait_idle(self, timeout=60):
        """Wait until the view shows the result of the latest change.

        Returns True when idle, False on timeout. Scripts and tests call it
        after changing something.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not self._full.wait_idle(left):
                return False
            self._fast.wait_idle(max(deadline - time.monotonic(), 0.01))
            if not self.view.wait_idle(max(deadline - time.monotonic(), 0.01)):
                return False
            if self._full.idle and self.view._worker.idle and (
                    self.image is None or self._applied_gen == self._gen):
                return True
            time.sleep(0.005)

    # -- what is shown ---------------------------------------------------------------------
    def show_stage(self, i=None):
        """Show the output of stage ``i`` (None: the last stage; -1: the input)."""
        if i is not None and i != -1:
            i = self.pipeline._index(i)
        self.shown_stage = i
        self._muted_show = True
        try:
            self.show_choice.value = i if i is not None else "final"
        finally:
            self._muted_show = False
        if self.result is not None:
            self.view.set_image(self._shown_image(self.result), catalog=False,
                                segmentation=False)

    _muted_show = False

    def _on_show_choice(self, change):
        if self._muted_show:
            return
        value = change["new"]
        self.show_stage(None if value == "final" else value)

    def _refresh_choices(self):
        names = [(f"{i}: {p.name}", i) for i, p in enumerate(self.panels)]
        self._muted_show = True
        try:
            self.show_choice.options = [("final output", "final"), ("input", -1)] + names
            current = self.shown_stage if self.shown_stage is not None else "final"
            valid = [v for _, v in self.show_choice.options]
            self.show_choice.value = current if current in valid else "final"
            if current not in valid:
                self.shown_stage = None
        finally:
            self._muted_show = False
        self.compare_choice.options = [("off", None), ("input", -1)] + names

    def _refresh_color_columns(self, catalog):
        cols = [] if catalog is None else [
            c for c in catalog.colnames
            if getattr(catalog[c], "dtype", np.dtype(object)).kind in "iuf" and catalog[c].ndim == 1]
        current = self.color_by.value
        self.color_by.options = [("(none)", None)] + [(c, c) for c in cols]
        self.color_by.value = current if current in cols else None

    # -- compare ---------------------------------------------------------------------------
    def compare(self, other=None, mode="split"):
        """Compare the shown output with stage ``other`` (-1: the input; None: off).

        ``mode`` is ``"split"`` (a second view, zoomed and panned together)
        or ``"blink"`` (the view alternates between the two).
        """
        if mode not in ("split", "blink"):
            raise InputError(f"mode must be 'split' or 'blink'; got {mode!r}", param="mode")
        self.compare_mode.value = mode
        self.compare_choice.value = other

    def _apply_compare(self):
        other = self.compare_choice.value
        self._blink.playing = False
        if other is None or self.result is None:
            self.compare_box.children = []
            self.compare_view = None
            self.show_stage(self.shown_stage)
            return
        if self.compare_mode.value == "split":
            view = getattr(self, "compare_view", None)
            if view is None:
                view = ImageView(width=self.view.width // 2 + 60, height=self.view.height // 2 + 40)
                view.state = self.view.state
                view.state.observe(lambda ch: view.refresh(),
                                   names=["interval", "stretch", "colormap"])
                self.view.x_scale.observe(lambda _: self._follow(view), names=["min", "max"])
                self.view.y_scale.observe(lambda _: self._follow(view), names=["min", "max"])
                self.compare_view = view
            self.compare_box.children = [view]
            view.set_image(self.result.output_of(other), reset=True)
            self._follow(view)
        else:
            self.compare_box.children = []
            self.compare_view = None
            self._blink.playing = True

    def _follow(self, view):
        if getattr(self, "compare_view", None) is view:
            view._set_ranges(*self.view.view_range)

    def _refresh_compare(self):
        if self.compare_choice.value is not None and getattr(self, "compare_view", None):
            self.compare_view.set_image(self.result.output_of(self.compare_choice.value),
                                        reset=False)

    def _on_blink(self, change):
        if self.result is None or self.compare_choice.value is None:
            return
        if change["new"] % 2:
            self.view.set_image(self.result.output_of(self.compare_choice.value),
                                catalog=False, segmentation=False)
        else:
            self.view.set_image(self._shown_image(self.result), catalog=False,
                                segmentation=False)

    # -- recipes and exports (the export tab calls these) -------------------------------------------
    def to_recipe(self):
        return self.pipeline.to_recipe()

    def load_recipe(self, recipe):
        """Replace the chain with a recipe's (a dict, JSON text or a path); validated first."""
        new = Pipeline.from_recipe(recipe, registry=self.registry, cache_bytes=1 << 30)
        if self.image is not None:
            new.check(self.image)
        new.cache = self.pipeline.cache
        for panel in self.panels:
            panel.close()
        self.pipeline = new
        self.panels = [StagePanel(self, s) for s in new.stages]
        self._sync_panels()
        self._attach_extra_panels()
        self._request_run(reason="recipe")

    def export_recipe(self, path):
        from ..pipeline.recipe import write_recipe
        return write_recipe(self.to_recipe(), path)

    def export_fits(self, path):
        """Write the final image as FITS with provenance (the recipe, versions, input checksum)."""
        from ..pipeline.outputs import write_result
        result = self._need_result()
        return write_result(result, path, recipe=self.to_recipe(),
                            input_path=self.image.meta.get("path"))

    def export_catalog(self, path, format="ecsv"):
        """Write the catalog as ECSV (``format="ecsv"``) or DS9 regions (``"ds9"``)."""
        from ..pipeline.outputs import write_catalog, write_regions
        result = self._need_result()
        if result.catalog is None:
            raise InputError("there is no catalog to export: add a source_detection stage")
        protect = (self.image.meta.get("path"),)
        if format == "ecsv":
            return write_catalog(result.catalog, path, protect=protect)
        if format == "ds9":
            return write_regions(result.catalog, path, wcs=result.final.wcs,
                                 radius=self._size_hint() * 1.5, protect=protect)
        raise InputError(f"format must be 'ecsv' or 'ds9'; got {format!r}", param="format")

    def export_png(self, path):
        """Write the view as shown (the rendered PNG) to ``path``."""
        from ..io.write import atomic_write
        if self.view.shown is None:
            raise InputError("nothing is shown yet: load an image first")
        with atomic_write(path, "wb", protect=(self.image.meta.get("path"),)) as fh:
            fh.write(self.view.shown.png)
        return path

    def _need_result(self):
        if not self.wait_idle(120) or self.result is None:
            raise InputError("no result yet: load an image and wait for the chain to run")
        return self.result

    def close(self):
        self._full.close()
        self._fast.close()
        self.view.close()
        super().close()


def _scale_catalog(catalog, factor):
    if catalog is None or not len(catalog):
        return catalog
    out = catalog.copy(copy_data=True)
    for c in ("x_centroid", "y_centroid", "x_center", "y_center", "x_fit", "y_fit"):
        if c in out.colnames:
            out[c] = out[c] * factor + (factor - 1) / 2
    return out
