"""Reading and writing the IDX binary array format.

IDX is the simple container format used by the MNIST family of data sets
(MNIST, Fashion-MNIST, EMNIST, KMNIST, ...).  A file consists of

* a 4-byte magic number ``0x00 0x00 <type code> <ndim>``,
* ``ndim`` big-endian unsigned 32-bit dimension sizes,
* the array data in C (row-major) order, big-endian.

Supported type codes:

======  ===========  =====================
code    element      numpy dtype on disk
======  ===========  =====================
0x08    uint8        ``u1``
0x09    int8         ``i1``
0x0B    int16        ``>i2``
0x0C    int32        ``>i4``
0x0D    float32      ``>f4``
0x0E    float64      ``>f8``
======  ===========  =====================

Files are commonly distributed gzip-compressed; :func:`read_idx` detects
compression from the gzip magic bytes (``1f 8b``), not from the file name.
"""

from __future__ import annotations

import gzip as _gzip
import io
import os
from typing import BinaryIO, Iterable, Union

import numpy as np

from .._io import atomic_write

__all__ = ["read_idx", "write_idx"]

PathLike = Union[str, "os.PathLike[str]"]

#: IDX type code -> big-endian numpy dtype as stored on disk.
IDX_TYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: numpy dtype kind+itemsize -> IDX type code (byte order ignored).
_DTYPE_TO_CODE: dict[tuple[str, int], int] = {
    (dt.kind, dt.itemsize): code for code, dt in IDX_TYPE_CODES.items()
}

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def _describe(source: object) -> str:
    """A short human-readable name for *source*, used in error messages."""
    if isinstance(source, (str, bytes, os.PathLike)):
        return os.fsdecode(source)
    name = getattr(source, "name", None)
    if isinstance(name, (str, bytes)):
        return os.fsdecode(name)
    return "<file object>"


def _peek_magic(stream: BinaryIO) -> tuple[bytes, BinaryIO]:
    """Return the first two bytes of *stream* without consuming them.

    Returns the bytes and a stream positioned at the original start (which
    may be a wrapper around *stream* when it cannot seek).
    """
    peek = getattr(stream, "peek", None)
    if peek is not None:
        try:
            head = peek(2)[:2]
        except (OSError, ValueError):
            head = None
        if head is not None and (len(head) == 2 or not head):
            return head, stream
    if getattr(stream, "seekable", lambda: False)():
        pos = stream.tell()
        head = stream.read(2)
        stream.seek(pos)
        return head, stream
    buffered = io.BufferedReader(_RawAdapter(stream))
    return buffered.peek(2)[:2], buffered


