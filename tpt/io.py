"""Durable files (docs/guarantees.md): atomic writes, a reader sees the old file or the complete new one,
never half of it; publishing where the first complete writer wins, so many jobs on many nodes may race
for one name without locks; checksums that tell a damaged file from a whole one; a full disk named as
such."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional

log = logging.getLogger(__name__)

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class Damaged(RuntimeError):
    """A file that is not what was written: truncated, altered, or not parseable."""


class DiskFull(OSError):
    """A write that found no space (a full disk or an exceeded quota)."""


def disk_full(path: Path, code: int = errno.ENOSPC, needed: Optional[int] = None) -> DiskFull:
    """The error to raise when writing `path` found no space (`code`: ENOSPC, or EDQUOT for a quota):
    names the path, what the write needed (when known) and what is free there."""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    wanted = f"{needed / 2**20:.1f} MiB to write, " if needed is not None else ""
    why = "quota exceeded" if code == errno.EDQUOT else "no space left on the device"
    return DiskFull(
        code,
        f"{why} writing {path} ({wanted}{free / 2**20:.1f} MiB free there). Finished stages "
        f"and cache entries are intact: free space (or raise the quota) and run the same "
        f"command again to resume",
    )


# How libraries that do their own I/O (safetensors in Rust) word it, when they raise no OSError
NO_SPACE_WORDS = {
    "no space left on device": errno.ENOSPC,
    "os error 28": errno.ENOSPC,
    "disk quota exceeded": errno.EDQUOT,
    "os error 122": errno.EDQUOT,
}


def no_space_code(error: BaseException) -> Optional[int]:
    """ENOSPC or EDQUOT when `error`, or an error it was raised from, is a write that found no space;
    None for any other error."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in NO_SPACE:
            return error.errno
        text = str(error).lower()
        for words, code in NO_SPACE_WORDS.items():
            if words in text:
                return code
        error = error.__cause__ or error.__context__
    return None


# `@<host>@<pid>`: `@` is in no host name, so the host reads back whole (node and node-12 are two hosts)
_OWNER = re.compile(r"@([^@/]+)@(\d+)")


def unique_suffix() -> str:
    """Unique to this process on this machine: temporary names never collide across the nodes of a cluster."""
    return f"@{socket.gethostname()}@{os.getpid()}"


def owner(path: Path) -> Optional[tuple]:
    """(host, pid) of the process that named `path` with unique_suffix(), or None."""
    found = _OWNER.search(Path(path).name)
    return (found.group(1), int(found.group(2))) if found else None


