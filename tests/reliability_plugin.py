"""Counts the reliability corpus and prints its summary at the end of the run.

Register in ``tests/conftest.py``: ``pytest_plugins = ["mast_plugin", "reliability_plugin"]``.

Tests take the ``reliability_tally`` fixture and call
``tally.record(family, outcome)`` for every bad or odd input they try:
``family`` is where it went (``"file"``, ``"stage"``, ``"value"``,
``"builder"``...), ``outcome`` what happened: ``"ok"`` (it loaded or ran and
met its checks), ``"refused"`` (an InputError with a message), ``"other"``
(any other exception: a bug) or ``"modified"`` (an input changed: a bug).
The terminal summary prints one line, e.g.::

    reliability corpus: 812 bad or odd inputs (file 296, stage 352, value 164):
    430 ran or loaded, 382 refused with InputError, 0 other exceptions, 0 modified inputs
"""

import collections
import threading

import pytest

__all__ = ["Tally", "reliability_tally"]

_KEY = pytest.StashKey()


class Tally:
    """Thread-safe counts of (family, outcome)."""

    OUTCOMES = ("ok", "refused", "other", "modified")

    def __init__(self):
        self.counts = collections.Counter()
        self._lock = threading.Lock()

    def record(self, family, outcome, n=1):
        if outcome not in self.OUTCOMES:
            raise ValueError(f"outcome must be one of {self.OUTCOMES}; got {outcome!r}")
        with self._lock:
            self.counts[(family, outcome)] += n

    def total(self, family=None, outcome=None):
        return sum(n for (f, o), n in self.counts.items()
                   if (family is None or f == family) and (outcome is None or o == outcome))

    def summary(self):
        families = sorted({f for f, _ in self.counts})
        parts = ", ".join(f"{f} {self.total(family=f)}" for f in families)
        return (f"reliability corpus: {self.total()} bad or odd inputs ({parts}): "
                f"{self.total(outcome='ok')} ran or loaded, "
                f"{self.total(outcome='refused')} refused with InputError, "
                f"{self.total(outcome='other')} other exceptions, "
                f"{self.total(outcome='modified')} modified inputs")


def tally_of(config):
    """The run's tally (one per pytest session, kept in ``config.stash``)."""
    tally = config.stash.get(_KEY, None)
    if tally is None:
        tally = config.stash[_KEY] = Tally()
    return tally


@pytest.fixture
def reliability_tally(request):
    """The run's :class:`Tally` of the reliability corpus."""
    return tally_of(request.config)


def pytest_sessionfinish(session):
    """Under pytest-xdist, a worker hands its counts to the controller."""
    out = getattr(session.config, "workeroutput", None)
    tally = session.config.stash.get(_KEY, None)
    if out is not None and tally is not None:
        out["reliability_tally"] = [[f, o, n] for (f, o), n in tally.counts.items()]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist: add a finished worker's counts to the controller's."""
    counts = getattr(node, "workeroutput", {}).get("reliability_tally", [])
    tally = tally_of(node.config)
    for family, outcome, n in counts:
        tally.record(family, outcome, n)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tally = config.stash.get(_KEY, None)
    if tally is not None and tally.total():
        terminalreporter.write_sep("-", "reliability corpus")
        terminalreporter.write_line(tally.summary())
