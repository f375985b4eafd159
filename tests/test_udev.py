"""The real systemd-udevd and udevadm against a mount (``cxlfs exec --udev-rules DIR``):
rules run on the kernel-injected uevents, write attributes back through FUSE, run RUN+=
programs; ``udevadm settle``/``trigger --settle``/``info`` work; nothing leaks to the host.

One ``cxlfs exec`` per scenario; each scenario prints what the test checks.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import CXLFS, mount, umount

pytestmark = [pytest.mark.clients, pytest.mark.fuse, pytest.mark.root]

TOOLS = Path(__file__).resolve().parent.parent / "tools"
UDEVD = next((p for p in ("/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-udevd")
              if os.access(p, os.X_OK)), None)
DAXCTL_RULES = next((p for p in ("/lib/udev/rules.d/90-daxctl-device.rules",
                                 "/usr/lib/udev/rules.d/90-daxctl-device.rules") if os.path.exists(p)), None)
CXL_BLOCKS = [f"memory{n}" for n in range(7682, 7686)]      # region0's blocks, offline at boot

if UDEVD is None or shutil.which("udevadm") is None:
    pytestmark.append(pytest.mark.skip(reason="systemd-udevd/udevadm not installed (apt-get install udev)"))
elif shutil.which("daxctl") is None:
    pytestmark.append(pytest.mark.skip(reason="daxctl not installed (apt-get install daxctl)"))

AUTO_MOVABLE = 'SUBSYSTEM=="memory", ACTION=="add", ATTR{state}=="offline", ATTR{state}="online_movable"\n'
AUTO_NORMAL = 'SUBSYSTEM=="memory", ACTION=="add", ATTR{state}=="offline", ATTR{state}="online"\n'
# RUN+= on add; ENV{} on every event (udevd's database keeps the last event's properties)
DAX_MARKER = ('ACTION=="add", SUBSYSTEM=="dax", RUN+="/bin/sh -c \'echo $env{DEVNAME} >> /run/dax-added\'"\n'
              'SUBSYSTEM=="dax", ENV{CXLFS_LAST}="$env{ACTION}"\n')

# prints "name state valid_zones" for region0's blocks
SHOW_BLOCKS = ('for b in ' + ' '.join(CXL_BLOCKS) + '; do d=/sys/devices/system/memory/$b; '
               'echo "$b $(cat $d/state) $(cat $d/valid_zones)"; done')


def rules_dir(tmp_path: Path, rules: dict[str, str]) -> str:
    d = tmp_path / "rules"
    d.mkdir()
    for name, text in rules.items():
        (d / name).write_text(text)
    return str(d)


def udev_exec(mnt: str, rules: str, script: str, *, settle_writes: bool = False,
              timeout: float = 60) -> subprocess.CompletedProcess:
    argv = [*CXLFS, "exec", mnt, "--udev-rules", rules]
    if settle_writes:
        argv.append("--settle-writes")
    proc = subprocess.run([*argv, "--", "bash", "-c", script], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def block_states(stdout: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] in CXL_BLOCKS:
            out[parts[0]] = (parts[1], parts[2])
    return out


def section(stdout: str, name: str) -> str:
    """The text between '== name' and the next '== ' line."""
    lines, inside = [], False
    for line in stdout.splitlines():
        if line.startswith("== "):
            inside = line == f"== {name}"
            continue
        if inside:
            lines.append(line)
    return "\n".join(lines)


# ==== auto-online rules ===========================================================================

@pytest.mark.parametrize("rules,want", [({"40-online.rules": AUTO_MOVABLE}, ("online", "Movable")),
                                        ({}, ("offline", "Normal Movable"))],
                         ids=["auto-online-rule", "no-rule"])
def test_udev_rule_onlines_hot_added_blocks(fresh_mount, tmp_path, rules, want):
    proc = udev_exec(fresh_mount, rules_dir(tmp_path, rules), f"""
        set -e
        daxctl reconfigure-device --mode=devdax -f dax0.0 >/dev/null
        daxctl reconfigure-device --mode=system-ram --no-online dax0.0 >/dev/null
        udevadm settle
        {SHOW_BLOCKS}
    """)
    states = block_states(proc.stdout)
    assert states == {b: want for b in CXL_BLOCKS}, proc.stdout


def test_daxctl_reports_the_udev_onlining_race(fresh_mount, tmp_path):
    """udevd onlines the blocks (Normal) before daxctl gets to them: daxctl's race warning."""
    proc = udev_exec(fresh_mount, rules_dir(tmp_path, {"40-online.rules": AUTO_NORMAL}), f"""
        daxctl reconfigure-device -m devdax -f dax0.0 >/dev/null || exit 1
        daxctl reconfigure-device -m system-ram dax0.0 >/dev/null || exit 1
        {SHOW_BLOCKS}
    """, settle_writes=True)
    assert "WARNING: detected a race while onlining memory" in proc.stderr, proc.stderr
    assert block_states(proc.stdout) == {b: ("online", "Normal") for b in CXL_BLOCKS}, proc.stdout


