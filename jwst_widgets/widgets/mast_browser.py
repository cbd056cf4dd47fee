"""The MAST browser: search JWST observations, choose products, download, open.

A thin shell over :class:`jwst_widgets.mast.MastClient`: each button calls a
public method of :class:`MastBrowser` (``search``, ``list_products``,
``download``, ``open_files``, ``login``), which can be called from code as well.
Work runs on a background thread so the notebook stays live (a download can
be cancelled); errors are shown in words in the status line, never as a
traceback.
"""

import html
import logging
import threading

import ipywidgets as w
import numpy as np

from ..errors import Cancelled, InputError
from ..mast import CALIB_LEVELS, MastClient, format_bytes

__all__ = ["MastBrowser"]

_log = logging.getLogger(__name__)

_INSTRUMENTS = ["NIRCAM/IMAGE", "NIRISS/IMAGE", "MIRI/IMAGE", "FGS/IMAGE", "NIRCAM", "NIRISS",
                "MIRI", "NIRSPEC", "FGS"]
_PRODUCT_TYPES = [("cal + i2d", ("cal", "i2d")), ("i2d (combined)", ("i2d",)),
                  ("cal (calibrated exposure)", ("cal",)), ("rate", ("rate",)),
                  ("uncal (raw ramps)", ("uncal",)), ("all FITS", ())]
_LEVELS = [("any", None), ("3: combined (i2d)", 3), ("2: exposures (cal)", 2), ("1: raw", 1)]
_RIGHTS = [("public and proprietary", "any"), ("public only", "public"),
           ("proprietary only", "proprietary")]
_MAX_ROWS = 200
_WIDE = w.Layout(width="100%")


def _text(value):
    """A table cell as text ('' for masked or missing values)."""
    text = str(value)
    return "" if text in ("--", "nan", "None") else text


