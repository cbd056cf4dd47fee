"""Controls generated from a stage's parameter schema.

Each :class:`~jwst_widgets.pipeline.schema.Param` becomes one control: a
slider with a text box for exact values (numbers), a dropdown (choices), a
checkbox (booleans) or four integer boxes (a pixel box). The control shows
the parameter's unit and doc, and an error line beside it. It never applies
a value itself: it calls ``on_change(name, value)``, and the owner decides
(and may call :meth:`ParamControl.show_error`).
"""

import math

import ipywidgets as w
from ipywidgets.widgets.widget_int import SliderStyle
from ipywidgets.widgets.widget_string import HTMLStyle, LabelStyle, TextStyle

__all__ = ["ParamControl", "make_controls"]

# Layouts are widget models too (a message each when a panel is made in a kernel):
# the controls share them. Nothing changes a control's layout after it is made.
_LABEL = w.Layout(width="124px", min_width="124px")
_TEXT = w.Layout(width="80px")
_SLIDER = w.Layout(width="180px")
_ERROR = w.Layout(margin="0 0 0 128px")
_UNIT = w.Layout(width="48px")
_ROW = w.Layout(align_items="center")
_CONTROL = w.Layout(margin="0")
_FREE_TEXT = w.Layout(width="220px")
_CHOICE = w.Layout(width="160px")
_BOX = w.Layout(width="60px")
# Styles likewise (each widget would otherwise make its own).
_LABEL_STYLE = LabelStyle()
_HTML_STYLE = HTMLStyle()
_TEXT_STYLE = TextStyle()
_SLIDER_STYLE = SliderStyle()


