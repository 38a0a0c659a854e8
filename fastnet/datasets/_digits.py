"""The UCI "optical recognition of handwritten digits" 8x8 data set."""

from __future__ import annotations

from importlib import resources

import numpy as np

from ._idx import read_idx

__all__ = ["load_digits"]

_PACKAGE = "fastnet.datasets"
_IMAGES = "digits-images-idx2-ubyte.gz"
_LABELS = "digits-labels-idx1-ubyte.gz"
_N_SAMPLES = 1797


def _read_packaged(name: str) -> np.ndarray:
    with (resources.files(_PACKAGE) / "data" / name).open("rb") as fh:
        return read_idx(fh)


def load_digits(as_float: bool = False, flatten: bool = True):
    """Load the 8x8 handwritten digits data set shipped with fastnet.

    This is the test part (``optdigits.tes``) of the UCI *Optical
    Recognition of Handwritten Digits* data set (E. Alpaydin and C. Kaynak,
    1998): 1,797 images of the digits 0-9 written by 13 people.  Each 32x32
    bitmap was divided into non-overlapping 4x4 blocks and the "on" pixels in
    each block were counted, giving an 8x8 image of integers 0..16.  It is
    the same data, in the same order, as scikit-learn's
    ``sklearn.datasets.load_digits`` (the copy shipped here was converted from
    it), and it needs no download.

    Class counts for the digits 0..9 are 178, 182, 177, 183, 181, 182, 181,
    179, 174 and 180.

    Parameters
    ----------
    as_float : bool, default False
        If False, ``X`` holds the raw counts as ``uint8`` in 0..16.  If True,
        ``X`` is ``float32`` scaled to [0, 1] (divided by 16), ready for
        training.
    flatten : bool, default True
        If True, ``X`` has shape ``(1797, 64)`` (row-major pixels, as in
        scikit-learn); if False, ``(1797, 8, 8)``.

    Returns
    -------
    X : numpy.ndarray
        Images, shape ``(1797, 64)`` or ``(1797, 8, 8)``.
    y : numpy.ndarray of int64
        Digit labels 0..9, shape ``(1797,)``.

    Notes
    -----
    Source: https://archive.ics.uci.edu/dataset/80 (DOI 10.24432/C50P49),
    licensed under Creative Commons Attribution 4.0 (CC BY 4.0); the copy in
    scikit-learn, from which this file was made, is distributed under
    scikit-learn's BSD-3-Clause license.  Please cite E. Alpaydin and C.
    Kaynak, "Cascading Classifiers", Kybernetika 34(4), 1998, when you
    publish results obtained with it.

    Examples
    --------
    >>> X, y = load_digits(as_float=True)
    >>> X.shape, X.dtype, y[:5]
    ((1797, 64), dtype('float32'), array([0, 1, 2, 3, 4]))
    """
    X = _read_packaged(_IMAGES)
    y = _read_packaged(_LABELS).astype(np.int64)
    if X.shape != (_N_SAMPLES, 64) or y.shape != (_N_SAMPLES,):  # pragma: no cover
        raise RuntimeError(
            "fastnet's packaged digits data is damaged (unexpected shapes "
            f"{X.shape} and {y.shape}); reinstall fastnet"
        )
    if as_float:
        X = X.astype(np.float32) / np.float32(16.0)
    if not flatten:
        X = X.reshape(_N_SAMPLES, 8, 8)
    return X, y