class MastBrowser(w.VBox):
    """Search MAST for JWST data, choose products, download and open them.

    Parameters
    ----------
    client : `~jwst_widgets.mast.MastClient`, optional
        The archive client (a new one by default).
    on_open : callable, optional
        Called as ``on_open(paths)`` by the "Open in pipeline builder" button
        with the downloaded files (the pipeline builder connects here).
    background : bool
        Run searches and downloads on a background thread (default True);
        :meth:`wait_idle` waits for them.
    cache_dir : str, optional
        Download cache of the new client (ignored when ``client`` is given).

    Attributes
    ----------
    observations, products : `~astropy.table.QTable` or None
        The latest search results and product list.
    paths : list of str
        The files of the latest download.
    error : str
        The latest error message ('' when the latest action succeeded).

    Notes
    -----
    The MAST token typed into the password field is sent to the kernel when
    "Log in" is pressed and the field is emptied at once, so the token is not
    kept in the widget's state (which a saved notebook may store). It then
    lives only in the client's session, in memory.

    Examples
    --------
    >>> from jwst_widgets.widgets.mast_browser import MastBrowser
    >>> browser = MastBrowser(on_open=lambda paths: print(paths))   # doctest: +SKIP
    >>> browser                                                     # doctest: +SKIP
    >>> browser.target.value = "NGC 3132"                           # doctest: +SKIP
    >>> browser.search(); browser.results.value = (0,)              # doctest: +SKIP
    """

    @property
    def client(self):
        """The archive client, made when first needed (importing astroquery takes a second)."""
        if self._client is None:
            self._client = MastClient(cache_dir=self._cache_dir)
        return self._client

    def __init__(self, client=None, *, on_open=None, background=True, cache_dir=None,
                 **kwargs):
        self._client = client
        self._cache_dir = cache_dir
        self.on_open = on_open
        self.background = bool(background)
        self.observations = None
        self.products = None
        self.paths = []
        self.error = ""
        self._worker = None
        self._busy = False
        self._cancel = threading.Event()
        self._shown_permille = -1

        label = {"description_width": "90px"}
        self.target = w.Text(description="Target", placeholder="a name: NGC 3132", style=label)
        self.ra = w.Text(description="RA", placeholder="151.7571 or 10:07:01.7", style=label)
        self.dec = w.Text(description="Dec", placeholder="-40.4364 or -40:26:11", style=label)
        self.radius = w.BoundedFloatText(value=3.0, min=0.01, max=600.0, step=0.5,
                                         description="Radius (′)", style=label)
        self.instrument = w.Combobox(value="NIRCAM/IMAGE", options=_INSTRUMENTS,
                                     ensure_option=False, description="Instrument",
                                     placeholder="any", style=label)
        self.filters = w.Text(description="Filters", placeholder="F200W, F444W (any)",
                              style=label)
        self.program = w.Text(description="Program", placeholder="2733 (any)", style=label)
        self.calib_level = w.Dropdown(options=_LEVELS, value=None, description="Level",
                                      style=label)
        self.product_type = w.Dropdown(options=_PRODUCT_TYPES, value=("cal", "i2d"),
                                       description="Products", style=label)
        self.date_start = w.DatePicker(description="From", style=label)
        self.date_end = w.DatePicker(description="To", style=label)
        self.rights = w.Dropdown(options=_RIGHTS, value="any", description="Data", style=label)
        self.search_button = w.Button(description="Search", icon="search",
                                      button_style="primary")

        self.token = w.Password(description="MAST token", placeholder="for proprietary data",
                                style=label)
        self.login_button = w.Button(description="Log in", icon="key")

        self.results_table = w.HTML()
        self.results = w.SelectMultiple(options=[], rows=6, description="Observations",
                                        style=label, layout=_WIDE)
        self.list_button = w.Button(description="List products", icon="list", disabled=True)
        self.product_list = w.SelectMultiple(options=[], rows=6, description="Files",
                                             style=label, layout=_WIDE)
        self.download_button = w.Button(description="Download", icon="download",
                                        disabled=True)
        self.cancel_button = w.Button(description="Cancel", icon="stop", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=1000, description="",
                                      layout=w.Layout(width="50%"))
        self.progress_label = w.Label("")
        self.open_button = w.Button(description="Open in pipeline builder", icon="external-link",
                                    disabled=True, layout=w.Layout(width="auto"))
        self.status = w.HTML("")

        form = w.VBox([
            w.HBox([self.target, self.ra, self.dec]),
            w.HBox([self.radius, self.instrument, self.filters]),
            w.HBox([self.program, self.calib_level, self.product_type]),
            w.HBox([self.date_start, self.date_end, self.rights]),
            w.HBox([self.search_button, self.token, self.login_button]),
        ])
        super().__init__([
            form, self.status, self.results_table, self.results, self.list_button,
            self.product_list,
            w.HBox([self.download_button, self.cancel_button, self.progress,
                    self.progress_label]),
            self.open_button,
        ], **kwargs)

        self.search_button.on_click(lambda _: self._run(self.search, "searching"))
        self.list_button.on_click(lambda _: self._run(self.list_products, "listing products"))
        self.download_button.on_click(lambda _: self._run(self.download, "downloading"))
        self.open_button.on_click(lambda _: self._run(self.open_files, "opening",
                                                      background=False))
        self.login_button.on_click(lambda _: self._run(self._login_or_out, "logging in",
                                                       background=False))
        self.cancel_button.on_click(lambda _: self.cancel())
        self.results.observe(self._selection_changed, names="value")
        self.product_list.observe(self._selection_changed, names="value")

    # -- public, scriptable actions ------------------------------------------

    def criteria(self):
        """The search options the form holds, as keywords of ``MastClient.search``."""
        out = {}
        if self.target.value.strip():
            out["target"] = self.target.value.strip()
        if self.ra.value.strip() or self.dec.value.strip():
            out["ra"] = self.ra.value.strip() or None
            out["dec"] = self.dec.value.strip() or None
        out["radius"] = self.radius.value / 60.0
        if self.instrument.value.strip():
            out["instrument"] = self.instrument.value.strip()
        names = [f for f in self.filters.value.replace(";", ",").split(",") if f.strip()]
        if names:
            out["filters"] = names
        programs = [p for p in self.program.value.replace(";", ",").split(",") if p.strip()]
        if programs:
            out["program"] = programs
        if self.calib_level.value in CALIB_LEVELS:
            out["calib_level"] = self.calib_level.value
        if self.date_start.value is not None:
            out["date_start"] = self.date_start.value.isoformat()
        if self.date_end.value is not None:
            out["date_end"] = self.date_end.value.isoformat()
        out["rights"] = self.rights.value
        return out

    def search(self):
        """Search with the form's options; fill the results table."""
        self._say("Searching MAST…")
        table = self.client.search(**self.criteria())
        self.observations = table
        self.products = None
        self.product_list.options = []
        self.results.options = [
            (f"{_text(r['obs_id'])}  {_text(r['filters'])}  L{_text(r['calib_level'])}", i)
            for i, r in enumerate(table[:_MAX_ROWS])]
        self.results_table.value = self._results_html(table)
        total = table.meta.get("rows_total", len(table))
        if len(table) == 0:
            self._say("No JWST observation matches: widen the radius or remove a filter.")
        else:
            more = f" (the first {len(table)} of {total})" if total > len(table) else ""
            self._say(f"{len(table)} observations{more}: choose some, then List products.")
        return table

    def list_products(self):
        """List the products of the chosen observations (of the chosen type)."""
        if self.observations is None or not self.results.value:
            raise InputError("choose at least one observation in the results first",
                             param="observations")
        rows = self.observations[list(self.results.value)]
        products = self.client.products(rows, product_type=list(self.product_type.value))
        self.products = products
        self.product_list.options = [
            (f"{_text(p['productFilename'])}  ({format_bytes(p['size'])})"
             + ("  ✓ cached" if self.client.is_cached(p) else ""), i)
            for i, p in enumerate(products)]
        total = format_bytes(int(np.ma.filled(products["size"], 0).sum()))
        if len(products) == 0:
            self._say("These observations have no products of this type: choose another "
                      "product type.")
        else:
            self._say(f"{len(products)} files ({total}): choose the ones to download.")
        return products

    def download(self):
        """Download the chosen products (resuming partial files); return their paths."""
        if self.products is None or not self.product_list.value:
            raise InputError("choose at least one file in the product list first",
                             param="products")
        rows = self.products[list(self.product_list.value)]
        self._shown_permille = -1
        self.progress.value = 0
        self.cancel_button.disabled = False
        cancel = self._cancel if self.busy else threading.Event()
        try:
            paths = self.client.download(rows, progress=self._on_progress, cancel=cancel)
        finally:
            self.cancel_button.disabled = True
        self.paths = paths
        self.progress.value = self.progress.max
        self._say(f"Downloaded {len(paths)} file{'s' if len(paths) != 1 else ''} to "
                  f"{self.client.cache_dir}.")
        return paths

    def open_files(self):
        """Give the downloaded files to ``on_open`` (the pipeline builder)."""
        if not self.paths:
            raise InputError("download files first", param="paths")
        if self.on_open is None:
            raise InputError("no pipeline builder is connected (on_open is None); the files "
                             f"are at {', '.join(self.paths)}", param="on_open")
        self.on_open(list(self.paths))
        self._say(f"Opened {len(self.paths)} file{'s' if len(self.paths) != 1 else ''}.")

    def login(self, token=None):
        """Log in with a MAST token (the token field is emptied at once)."""
        if token is None:
            token = self.token.value
        self.token.value = ""
        self.client.login(token)
        del token
        self.login_button.description = "Log out"
        self._say("Logged in to MAST: proprietary data you have access to can be downloaded.")

    def logout(self):
        """Forget the login."""
        self.client.logout()
        self.login_button.description = "Log in"
        self._say("Logged out of MAST.")

    def cancel(self):
        """Stop a download in progress (its part is kept and resumes next time)."""
        self._cancel.set()

    @property
    def busy(self):
        """True while an action runs."""
        return self._busy

    def wait_idle(self, timeout=None):
        """Wait until the action in progress ends; return True when idle."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return not self.busy

    # -- internals -------------------------------------------------------------

    def _login_or_out(self):
        if self.client.authenticated:
            self.logout()
        else:
            self.login()

    def _run(self, action, doing, background=None):
        """Run a button's action: busy state, then errors shown in words."""
        if self.busy:
            self._say("Busy: wait for the current action to end (or Cancel a download).",
                      error=True)
            return
        background = self.background if background is None else background
        self._cancel = threading.Event()          # one per action: Cancel stops this one
        self._set_busy(True)

        def work():
            try:
                action()
            except Cancelled as exc:
                self._say(f"Cancelled: {exc}", error=True)
            except InputError as exc:
                self._say(str(exc), error=True)
            except Exception as exc:  # a bug: say it in words, keep the widget alive
                _log.exception("MastBrowser: unexpected error while %s", doing)
                self._say(f"Unexpected error while {doing}: {type(exc).__name__}: {exc}",
                          error=True)
            finally:
                self._set_busy(False)

        if background:
            self._worker = threading.Thread(target=work, name=f"mast-{doing}", daemon=True)
            self._worker.start()
        else:
            work()

    def _set_busy(self, busy):
        self._busy = busy
        self.search_button.disabled = busy
        self.login_button.disabled = busy
        if busy:
            self.list_button.disabled = self.download_button.disabled = True
            self.open_button.disabled = True
        else:
            self._selection_changed()
            self.open_button.disabled = not self.paths

    def _selection_changed(self, change=None):
        if self.busy:
            return
        self.list_button.disabled = not self.results.value
        self.download_button.disabled = not self.product_list.value

    def _say(self, message, *, error=False):
        self.error = message if error else ""
        color = "#b00020" if error else "inherit"
        self.status.value = f'<span style="color:{color}">{html.escape(message)}</span>'

    def _on_progress(self, done, total, name):
        permille = int(1000 * done / total) if total else 0
        if permille == self._shown_permille:
            return
        self._shown_permille = permille
        self.progress.value = min(permille, 1000)
        self.progress_label.value = f"{name}: {format_bytes(done)} of {format_bytes(total)}"

    @staticmethod
    def _results_html(table):
        from astropy.time import Time

        if len(table) == 0:
            return ""
        now = float(Time.now().mjd)
        head = ["#", "observation", "target", "instrument", "filters", "level", "exposure (s)",
                "start (UTC)", "data", "program"]
        rows = []
        for i, r in enumerate(table[:_MAX_ROWS]):
            start = Time(float(r["t_min"]), format="mjd").iso[:16] \
                if _text(r["t_min"]) else ""
            release = float(r["t_obs_release"]) if _text(r["t_obs_release"]) else None
            if release is None or release <= now:
                rights = "public"
            else:
                rights = "proprietary until " + Time(release, format="mjd").iso[:10]
            exptime = f"{float(r['t_exptime']):.0f}" if _text(r["t_exptime"]) else ""
            cells = [str(i), _text(r["obs_id"]), _text(r["target_name"]),
                     _text(r["instrument_name"]), _text(r["filters"]),
                     _text(r["calib_level"]), exptime, start, rights, _text(r["proposal_id"])]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                        + "</tr>")
        header = "".join(f"<th>{h}</th>" for h in head)
        return ('<div style="max-height:260px;overflow:auto"><table style="font-size:12px">'
                f"<thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