# ==== RUN+= programs ===============================================================================

@pytest.mark.skipif(DAXCTL_RULES is None, reason="daxctl's 90-daxctl-device.rules is not installed")
def test_daxctl_rule_runs_on_a_new_dax_device(fresh_mount, tmp_path):
    rules = {"90-daxctl-device.rules": Path(DAXCTL_RULES).read_text(), "91-marker.rules": DAX_MARKER}
    # /usr/bin/daxctl is replaced by a logging wrapper, in the namespace only, to see the
    # rule's own RUN+= run (Debian's 76.1 rule says `daxctl -C`, which 76.1 rejects: 129)
    proc = udev_exec(fresh_mount, rules_dir(tmp_path, rules), f"""
        set -e
        cp /usr/bin/daxctl /run/daxctl.real
        printf '#!/bin/sh\\necho "$*" >> /run/daxctl-ran\\nexec /run/daxctl.real "$@"\\n' > /run/daxctl-wrap
        chmod +x /run/daxctl-wrap
        mount --bind /run/daxctl-wrap /usr/bin/daxctl
        echo "== region"; {TOOLS}/cxl-ram-region -d decoder0.1 mem2 mem1
        udevadm settle
        echo "== dax-added"; cat /run/dax-added
        echo "== daxctl-ran"; cat /run/daxctl-ran
        echo "== info"; udevadm info /sys/bus/dax/devices/dax1.0
    """)
    assert section(proc.stdout, "region") == "region1"
    assert section(proc.stdout, "dax-added") == "/dev/dax1.0"           # once, only for dax1.0
    assert section(proc.stdout, "daxctl-ran") == "-C /dev/dax1.0"
    info = section(proc.stdout, "info").splitlines()
    for line in ("P: /devices/platform/cxl_acpi.0/root0/decoder0.1/region1/dax_region1/dax1.0",
                 "U: dax", "N: dax1.0", "V: kmem", "E: DEVNAME=/dev/dax1.0", "E: DRIVER=kmem",
                 "E: MODALIAS=dax:t0",
                 "E: CXLFS_LAST=bind"):      # udevd processed the add and kmem's bind, and stored it
        assert line in info, f"{line!r} not in\n" + "\n".join(info)


def test_bind_rule_runs_when_a_region_is_bound(fresh_mount, tmp_path):
    rules = {"50-region.rules":
             'ACTION=="add", ENV{DEVTYPE}=="cxl_region", RUN+="/bin/sh -c \'echo %k [$env{DRIVER}] >> /run/region-added\'"\n'
             'ACTION=="bind", ENV{DEVTYPE}=="cxl_region", DRIVER=="cxl_region", '
             'RUN+="/bin/sh -c \'echo %k $env{DRIVER} >> /run/region-bound\'"\n'}
    proc = udev_exec(fresh_mount, rules_dir(tmp_path, rules), f"""
        set -e
        echo "== region"; {TOOLS}/cxl-ram-region -d decoder0.1 mem2 mem1
        udevadm settle
        echo "== added"; cat /run/region-added
        echo "== bound"; cat /run/region-bound
    """)
    assert section(proc.stdout, "region") == "region1"
    assert section(proc.stdout, "added") == "region1 []"          # add: not bound yet
    assert section(proc.stdout, "bound") == "region1 cxl_region"


