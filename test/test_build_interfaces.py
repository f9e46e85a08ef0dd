"""octo_ros_msgs builds from scratch with cmake against the ROS 2 wheels, and the
freshly built package (not the one installed in the venv) is importable."""
import os
import subprocess
import sys

from support.ros_harness import REPO_ROOT


def test_octo_ros_msgs_builds_from_scratch(tmp_path):
    prefix = tmp_path / "install"
    build = subprocess.run(
        ["bash", "tools/build_interfaces.sh", "octo_ros_msgs", str(tmp_path / "build"), str(prefix)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "Generate step failed" not in build.stdout + build.stderr

    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert (site / "octo_ros_msgs" / "msg" / "_action_chunk.py").is_file()
    assert (prefix / "share" / "octo_ros_msgs" / "msg" / "ActionChunk.msg").is_file()

    env = dict(os.environ, PYTHONPATH=str(site), LD_LIBRARY_PATH=f"{prefix / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    probe = (
        "import octo_ros_msgs, rclpy.serialization as s\n"
        "from octo_ros_msgs.msg import ActionChunk\n"
        "from octo_ros_msgs.srv import StartEpisode\n"
        "m = ActionChunk(horizon=4, action_dim=7, actions=[0.5] * 28, dimension_names=['x'] * 7)\n"
        "back = s.deserialize_message(s.serialize_message(m), ActionChunk)\n"
        "assert back.horizon == 4 and list(back.actions) == [0.5] * 28\n"
        "assert 'bag_path' in StartEpisode.Response.get_fields_and_field_types()\n"
        "print(octo_ros_msgs.__file__)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(site))