class _RawAdapter(io.RawIOBase):
    """Expose an arbitrary readable binary object as a raw stream."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self._stream.read(len(b))
        n = len(data)
        b[:n] = data
        return n


def _read_exact_into(stream: BinaryIO, buf: memoryview) -> tuple[int, bool]:
    """Fill *buf* from *stream*.

    Returns the number of bytes read and whether a compressed stream ended
    abruptly (``EOFError`` from :mod:`gzip`) before *buf* was full.
    """
    total = 0
    n_total = len(buf)
    readinto = getattr(stream, "readinto", None)
    # Bounded reads from compressed streams, so that a cut-off stream still
    # reports (to within one step) how much data it held.
    step = 1 << 20 if isinstance(stream, _gzip.GzipFile) else n_total
    while total < n_total:
        view = buf[total : min(n_total, total + step)]
        try:
            if readinto is not None:
                n = readinto(view)
            else:
                data = stream.read(len(view))
                n = len(data)
                view[:n] = data
        except EOFError:
            return total, True
        if not n:
            break
        total += n
    return total, False


def _read_idx_stream(stream: BinaryIO, name: str, hashers: Iterable = ()) -> np.ndarray:
    """Parse one (already decompressed) IDX stream.

    Every byte consumed is also fed to each object in *hashers* (``hashlib``
    objects), so callers can checksum the decompressed content in the same
    pass.  Raises ``ValueError`` for malformed input.
    """
    hashers = list(hashers)

    header = stream.read(4)
    if len(header) < 4:
        raise ValueError(
            f"{name}: not an IDX file: expected a 4-byte magic number, "
            f"got {len(header)} byte(s)"
        )
    if header[0] != 0 or header[1] != 0 or header[2] not in IDX_TYPE_CODES:
        raise ValueError(
            f"{name}: not an IDX file: bad magic number 0x{header.hex()} "
            "(expected 00 00 <type code> <ndim> with type code one of "
            + ", ".join(f"0x{c:02X}" for c in IDX_TYPE_CODES)
            + ")"
        )
    dtype = IDX_TYPE_CODES[header[2]]
    ndim = header[3]
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")

    dims_raw = stream.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise ValueError(
            f"{name}: truncated IDX header: expected {4 * ndim} bytes of "
            f"dimension sizes for {ndim} dimension(s), got {len(dims_raw)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
    for h in hashers:
        h.update(header)
        h.update(dims_raw)

    n_items = 1
    for d in shape:
        n_items *= d
    n_bytes = n_items * dtype.itemsize
    header_len = 4 + 4 * ndim

    # For plain seekable files, check the size before allocating so that a
    # corrupt header cannot trigger a huge allocation.
    remaining = _remaining_bytes(stream)
    if remaining is not None and remaining < n_bytes:
        raise ValueError(
            f"{name}: truncated IDX data: header declares shape {shape} of "
            f"{dtype.name} ({n_bytes} data bytes after the {header_len}-byte "
            f"header) but only {remaining} byte(s) are present"
        )
    try:
        buf = np.empty(n_bytes, dtype=np.uint8)
    except (MemoryError, ValueError) as exc:
        raise ValueError(
            f"{name}: IDX header declares shape {shape} ({n_bytes} bytes), "
            "which cannot be allocated; the file is probably corrupt"
        ) from exc

    got, cut = _read_exact_into(stream, memoryview(buf))
    if got < n_bytes:
        present = (
            f"the gzip stream ends abruptly after about {got} byte(s)"
            if cut
            else f"only {got} byte(s) are present"
        )
        raise ValueError(
            f"{name}: truncated IDX data: header declares shape {shape} of "
            f"{dtype.name} ({n_bytes} data bytes after the {header_len}-byte "
            f"header) but {present}"
        )
    _check_trailing(stream, name, n_bytes, shape)
    for h in hashers:
        h.update(buf)

    arr = buf.view(dtype).reshape(shape)
    if dtype.byteorder == ">":
        arr = arr.astype(dtype.newbyteorder("="))
    return arr


def _remaining_bytes(stream: BinaryIO) -> int | None:
    """Bytes left in a plain seekable file, or ``None`` when unknown."""
    if isinstance(stream, _gzip.GzipFile):
        return None
    try:
        if not stream.seekable():
            return None
        pos = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(pos)
        return end - pos
    except (AttributeError, OSError, ValueError):
        return None


def _check_trailing(stream: BinaryIO, name: str, n_bytes: int, shape: tuple) -> None:
    """Raise ``ValueError`` if anything follows the declared data."""
    n = 0
    problem = None
    try:
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            n += len(chunk)
    except EOFError:
        problem = "the gzip stream is truncated (its end-of-stream trailer is missing)"
    except _gzip.BadGzipFile:
        problem = "unexpected trailing data follows the gzip stream"
    if n:
        problem = f"{n} unexpected trailing byte(s) follow the data"
    if problem:
        raise ValueError(
            f"{name}: {problem} (header declares shape {shape}, "
            f"{n_bytes} data bytes)"
        )


def _open_idx(source: PathLike | BinaryIO):
    """Return ``(stream, close, is_gzip, name)`` for a path or file object."""
    name = _describe(source)
    if isinstance(source, (str, bytes, os.PathLike)):
        fh = open(source, "rb")
        owned = True
    elif hasattr(source, "read"):
        fh = source
        owned = False
    else:
        raise TypeError(
            "read_idx: 'source' must be a path or a binary file object, "
            f"got {type(source).__name__}"
        )
    try:
        head, fh2 = _peek_magic(fh)
    except Exception:
        if owned:
            fh.close()
        raise
    if isinstance(head, str):
        if owned:
            fh.close()
        raise TypeError("read_idx: the file object must be opened in binary mode")
    is_gzip = head == _GZIP_MAGIC
    stream = _gzip.GzipFile(fileobj=fh2, mode="rb") if is_gzip else fh2

    def close() -> None:
        if is_gzip:
            stream.close()
        if owned:
            fh.close()

    return stream, close, is_gzip, name


def _read_idx(source: PathLike | BinaryIO, hashers: Iterable = ()) -> np.ndarray:
    stream, close, is_gzip, name = _open_idx(source)
    try:
        try:
            return _read_idx_stream(stream, name, hashers)
        except (OSError, EOFError) as exc:
            # BadGzipFile (an OSError) or zlib errors inside a gzip stream.
            if is_gzip:
                raise ValueError(f"{name}: corrupt gzip data: {exc}") from exc
            raise
    finally:
        close()


def read_idx(source: PathLike | BinaryIO) -> np.ndarray:
    """Read an IDX file into a numpy array.

    Parameters
    ----------
    source : str, os.PathLike or binary file object
        The file to read.  Gzip compression is detected from the gzip magic
        bytes (``1f 8b``), so ``.gz`` files need not carry the suffix and
        uncompressed files may.  A file object must be opened in binary mode;
        it is read from its current position and is not closed.

    Returns
    -------
    numpy.ndarray
        A new, writable array with the shape given by the header and the
        element type given by the type code (see the module documentation),
        converted to native byte order: one of ``uint8``, ``int8``,
        ``int16``, ``int32``, ``float32`` or ``float64``.

    Raises
    ------
    ValueError
        If the magic number is wrong, the header or data is truncated (the
        message gives the expected and actual byte counts), bytes follow the
        declared data, or the gzip stream is corrupt.
    FileNotFoundError
        If *source* is a path that does not exist.

    Examples
    --------
    >>> import numpy as np, io
    >>> buf = io.BytesIO()
    >>> write_idx(buf, np.arange(6, dtype=np.uint8).reshape(2, 3))
    >>> _ = buf.seek(0)
    >>> read_idx(buf)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    return _read_idx(source)


