"""Work off the kernel's message loop, where the newest request wins.

A :class:`LatestWorker` owns one daemon thread. ``submit(job)`` replaces any
job not yet started; a job already running is asked to stop through its
``cancelled()`` callable at its next check. So a burst of slider moves costs
at most the job running now plus the last one, and nothing stale is applied
after something newer: every job gets a generation number and may only
apply its result while it is still the newest (``is_current``).
"""

import threading
import traceback

__all__ = ["LatestWorker"]


class LatestWorker:
    """Run submitted jobs in one background thread; newer jobs supersede older ones.

    Parameters
    ----------
    name : str
        The thread's name.
    on_error : callable, optional
        Called with ``(exception, traceback_text)`` when a job raises
        something other than the exceptions it handles itself.
    """

    def __init__(self, name="jwst-widgets-worker", on_error=None):
        self._cond = threading.Condition()
        self._pending = None
        self._generation = 0
        self._running = None
        self._busy = False
        self._closed = False
        self._on_error = on_error
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def generation(self):
        return self._generation

    def submit(self, job):
        """Queue ``job(generation, cancelled)``; returns its generation."""
        with self._cond:
            self._generation += 1
            gen = self._generation
            self._pending = (gen, job)
            self._cond.notify_all()
            return gen

    def is_current(self, generation):
        """True while no newer job has been submitted."""
        return generation == self._generation

    def _loop(self):
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                gen, job = self._pending
                self._pending = None
                self._busy = True
            try:
                job(gen, lambda g=gen: g != self._generation or self._closed)
            except Exception as exc:  # a job's own errors are its business
                if self._on_error is not None:
                    try:
                        self._on_error(exc, traceback.format_exc())
                    except Exception:  # pragma: no cover
                        pass
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def wait_idle(self, timeout=None):
        """Wait until no job is pending or running; True if idle, False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy,
                                       timeout=timeout)

    @property
    def idle(self):
        with self._cond:
            return self._pending is None and not self._busy

    def close(self):
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
