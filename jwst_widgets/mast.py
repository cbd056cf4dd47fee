"""Search and download JWST data from MAST.

This is the only module of jwst-widgets that talks to the archive. It is a
small layer over `astroquery.mast`: searches and product lists go through
astroquery's Portal API calls; downloads go through our own streaming
downloader (a cache, resume of interrupted downloads, progress, a size
check) on the same HTTP session, so a login covers both.

Every request has a bounded connect and read time. No network, a timeout, an
archive error and a product that needs a login each raise a :class:`MastError`
subclass (an :class:`~jwst_widgets.errors.InputError`) with a message in words.

A MAST token for proprietary data is given at run time to
:meth:`MastClient.login`. It lives only in the session's cookie jar, in
memory: jwst-widgets never writes it to a file, a log, a repr or a recipe.

Examples
--------
>>> from jwst_widgets.mast import MastClient
>>> client = MastClient()                                     # doctest: +SKIP
>>> obs = client.search(target="NGC 3132", instrument="NIRCAM/IMAGE",
...                     filters="F200W", calib_level=3)       # doctest: +SKIP
>>> products = client.products(obs[:1], product_type="i2d")  # doctest: +SKIP
>>> paths = client.download(products)                         # doctest: +SKIP
"""

import contextlib
import os
import re
import warnings
from urllib.parse import quote, urlsplit

from .errors import Cancelled, InputError, describe_choices

__all__ = [
    "MastClient",
    "MastError", "MastNetworkError", "MastTimeoutError", "MastArchiveError",
    "MastAuthError", "default_cache_dir", "format_bytes",
    "MAST_SERVER", "RESOLVER_URL", "INSTRUMENTS", "CALIB_LEVELS", "RIGHTS",
    "DATAPRODUCT_TYPES",
]

#: The MAST server (Portal API, downloads, login).
MAST_SERVER = "https://mast.stsci.edu"
#: STScI's name resolver (SANTA), used to turn a target name into a position.
RESOLVER_URL = "https://mastresolver.stsci.edu/Santa-war/query"
#: Where MAST tokens are made.
TOKEN_URL = "https://auth.mast.stsci.edu/token"

#: JWST instruments (``instrument_name`` is ``INSTRUMENT/MODE`` in MAST).
INSTRUMENTS = ("NIRCAM", "NIRISS", "NIRSPEC", "MIRI", "FGS")
#: JWST calibration levels: 1 raw ramps, 2 calibrated exposures, 3 combined.
CALIB_LEVELS = (1, 2, 3)
#: Data-rights choices of :meth:`MastClient.search`.
RIGHTS = ("any", "public", "proprietary")
#: Observation product types MAST knows (``dataproduct_type``).
DATAPRODUCT_TYPES = ("image", "cube", "spectrum", "timeseries", "measurements")

_MJD_MAX = 100000.0          # 2132-09-01: "no upper limit" for MJD ranges
_CHUNK = 1 << 16             # download chunk, bytes (what a broken connection may lose)
_DATA_URI = re.compile(r"mast:[A-Za-z0-9_]+/(?:[A-Za-z0-9_.+-]+/)*[A-Za-z0-9][A-Za-z0-9._+-]*")
_FILTER_NAME = re.compile(r"^[A-Z0-9_+*%/-]+$")
_PRODUCT_TYPE = re.compile(r"^[A-Z0-9_-]+$")


# --------------------------------------------------------------------------
# errors


class MastError(InputError):
    """A problem with a MAST request, in words (base of the MAST errors)."""


class MastNetworkError(MastError):
    """MAST cannot be reached, or the connection broke."""


class MastTimeoutError(MastError):
    """MAST did not answer within the allowed time."""


class MastArchiveError(MastError):
    """MAST answered with an error (HTTP 5xx, an error status, a bad answer)."""


class MastAuthError(MastError):
    """The request needs a login (HTTP 401/403), or the token was refused."""


def format_bytes(n):
    """Return a size in bytes as words: ``'12.3 MB'`` (decimal units, like MAST).

    Examples
    --------
    >>> format_bytes(1234567)
    '1.2 MB'
    """
    if n is None or type(n).__name__ == "MaskedConstant":
        return "size unknown"
    n = float(n)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000.0


