"""Histogram equalisation and robust statistics of a 4096x4096 frame.

Both on the synthetic NIRCam-like frame of ``bench_stages.py`` (seed 1,
NaN reference border and dead pixels, stars, galaxies, hot pixels):

* **histogram equalisation** (target: 50 ms; astropy's ``HistEqStretch``
  takes about 20 s):

  - the interactive path, what a user waits for: the view renders through
    ``jwst_widgets.processing.display.render`` / ``render_view``, which
    equalise only the screen-size pixels in view with the cumulative
    histogram of a 100k-pixel sample of the frame. Timed: ``render`` of the
    whole frame into 800x800 (limits, sample, block means, PNG), with the
    limits known, and of a 1:1 zoom; and the view's own path, through its
    image pyramid: a new frame (the pyramid is built once per frame), a
    switch to 'histeq' (sample, equalisation, render) and a pan;
  - the full-frame stage, ``enhance(frame, interval="zscale",
    stretch="histeq")``, which equalises every pixel with the histogram of
    every valid pixel; against the same through the public pieces it was
    built from before (``ManualInterval`` + ``FastHistEqStretch``) and
    against astropy's ``HistEqStretch`` (``--astropy``, one run).

* **robust statistics** (target: 200 ms; astropy's functions take about
  10 s): ``robust_statistics`` of the whole frame, with a mask, and of an
  800x800 box; ``global_background``; astropy's ``sigma_clipped_stats`` +
  ``biweight_location`` + ``biweight_scale`` + ``mad_std`` on the same
  pixels (``--astropy``, one run), with the largest difference between the
  two sets of numbers.

Times are the best of ``--repeats`` runs, CPU (``process_time``) and wall;
the load average is printed with each section. Results go to
``benchmarks/results/`` as JSON.

Run: ``python benchmarks/bench_histeq_stats.py [--size 4096] [--repeats 7]
[--astropy]``.
"""

import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_stages import (best_of, frame, header, load, machine,  # noqa: E402
                          print_machine, row, save, timing)


