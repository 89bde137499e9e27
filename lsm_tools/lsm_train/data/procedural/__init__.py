"""Procedural indoor scenes rendered by vectorised ray casting of boxes.

World frame: metres, **z up**, the room spans ``[0, W] x [0, D] x [0, H]`` (floor at z = 0).
Cameras: OpenCV axes (x right, y down, z forward), poses are camera-to-world 4x4; pixel (u, v)
has its centre at (u + 0.5, v + 0.5) and the principal point is the image centre (W/2, H/2).
Depth is the metric z-depth; every pixel hits a surface (the room is closed), so depth is
always valid (> 0).  Classes follow :data:`CLASS_NAMES` (official LSM order).

A room is a closed box (floor, ceiling, four walls) plus 3-10 pieces of furniture, each an
object frame (floor position + yaw) holding axis-aligned box parts.  Rendering tests every
pixel ray against the room and, per object, against the object's bounding box and then its
parts -- all vectorised over pixels; the only Python loops are over objects.  Surfaces carry
procedural textures (checker, stripes, wood planks, value noise) in object/world coordinates,
so texture sticks to the geometry; shading is ambient + point light + a directional light
(Lambertian) with cheap contact/corner darkening.

Modules: ``base`` (class ids, sizes), ``materials``, ``rooms`` (:func:`generate_room`),
``raycast`` (ray-box tests, shadows), ``shading`` (textures, light, :func:`render_view`),
``cameras`` (intrinsics, poses, view sampling, :func:`generate_sample`,
:func:`generate_sequence`). Public entry points are re-exported here.
"""
from .base import (  # noqa: F401
                   BED,
                   CEILING,
                   CHAIR,
                   FLOOR,
                   OTHER,
                   SOFA,
                   TABLE,
                   WALL,
                   SizeLike,
                   parse_size,
)
from .cameras import (  # noqa: F401
                   generate_sample,
                   generate_sequence,
                   intrinsics_from_fov,
                   look_pose,
                   sample_view_triplet,
                   sequence_poses,
)
from .materials import _Materials  # noqa: F401
from .raycast import _occluded  # noqa: F401
from .rooms import ProceduralRoom, RoomObject, generate_room  # noqa: F401
from .shading import RaycastView, camera_rays, render_view  # noqa: F401