# ==== udevadm trigger ===============================================================================

def test_trigger_lists_and_onlines_offline_blocks(fresh_mount, tmp_path):
    proc = udev_exec(fresh_mount, rules_dir(tmp_path, {"40-online.rules": AUTO_MOVABLE}), f"""
        set -e
        cd /sys/devices/system/memory
        echo online > memory7683/state
        echo "== dry-run"; udevadm trigger --dry-run --verbose -s memory -a state=offline
        echo "== offline"; for f in memory*/state; do [ "$(cat $f)" = offline ] && echo /sys/devices/system/memory/${{f%/state}}; done
        udevadm trigger --settle --action=add -s memory -a state=offline
        echo "== after"; for f in memory*/state; do [ "$(cat $f)" = offline ] && echo ${{f%/state}}; done
        echo "== blocks"; {SHOW_BLOCKS}
    """, settle_writes=True)
    dry = section(proc.stdout, "dry-run").split()
    offline = section(proc.stdout, "offline").split()
    assert sorted(dry) == sorted(offline) == [f"/sys/devices/system/memory/{b}" for b in
                                              ("memory7682", "memory7684", "memory7685")]
    assert section(proc.stdout, "after") == ""
    assert block_states(section(proc.stdout, "blocks")) == {
        "memory7682": ("online", "Movable"), "memory7683": ("online", "Normal"),
        "memory7684": ("online", "Movable"), "memory7685": ("online", "Movable")}


# ==== udevadm info =================================================================================

@pytest.fixture(scope="module")
def info_output(tmp_path_factory):
    mnt = mount()
    try:
        rules = rules_dir(tmp_path_factory.mktemp("info"), {})
        proc = udev_exec(mnt, rules, """
            echo "== walk"; udevadm info -a /sys/bus/dax/devices/dax0.0
            echo "== memory"; udevadm info /sys/devices/system/memory/memory7682
            echo "== dax"; udevadm info /sys/bus/dax/devices/dax0.0
        """)
        yield proc.stdout
    finally:
        umount(mnt)


def test_info_attribute_walk_dax_to_platform(info_output):
    walk = section(info_output, "walk")
    chain = []
    for line in walk.splitlines():
        line = line.strip()
        if line.startswith("looking at"):
            chain.append([line.split("'")[1]])
        elif line.startswith(("KERNEL", "SUBSYSTEM", "DRIVER")):
            chain[-1].append(line)
    base = "/devices/platform/cxl_acpi.0"
    assert chain == [
        [f"{base}/root0/decoder0.0/region0/dax_region0/dax0.0",
         'KERNEL=="dax0.0"', 'SUBSYSTEM=="dax"', 'DRIVER=="kmem"'],
        [f"{base}/root0/decoder0.0/region0/dax_region0",
         'KERNELS=="dax_region0"', 'SUBSYSTEMS=="cxl"', 'DRIVERS=="cxl_dax_region"'],
        [f"{base}/root0/decoder0.0/region0", 'KERNELS=="region0"', 'SUBSYSTEMS=="cxl"', 'DRIVERS=="cxl_region"'],
        [f"{base}/root0/decoder0.0", 'KERNELS=="decoder0.0"', 'SUBSYSTEMS=="cxl"', 'DRIVERS==""'],
        [f"{base}/root0", 'KERNELS=="root0"', 'SUBSYSTEMS=="cxl"', 'DRIVERS==""'],
        [base, 'KERNELS=="cxl_acpi.0"', 'SUBSYSTEMS=="platform"', 'DRIVERS=="cxl_acpi"'],
    ]
    assert 'ATTRS{mode}=="ram"' in walk and 'ATTRS{devtype}=="cxl_region"' in walk
    assert 'ATTR{target_node}=="2"' in walk


