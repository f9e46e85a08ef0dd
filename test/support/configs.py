"""The parameters config/<robot>.yaml gives a node, for tests that start nodes one by one."""
import yaml

from support.ros_harness import REPO_ROOT


def node_parameters(robot: str, node: str, sim: bool = True) -> dict:
    """``node``'s ``ros__parameters`` from config/<robot>.yaml (then <robot>_sim.yaml on top when ``sim``)."""
    params = {}
    for file in (f"{robot}.yaml", f"{robot}_sim.yaml") if sim else (f"{robot}.yaml",):
        path = REPO_ROOT / "config" / file
        doc = yaml.safe_load(path.read_text()) or {} if path.is_file() else {}
        params.update((doc.get(node) or {}).get("ros__parameters", {}))
    return params


def adapter_parameters(robot: str) -> dict:
    """The adapter's configured parameters (its safety limits among them: arming needs them all)."""
    return node_parameters(robot, f"{robot}_adapter")
