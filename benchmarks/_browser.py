"""Shared code of the browser benchmarks: servers, pages, the paint probe, statistics.

The servers and hermetic pages come from the browser test harness
(``tests/browser/browser_servers.py`` and ``browser_page.py``), imported as
they are. What is added here:

* :class:`Lab`: JupyterLab on 127.0.0.1 serving copies of the benchmark
  notebooks (``benchmarks/notebooks/``) with their ``parameters`` cell
  filled in;
* :class:`Probe`: a script in the page that watches one image element and
  (optionally) the markers of a scatter every animation frame, and tells
  when a new image has been *painted* (see ``benchmarks/README.md``);
* :func:`kernel_exec`: run code in the notebook's kernel and read its output
  (the notebooks keep a log of when changes arrived and images were sent);
* :func:`machine_info`, :func:`summary`, :func:`save_results`.

Times measured in the page are in milliseconds of ``performance.now()``;
times measured in the kernel are seconds of ``time.perf_counter()``. The two
clocks are never compared with each other, only intervals within each.
"""

import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NOTEBOOKS = HERE / "notebooks"
RESULTS = HERE / "results"
sys.path.insert(0, str(REPO / "tests" / "browser"))

from browser_page import (  # noqa: E402  (the harness, used as it is)
    CHROMIUM,
    CHROMIUM_FLAGS,
    KNOWN_HARMLESS_OUTSIDE,
    log_of,
    make_hermetic,
    open_notebook,
    run_all,
    wait_kernel_idle,
    watch_page,
)
from browser_servers import start_jupyterlab  # noqa: E402

sys.path.insert(0, str(HERE))
from _common import cpu_model  # noqa: E402

__all__ = [
    "CHROMIUM",
    "Lab",
    "Probe",
    "kernel_exec",
    "launch_browser",
    "machine_info",
    "new_page",
    "open_notebook",
    "run_all",
    "save_results",
    "summary",
    "wait_builder_idle",
    "wait_kernel_idle",
]

VIEWPORT = {"width": 1800, "height": 1200}


# ------------------------------------------------------------------ machine


def load_average():
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_info():
    """Cores, CPU model, memory, load average, versions: printed and saved with each run."""
    model = cpu_model()
    mem = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    mem = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    versions = {}
    for name in ("jwst_widgets", "numpy", "bqplot", "ipywidgets", "jupyterlab", "playwright"):
        try:
            from importlib.metadata import version
            versions[name] = version(name.replace("_", "-"))
        except Exception:  # noqa: BLE001 - informative only
            versions[name] = None
    return {
        "git": git_state(),
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": mem,
        "load_average_start": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def git_state():
    """The commit measured, and the package's files that differ from it (read-only git)."""
    import subprocess

    def git(*args):
        try:
            res = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                 timeout=30)
            return res.stdout.rstrip() if res.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None
    status = git("status", "--porcelain", "--", "jwst_widgets")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted": status.splitlines() if status else []}


def describe_machine(info):
    """One paragraph for the printed report."""
    la = info["load_average_start"]
    lines = [
        f"machine: {info['cores']} cores, {info['cpu_model']}, {info['memory_gib']} GiB",
        f"load average at start: {la[0]} / {la[1]} / {la[2]} (1 / 5 / 15 min)",
    ]
    if info.get("load_average_end"):
        le = info["load_average_end"]
        lines.append(f"load average at end:   {le[0]} / {le[1]} / {le[2]}")
    if info.get("chromium"):
        lines.append(f"browser: Chromium {info['chromium']} (headless, {CHROMIUM})")
    v = info["versions"]
    lines.append("versions: " + ", ".join(f"{k} {x}" for k, x in v.items() if x))
    g = info.get("git") or {}
    if g.get("commit"):
        dirty = g.get("uncommitted") or []
        lines.append(f"code: commit {g['commit']}" + (
            f" plus {len(dirty)} uncommitted file(s) in jwst_widgets: "
            + ", ".join(d[3:] for d in dirty[:6]) if dirty else ""))
    return "\n".join(lines)


# ------------------------------------------------------------------ browser


def launch_browser(playwright):
    """Headless Debian Chromium with the flags measured to work here."""
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"no Chromium at {CHROMIUM}: apt-get install -y chromium "
                         f"(or set JW_CHROMIUM)")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_FLAGS, timeout=60_000)