def test_info_memory_block_and_dax_device(info_output):
    mem = section(info_output, "memory").splitlines()
    for line in ("P: /devices/system/memory/memory7682", "U: memory", "E: SUBSYSTEM=memory",
                 "E: DEVPATH=/devices/system/memory/memory7682"):
        assert line in mem, f"{line!r} not in {mem}"
    assert not [line for line in mem if line.startswith(("T:", "D:", "N:", "V:"))]
    dax = section(info_output, "dax").splitlines()
    major = next(line.split("=")[1] for line in dax if line.startswith("E: MAJOR="))
    for line in ("U: dax", f"D: c {major}:0", "N: dax0.0", "V: kmem", "E: DEVNAME=/dev/dax0.0",
                 "E: MODALIAS=dax:t0", "E: MINOR=0"):
        assert line in dax, f"{line!r} not in {dax}"


# ==== isolation ====================================================================================

def _host_snapshot() -> dict:
    def listing(path):
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return None

    def read(path):
        try:
            return Path(path).read_text()
        except OSError:
            return None
    mem = "/sys/devices/system/memory"
    return {"run/udev": listing("/run/udev"), "run/udev/data": listing("/run/udev/data"),
            "dev/dax*": sorted(n for n in listing("/dev") or [] if n.startswith("dax")),
            "dev/char": listing("/dev/char"),
            "auto_online": read(f"{mem}/auto_online_blocks"),
            "states": {b: read(f"{mem}/{b}/state") for b in (listing(mem) or []) if b.startswith("memory")},
            "daxctl": Path(shutil.which("daxctl")).read_bytes()[:4]}


def test_host_run_dev_and_sys_untouched(fresh_mount, tmp_path):
    before = _host_snapshot()
    proc = udev_exec(fresh_mount, rules_dir(tmp_path, {"40-online.rules": AUTO_MOVABLE,
                                                       "91-marker.rules": DAX_MARKER}), f"""
        set -e
        {TOOLS}/cxl-ram-region -d decoder0.1 mem2 mem1 >/dev/null
        udevadm trigger --settle --action=add -s memory -a state=offline
        test -e /run/udev/data/c$(cat /sys/bus/dax/devices/dax1.0/dev) && echo "== db ok"
        test -c /dev/dax1.0 && echo "== dev ok"
        cat /run/dax-added
    """, settle_writes=True)
    # the namespace had its database, nodes and marker...
    assert "== db ok" in proc.stdout and "== dev ok" in proc.stdout and "/dev/dax1.0" in proc.stdout
    # ...the host did not get any of them
    after = _host_snapshot()
    assert after == before
    assert not os.path.exists("/run/dax-added")


# ==== the write hold ===============================================================================

def test_concurrent_held_writes_all_return(fresh_mount):
    """Two writes waiting for their events' acknowledgement (as `cxlfs exec --udev-rules`
    asks for) both return once their events are acknowledged."""
    from cxlfs.ns.inject import follow
    from cxlfs.service import socket_path
    import threading

    seen = []

    def slow_injector(event):
        seen.append(event["seqnum"])
        if len(seen) == 1:
            time.sleep(0.8)            # the second write arrives while the first is injected

    ready = threading.Event()
    t = threading.Thread(target=follow, args=(str(socket_path(fresh_mount)), slow_injector),
                         kwargs={"ack": "injected", "ready": ready}, daemon=True)
    t.start()
    assert ready.wait(5)
    mem = f"{fresh_mount}/devices/system/memory"
    a = subprocess.Popen(["sh", "-c", f"echo online_movable > {mem}/memory7682/state"])
    time.sleep(0.3)
    b = subprocess.Popen(["sh", "-c", f"echo online_movable > {mem}/memory7683/state"])
    try:
        assert b.wait(timeout=5) == 0
        assert a.wait(timeout=3) == 0, "the first write is still waiting"
    except subprocess.TimeoutExpired:
        pytest.fail(f"a held write did not return (events acked: {seen})")
    finally:
        # a FUSE write already handed to the daemon cannot be killed, only waited out: a
        # stuck one is left to finish on its own (the daemon gives up after 15 s; the
        # mount is unmounted lazily meanwhile)
        STRAGGLERS.extend(p for p in (a, b) if p.poll() is None)


STRAGGLERS: list[subprocess.Popen] = []
