"""Batching the messages of several widgets."""

import contextlib

__all__ = ["hold_sync"]


@contextlib.contextmanager
def hold_sync(*widgets):
    """Send the changes each widget gets in the block as one message per widget.

    ``Widget.hold_sync`` batches only that widget's own traits: a bqplot
    figure's marks and scales are widgets of their own, so
    ``figure.hold_sync()`` does not batch a change of a mark's ``x`` and
    ``y``. Each message makes the front end redraw, so a change of several
    traits of a mark or a scale sent one by one is drawn several times.
    """
    with contextlib.ExitStack() as stack:
        for widget in widgets:
            stack.enter_context(widget.hold_sync())
        yield
