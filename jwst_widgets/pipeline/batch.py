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
import re
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


def _row_of(future, file, *, wait=0.5):
    """The summary row of a finished task, or None while its result is not to be had.

    A result held by a worker that has since died is computed again; its
    future is then pending once more, and the row waits for it.
    """
    from distributed import KilledWorker

    name = os.path.basename(file)
    status = future.status
    if status == "finished":
        try:
            return dict(future.result(timeout=wait))
        except TimeoutError:
            return None
        except Exception as exc:  # the result could not be fetched
            if future.status != "finished":
                return None
            return _failed_row(file, f"{name}: the result was lost ({type(exc).__name__}: "
                                     f"{exc})")
    if status == "error":
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            return _failed_row(file, f"{name}: the Dask worker running it died "
                                     f"{exc.allowed_failures + 1} times (killed, or out of "
                                     "memory: give each worker more memory)")
        return _failed_row(file, f"{name}: {type(exc).__name__}: {exc}")
    if status == "cancelled":
        return _failed_row(file, f"{name}: the task was cancelled (the scheduler lost it or "
                                 "was shut down)")
    return None


def _tidy(row, file, outdir, abs_outdir):
    """The row as the summary shows it: the file and outputs as the user named them."""
    outputs = [p for p in str(row.get("outputs") or "").split(";") if p]
    outputs = [os.path.join(outdir, os.path.relpath(p, abs_outdir)) for p in outputs]
    return {"file": file, "status": str(row.get("status", "failed")),
            "seconds": float(row.get("seconds") or 0.0),
            "n_sources": int(row.get("n_sources", -1)),
            "outputs": ";".join(outputs), "message": str(row.get("message") or "")}


_TOP_KEY = re.compile(r"^# [A-Za-z_]+:")


def _ecsv_parts(text):
    """Split ECSV text: (its columns' declaration, header lines, names line, data lines)."""
    lines = text.splitlines()
    n = 0
    while n < len(lines) and lines[n].startswith("#"):
        n += 1
    header, body = lines[:n], lines[n:]
    if not header or not header[0].startswith("# %ECSV") or not body:
        raise ValueError("not an ECSV table")
    declaration, keep = [], False
    for line in header[2:]:
        if _TOP_KEY.match(line):
            keep = line.startswith(("# datatype:", "# delimiter:"))
        if keep:
            declaration.append(line)
    return "\n".join(declaration), header, body[0], body[1:]


def _ecsv_head(table, meta):
    """The ECSV header and names line of ``table`` (its rows are not written)."""
    import io

    table = table[:0]
    table.meta.clear()
    table.meta.update(meta)
    out = io.StringIO()
    table.write(out, format="ascii.ecsv")
    return out.getvalue()


def _stack_lines(catalogs, meta):
    """The stacked catalog as ECSV lines, copying each file's data lines; None if not possible.

    Possible when every catalog declares the same columns in the same order (one
    recipe: the usual case). No number is parsed or formatted again.
    """
    import csv
    import io

    import numpy as np
    from astropy.table import QTable

    parts = [(file, _ecsv_parts(text)) for file, text in catalogs]
    declaration, header, names, _ = parts[0][1]
    if any(p[0] != declaration or p[2] != names for _, p in parts):
        return None
    match = re.search(r"^# delimiter: '(.)'", "\n".join(header), re.M)
    delimiter = match.group(1) if match else " "
    table = QTable.read("\n".join(header + [names]), format="ascii.ecsv")
    table.add_column(np.array([], dtype=str), name="file", index=0)
    head = _ecsv_head(table, meta)
    if not head.rstrip("\n").endswith(f"file{delimiter}{names}"):
        return None

    def lines():
        yield head
        for file, (_, _, _, rows) in parts:
            quoted = io.StringIO()
            csv.writer(quoted, delimiter=delimiter, lineterminator="").writerow([file])
            prefix = quoted.getvalue() + delimiter
            for row in rows:
                yield prefix + row + "\n"

    return lines()


