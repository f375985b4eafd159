#!/usr/bin/env bash
# "[PATCH v5 6/9] dax: plumb hotplug online_type through dax" (Jun 2026): a dax device made
# with the default online type takes the policy in force when kmem binds, not at creation;
# the sysram path's explicit online_type overrides the policy.
#   cxlfs mount --abi dax-online-type-v5 M; cxlfs exec M -- tools/examples/dax-online-type-v5.sh
source "$(dirname "$0")/common.sh"
policy=/sys/devices/system/memory/auto_online_blocks
put offline $policy
# 1. device-dax first (policy offline), policy changed, then kmem binds: the new policy wins
region=$(make_region cxl_devdax_region -d decoder0.1 mem2 mem1)
id=${region#region}
put online_movable $policy
say "daxctl reconfigure-device --mode=system-ram --no-online -f dax$id.0"
daxctl reconfigure-device --mode=system-ram --no-online -f "dax$id.0" >/dev/null
expect_online "$region" Movable
# 2. the explicit type from sysram_region overrides the policy
put offline $policy
region2=$(make_region none -d decoder0.5 -s 256M mem10)
put "$region2" /sys/bus/cxl/drivers/cxl_sysram_region/bind
put online /sys/bus/cxl/devices/sysram_$region2/online_type
put "sysram_$region2" /sys/bus/cxl/drivers/cxl_dax_kmem_region/bind
expect_online "$region2" Normal
