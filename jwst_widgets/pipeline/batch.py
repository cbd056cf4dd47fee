"""Batch runs: one recipe over many files on Dask.

Each input file is one task. The worker reads the file from its path, runs
the recipe (:func:`~jwst_widgets.pipeline.outputs.process_file`) and writes
the processed FITS and the catalog itself, atomically; only the summary row
(status, time, source count, message) travels back to the client. The client
then writes ``batch_summary.ecsv`` and ``catalog_all.ecsv`` in the output
directory.

Dask (``distributed``) is imported only when a batch runs.
"""

import contextlib
import datetime
import glob
import logging
import os
import sys
import time
import uuid
import warnings

from ..errors import InputError
from .outputs import output_paths

__all__ = ["run_batch", "expand_inputs", "FITS_SUFFIXES", "SUMMARY_NAME", "CATALOG_NAME"]

#: File name endings taken as FITS when a directory or a glob is expanded.
FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fts", ".fz", ".fits.fz")

SUMMARY_NAME = "batch_summary.ecsv"
CATALOG_NAME = "catalog_all.ecsv"
SUMMARY_COLUMNS = ("file", "status", "seconds", "n_sources", "outputs", "message")

_GLOB_CHARS = set("*?[")
_PARTIAL_PATTERN = ".jw-*.part"  # the temporary files of io.write.atomic_write
_MAX_WORKERS = 512
_WORKER_BYTES = 2 * 2**30  # memory a worker is given at least when sizing a local cluster


# -- inputs ---------------------------------------------------------------------
def _is_fits_name(path):
    return os.path.basename(path).lower().endswith(FITS_SUFFIXES)


def expand_inputs(patterns):
    """Expand files, directories and glob patterns to a list of input files.

    Parameters
    ----------
    patterns : str, os.PathLike or iterable of them
        Each a file (kept as given, whatever its name), a directory (its FITS
        files, not recursive) or a glob pattern (its matches whose names end
        like FITS files: ``.fits``, ``.fits.gz``, ``.fit``, ``.fts``,
        ``.fz``; ``**`` recurses).

    Returns
    -------
    list of str
        The files in the order given (each directory and pattern sorted),
        without duplicates. A path that does not exist and is no pattern is
        kept: the batch reports it as a failed file.

    Raises
    ------
    jwst_widgets.InputError
        When a pattern or a directory yields no FITS file, or nothing is given.

    Examples
    --------
    >>> from jwst_widgets.pipeline.batch import expand_inputs
    >>> expand_inputs(["data/*_cal.fits", "more/"])  # doctest: +SKIP
    ['data/jw01_cal.fits', 'data/jw02_cal.fits', 'more/a.fits']
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    files, seen = [], set()
    for pattern in patterns:
        pattern = os.fspath(pattern)
        if os.path.isdir(pattern):
            found = sorted(os.path.join(pattern, name) for name in os.listdir(pattern)
                           if _is_fits_name(name)
                           and os.path.isfile(os.path.join(pattern, name)))
            if not found:
                raise InputError(f"{pattern}: the directory holds no FITS files (names ending "
                                 f"in {', '.join(FITS_SUFFIXES)})", param="files")
        elif os.path.exists(pattern) or not _GLOB_CHARS & set(pattern):
            found = [pattern]
        else:
            found = sorted(p for p in glob.glob(pattern, recursive=True)
                           if os.path.isfile(p) and _is_fits_name(p))
            if not found:
                raise InputError(f"no FITS files match {pattern!r}", param="files")
        for path in found:
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                files.append(path)
    if not files:
        raise InputError("no input files given", param="files")
    return files


def _check_outputs_clash(files, outdir):
    """Refuse inputs whose outputs collide or would be written over another input."""
    owner = {}
    for special in (SUMMARY_NAME, CATALOG_NAME):
        owner[os.path.realpath(os.path.join(outdir, special))] = f"the batch's {special}"
    for path in files:
        for out in output_paths(path, outdir).values():
            real = os.path.realpath(out)
            if real in owner:
                raise InputError(f"{path} and {owner[real]} would write the same output "
                                 f"{os.path.basename(out)} in {outdir}: rename one of them or "
                                 "run them into different output directories", param="files")
            owner[real] = path
    for path in files:
        real = os.path.realpath(path)
        if real in owner:
            raise InputError(f"{path} is an input, and it would be written over as an output "
                             f"of {owner[real]}: choose another output directory",
                             param="outdir")


def _remove_partial(outdir):
    """Remove the temporary files of writes that never finished (a killed worker's)."""
    for path in glob.glob(os.path.join(glob.escape(outdir), _PARTIAL_PATTERN)):
        with contextlib.suppress(OSError):
            os.unlink(path)


# -- the cluster ------------------------------------------------------------------
def _default_workers(n_files):
    from dask.system import CPU_COUNT
    from distributed.system import MEMORY_LIMIT

    by_memory = max(1, MEMORY_LIMIT // _WORKER_BYTES)
    return max(1, min(CPU_COUNT, by_memory, n_files))


def _check_int(value, name, lo, hi, what):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"{name} must be an integer between {lo} and {hi} ({what}); "
                         f"got {value!r}", param=name)


def _local_cluster(n_workers, *, dashboard_address=None, retries=2):
    """Start a local cluster of ``n_workers`` single-threaded worker processes on 127.0.0.1.

    One task runs per worker at a time, so a worker that dies takes only its
    own file with it; a file whose worker dies ``retries`` times is tried
    again, the next death fails it.
    """
    import dask
    from distributed import LocalCluster

    # The scheduler serves HTTP (health checks; the dashboard with bokeh) in
    # any case: without a dashboard, on a free port of the loopback.
    http, extra = dashboard_address, {}
    if dashboard_address is None:
        http, extra = "127.0.0.1:0", {"dashboard": False}
    with dask.config.set({"distributed.scheduler.allowed-failures": retries,
                          "distributed.scheduler.worker-saturation": 1.0}), \
            warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            host="127.0.0.1", dashboard_address=http, scheduler_kwargs=extra,
                            silence_logs=logging.ERROR, preload=[__name__])


