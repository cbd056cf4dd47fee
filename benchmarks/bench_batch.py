"""Batch runs: the cost of Dask, and how it scales.

16 synthetic NIRCam-like frames of 2048x2048 go through a background +
smoothing + point-source detection + aperture photometry recipe three ways:

* sequential: ``process_file`` in a loop, in this process (the reference);
* ``run_batch`` on a local cluster of 1 worker process;
* ``run_batch`` on a local cluster of 2 worker processes.

Every run writes the same outputs (``overwrite=True``). The clusters are
started and warmed up (imports, one frame per worker) before the clock
starts, as the reference process is; their start-up time is printed apart.
Dask's overhead is the worker time spent outside the files' own processing
(wall time x workers - the sum of the task times), per file; CPU and wall
times against the sequential run are printed too, but on a busy machine they
measure the other processes as much as Dask. Then the scheduler's own cost
per task is measured with 2,000 empty tasks, and the figures are
extrapolated to 1,000 frames on 50 workers.

Targets: Dask's overhead per file at most 10 % of the file's own time; two
workers at least 1.6x as fast as one (on a machine with 2 free cores).

Run: ``python benchmarks/bench_batch.py [--frames 16] [--size 2048]``. The
frames are generated once into ``--workdir`` (default: a directory in the
jwst-widgets cache) and reused.
"""

import argparse
import math
import os
import time

# One thread per process everywhere, as in the Dask workers (no oversubscription).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

RECIPE_STAGES = [
    ("background_subtraction", {"box_size": 64, "filter_size": 3}),
    ("noise_reduction", {"method": "gaussian", "sigma": 0.7}),
    ("source_detection", {"method": "daofind", "threshold_sigma": 5.0, "fwhm": 2.2}),
    ("aperture_photometry", {"radius": 4.0, "annulus_inner": 8.0, "annulus_outer": 12.0}),
]


def make_frames(workdir, n, size):
    from jwst_widgets import datasets

    os.makedirs(workdir, exist_ok=True)
    paths = []
    for seed in range(1, n + 1):
        path = os.path.join(workdir, f"bench{size}_seed{seed}_cal.fits")
        if not os.path.exists(path):
            datasets.nircam_like(shape=(size, size), seed=seed).write(path)
        paths.append(path)
    return paths


def _noop(i):
    return i


def warm_cluster(n_workers, warm_file, recipe, outdir):
    from distributed import Client

    from jwst_widgets.pipeline import batch

    t0 = time.perf_counter()
    cluster = batch._local_cluster(n_workers, dashboard_address=None)
    client = Client(cluster, set_as_default=False)
    client.wait_for_workers(n_workers)
    started = time.perf_counter() - t0
    # Each worker runs one frame first (imports, caches), as the reference process does.
    from jwst_widgets.pipeline.outputs import process_file
    futures = [client.submit(process_file, recipe, warm_file, outdir, overwrite=True,
                             pure=False, workers=[w])
               for w in client.scheduler_info(n_workers=-1)["workers"]]
    client.gather(futures)
    return cluster, client, started


