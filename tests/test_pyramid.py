"""Pyramids and scaled rendering: zoomed-out views from reduced levels."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from jwst_widgets.processing.display import Pyramid, block_reduce, render, render_view


def pixels(png):
    return np.asarray(PILImage.open(io.BytesIO(png)).convert("RGBA"))


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(2)
    data = rng.normal(10.0, 1.0, (1024, 1536)).astype(np.float32)
    data[300:340, 500:540] += 50.0
    return data


def test_levels_are_block_means(frame):
    pyr = Pyramid(frame)
    for k in (1, 2, 3):
        expected = block_reduce(frame, 2**k)
        np.testing.assert_allclose(pyr.level(k)[0], expected, rtol=2e-6)
    assert pyr.level(3)[0].shape == (128, 192)
    assert pyr.nbytes > 0
    np.testing.assert_array_equal(frame, np.asarray(frame))  # not modified


def test_max_levels_are_block_maxima(frame):
    pyr = Pyramid(frame, method="max")
    np.testing.assert_array_equal(pyr.level(2)[0], block_reduce(frame, 4, method="max"))


def test_render_view_equals_render_of_the_whole_frame(frame):
    """A zoomed-out view from a level is the same picture as reducing the whole frame."""
    pyr = Pyramid(frame)
    limits = (5.0, 20.0)
    a = render_view(pyr, max_size=(200, 200), limits=limits)
    b = render(frame, max_size=(200, 200), limits=limits)
    assert a.factor == b.factor == 8
    assert a.extent == b.extent and a.region == b.region
    diff = np.abs(pixels(a.png).astype(int) - pixels(b.png).astype(int))
    assert diff.max() <= 1  # float rounding of a mean of means


def test_zoomed_in_uses_full_resolution(frame):
    pyr = Pyramid(frame)
    r = render_view(pyr, x_range=(500, 600), y_range=(300, 380), max_size=(400, 400),
                    limits=(5, 20))
    assert r.factor == 1
    assert r.region[0] <= 500 and r.region[1] >= 600
    assert 1 not in pyr._levels  # no level was built for a zoomed-in view


def test_scaled_image_maps_to_frame_coordinates(frame):
    """A preview binned by 4 renders onto the full frame's coordinates."""
    binned = block_reduce(frame, 4)
    r = render_view(Pyramid(binned), x_range=(-0.5, 1535.5), y_range=(-0.5, 1023.5),
                    max_size=(400, 400), scale=4, limits=(5, 20))
    full = render(frame, max_size=(400, 400), limits=(5, 20))
    assert r.factor == full.factor
    assert r.extent == pytest.approx(full.extent)
    assert (r.width, r.height) == (full.width, full.height)
    diff = np.abs(pixels(r.png).astype(int) - pixels(full.png).astype(int))
    assert diff.max() <= 1


def test_levels_need_limits(frame):
    from jwst_widgets import InputError
    with pytest.raises(InputError, match="limits"):
        render_view(Pyramid(frame), max_size=(100, 100))
