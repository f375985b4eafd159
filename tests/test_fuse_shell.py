"""Shell-level behaviour of the FUSE mount: what cat / echo / ls / readlink / find see
(kernel-abi.md §0.1, userspace-clients.md §0 and §7.8)."""
from __future__ import annotations

import errno
import os
import re
import stat
import subprocess

import pytest

from helpers import CXLFS, run_in, sh

pytestmark = [pytest.mark.fuse, pytest.mark.root]

NOBODY = 65534


def bash(script: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, **kw)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def write(path: str, data: bytes) -> int:
    fd = os.open(path, os.O_WRONLY)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def write_errno(path: str, data: bytes) -> int | None:
    try:
        write(path, data)
    except OSError as e:
        return e.errno
    return None


# ---- cat / echo -----------------------------------------------------------------------------------

def test_cat(mounted):
    p = bash(f"cat {mounted}/bus/cxl/devices/mem0/serial {mounted}/bus/cxl/devices/mem10/ram/size")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "0x1\n0x80000000\n"


def test_cat_inside_exec_sees_the_mount_as_sys(mounted):
    p = sh(mounted, "cat /sys/bus/cxl/devices/mem3/serial /sys/bus/cxl/devices/decoder0.1/target_list")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "0x4\n0,1\n"


def test_echo_with_o_trunc_is_harmless(mounted):
    f = f"{mounted}/bus/cxl/drivers_autoprobe"
    p = bash(f"echo 0 > {f} && cat {f} && echo 1 > {f} && cat {f}")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "0\n1\n"
    assert os.stat(f).st_size == 4096          # truncation did not change the file
    with open(f, "w") as fh:                   # O_WRONLY|O_CREAT|O_TRUNC, then write
        fh.write("1\n")
    assert read(f) == "1\n"


def test_echo_write_only_file(mounted):
    p = bash(f"echo 1 > {mounted}/bus/cxl/flush")
    assert p.returncode == 0, p.stderr
    p = sh(mounted, "echo 1 > /sys/bus/cxl/flush")
    assert p.returncode == 0, p.stderr


def test_echo_error_reaches_the_shell(mounted):
    p = bash(f"echo 2 > {mounted}/bus/cxl/flush")
    assert p.returncode != 0 and "Invalid argument" in p.stderr
    p = bash(f"echo nosuch > {mounted}/bus/cxl/drivers/cxl_mem/bind")
    assert p.returncode != 0 and "No such device" in p.stderr
    p = bash(f"echo mem0 > {mounted}/bus/cxl/drivers/cxl_mem/bind")
    assert p.returncode != 0 and "Device or resource busy" in p.stderr


def test_write_returns_full_count_with_nul(mounted):
    assert write(f"{mounted}/bus/cxl/flush", b"1\n\0") == 3
    assert write(f"{mounted}/bus/cxl/drivers_probe", b"mem0\0") == 5


def test_write_to_read_only_file_is_eacces(mounted):
    # even for root (kernfs' open-time check; the daemon refuses the write)
    assert write_errno(f"{mounted}/bus/cxl/devices/mem0/serial", b"5\n") == errno.EACCES
    p = sh(mounted, "echo 5 > /sys/bus/cxl/devices/mem0/serial")
    assert p.returncode != 0 and "Permission denied" in p.stderr
    assert read(f"{mounted}/bus/cxl/devices/mem0/serial") == "0x1\n"


def test_read_of_write_only_file_is_eacces(mounted):
    # root outside the namespace, root without CAP_DAC_OVERRIDE inside it
    with pytest.raises(PermissionError):
        read(f"{mounted}/bus/cxl/flush")
    p = sh(mounted, "cat /sys/bus/cxl/flush")
    assert p.returncode != 0 and "Permission denied" in p.stderr


