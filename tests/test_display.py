"""The display path: regions, block reduction, colour, encoding and render(),
against loops, astropy, matplotlib and PIL on the same data."""

import io

import numpy as np
import pytest
from PIL import Image

from jwst_widgets.errors import InputError
from jwst_widgets.processing.display import (
    RenderResult,
    block_factor,
    block_reduce,
    colormap_lut,
    encode_image,
    reduce_to_size,
    render,
    to_rgba8,
    visible_region,
)
from jwst_widgets.processing.enhance import enhance


def decode(png):
    """Decoded RGBA pixels, top row first (as the browser shows them)."""
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


@pytest.fixture
def frame():
    rng = np.random.default_rng(12)
    data = rng.normal(100.0, 5.0, (300, 420)).astype(np.float32)
    data[50:53, 60:63] += 5000.0
    data[200:240, 10:30] = np.nan
    return data


# --- visible_region -----------------------------------------------------


@pytest.mark.parametrize("x_range, y_range, expected", [
    (None, None, (0, 200, 0, 100)),
    ((-0.5, 199.5), (-0.5, 99.5), (0, 200, 0, 100)),
    ((0.5, 10.5), (0.49, 10.51), (1, 11, 0, 12)),
    ((10.2, 20.7), (-50, 5.4), (10, 22, 0, 6)),
    ((20.7, 10.2), None, (10, 22, 0, 100)),             # reversed bounds
    ((-1000, 1000), (-1000, 1000), (0, 200, 0, 100)),
    ((300, 400), None, (200, 200, 0, 100)),             # right of the image
    ((-40, -10), None, (0, 0, 0, 100)),                 # left of the image
])
def test_visible_region(x_range, y_range, expected):
    assert visible_region((100, 200), x_range, y_range) == expected


@pytest.mark.parametrize("bad", [(1,), "ab", (0, np.nan), (0, np.inf)])
def test_visible_region_rejects_bad_bounds(bad):
    with pytest.raises(InputError) as info:
        visible_region((10, 10), bad, None)
    assert info.value.param == "x_range"


# --- block reduction ----------------------------------------------------