class ParamControl(w.VBox):
    """The control of one parameter: widget(s), unit, tooltip and an error line.

    Parameters
    ----------
    param : Param
        The declaration.
    value
        The current value.
    on_change : callable
        ``on_change(name, value)`` called when the user changes the value.
    """

    def __init__(self, param, value, on_change):
        self.param = param
        self._on_change = on_change
        self._muted = False
        self.error = w.HTML("", layout=_ERROR, style=_HTML_STYLE)
        self.error.add_class("jw-error")
        label = w.Label(param.name, layout=_LABEL, style=_LABEL_STYLE, tooltip=param.doc)
        widgets = self._build(param, value)
        unit = w.Label(param.unit or "", layout=_UNIT, style=_LABEL_STYLE)
        row = w.HBox([label, *widgets, unit], layout=_ROW)
        row.add_class(f"jw-param-{param.name}")
        super().__init__([row, self.error], layout=_CONTROL)
        self.add_class("jw-param")

    # -- building ------------------------------------------------------------
    def _build(self, p, value):
        if p.type == "boolean":
            self.widget = w.Checkbox(value=bool(value), indent=False, description="",
                                     tooltip=p.doc)
            self.widget.observe(self._from_widget, "value")
            self.text = None
            return [self.widget]
        if p.type == "string" and not p.choices:
            # free text (a file name, a list of star ids): typed, sent on Enter or blur
            self.widget = w.Text(value=value or "", continuous_update=False,
                                 layout=_FREE_TEXT, tooltip=p.doc)
            self.widget.observe(self._from_widget, "value")
            self.text = None
            return [self.widget]
        if p.type == "string":
            self.widget = w.Dropdown(options=list(p.choices or [value]), value=value,
                                     layout=_CHOICE, tooltip=p.doc)
            self.widget.observe(self._from_widget, "value")
            self.text = None
            return [self.widget]
        if p.type == "box":
            self.widget = None
            vals = value if value is not None else [None] * 4
            self.boxes = [w.Text(value="" if v is None else str(v), placeholder=n,
                                 layout=_BOX)
                          for n, v in zip(("x0", "x1", "y0", "y1"), vals)]
            for b in self.boxes:
                b.continuous_update = False
                b.observe(self._from_boxes, "value")
            self.text = None
            return self.boxes
        # numbers: a slider when bounded, and a text box for exact values
        self.text = w.Text(value=self._fmt(value), layout=_TEXT, style=_TEXT_STYLE,
                           continuous_update=False,
                           tooltip=p.doc)
        self.text.observe(self._from_text, "value")
        if p.min is not None and p.max is not None:
            cls = w.IntSlider if p.type == "integer" else w.FloatSlider
            kw = dict(min=p.min, max=p.max, step=p.step or (1 if p.type == "integer" else
                                                            (p.max - p.min) / 100),
                      readout=False, continuous_update=True, layout=_SLIDER,
                      style=_SLIDER_STYLE)
            if cls is w.FloatSlider:
                kw["readout_format"] = ".4g"
            start = next(v for v in (value, p.default, p.min) if v is not None)
            self.widget = cls(value=start, **kw)
            if p.nullable:
                self.text.placeholder = "auto"
            self.widget.observe(self._from_widget, "value")
            return [self.widget, self.text]
        self.widget = None
        return [self.text]

    def _fmt(self, value):
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.6g}"
        return str(value)

    # -- values ----------------------------------------------------------------
    @property
    def value(self):
        p = self.param
        if p.type == "box":
            return self._box_value()
        if p.type == "string" and not p.choices:
            return None if (self.widget.value == "" and p.nullable) else self.widget.value
        if self.widget is not None and p.type in ("boolean", "string"):
            return self.widget.value
        return self._parse(self.text.value)

    def set_value(self, value):
        """Show ``value`` without calling ``on_change`` (a change made elsewhere)."""
        self._muted = True
        try:
            p = self.param
            if p.type == "box":
                vals = value if value is not None else [None] * 4
                for b, v in zip(self.boxes, vals):
                    b.value = "" if v is None else str(v)
            elif p.type == "string" and not p.choices:
                self.widget.value = "" if value is None else str(value)
            elif p.type in ("boolean", "string"):
                self.widget.value = value
            else:
                self.text.value = self._fmt(value)
                if self.widget is not None and value is not None:
                    self.widget.value = min(max(value, self.widget.min), self.widget.max)
        finally:
            self._muted = False

    def show_error(self, message):
        """Show a message under the control (empty string clears it)."""
        self.error.value = (f'<span style="color:#c0392b">{_escape(message)}</span>'
                            if message else "")

    @property
    def error_text(self):
        return _unescape_tags(self.error.value)

    def _parse(self, text):
        text = text.strip()
        if text == "":
            return None
        try:
            number = float(text)
        except ValueError:
            return text  # validation will name the problem
        if self.param.type == "integer" and number.is_integer():
            return int(number)
        return number

    def _box_value(self):
        """None (all empty), four whole numbers, or the texts as typed (for the message)."""
        texts = [b.value.strip() for b in self.boxes]
        if all(t == "" for t in texts):
            return None
        out = []
        for t in texts:
            try:
                number = float(t)
            except ValueError:
                return texts
            if not (math.isfinite(number) and number.is_integer()):
                return texts
            out.append(int(number))
        return out

    # -- events ----------------------------------------------------------------
    def _emit(self, value):
        if not self._muted:
            self._on_change(self.param.name, value)

    def _from_widget(self, change):
        if self._muted:
            return
        if self.param.type == "string" and not self.param.choices:
            self._emit(self.value)
            return
        if self.text is not None:
            self._muted = True
            try:
                self.text.value = self._fmt(change["new"])
            finally:
                self._muted = False
        self._emit(change["new"])

    def _from_text(self, change):
        if self._muted:
            return
        value = self._parse(change["new"])
        if self.widget is not None and isinstance(value, (int, float)) and \
                self.widget.min <= value <= self.widget.max:
            self._muted = True
            try:
                self.widget.value = value
            finally:
                self._muted = False
        self._emit(value)

    def _from_boxes(self, change):
        if self._muted:
            return
        texts = [b.value.strip() for b in self.boxes]
        if any(t == "" for t in texts) and not all(t == "" for t in texts):
            # the box is being typed field by field: wait until it is whole
            self.show_error("give all of x0, x1, y0, y1 (or none, for the whole image)")
            return
        self._emit(self._box_value())


def make_controls(spec, params, on_change):
    """One :class:`ParamControl` per parameter of a stage, by name."""
    return {p.name: ParamControl(p, params.get(p.name, p.default), on_change)
            for p in spec.params}


def _escape(text):
    import html
    return html.escape(str(text))


def _unescape_tags(value):
    import html
    import re
    return html.unescape(re.sub(r"<[^>]+>", "", value))
