"""The builder's "Apply to files" tab: the current recipe over many files, on Dask."""

import html
import os
import threading

import ipywidgets as w

from ..errors import InputError
from ._html import error_html

__all__ = ["BatchPanel"]

_STATUS_COLOURS = {"done": "#2c7a2c", "skipped": "#777", "failed": "#c0392b"}


class BatchPanel(w.VBox):
    """Run the builder's chain over many files with :func:`~jwst_widgets.run_batch`.

    Files come from a directory or glob patterns typed in, the MAST
    browser's downloads, or uploads. The run goes to a local Dask cluster,
    or to a scheduler whose address is given; the progress bar and the
    summary table fill in while it runs, and the builder stays usable. Any
    processed file opens back in the builder.

    Every button calls a public method (:meth:`run`, :meth:`cancel`,
    :meth:`open_output`, :meth:`use_downloads`) that scripts and tests call.
    """

    def __init__(self, builder):
        self._builder = builder
        self._thread = None
        self._cancel = threading.Event()
        self.rows = []
        self.summary = None
        self.error = None
        self.files = w.Textarea(placeholder="files, directories or glob patterns, one a line "
                                            "(data/*_cal.fits)",
                                layout=w.Layout(width="520px", height="70px"))
        self.outdir = w.Text(value=os.path.join(os.getcwd(), "batch_out"), description="output",
                             layout=w.Layout(width="520px"))
        self.scheduler = w.Text(placeholder="tcp://host:8786 (empty: a local cluster)",
                                description="scheduler", layout=w.Layout(width="420px"))
        self.workers = w.BoundedIntText(value=0, min=0, max=256, description="workers",
                                        tooltip="local cluster workers (0: one per core)",
                                        layout=w.Layout(width="160px"))
        self.overwrite = w.Checkbox(value=False, description="redo files already done",
                                    indent=False)
        self.upload = w.FileUpload(accept=".fits,.fit,.fts,.gz,.fz", multiple=True,
                                   description="add uploads")
        self.upload.observe(self._on_upload, "value")
        downloads = w.Button(description="MAST downloads", icon="cloud-download",
                             tooltip="add the files the MAST tab downloaded")
        downloads.on_click(lambda _: self._guard(self.use_downloads))
        self.run_button = w.Button(description="run", icon="play", button_style="primary")
        self.run_button.on_click(lambda _: self._guard(self.run))
        self.cancel_button = w.Button(description="cancel", icon="stop", disabled=True)
        self.cancel_button.on_click(lambda _: self.cancel())
        self.progress = w.IntProgress(value=0, min=0, max=1, description="files",
                                      layout=w.Layout(width="420px"))
        self.status = w.HTML("")
        self.status.add_class("jw-batch-status")
        self.table = w.Select(options=[], rows=8, layout=w.Layout(width="100%"))
        self.table.add_class("jw-catalog-rows")
        open_button = w.Button(description="open in builder", icon="folder-open",
                               tooltip="load the selected file's processed output")
        open_button.on_click(lambda _: self._guard(self.open_output, self.table.value))
        super().__init__([
            self.files, w.HBox([downloads, self.upload]), self.outdir,
            w.HBox([self.scheduler, self.workers, self.overwrite]),
            w.HBox([self.run_button, self.cancel_button, self.progress]), self.status,
            self.table, open_button])
        self.add_class("jw-batch-panel")

    # -- inputs ------------------------------------------------------------------------------
    def patterns(self):
        return [line.strip() for line in self.files.value.splitlines() if line.strip()]

    def add_files(self, paths):
        known = self.patterns()
        self.files.value = "\n".join(known + [p for p in map(str, paths) if p not in known])

    def use_downloads(self):
        """Add the files the MAST browser downloaded."""
        paths = list(getattr(self._builder, "downloads", ()) or ())
        if not paths:
            raise InputError("the MAST tab has downloaded nothing yet")
        self.add_files(paths)

    def _on_upload(self, change):
        from ..datasets import cache_dir
        from ..io.write import atomic_write
        folder = os.path.join(cache_dir(), "uploads")
        os.makedirs(folder, exist_ok=True)
        saved = []
        for item in change["new"] or ():
            path = os.path.join(folder, os.path.basename(item["name"]) or "upload.fits")
            with atomic_write(path, "wb") as fh:
                fh.write(bytes(item["content"]))
            saved.append(path)
        self.add_files(saved)

    # -- running -----------------------------------------------------------------------------
    def run(self, files=None, outdir=None, *, scheduler=None, workers=None, overwrite=None,
            wait=False):
        """Run the builder's recipe over ``files`` (default: the ones listed here).

        Returns at once (the work is in a background thread) unless ``wait``.
        """
        from ..pipeline.batch import expand_inputs

        if self.running:
            raise InputError("a batch is running: wait for it or cancel it")
        if files is not None:
            self.files.value = "\n".join(map(str, [files] if isinstance(files, (str, os.PathLike))
                                             else files))
        if outdir is not None:
            self.outdir.value = str(outdir)
        if scheduler is not None:
            self.scheduler.value = str(scheduler)
        if workers is not None:
            self.workers.value = int(workers)
        if overwrite is not None:
            self.overwrite.value = bool(overwrite)
        paths = expand_inputs(self.patterns())  # an empty or unmatched list says so now
        recipe = self._builder.to_recipe()
        if not recipe["stages"]:
            raise InputError("the chain is empty: add stages before applying it to files")
        kwargs = dict(scheduler=self.scheduler.value.strip() or None,
                      workers=self.workers.value or None, overwrite=self.overwrite.value,
                      progress=False, dashboard_address=None)
        self.rows = [None] * len(paths)
        self.summary = None
        self.error = None
        self._cancel.clear()
        self.progress.max, self.progress.value = max(len(paths), 1), 0
        self.progress.bar_style = "info"
        self.status.value = f"starting Dask for {len(paths)} file(s)..."
        self._refresh_table(paths)
        self.run_button.disabled, self.cancel_button.disabled = True, False
        outdir = self.outdir.value.strip() or "batch_out"
        self._thread = threading.Thread(target=self._work, args=(recipe, paths, outdir, kwargs),
                                        name="jwst-widgets-batch", daemon=True)
        self._thread.start()
        if wait:
            self.wait_idle(None)
        return self._thread

    def _work(self, recipe, paths, outdir, kwargs):
        from ..pipeline.batch import run_batch
        try:
            self.summary = run_batch(recipe, paths, outdir, on_row=self._on_row,
                                     cancel=self._cancel, **kwargs)
            counts = {s: int((self.summary["status"] == s).sum())
                      for s in ("done", "skipped", "failed")}
            self.status.value = (f"{counts['done']} done, {counts['skipped']} skipped, "
                                 f"{counts['failed']} failed &rarr; "
                                 f"{html.escape(os.path.abspath(outdir))}")
            self.progress.bar_style = "danger" if counts["failed"] else "success"
            self.rows = [dict(zip(self.summary.colnames, r)) for r in self.summary]
            self._refresh_table(paths)
        except InputError as exc:
            self.error = str(exc)
            self.status.value = error_html(exc)
            self.progress.bar_style = "danger"
        except Exception as exc:  # the panel reports; the builder keeps working
            self.error = f"{type(exc).__name__}: {exc}"
            self.status.value = error_html(f"the batch stopped: {self.error}")
            self.progress.bar_style = "danger"
        finally:
            self.run_button.disabled, self.cancel_button.disabled = False, True

    def _on_row(self, i, row):
        self.rows[i] = row
        self.progress.value = sum(r is not None for r in self.rows)
        self.status.value = f"{self.progress.value} of {len(self.rows)} file(s) finished"
        self._refresh_table()

    def _refresh_table(self, paths=None):
        options = []
        for i, row in enumerate(self.rows):
            if row is None:
                name = os.path.basename(str(paths[i])) if paths is not None else f"file {i}"
                options.append((f"{'waiting':<8} {name}", i))
                continue
            n = row.get("n_sources", -1)
            text = (f"{row['status']:<8} {os.path.basename(str(row['file']))}  "
                    f"{'' if n is None or n < 0 else f'{n} sources  '}"
                    f"{float(row.get('seconds', 0.0)):.1f} s  {row.get('message', '')}")
            options.append((text[:200], i))
        self.table.options = options

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def cancel(self):
        """Stop the batch: unfinished files are reported failed, the summary is written."""
        self._cancel.set()
        self.status.value = "cancelling..."

    def wait_idle(self, timeout=300):
        """Wait for the running batch to finish; False on timeout."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def open_output(self, index):
        """Load the processed FITS of row ``index`` into the builder."""
        if index is None or not (0 <= int(index) < len(self.rows)) or self.rows[int(index)] is None:
            raise InputError("select a finished file in the table first")
        row = self.rows[int(index)]
        fits_out = next((p for p in str(row.get("outputs", "")).split(";")
                         if p.endswith(".fits")), None)
        if fits_out is None:
            raise InputError(f"{os.path.basename(str(row['file']))} has no processed output "
                             f"({row['status']}: {row.get('message', '')})")
        self._builder.load(fits_out)
        return fits_out

    def _guard(self, fn, *args):
        try:
            fn(*args)
        except InputError as exc:
            self.status.value = error_html(exc)
