"""The exception family for problems a user causes.

Every bad file, bad parameter value or impossible combination of values raises
:class:`InputError`, a :class:`ValueError` whose message names the file or the
parameter, the value, and what is allowed. The widgets show that message beside
the control or the loader that caused it; anything else that escapes is a bug.
"""

__all__ = ["InputError", "Cancelled", "describe_choices"]


class InputError(ValueError):
    """A bad file or a bad value given by the user.

    Parameters
    ----------
    message : str
        What is wrong, in words: the file or parameter, the value, and what is
        allowed.
    param : str, optional
        The parameter at fault (the widgets put the message beside its control).
    stage : str, optional
        The stage whose parameter is at fault.
    """

    def __init__(self, message, *, param=None, stage=None):
        super().__init__(message)
        self.param = param
        self.stage = stage

    @property
    def message(self):
        return self.args[0] if self.args else ""


class Cancelled(Exception):
    """Work was superseded by a newer request (not an error of the user's)."""


def describe_choices(choices):
    """Return ``'a', 'b' or 'c'`` for a message listing valid choices."""
    items = [repr(c) for c in choices]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]
