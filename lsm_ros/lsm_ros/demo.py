"""``lsm_demo`` (``make demo``): start lsm_node, ask it where a label is, print the answer.

Runs two processes over real DDS, kept on this machine (see lsm_ros.dds_env): the node
from its console script with config/lsm.yaml, and this client.  Exit status 0 when the
node answered with a well-formed response, 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

from lsm_ros.dds_env import loopback_dds_environment
from lsm_ros.paths import config_file


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--label", default="chair", help="class to look for (default: chair)")
    p.add_argument("--params-file", default=None, help="node parameters (default: "
                   "config/lsm.yaml of the package)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for answers")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    params = Path(args.params_file) if args.params_file else config_file("lsm.yaml")
    env = loopback_dds_environment()
    os.environ.update(env)  # this client must be on the same (private) DDS domain
    log_dir = Path(tempfile.mkdtemp(prefix="lsm_demo_"))
    log_path = log_dir / "lsm_node.log"

    import rclpy
    from lsm_ros.query_client import call_query, describe_response, start_lsm_node, stop_process

    print(f"lsm_demo: starting lsm_node with {params} (ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, "
          f"log {log_path})", flush=True)
    proc = start_lsm_node(params, env=env, log_path=log_path)
    rclpy.init(args=[])
    node = rclpy.create_node("lsm_demo_client")
    status = 1
    try:
        response = call_query(node, args.label, timeout=args.timeout, server_process=proc)
        print(f"lsm_demo: /lsm/query label={args.label!r} answered:")
        print(describe_response(response))
        status = 0 if (response.success or response.message) else 1
    except (TimeoutError, RuntimeError) as exc:
        print(f"lsm_demo: FAILED: {exc}", file=sys.stderr)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        code = stop_process(proc)
        print(f"lsm_demo: lsm_node exited with status {code}", flush=True)
        if status != 0 or code != 0:
            print(log_path.read_text(errors="replace"), file=sys.stderr)
    return status if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
