"""ROS 2 layer of lsm_ros: the ``lsm_node`` node, its parameters and message helpers.

Everything that imports rclpy or ROS message types lives here; the model itself is in
the pure-torch package ``lsm``.
"""
