"""Drive JupyterLab and Voila pages with Playwright, and check them for errors.

Hermetic pages: `make_hermetic` routes every request of a browser context,
lets 127.0.0.1 / localhost (and data:/blob:) through, aborts the rest and
records it. `watch_page` collects console messages, page errors and web
sockets. `assert_no_errors` fails on any of: a request outside the machine
not on the allow-list, a console error, an uncaught page error, a broken
widget view, an error output in the notebook.

Everything here waits with a timeout (milliseconds, as in Playwright).
"""

import base64
import io
import json
import os
import re
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "BQPLOT_IMAGE",
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "ERROR_WIDGET",
    "KNOWN_HARMLESS_OUTSIDE",
    "SLIDER_HANDLE",
    "NotebookError",
    "PageLog",
    "artifacts_dir",
    "assert_no_errors",
    "broken_widgets",
    "element_pixels",
    "error_outputs",
    "focus_slider",
    "image_href",
    "image_pixels",
    "kernel",
    "kernel_error",
    "log_of",
    "make_hermetic",
    "open_notebook",
    "open_voila",
    "press_slider",
    "run_all",
    "save_screenshot",
    "wait_image_changed",
    "wait_kernel_idle",
    "wait_pixels_changed",
    "wait_until",
    "watch_page",
]

SLIDER_HANDLE = ".widget-slider .noUi-handle"
BQPLOT_IMAGE = ".bqplot image[href^='blob:']"
ERROR_WIDGET = ".jupyter-widgets-error-widget"

