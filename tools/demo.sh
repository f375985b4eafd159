#!/usr/bin/env bash
# The scripted demo `make demo` runs inside `cxlfs exec`: the real cxl and daxctl against
# the cxl_test topology, from listing to CXL memory online in its own NUMA node.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; }

run cxl list -b cxl_test -M -u | head -20
echo "   ... ($(cxl list -M | grep -c '"memdev"') memdevs)"
run cxl list -R -u
run daxctl list -R -D
step "$here/cxl-ram-region -d decoder0.1 mem2 mem1    # create, commit, bind a 2 GiB x2 RAM region"
region=$("$here/cxl-ram-region" -d decoder0.1 mem2 mem1)
id=${region#region}
run cxl list -r "$region" -T -u
run daxctl online-memory "dax$id.0"
run daxctl list -d "dax$id.0"
node=$(cat "/sys/bus/dax/devices/dax$id.0/target_node")
run head -3 "/sys/devices/system/node/node$node/meminfo"
run cat /sys/devices/system/node/has_memory
step "cat /sys/devices/system/memory/memory*/valid_zones for dax$id.0 | sort | uniq -c"
for b in /sys/devices/system/node/node$node/memory*; do cat "$b/valid_zones"; done | sort | uniq -c
run daxctl offline-memory "dax$id.0"
run cxl destroy-region -f "$region"
run cxl list -R
