"""DAX and memory hotplug with the real Debian `daxctl` (ndctl 76.1) (kernel-abi.md §3, §4,
§6, §7, §8.3; userspace-clients.md §4, §5).

The default cxl_test tree has region0 -> dax_region0 -> dax0.0 bound to kmem with its 4
blocks (memory7682..7685) added offline on CPU-less node 2 (auto_online_blocks=offline).
Covered: listing, online/offline (zones, node masks, meminfo, memory tiers), reconfiguring
between devdax and system-ram (policy refusal, --force, --no-online, --no-movable, hot-remove
of blocks and node), create/destroy of dax devices, the whole chain from a new RAM region to
online memory on a new node, and injected faults (offline EBUSY, kmem probe ENOMEM).

Each scenario runs in one `cxlfs exec` (``script``); the `cxlfs fault`/`cxlfs dmesg` control
commands run inside it too."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import Out, exists, mount, script, umount

pytestmark = [pytest.mark.clients, pytest.mark.fuse, pytest.mark.root]

MiB = 1 << 20
GiB = 1 << 30
TOOL = str(Path(__file__).resolve().parents[1] / "tools" / "cxl-ram-region")
CXLFS = f"{sys.executable} -m cxlfs"

REGION0 = 0xf010000000
BLOCK = 128 * MiB
BLOCKS = [f"memory{i}" for i in range(7682, 7686)]          # dax0.0's range, node 2
REGION1_BLOCKS = [f"memory{i}" for i in range(7690, 7706)]  # tools/cxl-ram-region -d decoder0.1
S = "/sys/devices/system"
MEM = f"{S}/memory"
TIERS = "/sys/devices/virtual/memory_tiering"
DAX_REGION0 = "/sys/bus/cxl/devices/dax_region0/dax_region"


def states(blocks=BLOCKS) -> str:
    """One line per block: 'memoryN STATE VALID_ZONES' (or 'memoryN gone')."""
    names = " ".join(blocks)
    return (f"for b in {names}; do if [ -d {MEM}/$b ]; then "
            f"echo $b $(cat {MEM}/$b/state) $(cat {MEM}/$b/valid_zones); else echo $b gone; fi; done")


def parse_states(out: Out) -> dict[str, tuple[str, str]]:
    res = {}
    for line in out.ok().out.splitlines():
        name, state, *zones = line.split()
        res[name] = (state, " ".join(zones))
    return res


def memtotal_kb(node: int) -> str:
    return f"awk '/MemTotal/ {{print $4}}' {S}/node/node{node}/meminfo 2>/dev/null || echo none"


def tier_nodes() -> str:
    """'memory_tierN NODELIST' per tier."""
    return f"for t in {TIERS}/memory_tier*; do echo ${{t##*/}} $(cat $t/nodelist); done"


def parse_tiers(out: Out) -> dict[str, str]:
    return dict(line.split(maxsplit=1) for line in out.ok().out.splitlines())


def one_dev(out: Out) -> dict:
    (dev,) = out.ok().json
    return dev


def block_kb(memmap_on_memory: bool) -> int:
    """MemTotal a 128 MiB block adds to its node (its 2 MiB memmap lives on it when
    memmap_on_memory is used)."""
    return (BLOCK - (2 * MiB if memmap_on_memory else 0)) // 1024


# ==== listing (shared mount, read only) ===========================================================

@pytest.fixture(scope="module")
def listed(mounted):
    o = script(mounted, "daxctl list -R -D -M", "daxctl list", "daxctl list -R -D -M -u",
               f"cat {MEM}/block_size_bytes", f"cat {MEM}/auto_online_blocks")
    return dict(zip(["RDM", "D", "RDMu", "bs", "policy"], o))


def test_list_default_region_and_device(listed):
    (region,) = listed["RDM"].ok().json
    assert region["path"] == "/platform/cxl_acpi.0/root0/decoder0.0/region0/dax_region0"
    assert region["id"] == 0
    assert region["size"] == 512 * MiB
    assert region["align"] == 2097152
    assert "available_size" not in region                # dax0.0 took everything
    (dev,) = region["devices"]
    assert dev["chardev"] == "dax0.0"
    assert dev["size"] == 512 * MiB
    assert dev["target_node"] == 2
    assert dev["align"] == 2097152
    assert dev["mode"] == "system-ram"
    assert dev["total_memblocks"] == 4
    assert dev["online_memblocks"] == 0
    assert "movable" not in dev                          # offline blocks: no zone
    assert "state" not in dev
    (m,) = dev["mappings"]
    assert m["start"] == REGION0
    assert m["end"] == REGION0 + 512 * MiB - 1
    assert m["size"] == 512 * MiB
    assert m["page_offset"] == 0


def test_list_devices_default(listed):
    (dev,) = listed["D"].ok().json
    assert dev["chardev"] == "dax0.0" and dev["mode"] == "system-ram"
    assert "mappings" not in dev


def test_list_human(listed):
    (region,) = listed["RDMu"].ok().json
    (dev,) = region["devices"]
    assert dev["size"] == "512.00 MiB (536.87 MB)"
    assert dev["mappings"][0]["start"] == "0xf010000000"


def test_memory_policy_files(listed):
    assert listed["bs"].text == "8000000"               # 128 MiB, hex without 0x
    assert listed["policy"].text == "offline"


# ==== online / offline ============================================================================

def test_online_then_offline_memory(fresh_mount):
    o = script(fresh_mount,
               states(), memtotal_kb(2), f"cat {S}/node/has_memory {S}/node/has_normal_memory",
               tier_nodes(),                                                       # 0-3
               "daxctl online-memory dax0.0",                                      # 4
               states(), memtotal_kb(2), f"cat {S}/node/has_memory {S}/node/has_normal_memory",
               tier_nodes(), "daxctl list -d dax0.0",                              # 5-9
               "cat /sys/bus/dax/devices/dax0.0/memmap_on_memory",                # 10
               "daxctl offline-memory dax0.0",                                     # 11
               states(), memtotal_kb(2), f"cat {S}/node/has_memory", tier_nodes(),  # 12-15
               "daxctl list -d dax0.0")                                            # 16
    before = parse_states(o[0])
    assert all(st == "offline" for st, _ in before.values()), before
    assert all(z == "Normal Movable" for _, z in before.values()), before   # fresh CXL node
    assert o[1].text == "0"
    has_mem, has_normal = o[2].ok().out.split()
    assert has_mem == "0-1" and has_normal == "0-1"
    assert "memory_tier22" not in parse_tiers(o[3])

    assert "onlined memory for 1 device" in o[4].ok().err
    after = parse_states(o[5])
    assert after == {b: ("online", "Movable") for b in BLOCKS}
    mmap = o[10].ok().text == "1"
    assert int(o[6].text) == 4 * block_kb(mmap)
    has_mem, has_normal = o[7].ok().out.split()
    assert has_mem == "0-2"                     # node 2 has memory ...
    assert has_normal == "0-1"                  # ... but only in ZONE_MOVABLE
    tiers = parse_tiers(o[8])
    assert tiers["memory_tier22"] == "2"        # kmem's default (low) tier
    assert tiers["memory_tier4"] == "0-1"       # DRAM
    dev = one_dev(o[9])
    assert dev["online_memblocks"] == 4 and dev["total_memblocks"] == 4
    assert dev["movable"] is True

    assert "offlined memory for 1 device" in o[11].ok().err
    assert parse_states(o[12]) == {b: ("offline", "Normal Movable") for b in BLOCKS}
    assert o[13].text == "0"
    assert o[14].text == "0-1"
    assert "memory_tier22" not in parse_tiers(o[15])    # empty tier removed
    dev = one_dev(o[16])
    assert dev["online_memblocks"] == 0 and "movable" not in dev


def test_online_memory_twice_reports_already_online(fresh_mount):
    o = script(fresh_mount, "daxctl online-memory dax0.0", "daxctl online-memory dax0.0")
    o[0].ok()
    assert "all memory sections (4) already online" in o[1].err
    assert "onlined memory for 0 devices" in o[1].err


def test_reconfigure_system_ram_no_movable(fresh_mount):
    o = script(fresh_mount,
               "daxctl reconfigure-device --mode=system-ram --no-movable dax0.0",
               states(), f"cat {S}/node/has_normal_memory {S}/node/has_memory", tier_nodes())
    assert "dax0.0 was already in system-ram mode" in o[0].ok().err
    assert "reconfigured 1 device" in o[0].err
    dev = one_dev(o[0])
    assert dev["mode"] == "system-ram" and dev["online_memblocks"] == 4
    assert dev["movable"] is False
    assert parse_states(o[1]) == {b: ("online", "Normal") for b in BLOCKS}
    has_normal, has_mem = o[2].ok().out.split()
    assert has_normal == "0-2" and has_mem == "0-2"
    assert parse_tiers(o[3])["memory_tier22"] == "2"


def test_online_memory_no_movable(fresh_mount):
    o = script(fresh_mount, "daxctl online-memory --no-movable dax0.0", states(),
               "daxctl list -d dax0.0")
    assert "onlined memory for 1 device" in o[0].ok().err
    assert parse_states(o[1]) == {b: ("online", "Normal") for b in BLOCKS}
    assert one_dev(o[2])["movable"] is False


def test_zones_follow_the_onlined_span(fresh_mount):
    """Zone spans cover onlined memory only (contig-zones policy): a hole inside the Movable
    span would go back to Movable, a block past its end (the span shrinks at the edges) or a
    block next to nothing defaults to Normal."""
    w = lambda blk, st: f"echo {st} > {MEM}/{blk}/state"   # noqa: E731
    z = lambda blk: f"cat {MEM}/{blk}/valid_zones"          # noqa: E731
    o = script(fresh_mount,
               "daxctl online-memory dax0.0",                                        # 0
               w("memory7683", "offline"), z("memory7683"),                          # 1, 2
               w("memory7685", "offline"), z("memory7685"),                          # 3, 4
               w("memory7684", "offline"), z("memory7683"), z("memory7684"),         # 5-7
               w("memory7683", "online"), z("memory7683"), z("memory7684"),          # 8-10
               "daxctl list -d dax0.0")                                              # 11
    for i in (0, 1, 3, 5, 8):
        o[i].ok()
    assert o[2].text == "Movable Normal"        # hole inside the Movable span
    assert o[4].text == "Normal Movable"        # past the end: the span shrank
    assert o[6].text == "Normal Movable"        # span is now memory7682 alone
    assert o[7].text == "Normal Movable"
    assert o[9].text == "Normal"                # plain `online` outside any span: Normal
    assert o[10].text == "Normal Movable"
    dev = one_dev(o[11])
    assert dev["online_memblocks"] == 2
    assert "movable" not in dev                 # offline blocks in range: zone unknown


def test_devdax_refused_while_online_then_forced(fresh_mount):
    o = script(fresh_mount,
               "daxctl online-memory dax0.0",                                        # 0
               "daxctl reconfigure-device --mode=devdax dax0.0",                     # 1
               "daxctl list -d dax0.0", states(),                                    # 2, 3
               "daxctl reconfigure-device --mode=devdax -f dax0.0",                  # 4
               states(), exists(f"{S}/node/node2"), f"cat {S}/node/has_memory",      # 5-7
               "ls /sys/bus/memory/devices | grep -c memory768",                     # 8
               exists("/dev/dax0.0"), tier_nodes(),                                  # 9, 10
               "daxctl reconfigure-device --mode=system-ram dax0.0",                 # 11
               states(), exists(f"{S}/node/node2"))                                  # 12, 13
    o[0].ok()
    assert o[1].rc != 0
    assert "error reconfiguring devices: Device or resource busy" in o[1].err
    assert "reconfigured 0 devices" in o[1].err
    dev = one_dev(o[2])
    assert dev["mode"] == "system-ram" and dev["online_memblocks"] == 4
    assert all(st == "online" for st, _ in parse_states(o[3]).values())

    dev = one_dev(o[4])
    assert dev["mode"] == "devdax" and "online_memblocks" not in dev
    assert "reconfigured 1 device" in o[4].err
    assert parse_states(o[5]) == {b: ("gone", "") for b in BLOCKS}     # hot-removed
    assert o[6].text == "no"                    # CPU-less node 2 lost its last memory
    assert o[7].text == "0-1"
    assert o[8].text == "0"
    assert o[9].text == "yes"                   # the char device stays (device_dax)
    assert "memory_tier22" not in parse_tiers(o[10])

    # back to system-ram: blocks hot-added again, offline (policy offline), daxctl onlines them
    dev = one_dev(o[11])
    assert dev["mode"] == "system-ram"
    assert dev["online_memblocks"] == 4 and dev["movable"] is True
    assert parse_states(o[12]) == {b: ("online", "Movable") for b in BLOCKS}
    assert o[13].text == "yes"


def test_reconfigure_no_online_leaves_blocks_offline(fresh_mount):
    o = script(fresh_mount,
               "daxctl reconfigure-device --mode=devdax dax0.0",
               "daxctl reconfigure-device --mode=system-ram --no-online dax0.0",
               states(), memtotal_kb(2), f"cat {S}/node/has_memory")
    assert one_dev(o[0])["mode"] == "devdax"
    dev = one_dev(o[1])
    assert dev["mode"] == "system-ram"
    assert dev["online_memblocks"] == 0 and dev["total_memblocks"] == 4
    assert parse_states(o[2]) == {b: ("offline", "Normal Movable") for b in BLOCKS}
    assert o[3].text == "0"
    assert o[4].text == "0-1"


def test_auto_online_policy_written(fresh_mount):
    """auto_online_blocks=online_movable: daxctl refuses to race the kernel unless --force;
    with --force the kernel has onlined everything (Movable) by the time daxctl looks."""
    o = script(fresh_mount,
               "daxctl reconfigure-device --mode=devdax dax0.0",                     # 0
               f"echo online_movable > {MEM}/auto_online_blocks",                    # 1
               f"cat {MEM}/auto_online_blocks",                                      # 2
               "daxctl reconfigure-device --mode=system-ram dax0.0",                 # 3
               "daxctl list -d dax0.0", states(),                                    # 4, 5
               "daxctl reconfigure-device --mode=system-ram --force dax0.0",         # 6
               states())                                                             # 7
    o[0].ok(), o[1].ok()
    assert o[2].text == "online_movable"
    assert o[3].rc != 0
    assert "dax0.0: error: kernel policy will auto-online memory, aborting" in o[3].err
    assert "reconfigured 0 devices" in o[3].err
    assert one_dev(o[4])["mode"] == "devdax"
    assert parse_states(o[5]) == {b: ("gone", "") for b in BLOCKS}
    dev = one_dev(o[6])
    assert dev["mode"] == "system-ram" and dev["online_memblocks"] == 4 and dev["movable"] is True
    assert "all memory sections (4) already online" in o[6].err
    assert parse_states(o[7]) == {b: ("online", "Movable") for b in BLOCKS}


@pytest.fixture
def online_movable_mount():
    mnt = mount(options=("auto_online_blocks=online_movable",))
    try:
        yield mnt
    finally:
        umount(mnt)


def test_auto_online_policy_at_boot(online_movable_mount):
    """Mounted with -o auto_online_blocks=online_movable: dax0.0's blocks come up online."""
    o = script(online_movable_mount,
               f"cat {MEM}/auto_online_blocks", "daxctl list -d dax0.0", states(),
               f"cat {S}/node/has_memory",
               "daxctl reconfigure-device --mode=devdax dax0.0",
               "daxctl reconfigure-device --mode=devdax -f dax0.0",
               "daxctl reconfigure-device --mode=system-ram dax0.0",
               "daxctl reconfigure-device --mode=system-ram --no-online dax0.0",
               "daxctl reconfigure-device --mode=system-ram --no-movable dax0.0",
               states())
    assert o[0].text == "online_movable"
    dev = one_dev(o[1])
    assert dev["online_memblocks"] == 4 and dev["movable"] is True
    assert parse_states(o[2]) == {b: ("online", "Movable") for b in BLOCKS}
    assert o[3].text == "0-2"
    assert o[4].rc != 0 and "Device or resource busy" in o[4].err
    assert one_dev(o[5])["mode"] == "devdax"
    assert o[6].rc != 0 and "kernel policy will auto-online memory, aborting" in o[6].err
    assert o[7].rc != 0 and "kernel policy will auto-online memory, aborting" in o[7].err
    # --no-movable (without --no-online) skips the policy check; the kernel then onlines
    # everything Movable on its own and daxctl finds nothing left to do (and says so)
    dev = one_dev(o[8])
    assert dev["mode"] == "system-ram" and dev["online_memblocks"] == 4
    assert dev["movable"] is True
    assert "WARNING: detected a race while onlining memory" in o[8].err
    assert "all memory sections (4) already online" in o[8].err
    assert parse_states(o[9]) == {b: ("online", "Movable") for b in BLOCKS}


