"""Helpers shared by the test modules (the fixtures live in conftest.py).

* ``KernelView``: path-level access to an in-process Kernel that follows symlinks the
  way the VFS does before a request reaches sysfs;
* ``run_in`` / ``sh`` / ``cxl``: run commands through ``cxlfs exec`` (the mount bound
  over /sys in a private mount namespace, with a private /dev);
* ``parse_cxl_json`` / ``collect`` / ``cxl_json``: ``cxl list`` output as Python objects.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from cxlfs.core.errors import KernelError
from cxlfs.core.kernfs import KAttr, KDir, KLink, KNode

CXLFS = [sys.executable, "-m", "cxlfs"]
EXEC_TIMEOUT = 60


# ==== in-process model ==========================================================================

class KernelView:
    """Path-level access to a Kernel (paths relative to /sys)."""

    def __init__(self, kernel):
        self.k = kernel

    def resolve(self, path: str, follow_last: bool = True) -> KNode:
        parts = [p for p in path.strip("/").split("/") if p]
        node: KNode = self.k.root
        for i, part in enumerate(parts):
            if not isinstance(node, KDir):
                raise NotADirectoryError(path)
            if part == "..":
                node = node.parent or node
                continue
            child = node.get(part)
            if child is None:
                raise FileNotFoundError(path)
            last = i == len(parts) - 1
            while isinstance(child, KLink) and (follow_last or not last):
                child = child.target
            node = child
        return node

    def path(self, path: str) -> str:
        """The real (link-free) path of ``path``."""
        return self.resolve(path).path()

    def exists(self, path: str) -> bool:
        try:
            self.resolve(path, follow_last=False)
            return True
        except (FileNotFoundError, NotADirectoryError):
            return False

    def cat(self, path: str) -> str:
        node = self.resolve(path)
        assert isinstance(node, KAttr), f"{path} is not an attribute"
        return self.k.read(node).decode()

    def val(self, path: str) -> str:
        """cat without the trailing newline (what libcxl's sysfs_read_attr returns)."""
        text = self.cat(path)
        return text[:-1] if text.endswith("\n") else text

    def echo(self, path: str, data: str | bytes) -> int:
        node = self.resolve(path)
        assert isinstance(node, KAttr), f"{path} is not an attribute"
        return self.k.write(node, data.encode() if isinstance(data, str) else data)

    def errno_of(self, path: str, data: str | bytes) -> int | None:
        """The errno a write fails with, or None if it succeeded."""
        try:
            self.echo(path, data)
        except KernelError as e:
            return e.errno
        return None

    def ls(self, path: str) -> list[str]:
        node = self.resolve(path)
        assert isinstance(node, KDir), f"{path} is not a directory"
        return [n.name for n in node.listing()]

    def readlink(self, path: str) -> str:
        node = self.resolve(path, follow_last=False)
        assert isinstance(node, KLink), f"{path} is not a symlink"
        return node.text()

    def mode(self, path: str) -> int:
        node = self.resolve(path, follow_last=False)
        assert isinstance(node, KAttr), f"{path} is not an attribute"
        return node.mode

    def node(self, path: str) -> KNode:
        return self.resolve(path, follow_last=False)

    def cxl_devices(self, prefix: str = "") -> list[str]:
        return [n for n in self.ls("/bus/cxl/devices") if n.startswith(prefix)]

    def is_bound(self, dev: str, bus: str = "cxl") -> bool:
        return self.exists(f"/bus/{bus}/devices/{dev}/driver")

    def port_by_uport(self, uport_name: str) -> str | None:
        """The CXL port (rootN / portN / endpointN) whose ``uport`` is ``uport_name``."""
        for name in self.cxl_devices():
            if not name.startswith(("port", "endpoint", "root")):
                continue
            link = f"/bus/cxl/devices/{name}/uport"
            if self.exists(link) and self.resolve(link).name == uport_name:
                return name
        return None


def walk(node: KNode):
    """Every node below ``node`` (lazy directories are populated on the way)."""
    yield node
    if isinstance(node, KDir):
        for child in list(node.children.values()):
            yield from walk(child)


def raises_errno(err: int):
    """``with raises_errno(errno.ENODEV): ...``: a KernelError with exactly that errno."""
    class _Ctx:
        def __enter__(self):
            self._cm = pytest.raises(KernelError)
            self.excinfo = self._cm.__enter__()
            return self.excinfo

        def __exit__(self, *exc):
            handled = self._cm.__exit__(*exc)
            if handled:
                got = self.excinfo.value.errno
                assert got == err, (f"expected {errno.errorcode[err]}, "
                                    f"got {errno.errorcode.get(got, got)}")
            return handled
    return _Ctx()


# ==== FUSE mount ================================================================================

def fuse_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (cxlfs exec uses a private mount namespace)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (no FUSE support here)"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (apt-get install fuse3)"
    return None


def mount(topology: str | None = None, options: tuple[str, ...] = ()) -> str:
    """``cxlfs mount`` on a fresh world-readable temp dir; skips when FUSE is unusable."""
    reason = fuse_skip_reason()
    if reason:
        pytest.skip(reason)
    mnt = tempfile.mkdtemp(prefix="cxlfs-test-")
    os.chmod(mnt, 0o755)
    argv = [*CXLFS, "mount", mnt]
    if topology:
        argv += ["--topology", topology]
    for o in options:
        argv += ["-o", o]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        os.rmdir(mnt)
        msg = (proc.stderr or proc.stdout).strip()
        if "not permitted" in msg or "Permission denied" in msg:
            pytest.skip(f"cannot mount FUSE here: {msg}")
        pytest.fail(f"cxlfs mount failed ({proc.returncode}): {msg}")
    return mnt


def umount(mnt: str) -> None:
    proc = subprocess.run([*CXLFS, "umount", mnt], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)
    try:
        os.rmdir(mnt)
    except OSError:
        pass


def run_in(mnt: str, *argv: str, timeout: float = EXEC_TIMEOUT, check: bool = False,
           user: int | None = None) -> subprocess.CompletedProcess:
    """``cxlfs exec MNT -- argv`` (text mode): argv sees the mount as /sys."""
    proc = subprocess.run([*CXLFS, "exec", mnt, "--", *argv], capture_output=True, text=True,
                          timeout=timeout, user=user)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}\n"
                             f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def sh(mnt: str, script: str, **kw) -> subprocess.CompletedProcess:
    """A bash script inside the namespace (the mount is /sys there)."""
    return run_in(mnt, "bash", "-c", script, **kw)


