from glob import glob

from setuptools import find_packages, setup

package_name = "octo_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=[package_name, f"{package_name}.*"]),
    # the shipped WidowX policy (tools/train_demo_policy.sh): weights, tokenizer, its evaluation report
    package_data={f"{package_name}.robots.widowx": ["demo_policy/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (f"share/{package_name}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,  # the demo policy is read from files
    maintainer="octo_ros maintainers",
    maintainer_email="octo_ros@example.com",
    description="ROS 2 nodes that deploy the Octo generalist robot policy on robot arms.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "octo-ros = octo_ros.cli:main",
            "observation_buffer = octo_ros.ros.nodes.observation_buffer:main",
            "policy = octo_ros.ros.nodes.policy:main",
            "recorder = octo_ros.ros.nodes.recorder:main",
            "widowx_adapter = octo_ros.ros.nodes.widowx_adapter:main",
            "ur5_adapter = octo_ros.ros.nodes.ur5_adapter:main",
            "bimanual_adapter = octo_ros.ros.nodes.bimanual_adapter:main",
            "widowx_sim = octo_ros.ros.nodes.widowx_sim:main",
            "ur5_sim = octo_ros.ros.nodes.ur5_sim:main",
            "aloha_sim = octo_ros.ros.nodes.aloha_sim:main",
            "teleop = octo_ros.ros.nodes.teleop:main",
        ],
    },
)