def loop_reduce(data, factor, mask, combine, keep_inf=False):
    valid = (~np.isnan(data) if keep_inf else np.isfinite(data)) & ~mask
    ny, nx = data.shape
    out = np.full((-(-ny // factor), -(-nx // factor)), np.nan)
    for j in range(out.shape[0]):
        for i in range(out.shape[1]):
            block = (slice(j * factor, (j + 1) * factor), slice(i * factor, (i + 1) * factor))
            values = data[block][valid[block]]
            if values.size:
                out[j, i] = combine(values)
    return out


@pytest.mark.parametrize("dense", [False, True], ids=["few-bad-blocks", "many-bad-blocks"])
@pytest.mark.parametrize("factor", [2, 3, 7, 16])
def test_block_mean_and_max_equal_a_loop_reference(frame, factor, dense):
    data = frame[:101, :130].copy()
    data[0, 0:5] = np.inf
    data[90:101, 120:130] = np.nan               # whole edge blocks empty
    mask = np.zeros(data.shape, bool)
    mask[30:37, 40:47] = True
    if dense:                                     # a mosaic's empty border
        data[:, :45] = np.nan
        mask[60:, 50:] = True
    mean = block_reduce(data, factor, mask=mask)
    peak = block_reduce(data, factor, method="max", mask=mask)
    assert mean.dtype == np.float32 and mean.shape == (-(-101 // factor), -(-130 // factor))
    np.testing.assert_allclose(mean, loop_reduce(data, factor, mask, np.mean), rtol=1e-5,
                               equal_nan=True)
    # max: nanmax semantics, so infinities count; masked pixels do not
    np.testing.assert_array_equal(peak, loop_reduce(data, factor, mask, np.max, keep_inf=True))
    assert np.isinf(peak[0, 0]) != dense


def test_block_mean_equals_astropy_block_reduce_on_clean_data():
    from astropy.nddata import block_reduce as astropy_block_reduce

    data = np.random.default_rng(1).normal(size=(240, 360)).astype(np.float32)
    ours = block_reduce(data, 6)
    ref = astropy_block_reduce(data, 6, func=np.mean)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_all_nan_blocks_are_nan_without_warnings():
    data = np.full((8, 8), np.nan, np.float32)
    data[0, 0] = 1.0
    out = block_reduce(data, 4)
    assert out[0, 0] == 1.0 and np.isnan(out[1:, :]).all() and np.isnan(out[0, 1])
    assert np.isnan(block_reduce(data, 4, method="max")[1, 1])


def test_factor_one_is_a_view_not_a_copy(frame):
    out = block_reduce(frame, 1)
    assert out is frame or np.shares_memory(out, frame)
    reduced, factor = reduce_to_size(frame, 1000, 1000)
    assert factor == 1 and np.shares_memory(reduced, frame)
    mask = np.zeros(frame.shape, bool)
    mask[0, 0] = True
    masked = block_reduce(frame, 1, mask=mask)
    assert not np.shares_memory(masked, frame) and np.isnan(masked[0, 0])
    assert np.isfinite(frame[0, 0])


def test_block_reduce_inputs_are_not_modified(frame):
    mask = np.zeros(frame.shape, bool)
    mask[::7, ::5] = True
    before, mask_before = frame.copy(), mask.copy()
    for method in ("mean", "max"):
        block_reduce(frame, 3, method=method, mask=mask)
    np.testing.assert_array_equal(frame, before)
    np.testing.assert_array_equal(mask, mask_before)


@pytest.mark.parametrize("seed", range(6))
def test_reduce_to_size_never_exceeds_the_size_and_uses_the_smallest_factor(seed):
    rng = np.random.default_rng(seed)
    ny, nx = rng.integers(1, 900, 2)
    max_w, max_h = rng.integers(1, 400, 2)
    data = np.zeros((ny, nx), np.float32)
    out, factor = reduce_to_size(data, int(max_w), int(max_h))
    assert out.shape[0] <= max_h and out.shape[1] <= max_w
    assert out.shape == (-(-ny // factor), -(-nx // factor))
    if factor > 1:
        f = factor - 1
        assert -(-ny // f) > max_h or -(-nx // f) > max_w


def test_block_reduce_validation():
    with pytest.raises(InputError, match="'mean' or 'max'") as info:
        block_reduce(np.zeros((4, 4)), 2, method="median")
    assert info.value.param == "method"
    with pytest.raises(InputError) as info:
        block_reduce(np.zeros((4, 4)), 0)
    assert info.value.param == "factor"
    with pytest.raises(InputError) as info:
        block_factor((10, 10), 0, 5)
    assert info.value.param == "max_width"


# --- colour -------------------------------------------------------------


@pytest.mark.parametrize("name", ["gray", "viridis", "inferno", "magma_r"])
def test_colormap_lut_and_to_rgba8_equal_matplotlib(name):
    import matplotlib

    cmap = matplotlib.colormaps[name]
    lut = colormap_lut(name)
    assert lut.dtype == np.uint8 and lut.shape == (256, 4)
    np.testing.assert_array_equal(lut, cmap(np.arange(256), bytes=True))
    rng = np.random.default_rng(0)
    edges = np.arange(257) / 256.0
    values = np.concatenate([rng.random(5000), edges, np.nextafter(edges, -1)[1:],
                             [0.0, 1.0, -0.2, 1.3, np.nan]]).reshape(1, -1)
    np.testing.assert_array_equal(to_rgba8(values, lut), cmap(values, bytes=True))
    as32 = values.astype(np.float32)
    np.testing.assert_array_equal(to_rgba8(as32, lut), cmap(as32, bytes=True))


def test_unknown_colormap_lists_valid_ones():
    with pytest.raises(InputError, match="'gray', 'viridis', 'inferno'") as info:
        colormap_lut("rainbow-ish")
    assert info.value.param == "colormap"


def test_to_rgba8_nan_color_and_input_untouched():
    values = np.array([[np.nan, 0.5]], np.float32)
    out = to_rgba8(values, colormap_lut("gray"), nan_color=(255, 0, 255, 255))
    assert out[0, 0].tolist() == [255, 0, 255, 255]
    assert np.isnan(values[0, 0])
    with pytest.raises(InputError) as info:
        to_rgba8(values, np.zeros((10, 4), np.uint8))
    assert info.value.param == "lut"


# --- encoding -----------------------------------------------------------


def test_png_decodes_to_the_pixels_with_rows_flipped():
    rgba = np.random.default_rng(3).integers(0, 256, (37, 53, 4), dtype=np.uint8)
    before = rgba.copy()
    png = encode_image(rgba)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(decode(png), rgba[::-1])
    np.testing.assert_array_equal(rgba, before)


def test_jpeg_is_close_and_drops_alpha():
    y, x = np.mgrid[:64, :64]
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 0] = x * 4
    rgba[..., 1] = y * 4
    rgba[..., 3] = 128
    jpeg = encode_image(rgba, format="jpeg")
    assert jpeg[:2] == b"\xff\xd8"
    back = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(int)
    assert np.abs(back - rgba[::-1, :, :3]).mean() < 3


def test_encode_image_validation():
    with pytest.raises(InputError) as info:
        encode_image(np.zeros((4, 4), np.uint8))
    assert info.value.param == "rgba8"
    with pytest.raises(InputError, match="'png' or 'jpeg'") as info:
        encode_image(np.zeros((4, 4, 4), np.uint8), format="gif")
    assert info.value.param == "format"


# --- render -------------------------------------------------------------


def test_orientation_bottom_left_stays_bottom_left():
    data = np.zeros((60, 80), np.float32)
    data[0, 0] = 1.0                                   # x = 0, y = 0
    for max_size in [(800, 800), (20, 20)]:            # full resolution and reduced
        result = render(data, interval="minmax", reduce="max", max_size=max_size)
        shown = decode(result.png)
        assert shown.shape == (result.height, result.width, 4)
        assert shown[-1, 0, :3].tolist() == [255, 255, 255]
        assert shown[0, 0, :3].tolist() == [0, 0, 0]
        assert shown[-1, -1, :3].tolist() == [0, 0, 0]
        assert shown[0, -1, :3].tolist() == [0, 0, 0]


@pytest.mark.parametrize("max_size", [(800, 800), (100, 60), (37, 250), (1, 1)])
def test_render_never_exceeds_max_size(frame, max_size):
    for x_range, y_range in [(None, None), ((100.3, 250.9), (20, 80)), ((0, 5), (0, 299))]:
        r = render(frame, x_range=x_range, y_range=y_range, max_size=max_size)
        assert isinstance(r, RenderResult)
        assert 1 <= r.width <= max_size[0] and 1 <= r.height <= max_size[1]
        shown = decode(r.png)
        assert shown.shape[:2] == (r.height, r.width)


def test_render_pixels_equal_the_path_done_by_hand(frame):
    r = render(frame, max_size=(100, 100), interval="zscale", stretch="asinh",
               colormap="viridis")
    assert r.factor == 5 and r.region == (0, 420, 0, 300)
    assert r.extent == (-0.5, 419.5, -0.5, 299.5)
    reduced = block_reduce(frame, 5)
    values = enhance(reduced, interval=(r.vmin, r.vmax), stretch="asinh")
    expected = to_rgba8(values, colormap_lut("viridis"))[::-1]
    np.testing.assert_array_equal(decode(r.png), expected)
    # NaN blocks (the hole) are transparent
    assert decode(r.png)[-(200 // 5) - 1, 10 // 5 + 1, 3] == 0


def test_render_limits_come_from_the_whole_frame_and_can_be_reused(frame):
    full = render(frame, interval="minmax")
    finite = frame[np.isfinite(frame)]
    assert (full.vmin, full.vmax) == (float(finite.min()), float(finite.max()))
    zoom = render(frame, x_range=(0, 40), y_range=(0, 40), interval="minmax")
    assert (zoom.vmin, zoom.vmax) == (full.vmin, full.vmax)
    reused = render(frame, x_range=(0, 40), y_range=(0, 40), limits=(full.vmin, full.vmax),
                    interval="this is ignored")
    assert reused.png == zoom.png


def test_zoomed_region_is_full_resolution_and_block_aligned(frame):
    zoom = render(frame, x_range=(100.2, 180.6), y_range=(40, 90), max_size=(800, 800))
    # pixel 181 covers 180.5 .. 181.5, so it is partly in view
    assert zoom.factor == 1 and zoom.region == (100, 182, 40, 91)
    assert zoom.extent == (99.5, 181.5, 39.5, 90.5)
    wide = render(frame, x_range=(13, 390), y_range=(7, 280), max_size=(100, 100))
    x0, x1, y0, y1 = wide.region
    f = wide.factor
    assert x0 % f == 0 and y0 % f == 0 and x0 <= 13 and y0 <= 7 and x1 >= 391 and y1 >= 281
    assert wide.extent == (x0 - 0.5, x0 + wide.width * f - 0.5,
                           y0 - 0.5, y0 + wide.height * f - 0.5)


def test_render_masked_pixels_are_transparent_and_inputs_untouched(frame):
    mask = np.zeros(frame.shape, bool)
    mask[0, 0] = True
    before, mask_before = frame.copy(), mask.copy()
    r = render(frame, x_range=(0, 30), y_range=(0, 30), mask=mask)
    shown = decode(r.png)
    assert shown[-1, 0, 3] == 0 and shown[-1, 1, 3] == 255
    np.testing.assert_array_equal(frame, before)
    np.testing.assert_array_equal(mask, mask_before)


def test_render_max_keeps_a_faint_point_source_that_mean_dilutes():
    data = np.zeros((400, 400), np.float32)
    data[123, 321] = 10.0
    mean = decode(render(data, max_size=(40, 40), interval=(0, 10), reduce="mean").png)
    peak = decode(render(data, max_size=(40, 40), interval=(0, 10), reduce="max").png)
    assert mean[..., 0].max() < 5 and peak[..., 0].max() == 255
    assert peak[39 - 123 // 10, 321 // 10, 0] == 255


@pytest.mark.parametrize("stretch", ["linear", "sqrt", "log", "asinh", "power", "histeq"])
def test_render_stretches_and_options(frame, stretch):
    r = render(frame, stretch=stretch, colormap="inferno", max_size=(200, 200), power=1.5,
               log_a=100.0, asinh_a=0.2, contrast=0.1)
    assert r.width <= 200 and decode(r.png).shape[2] == 4


def test_render_empty_view_and_all_nan_frame(frame):
    off = render(frame, x_range=(1000, 2000))
    assert (off.width, off.height, off.png, off.extent) == (0, 0, b"", None)
    blank = render(np.full((50, 50), np.nan, np.float32))
    assert np.isnan(blank.vmin) and (decode(blank.png)[..., 3] == 0).all()
    blank = render(np.full((50, 50), np.nan, np.float32), limits=(0, 1), stretch="histeq")
    assert (decode(blank.png)[..., 3] == 0).all()


@pytest.mark.parametrize("kwargs, param", [
    ({"max_size": (0, 10)}, "max_size"),
    ({"max_size": 800}, "max_size"),
    ({"reduce": "median"}, "reduce"),
    ({"limits": (5.0, 1.0)}, "limits"),
    ({"limits": "auto"}, "limits"),
    ({"colormap": "nope"}, "colormap"),
    ({"stretch": "gamma"}, "stretch"),
    ({"interval": "sigma"}, "interval"),
    ({"mask": np.zeros((3, 3), bool)}, "mask"),
])
def test_render_validation(frame, kwargs, param):
    with pytest.raises(InputError) as info:
        render(frame, **kwargs)
    assert info.value.param == param


def test_render_rejects_unknown_options(frame):
    with pytest.raises(TypeError, match="gamma"):
        render(frame, gamma=2.0)


@pytest.mark.parametrize("levels, with_nan", [
    (256, False),             # every colour used, no bad pixel
    (100, True),              # bad pixels take a free palette slot
])
def test_render_png_decodes_to_the_lookup_colours(levels, with_nan):
    ramp = (np.arange(256) % levels + 0.5) / 256.0
    data = np.tile(ramp, (40, 1)).astype(np.float32)
    if with_nan:
        data[3, 7] = np.nan
    r = render(data, interval=(0.0, 1.0), colormap="magma")
    assert Image.open(io.BytesIO(r.png)).mode == "P"
    expected = to_rgba8(data, colormap_lut("magma"))[::-1]
    np.testing.assert_array_equal(decode(r.png), expected)


def test_render_with_bad_pixels_and_all_colours_moves_only_the_rarest_colour():
    data = np.tile((np.arange(256) + 0.5) / 256.0, (40, 1)).astype(np.float32)
    data[:, 77] = 200.5 / 256                 # colour 77 now unused ...
    data[0, 77] = 77.5 / 256                  # ... but for one pixel
    data[3, 7] = np.nan
    r = render(data, interval=(0.0, 1.0), colormap="magma")
    lut = colormap_lut("magma")
    shown, expected = decode(r.png)[::-1], to_rgba8(data, lut)
    differ = np.any(shown != expected, axis=-1)
    assert np.argwhere(differ).tolist() == [[0, 77]]
    assert shown[0, 77].tolist() in (lut[76].tolist(), lut[78].tolist())
    assert shown[3, 7, 3] == 0


# --- segmentation overlay -----------------------------------------------


def test_render_labels_sits_on_the_render_grid():
    from jwst_widgets.processing.display import render_labels

    labels = np.zeros((300, 420), np.int32)
    labels[0:3, 0:3] = 5                        # bottom-left corner, 3x3
    labels[100:140, 200:260] = 6
    labels[100:140, 260:300] = 7
    before = labels.copy()
    for max_size in [(800, 800), (100, 100)]:
        r = render(np.zeros(labels.shape, np.float32), max_size=max_size)
        png = render_labels(labels, r.region, r.factor)
        shown = decode(png)[::-1]                # rows in data order
        assert shown.shape[:2] == (r.height, r.width)
        f = r.factor
        assert shown[0, 0, 3] > 0                # the small segment survives reduction
        assert shown[200 // f, 100 // f, 3] == 0
        c6, c7 = shown[120 // f, 230 // f], shown[120 // f, 280 // f]
        assert c6[3] > 0 and c7[3] > 0 and c6[:3].tolist() != c7[:3].tolist()
    zoom = render(np.zeros(labels.shape, np.float32), x_range=(190, 270), y_range=(90, 150))
    shown = decode(render_labels(labels, zoom.region, zoom.factor))[::-1]
    x0, _, y0, _ = zoom.region
    assert shown[120 - y0, 230 - x0].tolist() == c6.tolist()   # same colour at any zoom
    np.testing.assert_array_equal(labels, before)
    assert render_labels(labels, (500, 600, 0, 10), 1) == b""
    with pytest.raises(InputError) as info:
        render_labels(labels.astype(float), zoom.region, 1)
    assert info.value.param == "labels"


def test_render_labels_with_many_labels_in_view():
    from jwst_widgets.processing.display import render_labels

    labels = np.arange(1, 401, dtype=np.int32).reshape(20, 20)   # 400 > 255 colours
    shown = decode(render_labels(labels, (0, 20, 0, 20), 1))[::-1]
    assert (shown[..., 3] > 0).all()
    few = decode(render_labels(labels[:5], (0, 20, 0, 5), 1))[::-1]   # palette PNG
    np.testing.assert_array_equal(few, shown[:5])


# --- source markers -----------------------------------------------------


def test_markers_are_rings_at_the_sources():
    from jwst_widgets.processing.display import render_markers
    # 2 screen pixels per image pixel; a radius of 5 image pixels is 10 on screen
    png = render_markers([50.0], [30.0], 5.0, x_range=(0, 100), y_range=(0, 100),
                         size=(200, 200))
    rgba = decode(png)
    assert rgba.shape == (200, 200, 4)
    rows, cols = np.nonzero(rgba[..., 3])
    cx, cy = 50.0 * 2, (100 - 30.0) * 2               # the first row is the top
    d = np.hypot(cols + 0.5 - cx, rows + 0.5 - cy)
    assert len(d) > 40 and d.min() > 7.5 and d.max() < 12.5
    assert rgba[int(cy), int(cx), 3] == 0             # a ring, not a disc
    assert (rgba[rows, cols, :3] == (0x39, 0xff, 0x14)).all()


def test_markers_selected_coloured_culled_and_never_too_small():
    from jwst_widgets.processing.display import colormap_lut, render_markers
    x, y = [20.0, 60.0, 500.0], [20.0, 60.0, 20.0]       # the third is outside the view
    png = render_markers(x, y, [0.1, 4.0, 4.0], x_range=(0, 100), y_range=(0, 100),
                         size=(100, 100), values=[1.0, 3.0, 2.0], selected=[1],
                         min_radius=3.0)
    rgba = decode(png)
    rows, cols = np.nonzero(rgba[..., 3])
    near_first = np.hypot(cols + 0.5 - 20, rows + 0.5 - 80) < 6
    near_second = np.hypot(cols + 0.5 - 60, rows + 0.5 - 40) < 7
    assert near_first.sum() > 8                          # 0.1 px drawn 3 px wide
    assert (near_first | near_second).all()              # nothing else is drawn
    # colour by value: the first has the lowest value, the colormap's first colour
    lut = colormap_lut("viridis")
    assert (rgba[rows[near_first], cols[near_first], :3] == lut[0, :3]).all()
    # the selected one is red, drawn on top
    assert (rgba[rows[near_second], cols[near_second], :3] == (0xff, 0x30, 0x30)).all()
    empty = decode(render_markers([500.0], [500.0], 3.0, x_range=(0, 100), y_range=(0, 100),
                                 size=(50, 50)))
    assert not empty[..., 3].any()


@pytest.mark.parametrize("kw, param", [
    (dict(size=(0, 10)), "size"),
    (dict(x_range=(5, 5)), "x_range"),
    (dict(color="green"), "color"),
])
def test_markers_bad_arguments_name_the_parameter(kw, param):
    from jwst_widgets.processing.display import render_markers
    args = dict(x_range=(0, 10), y_range=(0, 10), size=(10, 10))
    args.update(kw)
    with pytest.raises(InputError) as info:
        render_markers([1.0], [1.0], 1.0, **args)
    assert info.value.param == param
