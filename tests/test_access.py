"""Who may open what: sysfs refuses wrong-direction opens with EACCES even for root.

* in ``cxlfs exec`` root loses CAP_DAC_OVERRIDE, so the open itself fails, as on sysfs;
* ``cxlfs mount --strict-open`` answers OPEN and refuses there, for everyone, anywhere;
* without root, ``cxlfs mount`` + ``cxlfs exec`` work through a user namespace.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from helpers import CXLFS, fuse_skip_reason, run_in

pytestmark = [pytest.mark.fuse, pytest.mark.root]

WO = "bus/cxl/devices/decoder0.0/delete_region"      # 0200
RO = "bus/cxl/devices/mem0/serial"                   # 0444

OPEN_CHECK = f"""
import errno, os, sys
out = []
for path, flags in (("/sys/{WO}", os.O_RDONLY), ("/sys/{RO}", os.O_WRONLY), ("/sys/{RO}", os.O_RDONLY)):
    try:
        os.close(os.open(path, flags))
        out.append("ok")
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(" ".join(out))
"""


def test_exec_root_gets_eacces_at_open(mounted):
    proc = run_in(mounted, sys.executable, "-c", OPEN_CHECK)
    assert proc.stdout.split() == ["EACCES", "EACCES", "ok"], proc.stderr


def test_keep_caps_restores_the_root_bypass(mounted):
    proc = subprocess.run([*CXLFS, "exec", mounted, "--keep-caps", "--", sys.executable, "-c", OPEN_CHECK],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["ok", "ok", "ok"], proc.stderr


def test_host_side_read_of_write_only_file_fails(mounted):
    """Outside cxlfs exec root may open it (FUSE cannot refuse without OPEN), but reading fails."""
    with open(os.path.join(mounted, WO), "rb") as f:
        with pytest.raises(OSError) as excinfo:
            f.read()
    assert excinfo.value.errno == errno.EACCES


def test_strict_open_refuses_at_open_for_root():
    reason = fuse_skip_reason()
    if reason:
        pytest.skip(reason)
    mnt = tempfile.mkdtemp(prefix="cxlfs-strict-")
    subprocess.run([*CXLFS, "mount", "--strict-open", mnt], check=True, timeout=60)
    try:
        for rel, flags in ((WO, os.O_RDONLY), (RO, os.O_WRONLY)):
            with pytest.raises(OSError) as excinfo:
                os.close(os.open(os.path.join(mnt, rel), flags))
            assert excinfo.value.errno == errno.EACCES
        with open(os.path.join(mnt, RO)) as f:
            assert f.read() == "0x1\n"
        with open(os.path.join(mnt, "bus/cxl/drivers_autoprobe"), "w") as f:
            f.write("1")
    finally:
        subprocess.run([*CXLFS, "umount", mnt], timeout=60)
        os.rmdir(mnt)


def _as_nobody(*argv: str, **kw) -> subprocess.CompletedProcess:
    setpriv = shutil.which("setpriv")
    return subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp",
                               "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))},
                          **kw)


def test_unprivileged_mount_and_exec():
    """nobody mounts (fusermount3) and runs cxl list in a user namespace where it is root."""
    if shutil.which("setpriv") is None or shutil.which("cxl") is None:
        pytest.skip("needs setpriv and cxl")
    probe = _as_nobody(sys.executable, "-c", "import cxlfs.service, trio")
    if probe.returncode != 0:
        pytest.skip(f"this Python is not usable by an unprivileged user: {probe.stderr.strip()[-200:]}")
    mnt = tempfile.mkdtemp(prefix="cxlfs-nobody-")
    os.chown(mnt, 65534, 65534)
    mounted = _as_nobody(sys.executable, "-m", "cxlfs", "mount", mnt)
    if mounted.returncode != 0:
        os.rmdir(mnt)
        pytest.skip(f"unprivileged FUSE mount not possible here: {mounted.stderr.strip()}")
    try:
        proc = _as_nobody(sys.executable, "-m", "cxlfs", "exec", mnt, "--", "sh", "-c",
                          f"id -u; cxl list -M | grep -c '\"memdev\"'; "
                          f"cat /sys/{WO} 2>/dev/null || echo refused; echo x > /sys/{RO} 2>/dev/null || echo refused")
        if "user namespace" in proc.stderr:
            pytest.skip(proc.stderr.strip())
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["0", "11", "refused", "refused"], proc.stdout + proc.stderr
    finally:
        _as_nobody(sys.executable, "-m", "cxlfs", "umount", mnt)
        os.rmdir(mnt)