def _connect(scheduler, workers, n_files, *, dashboard_address, retries, timeout):
    """Return ``(client, cluster, close_client)``; cluster is ours to close, or None."""
    from distributed import Client

    if scheduler is None:
        if workers is None:
            n = _default_workers(n_files)
        else:
            _check_int(workers, "workers", 1, _MAX_WORKERS, "processes of the local cluster")
            n = workers
        cluster = _local_cluster(n, dashboard_address=dashboard_address, retries=retries)
        try:
            client = Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
        return client, cluster, True

    if workers is not None:
        raise InputError(f"workers applies to the local cluster only; got workers={workers!r} "
                         f"with scheduler={scheduler!r} (the cluster's workers are started "
                         "with `dask worker`)", param="workers")
    if isinstance(scheduler, Client):
        return scheduler, None, False
    if hasattr(scheduler, "scheduler_address"):  # a cluster object: its workers may come later
        return Client(scheduler, set_as_default=False), None, True
    if not isinstance(scheduler, str):
        raise InputError("scheduler must be an address such as 'tcp://10.0.0.5:8786', a "
                         f"distributed.Client or a Dask cluster; got {type(scheduler).__name__}",
                         param="scheduler")
    target = scheduler.strip()
    if target.lower().startswith(("http://", "https://")):
        raise InputError(f"scheduler {scheduler!r} is a web address (the dashboard's?); the "
                         "scheduler's address looks like 'tcp://10.0.0.5:8786'",
                         param="scheduler")
    if "://" not in target:
        target = "tcp://" + target
    try:
        client = Client(target, timeout=f"{timeout}s", set_as_default=False)
    except Exception as exc:
        raise InputError(f"could not reach the Dask scheduler at {scheduler} within "
                         f"{timeout:g} s ({type(exc).__name__}: {exc}): is `dask scheduler` "
                         "running there and reachable from here? Leave the scheduler out "
                         "to run on a local cluster", param="scheduler") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        client.close()
        raise InputError(f"the Dask scheduler at {target} has no workers (waited "
                         f"{timeout:g} s): start some with `dask worker {target}`",
                         param="scheduler") from None
    return client, None, True


def _connect_timeout(timeout):
    """Seconds to wait for a scheduler (None: Dask's ``distributed.comm.timeouts.connect``)."""
    if timeout is None:
        import dask
        import distributed  # noqa: F401  (loads the distributed.* settings)
        from dask.utils import parse_timedelta
        return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s"))
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InputError(f"timeout must be a positive number of seconds; got {timeout!r}",
                         param="timeout")
    return float(timeout)


def dask_setup(worker):
    """Set up a worker of the local cluster (Dask calls this: ``preload``).

    Ctrl-C in a terminal reaches every process of the group: the workers
    leave it to the client, which cancels the batch and closes them.
    """
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _serves_dashboard(dask_scheduler=None):
    """Run on the scheduler: whether it serves the dashboard (and not only health checks)."""
    return "distributed.dashboard.scheduler" in sys.modules