def idx_header(array: np.ndarray) -> bytes:
    """Return the IDX header (magic number and dimensions) for *array*."""
    dt = array.dtype
    code = _DTYPE_TO_CODE.get((dt.kind, dt.itemsize))
    if code is None:
        raise TypeError(
            f"write_idx: dtype {dt} cannot be stored in IDX; supported dtypes "
            "are uint8, int8, int16, int32, float32 and float64"
        )
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(
            f"write_idx: 'array' must have between 1 and 255 dimensions, got {array.ndim}"
        )
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"write_idx: dimension sizes must be < 2**32, got {array.shape}")
    return bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()


def write_idx(dest: PathLike | BinaryIO, array, gzip: bool | None = None) -> None:
    """Write *array* to an IDX file.

    Parameters
    ----------
    dest : str, os.PathLike or binary file object
        Where to write.  A path is written atomically (to a temporary file in
        the same directory that is then renamed over *dest*).  A file object
        is written at its current position and left open.
    array : array_like
        Data with 1 to 255 dimensions and dtype ``uint8``, ``int8``,
        ``int16``, ``int32``, ``float32`` or ``float64`` (any byte order;
        data is stored big-endian as the format requires).  Other dtypes
        raise ``TypeError``: convert explicitly, e.g. ``a.astype(np.int32)``.
    gzip : bool, optional
        Compress the output with gzip.  The default (``None``) compresses
        when *dest* is a path ending in ``.gz`` and not otherwise.  The gzip
        header carries no timestamp, so output is reproducible.
    """
    arr = np.asarray(array)
    header = idx_header(arr)
    # Big-endian, C-contiguous, viewed as raw bytes (no copy when possible).
    data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder(">"))
    payload = data.reshape(-1).view(np.uint8)

    is_path = isinstance(dest, (str, bytes, os.PathLike))
    if gzip is None:
        gzip = is_path and os.fsdecode(dest).endswith(".gz")

    def _write(fh: BinaryIO) -> None:
        if gzip:
            with _gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz:
                gz.write(header)
                gz.write(payload)
        else:
            fh.write(header)
            fh.write(payload)

    if not is_path:
        if not hasattr(dest, "write"):
            raise TypeError(
                "write_idx: 'dest' must be a path or a binary file object, "
                f"got {type(dest).__name__}"
            )
        _write(dest)
        return

    with atomic_write(dest) as fh:
        _write(fh)
