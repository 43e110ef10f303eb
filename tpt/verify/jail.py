"""Start one untrusted program inside the sandbox: `python -I -S jail.py '<json spec>'`.

Run by `tpt.verify.sandbox` as a fresh process (stdlib only, nothing of the caller imported),
already in its own session so the caller can kill the whole process group. In order:

1. New network, PID, IPC and mount namespaces where the kernel allows (as root directly;
   otherwise inside a new user namespace). In the network namespace only a down loopback
   exists, so no connection can be made, not even to 127.0.0.1. In the mount namespace every
   mount is made read-only except the program's own directory (so /tmp, /dev/shm and the run
   directories cannot be written either), which becomes a tmpfs capped at the file-size limit:
   the total it can write is bounded, not only each file.
2. With a PID namespace: fork; the child is the namespace's init (PID 1) and forks the program.
   When init exits, the kernel kills every process left in the namespace, including ones that
   escaped the process group with setsid.
3. The program's process: resource limits (CPU time, address space, file size, processes, open
   files, no core dumps), a drop to the sandbox uid when started as root, cwd = its own fresh
   directory, then exec with an empty environment.

Exit status: the program's own, or 128 + signal when a signal ended it (SIGXCPU: CPU time,
SIGXFSZ: file size). `--probe <dir>` prints which isolations this machine allows and exits.
"""
import ctypes
import json
import os
import resource
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
SANDBOX_ERROR = 125  # the jail itself failed before the program started


MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
# statvfs flag -> mount flag: a bind remount must repeat the flags a mount already has.
_KEEP_FLAGS = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
               os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME, os.ST_RELATIME: MS_RELATIME}


LIBC = ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> bool:
    return LIBC.unshare(flags) == 0


def _mount(source, target, flags: int, fstype=None, data=None) -> bool:
    enc = (lambda s: None if s is None else s.encode())
    return LIBC.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) == 0


def _mount_points() -> list:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            raw = line.split()[4]  # octal escapes for spaces and the like
            points.append(raw.encode().decode("unicode_escape").encode("latin-1").decode())
    return points


def _own_disk(workdir: str, size: int, uid) -> bool:
    """Put `workdir` on a tmpfs of `size` bytes (its files copied over): what the program writes
    is capped in total, not only per file, and goes away with the namespace."""
    files = {}
    for name in os.listdir(workdir):
        with open(os.path.join(workdir, name), "rb") as f:
            files[name] = f.read()
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    if not _mount("tpt-sandbox", workdir, MS_NOSUID | MS_NODEV, "tmpfs", f"size={size},mode=0700{owner}"):
        return False
    for name, content in files.items():
        with open(os.path.join(workdir, name), "wb") as f:
            f.write(content)
    return True


def read_only_except(workdir: str, disk_bytes: int, uid=None) -> bool:
    """In a fresh mount namespace: every mount read-only except `workdir`, which gets a tmpfs of
    `disk_bytes` (or, where tmpfs is refused, is bound onto itself)."""
    if not _mount(None, "/", MS_REC | MS_PRIVATE):
        return False
    if not _own_disk(workdir, disk_bytes, uid) and not _mount(workdir, workdir, MS_BIND):
        return False
    ok = True
    for point in _mount_points():
        if os.path.realpath(point) == os.path.realpath(workdir):
            continue
        try:
            flags = os.statvfs(point).f_flag
        except OSError:
            continue  # a mount we cannot even stat cannot be written through either
        keep = sum(bit for st, bit in _KEEP_FLAGS.items() if flags & st)
        ok &= _mount(None, point, MS_REMOUNT | MS_BIND | MS_RDONLY | keep) or bool(flags & os.ST_RDONLY)
    return ok


def _map_own_ids(uid: int, gid: int) -> None:
    """In a new user namespace: map our own uid and gid to themselves, so files can be created.
    We keep the namespace's capabilities (for the mounts) until exec, which as non-root drops them."""
    for path, line in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                       ("/proc/self/gid_map", f"{gid} {gid} 1")):
        with open(path, "w") as f:
            f.write(line)


def isolate(workdir: str, disk_bytes: int, uid=None) -> dict:
    """Enter new namespaces; returns which isolations this process got."""
    own_uid, own_gid = os.geteuid(), os.getegid()
    user = 0 if own_uid == 0 else CLONE_NEWUSER  # unprivileged: namespaces need a user namespace
    for flags, got in ((CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNS, {"network": True, "pid": True}),
                       (CLONE_NEWNET | CLONE_NEWNS, {"network": True, "pid": False}),
                       (CLONE_NEWNET, {"network": True, "pid": False, "filesystem": False})):
        if _unshare(user | flags):
            if user:
                _map_own_ids(own_uid, own_gid)
            if "filesystem" not in got:
                got["filesystem"] = read_only_except(workdir, disk_bytes, uid)
            return got
    return {"network": False, "pid": False, "filesystem": False}


def status_code(status: int) -> int:
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def exec_program(spec: dict) -> None:
    try:
        lim = spec["limits"]
        cpu = int(lim["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL a second later
        resource.setrlimit(resource.RLIMIT_AS, (lim["memory_bytes"],) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim["file_bytes"],) * 2)  # stdout is a file too
        resource.setrlimit(resource.RLIMIT_NPROC, (lim["processes"],) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim["open_files"],) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.chdir(spec["workdir"])
        uid = spec.get("uid")
        if uid is not None and os.geteuid() == 0:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        os.umask(0o077)
        os.execve(spec["argv"][0], spec["argv"], {})
    except BaseException as e:  # never fall through into the launcher's code
        os.write(2, f"tpt sandbox: could not start the program: {e!r}\n".encode())
        os._exit(SANDBOX_ERROR)


def main() -> None:
    if sys.argv[1] == "--probe":  # --probe <an empty directory>
        print(json.dumps(isolate(sys.argv[2], 1 << 20)))
        return
    spec = json.loads(sys.argv[1])
    try:
        got = isolate(spec["workdir"], spec["limits"]["file_bytes"], spec.get("uid"))
    except OSError as e:
        os.write(2, f"tpt sandbox: could not isolate the program: {e!r}\n".encode())
        os._exit(SANDBOX_ERROR)
    if not got["pid"]:
        exec_program(spec)
    launcher_child = os.fork()
    if launcher_child:  # outside the namespace: wait for its init, pass the status on
        _, status = os.waitpid(launcher_child, 0)
        os._exit(status_code(status))
    program = os.fork()  # we are PID 1 of the new namespace
    if program == 0:
        exec_program(spec)
    _, status = os.waitpid(program, 0)
    os._exit(status_code(status))  # init exits: the kernel kills the rest of the namespace


if __name__ == "__main__":
    main()