def _dashboard(client):
    """The dashboard's address, or "" when none is served."""
    try:
        if not client.run_on_scheduler(_serves_dashboard):
            return ""
        return client.dashboard_link or ""
    except Exception:
        return ""


# -- progress ---------------------------------------------------------------------
def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _in_notebook():
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class _Progress:
    """Files done / skipped / failed of the total, elapsed time and an estimate.

    In a notebook: one HTML line with a ``<progress>`` bar, updated in place.
    In a terminal: one line on stderr, redrawn; written to a file or a pipe:
    a line every few seconds and one at the end.
    """

    def __init__(self, total, *, enabled, about="", link=""):
        self.total = total
        self.about = about
        self.link = link
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.t0 = time.perf_counter()
        self._last = 0.0
        self._handle = None
        self.mode = None
        if enabled:
            self.mode = "notebook" if _in_notebook() else (
                "tty" if sys.stderr.isatty() else "log")
        if self.mode == "notebook":
            from IPython.display import HTML, display
            self._handle = display(HTML(self._html()), display_id=True)
        elif self.mode is not None and about:
            print(about + (f"; dashboard {link}" if link else ""), file=sys.stderr, flush=True)

    def add(self, status):
        self.counts[status] += 1
        self.refresh()

    def text(self):
        c, n = self.counts, sum(self.counts.values())
        elapsed = time.perf_counter() - self.t0
        left = ""
        if 0 < n < self.total:
            left = f", ~{_clock(elapsed / n * (self.total - n))} left"
        return (f"{n}/{self.total} files: {c['done']} done, {c['skipped']} skipped, "
                f"{c['failed']} failed; {_clock(elapsed)} elapsed{left}")

    def _html(self):
        import html
        n = sum(self.counts.values())
        about = html.escape(self.about)
        if self.link:
            link = html.escape(self.link, quote=True)
            about += f'; dashboard <a href="{link}" target="_blank">{link}</a>'
        return (f'<div style="font-family: monospace">{about}<br><progress value="{n}" '
                f'max="{self.total}" style="width: 24em"></progress> '
                f'{html.escape(self.text())}</div>')

    def refresh(self, force=False):
        if self.mode is None:
            return
        now = time.perf_counter()
        every = {"notebook": 0.25, "tty": 0.2, "log": 5.0}[self.mode]
        if not force and now - self._last < every:
            return
        self._last = now
        if self.mode == "notebook":
            from IPython.display import HTML
            self._handle.update(HTML(self._html()))
        elif self.mode == "tty":
            n = sum(self.counts.values())
            filled = int(20 * n / max(self.total, 1))
            bar = "#" * filled + "-" * (20 - filled)
            print(f"\r[{bar}] {self.text()}\033[K", end="", file=sys.stderr, flush=True)
        else:
            print(self.text(), file=sys.stderr, flush=True)

    def close(self):
        self.refresh(force=True)
        if self.mode == "tty":
            print(file=sys.stderr, flush=True)


# -- results ----------------------------------------------------------------------
def _failed_row(file, message):
    return {"file": file, "status": "failed", "seconds": 0.0, "n_sources": -1, "outputs": "",
            "message": message}


def _row_of(future, file):
    """The summary row of a finished task (its result, or why it has none)."""
    from distributed import KilledWorker

    name = os.path.basename(file)
    status = future.status
    try:
        if status == "finished":
            return dict(future.result())
        if status == "error":
            exc = future.exception()
            if isinstance(exc, KilledWorker):
                return _failed_row(file, f"{name}: the Dask worker running it died "
                                         f"{exc.allowed_failures + 1} times (killed, or out "
                                         "of memory: give each worker more memory)")
            return _failed_row(file, f"{name}: {type(exc).__name__}: {exc}")
        return _failed_row(file, f"{name}: the task was cancelled (the scheduler lost it "
                                 "or was shut down)")
    except Exception as exc:  # the result could not be fetched
        return _failed_row(file, f"{name}: the result was lost ({type(exc).__name__}: {exc})")


def _tidy(row, file, outdir, abs_outdir):
    """The row as the summary shows it: the file and outputs as the user named them."""
    outputs = [p for p in str(row.get("outputs") or "").split(";") if p]
    outputs = [os.path.join(outdir, os.path.relpath(p, abs_outdir)) for p in outputs]
    return {"file": file, "status": str(row.get("status", "failed")),
            "seconds": float(row.get("seconds") or 0.0),
            "n_sources": int(row.get("n_sources", -1)),
            "outputs": ";".join(outputs), "message": str(row.get("message") or "")}


def _read_catalog(path):
    from astropy.table import QTable
    return QTable.read(path, format="ascii.ecsv")


