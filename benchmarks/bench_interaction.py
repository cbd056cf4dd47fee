"""Kernel-side interaction latency through the builder's API (issue 5, item 1).

For each kind of change — display (interval, stretch, colormap, zoom, pan)
and processing (noise sigma, detection threshold, background box) — the time
from the change to the view showing its result, measured through
``PipelineBuilder``'s public API, against the research document's code path
measured in the same run on the same frame:

* reference "doc way": on every change, run the whole chain again
  (``Background2D`` → subtract → ``gaussian_filter`` → ``DAOStarFinder``), then
  ``enhance_image`` at full resolution (ZScale/stretch over every pixel) and
  encode a full-resolution PNG (as the research document's preview endpoint);
* reference "doc display": only the enhancement and the full-resolution PNG
  (what a display change would cost that way even without re-processing).

Usage: ``python benchmarks/bench_interaction.py [--sizes 2048 4096] [--repeats 8]``
"""

import argparse
import io
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, print_machine, save, summary  # noqa: E402

CHAIN = [("background_subtraction", {"box_size": 64}),
         ("noise_reduction", {"method": "gaussian", "sigma": 1.0}),
         ("source_detection", {"threshold_sigma": 5.0, "fwhm": 2.0})]


# -- the research document's code path (section 3, verbatim where it gives code) --
def doc_enhance_png(data):
    from astropy.visualization import ImageNormalize, ZScaleInterval
    from PIL import Image as PILImage

    valid = data[~np.isnan(data)]
    vmin, vmax = ZScaleInterval(contrast=0.25).get_limits(valid)
    norm = ImageNormalize(vmin=vmin, vmax=vmax)
    out = np.asarray(norm(data).filled(0) if hasattr(norm(data), "filled") else norm(data))
    img = PILImage.fromarray((np.clip(out, 0, 1) * 255).astype(np.uint8)[::-1])
    buf = io.BytesIO()
    img.save(buf, format="png")
    return buf.getvalue()


def doc_chain(data, box_size=64, sigma=1.0, threshold_sigma=5.0, fwhm=2.0):
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, MedianBackground
    from photutils.detection import DAOStarFinder
    from scipy.ndimage import gaussian_filter

    bkg = Background2D(data, box_size=box_size, filter_size=3,
                       sigma_clip=SigmaClip(sigma=3.0, maxiters=10),
                       bkg_estimator=MedianBackground())
    sub = data - bkg.background
    smooth = gaussian_filter(sub, sigma=sigma)
    finder = DAOStarFinder(fwhm=fwhm, threshold=threshold_sigma * bkg.background_rms_median)
    finder(np.nan_to_num(sub))
    return smooth


def doc_way(data, **params):
    t0 = time.perf_counter()
    smooth = doc_chain(data, **params)
    doc_enhance_png(smooth)
    return time.perf_counter() - t0


def doc_display(data):
    t0 = time.perf_counter()
    doc_enhance_png(data)
    return time.perf_counter() - t0


# -- ours ---------------------------------------------------------------------------
class Clock:
    """Times from a change to the first (preview) and the last render of the view."""

    def __init__(self, view):
        self.first = None
        self.preview = None
        view.on_rendered(self._on_render)
        self.view = view

    def start(self):
        self.t0 = time.perf_counter()
        self.first = self.preview = None

    def _on_render(self, view):
        now = time.perf_counter() - getattr(self, "t0", 0.0)
        if self.first is None:
            self.first = now
        if view.binning > 1 and self.preview is None:
            self.preview = now


def measure_display(builder, clock, repeats):
    view = builder.view
    changes = {
        "interval": [("interval", v) for v in ("minmax", 99.5, "zscale", 99.0)],
        "stretch": [("stretch", v) for v in ("asinh", "log", "sqrt", "linear")],
        "colormap": [("colormap", v) for v in ("viridis", "inferno", "magma", "gray")],
    }
    out = {}
    for kind, values in changes.items():
        times = []
        for i in range(repeats):
            name, value = values[i % len(values)]
            clock.start()
            setattr(view, name, value)
            builder.wait_idle(60)
            times.append(time.perf_counter() - clock.t0)
        out[kind] = summary(times)
    for kind, action in (("zoom", lambda i: view.zoom(2.0 if i % 2 == 0 else 0.5)),
                         ("pan", lambda i: view.pan((1 if i % 2 == 0 else -1) *
                                                    0.1 * (view.view_range[1] -
                                                           view.view_range[0]), 0))):
        times = []
        for i in range(repeats):
            clock.start()
            action(i)
            builder.wait_idle(60)
            times.append(time.perf_counter() - clock.t0)
        out[kind] = summary(times)
    return out


