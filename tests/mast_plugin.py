"""MAST test support: the ``--remote-data`` option and a replay of MAST's answers.

Register in ``tests/conftest.py`` with ``pytest_plugins = ["mast_plugin"]``.

The network is closed where the tests run, so the archive's answers are
recorded by hand in ``tests/data/mast/`` in MAST's exact formats (the Portal
API's JSON, the columns configs, the name resolver's JSON) and served by
:class:`MastReplay`, a ``requests`` transport adapter given to
``MastClient(transport=...)``. Everything above the HTTP transport (astroquery,
requests, urllib3's response handling, our downloader) runs for real.
Downloads are small NIRCam-like FITS files built here (:func:`build_product_fits`),
served with Content-Length and honouring HTTP ``Range``; faults (no network,
timeouts, HTTP errors, a connection that breaks mid-file) are injected per
request.
"""

import dataclasses
import io
import json
import os
import urllib.parse

import numpy as np
import pytest

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mast")


# --------------------------------------------------------------------------
# --remote-data


def pytest_addoption(parser):
    parser.addoption("--remote-data", action="store_true", default=False,
                     help="run the tests marked remote_data against the real MAST archive")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--remote-data"):
        return
    skip = pytest.mark.skip(reason="talks to the real MAST archive: run with --remote-data")
    for item in items:
        if "remote_data" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------
# products served for download


def build_product_fits(filename, *, shape=(128, 128), seed=0):
    """Bytes of a small NIRCam-like ``_cal`` or ``_i2d`` FITS file.

    The layout (HDUs, header cards, shape) is fixed, so the size is fixed:
    the recorded product lists give these sizes.
    """
    from astropy.io import fits

    kind = "i2d" if filename.endswith("_i2d.fits") else "cal"
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    sci = 0.25 + rng.normal(0.0, 0.02, shape)
    for x0, y0, amp in ((30, 40, 3.0), (90, 70, 1.5), (60, 100, 0.8)):
        sci += amp * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.2 ** 2))
    primary = fits.PrimaryHDU()
    h = primary.header
    h["TELESCOP"] = "JWST"
    h["INSTRUME"] = "NIRCAM"
    h["DETECTOR"] = "MULTIPLE" if kind == "i2d" else "NRCB1"
    h["FILTER"] = "F090W"
    h["PUPIL"] = "CLEAR"
    h["PROGRAM"] = "02733"
    h["TARGPROP"] = "NGC3132"
    h["FILENAME"] = filename
    h["DATAMODL"] = "ImageModel"
    h["EFFEXPTM"] = 1417.3
    sci_h = fits.Header()
    sci_h["BUNIT"] = "MJy/sr"
    sci_h["PHOTMJSR"] = 2.3
    for key, value in (("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"),
                       ("CRPIX1", nx / 2 + 0.5), ("CRPIX2", ny / 2 + 0.5),
                       ("CRVAL1", 151.757083), ("CRVAL2", -40.436389),
                       ("CDELT1", -8.6e-6), ("CDELT2", 8.6e-6),
                       ("CUNIT1", "deg"), ("CUNIT2", "deg")):
        sci_h[key] = value
    hdus = [primary,
            fits.ImageHDU(sci.astype(np.float32), sci_h, name="SCI"),
            fits.ImageHDU(np.full(shape, 0.02, np.float32), name="ERR")]
    if kind == "cal":
        dq = np.zeros(shape, np.uint32)
        dq[5, 5] = 1
        hdus.append(fits.ImageHDU(dq, name="DQ"))
    else:
        hdus.append(fits.ImageHDU(np.full(shape, 4, np.int32), name="CON"))
        hdus.append(fits.ImageHDU(np.full(shape, 1.0e4, np.float32), name="WHT"))
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


# --------------------------------------------------------------------------
# the replay


class ReplayMiss(AssertionError):
    """A request the recordings do not answer (a test or a recording is wrong)."""


@dataclasses.dataclass
class Exchange:
    """One request seen by the replay (kept in memory only)."""

    method: str
    url: str
    host: str
    path: str
    query: dict
    headers: dict
    timeout: object
    mashup: dict = None      # the Portal API request, for /api/v0/invoke
    form: dict = None        # form fields of other POSTs
    status: int = None
    sent_bytes: int = 0

    @property
    def service(self):
        return (self.mashup or {}).get("service")

    def filters(self):
        """``{paramName: values}`` of a Portal API filtered query."""
        params = (self.mashup or {}).get("params", {})
        return {f["paramName"]: (f.get("values"), f.get("freeText"))
                for f in params.get("filters", [])}


class _Truncated(io.RawIOBase):
    """A body that ends early (the connection broke after ``n`` bytes)."""

    def __init__(self, data):
        self._buf = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, b):
        chunk = self._buf.read(len(b))
        b[:len(chunk)] = chunk
        return len(chunk)