def run_batch(mnt: str, commands: list[list[str]], timeout: float = EXEC_TIMEOUT
              ) -> list[subprocess.CompletedProcess]:
    """Run several commands one after the other in a single ``cxlfs exec`` (one namespace
    setup instead of one per command); one CompletedProcess (text) per command."""
    import shlex
    with tempfile.TemporaryDirectory(prefix="cxlfs-batch-") as tmp:
        lines = ["cd /"]
        for i, argv in enumerate(commands):
            lines.append(f"{shlex.join(argv)} >{tmp}/{i}.out 2>{tmp}/{i}.err; echo $? >{tmp}/{i}.rc")
        proc = run_in(mnt, "bash", "-c", "\n".join(lines), timeout=timeout)
        out = []
        for i, argv in enumerate(commands):
            try:
                rc = int(open(f"{tmp}/{i}.rc").read())
            except (OSError, ValueError):
                raise AssertionError(f"batch stopped before {argv}: {proc.stderr}") from None
            out.append(subprocess.CompletedProcess(argv, rc, open(f"{tmp}/{i}.out").read(),
                                                   open(f"{tmp}/{i}.err").read()))
        return out


def cxl(mnt: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """A ``cxl`` subcommand inside the namespace."""
    return run_in(mnt, "cxl", *args, check=check)


# ==== cxl list JSON =============================================================================

def parse_cxl_json(text: str) -> list:
    """``cxl list`` output as a list: empty output is [], a lone object (``-u`` prints one
    for a single match) becomes a one-element list."""
    text = text.strip()
    if not text:
        return []
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


def collect(data, kind: str) -> list[dict]:
    """Every object of one kind ("memdev", "port", "endpoint", "decoder", "bus", "region")
    anywhere in ``cxl list`` output, however it is nested ("ports:port1", "anon memdevs",
    "decoders:root0", an endpoint's nested "memdev" object, ...)."""
    out: list[dict] = []

    def visit(obj):
        if isinstance(obj, dict):
            if isinstance(obj.get(kind), str):
                out.append(obj)
            for value in obj.values():
                visit(value)
        elif isinstance(obj, list):
            for value in obj:
                visit(value)
    visit(data)
    return out


def by_name(objs: list[dict], kind: str) -> dict[str, dict]:
    return {o[kind]: o for o in objs}


def cxl_json(mnt: str, *args: str) -> list:
    """``cxl list ARGS`` in the mount, parsed (always a list)."""
    proc = run_in(mnt, "cxl", "list", *args)
    assert proc.returncode == 0, f"cxl list {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    try:
        return parse_cxl_json(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"cxl list {' '.join(args)}: bad JSON ({e}):\n{proc.stdout}") from None


# ==== scenarios through cxlfs exec ============================================================

@dataclass
class Out:
    cmd: str
    rc: int
    out: str
    err: str

    @property
    def json(self) -> list:
        try:
            return parse_cxl_json(self.out)
        except ValueError:
            raise AssertionError(f"{self.cmd}: not JSON: {self.out!r} (stderr {self.err!r})") from None

    @property
    def text(self) -> str:
        return self.out.strip()

    def ok(self) -> "Out":
        assert self.rc == 0, f"{self.cmd} exited {self.rc}\nstdout: {self.out}\nstderr: {self.err}"
        return self


def script(mnt: str, *cmds: str) -> list[Out]:
    """Each shell command in turn, all in one `cxlfs exec` (the mount is /sys there)."""
    res = run_batch(mnt, [["bash", "-c", c] for c in cmds])
    return [Out(c, r.returncode, r.stdout, r.stderr) for c, r in zip(cmds, res)]


def exists(path: str) -> str:
    """A shell test printing yes/no (for scripts run by ``script``)."""
    return f"test -e {path} && echo yes || echo no"


# ==== in-process region making ===============================================================

_CXL = "/bus/cxl/devices"


def make_ram_region(k: KernelView, root: str = "decoder0.1", mems=("mem2", "mem1"),
                    size: int | None = None, bind: str | None = "cxl_region") -> str:
    """A committed RAM region made with raw writes (as tools/cxl-ram-region), bound to ``bind``."""
    name = k.val(f"{_CXL}/{root}/create_ram_region")
    k.echo(f"{_CXL}/{root}/create_ram_region", name)
    if size is None:
        size = min(int(k.val(f"{_CXL}/{m}/ram/size"), 0) for m in mems) * len(mems)
    k.echo(f"{_CXL}/{name}/interleave_granularity", k.val(f"{_CXL}/{root}/interleave_granularity"))
    k.echo(f"{_CXL}/{name}/interleave_ways", str(len(mems)))
    k.echo(f"{_CXL}/{name}/size", hex(size))
    for i, m in enumerate(mems):
        ep = k.port_by_uport(m).removeprefix("endpoint")
        dec = next(d for d in k.cxl_devices(f"decoder{ep}.")
                   if int(k.val(f"{_CXL}/{d}/dpa_size"), 0) == 0 and not k.val(f"{_CXL}/{d}/region"))
        k.echo(f"{_CXL}/{dec}/mode", "ram")
        k.echo(f"{_CXL}/{dec}/dpa_size", hex(size // len(mems)))
        k.echo(f"{_CXL}/{name}/target{i}", dec)
    k.echo(f"{_CXL}/{name}/commit", "1")
    if bind:
        k.echo(f"/bus/cxl/drivers/{bind}/bind", name)
    return name
