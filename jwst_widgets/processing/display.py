"""The display path of the image view, as pure functions on arrays.

The view never ships more pixels than it shows. :func:`render` does the whole
path; the steps are public so that a caller can cache or replace any of them:

1. :func:`visible_region`: the view's bounds (pixel coordinates) to the
   integer pixel bounds of the data in view;
2. :func:`reduce_to_size` / :func:`block_reduce`: the region reduced by an
   integer factor to at most the view's size in screen pixels (block mean,
   or block maximum for sparse sources), NaN-aware;
3. the interval and stretch (:mod:`jwst_widgets.processing.enhance`), with
   limits computed once on the whole frame and reused while zooming;
4. :func:`colormap_lut` and :func:`to_rgba8`: to 8-bit colour through a
   256-entry lookup table, exactly as matplotlib maps values;
5. :func:`encode_image`: a PNG (or JPEG) for the browser.

:func:`render_labels` draws a segmentation map on the same grid, for an
overlay.

Coordinates follow astropy and photutils: the centre of pixel ``data[j, i]``
is at ``(x, y) = (i, j)``, so a pixel covers ``i - 0.5 .. i + 0.5``; ``y``
grows with the row index, and the image is displayed with the origin at the
lower left (north up for a JWST frame with its usual WCS).
"""

import dataclasses
import io
import math
from numbers import Integral

import numpy as np

from ..errors import InputError, describe_choices
from .enhance import display_limits, make_interval, make_stretch, sample_values

__all__ = [
    "REDUCE_METHODS",
    "Pyramid",
    "RenderResult",
    "render_view",
    "needed_level",
    "decimated",
    "block_factor",
    "block_reduce",
    "colormap_lut",
    "encode_image",
    "reduce_to_size",
    "render",
    "render_labels",
    "render_markers",
    "to_rgba8",
    "visible_region",
]

#: How :func:`block_reduce` combines the pixels of a block.
REDUCE_METHODS = ("mean", "max")

_COLORMAP_EXAMPLES = ("gray", "viridis", "inferno", "magma", "plasma", "cividis",
                      "Greys_r", "hot", "afmhot", "cubehelix")
_INTERVAL_KEYS = ("contrast", "percentile", "vmin", "vmax")
_STRETCH_KEYS = ("asinh_a", "log_a", "power")


@dataclasses.dataclass(frozen=True)
class RenderResult:
    """What :func:`render` produced: an image and where it goes.

    Attributes
    ----------
    png : bytes
        The PNG, first row at the top (see :func:`encode_image`); empty when
        the view does not overlap the image.
    width, height : int
        The PNG's size in pixels (0 when empty).
    factor : int
        Data pixels per PNG pixel along each axis (1: full resolution).
    region : tuple of int
        ``(x0, x1, y0, y1)``: the data columns ``x0 .. x1 - 1`` and rows
        ``y0 .. y1 - 1`` that the PNG shows (the visible region widened to
        whole blocks).
    extent : tuple of float or None
        ``(x_min, x_max, y_min, y_max)``: the edges of the PNG in pixel
        coordinates, for a bqplot ``Image`` mark (``x=[x_min, x_max]``,
        ``y=[y_min, y_max]``). Blocks sit on a grid fixed to the image
        origin, so panning does not shift them; a last, partial block at
        the image's right or top edge is drawn the size of a whole block.
    vmin, vmax : float
        The display limits used (NaN when no pixel was valid), to be passed
        back as ``limits`` while only the view moves.
    """

    png: bytes
    width: int
    height: int
    factor: int
    region: tuple
    extent: tuple | None
    vmin: float
    vmax: float


# --- region and reduction -----------------------------------------------


def visible_region(shape, x_range, y_range):
    """Clip a view's bounds to the integer pixel bounds of the data.

    Parameters
    ----------
    shape : tuple of int
        The image shape ``(ny, nx)``.
    x_range, y_range : (float, float) or None
        The view's bounds in pixel coordinates (pixel centres at integers);
        None for the whole axis. The order of the two numbers does not
        matter.

    Returns
    -------
    x0, x1, y0, y1 : int
        The columns ``x0 .. x1 - 1`` and rows ``y0 .. y1 - 1`` of the pixels
        at least partly in view, within the image; ``x0 == x1`` (or
        ``y0 == y1``) when the view misses the image.

    Examples
    --------
    >>> from jwst_widgets.processing.display import visible_region
    >>> visible_region((100, 200), (-0.5, 199.5), None)
    (0, 200, 0, 100)
    >>> visible_region((100, 200), (10.2, 20.7), (-50, 5.4))
    (10, 22, 0, 6)
    """
    ny, nx = int(shape[0]), int(shape[1])
    x0, x1 = _axis_bounds(x_range, nx, "x_range")
    y0, y1 = _axis_bounds(y_range, ny, "y_range")
    return x0, x1, y0, y1


def _axis_bounds(bounds, n, param):
    if bounds is None:
        return 0, n
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InputError(f"{param} must be a pair of numbers or None; got {bounds!r}",
                         param=param) from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"{param} must be finite; got {bounds!r}", param=param)
    lo, hi = min(lo, hi), max(lo, hi)
    # Pixel i covers i - 0.5 .. i + 0.5: it is in view when i + 0.5 > lo
    # and i - 0.5 < hi.
    start = min(max(math.floor(lo + 0.5), 0), n)
    stop = min(max(math.ceil(hi + 0.5), 0), n)
    return start, max(start, stop)


