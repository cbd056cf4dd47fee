"""A local copy of Aladin Lite, so the sky view works without internet.

ipyaladin's wheel does not contain Aladin Lite: its front end imports it at
run time from ``https://esm.sh/aladin-lite@<version>`` (the version is
``ipyaladin.__aladin_lite_version__``). Without internet that import fails
and the sky view cannot draw. This module keeps a copy of the npm package
``aladin-lite`` of the same version in the cache
(``~/.cache/jwst-widgets/aladin-lite/<version>/``, or under
``$JWST_WIDGETS_CACHE``): its ``dist/aladin.js`` (one self-contained ES
module, about 2.6 MB) with the package's licence files. The sky view
(:class:`jwst_widgets.widgets.sky.SkyView`) sends that file to the browser
through the widget's own connection to the kernel, so it works the same in
JupyterLab, Voila and a remote server, with no server configuration.

Aladin Lite is free software under the GNU LGPL 3.0 or later (CDS,
Strasbourg). jwst-widgets does not ship it: it is fetched from the npm
registry on request, kept unmodified beside its ``LICENSE`` and ``COPYING``,
and never committed to the repository.

Fetch it once on a machine that can reach the npm registry::

    python -m jwst_widgets.aladin_offline fetch

or, on a machine without any network, from a tarball made elsewhere with
``npm pack aladin-lite@<version>``::

    python -m jwst_widgets.aladin_offline fetch --tarball aladin-lite-3.9.2-beta.tgz

``python -m jwst_widgets.aladin_offline status`` says what is there.

Examples
--------
>>> from jwst_widgets import aladin_offline
>>> aladin_offline.required_version()              # doctest: +SKIP
'3.9.2-beta'
>>> aladin_offline.fetch()                         # doctest: +SKIP
PosixPath('/home/me/.cache/jwst-widgets/aladin-lite/3.9.2-beta/aladin.js')
>>> aladin_offline.local_copy()                    # doctest: +SKIP
PosixPath('/home/me/.cache/jwst-widgets/aladin-lite/3.9.2-beta/aladin.js')
"""

import base64
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .errors import InputError

__all__ = [
    "NPM_REGISTRY",
    "PACKAGE",
    "cdn_url",
    "copy_dir",
    "fetch",
    "local_copy",
    "read_source",
    "required_version",
    "status_text",
    "main",
]

#: Where ``fetch`` asks for the package (any npm registry mirror works).
NPM_REGISTRY = "https://registry.npmjs.org"
#: The npm package.
PACKAGE = "aladin-lite"
#: Files kept from the package: the module, its licence, its notice of origin.
_KEEP = {"package/dist/aladin.js": "aladin.js", "package/LICENSE": "LICENSE",
         "package/COPYING": "COPYING", "package/package.json": "package.json",
         "package/README.md": "README.md"}
_RECORD = "SOURCE.json"
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$")
_MAX_TARBALL = 64 << 20  # bytes; the 3.9 tarball is 0.9 MB


def required_version():
    """The Aladin Lite version the installed ipyaladin imports (``'3.9.2-beta'``).

    Examples
    --------
    >>> required_version()          # doctest: +SKIP
    '3.9.2-beta'
    """
    from ipyaladin import __aladin_lite_version__
    return str(__aladin_lite_version__)


def cdn_url(version=None):
    """The URL ipyaladin's front end imports Aladin Lite from.

    Examples
    --------
    >>> cdn_url("3.9.2-beta")
    'https://esm.sh/aladin-lite@3.9.2-beta'
    """
    return f"https://esm.sh/{PACKAGE}@{_check_version(version)}"


def _check_version(version):
    version = required_version() if version is None else str(version)
    if not _VERSION.match(version):
        raise InputError(f"version must be an npm version such as '3.9.2-beta'; got {version!r}",
                         param="version")
    return version


def _cache_root():
    from .datasets import cache_dir
    return Path(cache_dir()) / PACKAGE


def copy_dir(version=None):
    """The folder that holds (or will hold) the local copy of ``version``.

    Examples
    --------
    >>> copy_dir("3.9.2-beta").name
    '3.9.2-beta'
    """
    return _cache_root() / _check_version(version)


