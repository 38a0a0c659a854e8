"""Data sets and data utilities for fastnet.

Everything here needs only numpy and the standard library, and nothing is
ever downloaded unless explicitly requested.

Data sets
---------
load_digits
    The UCI 8x8 handwritten digits (1,797 images), shipped with fastnet.
load_mnist
    MNIST or Fashion-MNIST from local IDX files, verified against the
    published checksums; optional explicit download from a mirror.
download_mnist
    Fetch and verify the four MNIST-format files from a mirror.
mnist_search_paths, get_cache_dir
    Where :func:`load_mnist` looks for files, and where downloads go.

Utilities
---------
train_test_split
    Random, optionally stratified, train/test split.
read_idx, write_idx
    Read and write IDX files (the MNIST file format), gzip or raw.

Exceptions
----------
DatasetNotFoundError
    A data set is not present locally (subclass of FileNotFoundError).
ChecksumError
    A data file failed verification (subclass of ValueError).
"""

from ._digits import load_digits
from ._idx import read_idx, write_idx
from ._mnist import (
    MNIST_CHECKSUMS,
    ChecksumError,
    DatasetNotFoundError,
    download_mnist,
    get_cache_dir,
    load_mnist,
    mnist_search_paths,
)
from ._split import train_test_split

from ..multiclass import load_iris  # noqa: E402  (Iris, 150 rows, shipped in data/iris.csv)

__all__ = [
    "load_iris",
    "ChecksumError",
    "DatasetNotFoundError",
    "MNIST_CHECKSUMS",
    "download_mnist",
    "get_cache_dir",
    "load_digits",
    "load_mnist",
    "mnist_search_paths",
    "read_idx",
    "train_test_split",
    "write_idx",
]
