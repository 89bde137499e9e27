"""lsm: the pure-torch core of lsm_ros (no ROS imports anywhere in this package).

    from lsm import LSM
    model = LSM.load()                      # the embedded default model
    rec = model.reconstruct(img1, img2)     # RGB uint8 (H, W, 3) images
    ids, score = rec.label_map(["chair", "table", "floor"])
    hit = rec.query("couch", vocabulary=["sofa", "chair", "floor", "wall"])
    rec.save_ply("gaussians.ply")

Subpackages: ``model`` (network), ``rendering`` (Gaussian rasterisation), ``geometry``
(pointmaps, camera recovery), ``semantics`` (text encoders, label maps), ``data``
(procedural scenes, datasets), ``training``, ``evaluation``, ``io``.
"""
from .config import LSMConfig, get_config

__all__ = ["LSM", "LSMConfig", "Reconstruction", "get_config"]


def __getattr__(name):  # lazy: importing lsm stays cheap
    if name == "LSM":
        from .model.lsm import LSM

        return LSM
    if name == "Reconstruction":
        from .reconstruction import Reconstruction

        return Reconstruction
    raise AttributeError(name)