def new_page(browser, viewport=None):
    """A hermetic page in a fresh context (nothing outside 127.0.0.1 is fetched)."""
    context = browser.new_context(viewport=viewport or VIEWPORT, device_scale_factor=1,
                                  service_workers="block")
    context.set_default_timeout(60_000)
    log = make_hermetic(context, allow=KNOWN_HARMLESS_OUTSIDE)
    context.add_init_script(_WS_LOG)
    page = context.new_page()
    watch_page(page, log)
    return page


#: Logs the page's web-socket traffic in ``window.__jwWs``: (time, direction, bytes) of
#: each message, to split a change's time into browser -> kernel, kernel, kernel ->
#: browser (the image's message arriving) and the front end's own work.
_WS_LOG = r"""(() => {
    const log = window.__jwWs = [];
    const size = (d) => typeof d === 'string' ? d.length : (d.byteLength || d.size || 0);
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
        log.push([performance.now(), 'out', size(data)]);
        if (log.length > 5000) log.splice(0, 2500);
        return send.call(this, data);
    };
    const Native = window.WebSocket;
    window.WebSocket = function (...args) {
        const ws = new Native(...args);
        ws.addEventListener('message', (e) => {
            log.push([performance.now(), 'in', size(e.data)]);
            if (log.length > 5000) log.splice(0, 2500);
        });
        return ws;
    };
    window.WebSocket.prototype = Native.prototype;
    Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();"""


def page_problems(page):
    """Outside asks, page errors and kernel errors seen so far (for the report)."""
    log = log_of(page)
    problems = [f"outside: {u}" for u in log.unexpected_outside()]
    problems += [f"page error: {e.splitlines()[0]}" for e in log.page_errors]
    problems += [f"kernel error: {e['ename']}: {e['evalue']}" for e in log.kernel_errors]
    problems += [f"console: {t}" for t in log.console_errors()]
    return problems


# ------------------------------------------------------------------ server


def fill_parameters(template, dest, **params):
    """Copy a notebook, replacing its cell tagged ``parameters`` by ``NAME = value`` lines."""
    nb = json.loads(Path(template).read_text(encoding="utf-8"))
    if not params:
        Path(dest).write_text(json.dumps(nb, indent=1), encoding="utf-8")
        return dest
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{template} needs exactly one cell tagged 'parameters'")
    source = [f"{name} = {value!r}\n" for name, value in params.items()]
    cells[0]["source"] = source
    Path(dest).write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return dest