def measure_processing(builder, clock, repeats):
    sweeps = {
        "noise sigma": (1, "sigma", [1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0]),
        "detection threshold": (2, "threshold_sigma", [5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0,
                                                      9.5, 10.0]),
        "background box": (0, "box_size", [48, 56, 72, 80, 96, 104, 112, 120, 128, 136]),
    }
    out = {}
    for kind, (index, name, values) in sweeps.items():
        full, preview, stage = [], [], []
        for value in values[:repeats]:
            clock.start()
            builder.set_params(index, **{name: value})
            builder.wait_idle(300)
            full.append(time.perf_counter() - clock.t0)
            if clock.preview is not None:
                preview.append(clock.preview)
            stage.append(sum(s.seconds for s in builder.result.stages if not s.cached))
        out[kind] = {"full": summary(full), "stage_compute": summary(stage),
                     "preview": summary(preview) if preview else None}
    return out


def run(size, repeats):
    from jwst_widgets import PipelineBuilder
    from jwst_widgets.datasets import nircam_like

    print(f"\n=== {size} x {size} ===")
    frame = nircam_like(shape=(size, size), seed=0)
    data = np.array(frame.image.data, dtype=np.float32)

    t0 = time.perf_counter()
    builder = PipelineBuilder(frame.image, stages=CHAIN, width=640, height=600)
    builder.wait_idle(600)
    cold = time.perf_counter() - t0
    clock = Clock(builder.view)
    # warm the caches of the stage outputs the sweeps come back to
    display = measure_display(builder, clock, repeats)
    processing = measure_processing(builder, clock, repeats)

    ref_display = summary([doc_display(data) for _ in range(max(2, repeats // 3))])
    ref_process = {
        "noise sigma": summary([doc_way(data, sigma=s) for s in (1.2, 1.4)]),
        "detection threshold": summary([doc_way(data, threshold_sigma=t) for t in (5.5, 6.0)]),
        "background box": summary([doc_way(data, box_size=b) for b in (48, 56)]),
    }
    ref_all = summary([v["median"] for v in ref_process.values()])
    builder.close()

    print(f"builder on {size}² with {len(CHAIN)} stages, first image (kernel side): {cold:.2f} s")
    print(f"{'display change':<22}{'ours median ms':>16}{'doc way ms':>12}{'ratio':>8}"
          f"{'doc display-only ms':>22}{'ratio':>8}")
    for kind, s in display.items():
        ours = s["median"] * 1000
        print(f"{kind:<22}{ours:>16.1f}{ref_all['median'] * 1000:>12.0f}"
              f"{ref_all['median'] * 1000 / ours:>8.1f}{ref_display['median'] * 1000:>22.0f}"
              f"{ref_display['median'] * 1000 / ours:>8.1f}")
    print(f"{'processing change':<22}{'preview ms':>12}{'full ms':>10}{'stage ms':>10}"
          f"{'full/stage':>11}{'doc way ms':>12}{'ratio':>8}")
    for kind, s in processing.items():
        prev = s["preview"]["median"] * 1000 if s["preview"] else float("nan")
        full = s["full"]["median"] * 1000
        stage = s["stage_compute"]["median"] * 1000
        ref = ref_process[kind]["median"] * 1000
        print(f"{kind:<22}{prev:>12.0f}{full:>10.0f}{stage:>10.0f}{full / stage:>11.2f}"
              f"{ref:>12.0f}{ref / full:>8.1f}")
    return {"size": size, "cold_start_kernel_s": cold, "display": display,
            "processing": processing, "reference_display_only": ref_display,
            "reference_doc_way": ref_process}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args(argv)
    info = machine()
    print_machine(info)
    results = [run(size, args.repeats) for size in args.sizes]
    save("interaction", {"machine": info, "results": results})


if __name__ == "__main__":
    main()