# ==== create / destroy dax devices ================================================================

def test_create_and_destroy_device(fresh_mount):
    o = script(fresh_mount,
               "daxctl reconfigure-device --mode=devdax dax0.0",                     # 0
               "daxctl disable-device dax0.0",                                       # 1
               "daxctl reconfigure-device -s 0 dax0.0",                              # 2
               f"cat {DAX_REGION0}/available_size",                                  # 3
               "daxctl create-device -r 0 -s 256M",                                  # 4
               "daxctl list -D -M -d dax0.1",                                        # 5
               "stat -c '%F %t:%T' /dev/dax0.1",                                     # 6
               "cat /sys/bus/dax/devices/dax0.1/dev",                                # 7
               f"cat {DAX_REGION0}/available_size",                                  # 8
               "daxctl list -R -r 0",                                                # 9
               "daxctl destroy-device dax0.1",                                       # 10
               "daxctl destroy-device -f dax0.1",                                    # 11
               exists("/dev/dax0.1"), exists("/sys/bus/dax/devices/dax0.1"),         # 12, 13
               f"cat {DAX_REGION0}/available_size",                                  # 14
               "daxctl list -D -i")                                                  # 15
    o[0].ok()
    assert "disabled 1 device" in o[1].ok().err
    assert o[2].ok() and o[3].text == str(512 * MiB)

    assert "created 1 device" in o[4].ok().err
    dev = one_dev(o[4])
    assert dev["chardev"] == "dax0.1" and dev["size"] == 256 * MiB
    assert dev["mode"] == "devdax" and dev["target_node"] == 2 and dev["align"] == 2097152
    dev = one_dev(o[5])
    (m,) = dev["mappings"]
    assert m["start"] == REGION0 and m["size"] == 256 * MiB       # first fit from the start
    kind, majmin = o[6].ok().text.rsplit(" ", 1)          # stat prints major:minor in hex
    assert kind == "character special file"
    major, minor = (int(x) for x in o[7].ok().text.split(":"))
    assert majmin == f"{major:x}:{minor:x}"
    assert o[8].text == str(256 * MiB)
    (region,) = o[9].ok().json
    assert region["available_size"] == 256 * MiB

    assert o[10].rc != 0 and "dax0.1 is active, specify --force for deletion" in o[10].err
    assert "destroyed 1 device" in o[11].ok().err
    assert o[12].text == "no" and o[13].text == "no"
    assert o[14].text == str(512 * MiB)
    devs = o[15].ok().json
    assert [d["chardev"] for d in devs] == ["dax0.0"]
    assert devs[0]["size"] == 0 and devs[0]["state"] == "disabled"