class Lab:
    """JupyterLab 4 on 127.0.0.1 serving benchmark notebooks from a temporary root."""

    def __init__(self, timeout=90.0):
        self._tmp = tempfile.TemporaryDirectory(prefix="jw-bench-lab-")
        base = Path(self._tmp.name)
        self.root = base / "root"
        self.root.mkdir()
        self.log_path = base / "jupyterlab.log"
        self.server = start_jupyterlab(self.root, base / "home", log_path=self.log_path,
                                       timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def startup_seconds(self):
        return self.server.startup_seconds

    def add(self, template, name, **params):
        """Put a copy of ``template`` named ``name`` in the root, with its parameters set."""
        fill_parameters(template, self.root / name, **params)
        return name

    def shutdown_kernels(self):
        self.server.shutdown_kernels()

    def close(self):
        self.server.stop()
        self._tmp.cleanup()


# ------------------------------------------------------------------ kernel


_EXEC = """async (code) => {
    const w = window.jupyterapp.shell.currentWidget;
    const kernel = w.sessionContext.session.kernel;
    const future = kernel.requestExecute({code, silent: false, store_history: false});
    let out = '', err = '';
    future.onIOPub = (msg) => {
        const t = msg.header.msg_type;
        if (t === 'stream') {
            if (msg.content.name === 'stdout') out += msg.content.text; else err += msg.content.text;
        } else if (t === 'error') {
            err += msg.content.ename + ': ' + msg.content.evalue + '\\n';
        }
    };
    await future.done;
    return {out, err};
}"""


def kernel_exec(page, code, *, parse_json=False):
    """Run ``code`` in the current notebook's kernel (not as a cell); return its stdout."""
    res = page.evaluate(_EXEC, code)
    if res["err"].strip():
        raise RuntimeError(f"kernel code failed:\n{code}\n---\n{res['err']}")
    return json.loads(res["out"]) if parse_json else res["out"]


def wait_builder_idle(page, timeout_s, name="builder"):
    """Poll ``<name>.wait_idle`` in the kernel (the view shows the latest change).

    Each poll blocks the kernel for at most 50 ms, so widget messages keep flowing.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if kernel_exec(page, f"print({name}.wait_idle(0.05))").strip() == "True":
            return
        page.wait_for_timeout(200)
    raise TrialTimeout(f"{name} was not idle within {timeout_s} s")


# ------------------------------------------------------------------ the probe

_PROBE = r"""(opts) => {
    const P = window.__jwb || (window.__jwb = {installed: false});
    P.opts = opts;
    P.events = []; P.t0 = null; P.t0type = null; P.triggers = []; P.seq = 0;
    // Cheap to call every frame: elements are found once (again only when they leave
    // the document), markers and status lines are read from live collections.
    P.cache = {};
    P.find = (key, sel) => {
        const e = P.cache[key];
        if (e && e.isConnected) return e;
        return (P.cache[key] = sel ? document.querySelector(sel) : null);
    };
    P.href = () => {
        const e = P.find('image', P.opts.image);
        return e ? e.getAttribute('href') : null;
    };
    P.markSig = () => {  // the markers' picture: the n-th SVG image of the element
        if (!P.opts.markers) return '';
        const root = P.find('markerRoot', P.opts.markers[0]);
        const im = root ? root.querySelectorAll('image')[P.opts.markers[1]] : null;
        return im ? (im.getAttribute('href') || '') : '';
    };
    P.statusEls = P.opts.status ? document.getElementsByClassName(P.opts.status) : [];
    P.statusText = () => Array.from(P.statusEls).map((e) => e.textContent).join(' / ');
    P.busy = (text) => !!P.opts.busy && new RegExp(P.opts.busy).test(text);
    // Element Timing: the browser reports when each image of a tagged element is painted.
    P.tag = (root) => {
        const imgs = root.querySelectorAll ? root.querySelectorAll('image') : [];
        for (const e of imgs) if (!e.hasAttribute('elementtiming')) e.setAttribute('elementtiming', 'jwb');
    };
    P.lastHref = P.href(); P.lastMarks = P.markSig(); P.lastStatus = P.statusText();
    if (P.installed) return true;
    P.installed = true;
    P.paints = new Map();
    new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
            P.paints.set(e.url, {renderTime: e.renderTime, loadTime: e.loadTime,
                                 w: e.naturalWidth, h: e.naturalHeight});
        }
    }).observe({type: 'element', buffered: true});
    // tag image elements as soon as they are inserted (before their first paint)
    P.tag(document);
    new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) {
            if (n.nodeType !== 1) continue;
            if (n.tagName.toLowerCase() === 'image' && !n.hasAttribute('elementtiming')) {
                n.setAttribute('elementtiming', 'jwb');
            }
            P.tag(n);
        }
    }).observe(document.body, {childList: true, subtree: true});
    for (const type of ['keydown', 'change', 'click', 'mousemove']) {
        document.addEventListener(type, (e) => {
            if (P.triggers.includes(e.type)) {
                P.t0 = performance.now(); P.t0type = e.type;
                if (e.type !== 'mousemove') P.triggers = [];  // a drag: the last move counts
            }
        }, true);
    }
    const frame = () => {
        const now = performance.now();
        const href = P.href();
        if (href !== P.lastHref) {
            P.lastHref = href;
            const ev = {type: 'image', seq: ++P.seq, tSeen: now, status: P.statusText(),
                        href, frames: 0};
            P.events.push(ev);
            if (href) {
                const im = new Image();
                im.src = href;
                im.decode().then(() => {
                    ev.tDecoded = performance.now(); ev.w = im.naturalWidth; ev.h = im.naturalHeight;
                }, () => { ev.decodeFailed = true; });
            } else {
                ev.failed = true;
            }
        }
        const m = P.markSig();
        if (m !== P.lastMarks) {
            P.lastMarks = m;
            P.events.push({type: 'markers', seq: ++P.seq, tSeen: now, status: P.statusText(),
                           frames: 0, href: m.startsWith('blob:') ? m : null});
        }
        const st = P.statusText();
        if (st !== P.lastStatus) {
            P.lastStatus = st;
            P.events.push({type: 'status', tSeen: now, text: st, busy: P.busy(st)});
        }
        for (const ev of P.events) {
            if (ev.tPainted !== undefined || ev.failed || ev.type === 'status') continue;
            if (ev.type === 'markers' && ev.href && P.paints.get(ev.href)) {
                const paint = P.paints.get(ev.href);  // a picture: Element Timing says when
                ev.tPainted = paint.renderTime || paint.loadTime; ev.how = 'element-timing';
                continue;
            }
            if (ev.type === 'markers') {
                // changed in the DOM before this frame: painted in it, seen done by the next
                ev.frames += 1;
                if (ev.frames === 2) ev.tPainted = now;
                continue;
            }
            const paint = P.paints.get(ev.href);
            if (paint) {
                ev.tPainted = paint.renderTime || paint.loadTime; ev.tLoad = paint.loadTime;
                ev.w = paint.w; ev.h = paint.h; ev.how = 'element-timing';
                continue;
            }
            if (ev.href !== P.lastHref) {
                // replaced: if no paint is reported within a second, it was never shown
                if (ev.tReplaced === undefined) ev.tReplaced = now;
                if (now - ev.tReplaced > 1000) ev.superseded = true;
                continue;
            }
            // fallback when no Element Timing entry comes: decoded, then two frames
            if (ev.tDecoded !== undefined && now - ev.tDecoded > 3000) {
                ev.frames += 1;
                if (ev.frames === 2) { ev.tPainted = ev.tDecoded; ev.how = 'decode-fallback'; }
            }
        }
        requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
    return true;
}"""

_STATE = """() => {
    const P = window.__jwb;
    const ws = (window.__jwWs || []).filter((m) => P.t0 !== null && m[0] >= P.t0);
    return {t0: P.t0, t0type: P.t0type, now: performance.now(), events: P.events,
            status: P.statusText(), href: P.href(), ws};
}"""


class TrialTimeout(RuntimeError):
    """A change did not settle in time."""


class Probe:
    """Watch an image element (and markers, and status lines) in a page every frame.

    Parameters
    ----------
    page : playwright Page
    image : str
        CSS selector of the SVG ``image`` element whose ``href`` changes with the image.
    markers : (str, int), optional
        CSS selector of an element and an index: the markers are drawn on a
        picture, the element's n-th SVG ``image`` (its ``href`` is watched, its
        paint timed like the image's).
    status : str, optional
        Class name of status lines; with ``busy`` (a regular expression), a
        change is not finished while one of them matches.
    """

    def __init__(self, page, *, image, markers=None, status=None, busy=None):
        self.page = page
        self.opts = {"image": image, "markers": markers, "status": status, "busy": busy}
        page.evaluate(_PROBE, self.opts)

    def arm(self, triggers):
        """Forget past events; the next DOM event of a type in ``triggers`` starts the clock."""
        self.page.evaluate("(tr) => { const P = window.__jwb; P.events = []; P.t0 = null;"
                           " P.triggers = tr; P.lastStatus = P.statusText(); }", list(triggers))

    def disarm(self):
        self.page.evaluate("() => { window.__jwb.triggers = []; }")

    def state(self):
        return self.page.evaluate(_STATE)

    def now(self):
        return self.page.evaluate("() => performance.now()")

    def wait(self, *, need="any", quiet_ms=600, timeout_s=120, busy_seen_grace_ms=3000,
             accept=None):
        """Wait until the change has been painted and the page has been quiet a while.

        ``need`` is ``"image"`` (a new image must be painted), ``"any"`` (a new
        image or new markers) or ``"first_image"`` (an image at least 2x2
        pixels: the first real image of a cold start). Returns the page state.
        A change that made the status busy and then idle without painting
        anything counts as finished after ``busy_seen_grace_ms``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.state()
            if st["t0"] is not None and self._done(st, need, quiet_ms, busy_seen_grace_ms,
                                                    accept):
                return st
            if time.monotonic() > deadline:
                raise TrialTimeout(f"no {need} painted within {timeout_s} s; "
                                   f"status {st['status']!r}; events {st['events'][-5:]}")
            self.page.wait_for_timeout(40)

    def _done(self, st, need, quiet_ms, grace_ms, accept):
        events, now = st["events"], st["now"]
        visual = [e for e in events if e["type"] in ("image", "markers")]
        if any(e["type"] == "image" and "tPainted" not in e and not e.get("failed")
               and not e.get("superseded") for e in visual):
            return False  # an image still decoding
        if self.opts["busy"] and re.search(self.opts["busy"], st["status"] or ""):
            return False
        last = max([e.get("tPainted", e["tSeen"]) for e in events] + [st["t0"]])
        if now - last < quiet_ms:
            return False
        painted = [e for e in visual if "tPainted" in e]
        if need == "image":
            ok = any(e["type"] == "image" for e in painted)
        elif need == "first_image":
            ok = any(e["type"] == "image" and e.get("w", 0) > 1 for e in painted)
        else:
            ok = bool(painted)
        if ok and accept is not None:
            ok = accept(st)
        if ok:
            return True
        busy_seen = any(e["type"] == "status" and e["busy"] for e in events)
        return need == "any" and busy_seen and now - last >= grace_ms


