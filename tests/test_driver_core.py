"""Driver-core semantics (kernel-abi.md §0.2-§0.4, §11): bind / unbind / drivers_probe /
drivers_autoprobe, driver links, uevent files and synthetic uevents."""
from __future__ import annotations

import errno

import pytest

CXL = "/bus/cxl"
DEV = "/bus/cxl/devices"
UUID = "0f0e0d0c-0b0a-0908-0706-050403020100"


# ---- bind ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["nosuch", "mem99", "mem", "", "\n", "mem0\n\n", " mem0", "MEM0"])
def test_bind_unknown_device_is_enodev(k, name):
    k.echo(f"{CXL}/drivers/cxl_mem/unbind", "mem1")     # an unbound candidate exists
    assert k.errno_of(f"{CXL}/drivers/cxl_mem/bind", name or b"\0") == errno.ENODEV


@pytest.mark.parametrize("drv,dev", [("cxl_port", "mem0"), ("cxl_region", "mem0"),
                                     ("cxl_mem", "port1"), ("cxl_port", "decoder0.0"),
                                     ("cxl_port", "root0"), ("cxl_nvdimm", "mem0")])
def test_bind_non_matching_driver_is_enodev_even_when_bound(k, drv, dev):
    # the match test comes before the "already bound" test
    assert k.errno_of(f"{CXL}/drivers/{drv}/bind", dev) == errno.ENODEV


def test_bind_non_matching_driver_is_enodev_when_unbound(k):
    k.echo(f"{CXL}/drivers/cxl_mem/unbind", "mem1")
    assert k.errno_of(f"{CXL}/drivers/cxl_port/bind", "mem1") == errno.ENODEV
    assert not k.is_bound("mem1")


@pytest.mark.parametrize("data", ["mem0", "mem0\n", b"mem0\0", b"mem0\n\0"])
def test_bind_already_bound_is_ebusy(k, data):
    assert k.errno_of(f"{CXL}/drivers/cxl_mem/bind", data) == errno.EBUSY


def test_bind_success_returns_count_and_creates_links(k, kernel):
    k.echo(f"{CXL}/drivers/cxl_mem/unbind", "mem1")
    kernel.drain_uevents()
    assert k.echo(f"{CXL}/drivers/cxl_mem/bind", b"mem1\0") == 5
    assert k.readlink(f"{DEV}/mem1/driver").endswith("bus/cxl/drivers/cxl_mem")
    assert k.path(f"{CXL}/drivers/cxl_mem/mem1") == k.path(f"{DEV}/mem1")
    actions = [(e.action, e.devpath.rsplit("/", 1)[-1]) for e in kernel.drain_uevents()]
    assert ("bind", "mem1") in actions
    assert ("add", k.port_by_uport("mem1")) in actions


def test_bind_probe_error_is_returned(k):
    # cxl_mem probe fails with ENXIO when a port above the memdev is disabled
    k.echo(f"{CXL}/drivers/cxl_port/unbind", "port2")
    assert not k.is_bound("mem1")
    assert k.errno_of(f"{CXL}/drivers/cxl_mem/bind", "mem1") == errno.ENXIO
    assert not k.is_bound("mem1")
    assert not k.exists(f"{DEV}/mem1/driver")


def test_bind_uncommitted_region_is_enxio(k):
    name = k.val(f"{DEV}/decoder0.1/create_ram_region")
    k.echo(f"{DEV}/decoder0.1/create_ram_region", name)
    assert k.errno_of(f"{CXL}/drivers/cxl_region/bind", name) == errno.ENXIO
    assert not k.is_bound(name)


def test_drivers_without_bind_attrs(k):
    for drv in ("cxl_nvdimm_bridge", "cxl_pmem_region"):
        files = k.ls(f"{CXL}/drivers/{drv}")
        assert "bind" not in files and "unbind" not in files, drv
        assert "uevent" in files
    for drv in ("cxl_mem", "cxl_port", "cxl_region"):
        assert {"bind", "unbind", "uevent"} <= set(k.ls(f"{CXL}/drivers/{drv}")), drv


# ---- unbind ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["nosuch", "mem99", "", "mem1\n\n"])
def test_unbind_unknown_is_enodev(k, name):
    assert k.errno_of(f"{CXL}/drivers/cxl_mem/unbind", name or b"\0") == errno.ENODEV


@pytest.mark.parametrize("drv,dev", [("cxl_port", "mem1"), ("cxl_mem", "port1"),
                                     ("cxl_region", "mem1"), ("cxl_mem", "root0")])