class MastReplay:
    """A ``requests`` adapter that answers as MAST does, from recordings.

    Parameters
    ----------
    data_dir : str
        Folder with ``routes.json`` and the recorded answers.

    Attributes
    ----------
    log : list of Exchange
        Every request, in order.
    """

    def __init__(self, data_dir=DATA_DIR):
        with open(os.path.join(data_dir, "routes.json")) as fh:
            self.routes = json.load(fh)["routes"]
        self.data_dir = data_dir
        self.files = {}          # dataURI -> (bytes, needs login)
        self.tokens = {}         # accepted token -> display name
        self.faults = []         # (match dict, fault, times left or None)
        self.gates = []          # (match dict, threading.Event)
        self.log = []

    # -- set-up by tests ---------------------------------------------------

    def add_file(self, uri, data, *, proprietary=False):
        """Serve ``data`` for ``uri``; a proprietary file needs a login."""
        self.files[uri] = (bytes(data), proprietary)

    def accept_token(self, token, name="A. Astronomer"):
        self.tokens[token] = name

    def route(self, file, **match):
        """Answer requests matching ``match`` with ``file`` (before the defaults)."""
        self.routes.insert(0, dict(match, file=file))

    def fail(self, fault, *, times=None, **match):
        """Make matching requests fail.

        ``fault`` is ``"offline"`` (no network), ``"timeout"`` (no answer),
        ``"connect-timeout"``, ``"break:N"`` (the body stops after N bytes),
        ``"error-status"`` (a Portal API answer with status ERROR),
        ``"executing"`` (the Portal API's "still working" answer),
        ``"not-json"`` (an HTML page with status 200), or an HTTP status
        code. ``match`` keys: ``path``, ``service``, ``host``, ``method``.
        """
        self.faults.append([match, fault, times])

    def hold(self, **match):
        """Make matching requests wait until :meth:`release` (to test a busy widget)."""
        import threading

        gate = threading.Event()
        self.gates.append((match, gate))
        return gate

    def release(self):
        for _, gate in self.gates:
            gate.set()
        self.gates.clear()

    def clear_faults(self):
        self.faults.clear()

    def requests_to(self, path):
        return [e for e in self.log if e.path == path]

    # -- the adapter interface ---------------------------------------------

    def close(self):
        pass

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        import requests

        parts = urllib.parse.urlsplit(request.url)
        ex = Exchange(method=request.method, url=request.url, host=parts.hostname,
                      path=parts.path, query=dict(urllib.parse.parse_qsl(parts.query)),
                      headers=dict(request.headers), timeout=timeout)
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        if body and parts.path.endswith("/invoke"):
            form = urllib.parse.parse_qs(body)
            ex.mashup = json.loads(form["request"][0])
        elif body:
            ex.form = dict(urllib.parse.parse_qsl(body))
        self.log.append(ex)

        for match, gate in list(self.gates):
            if all(self._field(ex, k) == v for k, v in match.items()):
                gate.wait(30)
        fault = self._fault(ex)
        where = f"HTTPSConnectionPool(host='{ex.host}', port=443)"
        if fault == "offline":
            raise requests.exceptions.ConnectionError(
                f"{where}: Max retries exceeded with url: {ex.path} (Caused by NameResolutionError"
                f"(\"Failed to resolve '{ex.host}' ([Errno -3] Temporary failure in name "
                "resolution)\"))", request=request)
        if fault == "timeout":
            raise requests.exceptions.ReadTimeout(
                f"{where}: Read timed out. (read timeout={timeout[1]})", request=request)
        if fault == "connect-timeout":
            raise requests.exceptions.ConnectTimeout(
                f"{where}: Max retries exceeded (Caused by ConnectTimeoutError(connect "
                f"timeout={timeout[0]}))", request=request)
        if isinstance(fault, int):
            page = (f"<html><head><title>{fault}</title></head><body><h1>{fault}</h1>"
                    "</body></html>").encode()
            return self._respond(request, ex, fault, page, "text/html")
        if fault == "not-json":
            page = b"<html><body>The MAST Portal is down for maintenance.</body></html>"
            return self._respond(request, ex, 200, page, "text/html")
        if fault == "executing":
            answer = {"status": "EXECUTING", "msg": "", "data": [], "fields": []}
            return self._respond(request, ex, 200, json.dumps(answer).encode(), "text/plain")
        if fault == "error-status":
            answer = {"status": "ERROR", "msg": "Error converting data type varchar to numeric.",
                      "data": [], "fields": []}
            return self._respond(request, ex, 200, json.dumps(answer).encode(), "text/plain")

        if ex.path == "/whoami":
            return self._whoami(request, ex)
        if ex.path.endswith("/Download/file"):
            cut = int(fault.split(":")[1]) if isinstance(fault, str) and \
                fault.startswith("break:") else None
            return self._download(request, ex, cut)
        for route in self.routes:
            if self._matches(route, ex):
                with open(os.path.join(self.data_dir, route["file"]), "rb") as fh:
                    return self._respond(request, ex, 200, fh.read(),
                                         route.get("content_type", "text/plain"))
        raise ReplayMiss(f"no recording answers {ex.method} {ex.url} "
                         f"{ex.mashup or ex.form or ''}")

    # -- helpers -------------------------------------------------------------

    def _fault(self, ex):
        for entry in self.faults:
            match, fault, times = entry
            if all(self._field(ex, k) == v for k, v in match.items()):
                if times is not None:
                    if times <= 0:
                        continue
                    entry[2] = times - 1
                return fault
        return None

    @staticmethod
    def _field(ex, key):
        if key == "service":
            return ex.service
        return getattr(ex, key)

    @staticmethod
    def _matches(route, ex):
        if route.get("method", "POST") != ex.method or route.get("path") != ex.path:
            return False
        if "host" in route and route["host"] != ex.host:
            return False
        if "service" in route and route["service"] != ex.service:
            return False
        for key, value in route.get("form", {}).items():
            if (ex.form or {}).get(key) != value:
                return False
        for key, value in route.get("query", {}).items():
            if ex.query.get(key) != value:
                return False
        return True

    def _cookie(self, ex, name):
        for part in ex.headers.get("Cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def _whoami(self, request, ex):
        token = self._cookie(ex, "mast_token")
        if token in self.tokens:
            info = {"anon": False, "ezid": "astronomer",
                    "attrib": {"display_name": self.tokens[token], "internal": "0"},
                    "scopes": ["mast:user:info", "mast:exclusive_access"], "session": None}
        else:
            info = {"anon": True, "ezid": None, "attrib": {}, "scopes": [], "session": None}
        return self._respond(request, ex, 200, json.dumps(info).encode(), "application/json")

    def _download(self, request, ex, cut):
        uri = ex.query.get("uri", "")
        if uri not in self.files:
            return self._respond(request, ex, 404, b"File not found", "text/plain")
        data, proprietary = self.files[uri]
        if proprietary and self._cookie(ex, "mast_token") not in self.tokens:
            return self._respond(request, ex, 401, b"Unauthorized", "text/plain")
        headers = {"Content-Disposition": f"attachment; filename={uri.rsplit('/', 1)[-1]}",
                   "Accept-Ranges": "bytes"}
        rng = ex.headers.get("Range", "")
        status, start = 200, 0
        if rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                return self._respond(request, ex, 416, b"", "text/plain", headers)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        return self._respond(request, ex, status, data[start:], "application/octet-stream",
                             headers, cut=cut)

    def _respond(self, request, ex, status, body, content_type, headers=None, cut=None):
        import urllib3
        from requests.adapters import HTTPAdapter

        all_headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        all_headers.update(headers or {})
        sent = body if cut is None else body[:cut]
        raw = urllib3.HTTPResponse(
            body=io.BufferedReader(_Truncated(sent)), headers=all_headers, status=status,
            reason={200: "OK", 206: "Partial Content", 401: "Unauthorized", 403: "Forbidden",
                    404: "Not Found", 416: "Range Not Satisfiable", 500: "Internal Server Error",
                    502: "Bad Gateway", 503: "Service Unavailable"}.get(status, ""),
            preload_content=False, decode_content=False, enforce_content_length=True)
        ex.status = status
        ex.sent_bytes = len(sent)
        return HTTPAdapter().build_response(request, raw)


@pytest.fixture
def product_fits():
    """:func:`build_product_fits`: bytes of a small NIRCam ``_cal`` or ``_i2d`` file."""
    return build_product_fits


@pytest.fixture
def mast_replay():
    """A fresh :class:`MastReplay` over the recordings in tests/data/mast."""
    replay = MastReplay()
    yield replay
    replay.release()


@pytest.fixture
def mast_client(mast_replay, tmp_path):
    """A MastClient that talks to the replay, with its cache in a tmp dir."""
    from jwst_widgets.mast import MastClient

    client = MastClient(cache_dir=tmp_path / "mast-cache", transport=mast_replay)
    yield client
    client.close()


@pytest.fixture
def remote_client(request, tmp_path):
    """A MastClient on the real archive (tests marked remote_data only)."""
    if not request.config.getoption("--remote-data", default=False):
        pytest.skip("talks to the real MAST archive: run with --remote-data")
    from jwst_widgets.mast import MastClient

    client = MastClient(cache_dir=tmp_path / "mast-cache")
    yield client
    client.close()