def test_read_of_write_only_file_as_non_root_is_eacces(mounted):
    p = subprocess.run(["cat", f"{mounted}/bus/cxl/flush"], capture_output=True, text=True,
                       user=NOBODY, group=NOBODY, extra_groups=[], timeout=30)
    assert p.returncode != 0
    assert "Permission denied" in p.stderr
    p = subprocess.run(["cat", f"{mounted}/bus/cxl/drivers/cxl_mem/bind"], capture_output=True,
                       text=True, user=NOBODY, group=NOBODY, extra_groups=[], timeout=30)
    assert "Permission denied" in p.stderr


def test_non_root_reads_world_readable_files_but_cannot_write(mounted):
    kw = dict(capture_output=True, text=True, user=NOBODY, group=NOBODY, extra_groups=[], timeout=30)
    p = subprocess.run(["cat", f"{mounted}/bus/cxl/devices/mem1/serial"], **kw)
    assert p.returncode == 0 and p.stdout == "0x2\n", p.stderr
    p = subprocess.run(["bash", "-c", f"echo 1 > {mounted}/bus/cxl/drivers_autoprobe"], **kw)
    assert p.returncode != 0 and "Permission denied" in p.stderr
    p = subprocess.run(["cat", f"{mounted}/bus/cxl/devices/decoder0.0/start"], **kw)  # 0400
    assert p.returncode != 0 and "Permission denied" in p.stderr


# ---- ls -l / stat -----------------------------------------------------------------------------------

LS_LINE = re.compile(r"^(\S{10})\s+\d+\s+\S+\s+\S+\s+(\d+)\s+.*?\s(\S+?)(?: -> (\S+))?$")


def ls_l(path: str) -> dict[str, tuple[str, int, str | None]]:
    p = bash(f"ls -l {path}")
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines()[1:]:
        m = LS_LINE.match(line)
        assert m, line
        out[m.group(3)] = (m.group(1), int(m.group(2)), m.group(4))
    return out


def test_ls_l_bus_dir(mounted):
    entries = ls_l(f"{mounted}/bus/cxl")
    assert entries["flush"][:2] == ("--w-------", 4096)
    assert entries["drivers_probe"][:2] == ("--w-------", 4096)
    assert entries["uevent"][:2] == ("--w-------", 4096)
    assert entries["drivers_autoprobe"][:2] == ("-rw-r--r--", 4096)
    assert entries["devices"][0].startswith("d")


def test_ls_l_device_dir(mounted):
    entries = ls_l(f"{mounted}/bus/cxl/devices/decoder0.0/")
    assert entries["size"][:2] == ("-r--r--r--", 4096)
    assert entries["start"][:2] == ("-r--------", 4096)
    assert entries["create_ram_region"][:2] == ("-rw-r--r--", 4096)
    assert entries["delete_region"][:2] == ("--w-------", 4096)
    mode, size, target = entries["subsystem"]
    assert mode == "lrwxrwxrwx" and target.endswith("/bus/cxl") and target.startswith("../")
    assert size == len(target)
    for name, (mode, size, _) in entries.items():
        if mode.startswith("-"):
            assert size == 4096, name


def test_stat_sizes_and_types(mounted):
    st = os.stat(f"{mounted}/bus/cxl/devices/mem0/serial")
    assert stat.S_ISREG(st.st_mode) and st.st_size == 4096
    assert stat.S_IMODE(st.st_mode) == 0o444
    st = os.lstat(f"{mounted}/bus/cxl/devices/mem0")
    assert stat.S_ISLNK(st.st_mode)
    st = os.stat(f"{mounted}/bus/cxl/devices/mem0")
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(os.stat(f"{mounted}/bus/cxl/flush").st_mode) == 0o200


# ---- readlink / realpath -----------------------------------------------------------------------------

def test_readlink_is_relative(mounted):
    p = bash(f"readlink {mounted}/devices/platform/cxl_acpi.0/root0/subsystem")
    assert p.stdout.strip() == "../../../../bus/cxl"
    link = os.readlink(f"{mounted}/bus/cxl/devices/mem0")
    assert link.startswith("../../../devices/platform/") and link.endswith("/cxl_mem.0/mem0")
    assert os.readlink(f"{mounted}/bus/cxl/devices/port1/driver").endswith("/bus/cxl/drivers/cxl_port")


