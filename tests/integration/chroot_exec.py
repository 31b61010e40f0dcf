"""Run a program of an image's filesystem the way a container runtime would,
without one: chroot into the image's (read-only) root, as the image's user,
with the image's environment only. For tests/integration/test_image.py,
where OCI containers cannot start but the image can be mounted.

    /usr/bin/python3 chroot_exec.py --root MOUNT --user 10001:10001 \\
        [--env K=V]... [--workdir DIR] -- /usr/local/bin/bsg-report-worker ...

In this one process, which then becomes the program (same pid, so that a
test's signals reach the program itself, as they reach a container's PID 1):
a mount namespace of its own (the mounts below vanish with the process,
even after SIGKILL); /proc, a /dev tmpfs with the devices OCI runtimes give
a container (null, zero, full, random, urandom, tty; /dev/shm, /dev/fd),
/sys read-only and a /tmp tmpfs, each under MOUNT, which stays read-only
otherwise (as Kubernetes' readOnlyRootFilesystem with a /tmp emptyDir,
deploy/k8s/deployment.yaml); chroot; supplementary groups dropped, then the
gid and uid set; PR_SET_PDEATHSIG again (the kernel clears it when the
credentials change), so that a test killed outright leaves nothing
behind; exec with exactly the --env variables. Needs root. The network
namespace is the host's: 127.0.0.1 is this machine's."""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import stat
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1

# The character devices an OCI runtime creates in a container's /dev.
DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0)]

libc = ctypes.CDLL(None, use_errno=True)


def die(msg: str) -> None:
    print(f"chroot_exec: {msg}", file=sys.stderr, flush=True)
    os._exit(127)


def mount(source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
    if libc.mount(source.encode(), target.encode(), fstype.encode(), flags,
                  data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        die(f"mount {fstype} on {target}: {os.strerror(err)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="the image's mounted root")
    p.add_argument("--user", required=True, help="UID:GID (numeric, as the image's User)")
    p.add_argument("--env", action="append", default=[], help="K=V (repeatable)")
    p.add_argument("--workdir", default="/")
    p.add_argument("argv", nargs="+")
    a = p.parse_args()
    uid, _, gid = a.user.partition(":")
    if not uid.isdigit() or not gid.isdigit():
        die(f"--user {a.user!r}: want numeric UID:GID")
    root = os.path.realpath(a.root)
    parent = os.getppid()

    if libc.unshare(CLONE_NEWNS) != 0:
        die(f"unshare(CLONE_NEWNS): {os.strerror(ctypes.get_errno())}")
    # Nothing mounted here propagates back to the host.
    mount("none", "/", "", MS_REC | MS_PRIVATE)
    mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("sysfs", f"{root}/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("tmpfs", f"{root}/dev", "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    for name, major, minor in DEVICES:
        path = f"{root}/dev/{name}"
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(path, 0o666)  # not narrowed by the umask
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    os.mkdir(f"{root}/dev/shm")
    mount("shm", f"{root}/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    mount("tmpfs", f"{root}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")

    os.chroot(root)
    os.chdir(a.workdir)
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        die("the parent exited")
    env = {}
    for kv in a.env:
        k, sep, v = kv.partition("=")
        if not sep:
            die(f"--env {kv!r}: want K=V")
        env[k] = v
    try:
        os.execve(a.argv[0], a.argv, env)
    except OSError as e:
        die(f"exec {a.argv[0]}: {e}")


if __name__ == "__main__":
    main()