def left_by_dead_process(path: Path) -> bool:
    """Whether a temporary file or folder named with unique_suffix() was left by a process of this machine
    that is gone. One of another machine may be in use there (on a filesystem whose locks do not reach
    across nodes), so it is never judged dead: the host must be this one exactly, not one whose name
    merely starts or ends the same."""
    found = owner(path)
    if found is None or found[0] != socket.gethostname() or found[1] == os.getpid():
        return False
    try:
        os.kill(found[1], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _write_synced(tmp: Path, path: Path, data: bytes, fd: Optional[int] = None) -> None:
    """Write `data` to `tmp` (the open descriptor `fd`, if given) and fsync it; a full disk is named
    as writing `path`. The caller publishes `tmp` and removes it."""
    try:
        with os.fdopen(fd, "wb") if fd is not None else open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if e.errno in NO_SPACE:
            raise disk_full(path, e.errno, len(data)) from e
        raise


def write_text_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{unique_suffix()}.", suffix=".tmp")
    try:
        _write_synced(Path(tmp), path, text.encode("utf-8"), fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# A filesystem without hard links says so with one of these (FUSE, SMB and object-store mounts)
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV, errno.EACCES}
_RENAME_NOREPLACE, _AT_FDCWD = 1, -100  # <linux/fs.h>, <fcntl.h>
_said: set = set()


def _rename_noreplace(src: Path, dst: Path) -> Optional[bool]:
    """renameat2(RENAME_NOREPLACE): True if renamed, False if `dst` exists, None where the kernel or the
    filesystem does not offer it."""
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return None
    if renameat2(_AT_FDCWD, bytes(src), _AT_FDCWD, bytes(dst), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EEXIST:
        return False
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return None
    raise OSError(code, os.strerror(code), str(dst))


def publish_file_once(tmp: Path, path: Path) -> bool:
    """Publish the finished file `tmp` as `path` unless a file is there already: the first complete
    writer wins, even among processes on several nodes of a network filesystem, where POSIX locks may be
    node-local. By a hard link (created atomically or refused); where the filesystem has none, by a rename
    that refuses to replace (renameat2's RENAME_NOREPLACE); where it has neither, by a rename after
    checking that nothing is there, which two writers of the same name at the same instant could both
    pass: one complete file then replaces another (a reader sees either whole, never half), said once.
    True if this call published it; `tmp` is the caller's to remove."""
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in _NO_LINKS:
            raise
    renamed = _rename_noreplace(tmp, path)
    if renamed is not None:
        return renamed
    if path.parent not in _said:
        _said.add(path.parent)
        log.warning(
            "%s: this filesystem has neither hard links nor renames that refuse to replace; publishing by "
            "check-then-rename (two writers of one entry at the same instant may both write it, whole)",
            path.parent,
        )
    if path.exists():
        return False
    os.rename(tmp, path)
    return True


def write_text_once(path: Path, text: str) -> bool:
    """Publish `text` at `path` unless a file is there already (`publish_file_once`). True if this call
    published it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{unique_suffix()}.tmp")
    try:
        _write_synced(tmp, path, text.encode("utf-8"))
        return publish_file_once(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def publish_dir_once(tmp: Path, path: Path) -> bool:
    """Rename the finished folder `tmp` to `path` unless a folder with files is there: the first complete
    writer wins (a rename onto a non-empty folder fails). The loser's `tmp` is removed. True if published."""
    try:
        os.rename(tmp, path)
        return True
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return False


def write_json(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Damaged(f"{path} is damaged: not JSON ({e})") from None


def read_jsonl(path: Path) -> list:
    rows = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise Damaged(f"{path}:{n} is damaged: not a JSON line ({e})") from None
    return rows


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest(folder: Path, skip: Iterable[str] = ()) -> Dict[str, dict]:
    """Size, modification time and sha256 of every file under `folder` (paths relative to it), but those
    named in `skip`."""
    folder = Path(folder)
    skip = set(skip)
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and str(f.relative_to(folder)) not in skip:
            st = f.stat()
            out[str(f.relative_to(folder))] = {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_of(f)}
    return out


def damage(folder: Path, files: Dict[str, dict], full: bool = True) -> List[str]:
    """What differs between the files under `folder` and their `manifest`: one line per damaged file.
    With `full` every file is hashed; without, only a file whose modification time is not the one
    recorded (a rename keeps it; any write changes it), so a check of hundreds of GB takes seconds."""
    found = []
    for name, want in sorted(files.items()):
        f = Path(folder) / name
        if not f.is_file():
            found.append(f"{f}: missing")
            continue
        st = f.stat()
        if st.st_size != want["bytes"]:
            found.append(f"{f}: {st.st_size} bytes, {want['bytes']} written")
        elif (full or st.st_mtime_ns != want.get("mtime_ns")) and sha256_of(f) != want["sha256"]:
            found.append(f"{f}: altered (sha256 differs from the one written)")
    return found


@contextlib.contextmanager
def advisory_lock(path: Path, wait_s: float) -> Iterator[bool]:
    """Hold the file lock at `path` while the body runs, to save duplicate work only: never needed for
    correctness (writes publish with write_text_once / publish_dir_once). Yields whether it is held:
    False where the filesystem refuses locks, or after `wait_s` seconds of waiting (a holder on a dead
    node of a filesystem that keeps its lock), so nobody waits forever."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path), timeout=wait_s)
    try:
        lock.acquire()
    except Timeout:
        log.warning(
            "waited %.0f s for the lock %s; going on without it (at worst the work is done twice)", wait_s, path
        )
        yield False
        return
    except OSError as e:  # ENOLCK, ENOSYS, EOPNOTSUPP: a filesystem without working locks
        log.warning("file locks do not work at %s (%s); going on without (at worst work is done twice)", path, e)
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