def test_realpath_resolves_inside_the_mount(mounted):
    real = os.path.realpath(f"{mounted}/bus/cxl/devices/mem0")
    assert real.startswith(f"{mounted}/devices/platform/cxl_host_bridge.0/")
    assert os.path.realpath(f"{mounted}/bus/cxl/devices/mem0/subsystem") == f"{mounted}/bus/cxl"
    p = sh(mounted, "realpath /sys/bus/cxl/devices/root0/uport")
    assert p.stdout.strip() == "/sys/devices/platform/cxl_acpi.0"


# ---- find / readdir / inodes ----------------------------------------------------------------------------

def test_find_maxdepth_3(mounted):
    p = bash(f"find {mounted} -maxdepth 3")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    found = set(p.stdout.split())
    for rel in ("bus/cxl/flush", "bus/cxl/devices", "bus/cxl/drivers", "devices/platform/cxl_acpi.0",
                "module/cxl_mem/initstate"):
        assert f"{mounted}/{rel}" in found, rel


def test_find_follows_links_under_bus(mounted):
    p = bash(f"find -L {mounted}/bus/cxl/devices/mem0/ -maxdepth 1 -name serial")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"{mounted}/bus/cxl/devices/mem0/serial"


def test_inodes_stable_and_nonzero(mounted):
    paths = [f"{mounted}/bus/cxl/flush", f"{mounted}/bus/cxl/devices/mem0/serial",
             f"{mounted}/bus/cxl/devices", f"{mounted}/devices/platform/cxl_acpi.0/root0"]
    first = [os.lstat(p).st_ino for p in paths]
    assert all(first) and len(set(first)) == len(first)
    bash(f"ls -lR {mounted}/bus/cxl > /dev/null")
    assert [os.lstat(p).st_ino for p in paths] == first


def test_readdir_inodes_match_stat(mounted):
    d = f"{mounted}/bus/cxl/devices/decoder0.1"
    with os.scandir(d) as it:
        entries = list(it)
    assert entries
    for e in entries:
        assert e.inode() != 0, e.name
        assert e.inode() == os.lstat(e.path).st_ino, e.name


# ---- no stale reads -------------------------------------------------------------------------------------

def test_no_stale_read_after_unbind(fresh_mount):
    mnt = fresh_mount
    mem1 = f"{mnt}/bus/cxl/devices/mem1"
    drv = f"{mnt}/bus/cxl/drivers/cxl_mem"
    assert "DRIVER=cxl_mem\n" in read(f"{mem1}/uevent")
    assert os.path.islink(f"{mem1}/driver")
    assert "mem1" in os.listdir(drv)
    eps = [n for n in os.listdir(f"{mnt}/bus/cxl/devices") if n.startswith("endpoint")]
    ep = next(n for n in eps if os.path.basename(os.path.realpath(f"{mnt}/bus/cxl/devices/{n}/uport")) == "mem1")
    held = os.open(f"{mnt}/bus/cxl/devices/{ep}/decoders_committed", os.O_RDONLY)
    uev = os.open(f"{mem1}/uevent", os.O_RDONLY)
    try:
        assert os.pread(held, 4096, 0) == b"0\n"
        assert b"DRIVER=" in os.pread(uev, 4096, 0)

        assert write(f"{drv}/unbind", b"mem1\0") == 5        # a different attribute

        assert not os.path.lexists(f"{mem1}/driver")
        assert "DRIVER=" not in read(f"{mem1}/uevent")
        assert b"DRIVER=" not in os.pread(uev, 4096, 0)      # same fd, offset 0 again
        assert "mem1" not in os.listdir(drv)
        assert ep not in os.listdir(f"{mnt}/bus/cxl/devices")
        assert not os.path.exists(f"{mnt}/bus/cxl/devices/{ep}")
        with pytest.raises(OSError) as excinfo:              # stale fd of a removed device
            os.pread(held, 4096, 0)
        assert excinfo.value.errno == errno.ENODEV

        assert write(f"{drv}/bind", b"mem1\0") == 5
        assert os.path.islink(f"{mem1}/driver")
        assert "DRIVER=cxl_mem\n" in read(f"{mem1}/uevent")
        assert b"DRIVER=cxl_mem\n" in os.pread(uev, 4096, 0)
        assert "mem1" in os.listdir(drv)
    finally:
        os.close(held)
        os.close(uev)


