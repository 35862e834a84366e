"""Files ganlite writes: atomic writes with recognisable temporary names, the output
folder's lock, and the free-space check. Every OSError becomes an OutputError naming the
path and the reason.

Temporary files are named `.TARGET.ganlite-PID.tmp` (`.TARGET.ganlite-partial.tmp` for a
resumable npy file), so that a run owning TARGET can recognise and remove the debris of a
killed run.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from ._errors import OutputError, UsageError, describe

_TMP = re.compile(r"^\.(?P<target>.+)\.(?:ganlite-(?:\d+|partial)|\d+)\.tmp$")
LOCK_NAME = ".ganlite.lock"
SHARED_HOLDER = "shards"   # what shared holders write into the lock file


def as_path(value: object, what: str) -> Path:
    """A str or os.PathLike as a Path, or UsageError naming `what`."""
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"{what} must be a path, got {describe(value)}")
    text = os.fspath(value)
    if isinstance(text, bytes) or not text or "\0" in text:
        raise UsageError(f"{what} must be a non-empty path without NUL characters, got "
                         f"{describe(text)}")
    return Path(text)


def os_error(path: str | os.PathLike, error: OSError, doing: str = "cannot write") -> OutputError:
    """The one-line OutputError for an OSError met while writing `path`."""
    reason = error.strerror or type(error).__name__
    return OutputError(f"{path}: {doing} ({reason})")


def temporary_name(path: Path, partial: bool = False) -> Path:
    """The temporary name a file is written under before it is renamed into place."""
    tag = "partial" if partial else str(os.getpid())
    return path.with_name(f".{path.name}.ganlite-{tag}.tmp")


def temporary_target(name: str) -> str | None:
    """The file a temporary name was meant to become (also the `.NAME.PID.tmp` names of
    ganlite 0.1), or None if `name` is not a ganlite temporary file."""
    match = _TMP.match(name)
    return match["target"] if match else None


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Have `write(tmp)` write the file under a temporary name in the same folder
    (`.NAME.ganlite-PID.tmp`), then rename it over `path`: readers never see half a file,
    and a killed writer leaves only a temporary that ganlite recognises. For writers that
    need a path (numpy's savez, a Keras model's save); see atomic_write_bytes for bytes.

    Args:
        path: the file to (re)place.
        write: called with the temporary path; must create the file there.

    Returns:
        `path` as a Path.

    Raises:
        UsageError: `path` is not a path.
        OutputError: the file cannot be written (names the path and the OS's reason).
        Whatever `write` raises other than OSError, after the temporary is removed.
    """
    path = as_path(path, "file")
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        remove_quietly([tmp])
        raise os_error(path, e) from None
    except BaseException:
        remove_quietly([tmp])
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to a temporary name in the same folder, then rename: never half a
    file (see atomic_write).

    Raises:
        UsageError: `path` is not a path, or `data` not bytes.
        OutputError: the file cannot be written (names the path and the OS's reason).
    """
    _check_bytes(data)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    return atomic_write(path, write)


def atomic_write_all(files: Mapping[str | os.PathLike, bytes]) -> list[Path]:
    """Write several files as one: each under its temporary name first, and only when all
    are written, rename them into place. If any write fails, no file is replaced; no
    temporary is ever left. (A rename failing after others succeeded, which takes a
    file system that fails renames within one folder, leaves those others replaced.)

    Args:
        files: {path: bytes}.

    Returns:
        The paths written, in order.

    Raises:
        UsageError: a key is not a path, or a value not bytes.
        OutputError: a file cannot be written (names it and the OS's reason).
    """
    if not isinstance(files, Mapping):
        raise UsageError(f"files must be a mapping {{path: bytes}}, got {describe(files)}")
    targets = [(as_path(path, "file"), _check_bytes(data)) for path, data in files.items()]
    written: list[tuple[Path, Path]] = []
    try:
        for path, data in targets:
            tmp = temporary_name(path)
            written.append((path, tmp))
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
            except OSError as e:
                raise os_error(path, e) from None
        for path, tmp in written:
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise os_error(path, e) from None
    finally:
        for _, tmp in written:
            remove_quietly([tmp])
    return [path for path, _ in targets]


_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_TMPFILE refused: the file system or kernel lacks it (EOPNOTSUPP, EISDIR on kernels
# before 3.11, EINVAL); linking it refused: no /proc to name it by (ENOENT).
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)


class FolderFiles:
    """Many small files written into one folder, each appearing complete or not at all,
    at the cost of as few system calls as that guarantee allows (a bulk writer's
    atomic_write_bytes).

    Where the kernel and file system offer it (Linux, ext4/xfs/btrfs/tmpfs), each file is
    written as an unnamed O_TMPFILE in the folder and then linked under its name: a reader
    never sees half a file, and a process killed while writing leaves nothing at all (the
    kernel frees the unnamed file). Elsewhere it writes `.NAME.ganlite-PID.tmp` and renames
    it, as atomic_write does. Both work relative to one open descriptor of the folder, so
    no path is resolved twice. Safe to use from several threads.

    CPU per ~300-byte file on ext4 (bench/png_rate.py, medians of interleaved rounds):
    O_TMPFILE + link 50-60 us, temporary + rename 65-85 us, a plain non-atomic create
    35-45 us, atomic_write_bytes 120-145 us (its Python-level path handling included).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._tmpfile = bool(_O_TMPFILE) and os.path.isdir("/proc/self/fd")
        try:
            self._dir: int | None = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC)
        except OSError as e:
            raise os_error(folder, e) from None

    def __enter__(self) -> FolderFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._dir is not None:
            os.close(self._dir)
            self._dir = None

    @property
    def uses_tmpfile(self) -> bool:
        """True while files are written as O_TMPFILE and linked (no temporary names)."""
        return self._tmpfile

    def write(self, name: str, data: bytes) -> None:
        """Write file `name` (a plain name in the folder, replacing any file of that name).

        Raises:
            OutputError: naming the file and the OS's reason (disk full, permission denied).
        """
        try:
            if self._tmpfile and self._write_linked(name, data):
                return
            self._write_renamed(name, data)
        except OSError as e:
            raise os_error(self.folder / name, e) from None

    def _write_linked(self, name: str, data: bytes) -> bool:
        """Write through an O_TMPFILE; False if this folder cannot do that (then never
        tried again) or `name` exists (the caller replaces it by a rename)."""
        try:
            fd = os.open(".", os.O_WRONLY | _O_TMPFILE | _O_CLOEXEC, 0o666, dir_fd=self._dir)
        except OSError as e:
            if e.errno in _NO_TMPFILE:
                self._tmpfile = False
                return False
            raise
        try:
            _write_all(fd, data)
            try:
                os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=self._dir)
            except FileExistsError:
                return False
            except FileNotFoundError:
                if not os.path.isdir("/proc/self/fd"):   # else: the folder is gone
                    self._tmpfile = False
                    return False
                raise
        finally:
            os.close(fd)
        return True

    def _write_renamed(self, name: str, data: bytes) -> None:
        tmp = f".{name}.ganlite-{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o666,
                     dir_fd=self._dir)
        try:
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=self._dir)
            except OSError:
                pass
            raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _check_bytes(data: object) -> bytes | bytearray | memoryview:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError(f"file contents must be bytes, got {describe(data)}")
    return data


