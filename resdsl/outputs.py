"""Writing output files so that no output ever destroys anything.

* a new file gets mode ``0666 & ~umask``; an existing file keeps its mode;
* a symlink is written through (its target changes, the link stays);
* a device, FIFO or socket is written directly, never replaced by a regular file;
* an output that is the same file as an input (the ``.res`` file, an import, ``--config``,
  ``--weights``) is refused with ``error[usage]``;
* a folder, a missing folder or an unwritable place gives ``error[io]``;
* a regular file is written to a temporary file beside it, fsynced, then renamed over
  the old one, so a failure leaves the old file whole;
* a regular file with several hard links is written in place, so that every link sees the
  new content (a rename would cut this name off the others): a copy of the old content is
  first written and fsynced beside it, and put back if the write fails; the copy is left
  there, and named in the error, only if even that fails.

``-`` writes to standard output. Side files (``-O2``'s ``.pt``, ONNX's ``.data``) go
through the same rules, and :func:`write_outputs` writes a file and its side file
together: both are written to temporary files first, then renamed one right after the
other with Ctrl-C held off and the first rename undone if the second fails, so an
interrupted or failed run leaves both old or both new (never a new ``.pt`` beside an old
``.py``). Used by the command line and the API; the backends never write.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import sys
import tempfile

from .diagnostics import ResdslError

STDOUT = "-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _io_error(path, what: str, e: OSError | None = None) -> ResdslError:
    why = f": {e.strerror}" if e is not None and e.strerror else ""
    return ResdslError("io", f"cannot write {path}: {what}{why}")


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _is_text(data: bytes) -> bool:
    return b"\0" not in data[:65536]  # ONNX, PNG and compressed PDF streams all hold NUL bytes


def _stat(target: str, path):
    """os.stat of the output, None when it does not exist yet."""
    try:
        return os.stat(target)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _io_error(path, "cannot inspect it", e) from None


def check_output(path, inputs=()) -> str:
    """Validate an output path before any work is done; returns the path to write
    (a symlink resolved to its target). Raises ResdslError usage/io."""
    path = os.fspath(path)
    if path == STDOUT:
        return path
    if not path:
        raise ResdslError("io", "cannot write to an empty path", help="give a file name, e.g. -o out.py")
    target = os.path.realpath(path) if os.path.islink(path) else path
    st = _stat(target, path)
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise ResdslError("io", f"cannot write {path}: it is a folder",
                              help=f"give a file name inside it, e.g. {os.path.join(path, 'out')}")
        for inp in inputs:
            if inp in (None, "", STDOUT) or not isinstance(inp, (str, os.PathLike)):
                continue
            try:
                if _same_file(st, os.stat(inp)):
                    raise ResdslError("usage", f"the output {path} is the input {inp}: writing it would destroy it",
                                      help="choose another output name")
            except OSError:
                continue
        if not stat.S_ISREG(st.st_mode):
            return target  # device, FIFO, socket: written in place
    folder = os.path.dirname(target) or "."
    if not os.path.isdir(folder):
        raise ResdslError("io", f"cannot write {path}: folder {folder} does not exist",
                          help=f"create it first (mkdir -p {folder})")
    if not os.access(folder, os.W_OK | os.X_OK) or (st is not None and not os.access(target, os.W_OK)):
        raise ResdslError("io", f"cannot write {path}: permission denied")
    return target


def write_output(path, data: bytes | str, inputs=()) -> None:
    """Write `data` to `path` (``-``: standard output) under the rules above."""
    target = check_output(path, inputs)
    if target == STDOUT:
        if isinstance(data, bytes) and not _is_text(data) and sys.stdout.isatty():
            raise ResdslError("usage", "refusing to write binary output to a terminal",
                              help="redirect it (> out.onnx) or give a file name with -o")
        if isinstance(data, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(data)
            sys.stdout.flush()
        return
    raw = data.encode() if isinstance(data, str) else data
    st = _stat(target, path)
    try:
        if st is not None and not stat.S_ISREG(st.st_mode):
            with open(target, "wb") as f:  # a device or FIFO: write into it, never replace it
                f.write(raw)
            return
        if st is not None and st.st_nlink > 1:
            _write_in_place(target, raw, path)
            return
        with replacing(target, st) as tmp:
            with open(tmp, "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
    except OSError as e:
        raise _io_error(path, "the write failed", e) from None


def _write_in_place(target: str, raw: bytes, path) -> None:
    """Overwrite a hard-linked file keeping its inode. The old bytes go to a fsynced copy
    beside it first; if the write fails (a full disk, Ctrl-C) they are written back."""
    with open(target, "rb") as f:
        old = f.read()
    folder = os.path.dirname(target) or "."
    fd, backup = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".orig", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(old)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(backup)
        raise
    try:
        _overwrite(target, raw)
    except BaseException as e:
        try:
            _overwrite(target, old)
        except BaseException:  # noqa: BLE001 - the copy is the user's only good version now
            raise ResdslError("io", f"cannot write {path}: the write failed and the old content could not be "
                                    f"put back; it is in {backup}") from None
        with contextlib.suppress(OSError):
            os.unlink(backup)
        if isinstance(e, OSError):
            raise _io_error(path, "the write failed (the old content is back)", e) from None
        raise
    with contextlib.suppress(OSError):
        os.unlink(backup)


def _overwrite(target: str, raw: bytes) -> None:
    fd = os.open(target, os.O_WRONLY)
    try:
        view = memoryview(raw)
        pos = 0
        while pos < len(view):
            pos += os.pwrite(fd, view[pos:], pos)
        os.ftruncate(fd, len(raw))
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(target: str, st=None):
    """Yields a temporary path beside `target`; on success it gets the right mode, is
    renamed over `target` and the folder is fsynced; on failure it is removed."""
    folder = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a crash
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@contextlib.contextmanager
def side_folder(path, inputs=(), commit: bool = True):
    """For a file written by someone else in pieces (ONNX external data): yields a
    temporary folder beside `path`; the caller writes ``basename(path)`` inside it, and
    on success that file replaces `path` under the rules above. With ``commit=False`` the
    caller moves it into place itself (``write_outputs`` with ``Staged``), inside the block."""
    target = check_output(path, inputs)
    if target == STDOUT:
        raise ResdslError("usage", "this output has a side file and cannot go to standard output",
                          help="give a file name with -o")
    folder = os.path.dirname(target) or "."
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    tmpdir = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", dir=folder)
    inner = os.path.join(tmpdir, os.path.basename(target))
    try:
        yield tmpdir
        if commit and os.path.exists(inner):
            with open(inner, "rb+") as f:
                os.fsync(f.fileno())
            if st is not None and not stat.S_ISREG(st.st_mode):
                with open(inner, "rb") as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 24):
                        dst.write(chunk)
            else:
                os.chmod(inner, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
                os.replace(inner, target)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(inner)
        with contextlib.suppress(OSError):
            os.rmdir(tmpdir)


class Staged:
    """For :func:`write_outputs`: data already written to a file (in a folder beside the
    output, e.g. by :func:`side_folder` with ``commit=False``), to be moved into place."""

    def __init__(self, path: str):
        self.path = path


def write_outputs(items, inputs=()) -> None:
    """Write several files that belong together (a ``.py`` and its ``.pt``, an ``.onnx``
    and its ``.data``): items are (path, bytes | str | Staged). Every rule of
    :func:`write_output` holds; in addition, regular files change together (see above).
    A device, FIFO or hard-linked output cannot be swapped in by a rename; it is written
    in place after the others."""
    items = list(items)
    paths = [os.fspath(p) for p, _ in items]
    plan, later = [], []
    for (path, data), p in zip(items, paths):
        target = check_output(p, list(inputs) + [q for q in paths if q != p])
        if target == STDOUT:
            raise ResdslError("usage", f"{p}: this output has a side file and cannot go to standard output",
                              help="give a file name with -o")
        st = _stat(target, p)
        if st is not None and (not stat.S_ISREG(st.st_mode) or st.st_nlink > 1):
            later.append((p, data))
        else:
            plan.append([p, target, data, st, None])  # path, target, data, old stat, temporary
    try:
        for step in plan:
            p, target, data, st, _ = step
            folder = os.path.dirname(target) or "."
            try:
                if isinstance(data, Staged):
                    step[4] = data.path
                    with open(data.path, "rb+") as f:
                        os.fsync(f.fileno())
                else:
                    fd, step[4] = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=folder)
                    with os.fdopen(fd, "wb") as f:
                        f.write(data.encode() if isinstance(data, str) else data)
                        f.flush()
                        os.fsync(f.fileno())
                os.chmod(step[4], stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
            except OSError as e:
                raise _io_error(p, "the write failed", e) from None
        with _signals_held():
            _swap_in(plan)
    finally:
        for step in plan:
            if step[4] is not None and not isinstance(step[2], Staged):
                with contextlib.suppress(OSError):
                    os.unlink(step[4])
    for folder in sorted({os.path.dirname(step[1]) or "." for step in plan}):
        _fsync_folder(folder)
    for p, data in later:
        write_output(p, data, inputs)


def _swap_in(plan) -> None:
    """Rename each temporary over its target; if one rename fails, put the earlier ones back."""
    done = []  # (target, backup or None, existed)
    try:
        for p, target, _, st, tmp in plan:
            backup = _link_aside(target) if st is not None else None
            try:
                os.replace(tmp, target)
            except BaseException as e:
                if backup is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(backup)
                if isinstance(e, OSError):
                    raise _io_error(p, "the rename failed", e) from None
                raise
            done.append((target, backup, st is not None))
    except BaseException:
        for target, backup, existed in reversed(done):
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, target)
                elif not existed:
                    os.unlink(target)
        raise
    finally:
        for _, backup, _ in done:
            if backup is not None:
                with contextlib.suppress(OSError):
                    os.unlink(backup)


def _link_aside(target: str):
    """A second name for the old file (a hard link, no copy), to put it back; None where the
    file system has no hard links."""
    folder = os.path.dirname(target) or "."
    for _ in range(8):
        name = os.path.join(folder, f".{os.path.basename(target)}.{secrets.token_hex(6)}.old")
        try:
            os.link(target, name)
            return name
        except FileExistsError:
            continue
        except OSError:
            return None
    return None


@contextlib.contextmanager
def _signals_held():
    """Ctrl-C (SIGINT) and SIGTERM wait until the block is done (the main thread, POSIX)."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _fsync_folder(folder: str) -> None:
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
