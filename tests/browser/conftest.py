"""Fixtures for tests in a real browser: JupyterLab / Voila on 127.0.0.1, Chromium via Playwright.

See README.md in this directory. Tests using these fixtures live in
``tests/browser/`` and are marked ``@pytest.mark.browser``.
"""

import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from browser_page import (CHROMIUM, CHROMIUM_FLAGS, KNOWN_HARMLESS_OUTSIDE, artifacts_dir,
                          make_hermetic, watch_page)
from browser_servers import ServerStartError, start_jupyterlab, start_voila

# The harness's own notebooks are fixtures, not tests for nbval.
collect_ignore = ["notebooks", "artifacts"]


VIEWPORT = {"width": 1280, "height": 900}
SERVER_START_TIMEOUT = float(os.environ.get("JW_SERVER_TIMEOUT", "90"))
DEFAULT_TIMEOUT_MS = 30_000


def _required():
    """True when a missing browser must fail the run rather than skip it (CI)."""
    return bool(os.environ.get("CI") or os.environ.get("JW_REQUIRE_BROWSER"))


def _worker():
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


# ------------------------------------------------------------------ reporting

TIMINGS = pytest.StashKey[list]()


def _record_timing(config, what, seconds):
    config.stash.setdefault(TIMINGS, []).append((what, seconds))


@pytest.fixture
def record_timing(pytestconfig):
    """``record_timing(what, seconds)``: list a measured time in the run's summary."""
    return lambda what, seconds: _record_timing(pytestconfig, what, seconds)