# ==== a new RAM region all the way to online memory ==============================================

def test_ram_region_to_online_memory_on_a_new_node(fresh_mount):
    o = script(fresh_mount,
               exists(f"{S}/node/node3"),                                            # 0
               f"{TOOL} -d decoder0.1 mem2 mem1",                                    # 1
               "daxctl list -d dax1.0",                                              # 2
               exists(f"{S}/node/node3"), memtotal_kb(3),                            # 3, 4
               "daxctl online-memory dax1.0",                                        # 5
               states(REGION1_BLOCKS), memtotal_kb(3),                               # 6, 7
               f"cat {S}/node/has_memory {S}/node/has_normal_memory", tier_nodes(),  # 8, 9
               "daxctl list -d dax1.0",                                              # 10
               "cat /sys/bus/dax/devices/dax1.0/memmap_on_memory",                   # 11
               f"ls {S}/node/node3 | grep -c '^memory[0-9]'",                        # 12
               memtotal_kb(2))                                                       # 13
    assert o[0].text == "no"
    assert o[1].ok().text == "region1"
    dev = one_dev(o[2])
    assert dev["mode"] == "system-ram" and dev["target_node"] == 3
    assert dev["size"] == 2 * GiB and dev["total_memblocks"] == 16 and dev["online_memblocks"] == 0
    assert o[3].text == "yes"                   # registered with its (offline) memory
    assert o[4].text == "0"

    assert "onlined memory for 1 device" in o[5].ok().err
    assert parse_states(o[6]) == {b: ("online", "Movable") for b in REGION1_BLOCKS}
    assert int(o[7].text) == 16 * block_kb(o[11].ok().text == "1")
    has_mem, has_normal = o[8].ok().out.split()
    assert has_mem == "0-1,3" and has_normal == "0-1"
    assert parse_tiers(o[9])["memory_tier22"] == "3"
    dev = one_dev(o[10])
    assert dev["online_memblocks"] == 16 and dev["movable"] is True
    assert o[12].text == "16"
    assert o[13].text == "0"                    # dax0.0 untouched


