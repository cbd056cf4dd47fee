"""Tabs whose content is made when the tab is first shown.

Every widget made in a kernel is a model the browser must be told about (a
comm message, with its layout and style models); a panel of a few dozen
widgets in a tab that is not shown yet costs tens of milliseconds on the
cell that makes the pipeline builder. A :class:`DeferredTab` stands in for
such a panel and makes it when its tab is first selected, or when code asks
for it (:meth:`DeferredTab.build`).
"""

import threading
import weakref

import ipywidgets as w

from ..errors import InputError
from ._html import error_html

__all__ = ["DeferredTab"]

#: One layout model for every deferred tab (a layout is a widget model too).
_LAYOUT = w.Layout(width="100%")


class DeferredTab(w.VBox):
    """A tab's box that makes its content the first time it is needed.

    Parameters
    ----------
    make : callable
        Called with no argument, once, to make the content (a widget).
    placeholder : sequence of widgets
        Shown until the content is made (default: nothing).

    Attributes
    ----------
    content : widget or None
        The content, None until made.

    Notes
    -----
    The content is made when the tab is selected in a :class:`ipywidgets.Tab`
    the box was :meth:`watch`-ed in (``PipelineBuilder.add_tab`` does it), or
    by :meth:`build`. A :class:`~jwst_widgets.InputError` raised while making
    it on selection is shown in words in the tab.

    Examples
    --------
    >>> import ipywidgets as w
    >>> tab = DeferredTab(lambda: w.Label("made"))
    >>> tab.content is None
    True
    >>> tab.build().value, tab.children == (tab.content,)
    ('made', True)
    """

    def __init__(self, make, placeholder=()):
        self.content = None
        self._make = make
        self._lock = threading.RLock()  # a selection and a call from code: made once
        super().__init__(list(placeholder), layout=_LAYOUT)

    def build(self):
        """Make the content now (if not made yet) and return it."""
        with self._lock:
            if self.content is None:
                content = self._make()
                self.content = content
                self.children = [content]
            return self.content

    def rebuild(self):
        """Close the content made (if any) and make it again."""
        with self._lock:
            old, self.content = self.content, None
            if old is not None:
                old.close()
                self.build()

    def watch(self, tabs):
        """Make the content when this box's tab of ``tabs`` is selected (now, if it is)."""
        me = weakref.ref(self)

        def on_select(change):
            tab = me()
            index = change["new"]
            if (tab is not None and tab.content is None and index is not None
                    and index < len(tabs.children) and tabs.children[index] is tab):
                tab._build_quietly()

        tabs.observe(on_select, "selected_index")
        on_select({"new": tabs.selected_index})

    def _build_quietly(self):
        try:
            self.build()
        except InputError as exc:
            self.children = [w.HTML(error_html(exc))]
