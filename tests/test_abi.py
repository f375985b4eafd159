"""ABI profiles (docs/abi-profiles.md, kernel-abi.md §12): `cxlfs abi list/diff`, mount
option validation, each proposal's wrong orders and their errno (in process), and each
profile's documented flow run by the real shell, cxl and daxctl against a mount."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from cxlfs import cli
from cxlfs.abi.profiles import PROFILES, get_profile
from cxlfs.topology.build import build
from cxlfs.topology.spec import load
from helpers import CXLFS, KernelView, collect, make_ram_region, fuse_skip_reason, parse_cxl_json, run_batch, umount

CXL = "/bus/cxl/devices"
DRV = "/bus/cxl/drivers"
MEM = "/devices/system/memory"
TOOLS = Path(__file__).resolve().parent.parent / "tools"
EXAMPLES = TOOLS / "examples"
NAMES = ["mainline", "explicit-driver-v1", "sysram-rfc-v4", "dax-online-type-v5", "design-sketch"]


# ==== helpers =====================================================================================

def boot(profile: str, **options: str) -> KernelView:
    """The cxl_test topology in process under ``profile`` (-o options as keywords)."""
    topo = load()
    cli.apply_options(topo, options)
    return KernelView(build(topo, profile=profile, options=options))


def new_region(k: KernelView, root: str, kind: str = "ram") -> str:
    """A fresh, uncommitted region."""
    name = k.val(f"{CXL}/{root}/create_{kind}_region")
    k.echo(f"{CXL}/{root}/create_{kind}_region", name)
    return name


def region_blocks(k: KernelView, region: str) -> list[str]:
    bs = int(k.val(f"{MEM}/block_size_bytes"), 16)
    start, size = int(k.val(f"{CXL}/{region}/resource"), 0), int(k.val(f"{CXL}/{region}/size"), 0)
    first, end = -(-start // bs), (start + size) // bs
    return [f"memory{n}" for n in range(first, end) if k.exists(f"{MEM}/memory{n}")]


def zones(k: KernelView, region: str) -> set[tuple[str, str]]:
    return {(k.val(f"{MEM}/{b}/state"), k.val(f"{MEM}/{b}/valid_zones")) for b in region_blocks(k, region)}


def cxlfs_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def mount_abi(profile: str, *options: str) -> str:
    """``cxlfs mount --abi PROFILE [-o ...]`` on a fresh temp dir; skips without FUSE."""
    reason = fuse_skip_reason()
    if reason:
        pytest.skip(reason)
    mnt = tempfile.mkdtemp(prefix="cxlfs-test-abi-")
    os.chmod(mnt, 0o755)
    argv = [*CXLFS, "mount", mnt, "--abi", profile]
    for o in options:
        argv += ["-o", o]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        os.rmdir(mnt)
        pytest.fail(f"cxlfs mount --abi {profile} failed: {proc.stderr.strip()}")
    return mnt


@pytest.fixture
def abi_mount(request):
    """A mount of request.param = (profile, options...)."""
    profile, *options = request.param
    mnt = mount_abi(profile, *options)
    try:
        yield mnt
    finally:
        umount(mnt)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


# ==== cxlfs abi list / diff =======================================================================

def test_abi_list_names_every_profile():
    proc = subprocess.run([*CXLFS, "abi", "list"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert [line.split()[0] for line in proc.stdout.splitlines()] == NAMES
    assert list(PROFILES) == NAMES


def diff_sections(text: str) -> dict[str, list[str]]:
    out, current = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            current = out.setdefault(line[3:], [])
        elif current is not None and line.strip():
            current.append(line)
    return out


def test_diff_mainline_explicit_driver(capsys):
    code, out, _ = cxlfs_main(capsys, "abi", "diff", "mainline", "explicit-driver-v1")
    assert code == 0
    s = diff_sections(out)
    added = {line.split()[1] for line in s["drivers"] if line.startswith("+ ")}
    assert added == {"cxl/cxl_sysram_region", "cxl/cxl_dax_kmem_region", "cxl/cxl_devdax_region"}
    assert not [line for line in s["drivers"] if line.startswith("- ")]
    assert any("cxl/cxl_dax_kmem_region" in line and "cxl:t10" in line for line in s["drivers"])
    assert any("cxl/cxl_devdax_region" in line and "cxl:t6" in line for line in s["drivers"])
    types = s["device types and attributes"]
    assert "+ cxl_sysram_region (cxl:t10)" in types
    online_type = next(line for line in types if "online_type" in line)
    assert online_type.startswith("+ ") and "rw-r--r--" in online_type
    assert online_type.split("values: ")[1].split("|") == ["offline", "online", "online_movable"]
    assert any(line.startswith("+ kmem online type: recorded when the dax device is created")
               for line in s["behaviour"])
    assert "+ echo online_movable > /sys/bus/cxl/devices/sysram_regionN/online_type" in s["documented flow"]


def test_diff_mainline_design_sketch_renames_cxl_dax_region(capsys):
    code, out, _ = cxlfs_main(capsys, "abi", "diff", "mainline", "design-sketch")
    assert code == 0
    drivers = diff_sections(out)["drivers"]
    removed = [line for line in drivers if line.startswith("- ")]
    added = [line for line in drivers if line.startswith("+ ")]
    assert [line.split()[1] for line in removed] == ["cxl/cxl_dax_region"]
    assert {line.split()[1] for line in added} == {"cxl/dax_region", "cxl/sysram_region"}
    # same device id (cxl:t8), and the renamed driver gains bind files
    assert "cxl:t8" in removed[0] and "no bind files" in removed[0]
    dax_region = next(line for line in added if "cxl/dax_region" in line)
    assert "cxl:t8" in dax_region and "bind/unbind" in dax_region
    hotplug = next(line for line in diff_sections(out)["device types and attributes"] if "hotplug" in line)
    assert hotplug.startswith("+ ") and "offline|online|online_movable" in hotplug


def test_diff_explicit_driver_v1_to_v5_changes_only_kmem_online_type(capsys):
    code, out, _ = cxlfs_main(capsys, "abi", "diff", "explicit-driver-v1", "dax-online-type-v5")
    assert code == 0
    s = diff_sections(out)
    assert s["drivers"] == ["  (same)"]
    assert s["device types and attributes"] == ["  (same)"]
    changed = [line for line in s["behaviour"] if line[:2] in ("- ", "+ ")]
    assert len(changed) == 2 and all(line[2:].startswith("kmem online type: ") for line in changed)
    assert changed[0].startswith("- ") and "when the dax device is created" in changed[0]
    assert changed[1].startswith("+ ") and "when kmem binds" in changed[1]
    assert not [line for line in s["documented flow"] if line[:2] in ("- ", "+ ")]


def test_diff_of_a_profile_with_itself_is_empty(capsys):
    code, out, _ = cxlfs_main(capsys, "abi", "diff", "sysram-rfc-v4", "sysram-rfc-v4")
    assert code == 0
    s = diff_sections(out)
    for name in ("drivers", "device types and attributes", "behaviour"):
        assert s[name] == ["  (same)"], name


@pytest.mark.parametrize("a,b", [("mainline", "nosuch"), ("nosuch", "mainline"), ("Mainline", "design-sketch")])
def test_diff_unknown_profile_is_an_error(a, b):
    proc = subprocess.run([*CXLFS, "abi", "diff", a, b], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert proc.stdout == ""
    bad = a if a not in PROFILES else b
    assert f"'{bad}'" in proc.stderr and "unknown" in proc.stderr


def test_diff_unknown_profile_message_is_one_plain_sentence(capsys):
    code, _, err = cxlfs_main(capsys, "abi", "diff", "mainline", "nosuch")
    assert code == 1
    assert err.count("unknown") == 1 and '"' not in err, err


# ==== mount option validation (before anything is mounted) =========================================

@pytest.mark.parametrize("argv,words", [
    (["--abi", "sysram-rfc-v4", "-o", "bogus=1"], ["bogus", "sysram_online_type"]),
    (["--abi", "explicit-driver-v1", "-o", "sysram_online_type=movable"], ["sysram_online_type", "explicit-driver-v1"]),
    (["-o", "sysram_online_type=movable"], ["sysram_online_type", "mainline"]),
    (["--abi", "sysram-rfc-v4", "-o", "sysram_online_type=sideways"], ["sideways", "system-default", "movable"]),
    (["--abi", "sysram-rfc-v4", "-o", "sysram_online_type"], ["sysram_online_type", "key=value"]),
    (["-o", "auto_online_blocks=maybe"], ["auto_online_blocks"]),
    (["-o", "block_size=lots"], ["block_size"]),
    (["--abi", "nosuch"], ["nosuch", "mainline"]),
])
def test_mount_rejects_bad_options(capsys, tmp_path, argv, words):
    code, out, err = cxlfs_main(capsys, "mount", str(tmp_path), *argv)
    assert code == 1
    assert err.startswith("cxlfs mount: ") and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert not os.path.ismount(tmp_path)


def test_profile_options_parse():
    p = get_profile("sysram-rfc-v4")
    assert p.parse_options({}) == {"sysram_online_type": "system-default"}
    assert p.parse_options({"sysram_online_type": "normal", "block_size": "2G",
                            "auto_online_blocks": "online"}) == {"sysram_online_type": "normal"}
    for name in NAMES:
        if name != "sysram-rfc-v4":
            assert get_profile(name).parse_options({"block_size": "1G"}) == {}
    with pytest.raises(ValueError, match="nosuch"):
        get_profile("nosuch")


# ==== wrong orders, in process ====================================================================

@pytest.mark.parametrize("profile", ["explicit-driver-v1", "dax-online-type-v5"])
def test_explicit_driver_wrong_orders(profile):
    k = boot(profile)
    r = new_region(k, "decoder0.1")
    for drv in ("cxl_sysram_region", "cxl_devdax_region"):
        assert k.errno_of(f"{DRV}/{drv}/bind", r) == errno.ENXIO, drv          # not committed
    p = new_region(k, "decoder0.3", "pmem")
    for drv in ("cxl_sysram_region", "cxl_devdax_region"):
        assert k.errno_of(f"{DRV}/{drv}/bind", p) == errno.ENODEV, drv         # not RAM
    k.echo(f"{CXL}/decoder0.1/delete_region", r)
    r = make_ram_region(k, bind="cxl_sysram_region")
    s = f"sysram_{r}"
    assert k.cat(f"{CXL}/{s}/uevent") == "DEVTYPE=cxl_sysram_region\nMODALIAS=cxl:t10\n"     # unbound
    assert k.mode(f"{CXL}/{s}/online_type") == 0o644
    assert k.val(f"{CXL}/{s}/online_type") == "invalid"
    assert k.errno_of(f"{DRV}/cxl_dax_kmem_region/bind", s) == errno.ENODEV      # online_type unset
    for bad in ("online_kernel", "bogus", "Online", " online", "online_movable2", "invalid"):
        assert k.errno_of(f"{CXL}/{s}/online_type", bad) == errno.EINVAL, bad
    assert k.val(f"{CXL}/{s}/online_type") == "invalid"
    assert k.errno_of(f"{DRV}/cxl_dax_kmem_region/bind", s) == errno.ENODEV
    k.echo(f"{CXL}/{s}/online_type", "online_movable\n")
    assert k.val(f"{CXL}/{s}/online_type") == "online_movable"
    k.echo(f"{DRV}/cxl_dax_kmem_region/bind", s)
    assert zones(k, r) == {("online", "Movable")}
    assert k.errno_of(f"{DRV}/cxl_dax_kmem_region/bind", s) == errno.EBUSY       # bound already
    assert k.errno_of(f"{CXL}/{s}/online_type", "online") == errno.EBUSY        # fixed while bound
    assert k.errno_of(f"{DRV}/cxl_sysram_region/bind", r) == errno.EBUSY
    assert k.errno_of(f"{DRV}/cxl_region/bind", r) == errno.EBUSY
    # the hierarchy regionN -> sysram_regionN -> dax_regionN -> daxN.0
    assert k.path(f"/bus/dax/devices/dax{r[6:]}.0") == \
        f"/devices/platform/cxl_acpi.0/root0/decoder0.1/{r}/{s}/dax_region{r[6:]}/dax{r[6:]}.0"


@pytest.mark.parametrize("profile", ["explicit-driver-v1", "dax-online-type-v5"])
def test_explicit_online_type_overrides_the_policy(profile):
    k = boot(profile, auto_online_blocks="online_movable")
    r = make_ram_region(k, bind="cxl_sysram_region")
    k.echo(f"{CXL}/sysram_{r}/online_type", "online")
    k.echo(f"{DRV}/cxl_dax_kmem_region/bind", f"sysram_{r}")
    assert zones(k, r) == {("online", "Normal")}          # MMOP_ONLINE: Normal on a fresh CXL node


def test_sysram_rfc_v4_hotplug_rules():
    k = boot("sysram-rfc-v4")
    r = make_ram_region(k)
    s = f"sysram_{r}"
    assert k.mode(f"{CXL}/{s}/hotplug") == 0o200
    assert k.cat(f"{CXL}/{s}/uevent") == "DEVTYPE=cxl_sysram\nDRIVER=cxl_sysram\nMODALIAS=cxl:t10\n"
    assert not k.exists(f"{CXL}/dax_region{r[6:]}")                      # no DAX layer
    assert region_blocks(k, r) == []                                    # auto_online_blocks=offline
    assert k.echo(f"{CXL}/{s}/hotplug", "offline") == 7                 # nothing added: a no-op
    for bad in ("bogus", "Online", "online_movable2", "unplug"):
        assert k.errno_of(f"{CXL}/{s}/hotplug", bad) == errno.EINVAL, bad
    k.echo(f"{CXL}/{s}/hotplug", "online_kernel\n")
    assert zones(k, r) == {("online", "Normal")}
    for again in ("online", "online_kernel", "online_movable"):
        assert k.errno_of(f"{CXL}/{s}/hotplug", again) == errno.EBUSY, again
    k.echo(f"{CXL}/{s}/hotplug", "offline")
    assert region_blocks(k, r) == []
    k.echo(f"{CXL}/{s}/hotplug", "online_movable")
    assert zones(k, r) == {("online", "Movable")}


def test_sysram_rfc_v4_enospc_in_process():
    k = boot("sysram-rfc-v4", block_size="2G")
    r = make_ram_region(k, root="decoder0.5", mems=("mem10",), size=256 << 20)
    assert k.errno_of(f"{CXL}/sysram_{r}/hotplug", "online") == errno.ENOSPC
    assert region_blocks(k, r) == []


@pytest.mark.parametrize("options,want", [
    ({"sysram_online_type": "movable"}, {("online", "Movable")}),
    ({"sysram_online_type": "normal"}, {("online", "Normal")}),
    ({"sysram_online_type": "offline", "auto_online_blocks": "online_movable"}, set()),
    ({"auto_online_blocks": "online_movable"}, {("online", "Movable")}),     # system-default
    ({"auto_online_blocks": "offline"}, set()),
])
def test_sysram_rfc_v4_kconfig_default_decides_probe(options, want):
    k = boot("sysram-rfc-v4", **options)
    r = make_ram_region(k)
    assert zones(k, r) == want
    if want:
        assert k.errno_of(f"{CXL}/sysram_{r}/hotplug", "online_movable") == errno.EBUSY


def test_design_sketch_wrong_orders():
    k = boot("design-sketch")
    assert k.errno_of(f"{DRV}/sysram_region/bind", new_region(k, "decoder0.1")) == errno.ENXIO
    k.echo(f"{CXL}/decoder0.1/delete_region", "region1")
    r = make_ram_region(k, bind="sysram_region")
    d = f"dax_region{r[6:]}"
    assert k.val(f"{CXL}/{d}/hotplug") == "invalid"
    assert not k.is_bound(d)
    assert k.errno_of(f"{DRV}/dax_region/bind", d) == errno.ENODEV           # hotplug unset
    for bad in ("bogus", "online_kernel", "default", "invalid"):
        assert k.errno_of(f"{CXL}/{d}/hotplug", bad) == errno.EINVAL, bad
    k.echo(f"{CXL}/{d}/hotplug", "online_movable")
    k.echo(f"{DRV}/dax_region/bind", d)
    assert zones(k, r) == {("online", "Movable")}
    assert k.errno_of(f"{CXL}/{d}/hotplug", "online") == errno.EBUSY          # fixed while bound
    assert k.errno_of(f"{DRV}/dax_region/bind", d) == errno.EBUSY
    # the mainline way: cxl_region -> dax_regionN bound at once with the system default
    r2 = make_ram_region(k, root="decoder0.5", mems=("mem10",), size=256 << 20)
    d2 = f"dax_region{r2[6:]}"
    assert k.val(f"{CXL}/{d2}/hotplug") == "default"
    assert k.is_bound(d2) and k.readlink(f"{CXL}/{d2}/driver").endswith("drivers/dax_region")
    assert len(region_blocks(k, r2)) == 2
    assert zones(k, r2) == {("offline", "Normal Movable")}                    # policy: offline


# ==== the documented flows, with the real shell and tools =========================================

# per profile: extra wrong orders after the example flow ran (tools/examples/common.sh helpers),
# the zones the example's expect_online lines must report, how many writes the extras refuse
EXTRA = {
    "mainline": ("", ["Movable"], 0),
    "explicit-driver-v1": ("""
        refuse "Device or resource busy" online $CXL/sysram_region1/online_type
        refuse "Device or resource busy" sysram_region1 /sys/bus/cxl/drivers/cxl_dax_kmem_region/bind
        r=$(cat $CXL/decoder0.5/create_ram_region); echo $r > $CXL/decoder0.5/create_ram_region
        refuse "No such device or address" $r /sys/bus/cxl/drivers/cxl_sysram_region/bind
        refuse "No such device or address" $r /sys/bus/cxl/drivers/cxl_devdax_region/bind
        p=$(cat $CXL/decoder0.3/create_pmem_region); echo $p > $CXL/decoder0.3/create_pmem_region
        refuse "No such device" $p /sys/bus/cxl/drivers/cxl_sysram_region/bind
        echo $r > $CXL/decoder0.5/delete_region; echo $p > $CXL/decoder0.3/delete_region
    """, ["Movable"], 5),
    "dax-online-type-v5": ("""
        refuse "Device or resource busy" online_movable $CXL/sysram_region5/online_type
        refuse "Device or resource busy" sysram_region5 /sys/bus/cxl/drivers/cxl_dax_kmem_region/bind
        refuse "Device or resource busy" region1 /sys/bus/cxl/drivers/cxl_sysram_region/bind
        r=$(cat $CXL/decoder0.5/create_ram_region); echo $r > $CXL/decoder0.5/create_ram_region
        refuse "No such device or address" $r /sys/bus/cxl/drivers/cxl_devdax_region/bind
        echo $r > $CXL/decoder0.5/delete_region
    """, ["Movable", "Normal"], 4),
    "sysram-rfc-v4": ("""
        put offline $CXL/sysram_region1/hotplug
        put offline $CXL/sysram_region1/hotplug
        expect_no_blocks region1
        if cat $CXL/sysram_region1/hotplug 2>/dev/null; then echo "FAIL: hotplug readable" >&2; exit 1; fi
        put online_movable $CXL/sysram_region1/hotplug
        expect_online region1 Movable
    """, ["Movable", "Normal"], 0),
    "design-sketch": ("""
        refuse "Device or resource busy" online $CXL/dax_region1/hotplug
        refuse "Device or resource busy" dax_region1 /sys/bus/cxl/drivers/dax_region/bind
        r=$(cat $CXL/decoder0.5/create_ram_region); echo $r > $CXL/decoder0.5/create_ram_region
        refuse "No such device or address" $r /sys/bus/cxl/drivers/sysram_region/bind
        echo $r > $CXL/decoder0.5/delete_region
    """, ["Movable"], 3),
}


@pytest.mark.clients
@pytest.mark.fuse
@pytest.mark.root
@pytest.mark.parametrize("abi_mount", [(p,) for p in NAMES], ids=NAMES, indirect=True)
def test_example_flow_and_tools(abi_mount, request):
    profile = request.node.callspec.params["abi_mount"][0]
    extra, want_zones, refusals = EXTRA[profile]
    script = f"source {EXAMPLES}/common.sh\n{extra}\necho EXTRA-OK"
    flow, wrong, cxl_list, dax_list = run_batch(abi_mount, [
        [str(EXAMPLES / f"{profile}.sh")], ["bash", "-c", script],
        ["cxl", "list", "-vvi"], ["daxctl", "list", "-iRDM"]])
    out = ok(flow)
    summaries = [line for line in out.splitlines() if line.startswith("+ ") and " blocks of region" in line]
    assert [line.split(" online in ")[1].split()[0] for line in summaries] == want_zones
    assert "FAIL" not in out + flow.stderr
    assert ok(wrong).rstrip().endswith("EXTRA-OK"), wrong.stdout
    assert wrong.stdout.count("  refused: ") == refusals, wrong.stdout
    assert "FAIL" not in wrong.stdout + wrong.stderr
    if profile == "sysram-rfc-v4":
        assert "no memory blocks left for region1" in wrong.stdout
        assert "blocks of region1 online in Movable" in wrong.stdout
    # the real tools list whatever the profile built, as valid JSON
    data = parse_cxl_json(ok(cxl_list))
    regions = {r["region"] for r in collect(data, "region")}
    assert {"region0", "region1"} <= regions, regions
    dax = ok(dax_list).strip()
    parsed = json.loads(dax) if dax else []          # daxctl prints nothing when nothing matches
    assert isinstance(parsed, (list, dict))
    if profile != "sysram-rfc-v4":                   # the proposal has no DAX layer for RAM
        assert "dax1.0" in dax


@pytest.mark.clients
@pytest.mark.fuse
@pytest.mark.root
@pytest.mark.parametrize("abi_mount,want", [(("explicit-driver-v1",), "offline"),
                                            (("dax-online-type-v5",), "online")],
                         ids=["explicit-driver-v1", "dax-online-type-v5"], indirect=["abi_mount"])
def test_online_type_recorded_at_creation_or_at_kmem_bind(abi_mount, want):
    """A device-dax region made while auto_online_blocks=offline, the policy switched to
    online_movable, then daxctl hands the device to kmem without onlining: v1 recorded the
    policy at creation (offline), v5 resolves it when kmem binds (online, Movable)."""
    script = f"""
        set -e
        source {EXAMPLES}/common.sh
        echo offline > /sys/devices/system/memory/auto_online_blocks
        r=$({TOOLS}/cxl-ram-region -b cxl_devdax_region -d decoder0.1 mem2 mem1)
        echo "== driver $(basename $(readlink /sys/bus/dax/devices/dax1.0/driver))"
        echo online_movable > /sys/devices/system/memory/auto_online_blocks
        daxctl reconfigure-device --mode=system-ram --no-online -f dax1.0 >/dev/null
        echo "== driver $(basename $(readlink /sys/bus/dax/devices/dax1.0/driver))"
        for b in $(region_blocks $r); do echo "$b $(cat $MEM/$b/state) $(cat $MEM/$b/valid_zones)"; done
    """
    (proc,) = run_batch(abi_mount, [["bash", "-c", script]])
    out = ok(proc).splitlines()
    assert [line for line in out if line.startswith("== driver")] == ["== driver device_dax", "== driver kmem"]
    blocks = [line.split(None, 2) for line in out if line.startswith("memory")]
    assert len(blocks) == 16
    if want == "offline":
        assert {state for _, state, _ in blocks} == {"offline"}
    else:
        assert {(state, zone) for _, state, zone in blocks} == {("online", "Movable")}


@pytest.mark.clients
@pytest.mark.fuse
@pytest.mark.root
@pytest.mark.parametrize("abi_mount", [("sysram-rfc-v4", "block_size=2G")], indirect=True)
def test_sysram_rfc_v4_hotplug_enospc(abi_mount):
    script = f"""
        source {EXAMPLES}/common.sh
        r=$({TOOLS}/cxl-ram-region -d decoder0.5 -s 256M mem10)
        echo "== region $r $(cat $MEM/block_size_bytes)"
        refuse "No space left on device" online $CXL/sysram_$r/hotplug
        refuse "No space left on device" online_movable $CXL/sysram_$r/hotplug
        expect_no_blocks $r
    """
    (proc,) = run_batch(abi_mount, [["bash", "-c", script]])
    out = ok(proc)
    assert "== region region5 80000000" in out
    assert out.count("refused: No space left on device") == 2


@pytest.mark.clients
@pytest.mark.fuse
@pytest.mark.root
@pytest.mark.parametrize("abi_mount", [("sysram-rfc-v4", "sysram_online_type=movable")], indirect=True)
def test_sysram_rfc_v4_movable_kconfig_hot_adds_at_probe(abi_mount):
    script = f"""
        source {EXAMPLES}/common.sh
        expect_online region0 Movable                      # the boot-time region, too
        r=$({TOOLS}/cxl-ram-region -d decoder0.1 mem2 mem1)
        expect_online $r Movable                           # no write to hotplug
        refuse "Device or resource busy" online $CXL/sysram_$r/hotplug
    """
    (proc,) = run_batch(abi_mount, [["bash", "-c", script]])
    out = ok(proc)
    assert "4 blocks of region0 online in Movable" in out
    assert "16 blocks of region1 online in Movable" in out
