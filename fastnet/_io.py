"""Files: written atomically, read as hostile.

Every file fastnet writes goes through :func:`atomic_write`: the data go to a
temporary file in the target's folder, which is flushed, fsynced and then
``os.replace``d over the target (and the folder fsynced), so a reader, a crash
or a SIGKILL only ever sees the old file or the complete new one.

:func:`read_npz` reads an ``.npz`` archive without trusting it: no pickle,
every ``.npy`` header parsed and handed to a check before any array data is
read, sizes and CRCs verified, and every failure reported as a ``ValueError``
naming the file.
"""
import contextlib
import os
import secrets
import stat
import zipfile

import numpy as np

_TMP_SUFFIX = ".tmp"


def temp_name(path):
    """A fresh hidden name next to *path* (same folder, so os.replace is atomic)."""
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(directory, ".%s.%s%s" % (base, secrets.token_hex(6), _TMP_SUFFIX))


def is_temp_name(name, base):
    """True when *name* (a folder entry) is one of atomic_write's temporaries for *base*."""
    return name.startswith("." + base + ".") and name.endswith(_TMP_SUFFIX)


def fsync_dir(directory):
    """Persist a rename in *directory* (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # Windows: folders cannot be opened; the rename is durable there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode="wb", *, encoding=None, newline=None):
    """Write *path* atomically: ``with atomic_write(p) as f: f.write(...)``.

    Yields a file object (``mode`` "wb", or "w" for text with *encoding* and
    *newline* as :func:`open`) whose ``name`` is the temporary file.  When the
    block ends the file is flushed, fsynced and renamed over *path*, and the
    folder is fsynced; if the block (or any of those steps before the rename)
    raises, the temporary file is removed and *path* is left as it was (a
    SIGKILL or power loss can leave the hidden temporary ``.NAME.*.tmp``
    behind, never a partial *path*).  A symbolic link is written through, as
    :func:`open` does; the new file keeps the permissions of the file it
    replaces, or gets the default ones (``0o666`` minus the umask)."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError("atomic_write: mode must be 'w', 'wt' or 'wb'; got %r" % (mode,))
    path = os.fspath(path)
    if os.path.islink(path):
        path = os.path.realpath(path)
    if os.path.isdir(path):
        raise IsADirectoryError("cannot write %r: it is a directory" % (path,))
    try:
        keep_mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        keep_mode = None
    for _ in range(100):
        tmp = temp_name(path)
        try:
            # exclusive create: never follows or clobbers a name someone else made
            fh = open(tmp, mode.replace("w", "x"), encoding=encoding, newline=newline)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError("could not create a temporary file next to %r" % (path,))
    try:
        with fh:
            if keep_mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), keep_mode)  # a private file stays private
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))


# ------------------------------------------------------------------- reading
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
_NPY_MAGIC = b"\x93NUMPY"


def _describe_non_zip(head):
    if not head:
        return "is empty (0 bytes)"
    if head.startswith(_NPY_MAGIC):
        return "is a .npy file (one array), not an .npz archive"
    if head.startswith(b"\x1f\x8b"):
        return "is gzip-compressed, not an .npz archive"
    try:
        head.decode("utf-8")
        text = b"\0" not in head
    except UnicodeDecodeError:
        text = False
    return "is not an .npz archive (%s)" % ("it looks like a text file" if text else "no zip signature")


def _read_header(member):
    """(shape, fortran_order, dtype) from a .npy member's header."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(member)
    raise ValueError("unsupported .npy format version %d.%d" % version)


class BadFileError(ValueError):
    """A file that cannot be what it should be (truncated, corrupt, another format,
    arrays that do not fit); the message names the file and the problem."""


def read_npz(path, check=None, who="read_npz"):
    """Every array of the ``.npz`` archive *path*, as ``{key: array}`` in archive order.

    The file is treated as hostile: ``check({key: (shape, dtype)})``, when given,
    sees every member's header before any array data is read (so it can refuse
    shapes or dtypes without allocating them) and returns None to accept or a
    message saying what is wrong; object arrays are refused (never unpickled);
    every member must be a ``.npy`` whose data fill it exactly and pass the zip
    CRC.  A missing file raises FileNotFoundError; anything else wrong with the
    file raises :class:`BadFileError` (a ValueError) naming *who*, the file and
    the problem.  The file is always closed."""
    path = os.fspath(path)
    where = "%s: %r" % (who, path)
    if os.path.isdir(path):
        raise BadFileError("%s is a directory, not an .npz file" % where)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError("%s: no such file" % where) from None
    with fh:
        head = fh.read(8)
        if not head.startswith(_ZIP_MAGIC):
            raise BadFileError("%s %s" % (where, _describe_non_zip(head)))
        fh.seek(0)
        try:
            with zipfile.ZipFile(fh) as zf:
                return _read_members(zf, check, where)
        except BadFileError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError,
                RuntimeError, ValueError, OSError) as exc:
            # what zipfile / zlib raise on a damaged archive (BadZipFile, a short read,
            # a seek before the start, an encrypted member...); an I/O error of the
            # device itself keeps its own words in the message
            raise BadFileError("%s is truncated or corrupt (%s: %s)"
                               % (where, type(exc).__name__, exc)) from None


def _read_members(zf, check, where):
    infos = zf.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise BadFileError("%s is corrupt: it holds a member name twice" % where)
    headers = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise BadFileError("%s holds %r, which is not a .npy array" % (where, info.filename))
        key = info.filename[:-4]
        with zf.open(info) as member:
            try:
                shape, fortran, dtype = _read_header(member)
            except ValueError as exc:
                raise BadFileError("%s: array %r has a bad header (%s)" % (where, key, exc)) from None
            offset = member.tell()
        if dtype.hasobject:
            raise BadFileError("%s: array %r holds Python objects (dtype %s); they are never "
                             "unpickled" % (where, key, dtype))
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise BadFileError("%s: array %r declares shape %s of %s (%d bytes) but its member "
                             "holds %d bytes of data" % (where, key, shape, dtype, nbytes,
                                                        info.file_size - offset))
        headers[key] = (info, shape, fortran, dtype, offset, nbytes)
    if check is not None:
        problem = check({key: (h[1], h[3]) for key, h in headers.items()})
        if problem:
            raise BadFileError("%s %s" % (where, problem))
    out = {}
    for key, (info, shape, fortran, dtype, offset, nbytes) in headers.items():
        with zf.open(info) as member:
            member.read(offset)
            data = member.read(nbytes)
            if len(data) != nbytes or member.read(1):
                raise BadFileError("%s: array %r has %d bytes of data; %d expected"
                                 % (where, key, len(data), nbytes))
        out[key] = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
    return out
