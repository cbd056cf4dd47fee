"""A catalog table with sorting and row selection (ipywidgets only)."""

import html

import ipywidgets as w
import numpy as np

__all__ = ["CatalogTable"]

_PREFERRED = ("id", "label", "x_centroid", "y_centroid", "x_center", "y_center", "x_fit", "y_fit",
              "ra", "dec", "flux", "flux_fit", "flux_err", "segment_flux", "aperture_sum",
              "mag_ab", "flux_jy", "peak", "sharpness", "roundness1", "area", "semimajor_axis",
              "qfit", "flags")


def _fmt(value):
    if hasattr(value, "value") and not isinstance(value, (str, bytes)):
        value = value.value
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "nan"
        a = abs(value)
        return f"{value:.4g}" if (a >= 1e5 or (0 < a < 1e-3)) else f"{value:.4f}".rstrip("0").rstrip(".")
    if hasattr(value, "ra") and hasattr(value, "dec"):
        return f"{value.ra.deg:.5f},{value.dec.deg:+.5f}"
    return str(value)


def _cells(column, rows):
    """``_fmt`` of ``column``'s values at ``rows``, a column at a time.

    Formatting row by row (``catalog[i][name]``) took twice as long (14 ms
    for 522 DAOFIND sources, after every detection change, on the thread
    that also draws the new picture).
    """
    part = column[rows]
    if hasattr(part, "ra") and hasattr(part, "dec"):
        return [f"{r:.5f},{d:+.5f}" for r, d in zip(part.ra.deg.tolist(), part.dec.deg.tolist())]
    mask = np.ma.getmaskarray(part) if np.ma.isMaskedArray(part) else None
    values = np.asarray(getattr(part, "value", part))
    if values.ndim != 1:
        return [_fmt(part[k]) for k in range(len(rows))]
    texts = [_fmt(v) for v in (values if values.dtype.kind == "f" else values.tolist())]
    if mask is not None and mask.any():
        texts = ["--" if m else t for t, m in zip(texts, mask.tolist())]
    return texts


class CatalogTable(w.VBox):
    """Show a catalog; sort by a column; select rows (two-way with the image view).

    Rows are identified by their index in the catalog as given (not as
    sorted), so the image view and the table agree on what is selected.
    """

    def __init__(self, catalog=None, *, max_rows=2000, rows=12):
        self.max_rows = max_rows
        self.catalog = None
        self._callbacks = []
        self._muted = False
        self.sort_by = w.Dropdown(description="sort by", options=["(catalog order)"],
                                  layout=w.Layout(width="260px"))
        self.descending = w.ToggleButton(value=False, description="descending",
                                         icon="sort-amount-desc", layout=w.Layout(width="120px"))
        self.summary = w.HTML("no catalog")
        self.header = w.HTML("")
        self.list = w.SelectMultiple(options=[], rows=rows, layout=w.Layout(width="100%"))
        self.list.add_class("jw-catalog-rows")
        style = w.HTML("<style>.jw-catalog-rows select, .jw-catalog-header pre "
                       "{font-family: monospace; font-size: 12px; white-space: pre;}</style>")
        self.header.add_class("jw-catalog-header")
        self.sort_by.observe(lambda _: self._refill(), "value")
        self.descending.observe(lambda _: self._refill(), "value")
        self.list.observe(self._on_list, "value")
        super().__init__([style, w.HBox([self.sort_by, self.descending, self.summary]),
                          self.header, self.list])
        self.add_class("jw-catalog-table")
        self.set_catalog(catalog)

    def on_select(self, callback):
        """Call ``callback(indices)`` when the user selects rows here."""
        self._callbacks.append(callback)

    def set_catalog(self, catalog):
        self.catalog = catalog
        if catalog is None:
            self.summary.value = "no catalog: add a source_detection stage"
            self.sort_by.options = ["(catalog order)"]
        else:
            n = len(catalog)
            self.summary.value = f"{n} source{'s' if n != 1 else ''}" + (
                f" (first {self.max_rows} shown)" if n > self.max_rows else "")
            numeric = [c for c in catalog.colnames
                       if getattr(catalog[c], "dtype", np.dtype(object)).kind in "iuf"
                       and catalog[c].ndim == 1]
            current = self.sort_by.value
            self._muted = True
            try:
                self.sort_by.options = ["(catalog order)"] + numeric
                self.sort_by.value = current if current in numeric else "(catalog order)"
            finally:
                self._muted = False
        self._refill()

    @property
    def columns(self):
        if self.catalog is None:
            return []
        cols = [c for c in _PREFERRED if c in self.catalog.colnames]
        return cols[:10] or self.catalog.colnames[:10]

    def order(self):
        """Row indices in display order."""
        if self.catalog is None:
            return np.zeros(0, int)
        n = len(self.catalog)
        key = self.sort_by.value
        if key in (None, "(catalog order)") or key not in self.catalog.colnames:
            idx = np.arange(n)
        else:
            values = np.asarray(getattr(self.catalog[key], "value", self.catalog[key]), float)
            idx = np.argsort(np.where(np.isfinite(values), values, np.inf), kind="stable")
        if self.descending.value:
            idx = idx[::-1]
        return idx[: self.max_rows]

    def _refill(self):
        if self._muted:
            return
        cols = self.columns
        width = 13
        self.header.value = ("<pre>" + html.escape("".join(c[:width - 1].ljust(width)
                                                          for c in cols)) + "</pre>"
                             if cols else "")
        options = []
        if self.catalog is not None:
            rows = self.order()
            cells = [_cells(self.catalog[c], rows) for c in cols]
            options = [("".join(cell[:width - 1].ljust(width) for cell in texts), int(i))
                       for i, texts in zip(rows.tolist(), zip(*cells))]
        selected = [i for i in self.list.value if any(i == o[1] for o in options)]
        self._muted = True
        try:
            self.list.options = options
            self.list.value = tuple(selected)
        finally:
            self._muted = False

    def select(self, indices, *, notify=False):
        """Select rows by catalog index (from the image view or code)."""
        valid = {o[1] for o in self.list.options}
        self._muted = True
        try:
            self.list.value = tuple(int(i) for i in indices if int(i) in valid)
        finally:
            self._muted = False
        if notify:
            self._emit()

    @property
    def selected(self):
        return list(self.list.value)

    def _on_list(self, change):
        if not self._muted:
            self._emit()

    def _emit(self):
        for cb in list(self._callbacks):
            cb(self.selected)