def test_unbind_bound_to_other_driver_is_enodev(k, drv, dev):
    assert k.errno_of(f"{CXL}/drivers/{drv}/unbind", dev) == errno.ENODEV


def test_unbind_unbound_device_is_enodev(k):
    k.echo(f"{CXL}/drivers/cxl_mem/unbind", "mem1")
    assert k.errno_of(f"{CXL}/drivers/cxl_mem/unbind", "mem1") == errno.ENODEV


def test_unbind_success_removes_links_and_driver_from_uevent(k, kernel):
    assert "DRIVER=cxl_mem\n" in k.cat(f"{DEV}/mem1/uevent")
    ep = k.port_by_uport("mem1")
    kernel.drain_uevents()
    assert k.echo(f"{CXL}/drivers/cxl_mem/unbind", b"mem1\n\0") == 6
    assert not k.exists(f"{DEV}/mem1/driver")
    assert not k.exists(f"{CXL}/drivers/cxl_mem/mem1")
    assert "DRIVER=" not in k.cat(f"{DEV}/mem1/uevent")
    assert not k.exists(f"{DEV}/{ep}")
    actions = [(e.action, e.devpath.rsplit("/", 1)[-1]) for e in kernel.drain_uevents()]
    assert ("unbind", "mem1") in actions
    assert ("remove", ep) in actions


def test_unbind_through_the_driver_link(k):
    # util_unbind writes the name to <dev>/driver/unbind; the name picks the device
    k.echo(f"{DEV}/mem1/driver/unbind", b"mem1\0")
    assert not k.is_bound("mem1")
    assert k.errno_of(f"{DEV}/mem3/driver/unbind", b"mem1\0") == errno.ENODEV
    assert k.is_bound("mem3")


# ---- drivers_probe -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["nosuch", "mem99", "\n"])
def test_drivers_probe_unknown_is_enodev(k, name):
    assert k.errno_of(f"{CXL}/drivers_probe", name) == errno.ENODEV


def test_drivers_probe_bound_device_succeeds(k):
    assert k.echo(f"{CXL}/drivers_probe", "mem0\n") == 5
    assert k.is_bound("mem0")


def test_drivers_probe_binds_unbound_device(k):
    k.echo(f"{CXL}/drivers/cxl_mem/unbind", "mem1")
    assert k.echo(f"{CXL}/drivers_probe", b"mem1\0") == 5
    assert k.is_bound("mem1")
    assert k.port_by_uport("mem1") is not None


@pytest.mark.parametrize("name", ["decoder0.0", "root0", "decoder1.3"])
def test_drivers_probe_without_matching_driver_succeeds(k, name):
    assert k.echo(f"{CXL}/drivers_probe", name) == len(name)
    assert not k.is_bound(name)


def test_drivers_probe_ignores_autoprobe_off(k):
    # drivers_probe is an explicit attach: it works with drivers_autoprobe = 0
    k.echo(f"{CXL}/drivers/cxl_port/unbind", "port2")
    k.echo(f"{CXL}/drivers_autoprobe", "0")
    assert k.echo(f"{CXL}/drivers_probe", "port2") == 5
    assert k.is_bound("port2")
    assert k.ls(f"{DEV}/port2").count("dport1") == 1


def test_drivers_probe_failing_probe_still_succeeds(k):
    k.echo(f"{CXL}/drivers/cxl_port/unbind", "port2")
    assert k.echo(f"{CXL}/drivers_probe", "mem1") == 4
    assert not k.is_bound("mem1")


# ---- drivers_autoprobe -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value,on", [("0", False), ("0\n", False), ("0abc", False), (b"0\0", False),
                                      ("1", True), ("yes", True), ("x", True), ("\n", True),
                                      ("2", True), ("off", True), ("n", True), (" 0", True)])
def test_drivers_autoprobe_only_leading_0_turns_it_off(k, value, on):
    k.echo(f"{CXL}/drivers_autoprobe", "0" if on else "1")     # start from the other state
    n = k.echo(f"{CXL}/drivers_autoprobe", value)
    assert n == len(value)
    assert k.cat(f"{CXL}/drivers_autoprobe") == ("1\n" if on else "0\n")


def test_drivers_autoprobe_default_on(k):
    assert k.cat(f"{CXL}/drivers_autoprobe") == "1\n"
    assert k.cat("/bus/platform/drivers_autoprobe") == "1\n"


