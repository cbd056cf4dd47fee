"""ipyaladin's sky widget, loaded by jwst-widgets: a local Aladin Lite, failures in words.

ipyaladin's front end starts with a static ``import`` of Aladin Lite from
``https://esm.sh/aladin-lite@<version>``. Offline that import fails, the
whole module fails with it, and the user sees an empty box (JupyterLab) or a
bare error (Voila). :func:`aladin_class` makes a subclass of
``ipyaladin.Aladin`` whose front end is a small wrapper around ipyaladin's
own (unchanged) code:

* it loads ipyaladin's code with a dynamic ``import()`` it can catch, and
  until that succeeds shows a note in words where the sky will be ("loading",
  then "still loading" after ``_jw_timeout_ms``, or why it failed);
* when the kernel put a copy of Aladin Lite in ``_jw_aladin_js`` (bytes, see
  :mod:`jwst_widgets.aladin_offline`), ipyaladin's import URL is pointed at
  that copy (a ``blob:`` module), so nothing is fetched from esm.sh. The
  copy travels over the widget's own connection to the kernel, so this
  works in JupyterLab, Voila and on remote servers without any server
  configuration; each page evaluates it once (``globalThis`` keeps the
  loaded module);
* it tells the kernel what happened with custom messages
  ``{"event_type": "jw_status", "status": "ready" | "slow" | "failed",
  "detail": ...}``, one ``"ready"`` per drawn view (a new view starts
  empty, so the kernel sends it the scene again).

It also gives each widget its own store of calls waiting for the front end
(ipyaladin 0.8 shares one store between all its widgets).
"""

import functools
import json
from pathlib import Path

__all__ = ["aladin_class", "load_texts"]

_WRAPPER_JS = r"""
// jwst-widgets: ipyaladin's front end, loaded so that a failure is seen and said.
// Aladin Lite comes from esm.sh (ipyaladin's own import) or, when the kernel sent
// a local copy in `_jw_aladin_js`, from that copy (a blob: module).
const ALADIN_URL = __ALADIN_URL__;
const WIDGET_SOURCE = __WIDGET_SOURCE__;
const LOADS = (globalThis.__jwstWidgetsAladinLoads ??= new Map());

function moduleURL(parts) {
  return URL.createObjectURL(new Blob(parts, { type: "text/javascript" }));
}

function loadIpyaladin(model) {
  const local = model.get("_jw_aladin_js");
  const hasLocal = !!local && local.byteLength > 0;
  const key = hasLocal ? "local:" + model.get("_jw_aladin_key") : "cdn:" + ALADIN_URL;
  let promise = LOADS.get(key);
  if (!promise) {
    const urls = [];
    let source = WIDGET_SOURCE;
    if (hasLocal) {
      urls.push(moduleURL([local]));
      source = source.split(ALADIN_URL).join(urls[0]);
    }
    urls.push(moduleURL([source]));
    promise = import(urls[urls.length - 1]).then((mod) => {
      urls.forEach((u) => URL.revokeObjectURL(u));
      return mod.default;
    });
    promise.catch(() => LOADS.delete(key));
    LOADS.set(key, promise);
  }
  return promise;
}

function describe(err) {
  if (err === undefined || err === null) return "unknown error";
  return String((err && err.message) || err);
}

function report(model, status, detail) {
  try {
    model.send({ event_type: "jw_status", status: status, detail: detail || "" });
  } catch (e) {
    console.warn("jwst-widgets sky view: cannot report to the kernel", e);
  }
}

function render(args) {
  const { model, el } = args;
  const texts = model.get("_jw_texts") || {};
  const note = document.createElement("div");
  note.className = "jw-aladin-note";
  note.style.cssText = "padding:10px 12px;margin:4px 0;border:1px solid #bbb;" +
    "border-radius:4px;background:#f6f6f6;color:#222;font-size:13px;line-height:1.4;";
  note.textContent = texts.loading || "Loading Aladin Lite...";
  el.appendChild(note);
  let cleanup = null;
  let closed = false;
  const slow = setTimeout(() => {
    if (closed) return;
    note.textContent = texts.slow || "Aladin Lite is still loading.";
    note.classList.add("jw-aladin-slow");
    report(model, "slow", "");
  }, model.get("_jw_timeout_ms") || 20000);
  loadIpyaladin(model)
    .then(async (widget) => {
      if (widget.initialize) await widget.initialize({ model });
      if (closed) return;
      clearTimeout(slow);
      note.remove();
      cleanup = widget.render(args);
      report(model, "ready", "");
    })
    .catch((err) => {
      clearTimeout(slow);
      if (closed) return;
      const detail = describe(err);
      // A failed import names a blob: URL, which says nothing to a reader.
      const said = /imported module|Failed to fetch|blob:/.test(detail) ? "" :
        " (The browser said: " + detail + ")";
      note.textContent = (texts.failed || "Aladin Lite could not be loaded.") + said;
      note.classList.remove("jw-aladin-slow");
      note.classList.add("jw-aladin-failed");
      note.style.background = "#fff4e5";
      note.style.borderColor = "#e0a040";
      console.warn("jwst-widgets sky view: Aladin Lite could not be loaded:", err);
      report(model, "failed", detail);
    });
  return () => {
    closed = true;
    clearTimeout(slow);
    if (typeof cleanup === "function") cleanup();
  };
}

export default { render };
"""


