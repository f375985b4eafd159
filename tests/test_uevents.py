"""The kernel's uevent stream (udev.md §7): which events, in which order, with which
properties, for region creation, dax/kmem binding, memory hotplug and teardown; the
``uevent`` files; synthetic uevents; ``cxlfs monitor --json``.

Everything but the monitor test runs on the in-process model.  Orders follow the driver
core: ``add`` from device_add() before bus_probe_device(); ``bind`` from driver_bound()
after probe() returned (so the children a probe creates report first); ``unbind`` after
dev->driver is cleared (no DRIVER); ``remove`` at the end of device_del(), after the
driver (and with it every devm child) is gone.
"""
from __future__ import annotations

import errno
import json
import os
import select
import subprocess
import time

import pytest

from helpers import CXLFS, make_ram_region, run_in

CXL = "/bus/cxl/devices"
MEM = "/devices/system/memory"
UUID = "0f0e0d0c-0b0a-0908-0706-050403020100"
BLOCK = 128 << 20


# ==== helpers =====================================================================================

def short(ev) -> tuple[str, str]:
    return ev.action, ev.devpath.rsplit("/", 1)[-1]


def index(events, action: str, name: str) -> int:
    """Position of the (only) event ``action`` for the device called ``name``."""
    hits = [i for i, ev in enumerate(events) if short(ev) == (action, name)]
    assert len(hits) == 1, f"{action} {name}: {len(hits)} events in {[short(e) for e in events]}"
    return hits[0]


def env(ev) -> list[tuple[str, str]]:
    """What dev_uevent() added: the properties minus ACTION/DEVPATH/SUBSYSTEM/SEQNUM."""
    return [(k, v) for k, v in ev.properties() if k not in ("ACTION", "DEVPATH", "SUBSYSTEM", "SEQNUM")]


def uevent_text(ev) -> str:
    return "".join(f"{k}={v}\n" for k, v in env(ev))


@pytest.fixture
def region1(k, kernel):
    """region1 over mem2+mem1 (2 GiB on node 3): (events of create+commit, events of bind)."""
    kernel.drain_uevents()
    name = make_ram_region(k, bind=None)
    created = kernel.drain_uevents()
    k.echo("/bus/cxl/drivers/cxl_region/bind", name)
    bound = kernel.drain_uevents()
    assert name == "region1"
    return created, bound