def test_autoprobe_off_leaves_new_endpoint_unbound(k):
    # cxl_mem adds the endpoint port and needs it bound by autoprobe: otherwise ENXIO
    k.echo(f"{CXL}/drivers/cxl_mem/unbind", "mem1")
    k.echo(f"{CXL}/drivers_autoprobe", "0")
    assert k.errno_of(f"{CXL}/drivers/cxl_mem/bind", "mem1") == errno.ENXIO
    assert not k.is_bound("mem1")
    k.echo(f"{CXL}/drivers_autoprobe", "1")
    k.echo(f"{CXL}/drivers/cxl_mem/bind", "mem1")
    assert k.is_bound("mem1")


# ---- uevent files -------------------------------------------------------------------------------------------

def test_uevent_of_bound_memdev(k, kernel):
    assert k.cat(f"{DEV}/mem0/uevent") == (
        f"MAJOR={kernel.majors.cxl}\nMINOR=0\nDEVNAME=cxl/mem0\nDEVTYPE=cxl_memdev\n"
        "DRIVER=cxl_mem\nMODALIAS=cxl:t5\n")


def test_uevent_of_unbound_memdev(k, kernel):
    k.echo(f"{CXL}/drivers/cxl_mem/unbind", "mem7")
    assert k.cat(f"{DEV}/mem7/uevent") == (
        f"MAJOR={kernel.majors.cxl}\nMINOR=7\nDEVNAME=cxl/mem7\nDEVTYPE=cxl_memdev\nMODALIAS=cxl:t5\n")


@pytest.mark.parametrize("dev,text", [
    ("root0", "DEVTYPE=cxl_port\nMODALIAS=cxl:t4\n"),
    ("port1", "DEVTYPE=cxl_port\nDRIVER=cxl_port\nMODALIAS=cxl:t3\n"),
    ("decoder0.0", "DEVTYPE=cxl_decoder_root\nMODALIAS=cxl:t0\n"),
    ("decoder1.0", "DEVTYPE=cxl_decoder_switch\nMODALIAS=cxl:t0\n"),
    ("nvdimm-bridge0", "DEVTYPE=cxl_nvdimm_bridge\nDRIVER=cxl_nvdimm_bridge\nMODALIAS=cxl:t1\n"),
])
def test_uevent_of_cxl_devices(k, dev, text):
    assert k.cat(f"{DEV}/{dev}/uevent") == text


def test_uevent_of_endpoint_and_its_decoders(k):
    ep = k.port_by_uport("mem2")
    assert k.cat(f"{DEV}/{ep}/uevent") == "DEVTYPE=cxl_port\nDRIVER=cxl_port\nMODALIAS=cxl:t3\n"
    dec = next(n for n in k.ls(f"{DEV}/{ep}") if n.startswith("decoder") and "." in n)
    assert k.cat(f"{DEV}/{dec}/uevent") == "DEVTYPE=cxl_decoder_endpoint\nMODALIAS=cxl:t0\n"


def test_modalias_and_devtype_files(k):
    assert k.cat(f"{DEV}/port1/modalias") == "cxl:t3\n"
    assert k.cat(f"{DEV}/root0/modalias") == "cxl:t4\n"
    assert k.cat(f"{DEV}/decoder0.0/devtype") == "cxl_decoder_root\n"
    # memN has neither file (uevent still carries DEVTYPE/MODALIAS)
    assert not k.exists(f"{DEV}/mem0/devtype")
    assert not k.exists(f"{DEV}/mem0/modalias")


def test_driver_link_only_while_bound(k):
    assert k.exists(f"{DEV}/port1/driver")
    assert not k.exists(f"{DEV}/root0/driver")
    assert not k.exists(f"{DEV}/decoder0.0/driver")
    k.echo(f"{CXL}/drivers/cxl_port/unbind", "port1")
    assert not k.exists(f"{DEV}/port1/driver")
    k.echo(f"{CXL}/drivers/cxl_port/bind", "port1")
    assert k.exists(f"{DEV}/port1/driver")


def test_no_power_dir_on_cxl_devices(k):
    for dev in ("root0", "port1", "mem0", "decoder0.0"):
        assert not k.exists(f"{DEV}/{dev}/power"), dev
    assert k.exists("/devices/platform/cxl_acpi.0/power")


# ---- synthetic uevents ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("action", ["add", "remove", "change", "move", "online", "offline",
                                    "bind", "unbind"])
def test_synthetic_uevent_every_action(k, kernel, action):
    kernel.drain_uevents()
    assert k.echo(f"{DEV}/mem0/uevent", f"{action}\n") == len(action) + 1
    (ev,) = kernel.drain_uevents()
    assert ev.action == action
    assert ev.subsystem == "cxl"
    assert ev.devpath == k.path(f"{DEV}/mem0")
    props = ev.as_dict()
    assert props["SYNTH_UUID"] == "0"
    assert props["DEVTYPE"] == "cxl_memdev" and props["DRIVER"] == "cxl_mem"


