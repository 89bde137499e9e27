"""lsm: the pure-torch core of lsm_ros (no ROS imports anywhere in this package).

    from lsm import Perception
    perception = Perception.load()                   # the embedded default model
    rec = perception.reconstruct([(img0, img1)])[0]  # RGB uint8 (H, W, 3) images
    cloud = perception.point_cloud(rec)              # labelled points, reference frame
    hit = perception.query(rec, "couch", vocabulary=["sofa", "chair", "floor", "wall"])

:class:`~lsm.perception.Perception` is the one entry point; its results
(:mod:`lsm.results`) are plain data. Subpackages: ``model`` (network), ``rendering``
(Gaussian rasterisation), ``geometry`` (pointmaps, camera recovery), ``semantics`` (text
encoders, label maps, query relevance), ``io`` (PLY and scene files).
"""
from .config import LSMConfig, get_config

__all__ = ["LSMConfig", "OutputSpec", "Perception", "Reconstruction", "WeightSources",
           "get_config"]


def __getattr__(name):  # lazy: importing lsm stays cheap (no torch until needed)
    if name == "Perception":
        from .perception import Perception

        return Perception
    if name in ("OutputSpec", "WeightSources"):
        from . import specs

        return getattr(specs, name)
    if name == "Reconstruction":
        from .results import Reconstruction

        return Reconstruction
    raise AttributeError(name)