def _write_catalog_all(catalogs, path, meta):
    """Write every file's catalog stacked, with a first column ``file``, as ECSV.

    ``catalogs`` is a list of ``(file, ECSV text)``. Catalogs that declare
    different columns are read and stacked by astropy: a column missing from
    some files is masked in their rows, and a column whose unit differs
    between files is stacked without a unit (``meta["unit_conflicts"]`` says
    which unit each file had).
    """
    import numpy as np
    from astropy.table import Table, vstack

    from ..io.write import atomic_write

    lines = _stack_lines(catalogs, meta) if catalogs else None
    if lines is None:
        tables, units = [], {}
        for file, text in catalogs:
            table = Table.read(text, format="ascii.ecsv")
            for col in table.itercols():
                units.setdefault(col.name, {})[file] = None if col.unit is None else str(col.unit)
            table.add_column(np.full(len(table), file), name="file", index=0)
            tables.append(table)
        conflicts = {name: by_file for name, by_file in units.items()
                     if len(set(by_file.values())) > 1}
        for table in tables:
            for name in conflicts:
                if name in table.colnames:
                    table[name].unit = None
        if tables:
            try:
                table = vstack(tables, join_type="outer", metadata_conflicts="silent")
            except (TypeError, ValueError, NotImplementedError):  # mixins that cannot be masked
                table = vstack(tables, join_type="inner", metadata_conflicts="silent")
                meta = {**meta, "note": "only the columns every file has"}
        else:
            table = Table({"file": np.array([], dtype=str)})
        table.meta.clear()
        table.meta.update(meta)
        if conflicts:
            table.meta["unit_conflicts"] = conflicts
        with atomic_write(path, "w") as fh:
            table.write(fh, format="ascii.ecsv")
        return
    with atomic_write(path, "w") as fh:
        fh.writelines(lines)


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
              progress=True, dashboard_address="127.0.0.1:8787", retries=2, timeout=None,
              on_row=None, cancel=None):
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
    on_row : callable, optional
        ``on_row(index, row)`` as each input's row arrives (a live table).
    cancel : threading.Event, optional
        When set, the files not finished are cancelled and reported as
        ``failed`` ("interrupted"); the summary is written as usual.

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
    run = None
    try:
        run = _Run(client, recipe_dict, files, abs_files, outdir_given, abs_outdir,
                   progress=progress, local_cluster=cluster, on_row=on_row, cancel=cancel)
        run.submit(overwrite=bool(overwrite))
        run.collect()
    except KeyboardInterrupt:
        if run is not None:
            run.cancel()
        raise
    finally:
        with contextlib.suppress(Exception):
            if close_client:
                client.close()
            if cluster is not None:
                cluster.close()
        if run is not None:
            summary = run.finish()
    return summary