def default_cache_dir():
    """The download cache: ``$XDG_CACHE_HOME/jwst-widgets/mast`` (``~/.cache/...``).

    Examples
    --------
    >>> default_cache_dir()                        # doctest: +SKIP
    '/home/me/.cache/jwst-widgets/mast'
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jwst-widgets", "mast")


@contextlib.contextmanager
def _archive_errors(what, *, timeout=None, total_timeout=None, authenticated=False):
    """Turn what requests and astroquery raise into a MastError in words."""
    import requests
    from astroquery.exceptions import (InvalidQueryError, LoginError,
                                       RemoteServiceError)

    exc_ = requests.exceptions
    limit = f" within {timeout:g} s" if timeout else ""
    try:
        yield
    except (InputError, Cancelled):
        raise
    except TimeoutError as exc:          # astroquery: still "executing" after total_timeout
        raise MastTimeoutError(
            f"MAST did not finish {what} within {total_timeout:g} s: the archive may be busy;"
            " try again later (MastClient(total_timeout=...) allows more time)") from exc
    except exc_.Timeout as exc:
        raise MastTimeoutError(
            f"MAST did not answer{limit} while {what}: the archive may be busy or the "
            "connection slow; try again later (MastClient(timeout=...) allows more time)"
        ) from exc
    except exc_.ConnectionError as exc:
        if "timed out" in str(exc).lower():
            raise MastTimeoutError(
                f"MAST stopped sending{limit} while {what}: the connection stalled; "
                "run the same call again (downloads resume where they stopped)") from exc
        raise MastNetworkError(
            f"cannot reach MAST while {what}: no network connection, or the archive is "
            "down; check the connection and try again") from exc
    except (exc_.ChunkedEncodingError, exc_.ContentDecodingError) as exc:
        raise MastNetworkError(
            f"the connection to MAST broke while {what}; run the same call again "
            "(downloads resume where they stopped)") from exc
    except exc_.HTTPError as exc:
        status, reason = exc.response.status_code, exc.response.reason
        if status in (401, 403):
            hint = ("your MAST token does not give access to it (another program's exclusive-"
                    "access data, or a token without the mast:exclusive_access scope)"
                    if authenticated else
                    "the data are proprietary (exclusive access): log in with a MAST token "
                    f"that has access, client.login(token); tokens are made at {TOKEN_URL}")
            raise MastAuthError(f"MAST refused access (HTTP {status}) while {what}: {hint}",
                                param="token") from exc
        if status == 404:
            raise MastArchiveError(f"MAST has no such file or service (HTTP 404) while "
                                   f"{what}") from exc
        trouble = ": the archive is having trouble; try again later" if status >= 500 else ""
        raise MastArchiveError(f"MAST answered with an error (HTTP {status} {reason}) while "
                               f"{what}{trouble}") from exc
    except LoginError as exc:
        raise MastAuthError(
            f"MAST did not accept the token while {what}: it may be mistyped, expired or "
            f"revoked; make a new one at {TOKEN_URL}", param="token") from exc
    except RemoteServiceError as exc:
        raise MastArchiveError(f"MAST reported an error while {what}: {exc}") from exc
    except InvalidQueryError as exc:
        raise MastError(f"MAST cannot run this query ({what}): {exc}") from exc
    except (exc_.JSONDecodeError, KeyError) as exc:
        raise MastArchiveError(
            f"MAST sent an answer that cannot be read while {what} (not the JSON "
            "expected); the archive may be having trouble, try again later") from exc
    except exc_.RequestException as exc:
        raise MastNetworkError(f"the request to MAST failed while {what}: "
                               f"{type(exc).__name__}") from exc


# --------------------------------------------------------------------------
# validation of search criteria (pure)


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (str, bytes, int, float)):
        return [value]
    return list(value)


def _parse_angle(value, param, *, hours):
    """A float in degrees, or a sexagesimal / unit string ('03:32:39', '53.2d')."""
    import astropy.units as u
    from astropy.coordinates import Angle

    if isinstance(value, u.Quantity):
        return float(value.to_value(u.deg))
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return float(Angle(text, unit=u.hourangle if hours else u.deg).deg)
        except (ValueError, u.UnitsError) as exc:
            raise InputError(f"{param} must be an angle in degrees (53.16) or sexagesimal "
                             f"({'03:32:38.5' if hours else '-27:47:29'}); got {value!r}",
                             param=param) from exc
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{param} must be an angle in degrees; got {value!r}",
                         param=param) from exc


def _position(*, coordinates=None, ra=None, dec=None):
    """Return an ICRS SkyCoord from ``coordinates`` or ``ra``/``dec``, or None."""
    from astropy.coordinates import SkyCoord
    import astropy.units as u

    if coordinates is not None:
        if isinstance(coordinates, SkyCoord):
            return coordinates.icrs
        text = str(coordinates).strip()
        parts = text.replace(",", " ").split()
        try:
            if len(parts) == 2:
                return _position(ra=parts[0], dec=parts[1])
            return SkyCoord(text, unit=(u.hourangle, u.deg)).icrs
        except ValueError as exc:      # InputError included
            raise InputError(f"coordinates must be 'RA Dec' in degrees or sexagesimal, or a "
                             f"SkyCoord; got {coordinates!r}", param="coordinates") from exc
    if ra is None and dec is None:
        return None
    if ra is None or dec is None:
        missing = "ra" if ra is None else "dec"
        raise InputError(f"{missing} is needed with {'dec' if missing == 'ra' else 'ra'}: give "
                         "both, or a target name", param=missing)
    ra_deg = _parse_angle(ra, "ra", hours=True)
    dec_deg = _parse_angle(dec, "dec", hours=False)
    if not 0.0 <= ra_deg < 360.0 or ra_deg != ra_deg:
        raise InputError(f"ra must be between 0 and 360 degrees; got {ra!r}", param="ra")
    if not -90.0 <= dec_deg <= 90.0:
        raise InputError(f"dec must be between -90 and 90 degrees; got {dec!r}", param="dec")
    return SkyCoord(ra_deg, dec_deg, unit="deg", frame="icrs")


def _radius_deg(radius):
    import astropy.units as u

    try:
        value = float(radius.to_value(u.deg)) if isinstance(radius, u.Quantity) else float(radius)
    except (TypeError, ValueError, u.UnitsError) as exc:
        raise InputError(f"radius must be an angle (degrees, or a Quantity such as 3 * u.arcmin);"
                         f" got {radius!r}", param="radius") from exc
    if not 0.0 < value <= 10.0:
        raise InputError(f"radius must be between 0 and 10 degrees (exclusive of 0); got "
                         f"{radius!r}", param="radius")
    return value


def _mjd(value, param, *, end=False):
    from astropy.time import Time

    if value is None or value == "":
        return None
    try:
        t = value if isinstance(value, Time) else Time(value)
        mjd = float(t.utc.mjd)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{param} must be a date such as '2022-07-12' (or a datetime or "
                         f"astropy Time); got {value!r}", param=param) from exc
    if end and isinstance(value, str) and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", value):
        mjd += 1.0                     # a day given as the end includes that day
    elif end and type(value).__name__ == "date":
        mjd += 1.0
    return mjd


def _search_criteria(*, instrument=None, filters=None, program=None, calib_level=None,
                     date_start=None, date_end=None, rights="any", dataproduct_type="image",
                     now_mjd=None):
    """Validate the search options; return astroquery ``query_criteria`` keywords."""
    criteria = {"obs_collection": "JWST", "intentType": "science"}

    if dataproduct_type is not None:
        dpt = str(dataproduct_type).lower()
        if dpt not in DATAPRODUCT_TYPES:
            raise InputError(f"dataproduct_type must be {describe_choices(DATAPRODUCT_TYPES)} or"
                             f" None; got {dataproduct_type!r}", param="dataproduct_type")
        criteria["dataproduct_type"] = dpt

    if instrument not in (None, ""):
        name, _, mode = str(instrument).strip().upper().partition("/")
        if name not in INSTRUMENTS:
            raise InputError(f"instrument must be one of {describe_choices(INSTRUMENTS)}, "
                             f"optionally with a mode ('NIRCAM/IMAGE'); got {instrument!r}",
                             param="instrument")
        if mode and not re.fullmatch(r"[A-Z0-9_-]+", mode):
            raise InputError(f"instrument mode must be a word such as IMAGE; got {instrument!r}",
                             param="instrument")
        criteria["instrument_name"] = f"{name}/{mode}" if mode else f"{name}*"

    names = [str(f).strip().upper() for f in _as_list(filters) if str(f).strip()]
    for f in names:
        if not _FILTER_NAME.match(f):
            raise InputError(f"filters must be filter names such as 'F200W' or 'F444W'; got "
                             f"{f!r}", param="filters")
    if names:
        criteria["filters"] = names

    programs = []
    for p in _as_list(program):
        if isinstance(p, str) and not p.strip():
            continue
        try:
            number = int(str(p).strip())
        except ValueError:
            number = -1
        if not 1 <= number <= 99999:
            raise InputError(f"program must be a JWST program number between 1 and 99999 "
                             f"(e.g. 2736); got {p!r}", param="program")
        programs.append(str(number))
    if programs:
        criteria["proposal_id"] = programs

    levels = []
    for lv in _as_list(calib_level):
        if isinstance(lv, bool) or lv not in CALIB_LEVELS:
            raise InputError(f"calib_level must be {describe_choices(CALIB_LEVELS)} (1 raw, 2 "
                             f"calibrated exposures, 3 combined products); got {lv!r}",
                             param="calib_level")
        levels.append(int(lv))
    if levels:
        criteria["calib_level"] = sorted(set(levels))

    start = _mjd(date_start, "date_start")
    end = _mjd(date_end, "date_end", end=True)
    if start is not None and end is not None and start >= end:
        raise InputError(f"date_start must be before date_end; got {date_start!r} and "
                         f"{date_end!r}", param="date_start")
    if start is not None or end is not None:
        criteria["t_min"] = [start if start is not None else 0.0,
                             end if end is not None else _MJD_MAX]

    if rights not in RIGHTS:
        raise InputError(f"rights must be {describe_choices(RIGHTS)}; got {rights!r}",
                         param="rights")
    if rights != "any":
        if now_mjd is None:
            from astropy.time import Time
            now_mjd = float(Time.now().mjd)
        criteria["t_obs_release"] = [0.0, now_mjd] if rights == "public" else [now_mjd, _MJD_MAX]
    return criteria


def _product_types(product_type):
    types = [str(t).strip().upper() for t in _as_list(product_type) if str(t).strip()]
    for t in types:
        if not _PRODUCT_TYPE.match(t):
            raise InputError(f"product_type must be product suffixes such as 'cal', 'i2d', "
                             f"'rate'; got {t!r}", param="product_type")
    return types


def _obsids(observations):
    """The MAST ``obsid`` values of a table, a row, or given directly."""
    from astropy.table import Row, Table

    if isinstance(observations, (Table, Row)):
        names = observations.colnames
        if "obsid" not in names:
            raise InputError("observations must be a table from MastClient.search (with an "
                             "'obsid' column), or obsid values", param="observations")
        values = [observations["obsid"]] if isinstance(observations, Row) else \
            list(observations["obsid"])
    else:
        values = _as_list(observations)
    out = [str(v).strip() for v in values if str(v).strip() not in ("", "--")]
    for v in out:
        if not v.isdigit():
            raise InputError(f"observations: {v!r} is not a MAST obsid (a number such as "
                             "'87602009'); pass the table from MastClient.search",
                             param="observations")
    if not out:
        raise InputError("observations is empty: choose at least one observation",
                         param="observations")
    return out


def _download_items(products):
    """``[(uri, filename, size or None)]`` from a product table, rows or URIs."""
    from astropy.table import Row

    rows = [products] if isinstance(products, (Row, str)) else list(products)
    items = []
    for row in rows:
        if isinstance(row, str):
            uri, size = row, None
        else:
            try:
                uri = str(row["dataURI"])
            except (KeyError, ValueError, IndexError, TypeError) as exc:
                raise InputError("products must be a table from MastClient.products (with "
                                 "'dataURI' and 'size' columns), or dataURI strings",
                                 param="products") from exc
            size = _listed_size(row)
        name = uri.rsplit("/", 1)[-1]
        if not _DATA_URI.fullmatch(uri) or ".." in uri.split("/"):
            raise InputError(f"products: {uri!r} is not a MAST data URI such as "
                             "'mast:JWST/product/jw02736-o001_t001_nircam_clear-f200w_i2d.fits'",
                             param="products")
        items.append((uri, name, size))
    if not items:
        raise InputError("products is empty: choose at least one product to download",
                         param="products")
    return items


def _listed_size(row):
    """The size MAST lists for a product row, or None when not listed."""
    import numpy as np

    try:
        value = row["size"]
    except (KeyError, ValueError, IndexError):
        return None
    try:
        size = int(value)
    except (TypeError, ValueError, OverflowError, np.ma.MaskError):
        return None
    return size if size > 0 else None


# --------------------------------------------------------------------------
# the client


class _BoundedTransport:
    """A requests adapter that gives every request a connect/read time limit."""

    def __init__(self, inner, timeout):
        self.inner = inner
        self.timeout = timeout

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        return self.inner.send(request, stream=stream,
                               timeout=self.timeout if timeout is None else timeout,
                               verify=verify, cert=cert, proxies=proxies)

    def close(self):
        self.inner.close()


class MastClient:
    """Search JWST observations in MAST, list their products, download them.

    Parameters
    ----------
    cache_dir : str or os.PathLike, optional
        Where downloads go (and are found again without a request). Default
        :func:`default_cache_dir`, ``~/.cache/jwst-widgets/mast``.
    timeout : float or (float, float)
        Seconds to wait for a connection and for each read (the archive's
        answer, or the next bytes of a download). Default ``(10, 60)``.
    total_timeout : float
        Seconds a search may take in all (MAST answers "executing" to long
        queries and is polled until done). Default 120.
    server, resolver_url : str
        The MAST server and the name resolver (change only for a mirror).
    transport : requests adapter, optional
        The HTTP transport (a ``requests`` adapter such as
        ``requests.adapters.HTTPAdapter``). Tests give one that replays
        recorded answers.

    Notes
    -----
    The MAST token given to :meth:`login` is kept only in the session's
    cookie jar, in memory, and is sent only to the MAST server. It is never
    written to disk, logged, shown in a repr, or pickled.

    Examples
    --------
    >>> client = MastClient(cache_dir="mast-cache")                  # doctest: +SKIP
    >>> obs = client.search(ra=110.8375, dec=-73.4391, radius=0.05,
    ...                     instrument="NIRCAM", calib_level=3)      # doctest: +SKIP
    >>> prods = client.products(obs, product_type="i2d")            # doctest: +SKIP
    >>> client.download(prods[:1], progress=print)                  # doctest: +SKIP
    """

    def __init__(self, *, cache_dir=None, timeout=(10, 60), total_timeout=120,
                 server=MAST_SERVER, resolver_url=RESOLVER_URL, transport=None):
        import requests
        from astroquery.mast import ObservationsClass

        self.timeout = _check_timeout(timeout)
        try:
            self.total_timeout = float(total_timeout)
        except (TypeError, ValueError):
            self.total_timeout = -1.0
        if not self.total_timeout > 0:
            raise InputError(f"total_timeout must be a positive number of seconds; got "
                             f"{total_timeout!r}", param="total_timeout")
        self.cache_dir = os.path.abspath(os.path.expanduser(
            os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()))
        self.server = str(server).rstrip("/")
        self.resolver_url = str(resolver_url)

        obs = ObservationsClass()
        session = obs._session
        session.hooks["response"] = []      # astroquery's hook logs request headers (cookies)
        inner = transport if transport is not None else requests.adapters.HTTPAdapter()
        bounded = _BoundedTransport(inner, self.timeout)
        session.mount("https://", bounded)
        session.mount("http://", bounded)
        portal = obs._portal_api_connection
        portal._column_configs = {}          # astroquery keeps them class-wide otherwise
        portal.TIMEOUT = self.total_timeout
        portal.MAST_REQUEST_URL = self.server + "/api/v0/invoke"
        portal.COLUMNS_CONFIG_URL = self.server + "/portal/Mashup/Mashup.asmx/columnsconfig"
        portal.MAST_DOWNLOAD_URL = self.server + "/api/v0.1/Download/file"
        obs._auth_obj.SESSION_INFO_URL = self.server + "/whoami"
        self._obs = obs
        self._session = session

    # -- state -------------------------------------------------------------

    @property
    def authenticated(self):
        """True after a successful :meth:`login`."""
        return bool(getattr(self._obs, "_authenticated", False))

    def __repr__(self):
        return (f"MastClient(server={self.server!r}, cache_dir={self.cache_dir!r}, "
                f"authenticated={self.authenticated})")

    def __getstate__(self):
        raise TypeError("a MastClient holds an HTTP session (and perhaps a login) and cannot "
                        "be pickled; make a new one where it is needed")

    def close(self):
        """Close the HTTP connections (a login is forgotten)."""
        self.logout()
        self._session.close()

    def _errors(self, what, **kw):
        return _archive_errors(what, timeout=max(self.timeout), total_timeout=self.total_timeout,
                               authenticated=self.authenticated, **kw)

    # -- login -------------------------------------------------------------

    def login(self, token):
        """Log in to MAST with an API token, for proprietary (exclusive-access) data.

        Parameters
        ----------
        token : str
            A MAST API token (made at https://auth.mast.stsci.edu/token).
            It is kept in memory only, in the session's cookie jar.

        Raises
        ------
        MastAuthError
            The token was not accepted.

        Examples
        --------
        >>> import getpass
        >>> client = MastClient()                                # doctest: +SKIP
        >>> client.login(getpass.getpass("MAST token: "))       # doctest: +SKIP
        """
        if not isinstance(token, str) or not token.strip():
            got = "an empty string" if isinstance(token, str) else type(token).__name__
            raise InputError(f"token must be a MAST API token (a non-empty string from "
                             f"{TOKEN_URL}); got {got}", param="token")
        self.logout()
        try:
            with self._errors("logging in"):
                self._obs.login(token=token.strip(), store_token=False, reenter_token=False)
        except BaseException:
            self.logout()
            raise
        # astroquery sets the cookie for every host: send it to the MAST server only
        value = self._session.cookies.get("mast_token")
        self._session.cookies.clear()
        if value:
            host = urlsplit(self.server).hostname
            self._session.cookies.set("mast_token", value, domain=host, path="/")
        del value

    def logout(self):
        """Forget the login (clears the session's cookies)."""
        self._session.cookies.clear()
        self._obs._authenticated = False

    # -- search ------------------------------------------------------------

    def resolve(self, target):
        """Return the sky position of a target name (SIMBAD/NED through MAST's resolver).

        Examples
        --------
        >>> MastClient().resolve("NGC 3132")                      # doctest: +SKIP
        <SkyCoord (ICRS): (ra, dec) in deg (151.7570..., -40.4370...)>
        """
        from astropy.coordinates import SkyCoord

        if not isinstance(target, str) or not target.strip():
            raise InputError(f"target must be a name such as 'NGC 3132'; got {target!r}",
                             param="target")
        name = target.strip()
        with self._errors(f"resolving the target name {name!r}"):
            response = self._session.get(self.resolver_url, timeout=self.timeout,
                                         params={"name": name, "outputFormat": "json",
                                                 "resolveAll": "false"})
            response.raise_for_status()
            found = response.json().get("resolvedCoordinate") or []
            ra, dec = (float(found[0]["ra"]), float(found[0]["decl"])) if found else (None, None)
        if ra is None:
            raise InputError(f"target {name!r} is not known to the name resolvers (SIMBAD, NED);"
                             " check the spelling, or give ra and dec", param="target")
        return SkyCoord(ra, dec, unit="deg", frame="icrs")

    def search(self, *, target=None, coordinates=None, ra=None, dec=None, radius=0.05,
               instrument=None, filters=None, program=None, calib_level=None,
               date_start=None, date_end=None, rights="any", dataproduct_type="image",
               max_results=1000):
        """Search JWST science observations.

        Parameters
        ----------
        target : str, optional
            A target name, resolved to a position (give this, or
            ``coordinates``, or ``ra`` and ``dec``, or no position).
        coordinates : str or `~astropy.coordinates.SkyCoord`, optional
            ``"RA Dec"`` in degrees or sexagesimal (``"03:32:39 -27:47:29"``).
        ra, dec : float or str, optional
            The position in degrees (or sexagesimal strings).
        radius : float or `~astropy.units.Quantity`
            Cone radius (degrees if a number). Default 0.05 deg (3 arcmin).
        instrument : str, optional
            ``"NIRCAM"``, ``"NIRISS"``, ``"NIRSPEC"``, ``"MIRI"`` or ``"FGS"``,
            optionally with a mode: ``"NIRCAM/IMAGE"``.
        filters : str or list of str, optional
            Filter names, ``"F200W"`` (any of them matches).
        program : int, str or list, optional
            JWST program (proposal) numbers, e.g. ``2736``.
        calib_level : int or list of int, optional
            1 (raw), 2 (calibrated exposures, ``cal``) or 3 (combined, ``i2d``).
        date_start, date_end : str, datetime or `~astropy.time.Time`, optional
            Observations that started in this range (a date given as the end
            includes that day).
        rights : {"any", "public", "proprietary"}
            Public data, data still in their exclusive-access period, or both.
        dataproduct_type : str or None
            ``"image"`` (default), ``"cube"``, ``"spectrum"``... or None for all.
        max_results : int
            At most this many rows (1 to 50000); ``table.meta["rows_total"]``
            tells how many matched.

        Returns
        -------
        observations : `~astropy.table.QTable`
            MAST's observation columns (``obs_id``, ``obsid``,
            ``target_name``, ``instrument_name``, ``filters``, ``calib_level``,
            ``t_min``, ``t_exptime``, ``t_obs_release``, ``proposal_id``,
            ``s_ra``, ``s_dec`` ...). No match is a zero-row table.

        Raises
        ------
        jwst_widgets.InputError
            A bad option (the message names it), or a `MastError` for a
            problem with the archive.

        Examples
        --------
        >>> client = MastClient()                                     # doctest: +SKIP
        >>> obs = client.search(program=2736, instrument="NIRCAM/IMAGE",
        ...                     filters=["F200W", "F444W"], calib_level=3)  # doctest: +SKIP
        >>> obs["obs_id", "filters"]                                  # doctest: +SKIP
        """
        import astropy.units as u
        from astropy.table import QTable

        criteria = _search_criteria(instrument=instrument, filters=filters, program=program,
                                    calib_level=calib_level, date_start=date_start,
                                    date_end=date_end, rights=rights,
                                    dataproduct_type=dataproduct_type)
        if isinstance(max_results, bool) or not isinstance(max_results, int) or \
                not 1 <= max_results <= 50000:
            raise InputError(f"max_results must be an integer between 1 and 50000; got "
                             f"{max_results!r}", param="max_results")
        given = [n for n, v in (("target", target), ("coordinates", coordinates),
                                ("ra/dec", ra if ra is not None else dec)) if v not in (None, "")]
        if len(given) > 1:
            raise InputError(f"give one position: target, coordinates, or ra and dec; got "
                             f"{' and '.join(given)}", param=given[0])
        position = _position(coordinates=coordinates or None, ra=ra, dec=dec)
        radius_deg = _radius_deg(radius)
        if target not in (None, ""):
            position = self.resolve(target)

        with self._errors("searching JWST observations"), warnings.catch_warnings():
            from astroquery.exceptions import NoResultsWarning
            warnings.simplefilter("ignore", NoResultsWarning)
            if position is not None:
                criteria.update(coordinates=position, radius=radius_deg * u.deg)
            responses = self._obs.query_criteria_async(pagesize=max_results, page=1, **criteria)
            table = self._obs._parse_result(responses)
            paging = responses[0].json().get("paging") or {}
        table = QTable(table)
        table.meta.update(rows_total=int(paging.get("rowsFiltered", len(table))),
                          position=None if position is None else
                          (float(position.ra.deg), float(position.dec.deg), radius_deg))
        return table

    def products(self, observations, *, product_type=None, extension="fits",
                 science_only=True):
        """List the products of observations, with their sizes.

        Parameters
        ----------
        observations : `~astropy.table.Table`, row, str or list
            Rows of :meth:`search`, or MAST ``obsid`` values.
        product_type : str or list of str, optional
            Product suffixes, ``"cal"``, ``"i2d"``, ``"rate"``, ``"uncal"``,
            ``"segm"``... (MAST's ``productSubGroupDescription``). Default all.
        extension : str or None
            Only files ending so (default ``"fits"``: what
            :func:`jwst_widgets.load_image` reads). None for all files.
        science_only : bool
            Only products of type ``SCIENCE`` (default True).

        Returns
        -------
        products : `~astropy.table.QTable`
            One row per file (duplicates shared by several observations
            removed): ``obs_id``, ``productFilename``, ``dataURI``,
            ``productSubGroupDescription``, ``calib_level``, ``size`` (bytes),
            ``dataRights`` ... No product is a zero-row table.

        Examples
        --------
        >>> prods = client.products(obs, product_type=["cal", "i2d"])    # doctest: +SKIP
        >>> prods["productFilename", "size"]                             # doctest: +SKIP
        """
        import numpy as np
        from astropy.table import QTable

        ids = _obsids(observations)
        types = _product_types(product_type)
        if extension is not None and not re.fullmatch(r"[A-Za-z0-9.]+", str(extension)):
            raise InputError(f"extension must be a file ending such as 'fits'; got "
                             f"{extension!r}", param="extension")
        with self._errors("listing products"), warnings.catch_warnings():
            from astroquery.exceptions import NoResultsWarning
            warnings.simplefilter("ignore", NoResultsWarning)
            responses = self._obs.get_product_list_async(np.array(ids))
            table = self._obs._parse_result(responses)

        def text(name):
            if name not in table.colnames:
                return np.full(len(table), "", dtype=object)
            col = table[name]
            col = col.filled("") if hasattr(col, "filled") else col
            return np.array([str(v) for v in col], dtype=object)

        keep = np.ones(len(table), dtype=bool)
        seen = set()
        for i, uri in enumerate(text("dataURI")):
            keep[i] = uri not in seen
            seen.add(uri)
        if science_only:
            keep &= np.array([t.upper() == "SCIENCE" for t in text("productType")], dtype=bool)
        if types:
            keep &= np.array([t.upper() in types for t in text("productSubGroupDescription")],
                             dtype=bool)
        if extension is not None:
            ending = "." + str(extension).lstrip(".").lower()
            keep &= np.array([f.lower().endswith(ending) for f in text("productFilename")],
                             dtype=bool)
        return QTable(table[keep])

    # -- download ----------------------------------------------------------

    def is_cached(self, product):
        """True when the product is in the cache with the size MAST lists.

        Examples
        --------
        >>> [client.is_cached(p) for p in prods]          # doctest: +SKIP
        [True, False]
        """
        uri, name, size = _download_items(product)[0]
        path = os.path.join(self.cache_dir, name)
        return os.path.isfile(path) and (size is None or os.path.getsize(path) == size)

    def download(self, products, *, progress=None, cancel=None, verify_size=True):
        """Download products into the cache; resume interrupted downloads.

        A file already in the cache with the listed size is not fetched
        again. A download goes into ``<name>.part`` and is renamed when
        complete; an interrupted one resumes from where it stopped (HTTP
        ``Range``) the next time.

        Parameters
        ----------
        products : `~astropy.table.Table`, row, str or list
            Rows of :meth:`products`, or MAST data URIs.
        progress : callable, optional
            Called as ``progress(bytes_done, bytes_total, filename)`` as data
            arrive (totals over all the products).
        cancel : `threading.Event`, optional
            When set, the download stops (raising
            `~jwst_widgets.errors.Cancelled`); the part downloaded is kept.
        verify_size : bool
            Check each file's size against the size MAST lists (default True).

        Returns
        -------
        paths : list of str
            Local files, in the order given, ready for
            :func:`jwst_widgets.load_image`.

        Examples
        --------
        >>> paths = client.download(prods[:2])                 # doctest: +SKIP
        >>> from jwst_widgets import load_image
        >>> image = load_image(paths[0])                       # doctest: +SKIP
        """
        items = _download_items(products)
        try:
            os.makedirs(self.cache_dir, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cache_dir {self.cache_dir!r} cannot be made: {exc.strerror}",
                             param="cache_dir") from exc
        state = {"done": 0, "total": sum(s or 0 for _, _, s in items)}

        def report(name):
            if progress is not None:
                progress(state["done"], state["total"], name)

        paths = []
        for uri, name, size in items:
            paths.append(self._fetch(uri, name, size, state, report, cancel, verify_size))
        return paths

    def _fetch(self, uri, name, size, state, report, cancel, verify_size):
        final = os.path.join(self.cache_dir, name)
        part = final + ".part"
        if os.path.isfile(final) and (size is None or os.path.getsize(final) == size):
            if size is None:
                state["total"] += os.path.getsize(final)
            state["done"] += os.path.getsize(final)
            report(name)
            return final
        have = os.path.getsize(part) if os.path.isfile(part) else 0
        if size is not None and have > size:
            os.unlink(part)
            have = 0
        if size is None or have < size:
            url = (self._obs._portal_api_connection.MAST_DOWNLOAD_URL + "?uri="
                   + quote(uri, safe=":/"))
            with self._errors(f"downloading {name}"):
                have = self._stream(url, part, have, size, name, state, report, cancel,
                                    verify_size)
        else:
            state["done"] += have
            report(name)
        if verify_size and size is not None and have != size:
            if have < size:
                raise MastNetworkError(f"the download of {name} stopped after {have} of {size} "
                                       "bytes; run the same call again to resume")
            os.unlink(part)
            raise MastArchiveError(f"{name}: MAST sent {have} bytes but lists {size}; the part "
                                   "was removed, try again later (or verify_size=False)")
        os.replace(part, final)
        return final

    def _stream(self, url, part, have, size, name, state, report, cancel, verify_size):
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self._session.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
            if r.status_code == 416 and have:          # the part is stale: start again
                r.close()
                os.unlink(part)
                return self._stream(url, part, 0, size, name, state, report, cancel,
                                    verify_size)
            r.raise_for_status()
            start = 0
            if have and r.status_code == 206:
                match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", r.headers.get("Content-Range", ""))
                start = int(match.group(1)) if match else -1
                if start != have:
                    raise MastArchiveError(f"MAST resumed {name} at the wrong place; delete "
                                           f"{part} and try again")
                total = int(match.group(2)) if match.group(2) != "*" else None
            else:
                length = r.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            if verify_size and size is not None and total is not None and total != size:
                raise MastArchiveError(f"{name}: MAST sends {total} bytes but lists {size}; "
                                       "try again later (or verify_size=False)")
            if size is None and total is not None:
                state["total"] += total
            state["done"] += start
            report(name)
            try:
                fh = open(part, "ab" if start else "wb")
            except OSError as exc:
                raise InputError(f"cannot write {part}: {exc.strerror}",
                                 param="cache_dir") from exc
            with fh:
                written = start
                for chunk in r.iter_content(_CHUNK):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled(f"download of {name} cancelled after {written} bytes; "
                                        "the part is kept and resumes next time")
                    try:
                        fh.write(chunk)
                    except OSError as exc:         # a full disk: not the archive's fault
                        raise InputError(f"cannot write {part}: {exc.strerror}",
                                         param="cache_dir") from exc
                    written += len(chunk)
                    state["done"] += len(chunk)
                    report(name)
            return written


def _check_timeout(timeout):
    values = timeout if isinstance(timeout, (tuple, list)) else (timeout, timeout)
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 2 or not all(v > 0 for v in values):
        raise InputError(f"timeout must be seconds > 0, or (connect, read) seconds; got "
                         f"{timeout!r}", param="timeout")
    return values