def time_noop_tasks(client, n=2000):
    t0 = time.perf_counter()
    futures = client.map(_noop, range(n), pure=False)
    client.gather(futures)
    return (time.perf_counter() - t0) / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    import numpy as np

    from jwst_widgets import Pipeline, datasets, run_batch
    from jwst_widgets.pipeline.outputs import process_file

    workdir = args.workdir or os.path.join(datasets.cache_dir(), "bench_batch")
    t0 = time.perf_counter()
    files = make_frames(workdir, args.frames, args.size)
    print(f"{len(files)} frames of {args.size}x{args.size} in {workdir} "
          f"({time.perf_counter() - t0:.0f} s to make or find)")
    recipe = Pipeline(RECIPE_STAGES).to_recipe()
    out = {k: os.path.join(workdir, f"out_{k}") for k in ("warm", "seq", "w1", "w2")}
    for d in out.values():
        os.makedirs(d, exist_ok=True)
    warm_file = files[0]  # every process runs one frame before the clock starts
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"on {os.cpu_count()} cores")

    # -- sequential, in this process --------------------------------------------
    process_file(recipe, warm_file, out["warm"], overwrite=True)
    t0, c0 = time.perf_counter(), time.process_time()
    rows = [process_file(recipe, f, out["seq"], overwrite=True) for f in files]
    t_seq, cpu_seq = time.perf_counter() - t0, time.process_time() - c0
    assert all(r["status"] == "done" for r in rows), [r["message"] for r in rows]
    per_file = t_seq / len(files)
    n_sources = sum(r["n_sources"] for r in rows)
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"sequential      {t_seq:8.1f} s wall {cpu_seq:8.1f} s CPU   {per_file:6.2f} s/file"
          f"   ({n_sources} sources; peak memory {peak:.0f} MiB)")

    # -- Dask, 1 and 2 workers ----------------------------------------------------
    results = {}
    for n in (1, 2):
        cluster, client, started = warm_cluster(n, warm_file, recipe, out["warm"])
        try:
            cpu0 = client.run(time.process_time)
            t0, c0 = time.perf_counter(), time.process_time()
            summary = run_batch(recipe, files, out[f"w{n}"], scheduler=client, overwrite=True,
                                progress=False)
            t, c_client = time.perf_counter() - t0, time.process_time() - c0
            cpu1 = client.run(time.process_time)
            assert set(summary["status"]) == {"done"}, list(summary["message"])
            assert int(summary["n_sources"].sum()) == n_sources
            noop = time_noop_tasks(client) if n == 2 else None
        finally:
            client.close()
            cluster.close()
        cpu = sum(cpu1[w] - cpu0[w] for w in cpu0 if w in cpu1)
        in_tasks = float(np.sum(summary["seconds"]))
        # Worker time not spent inside the files' own processing: scheduling,
        # transfers, idle gaps, and the client's gathering and writing at the end.
        outside = (n * t - in_tasks) / len(files)
        results[n] = {"wall": t, "cpu": cpu + c_client, "cpu_workers": cpu, "outside": outside,
                      "in_task": in_tasks / len(files), "noop": noop}
        print(f"Dask {n} worker{'s' if n > 1 else ' '}   {t:8.1f} s wall {cpu + c_client:8.1f} s "
              f"CPU   {t / len(files):6.2f} s/file   (cluster start {started:.1f} s; "
              f"{in_tasks / len(files):.2f} s per file inside the task, {outside:.2f} s "
              f"outside; client CPU {c_client:.1f} s)")

    r1, r2 = results[1], results[2]
    noop = r2["noop"]
    overhead = r1["outside"]
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print()
    print(f"Dask overhead per file, 1 worker: {overhead * 1000:.0f} ms of worker time outside "
          f"the task = {overhead / r1['in_task']:.1%} of the file's own time (target <= 10 %); "
          f"CPU, all processes: {r1['cpu'] / cpu_seq - 1:+.1%} against sequential; "
          f"wall: {r1['wall'] / t_seq - 1:+.1%} against sequential")
    print(f"speed-up, 2 workers vs 1: {r1['wall'] / r2['wall']:.2f}x (target >= 1.6x; needs 2 "
          f"idle cores); vs sequential: {t_seq / r2['wall']:.2f}x")
    # What 2 idle cores would give if each worker had one: the work is CPU-bound,
    # so the ratio of the workers' CPU seconds says how much each file costs more
    # when two run side by side (shared caches and memory bandwidth).
    print(f"  CPU seconds in the workers: {r1['cpu_workers']:.1f} (1 worker), "
          f"{r2['cpu_workers']:.1f} (2 workers): on 2 idle cores, 2 workers would be "
          f"{2 * r1['cpu_workers'] / r2['cpu_workers']:.2f}x as fast as 1")
    print(f"scheduler cost per task (2,000 empty tasks, 2 workers): {noop * 1000:.2f} ms")

    # -- on paper: 1,000 frames on 50 workers --------------------------------------
    n_files, n_workers = 1000, 50
    waves = math.ceil(n_files / n_workers)
    per_task = r1["in_task"] + max(overhead, 0.0)
    makespan = waves * per_task
    scheduler_busy = n_files * noop
    read_mb = sum(os.path.getsize(f) for f in files) / len(files) / 2**20
    print()
    # The scheduler handles tasks one at a time while the workers compute: it
    # limits the run only when 50 workers finish tasks faster than it serves them.
    limit = "is not" if n_workers * noop < per_task else "IS"
    print(f"1,000 frames on 50 workers (one core each), from these figures: {waves} waves x "
          f"{per_task:.2f} s = {makespan / 60:.1f} min (+ cluster start-up), against "
          f"{n_files * per_file / 3600:.1f} h in one process. The scheduler spends "
          f"{scheduler_busy:.1f} s in all on the tasks ({scheduler_busy / makespan:.1%} of the "
          f"run; {n_workers} x {noop * 1000:.1f} ms per wave against {per_task:.2f} s per task: "
          f"it {limit} the bottleneck). Each file reads {read_mb:.0f} MiB: the shared file "
          f"system must serve {n_workers * read_mb / per_task:.0f} MiB/s.")


if __name__ == "__main__":
    main()