class _Run:
    """One batch on a connected client: submit, gather the rows, write the batch's tables."""

    def __init__(self, client, recipe, files, abs_files, outdir, abs_outdir, *, progress,
                 local_cluster=None, on_row=None, cancel=None):
        self.client = client
        self.on_row = on_row
        self.cancel_event = cancel
        self.recipe = recipe
        self.files = files            # as the user named them (the summary shows these)
        self.abs_files = abs_files    # as the workers open them
        self.outdir = outdir
        self.abs_outdir = abs_outdir
        self.local_cluster = local_cluster
        self.rows = [None] * len(files)
        self.catalogs = {}
        self.futures = []
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.t0 = time.perf_counter()
        self.address = client.scheduler.address
        self.n_workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        self.bar = _Progress(len(files), enabled=progress,
                             about=f"Dask: {self.n_workers} worker(s) at {self.address}",
                             link=_dashboard(client))

    def submit(self, *, overwrite):
        from .outputs import process_file

        os.makedirs(self.abs_outdir, exist_ok=True)
        _remove_partial(self.abs_outdir)
        token = uuid.uuid4().hex[:10]
        self.futures = [self.client.submit(process_file, self.recipe, path, self.abs_outdir,
                                           overwrite=overwrite, key=f"jwst-batch-{token}-{i}",
                                           pure=False)
                        for i, path in enumerate(self.abs_files)]
        self.index = {f.key: i for i, f in enumerate(self.futures)}

    def collect(self):
        """Gather the rows as tasks finish.

        Never blocks on one task: the loop keeps the progress bar and, for our
        own cluster, the workers' watch going.
        """
        from distributed import as_completed

        pending = as_completed(self.futures, loop=self.client.loop)
        done = []  # tasks finished, rows not yet read
        watch = None
        if self.local_cluster is not None:  # ours: kept at its size
            watch = _WorkerWatch(self.client, self.local_cluster)
        while done or not pending.is_empty():
            if self.cancel_event is not None and self.cancel_event.is_set():
                self.cancel()
                return
            done.extend(pending.next_batch(block=False))
            waiting = []
            for future in done:
                i = self.index[future.key]
                row = _row_of(future, self.files[i])
                if row is None:
                    waiting.append(future)
                else:
                    future.release()
                    self._add(i, row)
            if len(waiting) < len(done):
                done = waiting
                continue
            done = waiting
            if watch is not None and watch.lost():
                self.cancel()
                for i, row in enumerate(self.rows):
                    if row is None:
                        self.rows[i] = _failed_row(self.files[i], (
                            f"{os.path.basename(self.files[i])}: not run: the local cluster "
                            f"lost all its workers for {watch.patience:g} s"))
                return
            time.sleep(0.1)
            self.bar.refresh()

    def _add(self, i, row):
        row = _tidy(row, self.files[i], self.outdir, self.abs_outdir)
        if row["status"] in ("done", "skipped") and row["n_sources"] >= 0:
            self.catalogs[i] = output_paths(self.abs_files[i], self.abs_outdir)["catalog"]
        self.rows[i] = row
        self.bar.add(row["status"])
        if self.on_row is not None:
            self.on_row(i, dict(row))

    def cancel(self):
        with contextlib.suppress(Exception):
            self.client.cancel([f for f in self.futures if not f.done()], force=True)

    def finish(self):
        """Write ``batch_summary.ecsv`` and ``catalog_all.ecsv``; return the summary."""
        self.futures = []
        _remove_partial(self.abs_outdir)
        for i, row in enumerate(self.rows):
            if row is None:
                self.rows[i] = _failed_row(self.files[i], (
                    f"{os.path.basename(self.files[i])}: not reported finished when the "
                    "batch was interrupted (run it again to resume)"))
        meta = {"recipe": self.recipe, "outdir": self.outdir, "scheduler": self.address,
                "n_workers": self.n_workers,
                "started": self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "seconds": round(time.perf_counter() - self.t0, 3)}
        if os.path.isdir(self.abs_outdir):
            self._write_catalog_all()
        summary = _summary_table(self.rows, meta)
        if os.path.isdir(self.abs_outdir):
            _write_table(summary, os.path.join(self.abs_outdir, SUMMARY_NAME))
        self.bar.close()
        return summary

    def _write_catalog_all(self):
        catalogs = []
        for i in sorted(self.catalogs):
            try:
                with open(self.catalogs[i], encoding="utf-8") as fh:
                    text = fh.read()
                _ecsv_parts(text)
            except (OSError, ValueError) as exc:
                row = self.rows[i]
                row["message"] = "; ".join(filter(None, [
                    row["message"], f"its catalog is left out of {CATALOG_NAME} "
                                    f"({type(exc).__name__}: {exc})"]))
                continue
            catalogs.append((self.files[i], text))
        _write_catalog_all(catalogs, os.path.join(self.abs_outdir, CATALOG_NAME),
                           {"recipe": self.recipe, "files": len(catalogs)})


class _WorkerWatch:
    """Keeps our local cluster at its size, and notices when it has no workers left.

    A worker that dies is restarted by its nanny; but when the restart takes
    longer than ``distributed.deploy.lost-worker-timeout`` (a loaded machine),
    the cluster drops that worker for good. Asking for the cluster's size again
    brings it back.
    """

    patience = 120.0  # seconds without any worker before the batch gives up
    every = 2.0

    def __init__(self, client, cluster):
        self.client = client
        self.cluster = cluster
        self.size = len(cluster.worker_spec)
        self._checked = 0.0
        self._since = None

    def lost(self):
        now = time.monotonic()
        if now - self._checked < self.every:
            return False
        self._checked = now
        try:
            if len(self.cluster.workers) < self.size:
                self.cluster.scale(self.size)
            n = len(self.client.nthreads())
        except Exception:
            n = 0
        if n:
            self._since = None
            return False
        self._since = self._since or now
        return now - self._since > self.patience