def check_new_file(path: str | os.PathLike, what: str) -> Path:
    """Check, before any work, that a file can be created at `path` (its folder exists and
    is writable, and it is not a folder). Creates and removes a probe temporary file.

    Raises:
        OutputError: naming the path and what is wrong.
    """
    path = as_path(path, what)
    if path.is_dir():
        raise OutputError(f"{what} {path}: is a folder, expected a file name")
    if not path.parent.is_dir():
        raise OutputError(f"{what} {path}: folder {path.parent} does not exist")
    probe = temporary_name(path)
    try:
        probe.touch()
    except OSError as e:
        raise os_error(path, e, "cannot write there") from None
    remove_quietly([probe])
    _remove_dead_temporaries(path)
    return path


def _remove_dead_temporaries(path: Path) -> None:
    """Remove `.NAME.ganlite-PID.tmp` files of `path` left by processes of this machine
    that no longer exist (a kill -9 while writing a grid or a GIF)."""
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.ganlite-*.tmp"):
        pid = tmp.name[len(path.name) + 10:-4]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            remove_quietly([tmp])
        except OSError:
            pass  # alive, or not ours to signal: leave it


def glob_escape(name: str) -> str:
    """`name` with glob's special characters matched literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def make_folder(path: str | os.PathLike, what: str) -> Path:
    """Create a folder (and its parents) if missing.

    Raises:
        OutputError: it exists and is not a folder, or cannot be created.
    """
    path = as_path(path, what)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error(path, e, "cannot create folder") from None
    return path


def check_free_space(folder: Path, needed_bytes: int, files: int, what: str) -> None:
    """Refuse a write of `needed_bytes` in `files` new files that the file system cannot
    hold (space and, where the file system counts them, inodes)."""
    try:
        stat = os.statvfs(folder)
    except OSError as e:
        raise os_error(folder, e, "cannot inspect") from None
    free = stat.f_bavail * stat.f_frsize
    if needed_bytes > free:
        raise OutputError(f"{folder}: {what} needs {_size(needed_bytes)} but only "
                          f"{_size(free)} is free there")
    if stat.f_files and files > stat.f_favail:
        raise OutputError(f"{folder}: {what} needs {files:,} new files but the file system "
                          f"has room for only {stat.f_favail:,} more")


def block_size(folder: Path) -> int:
    """The file system's allocation unit: the least a small file occupies."""
    try:
        return max(os.statvfs(folder).f_frsize, 512)
    except OSError:
        return 4096