# ==== fault injection ============================================================================

def test_offline_busy_block(fresh_mount):
    mnt = fresh_mount
    o = script(mnt,
               "daxctl online-memory dax0.0",                                        # 0
               f"{CXLFS} fault {mnt} offline-busy memory7683",                       # 1
               "daxctl offline-memory dax0.0",                                       # 2
               states(), "daxctl list -d dax0.0",                                    # 3, 4
               f"{CXLFS} dmesg {mnt}",                                               # 5
               f"{CXLFS} fault {mnt} clear",                                         # 6
               "daxctl offline-memory dax0.0",                                       # 7
               states())                                                             # 8
    o[0].ok(), o[1].ok()
    assert o[2].rc != 0
    assert "Device or resource busy" in o[2].err
    assert "failed to offline memory" in o[2].err
    st = parse_states(o[3])
    assert st["memory7683"] == ("online", "Movable")
    dev = one_dev(o[4])
    assert dev["online_memblocks"] >= 1 and "movable" not in dev     # mixed: no single zone
    assert "memory offlining [mem 0xf018000000-0xf01fffffff] failed due to unmovable page" in o[5].ok().out
    o[6].ok()
    assert "offlined memory for 1 device" in o[7].ok().err
    assert parse_states(o[8]) == {b: ("offline", "Normal Movable") for b in BLOCKS}


