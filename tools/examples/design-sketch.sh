#!/usr/bin/env bash
# The design sketch from the Jan-Mar 2026 list discussion:
#   echo regionN > drivers/sysram_region/bind; echo online_movable > devices/dax_regionN/hotplug;
#   echo dax_regionN > drivers/dax_region/bind
#   cxlfs mount --abi design-sketch M; cxlfs exec M -- tools/examples/design-sketch.sh
source "$(dirname "$0")/common.sh"
[ $# -gt 0 ] || set -- -d decoder0.1 mem2 mem1
region=$(make_region none "$@")
id=${region#region}
put "$region" /sys/bus/cxl/drivers/sysram_region/bind
refuse "No such device" "dax_region$id" /sys/bus/cxl/drivers/dax_region/bind
put online_movable "$CXL/dax_region$id/hotplug"
put "dax_region$id" /sys/bus/cxl/drivers/dax_region/bind
expect_online "$region" Movable
