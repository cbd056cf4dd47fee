"""The statistics tab: robust statistics of the shown image or of the view's box."""

import html

import ipywidgets as w

from ..errors import InputError
from ._html import error_html

__all__ = ["StatisticsPanel"]

_ROWS = (("mean", "sigma-clipped mean"), ("median", "sigma-clipped median"),
         ("std", "sigma-clipped std"), ("biweight_location", "biweight location"),
         ("biweight_scale", "biweight scale"), ("mad_std", "MAD std"), ("min", "min"),
         ("max", "max"), ("n_pixels", "pixels used"), ("n_nan", "NaN / inf pixels"),
         ("n_masked", "masked pixels"))


class StatisticsPanel(w.VBox):
    """Robust statistics (the ``statistics`` stage's function) on demand."""

    def __init__(self, builder):
        self._builder = builder
        self.region = w.ToggleButtons(options=[("whole image", "image"), ("view box", "view")],
                                      value="image")
        self.sigma = w.BoundedFloatText(value=3.0, min=0.5, max=10.0, step=0.1,
                                        description="sigma", layout=w.Layout(width="160px"))
        self.button = w.Button(description="compute", icon="calculator")
        self.button.on_click(lambda _: self._compute())
        self.output = w.HTML("")
        self.output.add_class("jw-statistics")
        self.values = None
        super().__init__([w.HBox([self.region, self.sigma, self.button]), self.output])

    def compute(self, region="image", sigma=3.0):
        """Statistics of the shown image (``region="image"``) or of the view's box (``"view"``)."""
        from ..processing.stats import robust_statistics

        view = self._builder.view
        image = view.image
        if image is None:
            raise InputError("no image is shown")
        box = None
        if region == "view":
            ny, nx = image.data.shape
            x0, x1, y0, y1 = view.view_range
            box = [max(0, int(x0 + 0.5)), min(nx, int(x1 + 0.5) + 1),
                   max(0, int(y0 + 0.5)), min(ny, int(y1 + 0.5) + 1)]
        self.values = robust_statistics(image.data, mask=image.mask, box=box, sigma=sigma)
        unit = f" {image.unit.to_string()}" if image.unit is not None else ""
        rows = "".join(
            f"<tr><td>{label}</td><td style='text-align:right'>"
            f"{_fmt(self.values.get(key))}{'' if key.startswith('n_') else unit}</td></tr>"
            for key, label in _ROWS if key in self.values)
        where = "whole image" if box is None else f"box x {box[0]}:{box[1]}, y {box[2]}:{box[3]}"
        self.output.value = (f"<p>{html.escape(where)}</p>"
                             f"<table class='jw-stats-table'>{rows}</table>")
        return self.values

    def _compute(self):
        try:
            self.compute(self.region.value, self.sigma.value)
        except InputError as exc:
            self.output.value = error_html(exc)


def _fmt(v):
    if isinstance(v, (int,)) or (hasattr(v, "is_integer") and isinstance(v, int)):
        return str(v)
    try:
        return f"{float(v):.6g}"
    except (TypeError, ValueError):
        return html.escape(str(v))
