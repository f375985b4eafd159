"""`cxlfs exec`: run a command in a private mount namespace where the mount is /sys.

The namespace gets a private /run, a private /dev holding the host's null/zero/tty/...
plus the char nodes of the fake devices (the daemon keeps them in sync as devtmpfs
would, through /proc/<pid>/root/dev), and /sys bound from the mount -- checked to be
that mount before anything runs, so no tool ever touches the host's real sysfs.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys

from ..service import socket_path
from . import syscalls as sc

HOST_NODES = ("null", "zero", "full", "random", "urandom", "tty")


class ExecError(RuntimeError):
    pass


def control(mountpoint: str, request: dict) -> dict:
    """One request/reply on the daemon's control socket."""
    path = socket_path(mountpoint)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
    except OSError as e:
        raise ExecError(f"{mountpoint}: no cxlfs daemon answers ({e.strerror}); is it mounted?") from None
    with s:
        s.sendall(json.dumps(request).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf) if buf else {"error": "no reply"}


def check_mount(mountpoint: str) -> tuple[os.stat_result, dict]:
    if not os.path.isdir(mountpoint):
        raise ExecError(f"{mountpoint}: not a directory")
    if sc.fs_type(mountpoint) != sc.FUSE_SUPER_MAGIC:
        raise ExecError(f"{mountpoint}: not a FUSE mount (is cxlfs mounted there?)")
    reply = control(mountpoint, {"cmd": "ping"})
    if not reply.get("ok"):
        raise ExecError(f"{mountpoint}: daemon did not answer: {reply}")
    return os.stat(mountpoint), reply


def enter_user_namespace() -> None:
    """Become root of a new user namespace mapped to the caller's uid and gid."""
    uid, gid = os.getuid(), os.getgid()
    try:
        sc.unshare(sc.CLONE_NEWUSER)
    except OSError as e:
        raise ExecError(f"cannot create a user namespace ({e.strerror}); run as root, or allow "
                        "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)") from None
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def pin_to_daemon(daemon: dict) -> None:
    """Share the daemon's CPU: FUSE round trips then skip the cross-CPU wakeups."""
    cpu = daemon.get("cpu")
    if cpu is not None and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})


def setup_namespace(mountpoint: str, mount_st: os.stat_result) -> None:
    """Called in the child after unshare(CLONE_NEWNS)."""
    sc.mount("none", "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.mount("tmpfs", "/run", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=755")
    # keep the host's harmless nodes reachable, then cover /dev with a private tmpfs
    stash = "/run/.cxlfs-host-dev"
    os.mkdir(stash)
    sc.mount("/dev", stash, None, sc.MS_BIND | sc.MS_REC)
    sc.mount("tmpfs", "/dev", "tmpfs", sc.MS_NOSUID, "mode=755")
    for name in HOST_NODES:
        if os.path.exists(f"{stash}/{name}"):
            open(f"/dev/{name}", "w").close()
            sc.mount(f"{stash}/{name}", f"/dev/{name}", None, sc.MS_BIND)
    for d in ("pts", "shm", "cxl"):
        os.mkdir(f"/dev/{d}")
    if os.path.isdir(f"{stash}/pts"):
        sc.mount(f"{stash}/pts", "/dev/pts", None, sc.MS_BIND | sc.MS_REC)
        if os.path.exists(f"{stash}/ptmx"):
            open("/dev/ptmx", "w").close()
            sc.mount(f"{stash}/ptmx", "/dev/ptmx", None, sc.MS_BIND)
    sc.mount("tmpfs", "/dev/shm", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{name}")
    sc.umount(stash, sc.MNT_DETACH)
    os.rmdir(stash)
    sc.mount(mountpoint, "/sys", None, sc.MS_BIND)
    st = os.stat("/sys")
    if (st.st_dev, st.st_ino) != (mount_st.st_dev, mount_st.st_ino) or \
            sc.fs_type("/sys") != sc.FUSE_SUPER_MAGIC:
        raise ExecError("/sys is not the cxlfs mount after binding it; refusing to run")


def run(mountpoint: str, argv: list[str], *, keep_caps: bool = False, pin: bool = True) -> int:
    """Run argv with the mount as /sys; returns its exit status.  Without root the mount
    namespace is owned by a new user namespace where the caller is root (if the kernel
    allows unprivileged user namespaces); /dev nodes are then placeholder files."""
    unprivileged = os.geteuid() != 0
    mountpoint = os.path.realpath(mountpoint)
    mount_st, daemon = check_mount(mountpoint)
    if not argv:
        argv = [os.environ.get("SHELL", "/bin/bash")]
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        try:
            sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
            if unprivileged:
                enter_user_namespace()
            sc.unshare(sc.CLONE_NEWNS)
            setup_namespace(mountpoint, mount_st)
        except Exception as e:     # report and die: never exec with the host's /sys
            os.write(ready_w, f"error: {e}".encode())
            os._exit(127)
        os.write(ready_w, b"ok")
        os.close(ready_w)
        # wait until the daemon populated /dev (it writes through /proc/<pid>/root/dev)
        os.kill(os.getpid(), signal.SIGSTOP)
        if not keep_caps:
            sc.drop_dac_override()
        if pin:
            pin_to_daemon(daemon)
        os.environ["SYSTEMD_DEVICE_VERIFY_SYSFS"] = "0"
        try:
            os.execvp(argv[0], argv)
        except OSError as e:
            print(f"cxlfs exec: {argv[0]}: {e.strerror}", file=sys.stderr)
            os._exit(127)
    os.close(ready_w)
    status = os.read(ready_r, 4096).decode()
    os.close(ready_r)
    if status != "ok":
        os.waitpid(pid, 0)
        raise ExecError(status.removeprefix("error: "))
    os.waitpid(pid, os.WUNTRACED)
    reply = control(mountpoint, {"cmd": "devtmpfs", "path": f"/proc/{pid}/root/dev"})
    if not reply.get("ok"):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise ExecError(f"could not populate /dev: {reply.get('error')}")
    os.kill(pid, signal.SIGCONT)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGQUIT)}
    try:
        while True:
            _, st = os.waitpid(pid, 0)
            if os.WIFEXITED(st):
                return os.WEXITSTATUS(st)
            if os.WIFSIGNALED(st):
                return 128 + os.WTERMSIG(st)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
