"""package.xml, setup.py and the code agree."""
import ast
import importlib
import pkgutil
import xml.etree.ElementTree as ET

from support.ros_harness import REPO_ROOT

import octo_ros.ros.nodes


def _setup_call() -> dict:
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    return {kw.arg: kw.value for kw in call.keywords}


def _console_scripts() -> dict[str, str]:
    entry_points = ast.literal_eval(_setup_call()["entry_points"])
    return dict(line.replace(" ", "").split("=", 1) for line in entry_points["console_scripts"])


def test_package_xml_agrees_with_setup_py():
    root = ET.parse(REPO_ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "octo_ros"
    assert root.find("export/build_type").text == "ament_python"
    version = ast.literal_eval(_setup_call()["version"])
    assert root.findtext("version") == version
    msgs = ET.parse(REPO_ROOT / "octo_ros_msgs" / "package.xml").getroot()
    assert msgs.findtext("version") == version
    assert (REPO_ROOT / "resource" / "octo_ros").is_file()


def test_every_entry_point_resolves_to_a_callable():
    scripts = _console_scripts()
    assert "octo-ros" in scripts
    for name, target in scripts.items():
        module_name, func = target.split(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, func, None)), f"{name} -> {target} is not callable"


def test_every_node_module_has_an_entry_point():
    node_modules = {f"octo_ros.ros.nodes.{m.name}" for m in pkgutil.iter_modules(octo_ros.ros.nodes.__path__)
                    if not m.name.startswith("_")}  # _private: shared code of several nodes
    targets = {target.split(":")[0] for target in _console_scripts().values()}
    missing = node_modules - targets
    assert not missing, f"node modules without a console_scripts entry (ros2 run cannot start them): {sorted(missing)}"
    for name, target in _console_scripts().items():
        if target.startswith("octo_ros.ros.nodes."):
            assert target == f"octo_ros.ros.nodes.{name}:main", f"executable {name} must be octo_ros.ros.nodes.{name}:main"


def test_exec_dependencies_cover_imported_ros_packages():
    """Every ROS package the nodes import is declared in package.xml."""
    declared = {e.text for e in ET.parse(REPO_ROOT / "package.xml").getroot() if e.tag in {"depend", "exec_depend"}}
    imported = set()
    for path in (REPO_ROOT / "octo_ros").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                top = name.split(".")[0]
                if top.endswith(("_msgs", "_srvs", "_interfaces")) or top in {"rclpy", "launch", "launch_ros"}:
                    imported.add(top)
    missing = imported - declared
    assert not missing, f"imported but not declared in package.xml: {sorted(missing)}"