def local_copy(version=None):
    """Path of the local ``aladin.js`` of ``version`` (default: ipyaladin's), or None.

    A copy counts only when it is complete: the file is there and its SHA-256
    is the one recorded when it was fetched.

    Examples
    --------
    >>> path = local_copy()          # doctest: +SKIP
    >>> path is None or path.name == "aladin.js"   # doctest: +SKIP
    True
    """
    folder = copy_dir(version)
    try:
        record = json.loads((folder / _RECORD).read_text(encoding="utf-8"))
        data = (folder / "aladin.js").read_bytes()
    except (OSError, ValueError):
        return None
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        return None
    return folder / "aladin.js"


def read_source(version=None):
    """The bytes of the local ``aladin.js``; InputError (with what to run) when missing.

    Examples
    --------
    >>> source = read_source()        # doctest: +SKIP
    >>> source[-40:]                  # doctest: +SKIP
    b'...export{f as default};'
    """
    version = _check_version(version)
    path = local_copy(version)
    if path is None:
        raise InputError(
            f"there is no local copy of Aladin Lite {version} in {copy_dir(version)}; "
            f"run 'python -m jwst_widgets.aladin_offline fetch' where the npm registry can "
            f"be reached (or 'fetch --tarball FILE' with the output of "
            f"'npm pack {PACKAGE}@{version}')", param="aladin_lite")
    return path.read_bytes()


# --------------------------------------------------------------------------- fetching

def _get(url, timeout, what):
    request = urllib.request.Request(url, headers={"Accept": "application/json, */*",
                                                   "User-Agent": "jwst-widgets"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(_MAX_TARBALL + 1)
    except urllib.error.HTTPError as exc:
        raise InputError(f"the npm registry answered HTTP {exc.code} for {what} ({url})",
                         param="version") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"cannot reach the npm registry for {what} ({url}): {reason}. "
                         f"Without network, give a tarball made elsewhere with "
                         f"'npm pack {PACKAGE}@<version>' (fetch --tarball FILE)",
                         param="registry") from exc
    if len(data) > _MAX_TARBALL:
        raise InputError(f"{what} is larger than {_MAX_TARBALL >> 20} MB; refusing it",
                         param="registry")
    return data


def _check_integrity(data, integrity, shasum):
    """Check the tarball against the registry's ``dist.integrity`` (or ``shasum``)."""
    if integrity:
        for item in str(integrity).split():
            algo, _, digest = item.partition("-")
            if algo in ("sha512", "sha384", "sha256"):
                got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
                if got != digest:
                    raise InputError(f"the downloaded tarball does not match the registry's "
                                     f"{algo} checksum; try again", param="registry")
                return f"{algo}-{got}"
    if shasum:
        got = hashlib.sha1(data).hexdigest()
        if got != shasum:
            raise InputError("the downloaded tarball does not match the registry's sha1 "
                             "checksum; try again", param="registry")
        return f"sha1-{got}"
    raise InputError("the registry gave no checksum for the tarball; refusing it",
                     param="registry")


def _unpack(data, version, where):
    """Read the kept files from the tarball bytes; check it is the right package."""
    files = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = _KEEP.get(member.name)
                if name is not None and member.isfile():
                    files[name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"{where} is not an npm package tarball: {exc}", param="tarball") \
            from exc
    try:
        meta = json.loads(files["package.json"])
    except (KeyError, ValueError) as exc:
        raise InputError(f"{where} has no readable package/package.json", param="tarball") \
            from exc
    if meta.get("name") != PACKAGE or meta.get("version") != version:
        raise InputError(f"{where} holds {meta.get('name')}@{meta.get('version')}; "
                         f"{PACKAGE}@{version} is needed", param="tarball")
    if "aladin.js" not in files or b"export" not in files["aladin.js"][-4096:]:
        raise InputError(f"{where} has no ES module at package/dist/aladin.js",
                         param="tarball")
    if "LICENSE" not in files and "COPYING" not in files:
        raise InputError(f"{where} has no licence file; refusing to keep it", param="tarball")
    return files, meta


def fetch(version=None, *, tarball=None, registry=NPM_REGISTRY, timeout=30, force=False):
    """Fetch Aladin Lite from the npm registry (or a tarball) into the cache.

    Parameters
    ----------
    version : str, optional
        The npm version; default the one ipyaladin imports
        (:func:`required_version`). Another version is of no use to the
        installed ipyaladin.
    tarball : str or os.PathLike, optional
        A package tarball already on disk (``npm pack aladin-lite@<version>``
        makes one); then nothing is downloaded.
    registry : str
        The npm registry (or a mirror of it).
    timeout : float
        Seconds to wait for each answer of the registry.
    force : bool
        Fetch again even when a complete copy is there.

    Returns
    -------
    pathlib.Path
        The local ``aladin.js``.

    Raises
    ------
    jwst_widgets.InputError
        The registry cannot be reached, the tarball fails its checksum, or it
        is not the package and version asked for (the message says which).

    Examples
    --------
    >>> from jwst_widgets.aladin_offline import fetch
    >>> fetch()                                                    # doctest: +SKIP
    PosixPath('/home/me/.cache/jwst-widgets/aladin-lite/3.9.2-beta/aladin.js')
    """
    version = _check_version(version)
    if not force and tarball is None:
        have = local_copy(version)
        if have is not None:
            return have
    if tarball is not None:
        path = Path(tarball).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"tarball {str(path)!r} cannot be read: {exc.strerror}",
                             param="tarball") from exc
        origin = {"tarball": str(path.resolve()),
                  "sha512": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()}
        where = f"tarball {str(path)!r}"
    else:
        base = str(registry).rstrip("/")
        meta = json.loads(_get(f"{base}/{PACKAGE}/{version}", timeout,
                               f"{PACKAGE}@{version}'s metadata"))
        dist = meta.get("dist") or {}
        url = dist.get("tarball")
        if not url:
            raise InputError(f"the registry lists no tarball for {PACKAGE}@{version}",
                             param="version")
        data = _get(url, timeout, f"{PACKAGE}@{version}'s tarball")
        checked = _check_integrity(data, dist.get("integrity"), dist.get("shasum"))
        origin = {"tarball": url, "integrity": checked}
        where = f"the tarball from {url}"
    files, meta = _unpack(data, version, where)
    record = {"package": PACKAGE, "version": version, "license": meta.get("license"),
              "sha256": hashlib.sha256(files["aladin.js"]).hexdigest(), **origin}
    return _install(copy_dir(version), files, record) / "aladin.js"


