"""Shared fixtures: seeded synthetic frames and the bundled samples."""

import hashlib
import os

import pytest

pytest_plugins = ["mast_plugin", "reliability_plugin"]


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.fixture
def unchanged_files():
    """Record checksums of files, then assert after the test that none changed.

    Use: ``unchanged_files(path, ...)`` inside a test that reads files.
    """
    recorded = {}

    def watch(*paths):
        for p in paths:
            p = os.fspath(p)
            recorded[p] = sha256(p)
        return paths

    yield watch
    for p, digest in recorded.items():
        assert sha256(p) == digest, f"{p} was modified"
