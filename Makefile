# cxlfs: a FUSE-mounted fake sysfs for the Linux CXL / DAX / memory-hotplug ABI.
#
#   make demo    mount the cxl_test topology, run the real cxl/daxctl demo (tools/demo.sh), unmount
#   make test    the test suite (in-process model, FUSE mount, real cxl/daxctl/udev)
#   make shell   a bash where the mount is /sys (exit to unmount)
#   make bench   the performance figures (bench/bench.py)
#
# Variables: PYTHON (interpreter for the venv), PYTEST_ARGS (e.g. "-m 'not clients'"),
# TOPOLOGY (embedded name or TOML file for demo/shell).

PYTHON      ?= python3
VENV        ?= .venv
VPY         := $(VENV)/bin/python
PYTEST_ARGS ?=
TOPOLOGY    ?=
APT_PKGS    := fuse3 libfuse3-dev pkg-config ndctl daxctl udev strace

TOPO_OPT    := $(if $(TOPOLOGY),--topology $(TOPOLOGY),)

.PHONY: all venv deps test test-fast demo shell bench clean

all: test

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q -e '.[test]'
	@touch $@

# Debian packages the FUSE and client tests need; installed only when root and missing.
deps:
	@missing=""; \
	for p in $(APT_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' \
	        || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then \
	    echo "deps: all present ($(APT_PKGS))"; \
	elif [ "$$(id -u)" = 0 ]; then \
	    echo "deps: installing$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else \
	    echo "deps: missing$$missing -- run 'sudo make deps' (FUSE/client tests will be skipped)"; \
	fi

test: venv deps
	$(VPY) -m pytest $(PYTEST_ARGS)

# the in-process tests only (no FUSE, no root)
test-fast: venv
	$(VPY) -m pytest -m 'not fuse and not clients and not root' $(PYTEST_ARGS)

demo: venv deps
	@dir=$$(mktemp -d /tmp/cxlfs-demo.XXXXXX); chmod 755 $$dir; \
	$(VPY) -m cxlfs mount $(TOPO_OPT) $$dir || { rmdir $$dir; exit 1; }; \
	echo "# cxlfs mounted on $$dir; running tools/demo.sh with it as /sys"; \
	$(VPY) -m cxlfs exec $$dir -- tools/demo.sh; rc=$$?; \
	$(VPY) -m cxlfs umount $$dir; rmdir $$dir; exit $$rc

shell: venv deps
	@dir=$$(mktemp -d /tmp/cxlfs-shell.XXXXXX); chmod 755 $$dir; \
	$(VPY) -m cxlfs mount $(TOPO_OPT) $$dir || { rmdir $$dir; exit 1; }; \
	echo "cxlfs mounted on $$dir; this shell sees it as /sys (exit to unmount)"; \
	$(VPY) -m cxlfs exec $$dir -- bash; rc=$$?; \
	$(VPY) -m cxlfs umount $$dir; rmdir $$dir; exit $$rc

bench: venv deps
	$(VPY) bench/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
