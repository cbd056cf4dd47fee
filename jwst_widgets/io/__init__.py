"""The data layer: the image type, loading and writing."""

from .image import Image
from .load import DO_NOT_USE, load_image
from .write import atomic_write, file_checksum, read_provenance, write_fits

__all__ = ["Image", "load_image", "write_fits", "atomic_write", "file_checksum",
           "read_provenance", "DO_NOT_USE"]
