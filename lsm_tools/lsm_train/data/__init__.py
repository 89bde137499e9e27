"""Training/evaluation data: procedural indoor scenes, the sample format, ScanNet-style folders.

* :mod:`.sample`     -- ``ViewSample`` / ``SceneSample`` and the on-disk sample folder format.
* :mod:`.procedural` -- ray-cast procedural rooms with furniture (RGB, z-depth, labels, poses).
* :mod:`.scannet`    -- reader/writer for ScanNet-style export folders.
* :mod:`.dataset`    -- torch ``Dataset`` wrappers and the batch ``collate``.
"""
from .procedural import generate_room, generate_sample, generate_sequence, render_view
from .sample import CLASS_NAMES, IGNORE_LABEL, SceneSample, ViewSample, load_sample, save_sample

__all__ = [
    "CLASS_NAMES", "IGNORE_LABEL", "SceneSample", "ViewSample", "load_sample", "save_sample",
    "generate_room", "generate_sample", "generate_sequence", "render_view",
]
