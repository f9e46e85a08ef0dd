"""ROS 2 nodes: thin shells that wire parameters, topics and services to the pure core."""