def test_no_stale_read_inside_exec(fresh_mount):
    p = sh(fresh_mount, """
        set -e
        grep -q DRIVER=cxl_mem /sys/bus/cxl/devices/mem3/uevent
        echo mem3 > /sys/bus/cxl/devices/mem3/driver/unbind
        test ! -e /sys/bus/cxl/devices/mem3/driver
        ! grep -q DRIVER= /sys/bus/cxl/devices/mem3/uevent
        echo mem3 > /sys/bus/cxl/drivers/cxl_mem/bind
        readlink /sys/bus/cxl/devices/mem3/driver
        grep DRIVER= /sys/bus/cxl/devices/mem3/uevent
    """)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split()
    assert lines[0].endswith("bus/cxl/drivers/cxl_mem") and lines[1] == "DRIVER=cxl_mem"


def test_own_write_is_not_stale(fresh_mount):
    f = f"{fresh_mount}/bus/cxl/drivers_autoprobe"
    assert read(f) == "1\n"
    write(f, b"0")
    assert read(f) == "0\n"
    write(f, b"1")
    assert read(f) == "1\n"


def test_written_bytes_are_never_read_back(fresh_mount):
    """A read after a write shows show(), not the written bytes (kernfs has no page cache
    for attributes; a FUSE page cache must not leak the write into later reads)."""
    f = f"{fresh_mount}/bus/cxl/drivers_autoprobe"
    assert read(f) == "1\n"
    assert write(f, b"yes\n") == 4
    assert read(f) == "1\n"
    fd = os.open(f, os.O_RDWR)
    try:
        assert os.write(fd, b"0") == 1
        assert os.pread(fd, 4096, 0) == b"0\n"
        os.lseek(fd, 10, os.SEEK_SET)          # the offset is ignored by stores
        assert os.write(fd, b"1\n") == 2
        assert os.pread(fd, 4096, 0) == b"1\n"
        assert os.pread(fd, 4096, 1) == b"\n"  # a read at an offset is a slice of show()
    finally:
        os.close(fd)
    assert read(f) == "1\n"


@pytest.mark.parametrize("attr,data,expect", [
    ("bus/cxl/drivers_autoprobe", b"1" * 4096, "1\n"),
    ("bus/cxl/devices/decoder0.1/create_ram_region", b"region1\n" + b"\0" * 4088, "region7\n"),
], ids=["drivers_autoprobe", "create_ram_region"])
def test_page_sized_first_write_is_not_read_back(fresh_mount, attr, data, expect):
    f = f"{fresh_mount}/{attr}"
    assert write(f, data) == 4096
    assert read(f) == expect


def test_read_right_after_write_is_never_the_page_cache(fresh_mount):
    f = f"{fresh_mount}/bus/cxl/drivers_autoprobe"
    for i in range(3000):
        v = b"0" if i % 2 else b"1"
        read(f)
        assert write(f, v * 4096 if i % 3 == 0 else v) == (4096 if i % 3 == 0 else 1)
        assert read(f) == v.decode() + "\n", f"iteration {i}"


def test_partial_reads_are_slices_of_one_show(mounted):
    f = f"{mounted}/bus/cxl/devices/mem0/firmware_version"
    p = bash(f"dd if={f} bs=1 2>/dev/null; head -c 4 {f}")
    assert p.stdout == "mock fw v1 \nmock"