def test_synthetic_uevent_with_uuid_and_args(k, kernel):
    kernel.drain_uevents()
    data = f"change {UUID} A=1 B=two"
    assert k.echo(f"{DEV}/port1/uevent", data.encode() + b"\0") == len(data) + 1
    (ev,) = kernel.drain_uevents()
    props = ev.as_dict()
    assert props["SYNTH_UUID"] == UUID
    assert props["SYNTH_ARG_A"] == "1" and props["SYNTH_ARG_B"] == "two"


@pytest.mark.parametrize("data", ["bogus", "\n", "chang", "changes", "Change", "change notauuid",
                                  f"change {UUID} novalue", f"change {UUID} =1",
                                  f"change {UUID[:-1]}"])
def test_synthetic_uevent_invalid_is_einval(k, kernel, data):
    kernel.drain_uevents()
    assert k.errno_of(f"{DEV}/mem0/uevent", data) == errno.EINVAL
    assert not kernel.drain_uevents()


@pytest.mark.parametrize("path", [f"{CXL}/uevent", f"{CXL}/drivers/cxl_mem/uevent"])
def test_synthetic_uevent_on_bus_and_driver(k, kernel, path):
    kernel.drain_uevents()
    assert k.echo(path, "add") == 3
    (ev,) = kernel.drain_uevents()
    assert ev.action == "add"
    assert k.errno_of(path, "nope") == errno.EINVAL


@pytest.mark.parametrize("data", ["change\n\n", "change ", f"change  {UUID}", f"change\t{UUID}"])
def test_synthetic_uevent_whitespace_quirks_are_einval(k, data):
    assert k.errno_of(f"{DEV}/mem0/uevent", data) == errno.EINVAL


# ---- modules ---------------------------------------------------------------------------------------------

def test_every_driver_links_a_live_module(k):
    """libkmod checks /sys/module/<mod>/initstate before binding; anything but "live" makes the
    tools try to load the real module into the host kernel."""
    for bus in k.ls("/bus"):
        if not k.exists(f"/bus/{bus}/drivers"):
            continue
        for drv in k.ls(f"/bus/{bus}/drivers"):
            link = f"/bus/{bus}/drivers/{drv}/module"
            assert k.exists(link), link
            assert k.readlink(link).startswith("../../../../module/"), link
            assert k.cat(f"{link}/initstate") == "live\n", link
    for mod in ("cxl_core", "cxl_port", "cxl_mem", "cxl_pmem", "cxl_acpi"):
        assert k.cat(f"/module/{mod}/initstate") == "live\n", mod


def test_driver_dir_lists_bound_devices(k):
    names = set(k.ls(f"{CXL}/drivers/cxl_mem"))
    assert {"bind", "unbind", "uevent", "module"} <= names
    assert {f"mem{i}" for i in range(11)} <= names
    assert k.path(f"{CXL}/drivers/cxl_mem/mem4") == k.path(f"{DEV}/mem4")


def test_kernel_path_helpers_follow_directory_links(kernel):
    assert kernel.cat("/bus/cxl/devices/mem0/serial") == "0x1\n"
    assert "serial" in kernel.ls("/bus/cxl/devices/mem0")
    assert kernel.readlink("/bus/cxl/devices/mem0/subsystem").endswith("bus/cxl")


# ---- probe errors (fault injection) -------------------------------------------------------------------------

EPROBE_DEFER = 517


@pytest.mark.parametrize("err,seen", [(EPROBE_DEFER, errno.EAGAIN), (errno.ENOMEM, errno.ENOMEM),
                                      (errno.ENXIO, errno.ENXIO), (errno.EIO, errno.EIO)])
def test_bind_reports_probe_errno_defer_as_eagain(k, kernel, err, seen):
    k.echo(f"{CXL}/drivers/cxl_mem/unbind", "mem1")
    kernel.probe_faults["cxl_mem"] = [err, 1]
    assert k.errno_of(f"{CXL}/drivers/cxl_mem/bind", "mem1") == seen
    assert not k.is_bound("mem1")
    assert k.echo(f"{CXL}/drivers/cxl_mem/bind", "mem1") == 4     # the fault was one-shot
    assert k.is_bound("mem1")


def test_autoprobe_walk_ignores_probe_errors(k, kernel):
    k.echo(f"{CXL}/drivers/cxl_mem/unbind", "mem1")
    kernel.probe_faults["cxl_mem"] = [errno.ENOMEM, -1]
    assert k.echo(f"{CXL}/drivers_probe", "mem1") == 4
    assert not k.is_bound("mem1")