def _install(folder, files, record):
    """Write the files to a temporary folder beside ``folder``, then swap it in."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the copy is for every user
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        (tmp / _RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}-old-{os.getpid()}")
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


# ------------------------------------------------------------------------------- CLI

def status_text(version=None):
    """One paragraph saying whether a local copy is there and where Aladin Lite comes from.

    Examples
    --------
    >>> print(status_text())                        # doctest: +SKIP
    Aladin Lite 3.9.2-beta: local copy /home/me/.cache/jwst-widgets/aladin-lite/...
    """
    version = _check_version(version)
    path = local_copy(version)
    if path is None:
        return (f"Aladin Lite {version}: no local copy in {copy_dir(version)}\n"
                f"  the sky view loads it from {cdn_url(version)} (needs internet);\n"
                f"  run 'python -m jwst_widgets.aladin_offline fetch' for offline use")
    record = json.loads((path.parent / _RECORD).read_text(encoding="utf-8"))
    return (f"Aladin Lite {version}: local copy {path} ({path.stat().st_size} bytes, "
            f"{record.get('license')}, from {record.get('tarball')})")


def main(argv=None):
    """``python -m jwst_widgets.aladin_offline {fetch,status,path}``; returns the exit code."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m jwst_widgets.aladin_offline",
        description="Keep a local copy of Aladin Lite (LGPL-3.0-or-later, from npm) so that "
                    "the jwst-widgets sky view works without internet.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="fetch the npm package into the cache")
    get.add_argument("--tarball", help="use this 'npm pack' tarball instead of downloading")
    get.add_argument("--registry", default=NPM_REGISTRY, help="npm registry (default %(default)s)")
    get.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    get.add_argument("--force", action="store_true", help="fetch again even if present")
    get.add_argument("--version", dest="aladin_version", default=None,
                     help="Aladin Lite version (default: the one ipyaladin imports)")
    for name, text in (("status", "say whether a local copy is there"),
                       ("path", "print the local aladin.js (exit 1 if none)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--version", dest="aladin_version", default=None)
    args = parser.parse_args(argv)
    try:
        version = _check_version(args.aladin_version)
        if args.command == "fetch":
            path = fetch(version, tarball=args.tarball, registry=args.registry,
                         timeout=args.timeout, force=args.force)
            print(f"Aladin Lite {version} (LGPL-3.0-or-later) is in {path.parent}")
            return 0
        if args.command == "status":
            print(status_text(version))
            return 0
        path = local_copy(version)
        if path is None:
            print(f"no local copy of Aladin Lite {version}", file=sys.stderr)
            return 1
        print(path)
        return 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