def block_factor(shape, max_width, max_height):
    """The smallest integer factor that fits an image into a size.

    Examples
    --------
    >>> from jwst_widgets.processing.display import block_factor
    >>> block_factor((2048, 4096), 800, 800)
    6
    >>> block_factor((300, 300), 800, 800)
    1
    """
    max_width = _check_size(max_width, "max_width")
    max_height = _check_size(max_height, "max_height")
    ny, nx = int(shape[0]), int(shape[1])
    return max(1, -(-nx // max_width), -(-ny // max_height))


def _check_size(value, param):
    if not (isinstance(value, Integral) and not isinstance(value, bool) and value >= 1):
        raise InputError(f"{param} must be a whole number of pixels >= 1; got {value!r}",
                         param=param)
    return int(value)


def reduce_to_size(data, max_width, max_height, *, method="mean", mask=None):
    """Block-reduce an image by an integer factor to fit in a size.

    Parameters
    ----------
    data : array_like
        The 2-D image. It is not modified.
    max_width, max_height : int
        The largest result, in pixels.
    method : {'mean', 'max'}, optional
        See :func:`block_reduce`.
    mask : array_like of bool, optional
        True where a pixel is bad.

    Returns
    -------
    reduced : ndarray of float32
        At most ``max_height`` x ``max_width``. When the factor is 1 and
        there is no mask, this is ``data`` itself if it is float32 (a view,
        no copy).
    factor : int
        The reduction factor, the same along both axes.

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.display import reduce_to_size
    >>> small, factor = reduce_to_size(np.ones((1000, 3000), np.float32), 800, 600)
    >>> small.shape, factor
    ((250, 750), 4)
    """
    arr = _as_image(data)
    factor = block_factor(arr.shape, max_width, max_height)
    return block_reduce(arr, factor, method=method, mask=mask), factor


def block_reduce(data, factor, *, method="mean", mask=None):
    """Reduce an image by combining ``factor`` x ``factor`` blocks of pixels.

    Blocks start at the first row and column; a last, partial block at the
    right or top combines the pixels it has.

    Parameters
    ----------
    data : array_like
        The 2-D image. It is not modified.
    factor : int
        The block side, >= 1.
    method : {'mean', 'max'}, optional
        ``'mean'``: the mean of the block's finite, unmasked pixels.
        ``'max'``: their maximum (``nanmax``), which keeps faint point
        sources visible when zoomed out. A block without such pixels is
        NaN.
    mask : array_like of bool, optional
        True where a pixel is bad.

    Returns
    -------
    ndarray of float32
        Shape ``(ceil(ny / factor), ceil(nx / factor))``. For ``factor=1``
        and no mask, ``data`` itself when it is float32 (no copy); with a
        mask, a copy with masked pixels NaN.

    Notes
    -----
    The blocks are summed with reshapes of the array (no Python loop over
    blocks); only rows of blocks that hold a NaN, an infinity or a masked
    pixel are summed again with weights, so a clean frame costs one pass.

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.display import block_reduce
    >>> a = np.arange(16, dtype=np.float32).reshape(4, 4)
    >>> a[0, 0] = np.nan
    >>> block_reduce(a, 2)
    array([[ 3.3333333,  4.5      ],
           [10.5      , 12.5      ]], dtype=float32)
    >>> block_reduce(a, 2, method="max")
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """
    arr = _as_image(data)
    if method not in REDUCE_METHODS:
        raise InputError(f"method must be one of {describe_choices(REDUCE_METHODS)}; "
                         f"got {method!r}", param="method")
    if not (isinstance(factor, Integral) and not isinstance(factor, bool) and factor >= 1):
        raise InputError(f"factor must be a whole number >= 1; got {factor!r}",
                         param="factor")
    factor = int(factor)
    mask = _check_mask(mask, arr.shape)

    if factor == 1:
        if mask is None:
            return arr if arr.dtype == np.float32 else arr.astype(np.float32)
        out = arr.astype(np.float32, copy=True)
        out[mask] = np.nan
        return out

    if method == "mean":
        out = _block_apply(np.add, arr, factor)     # NaN and inf propagate
        bad = ~np.isfinite(out)
        out /= _block_apply(np.add, np.ones((arr.shape[0], 1), np.float32), factor)
        out /= _block_apply(np.add, np.ones((1, arr.shape[1]), np.float32), factor)
    else:
        out = _block_apply(np.fmax, arr, factor)    # fmax skips NaN
        bad = np.zeros(out.shape, dtype=bool)
    if mask is not None:
        bad |= _block_apply(np.logical_or, mask, factor, dtype=bool)

    # Redo the blocks holding bad pixels: one by one when they are few (a
    # cal image's scattered bad pixels), by whole rows of blocks otherwise
    # (a mosaic's empty border).
    n_bad = int(np.count_nonzero(bad))
    if n_bad and n_bad * factor * factor <= arr.size // 8:
        by, bx = np.nonzero(bad)
        step = max(1, (1 << 20) // (factor * factor))
        for a in range(0, n_bad, step):
            out[by[a:a + step], bx[a:a + step]] = _reduce_blocks(
                arr, mask, by[a:a + step], bx[a:a + step], factor, method)
    elif n_bad:
        for start, stop in _runs(bad.any(axis=1)):
            rows = slice(start * factor, stop * factor)
            slab = arr[rows]
            valid = np.isfinite(slab) if method == "mean" else ~np.isnan(slab)
            if mask is not None:
                valid &= ~mask[rows]
            if method == "mean":
                sums = _block_apply(np.add, np.where(valid, slab, np.float32(0)), factor)
                counts = _block_apply(np.add, valid, factor, dtype=np.int32)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[start:stop] = sums / counts
            else:
                out[start:stop] = _block_apply(
                    np.fmax, np.where(valid, slab, np.float32(np.nan)), factor)
    return out


def _reduce_blocks(arr, mask, by, bx, factor, method):
    """Mean or max of the valid pixels of the blocks (by, bx), gathered."""
    ny, nx = arr.shape
    offsets = np.arange(factor)
    ys = by[:, None] * factor + offsets              # (n, factor)
    xs = bx[:, None] * factor + offsets
    inside = (ys < ny)[:, :, None] & (xs < nx)[:, None, :]
    ys, xs = np.minimum(ys, ny - 1)[:, :, None], np.minimum(xs, nx - 1)[:, None, :]
    values = arr[ys, xs].astype(np.float32, copy=False)
    valid = inside & (np.isfinite(values) if method == "mean" else ~np.isnan(values))
    if mask is not None:
        valid &= ~mask[ys, xs]
    if method == "max":
        return np.fmax.reduce(np.where(valid, values, np.float32(np.nan)), axis=(1, 2))
    sums = np.where(valid, values, np.float32(0)).sum(axis=(1, 2), dtype=np.float64)
    counts = valid.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).astype(np.float32)


def _block_apply(ufunc, arr, factor, dtype=np.float32):
    """Reduce blocks with a ufunc (np.add, np.fmax), rows first, then columns."""
    ny, nx = arr.shape
    full_y, full_x = ny // factor, nx // factor
    rows = np.empty((-(-ny // factor), nx), dtype=dtype)
    if full_y:
        ufunc.reduce(arr[:full_y * factor].reshape(full_y, factor, nx), axis=1,
                     dtype=dtype, out=rows[:full_y])
    if ny % factor:
        ufunc.reduce(arr[full_y * factor:], axis=0, dtype=dtype, out=rows[full_y])
    out = np.empty((rows.shape[0], -(-nx // factor)), dtype=dtype)
    if full_x:
        ufunc.reduce(rows[:, :full_x * factor].reshape(rows.shape[0], full_x, factor),
                     axis=2, dtype=dtype, out=out[:, :full_x])
    if nx % factor:
        ufunc.reduce(rows[:, full_x * factor:], axis=1, dtype=dtype, out=out[:, full_x])
    return out


def _runs(flags):
    """(start, stop) of each run of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.view(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


# --- colour -------------------------------------------------------------


def colormap_lut(name):
    """Return a matplotlib colormap as a 256-entry RGBA lookup table.

    Parameters
    ----------
    name : str or matplotlib.colors.Colormap
        A matplotlib colormap name (``'gray'``, ``'viridis'``,
        ``'inferno'``, ``'magma'``, a ``'_r'`` reversed one ...).

    Returns
    -------
    ndarray of uint8, shape (256, 4)
        ``cmap(np.linspace(0, 1, 256), bytes=True)``: entry ``i`` is the
        colour of the values in ``[i / 256, (i + 1) / 256)``.

    Raises
    ------
    jwst_widgets.errors.InputError
        For an unknown name; the message lists some valid ones.

    Examples
    --------
    >>> from jwst_widgets.processing.display import colormap_lut
    >>> lut = colormap_lut("gray")
    >>> lut.shape, lut.dtype, lut[0].tolist(), lut[255].tolist()
    ((256, 4), dtype('uint8'), [0, 0, 0, 255], [255, 255, 255, 255])
    """
    if isinstance(name, str) and name == "gray":
        # The views' default, made without importing matplotlib (0.2 s of a cold
        # start): matplotlib's own numbers, (linspace(0, 1, 256) * 255) truncated.
        lut = np.full((256, 4), 255, np.uint8)
        lut[:, :3] = (np.linspace(0.0, 1.0, 256) * 255).astype(np.uint8)[:, None]
        return lut
    import matplotlib
    from matplotlib.colors import Colormap

    if isinstance(name, Colormap):
        cmap = name
    else:
        try:
            cmap = matplotlib.colormaps[name]
        except (KeyError, TypeError):
            raise InputError(
                f"colormap must be a matplotlib colormap name such as "
                f"{describe_choices(_COLORMAP_EXAMPLES)} (see matplotlib.colormaps); "
                f"got {name!r}", param="colormap") from None
    return cmap(np.linspace(0.0, 1.0, 256), bytes=True)


def _color_index(values01, nan_index=None):
    """Lookup-table indices of values in [0, 1], as matplotlib computes them.

    ``floor(v * 256)`` clipped to 0..255 (values outside [0, 1] take the
    end colours). NaN gets ``nan_index``, which must then be given.
    """
    v = np.asarray(values01)
    dtype = v.dtype if v.dtype.kind == "f" else np.float64
    scaled = np.multiply(v, 256, dtype=dtype)
    np.clip(scaled, 0, 255, out=scaled)
    if nan_index is not None:
        np.copyto(scaled, nan_index, where=np.isnan(scaled))
    with np.errstate(invalid="ignore"):
        return scaled.astype(np.uint16 if nan_index is not None else np.uint8)


def _check_lut(lut):
    lut = np.asarray(lut)
    if lut.shape != (256, 4) or lut.dtype != np.uint8:
        raise InputError(f"lut must be a uint8 array of shape (256, 4) (see colormap_lut); "
                         f"got {lut.dtype} {lut.shape}", param="lut")
    return lut


def to_rgba8(values01, lut, *, nan_color=(0, 0, 0, 0)):
    """Colour values in [0, 1] through a lookup table.

    Parameters
    ----------
    values01 : array_like
        The display values, normally in [0, 1]; values outside take the
        end colours. It is not modified.
    lut : ndarray of uint8, shape (256, 4)
        The colours (see :func:`colormap_lut`).
    nan_color : tuple of 4 int, optional
        The RGBA colour of NaN values (transparent by default, as
        matplotlib's "bad" colour).

    Returns
    -------
    ndarray of uint8, shape values01.shape + (4,)
        The same colours as ``cmap(values01, bytes=True)`` in matplotlib.

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.display import colormap_lut, to_rgba8
    >>> rgba = to_rgba8(np.array([[0.0, 0.5, 1.0, np.nan]]), colormap_lut("gray"))
    >>> rgba[0].tolist()
    [[0, 0, 0, 255], [128, 128, 128, 255], [255, 255, 255, 255], [0, 0, 0, 0]]
    """
    lut = _check_lut(lut)
    table = np.empty((257, 4), dtype=np.uint8)
    table[:256] = lut
    table[256] = np.asarray(nan_color, dtype=np.uint8)
    index = _color_index(values01, nan_index=256)
    # Gather whole pixels as 32-bit words, then view them as bytes.
    words = table.view(np.uint32).reshape(257)[index]
    return words.view(np.uint8).reshape(index.shape + (4,))


def encode_image(rgba8, *, format="png"):
    """Encode an RGBA image as PNG or JPEG bytes, for display with origin lower.

    Parameters
    ----------
    rgba8 : ndarray of uint8, shape (H, W, 4) or (H, W, 3)
        The colours, row 0 being the bottom of the image (the data's row 0,
        ``y = 0``). It is not modified.
    format : {'png', 'jpeg'}, optional
        PNG (lossless, keeps transparency; fast setting, compress_level 1)
        or JPEG (quality 90, smaller; the alpha channel is dropped).

    Returns
    -------
    bytes

    Notes
    -----
    Image files store their top row first, and a bqplot ``Image`` mark
    draws the file's top row at the top of its ``y`` range. So the rows
    are flipped here: the file's first row is the array's last row, and
    with ``y`` increasing upward (bqplot's default ``LinearScale``) the
    image appears with the data's row 0 at the bottom, as matplotlib's
    ``imshow(..., origin='lower')`` and DS9 show it.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from PIL import Image
    >>> from jwst_widgets.processing.display import encode_image
    >>> rgba = np.zeros((2, 3, 4), np.uint8)
    >>> rgba[0, 0] = (255, 0, 0, 255)           # bottom-left of the data
    >>> png = encode_image(rgba)
    >>> top_first = np.asarray(Image.open(io.BytesIO(png)))
    >>> top_first[-1, 0].tolist()               # bottom-left of the file
    [255, 0, 0, 255]
    """
    from PIL import Image

    arr = np.asarray(rgba8)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"rgba8 must be a uint8 array of shape (H, W, 4) or (H, W, 3); "
                         f"got {arr.dtype} {arr.shape}", param="rgba8")
    fmt = format.lower() if isinstance(format, str) else format
    if fmt not in ("png", "jpeg", "jpg"):
        raise InputError(f"format must be 'png' or 'jpeg'; got {format!r}", param="format")
    flipped = np.ascontiguousarray(arr[::-1])
    buffer = io.BytesIO()
    if fmt == "png":
        mode = "RGBA" if flipped.shape[2] == 4 else "RGB"
        Image.fromarray(flipped, mode).save(buffer, format="PNG", compress_level=1)
    else:
        rgb = np.ascontiguousarray(flipped[..., :3])
        Image.fromarray(rgb, "RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _encode_values(values01, lut, nan_color=(0, 0, 0, 0)):
    """A palette PNG (one byte a pixel) of display values, flipped as above.

    NaN needs a 257th colour. It takes the palette slot of a lookup-table
    entry that no pixel uses; when every entry is used, the least used
    entry is merged into its neighbour (those pixels move by one level of
    256) to free a slot. Otherwise the PNG decodes to exactly
    ``to_rgba8(values01, lut, nan_color=nan_color)``.
    """
    index = _color_index(values01, nan_index=256)
    counts = np.bincount(index.reshape(-1), minlength=257)
    palette = lut
    if counts[256]:
        palette = lut.copy()
        free = np.flatnonzero(counts[:256] == 0)
        if free.size:
            slot = int(free[0])
        else:
            slot = int(np.argmin(counts[:256]))
            index[index == slot] = slot + 1 if slot < 255 else slot - 1
        palette[slot] = nan_color
        index[index == 256] = slot
    return _encode_palette(index.astype(np.uint8), palette)


def _encode_palette(index8, palette):
    """A palette PNG of uint8 indices into 256 RGBA colours, flipped as above."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(index8[::-1]), "P")
    image.putpalette(np.ascontiguousarray(palette, dtype=np.uint8).tobytes(), rawmode="RGBA")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


# --- segmentation overlay -----------------------------------------------


def render_labels(labels, region, factor, *, alpha=0.45):
    """Render a segmentation map as a PNG overlay on the grid of :func:`render`.

    Parameters
    ----------
    labels : array_like of int
        The label of each pixel (0 for background), the shape of the image.
        It is not modified.
    region : (int, int, int, int)
        ``(x0, x1, y0, y1)``, as in :attr:`RenderResult.region`.
    factor : int
        The reduction factor, as in :attr:`RenderResult.factor`: each
        ``factor`` x ``factor`` block shows its largest label, so that no
        segment disappears when zoomed out.
    alpha : float, optional
        The opacity of the segments, in [0, 1]; the background is
        transparent.

    Returns
    -------
    bytes
        A PNG of the size of ``render``'s for the same region and factor
        (place it at the same extent); empty for an empty region.

    Notes
    -----
    Label ``n`` has hue ``frac(n * 0.618...)`` (the golden ratio), at fixed
    saturation and brightness: a colour that does not change with zoom,
    pan or the number of labels, and that differs between consecutive
    labels.

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.display import render, render_labels
    >>> labels = np.zeros((300, 300), np.int32)
    >>> labels[100:120, 50:90] = 1
    >>> result = render(np.zeros((300, 300), np.float32), max_size=(100, 100))
    >>> png = render_labels(labels, result.region, result.factor)
    >>> png[1:4]
    b'PNG'
    """
    arr = np.asarray(labels)
    if arr.ndim != 2 or arr.dtype.kind not in "biu":
        raise InputError(f"labels must be a 2-D array of integers; got {arr.dtype} "
                         f"{arr.shape}", param="labels")
    try:
        x0, x1, y0, y1 = (int(v) for v in region)
    except (TypeError, ValueError):
        raise InputError(f"region must be (x0, x1, y0, y1); got {region!r}",
                         param="region") from None
    if not (isinstance(factor, Integral) and not isinstance(factor, bool) and factor >= 1):
        raise InputError(f"factor must be a whole number >= 1; got {factor!r}", param="factor")
    if not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
        raise InputError(f"alpha must be between 0 and 1; got {alpha!r}", param="alpha")
    cut = arr[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
    if cut.size == 0:
        return b""
    if cut.dtype == bool:
        cut = cut.view(np.uint8)
    shown = cut if factor == 1 else _block_apply(np.maximum, cut, int(factor), dtype=cut.dtype)

    inside = shown > 0
    uniq, which = np.unique(shown[inside], return_inverse=True)
    colours = _label_colours(uniq, alpha)
    if uniq.size < 256:                  # a palette PNG: one byte a pixel
        index = np.zeros(shown.shape, dtype=np.uint8)
        index[inside] = which + 1
        palette = np.zeros((256, 4), dtype=np.uint8)
        palette[1:uniq.size + 1] = colours
        return _encode_palette(index, palette)
    rgba = np.zeros(shown.shape + (4,), dtype=np.uint8)
    rgba[inside] = colours[which]
    return encode_image(rgba)


def _label_colours(labels, alpha):
    """RGBA of labels: hue frac(label * golden ratio), saturation 0.7, value 0.95."""
    hue = np.mod(labels * 0.6180339887498949, 1.0) * 6.0
    sector = np.minimum(hue.astype(int), 5)
    frac = hue - sector
    value, sat = 0.95, 0.7
    p = np.full(hue.shape, value * (1 - sat))
    q = value * (1 - sat * frac)
    t = value * (1 - sat * (1 - frac))
    v = np.full(hue.shape, value)
    rgb = np.stack([np.choose(sector, [v, q, p, p, t, v]),
                    np.choose(sector, [t, v, v, q, p, p]),
                    np.choose(sector, [p, p, t, v, v, q])], axis=-1)
    rgba = np.empty(labels.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = np.round(rgb * 255)
    rgba[..., 3] = round(alpha * 255)
    return rgba


def render_markers(x, y, radius, *, x_range, y_range, size, values=None, selected=(),
                   color="#39ff14", selected_color="#ff3030", colormap="viridis",
                   min_radius=3.0, line_width=2):
    """Draw circles at catalog positions on a transparent PNG covering a view.

    The picture has the view's size in screen pixels and covers exactly
    ``x_range`` x ``y_range``, so the circles stay sharp at any zoom.

    Parameters
    ----------
    x, y : array_like
        The centres, in the image's pixel coordinates.
    radius : float or array_like
        The radii in image pixels (drawn at least ``min_radius`` screen
        pixels).
    x_range, y_range : (float, float)
        The data range the picture covers (place it at ``x=x_range``,
        ``y=y_range``).
    size : (int, int)
        The picture's (width, height) in pixels.
    values : array_like, optional
        A value per circle, coloured through ``colormap`` between their
        finite minimum and maximum (non-finite values get ``color``).
    selected : sequence of int, optional
        Indices of circles drawn thicker, in ``selected_color``, on top.
    color, selected_color : str
        ``"#rrggbb"`` colours.
    colormap : str
        A matplotlib colormap name, for ``values``.
    min_radius : float
        The smallest radius drawn, in screen pixels.
    line_width : int
        The circles' line width in screen pixels.

    Returns
    -------
    bytes
        An RGBA PNG, transparent but for the circles.

    Examples
    --------
    >>> from jwst_widgets.processing.display import render_markers
    >>> png = render_markers([10.0, 50.0], [20.0, 60.0], 4.0, x_range=(0, 100),
    ...                      y_range=(0, 100), size=(200, 200))
    >>> png[1:4]
    b'PNG'
    """
    from PIL import Image as PILImage
    from PIL import ImageDraw

    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise InputError(f"size must be two positive integers; got {size!r}", param="size")
    (x0, x1), (y0, y1) = (float(v) for v in x_range), (float(v) for v in y_range)
    if not (x1 > x0 and y1 > y0):
        raise InputError(f"x_range and y_range must increase; got {x_range!r}, {y_range!r}",
                         param="x_range")
    sx, sy = width / (x1 - x0), height / (y1 - y0)
    cx = (np.asarray(x, float) - x0) * sx
    cy = (y1 - np.asarray(y, float)) * sy           # the first row is the top
    r = np.maximum(np.broadcast_to(np.asarray(radius, float), cx.shape) * sx, min_radius)
    # a palette picture (fast to encode, small): 0 transparent, 1 the colour,
    # 2 the selected colour, 3-255 the colormap's levels for ``values``
    palette = np.zeros((256, 4), np.uint8)
    palette[1] = (*_hex_rgb(color), 235)
    palette[2] = (*_hex_rgb(selected_color), 255)
    index = np.ones(cx.size, np.uint8)
    if values is not None:
        v = np.asarray(values, float)
        good = np.isfinite(v)
        if good.any():
            lo, hi = v[good].min(), v[good].max()
            scaled = (v[good] - lo) / (hi - lo) if hi > lo else np.full(good.sum(), 0.5)
            index[good] = 3 + np.round(scaled * 252).astype(np.uint8)
            palette[3:] = colormap_lut(colormap)[np.round(np.linspace(0, 255, 253)).astype(int)]
            palette[3:, 3] = 235
    inside = (np.isfinite(cx) & np.isfinite(cy) & (cx + r >= 0) & (cx - r <= width)
              & (cy + r >= 0) & (cy - r <= height))
    chosen = np.zeros(cx.size, bool)
    chosen[[i for i in selected if 0 <= i < cx.size]] = True
    img = PILImage.new("P", (width, height), 0)
    img.putpalette(palette.tobytes(), rawmode="RGBA")
    draw = ImageDraw.Draw(img)
    index[chosen] = 2
    for i in np.concatenate([np.flatnonzero(inside & ~chosen),
                             np.flatnonzero(inside & chosen)]):   # the selected on top
        draw.ellipse((cx[i] - r[i], cy[i] - r[i], cx[i] + r[i], cy[i] + r[i]),
                     outline=int(index[i]), width=line_width + int(chosen[i]))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _hex_rgb(text):
    text = str(text).lstrip("#")
    if len(text) != 6:
        raise InputError(f"a colour must be '#rrggbb'; got {text!r}", param="color")
    return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))


# --- the whole path -----------------------------------------------------


def render(data, *, x_range=None, y_range=None, max_size=(800, 800), interval="zscale",
           stretch="linear", colormap="gray", mask=None, limits=None, reduce="mean",
           **options):
    """Render the visible part of an image as a PNG at screen resolution.

    Parameters
    ----------
    data : array_like
        The 2-D image (a stage's output). It is not modified.
    x_range, y_range : (float, float), optional
        The view's bounds in pixel coordinates; None for the whole axis.
    max_size : (int, int), optional
        ``(width, height)`` of the view in screen pixels; the PNG is never
        larger.
    interval : str, float, (float, float) or astropy interval, optional
        See :func:`~jwst_widgets.processing.enhance.make_interval`. Ignored
        when ``limits`` is given.
    stretch : str or astropy stretch, optional
        See :func:`~jwst_widgets.processing.enhance.make_stretch`.
        ``'histeq'`` equalises on a subsample of the whole frame.
    colormap : str, optional
        A matplotlib colormap name.
    mask : array_like of bool, optional
        True where a pixel is bad: it takes no part in limits or block means
        and shows transparent.
    limits : (float, float), optional
        Precomputed ``(vmin, vmax)``: pass back ``result.vmin, result.vmax``
        while only the view moves, so the limits are computed once on the
        whole frame.
    reduce : {'mean', 'max'}, optional
        How blocks are combined when zoomed out (see :func:`block_reduce`).
    **options
        ``contrast``, ``percentile``, ``vmin``, ``vmax`` for the interval
        and ``asinh_a``, ``log_a``, ``power`` for the stretch.

    Returns
    -------
    RenderResult

    Notes
    -----
    Limits (when not given) come from the whole frame, not the view, so
    zooming does not change the colours. The region is widened to whole
    blocks on a grid fixed to the image origin. The PNG is a palette image
    (one byte a pixel, three times faster to encode than RGBA and smaller);
    it decodes to the colours of :func:`to_rgba8`, bad pixels transparent.
    Bad pixels take the palette slot of a colour no pixel in view uses; in
    the rare view that has bad pixels and uses all 256 colours, the pixels
    of the least used colour are shown one level (1/256) off.

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.display import render
    >>> frame = np.random.default_rng(0).normal(0.0, 1.0, (2048, 2048)).astype(np.float32)
    >>> full = render(frame, max_size=(800, 600), interval="zscale", stretch="asinh")
    >>> full.width, full.height, full.factor
    (512, 512, 4)
    >>> zoom = render(frame, x_range=(100, 300), y_range=(100, 250),
    ...               limits=(full.vmin, full.vmax))
    >>> zoom.factor, zoom.region
    (1, (100, 301, 100, 251))
    """
    arr = _as_image(data)
    mask = _check_mask(mask, arr.shape)
    max_w, max_h = _check_max_size(max_size)
    if reduce not in REDUCE_METHODS:
        raise InputError(f"reduce must be one of {describe_choices(REDUCE_METHODS)}; "
                         f"got {reduce!r}", param="reduce")
    unknown = set(options) - set(_INTERVAL_KEYS) - set(_STRETCH_KEYS)
    if unknown:
        raise TypeError(f"render() got unexpected keyword arguments {sorted(unknown)}")
    interval_kw = {k: options[k] for k in _INTERVAL_KEYS if k in options}
    stretch_kw = {k: options[k] for k in _STRETCH_KEYS if k in options}

    histeq = isinstance(stretch, str) and stretch.lower() == "histeq"
    stretch_obj = None if histeq else make_stretch(stretch, **stretch_kw)
    if limits is None:
        vmin, vmax = display_limits(arr, make_interval(interval, **interval_kw), mask=mask)
    else:
        vmin, vmax = _check_display_limits(limits)
    lut = colormap_lut(colormap)

    x0, x1, y0, y1 = visible_region(arr.shape, x_range, y_range)
    if x1 <= x0 or y1 <= y0:
        return RenderResult(b"", 0, 0, 1, (x0, x1, y0, y1), None, vmin, vmax)
    factor, (x0, x1, y0, y1) = _aligned_region(x0, x1, y0, y1, arr.shape, max_w, max_h)
    cut_mask = None if mask is None else mask[y0:y1, x0:x1]
    reduced = block_reduce(arr[y0:y1, x0:x1], factor, method=reduce, mask=cut_mask)

    values = np.full(reduced.shape, np.nan, dtype=np.float32)
    if math.isfinite(vmin) and math.isfinite(vmax):
        from astropy.visualization import ManualInterval

        normalise = ManualInterval(vmin, vmax)
        if histeq:
            sample = sample_values(arr, mask=mask)
            if sample.size:
                stretch_obj = make_stretch("histeq", data=normalise(sample, clip=True))
        if stretch_obj is not None:
            (stretch_obj + normalise)(reduced, clip=True, out=values)

    height, width = values.shape
    png = _encode_values(values, lut)
    extent = (x0 - 0.5, x0 + width * factor - 0.5, y0 - 0.5, y0 + height * factor - 0.5)
    return RenderResult(png, width, height, factor, (x0, x1, y0, y1), extent, vmin, vmax)


def _aligned_region(x0, x1, y0, y1, shape, max_w, max_h):
    """The reduction factor and the region widened to whole blocks of it."""
    ny, nx = shape
    factor = max(1, -(-(x1 - x0) // max_w), -(-(y1 - y0) // max_h))
    while True:
        ax0, ay0 = x0 - x0 % factor, y0 - y0 % factor
        ax1 = min(nx, -(-x1 // factor) * factor)
        ay1 = min(ny, -(-y1 // factor) * factor)
        if -(-(ax1 - ax0) // factor) <= max_w and -(-(ay1 - ay0) // factor) <= max_h:
            return factor, (ax0, ax1, ay0, ay1)
        factor += 1


def _check_max_size(max_size):
    try:
        width, height = max_size
    except (TypeError, ValueError):
        raise InputError(f"max_size must be a (width, height) pair; got {max_size!r}",
                         param="max_size") from None
    ok = all(isinstance(v, Integral) and not isinstance(v, bool) and v >= 1
             for v in (width, height))
    if not ok:
        raise InputError(f"max_size must be two whole numbers of pixels >= 1; "
                         f"got {max_size!r}", param="max_size")
    return int(width), int(height)


def _check_display_limits(limits):
    try:
        lo, hi = (float(v) for v in limits)
    except (TypeError, ValueError):
        raise InputError(f"limits must be a (vmin, vmax) pair; got {limits!r}",
                         param="limits") from None
    if math.isnan(lo) and math.isnan(hi):
        return lo, hi
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise InputError(f"limits must be finite with vmin <= vmax; got {limits!r}",
                         param="limits")
    return lo, hi


def _as_image(data):
    arr = np.asarray(data)
    if arr.ndim != 2 or arr.dtype.kind not in "biuf":
        raise InputError(f"data must be a 2-D image of numbers; got an array of shape "
                         f"{arr.shape} and dtype {arr.dtype}", param="data")
    return arr


def _check_mask(mask, shape):
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != shape:
        raise InputError(f"mask must have the shape of the data {shape}; got {m.shape}",
                         param="mask")
    return m.astype(bool, copy=False)



# --- pyramids: zoomed-out views without a pass over the whole frame -------


class Pyramid:
    """Reduced copies of an image, level *k* binned by ``2**k``, built on demand.

    A zoomed-out view of a large frame reads one small level instead of
    every pixel of the frame, so panning and zooming cost the same on a
    10k x 10k mosaic as on a small image. Level *k* is made from level
    *k - 1* (mean of the valid pixels of each 2 x 2 block, or their maximum),
    so a level costs a quarter of the one below it.

    Parameters
    ----------
    data : array_like
        The image (level 0). It is not copied; a memory map stays one.
    mask : array_like of bool, optional
        True where a pixel is bad (level 0 only; above it bad blocks are NaN).
    method : {'mean', 'max'}
        How blocks are combined.

    Notes
    -----
    A mean of 2 x 2 means weighs each block equally, so where some pixels of
    a block are bad a level's value differs slightly from the exact mean of
    the valid pixels: a display may live with that, a measurement may not.
    """

    def __init__(self, data, mask=None, *, method="mean"):
        if method not in REDUCE_METHODS:
            raise InputError(f"method must be one of {describe_choices(REDUCE_METHODS)}; "
                             f"got {method!r}", param="method")
        self.method = method
        self.shape = np.shape(data)
        self._levels = {0: (data, mask)}

    def level(self, k):
        """``(array, mask)`` of level ``k`` (mask None above level 0)."""
        if k not in self._levels:
            below, below_mask = self.level(k - 1)
            self._levels[k] = (self._halve(below, below_mask), None)
        return self._levels[k]

    def has_level(self, k):
        return k in self._levels

    def _halve(self, data, mask):
        """Block-reduce by 2 in bands of rows: memory stays bounded and a
        memory-mapped level 0 is read once, in order."""
        ny, nx = np.shape(data)
        out = np.empty(((ny + 1) // 2, (nx + 1) // 2), np.float32)
        rows = max(2, (4_000_000 // max(nx, 1)) // 2 * 2)
        for y0 in range(0, ny, rows):
            y1 = min(ny, y0 + rows)
            band_mask = None if mask is None else mask[y0:y1]
            out[y0 // 2:(y1 + 1) // 2] = block_reduce(np.asarray(data[y0:y1], np.float32), 2,
                                                      method=self.method, mask=band_mask)
        return out

    def top_level(self):
        """The highest level that is still at least 2 pixels on its short side."""
        k = 0
        n = min(self.shape)
        while n // 2 >= 2:
            n = (n + 1) // 2
            k += 1
        return k

    @property
    def nbytes(self):
        return sum(a.nbytes for k, (a, _) in self._levels.items() if k > 0)


def render_view(pyramid, *, x_range=None, y_range=None, max_size=(800, 800), scale=1,
                limits=None, stretch="linear", colormap="gray", **options):
    """Render a view of an image through its :class:`Pyramid`.

    The same as :func:`render` on the full image, except that a zoomed-out
    view is taken from the pyramid level whose binning is the largest power
    of two not above the reduction it needs.

    Parameters
    ----------
    pyramid : Pyramid
        The image's pyramid.
    x_range, y_range : (float, float), optional
        The view's bounds in the pixel coordinates of the full-resolution
        frame.
    scale : int, optional
        How many full-resolution pixels one pixel of the pyramid's image
        covers along each axis (a preview made on a binned copy of the frame).
    limits, stretch, colormap, **options
        As for :func:`render` (``limits`` is required for levels above 0 to
        keep the colours of the whole frame).

    Returns
    -------
    RenderResult
        With ``factor``, ``region`` and ``extent`` in the full-resolution
        frame's pixels.
    """
    scale = int(scale)
    ny, nx = pyramid.shape
    k = needed_level(pyramid, x_range=x_range, y_range=y_range, max_size=max_size,
                     scale=scale)
    if k and limits is None:
        raise InputError("render_view needs limits to render from a reduced level",
                         param="limits")
    bx, by = _to_base(x_range, scale), _to_base(y_range, scale)
    data, mask = pyramid.level(k)
    step = 2 ** k

    def to_level(r):
        return None if r is None else ((r[0] + 0.5) / step - 0.5, (r[1] + 0.5) / step - 0.5)

    result = render(data, x_range=to_level(bx), y_range=to_level(by), max_size=max_size,
                    mask=mask, limits=limits, stretch=stretch, colormap=colormap,
                    reduce=pyramid.method, **options)
    total = scale * step
    if result.extent is None:
        extent = None
    else:
        extent = tuple((e + 0.5) * total - 0.5 for e in result.extent)
    rx0, rx1, ry0, ry1 = result.region
    full_ny, full_nx = ny * scale, nx * scale
    region = (rx0 * total, min(rx1 * total, full_nx), ry0 * total, min(ry1 * total, full_ny))
    return dataclasses.replace(result, factor=result.factor * total, region=region,
                               extent=extent)


def _to_base(r, scale):
    return None if r is None else ((r[0] + 0.5) / scale - 0.5, (r[1] + 0.5) / scale - 0.5)


def needed_level(pyramid, *, x_range=None, y_range=None, max_size=(800, 800), scale=1):
    """The pyramid level :func:`render_view` reads for this view."""
    ny, nx = pyramid.shape
    max_w, max_h = _check_max_size(max_size)
    x0, x1, y0, y1 = visible_region((ny, nx), _to_base(x_range, scale),
                                    _to_base(y_range, scale))
    need = block_factor((max(y1 - y0, 1), max(x1 - x0, 1)), max_w, max_h)
    return min(int(math.floor(math.log2(need))) if need > 1 else 0, pyramid.top_level())


def decimated(pyramid, k):
    """A quick stand-in for level ``k``: every ``2**k``-th pixel of level 0.

    For a first look at a huge frame while the real level is being built:
    it reads only every ``2**k``-th row. Render it with ``scale=2**k``.
    """
    data, mask = pyramid.level(0)
    step = 2 ** k
    return Pyramid(data[step // 2::step, step // 2::step],
                   None if mask is None else mask[step // 2::step, step // 2::step],
                   method=pyramid.method)