def _size(n: int) -> str:
    if n < 1000:
        return f"{n:,} bytes"
    units = ("KB", "MB", "GB", "TB", "PB")
    value, i = n / 1000, 0
    while value >= 1000 and i < len(units) - 1:
        value, i = value / 1000, i + 1
    return f"{value:.1f} {units[i]}"


class FolderLock:
    """An exclusive lock on an output folder (flock on its `.ganlite.lock`): one writer at
    a time. The kernel releases it when the process dies, so a killed run never blocks the
    next one. The lock file stays in the folder (removing it would race other openers).

    `name` picks another lock file in the folder (a shard's own lock); `shared` takes a
    shared lock instead (the shards of one run hold the folder's lock together, which keeps
    out an exclusive holder: a non-sharded run); `wait` seconds retries a held lock before
    giving up (for locks held only a moment); `busy` replaces the start of the message
    when the lock is held.
    """

    def __init__(self, folder: Path, name: str = LOCK_NAME, *, shared: bool = False,
                 wait: float = 0.0, busy: str | None = None):
        self.folder = folder
        self.path = folder / name
        self.shared, self.wait, self.busy = shared, wait, busy
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise os_error(self.folder, e, "cannot write in folder") from None
        mode = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except OSError as e:
                held = e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
                if held and time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                if held:
                    raise OutputError(self._busy_message(holder)) from None
                raise os_error(self.folder, e, "cannot lock folder") from None
        try:
            # The holder's pid, for the message of a run that finds the lock held; shared
            # holders all write the same word instead of racing to write their pids.
            os.ftruncate(fd, 0)
            os.pwrite(fd, (SHARED_HOLDER if self.shared else str(os.getpid())).encode(), 0)
        except OSError:
            pass
        self._fd = fd
        return self

    def _busy_message(self, holder: str) -> str:
        if holder.isdigit():
            who = f" (process {holder})"
        elif holder == SHARED_HOLDER:
            who = " (the shards of a sharded run)"
        else:
            who = ""
        if self.busy is not None:
            return f"{self.busy}{who}"
        return (f"{self.folder}: another ganlite run is writing into this folder{who}; wait "
                f"for it to finish or choose another folder")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


def remove_quietly(paths: list[Path]) -> list[Path]:
    """Remove files; return those that could not be removed."""
    failed = []
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            failed.append(path)
    return failed
