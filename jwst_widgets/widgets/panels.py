"""One panel per stage: its controls, status, time, and the buttons to arrange it."""

import html

import ipywidgets as w

from .controls import make_controls

__all__ = ["StagePanel"]


class StagePanel(w.VBox):
    """The panel of one pipeline stage.

    The panel holds no logic of its own: every button and control calls the
    builder's public methods (``set_params``, ``remove_stage``,
    ``move_stage``, ``enable_stage``, ``show_stage``) with this panel's
    current position.

    Attributes
    ----------
    controls : dict
        The parameter controls by parameter name
        (:class:`~jwst_widgets.widgets.controls.ParamControl`).
    status : ipywidgets.HTML
        The last run time and state, or the stage's error in words.
    """

    def __init__(self, builder, stage):
        self._builder = builder
        self.uid = stage.uid
        self.spec = stage.spec
        title = w.HTML(f"<b>{html.escape(stage.spec.name)}</b>",
                       tooltip=stage.spec.description, layout=w.Layout(width="190px"))
        self.enabled = w.Checkbox(value=stage.enabled, description="on", indent=False,
                                  layout=w.Layout(width="48px"))
        self.enabled.observe(lambda ch: builder.enable_stage(self.index, ch["new"]), "value")
        buttons = []
        for icon, tip, action in (("eye", "show this stage's output", self._show),
                                  ("arrow-up", "move up", lambda _: self._move(-1)),
                                  ("arrow-down", "move down", lambda _: self._move(+1)),
                                  ("trash", "remove this stage", self._remove)):
            b = w.Button(icon=icon, tooltip=tip, layout=w.Layout(width="34px"))
            b.on_click(action)
            buttons.append(b)
        self.show_button = buttons[0]
        self.status = w.HTML("", layout=w.Layout(min_height="20px"))
        self.status.add_class("jw-stage-status")
        self.controls = make_controls(stage.spec, stage.params, self._on_control)
        header = w.HBox([title, self.enabled, *buttons], layout=w.Layout(align_items="center"))
        body = w.VBox(list(self.controls.values()))
        super().__init__([header, body, self.status],
                         layout=w.Layout(border="1px solid #ccc", padding="4px", margin="2px 0"))
        self.add_class("jw-stage-panel")
        self.add_class(f"jw-stage-{stage.spec.name}")

    @property
    def index(self):
        return self._builder._panel_index(self)

    @property
    def name(self):
        return self.spec.name

    def _on_control(self, name, value):
        self._builder._on_control(self, name, value)

    def _show(self, _):
        self._builder.show_stage(self.index)

    def _move(self, step):
        i = self.index
        j = min(max(i + step, 0), len(self._builder.panels) - 1)
        if j != i:
            self._builder.move_stage(i, j)

    def _remove(self, _):
        self._builder.remove_stage(self.index)

    # -- shown by the builder ------------------------------------------------------------
    def set_values(self, params):
        for name, value in params.items():
            if name in self.controls:
                self.controls[name].set_value(value)

    def clear_errors(self):
        for c in self.controls.values():
            c.show_error("")

    def show_error(self, message, param=None):
        """Show a message beside the control of ``param`` (or in the status line)."""
        if param in self.controls:
            self.controls[param].show_error(message)
        self.set_status(message, error=True)

    def set_status(self, text, *, error=False, busy=False):
        color = "#c0392b" if error else ("#888" if busy else "#2c7a2c")
        self.status.value = f'<span style="color:{color}">{html.escape(text)}</span>' if text else ""

    @property
    def status_text(self):
        import re
        return html.unescape(re.sub(r"<[^>]+>", "", self.status.value))
