"""Pure-Python control core for the action adapters (no ROS imports)."""
