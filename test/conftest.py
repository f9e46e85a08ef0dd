import threading
from pathlib import Path

import pytest
from support.ros_harness import RosHarness, claim_ros_domain

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_configure(config):
    domain = claim_ros_domain()
    config.stash[ROS_DOMAIN_KEY] = domain


ROS_DOMAIN_KEY = pytest.StashKey[int]()


def pytest_report_header(config):
    return f"ROS_DOMAIN_ID={config.stash[ROS_DOMAIN_KEY]} (localhost-only discovery)"


@pytest.fixture(scope="module")
def restore_torch_threads():
    """For modules that train with one CPU thread (``threads=1``): give the others their setting back."""
    import torch  # here: most test modules never load torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def ros(tmp_path):
    """Real ROS 2 for one test: nodes in-process and in child processes, torn down after."""
    threads_before = {t.ident for t in threading.enumerate()}
    harness = RosHarness(tmp_path)
    try:
        yield harness
    finally:
        harness.close()
    leaked_procs = [p.name for p in harness.processes if p.alive()]
    assert not leaked_procs, f"child processes still running: {leaked_procs}"
    leaked = [t.name for t in threading.enumerate() if t.ident not in threads_before and t.is_alive() and t.name.startswith("ros-")]
    assert not leaked, f"threads still running: {leaked}"
