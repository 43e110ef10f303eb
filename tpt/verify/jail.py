"""Start one untrusted program: `python -I -S jail.py '<json spec>'`, run by tpt.verify.sandbox with the
program's stdin, stdout and stderr already attached. Stdlib only, nothing of the caller imported.

In order: join the run's cgroup(s), set the per-process limits, open the files bubblewrap copies into
the sandbox (while still allowed to read them), drop to the run's own uid (when started as root),
then start the command (bubblewrap around the interpreter, or the interpreter alone where bubblewrap
cannot run) and wait for it. The jail is a child subreaper: bubblewrap's monitor exits before the
namespace's first process is reaped, so that one comes to the jail, which reaps everything before it
exits with the command's status. Exit status 125 means the jail itself failed before the program started.
"""

import ctypes
import json
import os
import resource
import sys

SANDBOX_ERROR = 125
PR_SET_CHILD_SUBREAPER = 36


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        for procs in spec["cgroups"]:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        for name, (soft, hard) in spec["rlimits"].items():
            resource.setrlimit(getattr(resource, name), (soft, hard))
        fds = {}
        for key, path in spec["open"].items():
            fd = os.open(path, os.O_RDONLY)
            os.set_inheritable(fd, True)
            fds[key] = str(fd)
        argv = [arg.format(**fds) for arg in spec["argv"]]
        os.chdir(spec["cwd"])
        uid = spec.get("uid")
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        os.umask(0o077)
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        child = os.fork()
        if child == 0:
            os.execve(argv[0], argv, {})
    except BaseException as e:  # never fall through: say why, with the status the caller looks for
        os.write(2, f"tpt sandbox: could not start the program: {e!r}\n".encode())
        os._exit(SANDBOX_ERROR)
    _, status = os.waitpid(child, 0)
    while True:  # whatever was left to us
        try:
            os.wait()
        except ChildProcessError:
            break
    os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
