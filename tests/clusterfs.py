"""A FUSE filesystem that behaves like the worst cluster mounts, for tests/test_clusterfs.py:

    python -m tests.clusterfs BACKING MOUNTPOINT [--attr-timeout 2] [--no-rename2]

A passthrough of the folder BACKING (mfusepy over Debian's libfuse3) whose file locks (flock and
fcntl) fail with ENOLCK, as on NFS without its lock daemon, and whose hard links fail with EPERM, as
on many FUSE, SMB and object-store mounts. The kernel caches attributes and names for
`--attr-timeout` seconds, so a second mount of the same BACKING (a second "node") sees the other's
changes late, as NFS clients do. Renames honour RENAME_NOREPLACE (renameat2 on BACKING), unless
`--no-rename2`, where they refuse flags with EINVAL as filesystems without it do. Runs in the
foreground until unmounted (`fusermount3 -u MOUNTPOINT`).
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os

import mfusepy
from mfusepy import FUSE, FuseOSError, Operations

_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)


class ClusterFS(Operations):
    use_ns = True

    def __init__(self, backing: str, rename2: bool):
        self.backing = os.path.realpath(backing)
        self.rename2 = rename2

    def _path(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    @staticmethod
    def _call(f, *args):
        try:
            return f(*args)
        except OSError as e:
            raise FuseOSError(e.errno) from None

    # ---- what a cluster mount refuses -------------------------------------------------------------
    def link(self, target, source):
        raise FuseOSError(errno.EPERM)

    def lock(self, path, fh, cmd, lock):
        raise FuseOSError(errno.ENOLCK)

    def flock(self, path, fh, op):
        raise FuseOSError(errno.ENOLCK)

    def rename(self, old, new, flags=0):
        if flags and not self.rename2:
            raise FuseOSError(errno.EINVAL)
        if _libc.renameat2(_AT_FDCWD, self._path(old).encode(), _AT_FDCWD, self._path(new).encode(), flags) != 0:
            raise FuseOSError(ctypes.get_errno())
        return 0

    # ---- passthrough ---------------------------------------------------------------------------------
    def access(self, path, amode):
        if not os.access(self._path(path), amode):
            raise FuseOSError(errno.EACCES)
        return 0

    def chmod(self, path, mode):
        return self._call(os.chmod, self._path(path), mode)

    def chown(self, path, uid, gid):
        return self._call(os.chown, self._path(path), uid, gid)

    def getattr(self, path, fh=None):
        st = self._call(os.lstat, self._path(path))
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime_ns", "st_mtime_ns", "st_ctime_ns")
        out = {k.replace("_ns", ""): getattr(st, k) for k in keys}
        return out

    def readdir(self, path, fh):
        return [".", "..", *self._call(os.listdir, self._path(path))]

    def readlink(self, path):
        return self._call(os.readlink, self._path(path))

    def mknod(self, path, mode, dev):
        return self._call(os.mknod, self._path(path), mode, dev)

    def mkdir(self, path, mode):
        return self._call(os.mkdir, self._path(path), mode)

    def rmdir(self, path):
        return self._call(os.rmdir, self._path(path))

    def statfs(self, path):
        st = self._call(os.statvfs, self._path(path))
        keys = (
            "f_bavail",
            "f_bfree",
            "f_blocks",
            "f_bsize",
            "f_favail",
            "f_ffree",
            "f_files",
            "f_flag",
            "f_frsize",
            "f_namemax",
        )
        return {k: getattr(st, k) for k in keys}

    def symlink(self, target, source):
        return self._call(os.symlink, source, self._path(target))

    def unlink(self, path):
        return self._call(os.unlink, self._path(path))

    def utimens(self, path, times=None):
        return self._call(os.utime, self._path(path), None, times) if times else self._call(os.utime, self._path(path))

    def open(self, path, flags):
        return self._call(os.open, self._path(path), flags)

    def create(self, path, mode, fi=None):
        return self._call(os.open, self._path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path, size, offset, fh):
        return self._call(os.pread, fh, size, offset)

    def write(self, path, data, offset, fh):
        return self._call(os.pwrite, fh, data, offset)

    def truncate(self, path, length, fh=None):
        return self._call(os.truncate, fh if fh is not None else self._path(path), length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return self._call(os.close, fh)

    def fsync(self, path, datasync, fh):
        return self._call(os.fdatasync if datasync else os.fsync, fh)


class RenameFlagsFUSE(FUSE):
    """mfusepy drops rename's flags; this hands them to the operations (RENAME_NOREPLACE above)."""

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        return self.operations.rename(
            old.decode(self.encoding, self.errors), new.decode(self.encoding, self.errors), flags
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backing")
    parser.add_argument("mountpoint")
    parser.add_argument("--attr-timeout", type=float, default=2.0)
    parser.add_argument("--no-rename2", action="store_true")
    args = parser.parse_args()
    timeout = args.attr_timeout
    assert mfusepy.fuse_version_major == 3, "libfuse3 expected"
    RenameFlagsFUSE(
        ClusterFS(args.backing, rename2=not args.no_rename2),
        args.mountpoint,
        foreground=True,
        nothreads=False,
        attr_timeout=timeout,
        entry_timeout=timeout,
        negative_timeout=timeout,
    )


if __name__ == "__main__":
    main()