def _stack(catalogs):
    """Every file's catalog in one table, with a first column ``file``."""
    import numpy as np
    from astropy.table import QTable, vstack

    if not catalogs:
        return QTable({"file": np.array([], dtype=str)})
    tables = []
    for file, table in catalogs:
        table = QTable(table, copy=False)
        table.add_column(np.full(len(table), file, dtype=f"U{max(len(file), 1)}"), name="file",
                         index=0)
        tables.append(table)
    try:
        return vstack(tables, join_type="outer", metadata_conflicts="silent")
    except Exception:  # columns that cannot be filled in (mixins): keep the common ones
        return vstack(tables, join_type="inner", metadata_conflicts="silent")


def _summary_table(rows, meta):
    import numpy as np
    from astropy.table import Table

    columns = {name: [r[name] for r in rows] for name in SUMMARY_COLUMNS}
    table = Table({
        "file": np.array(columns["file"], dtype=str),
        "status": np.array(columns["status"], dtype=str),
        "seconds": np.array(columns["seconds"], dtype=np.float64),
        "n_sources": np.array(columns["n_sources"], dtype=np.int64),
        "outputs": np.array(columns["outputs"], dtype=str),
        "message": np.array(columns["message"], dtype=str),
    }, meta=meta)
    table["seconds"].unit = "s"
    table["seconds"].format = ".3f"
    return table


def _write_table(table, path):
    from ..io.write import atomic_write
    with atomic_write(path, "w") as fh:
        table.write(fh, format="ascii.ecsv")