def analyse(st):
    """Times (ms from the trigger) of the first and last painted images and markers."""
    t0 = st["t0"]
    painted = [e for e in st["events"] if e["type"] in ("image", "markers") and "tPainted" in e]
    images = [e for e in painted if e["type"] == "image"]
    out = {"t0_event": st["t0type"], "n_images": len(images),
           "n_marker_updates": sum(e["type"] == "markers" for e in painted)}

    def rel(e, key="tPainted"):
        return round(e[key] - t0, 1)

    if images:
        first, last = images[0], images[-1]
        out.update(first_image_ms=rel(first), final_image_ms=rel(last),
                   final_image_seen_ms=rel(last, "tSeen"),
                   final_image_seen_to_painted_ms=round(last["tPainted"] - last["tSeen"], 1),
                   final_image_size=[last.get("w"), last.get("h")],
                   first_image_status=first["status"],
                   painted_by=sorted({e.get("how") for e in images}))
        if last.get("tDecoded") is not None:
            out["final_image_decode_ms"] = round(last["tDecoded"] - last["tSeen"], 1)
        # web socket: the change leaving, the largest message (the PNG) before the final
        # image was seen arriving
        ws = st.get("ws") or []
        sent = [m for m in ws if m[1] == "out"]
        got = [m for m in ws if m[1] == "in" and m[0] <= last["tSeen"]]
        if sent:
            out["ws_sent_ms"] = round(sent[0][0] - t0, 1)
        out["ws_log"] = [(round(m[0] - t0, 1), m[1], m[2]) for m in ws]
        if got:
            big = max(got, key=lambda m: m[2])
            out.update(ws_png_arrived_ms=round(big[0] - t0, 1), ws_png_bytes=big[2],
                       ws_in_messages=len(got),
                       ws_last_in_before_seen_ms=round(got[-1][0] - t0, 1))
    if painted:
        out.update(first_any_ms=rel(painted[0]), final_any_ms=rel(painted[-1]),
                   first_any_status=painted[0]["status"])
    # what happened, in order: (kind, ms seen, ms painted or status text)
    out["timeline"] = [
        (e["type"], round(e["tSeen"] - t0, 1),
         e["text"][:80] if e["type"] == "status" else
         (round(e["tPainted"] - t0, 1) if "tPainted" in e else
          ("superseded" if e.get("superseded") else None)))
        for e in st["events"]]
    return out


# ------------------------------------------------------------------ statistics


def summary(values):
    """Median, quartiles, extremes and count of a list of numbers (None values dropped)."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return {"n": 0, "median": None, "p25": None, "p75": None, "min": None, "max": None}
    if len(v) >= 2:
        q = statistics.quantiles(v, n=4, method="inclusive")
        p25, p75 = q[0], q[2]
    else:
        p25 = p75 = v[0]
    return {"n": len(v), "median": round(statistics.median(v), 1), "p25": round(p25, 1),
            "p75": round(p75, 1), "min": round(v[0], 1), "max": round(v[-1], 1)}


def fmt_ms(s, *, spread=True):
    """'123 [110-140]' from a :func:`summary`."""
    if not s or s["median"] is None:
        return "-"
    text = f"{s['median']:.0f}"
    if spread and s["n"] > 1:
        text += f" [{s['p25']:.0f}-{s['p75']:.0f}]"
    return text


def save_results(name, data, *, stamp=True):
    """Write ``benchmarks/results/<name>-<timestamp>.json`` (or ``<name>.json``); return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / (f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json" if stamp else f"{name}.json")
    path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    return path


def print_table(rows, headers):
    """Print rows (lists of str) as an aligned text table."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
