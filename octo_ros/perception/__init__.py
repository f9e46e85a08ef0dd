"""Perception: image codec (ROS image fields <-> numpy, Octo resize) and the observation buffer core."""
