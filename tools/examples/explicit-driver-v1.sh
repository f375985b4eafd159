#!/usr/bin/env bash
# "[PATCH 0/9] cxl: explicit DAX driver selection and hotplug" (Jan 2026), documented flow.
#   cxlfs mount --abi explicit-driver-v1 M; cxlfs exec M -- tools/examples/explicit-driver-v1.sh
source "$(dirname "$0")/common.sh"
[ $# -gt 0 ] || set -- -d decoder0.1 mem2 mem1
region=$(make_region none "$@")
put "$region" /sys/bus/cxl/drivers/cxl_sysram_region/bind
refuse "No such device" "sysram_$region" /sys/bus/cxl/drivers/cxl_dax_kmem_region/bind
refuse "Invalid argument" online_kernel "$CXL/sysram_$region/online_type"
put online_movable "$CXL/sysram_$region/online_type"
put "sysram_$region" /sys/bus/cxl/drivers/cxl_dax_kmem_region/bind
expect_online "$region" Movable
