"""A 10000 x 10000 Level-3 mosaic: first view, zoom, pan, peak memory (issue 5, item 5).

Makes an ``i2d``-like file (PRIMARY, SCI, ERR, WHT as float32; SCI in MJy/sr
with a TAN WCS), tiled from synthetic NIRCam frames and written in chunks so
the writer never holds the mosaic in memory. Then, in a fresh process for
each measurement (so peak memory is the product's alone):

* the pipeline builder opens it: time from the call to the first image
  rendered, and the process's peak resident memory against the file size;
* zoom in, zoom out, pan: time from the change to the new image.

Reference, same run: astropy's ``fits.getdata`` of SCI plus a full-frame
zscale and PNG at full resolution, the plain way a script would show it.

Usage: ``python benchmarks/bench_mosaic.py [--size 10000] [--keep]``
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine, print_machine, save  # noqa: E402


def make_mosaic(path, size):
    from astropy.io import fits
    from astropy.wcs import WCS

    from jwst_widgets.datasets import nircam_like

    tile = nircam_like(shape=(2048, 2048), seed=11, n_stars=600, n_galaxies=800)
    sci_tile = np.nan_to_num(np.asarray(tile.image.data, np.float32), nan=0.0)
    err_tile = np.asarray(tile.image.error, np.float32)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [53.16, -27.78]
    w.wcs.crpix = [size / 2, size / 2]
    w.wcs.cdelt = [-0.031 / 3600, 0.031 / 3600]
    header = w.to_header()
    header["BUNIT"] = "MJy/sr"
    header["PIXAR_SR"] = 2.259e-14
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "JWST"
    primary.header["INSTRUME"] = "NIRCAM"
    primary.header["FILTER"] = "F200W"
    hdus = [primary]
    for name in ("SCI", "ERR", "WHT"):
        h = fits.ImageHDU(header=header.copy() if name == "SCI" else fits.Header(), name=name)
        h.header["BITPIX"] = -32
        h.header["NAXIS"] = 2
        h.header["NAXIS1"] = size
        h.header["NAXIS2"] = size
        hdus.append(h)
    # write headers with placeholder data sizes, then fill each extension by rows
    with open(path, "wb") as fh:
        for i, h in enumerate(hdus):
            hdr = h.header.copy()
            if i == 0:
                hdr["EXTEND"] = True
            fh.write(hdr.tostring().encode("ascii"))
            if i == 0:
                continue
            rows = 512
            for y0 in range(0, size, rows):
                ny = min(rows, size - y0)
                block = np.empty((ny, size), np.float32)
                for j, y in enumerate(range(y0, y0 + ny)):
                    ty = (y // 2048) % 2
                    src = {"SCI": sci_tile, "ERR": err_tile,
                           "WHT": np.ones_like(sci_tile[:1]) * 1000.0}[h.name]
                    row = src[(y % 2048) if ty == 0 else 2047 - (y % 2048)] if h.name != "WHT" \
                        else src[0]
                    block[j] = np.resize(np.concatenate([row, row[::-1]]), size)
                if h.name == "SCI":
                    block[:, :40] = np.nan  # an uncovered edge, as a mosaic has
                fh.write(block.astype(">f4").tobytes())
            pad = (-(size * size * 4)) % 2880
            fh.write(b"\0" * pad)
    return os.path.getsize(path)


CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
path, action = sys.argv[1], sys.argv[2]
out = {}
if action == "reference":
    import io, numpy as np
    from astropy.io import fits
    from astropy.visualization import ZScaleInterval
    from PIL import Image
    data = fits.getdata(path, "SCI")
    vmin, vmax = ZScaleInterval().get_limits(data[np.isfinite(data)])
    img = np.clip((data - vmin) / (vmax - vmin), 0, 1)
    buf = io.BytesIO()
    Image.fromarray((np.nan_to_num(img) * 255).astype(np.uint8)).save(buf, format="png")
    out["first_view_s"] = time.perf_counter() - t0
else:
    from jwst_widgets import PipelineBuilder
    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    b = PipelineBuilder(path, width=800, height=700)
    first = []
    b.view.on_rendered(lambda v: first.append(time.perf_counter() - t1) if not first else None)
    assert b.wait_idle(300)
    out["import_s"] = t_import
    out["first_view_s"] = first[0] if first else float("nan")
    out["open_to_idle_s"] = time.perf_counter() - t1
    v = b.view
    steps = []
    def timed(label, fn):
        t = time.perf_counter(); fn(); b.wait_idle(120); steps.append((label, time.perf_counter() - t))
    for i in range(3):
        timed("zoom in 2x", lambda: v.zoom(2.0))
    for i in range(4):
        timed("pan 10%", lambda: v.pan(0.1 * (v.view_range[1] - v.view_range[0]), 0))
    for i in range(3):
        timed("zoom out 2x", lambda: v.zoom(0.5))
    timed("reset", v.reset_view)
    out["steps"] = steps
    out["png_bytes"] = len(v.shown.png)
    out["factor"] = v.shown.factor
out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("RESULT " + json.dumps(out))
"""


def child(path, action):
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", CHILD, path, action], capture_output=True,
                          text=True, env=env, timeout=1800)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--dir", default=None, help="where to write the mosaic (default: tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the mosaic file")
    args = parser.parse_args(argv)
    info = machine()
    print_machine(info)
    folder = args.dir or tempfile.mkdtemp(prefix="jw-mosaic-")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"mosaic_{args.size}_i2d.fits")
    t0 = time.perf_counter()
    if not os.path.exists(path):
        make_mosaic(path, args.size)
    size = os.path.getsize(path)
    sci_bytes = args.size * args.size * 4
    print(f"mosaic {args.size}x{args.size}: {size / 2**20:.0f} MiB file "
          f"(SCI {sci_bytes / 2**20:.0f} MiB), made in {time.perf_counter() - t0:.1f} s")
    ours = child(path, "builder")
    ref = child(path, "reference")
    print(f"\n{'':34}{'jwst-widgets':>14}{'reference':>12}{'ratio':>8}")
    print(f"{'first view (s)':34}{ours['first_view_s']:>14.2f}{ref['first_view_s']:>12.2f}"
          f"{ref['first_view_s'] / ours['first_view_s']:>8.1f}")
    print(f"{'peak memory (MiB)':34}{ours['peak_rss_bytes'] / 2**20:>14.0f}"
          f"{ref['peak_rss_bytes'] / 2**20:>12.0f}")
    print(f"{'peak memory / file size':34}{ours['peak_rss_bytes'] / size:>14.2f}"
          f"{ref['peak_rss_bytes'] / size:>12.2f}")
    print(f"{'peak memory / SCI size':34}{ours['peak_rss_bytes'] / sci_bytes:>14.2f}"
          f"{ref['peak_rss_bytes'] / sci_bytes:>12.2f}")
    print(f"(import of jwst_widgets + widgets: {ours['import_s']:.2f} s, not counted above; "
          f"builder open to idle {ours['open_to_idle_s']:.2f} s)")
    by = {}
    for label, sec in ours["steps"]:
        by.setdefault(label, []).append(sec * 1000)
    for label, ms in by.items():
        print(f"{label:34}{np.median(ms):>11.0f} ms  (max {max(ms):.0f})")
    save("mosaic", {"machine": info, "file_bytes": size, "sci_bytes": sci_bytes, "ours": ours,
                    "reference": ref})
    if not args.keep and args.dir is None:
        os.remove(path)
        os.rmdir(folder)


if __name__ == "__main__":
    main()