def bench_histeq(f, repeats, with_astropy):
    from astropy.visualization import HistEqStretch, ManualInterval

    from jwst_widgets.processing.display import Pyramid, render, render_view
    from jwst_widgets.processing.enhance import (display_limits, enhance, make_stretch,
                                                 sample_values)

    data, mask = f["data"], f["mask"]
    ny, nx = data.shape
    results = {}
    header(f"histogram equalisation, {nx}x{ny} (best of {repeats})")
    render(data[:256, :256], stretch="histeq", mask=mask[:256, :256])   # warm up

    def first_view():
        return render(data, mask=mask, max_size=(800, 800), interval="zscale",
                      stretch="histeq")

    wall, cpu, shown = best_of(first_view, repeats)
    limits = (shown.vmin, shown.vmax)
    results["render: first view of the frame"] = timing(wall, cpu)
    row("render: whole frame into 800x800", wall, cpu,
        f"{shown.width}x{shown.height} PNG, blocks of {shown.factor}")

    wall, cpu, _ = best_of(lambda: render(data, mask=mask, max_size=(800, 800),
                                          limits=limits, stretch="histeq"), repeats)
    results["render: stretch change, limits known"] = timing(wall, cpu)
    row("render: stretch change (limits known)", wall, cpu)

    cx, cy = nx // 2, ny // 2
    zoom = dict(x_range=(cx - 400, cx + 399), y_range=(cy - 400, cy + 399))
    wall, cpu, _ = best_of(lambda: render(data, mask=mask, max_size=(800, 800), limits=limits,
                                          stretch="histeq", **zoom), repeats)
    results["render: 1:1 zoom, 800x800"] = timing(wall, cpu)
    row("render: 1:1 zoom, 800x800 pixels", wall, cpu)

    # The view (jwst_widgets.widgets.view): a pyramid of block means, built
    # once per frame, and the equalisation of a 100k sample, built once per
    # change of limits or stretch.
    def first_view_through_pyramid():
        pyramid = Pyramid(data, mask)
        return pyramid, render_view(pyramid, max_size=(800, 800), limits=limits,
                                    stretch="linear")

    wall, cpu, (pyramid, _) = best_of(first_view_through_pyramid, repeats)
    results["view: new frame (pyramid + render)"] = timing(wall, cpu)
    row("view: a new frame (pyramid + render)", wall, cpu, "(once per frame, any stretch)")

    def stretch_change():
        sample = ManualInterval(*limits)(sample_values(data, mask=mask), clip=True)
        stretch = make_stretch("histeq", data=sample)
        return stretch, render_view(pyramid, max_size=(800, 800), limits=limits,
                                    stretch=stretch)

    wall, cpu, (stretch, _) = best_of(stretch_change, repeats)
    results["view: switch to histeq (sample + equalise + render)"] = timing(wall, cpu)
    row("view: switch to histeq", wall, cpu, "(sample, equalisation, render)")
    pan = dict(x_range=(100, nx - 300), y_range=(300, ny - 100))
    wall, cpu, _ = best_of(lambda: render_view(pyramid, max_size=(800, 800), limits=limits,
                                               stretch=stretch, **pan), repeats)
    results["render_view: pan, pyramid and stretch built"] = timing(wall, cpu)
    row("render_view: pan (pyramid, stretch built)", wall, cpu)

    wall, cpu, out = best_of(lambda: enhance(data, mask=mask, interval="zscale",
                                             stretch="histeq"), repeats)
    results["enhance: full frame"] = timing(wall, cpu)
    row("enhance(stretch='histeq'): every pixel", wall, cpu)

    lo, hi = display_limits(data, "zscale", mask=mask)
    bad = mask | ~np.isfinite(data)

    def before():
        norm = ManualInterval(lo, hi)(data, clip=True).astype(np.float32)
        equalise = make_stretch("histeq", data=norm[~bad])
        equalise(norm, out=norm)
        norm[bad] = np.nan
        return norm

    wall, cpu, previous = best_of(before, max(1, repeats // 2))
    results["ManualInterval + FastHistEqStretch (the previous stage)"] = timing(wall, cpu)
    row("ManualInterval + FastHistEqStretch", wall, cpu, "(the stage before this change)")
    ok = ~bad
    results["enhance_max_abs_diff_from_fasthisteq"] = float(np.max(np.abs(out - previous)[ok]))

    if with_astropy:
        norm = ManualInterval(lo, hi)(data, clip=True)
        norm[bad] = 0.0

        def astropy_histeq():
            return HistEqStretch(norm[ok])(norm)

        wall, cpu, ref = best_of(astropy_histeq, 1)
        results["astropy HistEqStretch"] = timing(wall, cpu)
        diff = float(np.max(np.abs(out - ref)[ok]))
        results["enhance_max_abs_diff_from_astropy"] = diff
        row("astropy HistEqStretch", wall, cpu, f"enhance differs by at most {diff:.1e}")
    ratios = {"view_switch_to_histeq_cpu_ms":
              results["view: switch to histeq (sample + equalise + render)"]["cpu_ms"],
              "render_first_view_cpu_ms": results["render: first view of the frame"]["cpu_ms"],
              "enhance_cpu_ms": results["enhance: full frame"]["cpu_ms"],
              "previous_over_enhance_cpu":
                  results["ManualInterval + FastHistEqStretch (the previous stage)"]["cpu_ms"]
                  / results["enhance: full frame"]["cpu_ms"]}
    line = (f"  interactive: switch to histeq {ratios['view_switch_to_histeq_cpu_ms']:.0f} ms, "
            f"render() of the whole frame {ratios['render_first_view_cpu_ms']:.0f} ms; full "
            f"frame {ratios['enhance_cpu_ms']:.0f} ms (CPU)   [target <= 50 ms]; previous / "
            f"enhance: {ratios['previous_over_enhance_cpu']:.1f}")
    if "astropy HistEqStretch" in results:
        ratios["astropy_over_enhance_cpu"] = (results["astropy HistEqStretch"]["cpu_ms"]
                                              / results["enhance: full frame"]["cpu_ms"])
        line += f"; astropy / enhance: {ratios['astropy_over_enhance_cpu']:.0f}"
    print(line)
    return {"size": [ny, nx], "results": results, "ratios": ratios, "load": load()}


def bench_statistics(f, repeats, with_astropy):
    from astropy.stats import biweight_location, biweight_scale, mad_std, sigma_clipped_stats

    from jwst_widgets.processing.background import global_background
    from jwst_widgets.processing.stats import robust_statistics

    data, mask = f["data"], f["mask"]
    ny, nx = data.shape
    results = {}
    header(f"robust statistics, {nx}x{ny} (best of {repeats})")
    robust_statistics(data[:256, :256])                  # warm up
    cases = [
        ("robust_statistics, whole frame", lambda: robust_statistics(data)),
        ("robust_statistics, with the DQ mask", lambda: robust_statistics(data, mask=mask)),
        ("robust_statistics, 800x800 box",
         lambda: robust_statistics(data, box=(1000, 1800, 1000, 1800))),
        ("global_background (sigma-clipped)", lambda: global_background(data)),
    ]
    for name, fn in cases:
        wall, cpu, stats = best_of(fn, repeats)
        results[name] = timing(wall, cpu)
        row(name, wall, cpu)
    ours = robust_statistics(data)

    if with_astropy:
        values = data[np.isfinite(data)]

        def astropy_stats():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mean, median, std = sigma_clipped_stats(values, sigma=3.0, maxiters=5)
                return {"mean": mean, "median": median, "std": std,
                        "biweight_location": biweight_location(values),
                        "biweight_scale": biweight_scale(values),
                        "mad_std": mad_std(values)}

        wall, cpu, ref = best_of(astropy_stats, 1)
        results["astropy (the same six numbers)"] = timing(wall, cpu)
        worst = max(abs(ours[k] - float(ref[k])) / abs(float(ref[k])) for k in ref)
        results["max_relative_difference_from_astropy"] = worst
        row("astropy: sigma_clipped_stats + biweight + mad_std", wall, cpu,
            f"largest relative difference {worst:.1e}")
    a = results["robust_statistics, whole frame"]
    ratios = {"robust_statistics_cpu_ms": a["cpu_ms"]}
    line = f"  robust_statistics: {a['cpu_ms']:.0f} ms CPU, {a['wall_ms']:.0f} ms wall   " \
           f"[target <= 200 ms]"
    if "astropy (the same six numbers)" in results:
        ratios["astropy_over_ours_cpu"] = (results["astropy (the same six numbers)"]["cpu_ms"]
                                           / a["cpu_ms"])
        line += f"; astropy / ours: {ratios['astropy_over_ours_cpu']:.0f}"
    print(line)
    return {"size": [ny, nx], "results": results, "ratios": ratios, "statistics": ours,
            "load": load()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--astropy", action="store_true",
                        help="also time astropy's HistEqStretch and statistics (about 30 s)")
    args = parser.parse_args()
    info = machine()
    print_machine(info)
    f = frame(args.size)
    payload = {"machine": info,
               "histeq": bench_histeq(f, args.repeats, args.astropy),
               "statistics": bench_statistics(f, args.repeats, args.astropy),
               "load_after": load()}
    save("bench_histeq_stats", payload)


if __name__ == "__main__":
    main()
