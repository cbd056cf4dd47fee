"""Stage benchmarks: background estimation and segmentation against SEP.

Every comparison runs in this process on the same synthetic NIRCam-like
frames (``jwst_widgets.datasets.nircam_like``, seed 1), whose truth is known:

* **background** (2048x2048 and 4096x4096): ``estimate_background`` against
  SEP's ``Background`` (the SourceExtractor library) and photutils'
  ``Background2D`` (the reference for the numbers), all with 64-pixel boxes
  and a 3x3 median filter of the mesh; time, and the accuracy
  ``RMS((background - truth.sky) / truth.noise_rms)`` over the good pixels.
  Target: within 1.5x of SEP's time, at least photutils' accuracy.
* **segmentation + deblending** (2048x2048): ``find_segments(...,
  deblend=True)`` against ``sep.extract`` on the same background-subtracted
  frame: the same 5x5 Gaussian kernel (FWHM 2), threshold 1.5 x the
  background RMS map, 10 pixels, 32 levels, contrast 0.001. Differences that
  remain: SEP convolves bad pixels as zeros where we interpolate them, SEP
  assigns the pixels of a blend by its own rule where photutils uses a
  watershed, and SEP's catalog has no Kron fluxes (its ``kron_radius`` +
  ``sum_ellipse`` are timed apart, as "SEP + Kron"). SEP's cleaning is off
  (``clean=False``): photutils has none. photutils' own ``detect_sources`` +
  ``deblend_sources`` + ``SourceCatalog`` (after astropy's convolution) are
  timed too, and the detections are compared: counts, the same segment map
  as photutils or not, matched fractions between us and SEP, and
  completeness against the true stars and galaxies. Target: within 2x of
  SEP's ``extract``.

Times are the best of ``--repeats`` runs, as CPU time (``process_time``)
and wall time; the machine is shared, so the load average is printed with
each section, and ratios of CPU times are the figures to quote. Results are
saved as JSON in ``benchmarks/results/``.

Run: ``python benchmarks/bench_stages.py [--sizes 2048 4096] [--repeats 5]
[--segmentation-sizes 2048] [--skip-photutils]``. Frames are generated once
(about 10 s for 2048x2048, 40 s for 4096x4096) into the jwst-widgets cache.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BOX = 64
FILTER = 3
THRESHOLD_SIGMA = 1.5
N_PIXELS = 10
SMOOTH_FWHM = 2.0
N_LEVELS = 32
CONTRAST = 0.001


# ---------------------------------------------------------------------------
# Shared by the benchmarks (bench_histeq_stats.py imports these).

def machine():
    """CPU model, cores, load average, library versions, BLAS environment."""
    model = cpu_model()
    import astropy
    import photutils
    import scipy
    try:
        import sep
        sep_version = sep.__version__
    except ImportError:
        sep_version = None
    return {
        "cpu": model, "cores": os.cpu_count(), "load": load(),
        "python": platform.python_version(), "numpy": np.__version__,
        "scipy": scipy.__version__, "astropy": astropy.__version__,
        "photutils": photutils.__version__, "sep": sep_version,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
    }


def load():
    return [round(x, 2) for x in os.getloadavg()]


def print_machine(info):
    print(f"machine: {info['cpu']}, {info['cores']} cores, load average "
          f"{' '.join(str(x) for x in info['load'])}")
    print(f"numpy {info['numpy']}, scipy {info['scipy']}, astropy {info['astropy']}, "
          f"photutils {info['photutils']}, sep {info['sep']}; OPENBLAS_CORETYPE="
          f"{info['OPENBLAS_CORETYPE']}")


def best_of(fn, repeats):
    """Run ``fn`` ``repeats`` times: (best wall s, best CPU s, last result)."""
    wall = cpu = float("inf")
    result = None
    for _ in range(max(1, repeats)):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return wall, cpu, result


def timing(wall, cpu):
    return {"wall_ms": round(wall * 1e3, 1), "cpu_ms": round(cpu * 1e3, 1)}


def row(label, wall, cpu, note=""):
    print(f"  {label:34s} {cpu * 1e3:9.0f} {wall * 1e3:9.0f}   {note}")


def header(title):
    print(f"\n{title}   (load {' '.join(str(x) for x in load())})")
    print(f"  {'':34s} {'CPU ms':>9s} {'wall ms':>9s}")


def frame(size, seed=1):
    """A cached nircam_like frame: image arrays and the truth we compare with."""
    from jwst_widgets import datasets

    folder = os.path.join(datasets.cache_dir(), "bench_stages")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"nircam_like_{size}_seed{seed}.npz")
    if not os.path.exists(path):
        t0 = time.perf_counter()
        made = datasets.nircam_like(shape=(size, size), seed=seed)
        image, truth = made.image, made.truth
        stars, galaxies = truth.stars, truth.galaxies
        np.savez(path + ".part.npz",
                 data=np.asarray(image.data, dtype=np.float32), mask=image.mask,
                 error=np.asarray(image.error, dtype=np.float32),
                 sky=truth.sky, stripes=truth.stripes, noise_rms=truth.noise_rms,
                 hot=truth.hot_pixels,
                 star_x=np.asarray(stars["x"]), star_y=np.asarray(stars["y"]),
                 star_snr=np.asarray(stars["snr"]),
                 gal_x=np.asarray(galaxies["x"]), gal_y=np.asarray(galaxies["y"]),
                 gal_flux=np.asarray(getattr(galaxies["flux"], "value", galaxies["flux"])),
                 gal_reff=np.asarray(galaxies["r_eff"]))
        os.replace(path + ".part.npz", path)
        print(f"(made the {size}x{size} frame in {time.perf_counter() - t0:.0f} s: {path})")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def save(name, payload):
    folder = os.path.join(HERE, "results")
    os.makedirs(folder, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(folder, f"{name}-{stamp}.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, default=float)
    print(f"\nsaved {path}")
    return path


# ---------------------------------------------------------------------------
# Background.

def bench_background(size, repeats, skip_photutils):
    import sep
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, MedianBackground, StdBackgroundRMS

    from jwst_widgets.processing.background import estimate_background

    f = frame(size)
    data, mask = f["data"], f["mask"]
    good = ~mask
    sky, noise = f["sky"], f["noise_rms"]
    sep_data = np.where(mask, np.float32(0), data)      # SEP wants no NaN under the mask
    sep_mask = mask.astype(np.uint8)

    def ours():
        b = estimate_background(data, box_size=BOX, filter_size=FILTER, mask=mask)
        return b.background, b.background_rms

    def with_sep():
        b = sep.Background(sep_data, mask=sep_mask, bw=BOX, bh=BOX, fw=FILTER, fh=FILTER)
        return b.back(), b.rms()

    def with_photutils():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b = Background2D(data, BOX, mask=mask, filter_size=FILTER,
                             sigma_clip=SigmaClip(sigma=3.0, maxiters=10),
                             bkg_estimator=MedianBackground(sigma_clip=None),
                             bkg_rms_estimator=StdBackgroundRMS(sigma_clip=None))
            return b.background, b.background_rms

    def accuracy(maps):
        bkg, rms = maps
        residual = ((bkg - sky) / noise)[good]
        rms_ratio = np.median((rms / noise)[good])
        return {"rms_residual_over_noise": float(np.sqrt(np.mean(residual ** 2))),
                "median_residual_over_noise": float(np.median(residual)),
                "median_rms_over_true_noise": float(rms_ratio)}

    header(f"background, {size}x{size}, {BOX}-pixel boxes, {FILTER}x{FILTER} filter "
           f"(best of {repeats})")
    ours(), with_sep()                                   # warm up (imports, caches)
    results = {}
    for name, fn, n in [("jwst_widgets estimate_background", ours, repeats),
                        ("SEP Background (back + rms)", with_sep, repeats),
                        ("photutils Background2D", with_photutils, 1)]:
        if skip_photutils and name.startswith("photutils"):
            continue
        wall, cpu, maps = best_of(fn, n)
        acc = accuracy(maps)
        results[name] = {**timing(wall, cpu), **acc}
        row(name, wall, cpu, f"RMS(bkg - truth)/noise {acc['rms_residual_over_noise']:.3f}"
                             f"   rms/true noise {acc['median_rms_over_true_noise']:.3f}")
        if name.startswith("photutils"):
            ours_bkg = ours()[0]
            results[name]["max_abs_diff_from_ours_over_noise"] = float(
                np.max(np.abs(ours_bkg - maps[0])[good] / noise[good]))
    a = results["jwst_widgets estimate_background"]
    s = results["SEP Background (back + rms)"]
    ratio = {"ours_over_sep_cpu": a["cpu_ms"] / s["cpu_ms"],
             "ours_over_sep_wall": a["wall_ms"] / s["wall_ms"]}
    line = (f"  ours / SEP: {ratio['ours_over_sep_cpu']:.2f} (CPU), "
            f"{ratio['ours_over_sep_wall']:.2f} (wall)   [target <= 1.5]")
    p = results.get("photutils Background2D")
    if p:
        ratio["photutils_over_ours_cpu"] = p["cpu_ms"] / a["cpu_ms"]
        line += (f";  photutils / ours: {ratio['photutils_over_ours_cpu']:.1f} (CPU); "
                 f"ours - photutils: at most {p['max_abs_diff_from_ours_over_noise']:.1e} noise")
    print(line)
    return {"size": size, "results": results, "ratios": ratio, "load": load()}


# ---------------------------------------------------------------------------
# Segmentation and deblending.

def _match(ax, ay, bx, by, radius):
    """For each (ax, ay), the index of the nearest (bx, by) within radius, or -1."""
    from scipy.spatial import cKDTree

    if len(bx) == 0 or len(ax) == 0:
        return np.full(len(ax), -1)
    dist, idx = cKDTree(np.column_stack([bx, by])).query(np.column_stack([ax, ay]))
    return np.where(dist <= radius, idx, -1)


def _truth_targets(f):
    """True sources bright enough to expect: stars at S/N > 10, galaxies at S/N > 20."""
    ny, nx = f["data"].shape
    rms = float(np.median(f["noise_rms"]))
    size = np.maximum(f["gal_reff"], 1.0)
    gal_snr = f["gal_flux"] / (rms * np.sqrt(np.pi * (2 * size) ** 2))
    x = np.concatenate([f["star_x"], f["gal_x"]])
    y = np.concatenate([f["star_y"], f["gal_y"]])
    bright = np.concatenate([f["star_snr"] > 10, gal_snr > 20])
    inside = (x > 8) & (x < nx - 9) & (y > 8) & (y < ny - 9)
    return x[bright & inside], y[bright & inside]


def bench_segmentation(size, repeats, skip_photutils):
    import sep
    from astropy.convolution import convolve
    from photutils.segmentation import (SourceCatalog, deblend_sources, detect_sources,
                                        make_2dgaussian_kernel)

    from jwst_widgets.processing import detect
    from jwst_widgets.processing.background import estimate_background

    f = frame(size)
    data, mask, error = f["data"], f["mask"], f["error"]
    # Hot pixels stay in the data (DQ HOT only); a segmentation takes them for
    # sources, so mask them as a user would (SEP gets the same mask).
    mask = mask | f["hot"]
    bkg = estimate_background(data, box_size=BOX, filter_size=FILTER, mask=mask)
    sub = (data - bkg.background).astype(np.float32)
    rms = bkg.background_rms.astype(np.float32)
    threshold = THRESHOLD_SIGMA * rms
    bad = mask | ~np.isfinite(sub)
    kernel = make_2dgaussian_kernel(SMOOTH_FWHM, size=2 * int(np.ceil(SMOOTH_FWHM)) + 1)
    sep_data = np.where(bad, np.float32(0), sub)
    sep_mask = bad.astype(np.uint8)
    sep_kernel = np.asarray(kernel.array, dtype=np.float32)
    sep.set_extract_pixstack(20_000_000)
    sep.set_sub_object_limit(8192)

    def ours():
        return detect.find_segments(sub, threshold=threshold, n_pixels=N_PIXELS,
                                    smooth_fwhm=SMOOTH_FWHM, deblend=True, n_levels=N_LEVELS,
                                    contrast=CONTRAST, mask=mask, error=error)

    def with_sep():
        return sep.extract(sep_data, THRESHOLD_SIGMA, err=rms, mask=sep_mask, minarea=N_PIXELS,
                           filter_kernel=sep_kernel, filter_type="conv",
                           deblend_nthresh=N_LEVELS, deblend_cont=CONTRAST, clean=False,
                           segmentation_map=True)

    def with_sep_kron():
        objects, segmap = with_sep()
        x, y, a, b, theta = (objects[k] for k in ("x", "y", "a", "b", "theta"))
        kron, _ = sep.kron_radius(sep_data, x, y, a, b, theta, 6.0, mask=sep_mask)
        flux, _, _ = sep.sum_ellipse(sep_data, x, y, a, b, theta, 2.5 * kron, subpix=1,
                                     mask=sep_mask)
        return objects, segmap, flux

    # Our stage, step by step (the same calls find_segments makes).
    steps = {}

    def step(name, fn):
        wall, cpu, out = best_of(fn, repeats)
        steps[name] = timing(wall, cpu)
        return out

    def with_photutils():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = {}
            c0 = time.process_time()
            conv = convolve(sub, kernel, mask=bad)
            conv[~np.isfinite(conv)] = 0
            t["astropy convolve"] = time.process_time() - c0
            c0 = time.process_time()
            segm = detect_sources(conv, threshold, N_PIXELS)
            t["detect_sources"] = time.process_time() - c0
            c0 = time.process_time()
            segm = deblend_sources(conv, segm, N_PIXELS, n_levels=N_LEVELS,
                                   contrast=CONTRAST, progress_bar=False)
            t["deblend_sources (every segment)"] = time.process_time() - c0
            c0 = time.process_time()
            SourceCatalog(np.where(bad, 0, sub), segm, convolved_data=conv, error=error,
                          mask=bad).to_table()
            t["SourceCatalog.to_table"] = time.process_time() - c0
            return segm, t

    header(f"segmentation + deblending, {size}x{size}: threshold {THRESHOLD_SIGMA} x RMS map, "
           f"{N_PIXELS} pixels, FWHM {SMOOTH_FWHM} kernel, {N_LEVELS} levels, contrast "
           f"{CONTRAST} (best of {repeats})")
    ours(), with_sep()                                   # warm up
    results = {}
    wall, cpu, seg = best_of(ours, repeats)
    results["jwst_widgets find_segments"] = timing(wall, cpu)
    row("jwst_widgets find_segments", wall, cpu, f"{seg.n_sources} sources")
    smoothed, unfilled = step("smooth", lambda: detect._smooth(sub, bad, SMOOTH_FWHM))
    segm = step("detect", lambda: detect_sources(smoothed, threshold, N_PIXELS,
                                                 mask=unfilled if unfilled.any() else None))
    candidates = step("select", lambda: detect._splittable_labels(smoothed, segm.data,
                                                                   N_PIXELS))
    deblended = step("deblend", lambda: detect._deblend(smoothed, segm, N_PIXELS, N_LEVELS,
                                                        CONTRAST))
    step("catalog", lambda: SourceCatalog(np.where(bad, 0, sub), deblended,
                                          convolved_data=smoothed, error=error,
                                          mask=bad).to_table(columns=detect._catalog_columns()))
    labels = {"smooth": "  smoothing (separable, astropy's numbers)",
              "detect": "  detect_sources",
              "select": "  which segments could split",
              "deblend": f"  deblend_sources, {len(candidates)} of {segm.n_labels} segments",
              "catalog": "  SourceCatalog (photutils' columns)"}
    for key, label in labels.items():
        row(label, steps[key]["wall_ms"] / 1e3, steps[key]["cpu_ms"] / 1e3)
    results["jwst_widgets find_segments"]["steps"] = steps

    wall, cpu, (objects, sep_map) = best_of(with_sep, repeats)
    results["SEP extract"] = timing(wall, cpu)
    row("SEP extract", wall, cpu, f"{len(objects)} sources")
    wall, cpu, _ = best_of(with_sep_kron, repeats)
    results["SEP extract + Kron flux"] = timing(wall, cpu)
    row("SEP extract + kron_radius + sum_ellipse", wall, cpu)

    same_as_photutils = None
    if not skip_photutils:
        wall, cpu, (p_segm, parts) = best_of(with_photutils, 1)
        results["photutils (convolve + detect + deblend + catalog)"] = {
            **timing(wall, cpu), "steps": {k: round(v * 1e3, 1) for k, v in parts.items()}}
        row("photutils, all steps", wall, cpu, f"{p_segm.n_labels} sources")
        for k, v in parts.items():
            row("  " + k, v, v)
        same_as_photutils = bool(np.array_equal(p_segm.data, seg.segment_map))

    # Detections: ours against SEP, and both against the truth.
    cat = seg.catalog
    ox, oy = np.asarray(cat["x_centroid"]), np.asarray(cat["y_centroid"])
    sx, sy = objects["x"], objects["y"]
    tx, ty = _truth_targets(f)
    ours_in_sep = float(np.mean(_match(ox, oy, sx, sy, 2.0) >= 0))
    sep_in_ours = float(np.mean(_match(sx, sy, ox, oy, 2.0) >= 0))
    pix = (np.round(ty).astype(int), np.round(tx).astype(int))
    detections = {
        "n_ours": int(seg.n_sources), "n_sep": int(len(objects)),
        "n_photutils": None if skip_photutils else int(p_segm.n_labels),
        "segment_map_equal_to_photutils": same_as_photutils,
        "ours_matched_by_sep_2px": ours_in_sep, "sep_matched_by_ours_2px": sep_in_ours,
        "n_true_targets": int(len(tx)),
        "completeness_ours_2.5px": float(np.mean(_match(tx, ty, ox, oy, 2.5) >= 0)),
        "completeness_sep_2.5px": float(np.mean(_match(tx, ty, sx, sy, 2.5) >= 0)),
        "on_a_segment_ours": float(np.mean(seg.segment_map[pix] > 0)),
        "on_a_segment_sep": float(np.mean(sep_map[pix] > 0)),
        "same_footprint_fraction": float(np.mean((seg.segment_map > 0) == (sep_map > 0))),
    }
    print(f"  detections: ours {detections['n_ours']}, SEP {detections['n_sep']}"
          + ("" if skip_photutils else f", photutils {detections['n_photutils']} "
             f"(same segment map as ours: {same_as_photutils})"))
    print(f"  ours matched by SEP within 2 px: {ours_in_sep:.3f}; SEP matched by ours: "
          f"{sep_in_ours:.3f}; pixels in/out of a segment alike: "
          f"{detections['same_footprint_fraction']:.4f}")
    print(f"  completeness on {len(tx)} true sources (stars S/N > 10, galaxies S/N > 20): "
          f"a detection within 2.5 px: ours {detections['completeness_ours_2.5px']:.3f}, "
          f"SEP {detections['completeness_sep_2.5px']:.3f}; on a segment: ours "
          f"{detections['on_a_segment_ours']:.3f}, SEP {detections['on_a_segment_sep']:.3f}")
    a = results["jwst_widgets find_segments"]
    ratio = {"ours_over_sep_cpu": a["cpu_ms"] / results["SEP extract"]["cpu_ms"],
             "ours_over_sep_wall": a["wall_ms"] / results["SEP extract"]["wall_ms"],
             "ours_over_sep_kron_cpu": a["cpu_ms"] / results["SEP extract + Kron flux"]["cpu_ms"]}
    no_catalog = sum(steps[k]["cpu_ms"] for k in ("smooth", "detect", "select", "deblend"))
    ratio["ours_without_catalog_over_sep_cpu"] = no_catalog / results["SEP extract"]["cpu_ms"]
    line = (f"  ours / SEP extract: {ratio['ours_over_sep_cpu']:.2f} (CPU), "
            f"{ratio['ours_over_sep_wall']:.2f} (wall)   [target <= 2];  ours / (SEP + Kron): "
            f"{ratio['ours_over_sep_kron_cpu']:.2f};  segmentation + deblending alone / SEP: "
            f"{ratio['ours_without_catalog_over_sep_cpu']:.2f}")
    key = "photutils (convolve + detect + deblend + catalog)"
    if key in results:
        ratio["photutils_over_ours_cpu"] = results[key]["cpu_ms"] / a["cpu_ms"]
        line += f";  photutils / ours: {ratio['photutils_over_ours_cpu']:.1f}"
    print(line)
    return {"size": size, "results": results, "ratios": ratio, "detections": detections,
            "load": load()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096],
                        help="frame sizes for the background")
    parser.add_argument("--segmentation-sizes", type=int, nargs="+", default=[2048])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-photutils", action="store_true",
                        help="leave out photutils' own (slow) runs")
    args = parser.parse_args()

    info = machine()
    print_machine(info)
    for size in sorted(set(args.sizes) | set(args.segmentation_sizes)):
        frame(size)                                      # make them before the clock
    payload = {"machine": info, "background": [], "segmentation": []}
    for size in args.sizes:
        payload["background"].append(bench_background(size, args.repeats, args.skip_photutils))
    for size in args.segmentation_sizes:
        payload["segmentation"].append(
            bench_segmentation(size, args.repeats, args.skip_photutils))
    payload["load_after"] = load()
    save("bench_stages", payload)


if __name__ == "__main__":
    main()