def pytest_terminal_summary(terminalreporter, config):
    """Print how long the browser, the servers and the first views took."""
    times = config.stash.get(TIMINGS, [])
    if times:
        terminalreporter.section("browser harness timings")
        for what, seconds in times:
            terminalreporter.write_line(f"{what}: {seconds:.1f} s")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures know whether the test failed."""
    report = yield
    setattr(item, f"jw_report_{report.when}", report)
    return report


def _failed(request):
    reports = (getattr(request.node, f"jw_report_{w}", None) for w in ("setup", "call"))
    return any(r is not None and r.failed for r in reports)


# -------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def chromium_path():
    """Path of Debian's Chromium; skip (or fail in CI / with JW_REQUIRE_BROWSER=1) if missing."""
    if not os.access(CHROMIUM, os.X_OK):
        message = (f"no Chromium at {CHROMIUM} (apt-get install -y chromium, "
                   f"or set JW_CHROMIUM)")
        if _required():
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="session")
def playwright_sync():
    """The Playwright sync API, started once per session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        if _required():
            raise
        pytest.skip(f"playwright is not installed: {err}")
    pw = sync_playwright().start()
    yield pw
    pw.stop()


@pytest.fixture(scope="session")
def browser(playwright_sync, chromium_path, pytestconfig):
    """Headless Chromium (Debian's) with the flags measured to work on these machines."""
    started = time.monotonic()
    browser = playwright_sync.chromium.launch(
        executable_path=chromium_path,
        headless=os.environ.get("JW_HEADFUL") is None,
        args=CHROMIUM_FLAGS,
        timeout=60_000,
    )
    _record_timing(pytestconfig, f"Chromium {browser.version}", time.monotonic() - started)
    yield browser
    browser.close()


class PageFactory:
    """``make_page(allow_outside=(), viewport=None) -> Page``; see the ``make_page`` fixture."""

    def __init__(self, browser, test_name):
        self.browser = browser
        self.test_name = test_name
        self.made = []

    def __call__(self, *, allow_outside=(), viewport=None):
        context = self.browser.new_context(
            viewport=viewport or VIEWPORT,
            device_scale_factor=1,
            service_workers="block",
        )
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        log = make_hermetic(context, allow=KNOWN_HARMLESS_OUTSIDE + tuple(allow_outside))
        page = context.new_page()
        watch_page(page, log)
        self.made.append((context, page, log))
        return page

    def close_all(self, *, failed):
        """Close every page (saving a screenshot and the console log first if ``failed``)."""
        made, self.made = self.made, []
        for i, (context, page, log) in enumerate(made):
            if failed:
                _save_failure(self.test_name, i, page, log)
            context.close()


@pytest.fixture
def make_page(browser, request):
    """Factory of hermetic pages: ``make_page(allow_outside=(), viewport=None) -> Page``.

    Each page has its own browser context (fresh cache, cookies, storage).
    Every request outside 127.0.0.1 / localhost is aborted and recorded; console
    messages, page errors and web sockets are collected (see
    ``browser_page.log_of(page)`` and ``assert_no_errors(page)``). When the
    test fails, a screenshot of the viewport and the console log of every page
    go to the artefacts directory.
    """
    factory = PageFactory(browser, request.node.name)
    yield factory
    factory.close_all(failed=_failed(request))


def _save_failure(test_name, i, page, log):
    base = artifacts_dir() / re.sub(r"[^A-Za-z0-9_.-]+", "_", f"FAILED-{test_name}-{i}")
    try:
        page.screenshot(path=f"{base}.png", timeout=10_000)
    except Exception as err:  # the page may be gone; the log is still worth keeping
        print(f"no screenshot for {test_name}: {err}", file=sys.stderr)
    lines = [f"url: {page.url}", "", "outside requests:", *log.outside, "",
             "page errors:", *log.page_errors, "", "kernel errors outside cells:"]
    lines += [f"[{e['parent']}] {e['ename']}: {e['evalue']}\n{e['traceback']}"
              for e in log.kernel_errors]
    lines += ["", "console:"]
    lines += [f"[{kind}] {text} ({url})" for kind, text, url in log.console]
    Path(f"{base}.txt").write_text("\n".join(lines), encoding="utf-8")


@pytest.fixture
def page(make_page):
    """One hermetic page (see ``make_page``)."""
    return make_page()


# -------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def jupyterlab_server(tmp_path_factory, chromium_path, pytestconfig):
    """JupyterLab 4 on 127.0.0.1 (free port, token), started once per session.

    Its root is an empty temporary directory: copy what a test needs with
    ``jupyterlab_server.add(path) -> relative path``. Config, runtime, settings
    and workspace directories are isolated; the log's tail goes into any start
    failure, and the whole log to the artefacts directory (``jupyterlab-<worker>.log``)
    when the session ends.
    Asks for ``chromium_path`` only so that, without a browser, tests skip
    before a server is started for nothing.
    """
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "root"
    root.mkdir()
    try:
        server = start_jupyterlab(
            root, base / "home", log_path=base / "jupyterlab.log",
            timeout=SERVER_START_TIMEOUT,
        )
    except ServerStartError as err:
        pytest.fail(str(err), pytrace=False)
    _record_timing(pytestconfig, "JupyterLab server (until /api/status answers)",
                   server.startup_seconds)
    yield server
    server.stop()
    _keep_log(server, f"jupyterlab-{_worker()}.log")


@pytest.fixture
def lab_page(make_page, jupyterlab_server, request):
    """A hermetic page for JupyterLab; the server's kernels are shut down after the test."""
    yield make_page()
    make_page.close_all(failed=_failed(request))  # before the kernels go, for the screenshot
    jupyterlab_server.shutdown_kernels()


@pytest.fixture(scope="session")
def voila_server(tmp_path_factory, chromium_path, pytestconfig):
    """Factory: ``voila_server(notebook, extra_files=(), extra_args=()) -> ServerProcess``.

    Copies the notebook (and ``extra_files`` beside it) to a temporary
    directory and serves it with Voila on 127.0.0.1; servers are reused for
    the same arguments and stopped at the end of the session. Open it with
    ``browser_page.open_voila(page, server)``.
    """
    servers = {}

    def start(notebook, *, extra_files=(), extra_args=()):
        notebook = Path(notebook).resolve()
        key = (notebook, tuple(map(str, extra_files)), tuple(extra_args))
        if key in servers:
            if servers[key].running:
                return servers[key]
            servers.pop(key).stop()  # it died: close its log, start a new one
        base = tmp_path_factory.mktemp(f"voila-{notebook.stem}")
        root = base / "root"
        root.mkdir()
        for src in (notebook, *map(Path, extra_files)):
            if src.is_dir():
                shutil.copytree(src, root / src.name)
            else:
                shutil.copy2(src, root / src.name)
        log_path = base / "voila.log"
        try:
            server = start_voila(root / notebook.name, base / "home", log_path=log_path,
                                 timeout=SERVER_START_TIMEOUT, extra_args=extra_args)
        except ServerStartError as err:
            pytest.fail(str(err), pytrace=False)
        _record_timing(pytestconfig, f"Voila {notebook.name} (until its port listens)",
                       server.startup_seconds)
        servers[key] = server
        return server

    yield start
    for server in servers.values():
        server.terminate()
    for i, ((notebook, *_), server) in enumerate(servers.items()):
        server.stop()
        _keep_log(server, f"voila-{notebook.stem}-{_worker()}-{i}.log")


def _keep_log(server, name):
    """Copy a stopped server's log to the artefacts directory.

    Whole and once, so that concurrent sessions never interleave lines in one file.
    """
    if server.log_path.exists():
        shutil.copyfile(server.log_path, artifacts_dir() / name)
