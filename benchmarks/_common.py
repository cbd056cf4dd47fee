"""Shared bits of the benchmark scripts: the machine's description and result files."""

import json
import os
import platform
import statistics
import time


def cpu_model():
    """The CPU's model name, from /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine():
    """Cores, CPU model, memory, load average: printed and saved with every figure."""
    model = cpu_model()
    mem = 0
    try:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) * 1024
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem / 2**30, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M")}


def print_machine(info):
    print(f"machine: {info['cores']} cores, {info['cpu']}, {info['memory_gib']} GiB, "
          f"load {info['load_average']}, Python {info['python']}, {info['date']}")


def summary(values):
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1],
            "n": len(values)}


def save(name, payload):
    folder = os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2, default=str)
    print(f"results: {path}")
    return path
