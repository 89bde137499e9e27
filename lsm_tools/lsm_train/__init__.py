"""lsm_train: training and evaluation of LSM models, and the procedural scenes they use.

Outside the robot package (like VGGT's training/): the runtime (``lsm``, ``lsm_ros``) never
imports it. ``data`` (procedural rooms with true depth, classes and poses; datasets),
``training`` (``lsm-train``, ``lsm-export``), ``evaluation`` (``lsm-eval``, pose errors).
"""
