"""octo_ros: deploy the Octo generalist robot policy on ROS 2 robots."""