def region1_blocks(k) -> list[str]:
    start = int(k.val(f"{CXL}/region1/resource"), 0)
    size = int(k.val(f"{CXL}/region1/size"), 0)
    return [f"memory{n}" for n in range(start // BLOCK, (start + size) // BLOCK)]


# ==== region creation and binding =================================================================

def test_creating_a_region_emits_one_add_without_driver(k, region1):
    created, _ = region1
    # sizing, targets and commit are attribute writes: only device_add() reports
    assert [short(ev) for ev in created] == [("add", "region1")]
    (ev,) = created
    assert ev.subsystem == "cxl"
    assert ev.devpath == k.path(f"{CXL}/region1") == "/devices/platform/cxl_acpi.0/root0/decoder0.1/region1"
    # the uncommitted region's autoprobe failed (ENXIO): no DRIVER, no bind
    assert ev.properties() == [("ACTION", "add"), ("DEVPATH", ev.devpath), ("SUBSYSTEM", "cxl"),
                               ("DEVTYPE", "cxl_region"), ("MODALIAS", "cxl:t6"),
                               ("SEQNUM", str(ev.seqnum))]


def test_binding_a_ram_region_event_order(k, region1):
    _, bound = region1
    blocks = region1_blocks(k)
    assert len(blocks) == 16
    # add before bind for every device; a probe's children report before the parent's bind
    assert index(bound, "add", "dax_region1") < index(bound, "add", "dax1.0")
    assert index(bound, "add", "dax1.0") < min(index(bound, "add", b) for b in blocks)
    assert max(index(bound, "add", b) for b in blocks) < index(bound, "bind", "dax1.0")
    assert index(bound, "bind", "dax1.0") < index(bound, "bind", "dax_region1")
    assert index(bound, "bind", "dax_region1") < index(bound, "bind", "region1")
    assert bound[-1].action == "bind" and short(bound[-1]) == ("bind", "region1")
    # the blocks are added in address order; auto_online_blocks=offline: no online events
    adds = [short(ev)[1] for ev in bound if ev.action == "add" and ev.subsystem == "memory"]
    assert adds == blocks
    assert not [ev for ev in bound if ev.action in ("online", "offline", "change", "remove", "unbind")]


def test_binding_a_ram_region_event_properties(k, kernel, region1):
    _, bound = region1
    by = {short(ev): ev for ev in bound}
    dax_major = str(kernel.majors.dax)
    assert env(by["bind", "region1"]) == [("DEVTYPE", "cxl_region"), ("DRIVER", "cxl_region"),
                                          ("MODALIAS", "cxl:t6")]
    assert by["add", "dax_region1"].subsystem == "cxl"
    assert env(by["add", "dax_region1"]) == [("DEVTYPE", "cxl_dax_region"), ("MODALIAS", "cxl:t8")]
    assert env(by["bind", "dax_region1"]) == [("DEVTYPE", "cxl_dax_region"),
                                              ("DRIVER", "cxl_dax_region"), ("MODALIAS", "cxl:t8")]
    add_dax, bind_dax = by["add", "dax1.0"], by["bind", "dax1.0"]
    assert add_dax.subsystem == bind_dax.subsystem == "dax"
    assert add_dax.devpath == k.path("/bus/dax/devices/dax1.0") == \
        "/devices/platform/cxl_acpi.0/root0/decoder0.1/region1/dax_region1/dax1.0"
    # a dev_dax has a devt (MAJOR/MINOR/DEVNAME relative to /dev), no device_type name
    assert env(add_dax) == [("MAJOR", dax_major), ("MINOR", "1"), ("DEVNAME", "dax1.0"),
                            ("MODALIAS", "dax:t0")]
    assert env(bind_dax) == [("MAJOR", dax_major), ("MINOR", "1"), ("DEVNAME", "dax1.0"),
                             ("DRIVER", "kmem"), ("MODALIAS", "dax:t0")]
    for block in region1_blocks(k):
        ev = by["add", block]
        assert ev.subsystem == "memory"
        assert ev.devpath == f"{MEM}/{block}"
        assert ev.properties() == [("ACTION", "add"), ("DEVPATH", ev.devpath), ("SUBSYSTEM", "memory"),
                                   ("SEQNUM", str(ev.seqnum))]      # nothing else, ever


def test_new_node_is_registered_after_its_memory_blocks(k, region1):
    _, bound = region1
    assert index(bound, "add", "node3") > max(index(bound, "add", b) for b in region1_blocks(k))


def test_seqnum_strictly_increasing(kernel, region1):
    created, bound = region1
    seqnums = [ev.seqnum for ev in created + bound]
    assert seqnums == list(range(seqnums[0], seqnums[0] + len(seqnums)))
    assert all(ev.get("SEQNUM") == str(ev.seqnum) for ev in created + bound)


def test_uevent_files_match_the_last_event(k, region1):
    """uevent_show() prints what dev_uevent() adds to an event (no ACTION/DEVPATH/SUBSYSTEM/SEQNUM)."""
    _, bound = region1
    last = {}
    for ev in bound:
        last[ev.devpath] = ev
    checked = 0
    for devpath, ev in last.items():
        if ev.subsystem in ("cxl", "dax", "memory"):
            assert k.cat(f"{devpath}/uevent") == uevent_text(ev), devpath
            checked += 1
    assert checked >= 19         # region1, dax_region1, dax1.0 and 16 blocks
    assert k.cat(f"{MEM}/memory7690/uevent") == ""


# ==== memory block state ==========================================================================

def test_state_writes_emit_online_and_offline(k, kernel):
    kernel.drain_uevents()
    k.echo(f"{MEM}/memory7682/state", "online_movable")
    evs = kernel.drain_uevents()
    # the first online memory of node 2 creates kmem's memory tier (MEM_ONLINE notifier),
    # then device_online() reports KOBJ_ONLINE -- never "change"
    assert [short(ev) for ev in evs] == [("add", "memory_tier22"), ("online", "memory7682")]
    assert evs[1].properties() == [("ACTION", "online"), ("DEVPATH", f"{MEM}/memory7682"),
                                   ("SUBSYSTEM", "memory"), ("SEQNUM", str(evs[1].seqnum))]
    k.echo(f"{MEM}/memory7683/online", "1")
    assert [short(ev) for ev in kernel.drain_uevents()] == [("online", "memory7683")]
    k.echo(f"{MEM}/memory7683/state", "offline")
    assert [short(ev) for ev in kernel.drain_uevents()] == [("offline", "memory7683")]
    k.echo(f"{MEM}/memory7682/online", "0")
    evs = kernel.drain_uevents()
    assert ("offline", "memory7682") in [short(ev) for ev in evs]
    assert all(ev.action != "change" for ev in evs)


@pytest.mark.parametrize("block,value", [("memory7682", "offline"), ("memory100", "online"),
                                         ("memory100", "online_movable")])
def test_state_write_to_current_state_is_einval_without_event(k, kernel, block, value):
    kernel.drain_uevents()
    assert k.errno_of(f"{MEM}/{block}/state", value) == errno.EINVAL
    assert kernel.drain_uevents() == []


@pytest.mark.parametrize("block,value", [("memory7682", "0"), ("memory100", "1")])
def test_online_write_to_current_state_succeeds_without_event(k, kernel, block, value):
    # online_store() returns count when device_online()/device_offline() return 1 (no change)
    kernel.drain_uevents()
    assert k.echo(f"{MEM}/{block}/online", value) == 1
    assert kernel.drain_uevents() == []


def test_kmem_with_auto_online_emits_add_then_online(k, kernel):
    k.echo(f"{MEM}/auto_online_blocks", "online_movable")
    k.echo("/bus/dax/drivers/kmem/unbind", "dax0.0")
    kernel.drain_uevents()
    k.echo("/bus/dax/drivers/kmem/bind", "dax0.0")
    evs = [short(ev) for ev in kernel.drain_uevents()]
    blocks = [f"memory{n}" for n in range(7682, 7686)]
    # all blocks are added, then onlined (online_memory_block walk), then kmem is bound
    for b in blocks:
        assert evs.index(("add", b)) < evs.index(("online", b)) < evs.index(("bind", "dax0.0"))
    assert max(evs.index(("add", b)) for b in blocks) < min(evs.index(("online", b)) for b in blocks)
    assert [a for a, _ in evs].count("online") == 4


# ==== teardown ====================================================================================

def test_unbind_has_no_driver(k, kernel, region1):
    kernel.drain_uevents()
    k.echo("/bus/cxl/drivers/cxl_region/unbind", "region1")
    evs = kernel.drain_uevents()
    by = {short(ev): ev for ev in evs}
    assert evs[-1] is by["unbind", "region1"]
    assert env(by["unbind", "region1"]) == [("DEVTYPE", "cxl_region"), ("MODALIAS", "cxl:t6")]
    assert env(by["unbind", "dax1.0"]) == [("MAJOR", str(kernel.majors.dax)), ("MINOR", "1"),
                                           ("DEVNAME", "dax1.0"), ("MODALIAS", "dax:t0")]
    assert all(ev.get("DRIVER") is None for ev in evs)
    assert "DRIVER=" not in k.cat(f"{CXL}/region1/uevent")
    # the devm children went with the driver: unbind before remove, children first
    assert index(evs, "unbind", "dax1.0") < index(evs, "remove", "dax1.0") \
        < index(evs, "unbind", "dax_region1") < index(evs, "remove", "dax_region1") \
        < index(evs, "unbind", "region1")
    assert ("remove", "region1") not in by


def test_deleting_a_bound_region_removes_after_unbind(k, kernel, region1):
    blocks = region1_blocks(k)
    kernel.drain_uevents()
    k.echo(f"{CXL}/decoder0.1/delete_region", "region1")
    evs = kernel.drain_uevents()
    assert short(evs[-1]) == ("remove", "region1")
    assert index(evs, "unbind", "region1") < index(evs, "remove", "region1")
    assert env(evs[-1]) == [("DEVTYPE", "cxl_region"), ("MODALIAS", "cxl:t6")]
    # kmem's remove hot-removes the (offline) blocks before kmem reports unbind
    for b in blocks:
        assert index(evs, "remove", b) < index(evs, "unbind", "dax1.0")
    assert index(evs, "remove", "node3") < index(evs, "unbind", "dax1.0")
    assert not [ev for ev in evs if ev.action in ("add", "bind", "online")]
    assert not k.exists(f"{CXL}/region1")
    seqnums = [ev.seqnum for ev in evs]
    assert seqnums == sorted(set(seqnums))


def test_offline_before_remove_on_hot_unplug(k, kernel):
    """daxctl offline-memory + kmem unbind: offline events, then remove events."""
    k.echo(f"{MEM}/memory7682/state", "online")
    kernel.drain_uevents()
    k.echo(f"{MEM}/memory7682/state", "offline")
    k.echo("/bus/dax/drivers/kmem/unbind", "dax0.0")
    evs = [short(ev) for ev in kernel.drain_uevents()]
    assert evs.index(("offline", "memory7682")) < evs.index(("remove", "memory7682"))
    assert evs[-1] == ("unbind", "dax0.0")
    assert [a for a, n in evs if n.startswith("memory7")].count("remove") == 4


# ==== synthetic uevents ===========================================================================

@pytest.mark.parametrize("path", ["/bus/dax/devices/dax0.0", f"{CXL}/region0", f"{MEM}/memory7682"])
def test_synthetic_change_is_the_device_event_plus_synth_uuid(k, kernel, path):
    kernel.drain_uevents()
    k.echo(f"{path}/uevent", "change")
    (ev,) = kernel.drain_uevents()
    assert ev.action == "change"
    assert ev.devpath == k.path(path)
    # caller vars (SYNTH_*) come before dev_uevent()'s
    assert env(ev) == [("SYNTH_UUID", "0")] + [tuple(line.split("=", 1)) for line in
                                               k.cat(f"{path}/uevent").splitlines()]


def test_synthetic_add_with_uuid_and_args(k, kernel):
    kernel.drain_uevents()
    k.echo("/bus/dax/devices/dax0.0/uevent", f"add {UUID} A=1 B=2\n")
    (ev,) = kernel.drain_uevents()
    assert ev.action == "add" and ev.subsystem == "dax"
    props = ev.properties()
    assert [k_ for k_, _ in props][:6] == ["ACTION", "DEVPATH", "SUBSYSTEM", "SYNTH_UUID",
                                          "SYNTH_ARG_A", "SYNTH_ARG_B"]
    assert ev.as_dict()["SYNTH_UUID"] == UUID
    assert ev.as_dict()["SYNTH_ARG_A"] == "1" and ev.as_dict()["SYNTH_ARG_B"] == "2"
    assert ev.as_dict()["DRIVER"] == "kmem" and ev.as_dict()["MODALIAS"] == "dax:t0"
    assert props[-1] == ("SEQNUM", str(ev.seqnum))


def test_synthetic_uuid_is_copied_as_written(k, kernel):
    kernel.drain_uevents()
    k.echo(f"{MEM}/memory7682/uevent", f"change {UUID.upper()}")
    (ev,) = kernel.drain_uevents()
    assert ev.as_dict()["SYNTH_UUID"] == UUID.upper()


@pytest.mark.parametrize("args", ["A_B=1", "A=x-y", "A=", "A= B=1", "A=1 B=2 C=a.b"])
def test_synthetic_args_must_be_alphanumeric(k, kernel, args):
    kernel.drain_uevents()
    assert k.errno_of(f"{MEM}/memory7682/uevent", f"change {UUID} {args}") == errno.EINVAL
    assert kernel.drain_uevents() == []


@pytest.mark.parametrize("path,devpath,subsystem", [
    ("/bus/cxl/uevent", "/bus/cxl", "bus"),
    ("/bus/dax/uevent", "/bus/dax", "bus"),
    ("/bus/memory/uevent", "/bus/memory", "bus"),
    ("/bus/cxl/drivers/cxl_region/uevent", "/bus/cxl/drivers/cxl_region", "drivers"),
    ("/bus/dax/drivers/kmem/uevent", "/bus/dax/drivers/kmem", "drivers"),
])
def test_bus_and_driver_uevent_files_are_write_only_and_emit(k, kernel, path, devpath, subsystem):
    assert k.mode(path) == 0o200
    kernel.drain_uevents()
    k.echo(path, f"add {UUID}")
    (ev,) = kernel.drain_uevents()
    # the bus/driver kobjects: SUBSYSTEM is their kset's name, no dev_uevent() vars
    assert ev.properties() == [("ACTION", "add"), ("DEVPATH", devpath), ("SUBSYSTEM", subsystem),
                               ("SYNTH_UUID", UUID), ("SEQNUM", str(ev.seqnum))]
    k.echo(path, "change")
    (ev,) = kernel.drain_uevents()
    assert ev.action == "change" and ev.as_dict()["SYNTH_UUID"] == "0"
    assert k.errno_of(path, "nope") == errno.EINVAL
    assert kernel.drain_uevents() == []


def test_device_uevent_files_are_read_write(k):
    for path in (f"{CXL}/region0", "/bus/dax/devices/dax0.0", f"{MEM}/memory7682", f"{CXL}/mem0"):
        assert k.mode(f"{path}/uevent") == 0o644, path


# ==== cxlfs monitor --json ========================================================================

class LineReader:
    """Lines of a subprocess's stdout, each awaited with a deadline."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.buf = b""
        os.set_blocking(proc.stdout.fileno(), False)

    def line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return None
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


@pytest.mark.fuse
@pytest.mark.root
def test_monitor_json_prints_the_events_of_a_write(fresh_mount):
    mnt = fresh_mount
    proc = subprocess.Popen([*CXLFS, "monitor", mnt, "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        reader = LineReader(proc)
        # until the monitor has subscribed, events are not for it: probe with a synthetic
        # event on the bus until one comes through
        deadline = time.monotonic() + 10
        while True:
            with open(f"{mnt}/bus/cxl/uevent", "w") as f:
                f.write(f"change {UUID}")
            line = reader.line(0.3)
            if line is not None:
                break
            assert time.monotonic() < deadline, f"monitor printed nothing: {proc.stderr.read1() if proc.poll() is not None else ''}"
        probe = json.loads(line)
        assert probe["devpath"] == "/bus/cxl" and probe["properties"]["SYNTH_UUID"] == UUID
        while reader.line(0.2) is not None:      # later probes
            pass
        done = run_in(mnt, "bash", "-c", "echo online_movable > /sys/devices/system/memory/memory7682/state")
        assert done.returncode == 0, done.stderr
        events = []
        while len(events) < 2:
            line = reader.line(5)
            assert line is not None, f"got only {events}"
            events.append(json.loads(line))
        assert [(e["action"], e["devpath"]) for e in events] == [
            ("add", "/devices/virtual/memory_tiering/memory_tier22"),
            ("online", f"{MEM}/memory7682")]
        online = events[1]
        assert online["subsystem"] == "memory"
        assert online["properties"] == {"ACTION": "online", "DEVPATH": f"{MEM}/memory7682",
                                        "SUBSYSTEM": "memory", "SEQNUM": str(online["seqnum"])}
        assert probe["seqnum"] < events[0]["seqnum"] < online["seqnum"]
        assert reader.line(0.3) is None          # nothing else
    finally:
        proc.kill()
        proc.wait()