def test_truncate_is_accepted_and_ignored(mounted):
    f = f"{mounted}/bus/cxl/drivers_autoprobe"
    os.truncate(f, 0)
    assert os.stat(f).st_size == 4096
    assert read(f) == "1\n"


def _namespace_op(mnt: str, op: str):
    d = f"{mnt}/bus/cxl"
    if op == "create":
        os.close(os.open(f"{d}/newfile", os.O_WRONLY | os.O_CREAT, 0o644))
    elif op == "mkdir":
        os.mkdir(f"{d}/newdir")
    elif op == "unlink":
        os.unlink(f"{d}/flush")
    elif op == "rmdir":
        os.rmdir(f"{d}/drivers")
    elif op == "symlink":
        os.symlink("flush", f"{d}/newlink")
    elif op == "rename":
        os.rename(f"{d}/flush", f"{d}/flush2")
    elif op == "link":
        os.link(f"{d}/flush", f"{d}/flush2")
    elif op == "mknod":
        os.mknod(f"{d}/node", 0o600 | stat.S_IFIFO)


@pytest.mark.parametrize("op,err", [("create", errno.EACCES), ("mkdir", errno.EPERM),
                                    ("unlink", errno.EPERM), ("rmdir", errno.EPERM),
                                    ("symlink", errno.EPERM), ("rename", errno.EPERM),
                                    ("mknod", errno.EPERM)])
def test_namespace_changes_fail_like_kernfs(mounted, op, err):
    with pytest.raises(OSError) as excinfo:
        _namespace_op(mounted, op)
    assert excinfo.value.errno == err


@pytest.mark.parametrize("op", ["create", "mkdir", "unlink", "rmdir", "symlink", "rename", "link",
                                "mknod"])
def test_namespace_changes_fail(mounted, op):
    with pytest.raises(OSError):
        _namespace_op(mounted, op)
    assert os.path.exists(f"{mounted}/bus/cxl/flush")
    assert sorted(os.listdir(f"{mounted}/bus/cxl")) == ["devices", "drivers", "drivers_autoprobe",
                                                       "drivers_probe", "flush", "uevent"]


def test_chmod_chown_apply_like_kernfs(fresh_mount):
    f = f"{fresh_mount}/bus/cxl/devices/mem0/serial"
    os.chmod(f, 0o400)
    os.chown(f, NOBODY, NOBODY)
    st = os.stat(f)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o400, NOBODY, NOBODY)


def test_probe_errors_reach_the_shell(fresh_mount):
    """bind returns the probe's errno; -EPROBE_DEFER (517) is reported as EAGAIN."""
    mnt = fresh_mount
    drv = f"{mnt}/bus/cxl/drivers/cxl_mem"
    assert write(f"{drv}/unbind", b"mem1") == 4
    p = subprocess.run([*CXLFS, "fault", mnt, "probe-fail", "cxl_mem", "--errno", "517",
                        "--count", "1"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert write_errno(f"{drv}/bind", b"mem1\0") == errno.EAGAIN
    assert not os.path.lexists(f"{mnt}/bus/cxl/devices/mem1/driver")
    assert write(f"{drv}/bind", b"mem1\0") == 5
    assert os.path.islink(f"{mnt}/bus/cxl/devices/mem1/driver")


def test_dev_nodes_in_exec(mounted):
    p = run_in(mounted, "stat", "-c", "%F %t:%T", "/dev/cxl/mem0", "/dev/cxl/mem10")
    assert p.returncode == 0, p.stderr
    majors = {int(line.split()[-1].split(":")[0], 16) for line in p.stdout.splitlines()}
    dev = read(f"{mounted}/bus/cxl/devices/mem0/dev").strip()
    assert majors == {int(dev.split(":")[0])}
    assert p.stdout.startswith("character special file")
