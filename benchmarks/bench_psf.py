"""PSF photometry: fit time per star and for a full frame, against photutils used plainly.

A crowded synthetic NIRCam-like frame (default 2048x2048 with 4,000 stars)
is background-subtracted and searched once. Then, on the same data, the
same PSF and the same detections:

* reference: photutils' ``PSFPhotometry`` called the plain way, one call over
  all sources (``ImagePSF``, 5x5 fit box, no grouping, ERR weights);
* ours: :func:`jwst_widgets.processing.psf.fit_psf` with the same settings
  (chunks of whole groups, with progress and cancellation between them);
* the whole ``psf_photometry`` stage: PSF stars, ePSF built twice
  (neighbours subtracted), fit, aperture correction, catalog.

Printed: seconds, milliseconds per source, our/photutils ratio (target: at
most 1.10, the chunking costs nothing noticeable), and that the fluxes are
the same numbers.

Run: ``python benchmarks/bench_psf.py [--size 2048] [--stars 4000]``.
"""

import argparse
import os
import time
import warnings

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--stars", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)

    import numpy as np
    from astropy.table import QTable
    from photutils.psf import PSFPhotometry

    from jwst_widgets import Pipeline
    from jwst_widgets.datasets import nircam_like
    from jwst_widgets.processing import psf as P

    t0 = time.perf_counter()
    frame = nircam_like((args.size, args.size), seed=args.seed, n_stars=args.stars)
    pipe = Pipeline([("background_subtraction", {"box_size": 64}),
                     ("source_detection", {"threshold_sigma": 5.0, "fwhm": 2.2})])
    prep = pipe.run(frame.image)
    image, catalog = prep.final, prep.catalog
    print(f"frame {args.size}x{args.size}, {args.stars} stars: {len(catalog)} detections "
          f"(made and searched in {time.perf_counter() - t0:.1f} s)")

    t0 = time.perf_counter()
    result = P.psf_photometry(image.data, catalog, error=image.error, mask=image.mask,
                              background_rms=prep.products["background_rms"])
    t_stage = time.perf_counter() - t0
    psf = result.psf
    print(f"whole psf_photometry: {t_stage:.1f} s ({1000 * t_stage / len(catalog):.1f} ms per "
          f"source), PSF from {len(psf.stars)} stars")

    bad = image.mask | ~np.isfinite(image.data) | ~np.isfinite(image.error)
    data = np.where(bad, 0.0, image.data)
    error = np.where(bad, 1.0, image.error)
    init = QTable({"id": catalog["id"], "x": catalog["x_centroid"], "y": catalog["y_centroid"]})

    t0 = time.perf_counter()
    ref = PSFPhotometry(psf.model, 5, aperture_radius=max(1.5, psf.fwhm), progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = ref(data, mask=bad, error=error, init_params=init)
        ref.make_residual_image(data)
    t_ref = time.perf_counter() - t0

    t0 = time.perf_counter()
    ours = P.fit_psf(image.data, catalog, psf, fit_shape=5, error=image.error, mask=image.mask)
    t_ours = time.perf_counter() - t0

    n = len(catalog)
    same = np.allclose(np.asarray(ours.table["flux_fit"], float),
                       np.asarray(table["flux_fit"], float), rtol=1e-9, equal_nan=True)
    print(f"photutils PSFPhotometry, plain: {t_ref:.1f} s ({1000 * t_ref / n:.2f} ms per source)")
    print(f"jwst_widgets fit_psf:           {t_ours:.1f} s ({1000 * t_ours / n:.2f} ms per "
          f"source)")
    print(f"ratio ours / photutils: {t_ours / t_ref:.3f} (target <= 1.10); same fluxes: {same}")


if __name__ == "__main__":
    main()