@functools.cache
def aladin_class():
    """The ``ipyaladin.Aladin`` subclass with the front end above (made on first use).

    Its attribute ``import_url_found`` says whether the installed ipyaladin
    imports Aladin Lite from the URL the local copy replaces (when False,
    only esm.sh can be used).

    Examples
    --------
    >>> cls = aladin_class()                                   # doctest: +SKIP
    >>> aladin = cls(target="53.16 -27.78", fov=0.1,
    ...              texts=load_texts("cdn", "3.9.2-beta"))    # doctest: +SKIP
    """
    import ipyaladin
    import traitlets
    from ipyaladin.utils.call_store import CallStore

    from ..aladin_offline import cdn_url, required_version

    widget_js = (Path(ipyaladin.__file__).parent / "static" / "widget.js").read_text("utf-8")
    url = cdn_url(required_version())
    esm = (_WRAPPER_JS.replace("__ALADIN_URL__", json.dumps(url))
           .replace("__WIDGET_SOURCE__", json.dumps(widget_js)))

    class SkyAladin(ipyaladin.Aladin):
        """ipyaladin's widget, loaded by jwst-widgets' front end (local copy, failures)."""

        _esm = esm
        _jw_aladin_js = traitlets.Bytes(b"").tag(sync=True)
        _jw_aladin_key = traitlets.Unicode("").tag(sync=True)
        _jw_texts = traitlets.Dict().tag(sync=True)
        _jw_timeout_ms = traitlets.Int(20000).tag(sync=True)

        def __init__(self, *, aladin_js=b"", aladin_key="", texts=None, timeout_ms=20000,
                     **options):
            # ipyaladin keeps one store of waiting calls for all its widgets (a class
            # attribute): give each widget its own.
            self._call_store = CallStore()
            # Set before the widget opens, so the browser gets them with the widget
            # itself (not in an update that could come after the first drawing).
            self._jw_aladin_js = bytes(aladin_js)
            self._jw_aladin_key = str(aladin_key)
            self._jw_texts = dict(texts or {})
            self._jw_timeout_ms = int(timeout_ms)
            super().__init__(**options)

    SkyAladin.import_url_found = url in widget_js
    return SkyAladin


def load_texts(source, version):
    """What the front end says while Aladin Lite loads, is slow, or failed (a dict).

    ``source`` is ``"cdn"`` (esm.sh) or ``"local"`` (the local copy).

    Examples
    --------
    >>> sorted(load_texts("cdn", "3.9.2-beta"))
    ['failed', 'loading', 'slow']
    """
    cdn = f"https://esm.sh/aladin-lite@{version}"
    offline = ("For the sky view without internet, run 'python -m jwst_widgets.aladin_offline "
               "fetch' once (it needs the npm registry, or a tarball made with 'npm pack "
               f"aladin-lite@{version}'), then run this cell again.")
    if source == "local":
        return {
            "loading": f"Loading Aladin Lite {version} from the local copy...",
            "slow": f"Aladin Lite {version} (local copy) is still starting...",
            "failed": (f"The sky view could not start Aladin Lite {version} from the local copy "
                       "(it needs a browser with WebGL2). Everything else keeps working."),
        }
    return {
        "loading": f"Loading Aladin Lite {version} from {cdn} ...",
        "slow": (f"Aladin Lite is still loading from {cdn}: the network may be slow or "
                 f"blocked. Everything else keeps working. {offline}"),
        "failed": (f"The sky view could not load Aladin Lite from {cdn}: this browser cannot "
                   f"reach the internet, or that site is blocked. Everything else keeps "
                   f"working. {offline}"),
    }
