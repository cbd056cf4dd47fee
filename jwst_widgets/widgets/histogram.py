"""The histogram of the shown image, with the display limits drawn and settable."""

import bqplot as bq
import ipywidgets as w
import numpy as np

from ..errors import InputError
from ._sync import hold_sync

__all__ = ["Histogram"]


class Histogram(w.VBox):
    """Histogram of the view's image with the interval's limits.

    Drag across the histogram (a brush) to set new limits, or type them in
    the boxes; either sets ``view.interval = (vmin, vmax)``.
    """

    def __init__(self, view, *, bins=128, width=420, height=180, max_samples=200_000):
        self.view = view
        self.bins = bins
        self.max_samples = max_samples
        self._key = None
        # counts are drawn as log10(1 + N) on a linear scale: bars cannot start
        # at zero on a logarithmic scale.
        self.xs = bq.LinearScale(min=0.0, max=1.0)
        self.ys = bq.LinearScale(min=0.0, max=1.0)
        self.bars = bq.Bars(x=np.linspace(0, 1, 4), y=np.zeros(4),
                            scales={"x": self.xs, "y": self.ys}, colors=["#4a90d9"],
                            padding=0.0, stroke_width=0)
        self.lines = bq.Lines(x=[[0.0, 0.0], [1.0, 1.0]], y=[[0.0, 1.0], [0.0, 1.0]],
                              scales={"x": self.xs, "y": self.ys}, colors=["#e67e22", "#e74c3c"],
                              stroke_width=2)
        self.brush = bq.interacts.BrushIntervalSelector(scale=self.xs, marks=[self.bars],
                                                       color="#e67e22")
        self.figure = bq.Figure(
            marks=[self.bars, self.lines],
            axes=[bq.Axis(scale=self.xs, num_ticks=5, tick_format=".3g"),
                  bq.Axis(scale=self.ys, side="left", num_ticks=3, tick_format=".1f",
                          label="log10 N")],
            interaction=self.brush, fig_margin=dict(top=6, bottom=26, left=52, right=8),
            animation_duration=0, layout=w.Layout(width=f"{width}px", height=f"{height}px"))
        self.figure.add_class("jw-histogram")
        self.vmin = w.FloatText(description="vmin", layout=w.Layout(width="180px"))
        self.vmax = w.FloatText(description="vmax", layout=w.Layout(width="180px"))
        self.apply = w.Button(description="set limits", layout=w.Layout(width="100px"))
        self.message = w.HTML("")
        self.apply.on_click(lambda _: self.set_limits(self.vmin.value, self.vmax.value))
        self.brush.observe(self._on_brush, "brushing")
        super().__init__([self.figure, w.HBox([self.vmin, self.vmax, self.apply]), self.message])
        self.add_class("jw-histogram-panel")
        view.on_rendered(self._on_rendered)

    def set_limits(self, vmin, vmax):
        """Set the view's interval to (vmin, vmax); a bad pair shows its message here."""
        try:
            self.view.interval = (vmin, vmax)
            self.message.value = ""
        except InputError as exc:
            self.message.value = f'<span style="color:#c0392b">{exc}</span>'

    def _on_brush(self, change):
        if change["new"]:  # still dragging
            return
        sel = self.brush.selected
        if sel is not None and len(sel) == 2 and sel[0] != sel[1]:
            self.set_limits(float(min(sel)), float(max(sel)))

    def _on_rendered(self, view):
        image = view.image
        limits = view.limits
        if image is None or limits is None:
            return
        key = image.key
        with hold_sync(self.bars, self.lines, self.xs, self.ys):
            if key != self._key:
                self._key = key
                counts, edges = self._histogram(image, limits)
                centers = 0.5 * (edges[:-1] + edges[1:])
                logn = np.log10(1.0 + counts)
                self.bars.x, self.bars.y = centers, logn
                self._top = float(max(logn.max(), 1.0)) * 1.05
                self.xs.min, self.xs.max = float(edges[0]), float(edges[-1])
                self.ys.min, self.ys.max = 0.0, self._top
            lo, hi = limits
            self.lines.x = [[lo, lo], [hi, hi]]
            self.lines.y = [[0.0, self._top], [0.0, self._top]]
        self.vmin.value, self.vmax.value = float(lo), float(hi)

    def _histogram(self, image, limits):
        data = image.data
        step = max(1, int(np.sqrt(data.size / self.max_samples)))
        sample = np.asarray(data[::step, ::step], dtype=np.float32)
        good = np.isfinite(sample) & ~image.mask[::step, ::step]
        values = sample[good]
        if values.size == 0:
            return np.zeros(self.bins), np.linspace(0, 1, self.bins + 1)
        lo, hi = np.percentile(values, [0.05, 99.95])
        span = limits[1] - limits[0]
        lo = min(lo, limits[0] - 0.1 * span)
        hi = max(hi, limits[1] + 0.1 * span)
        if not hi > lo:
            hi = lo + 1.0
        return np.histogram(values, bins=self.bins, range=(lo, hi))
