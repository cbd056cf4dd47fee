"""HTML pieces the panels share."""

import html

__all__ = ["error_html"]


def error_html(text):
    """``text`` (a message or an exception), HTML-escaped, as a red line."""
    return f'<span style="color:#c0392b">{html.escape(str(text))}</span>'
