"""The NAS-Bench-201 search space: cells, arch strings, networks, benchmark, the plug-in."""
