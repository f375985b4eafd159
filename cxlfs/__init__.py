"""cxlfs: a fake sysfs for the Linux CXL, DAX and memory-hotplug ABI."""
__version__ = "0.1.0"
