"""Prepare the synthetic samples (``python -m jwst_widgets.datasets.prepare``)."""

from . import SAMPLES, sample_path


def main():
    for name, (filename, _) in SAMPLES.items():
        if filename is None:
            print(f"{name}: {sample_path(name)}")


if __name__ == "__main__":
    main()
