"""Environment that keeps ROS 2 / Fast DDS traffic on this machine.

Used by the tests and the demo: discovery limited to localhost, a Fast DDS profile with a
16 MB shared-memory segment plus UDPv4 on the loopback interface only (built-in transports
off), and a ROS domain id unique to the calling process so parallel runs do not meet.
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

from lsm_tools.paths import config_file

FASTDDS_PROFILE_NAME = "fastdds_loopback.xml"


def unique_domain_id(seed: Optional[int] = None) -> int:
    """A ROS_DOMAIN_ID in [1, 231] derived from ``seed`` (default: this process id).

    Fast DDS maps domain ids above 232 to invalid UDP ports; 0 (everyone's default) is
    avoided.
    """
    seed = os.getpid() if seed is None else seed
    return 1 + seed % 231


def loopback_dds_environment(domain_id: Optional[int] = None,
                             base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with the loopback-only DDS settings."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(unique_domain_id() if domain_id is None else domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(config_file(FASTDDS_PROFILE_NAME))
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; conflicts with the range above
    return env
