"""lsm_tools: what sits beside the lsm_node runtime, never imported by it.

``demo`` (``lsm_demo``, the main job), ``bag_replay``/``bag_io`` (``lsm_bag``), ``benchmark``
and ``benchmark_node`` (``lsm-benchmark``), ``render_benchmark``, ``process`` (start a node
process, call its services), ``dds_env`` (loopback-only DDS), ``paths`` (installed config
files), ``reference`` (the generated parameter file and README tables).
"""
