"""Rollout recording (rosbag2/MCAP), review and export for fine-tuning. No rclpy in here:
the recorder node (octo_ros/ros/nodes/recorder.py) is the thin ROS shell around recorder.py and bag.py."""