LOCAL_URL = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)")
INTERNAL_URL = re.compile(r"^(data|blob|about|chrome-error):")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: Outside requests that are known, harmless offline, and may be listed (they are still
#: aborted): Voila 0.5's lab template links FontAwesome 5 from jsDelivr.
KNOWN_HARMLESS_OUTSIDE = (
    re.compile(r"^https://cdn\.jsdelivr\.net/npm/@fortawesome/fontawesome-free@"),
)

#: Console texts that mean a widget view failed in the front end.
BROKEN_VIEW_TEXT = re.compile(
    r"Could not create a view|Could not create model|Error creating widget|"
    r"Failed to load model class|Failed to create view|Could not instantiate widget",
    re.IGNORECASE,
)

#: The Chromium the tests and the benchmarks drive (Debian's), and its flags
#: (see shared/notes/browser-testing.md).
CHROMIUM = os.environ.get("JW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Belt and braces for what routing cannot see (web sockets, DNS prefetch):
    # no host name resolves except localhost.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


class NotebookError(AssertionError):
    """A notebook cell raised, or the notebook did not finish in time."""


@dataclass
class PageLog:
    """What a hermetic page asked for and reported.

    Attributes
    ----------
    outside : list of str
        URLs outside the machine that were asked for (all were aborted).
    allowed_outside : tuple of re.Pattern
        Patterns of outside URLs that do not fail `assert_no_errors`.
    console : list of (str, str, str)
        Every console message as (type, text, source URL).
    page_errors : list of str
        Uncaught exceptions in the page.
    websockets : list of str
        URLs of web sockets the page opened (routing does not see them).
    kernel_errors : list of dict
        Errors the kernel reported on its web socket (iopub ``error``
        messages, and tracebacks on stderr) that answer something other than
        running a cell: a failing widget callback shows up here and nowhere
        else in Voila (JupyterLab puts it in its log console). Each dict has
        ``parent`` (the message type it answers), ``ename``, ``evalue`` and
        ``traceback``.
    """

    allowed_outside: tuple = KNOWN_HARMLESS_OUTSIDE
    outside: list = field(default_factory=list)
    console: list = field(default_factory=list)
    page_errors: list = field(default_factory=list)
    websockets: list = field(default_factory=list)
    kernel_errors: list = field(default_factory=list)

    def unexpected_outside(self):
        """Outside URLs (and outside web sockets) not on the allow-list."""
        asked = self.outside + [u for u in self.websockets if not LOCAL_URL.match(u)]
        return [u for u in asked if not any(p.search(u) for p in self.allowed_outside)]

    def console_errors(self, ignore=()):
        """Console errors, less those caused by an aborted outside request.

        An aborted request is reported by `unexpected_outside` (or is allowed),
        so its "Failed to load resource" console line is not counted twice.
        """
        errors = []
        for kind, text, url in self.console:
            if kind != "error":
                continue
            if text.startswith("Failed to load resource") and url in self.outside:
                continue
            if any(re.search(p, text) for p in ignore):
                continue
            errors.append(f"{text} (at {url})" if url else text)
        return errors


_LOGS = weakref.WeakKeyDictionary()


def make_hermetic(context, *, allow=KNOWN_HARMLESS_OUTSIDE):
    """Route every request of ``context``: local ones pass, the rest are aborted and logged.

    Routes added later (``page.route`` or ``context.route``) take precedence,
    so a test can still answer a chosen outside URL from local files.

    Returns
    -------
    PageLog
        Shared by the pages of this context; attach them with `watch_page`.
    """
    log = PageLog(allowed_outside=tuple(re.compile(p) if isinstance(p, str) else p
                                        for p in allow))

    def route(route):
        url = route.request.url
        if LOCAL_URL.match(url) or INTERNAL_URL.match(url):
            route.continue_()
        else:
            log.outside.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", route)
    return log


def watch_page(page, log):
    """Collect console messages, page errors and web sockets of ``page`` into ``log``."""
    _LOGS[page] = log
    page.on("console", lambda m: log.console.append((m.type, m.text, m.location.get("url", ""))))
    page.on("pageerror", lambda e: log.page_errors.append(f"{e.name}: {e.message}\n{e.stack}"))
    page.on("websocket", lambda ws: _watch_websocket(ws, log))
    return page


def _watch_websocket(ws, log):
    log.websockets.append(ws.url)
    if LOCAL_URL.match(ws.url):
        ws.on("framereceived", lambda payload: _note_kernel_error(payload, log))


def _note_kernel_error(payload, log):
    try:
        error = kernel_error(payload)
    except (ValueError, KeyError, TypeError, IndexError):  # not a kernel message
        return
    if error is not None and error["parent"] != "execute_request":
        log.kernel_errors.append(error)


def kernel(page, code, *, timeout=30_000):
    """Run ``code`` in the open notebook's kernel (JupyterLab); return what it printed."""
    out = page.evaluate(
        """async ([code, ms]) => {
            const w = window.jupyterapp.shell.currentWidget;
            const k = w.sessionContext.session.kernel;
            const future = k.requestExecute({code, silent: false, store_history: false});
            let out = "", err = null;
            future.onIOPub = (msg) => {
                const t = msg.header.msg_type;
                if (t === "stream") out += msg.content.text;
                else if (t === "error") err = msg.content.ename + ": " + msg.content.evalue;
            };
            const late = new Promise((ok) => setTimeout(() => ok("timeout"), ms));
            if (await Promise.race([future.done, late]) === "timeout") err = "timeout";
            return {out, err};
        }""",
        [code, timeout],
    )
    if out["err"]:
        raise AssertionError(f"kernel code failed: {out['err']}\n{code}")
    return out["out"]


def kernel_error(payload):
    """Decode a kernel web-socket frame; return its error as a dict, or None.

    Understands the JSON text protocol and the binary
    ``v1.kernel.websocket.jupyter.org`` protocol (a count of offsets, the
    offsets, then channel, header, parent header, metadata, content and
    buffers). Only the small JSON parts are decoded, never the buffers.
    """
    if isinstance(payload, str):
        if '"error"' not in payload and '"stderr"' not in payload:
            return None
        msg = json.loads(payload)
        channel, header = msg.get("channel"), msg["header"]
        parent, content = msg.get("parent_header") or {}, msg["content"]
    else:
        count = int.from_bytes(payload[:8], "little")
        if not 6 <= count <= 64:
            return None
        offsets = [int.from_bytes(payload[8 + 8 * i:16 + 8 * i], "little") for i in range(count)]
        channel = payload[offsets[0]:offsets[1]].decode()
        if channel != "iopub":
            return None
        header = json.loads(payload[offsets[1]:offsets[2]])
        if header.get("msg_type") not in ("error", "stream"):
            return None
        parent = json.loads(payload[offsets[2]:offsets[3]] or b"{}")
        content = json.loads(payload[offsets[4]:offsets[5]])
    if channel != "iopub":
        return None
    kind = header.get("msg_type")
    if kind == "error":
        traceback = "\n".join(content.get("traceback") or [])
        ename, evalue = content.get("ename", ""), content.get("evalue", "")
    elif kind == "stream" and content.get("name") == "stderr" \
            and "Traceback (most recent call last)" in content.get("text", ""):
        traceback, ename, evalue = content["text"], "stderr", ""
    else:
        return None
    return {"parent": (parent or {}).get("msg_type"), "ename": ename, "evalue": evalue,
            "traceback": _ANSI.sub("", traceback)}


def log_of(page):
    """The `PageLog` of a page made hermetic by the fixtures."""
    try:
        return _LOGS[page]
    except KeyError:
        raise LookupError("this page is not watched: make it with the make_page fixture") from None


# --------------------------------------------------------------------- JupyterLab

_APP = "window.jupyterapp"
_KERNEL = (
    "(() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
    " const s = w && w.sessionContext && w.sessionContext.session;"
    " return s && s.kernel; })()"
)


def _lab_url(server, path):
    return f"{server.url}{path}{'&' if '?' in path else '?'}token={server.token}"


def open_notebook(page, server, relpath, *, timeout=60_000):
    """Open ``relpath`` (relative to the Lab's root) and wait until its kernel is idle.

    Each call uses a fresh JupyterLab workspace, so notebooks opened by
    earlier tests are not restored next to it.
    """
    from urllib.parse import quote

    workspace = f"t{time.monotonic_ns()}"
    page.goto(_lab_url(server, f"/lab/workspaces/{workspace}/tree/{quote(relpath)}"),
              timeout=timeout)
    page.wait_for_function(f"() => !!{_APP} && !!{_APP}.shell", timeout=timeout)
    page.wait_for_function(
        """(path) => { const w = window.jupyterapp.shell.currentWidget;
            return !!w && !!w.context && w.context.path === path && !!w.content; }""",
        arg=relpath, timeout=timeout,
    )
    wait_kernel_idle(page, timeout=timeout)
    return page


def wait_kernel_idle(page, *, timeout=60_000):
    """Wait until the current notebook's kernel exists and reports ``idle``."""
    page.wait_for_function(f"() => {{ const k = {_KERNEL}; return !!k && k.status === 'idle'; }}",
                           timeout=timeout, polling=100)


def run_all(page, *, timeout=120_000, check=True):
    """Run all cells of the current notebook (command ``notebook:run-all-cells``).

    Returns once every cell has run and the kernel is idle. With ``check``,
    raise `NotebookError` (with the tracebacks) if a cell raised.
    """
    finished = page.evaluate(
        """async (ms) => {
            const run = window.jupyterapp.commands.execute('notebook:run-all-cells');
            const late = new Promise((ok) => setTimeout(() => ok('timeout'), ms));
            const out = await Promise.race([run, late]);
            return out === 'timeout' ? 'timeout' : 'done';
        }""",
        timeout,
    )
    if finished == "timeout":
        raise NotebookError(f"run-all did not finish within {timeout / 1000:.0f} s; "
                            f"errors so far: {error_outputs(page)}")
    wait_kernel_idle(page, timeout=timeout)
    if check:
        errors = error_outputs(page)
        if errors:
            raise NotebookError("a notebook cell raised:\n\n" + "\n\n".join(errors))
    return page


def error_outputs(page):
    """Tracebacks of the error outputs in the page (notebook model in Lab, DOM in Voila)."""
    texts = page.evaluate(
        """() => {
            const app = window.jupyterapp;
            const w = app && app.shell && app.shell.currentWidget;
            if (w && w.content && w.content.widgets) {
                const out = [];
                for (const cell of w.content.widgets) {
                    if (cell.model.type !== 'code') continue;
                    for (const o of cell.model.outputs.toJSON()) {
                        if (o.output_type === 'error') {
                            out.push(o.traceback.join('\\n') || `${o.ename}: ${o.evalue}`);
                        }
                    }
                }
                return out;
            }
            return Array.from(document.querySelectorAll(
                '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
                .map((e) => e.innerText)
                .filter((t) => /Traceback|Error/.test(t));
        }"""
    )
    return [_ANSI.sub("", t) for t in texts]


# -------------------------------------------------------------------------- Voila

def open_voila(page, server, *, timeout=90_000):
    """Open a Voila server's page and wait until the notebook ran and its cells are shown."""
    page.goto(f"{server.url}/?token={server.token}", timeout=timeout)
    page.wait_for_selector("#rendered_cells", state="visible", timeout=timeout)
    page.wait_for_selector("#loading", state="detached", timeout=timeout)
    return page


# ------------------------------------------------------------------------ widgets

def broken_widgets(page):
    """Error widgets in the DOM and console lines saying a view failed."""
    found = [f"error widget: {t.strip()}" for t in page.locator(ERROR_WIDGET).all_inner_texts()]
    log = _LOGS.get(page)
    if log is not None:
        found += [f"console: {text}" for kind, text, _url in log.console
                  if kind in ("error", "warning") and BROKEN_VIEW_TEXT.search(text)]
    return found


def focus_slider(page, index=0, *, timeout=30_000):
    """Focus the handle of the ``index``-th ipywidgets slider."""
    handle = page.locator(SLIDER_HANDLE).nth(index)
    handle.wait_for(state="visible", timeout=timeout)
    handle.focus()
    return handle


def press_slider(page, key="ArrowRight", index=0, *, times=1, timeout=30_000):
    """Focus a slider handle and press ``key`` (ArrowRight, ArrowLeft, PageUp, Home...)."""
    handle = focus_slider(page, index, timeout=timeout)
    for _ in range(times):
        handle.press(key)
    return handle


def image_href(page, index=0, *, timeout=30_000):
    """The ``blob:`` href of the ``index``-th bqplot image (changes when the image does)."""
    image = page.locator(BQPLOT_IMAGE).nth(index)
    image.wait_for(state="attached", timeout=timeout)
    return image.get_attribute("href")


def wait_image_changed(page, previous_href, index=0, *, timeout=30_000):
    """Wait until the ``index``-th bqplot image's href differs from ``previous_href``.

    Returns the new href.
    """
    page.wait_for_function(
        """([sel, i, before]) => {
            const e = document.querySelectorAll(sel)[i];
            return !!e && e.getAttribute('href') !== before;
        }""",
        arg=[BQPLOT_IMAGE, index, previous_href], timeout=timeout, polling="raf",
    )
    return image_href(page, index, timeout=timeout)


def image_pixels(page, index=0, *, timeout=30_000):
    """Decode the ``index``-th bqplot image (its blob) to an RGBA uint8 array (H, W, 4).

    These are the pixels the kernel sent, at their own resolution, read
    through a canvas in the page.
    """
    href = image_href(page, index, timeout=timeout)
    data = page.evaluate(
        """async (href) => {
            const img = new Image();
            img.src = href;
            await img.decode();
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const g = c.getContext('2d');
            g.drawImage(img, 0, 0);
            const px = g.getImageData(0, 0, c.width, c.height).data;
            let s = '';
            for (let i = 0; i < px.length; i += 8192) {
                s += String.fromCharCode.apply(null, px.subarray(i, i + 8192));
            }
            return [c.width, c.height, btoa(s)];
        }""",
        href,
    )
    width, height, b64 = data
    return np.frombuffer(base64.b64decode(b64), dtype=np.uint8).reshape(height, width, 4)


def element_pixels(locator, *, timeout=30_000):
    """Screenshot one element and return its pixels as an RGBA uint8 array (H, W, 4).

    Works for any rendering (SVG, canvas, WebGL): it is what is on screen.
    """
    from PIL import Image

    png = locator.screenshot(timeout=timeout, animations="disabled")
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGBA"))


def wait_pixels_changed(locator, before, *, timeout=30_000, interval=0.05):
    """Wait until the element's screenshot differs from the array ``before``; return it."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        now = element_pixels(locator, timeout=timeout)
        if now.shape != before.shape or np.any(now != before):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"the element did not change within {timeout / 1000:.0f} s")
        time.sleep(interval)


def wait_until(page, predicate, *, timeout=30_000, message="condition"):
    """Wait until ``predicate()`` (a Python callable) is true; return its value.

    Waits with ``page.wait_for_timeout`` so Playwright keeps delivering page
    events (console, web-socket frames) to the log meanwhile; ``time.sleep``
    would not.
    """
    deadline = time.monotonic() + timeout / 1000
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout / 1000:.0f} s")
        page.wait_for_timeout(50)
    return value


# ---------------------------------------------------------------------- artefacts

def artifacts_dir():
    """Where screenshots and logs go: ``$JW_ARTIFACTS`` or ``tests/browser/artifacts``."""
    path = Path(os.environ.get("JW_ARTIFACTS") or Path(__file__).parent / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:150] or "shot"


def save_screenshot(locator, name, *, timeout=30_000):
    """Screenshot one element (not the full page) to ``artifacts_dir()/name.png``.

    Returns the path.
    """
    path = artifacts_dir() / f"{_safe(name)}.png"
    locator.screenshot(path=str(path), timeout=timeout, animations="disabled")
    return path


# ------------------------------------------------------------------------- checks

def assert_no_errors(page, *, ignore_console=(), allow_outside=(), check_outputs=True):
    """Fail if the page shows any sign of trouble.

    Checks: outside requests not on the allow-list, console errors, uncaught
    page errors, errors the kernel reported outside cells (a widget callback
    that raised), broken widget views, and (with ``check_outputs``) error
    outputs of notebook cells.

    Parameters
    ----------
    page : playwright.sync_api.Page
        A page from the ``make_page`` / ``lab_page`` / ``voila_page`` fixtures.
    ignore_console : sequence of str
        Regular expressions of console error texts to tolerate.
    allow_outside : sequence of str
        Regular expressions of outside URLs to tolerate for this check.
    check_outputs : bool
        Also fail on error outputs in the notebook.
    """
    log = log_of(page)
    problems = []
    extra = [re.compile(p) for p in allow_outside]
    outside = [u for u in log.unexpected_outside() if not any(p.search(u) for p in extra)]
    if outside:
        problems.append("asked for URLs outside the machine:\n  " + "\n  ".join(outside))
    console = log.console_errors(ignore=ignore_console)
    if console:
        problems.append("console errors:\n  " + "\n  ".join(console))
    if log.page_errors:
        problems.append("uncaught page errors:\n  " + "\n  ".join(log.page_errors))
    if log.kernel_errors:
        problems.append("errors in the kernel outside cells (widget callbacks):\n" + "\n\n".join(
            f"[answering {e['parent']}] {e['ename']}: {e['evalue']}\n{e['traceback']}"
            for e in log.kernel_errors))
    broken = [b for b in broken_widgets(page)
              if not any(re.search(p, b) for p in ignore_console)]
    if broken:
        problems.append("broken widget views:\n  " + "\n  ".join(broken))
    if check_outputs:
        errors = error_outputs(page)
        if errors:
            problems.append("error outputs:\n" + "\n\n".join(errors))
    if problems:
        raise AssertionError(f"{page.url}\n" + "\n".join(problems))