def test_kmem_probe_failure(fresh_mount):
    mnt = fresh_mount
    o = script(mnt,
               "daxctl reconfigure-device --mode=devdax dax0.0",                     # 0
               f"{CXLFS} fault {mnt} probe-fail kmem --errno ENOMEM",                # 1
               "daxctl reconfigure-device --mode=system-ram dax0.0",                 # 2
               "daxctl list -d dax0.0 -i", states(), exists(f"{S}/node/node2"),      # 3-5
               f"{CXLFS} dmesg {mnt}",                                               # 6
               f"{CXLFS} fault {mnt} clear",                                         # 7
               "daxctl reconfigure-device --mode=system-ram dax0.0",                 # 8
               states())                                                             # 9
    o[0].ok(), o[1].ok()
    assert o[2].rc != 0
    assert "dax0.0: failed to enable" in o[2].err
    assert "Cannot allocate memory" in o[2].err
    assert "reconfigured 0 devices" in o[2].err
    dev = one_dev(o[3])
    assert dev["mode"] == "devdax"               # not kmem (left unbound by daxctl's disable)
    assert parse_states(o[4]) == {b: ("gone", "") for b in BLOCKS}
    assert o[5].text == "no"
    assert "kmem dax0.0: probe with driver kmem failed with error -12" in o[6].ok().out
    o[7].ok()
    dev = one_dev(o[8])
    assert dev["mode"] == "system-ram" and dev["online_memblocks"] == 4
    assert parse_states(o[9]) == {b: ("online", "Movable") for b in BLOCKS}