# -- the batch --------------------------------------------------------------------
def run_batch(recipe, files, outdir, *, scheduler=None, workers=None, overwrite=False,
              progress=True, dashboard_address="127.0.0.1:8787", retries=2, timeout=None):
    """Run a recipe over many FITS files on Dask, one task per file.

    Parameters
    ----------
    recipe : dict, str or os.PathLike
        The recipe (``Pipeline.to_recipe()``, its JSON text, or a JSON file
        exported from the pipeline builder). Validated before anything runs.
    files : str, os.PathLike or iterable of them
        The inputs: files, directories and glob patterns
        (see :func:`expand_inputs`).
    outdir : str or os.PathLike
        Where the outputs go (created when missing). Per input ``NAME.fits``:
        ``NAME_processed.fits`` (with the recipe and the input's checksum as
        provenance) and ``NAME_catalog.ecsv`` when the recipe makes a
        catalog; for the batch: ``batch_summary.ecsv`` and
        ``catalog_all.ecsv``. The workers must see ``files`` and ``outdir``
        at the same paths as this process (a shared file system).
    scheduler : str, distributed.Client or cluster, optional
        None (default): start a local cluster of worker processes on this
        machine and close it afterwards. An address (``"tcp://host:8786"``),
        a ``Client`` or a cluster object (e.g. ``dask_jobqueue.SLURMCluster``):
        use it and leave it running.
    workers : int, optional
        Worker processes of the local cluster (default: one per core, at
        most one per 2 GiB of memory and one per file).
    overwrite : bool
        Redo files whose outputs exist for this recipe and input.
    progress : bool
        Show a progress bar (in the notebook or on stderr) and the address of
        the Dask dashboard when there is one.
    dashboard_address : str or None
        Where the local cluster serves its dashboard (None: no dashboard; the
        dashboard needs ``bokeh``).
    retries : int
        Local cluster: how many times a file whose worker died (killed, out
        of memory) is tried again before it is reported failed. A cluster
        given by ``scheduler`` follows its own
        ``distributed.scheduler.allowed-failures`` setting.
    timeout : float, optional
        Seconds to wait for the scheduler at an address to answer and to
        have a worker (default: Dask's ``distributed.comm.timeouts.connect``,
        30 s unless configured, e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s``).
        A ``Client`` or cluster object is used as it is: its workers may join later.

    Returns
    -------
    summary : `~astropy.table.Table`
        One row per input, in the order given: ``file``, ``status``
        (``"done"``, ``"skipped"``: outputs existed for this recipe and
        input, or ``"failed"``), ``seconds``, ``n_sources`` (-1: no catalog),
        ``outputs`` (paths joined by ``;``) and ``message`` (why it failed,
        or the stages' remarks). The same table is written to
        ``outdir/batch_summary.ecsv``.

    Raises
    ------
    jwst_widgets.InputError
        For a bad recipe, no inputs, clashing outputs, a bad ``workers``, or
        a scheduler that cannot be reached. A bad file never raises: it is a
        ``failed`` row and the other files go on.
    KeyboardInterrupt
        When interrupted; the summary is written first (the files not
        finished are ``failed`` rows), and running the batch again resumes.

    Notes
    -----
    Workers read their file and write their outputs themselves, atomically
    (a temporary file renamed into place); only the summary rows come back
    to this process. A second run of the same recipe over the same inputs
    skips every file whose processed FITS records this recipe and the
    input's checksum, so an interrupted batch resumes where it stopped. One
    batch at a time per output directory.

    Examples
    --------
    >>> from jwst_widgets import run_batch
    >>> summary = run_batch("recipe.json", "data/*_cal.fits", "out/",
    ...                     workers=2)  # doctest: +SKIP
    >>> summary["file", "status", "n_sources"]  # doctest: +SKIP
    """
    from .core import Pipeline

    pipe = Pipeline.from_recipe(recipe, cache_bytes=0)
    recipe_dict = pipe.to_recipe()
    files = expand_inputs(files)
    _check_int(retries, "retries", 0, 10, "times a file is tried again after its worker died")
    timeout = _connect_timeout(timeout)
    outdir_given = os.fspath(outdir)
    abs_outdir = os.path.abspath(outdir_given)
    if os.path.exists(abs_outdir) and not os.path.isdir(abs_outdir):
        raise InputError(f"outdir {outdir_given} exists and is not a directory", param="outdir")
    abs_files = [os.path.abspath(f) for f in files]
    _check_outputs_clash(abs_files, abs_outdir)

    client, cluster, close_client = _connect(scheduler, workers, len(files),
                                             dashboard_address=dashboard_address,
                                             retries=retries, timeout=timeout)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    rows = [None] * len(files)
    catalogs = {}
    n_workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
    address = client.scheduler.address
    dashboard = _dashboard(client)
    bar = _Progress(len(files), enabled=progress,
                    about=f"Dask: {n_workers} worker(s) at {address}", link=dashboard)
    futures = []
    try:
        os.makedirs(abs_outdir, exist_ok=True)
        _remove_partial(abs_outdir)
        token = uuid.uuid4().hex[:10]
        from .outputs import process_file
        futures = [client.submit(process_file, recipe_dict, path, abs_outdir,
                                 overwrite=bool(overwrite), key=f"jwst-batch-{token}-{i}",
                                 pure=False)
                   for i, path in enumerate(abs_files)]
        index = {f.key: i for i, f in enumerate(futures)}
        _collect(client, futures, index, files, abs_files, rows, catalogs, outdir_given,
                 abs_outdir, bar)
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            client.cancel([f for f in futures if not f.done()], force=True)
        raise
    finally:
        futures = []
        with contextlib.suppress(Exception):
            if close_client:
                client.close()
            if cluster is not None:
                cluster.close()
        _remove_partial(abs_outdir)
        for i, row in enumerate(rows):
            if row is None:
                rows[i] = _failed_row(files[i], f"{os.path.basename(files[i])}: not reported "
                                                "finished when the batch was interrupted (run "
                                                "it again to resume)")
        meta = {"recipe": recipe_dict, "outdir": outdir_given, "scheduler": address,
                "n_workers": n_workers, "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "seconds": round(time.perf_counter() - t0, 3)}
        summary = _summary_table(rows, meta)
        if os.path.isdir(abs_outdir):
            _write_table(summary, os.path.join(abs_outdir, SUMMARY_NAME))
            stacked = _stack([catalogs[i] for i in sorted(catalogs)])
            stacked.meta.update({"recipe": recipe_dict, "files": len(catalogs)})
            _write_table(stacked, os.path.join(abs_outdir, CATALOG_NAME))
        bar.close()
    return summary


def _collect(client, futures, index, files, abs_files, rows, catalogs, outdir, abs_outdir, bar):
    """Gather the rows as tasks finish; read each file's catalog meanwhile."""
    from distributed import as_completed

    pending = as_completed(futures, loop=client.loop)
    while not pending.is_empty():
        if not pending.has_ready():
            time.sleep(0.1)
            bar.refresh()
            continue
        for future in pending.next_batch(block=False):
            i = index[future.key]
            row = _tidy(_row_of(future, files[i]), files[i], outdir, abs_outdir)
            future.release()
            if row["status"] in ("done", "skipped") and row["n_sources"] >= 0:
                path = output_paths(abs_files[i], abs_outdir)["catalog"]
                try:
                    catalogs[i] = (files[i], _read_catalog(path))
                except Exception as exc:
                    row["message"] = "; ".join(filter(None, [
                        row["message"], f"its catalog could not be read for {CATALOG_NAME} "
                                        f"({type(exc).__name__}: {exc})"]))
            rows[i] = row
            bar.add(row["status"])
