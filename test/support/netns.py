"""Two Linux network namespaces joined by a veth pair: a "robot PC" and a "GPU box" on one
emulated link, for DDS tests across hosts on one machine (needs root and iproute2).

Nodes started with :meth:`NetnsLink.prefix` run inside a namespace and see only that end of the
link (and their own loopback), so their traffic stays on the veth; ``ip link set down`` cuts it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


def netns_unavailable() -> str:
    """Why namespaces cannot be created here ('' when they can)."""
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    name = f"octo_probe_{uuid.uuid4().hex[:8]}"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"'ip netns add' failed: {made.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return ""


class NetnsLink:
    """Namespaces ``robot`` and ``gpu`` (unique names), veth ends ``ROBOT_ADDRESS`` / ``GPU_ADDRESS``
    on one /24, with loopback up in each. Use as a context manager: the namespaces (and with them the
    veth pair) are deleted on exit, whatever happened inside."""

    ROBOT_ADDRESS = "10.231.7.1"
    GPU_ADDRESS = "10.231.7.2"

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.robot, self.gpu = f"octo_robot_{tag}", f"octo_gpu_{tag}"
        self.robot_dev, self.gpu_dev = f"vr{tag}", f"vg{tag}"  # interface names: 15 characters at most

    def __enter__(self) -> "NetnsLink":
        try:
            for ns in (self.robot, self.gpu):
                _ip("netns", "add", ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            _ip("link", "add", self.robot_dev, "netns", self.robot, "type", "veth",
                "peer", "name", self.gpu_dev, "netns", self.gpu)
            for ns, dev, address in ((self.robot, self.robot_dev, self.ROBOT_ADDRESS),
                                     (self.gpu, self.gpu_dev, self.GPU_ADDRESS)):
                _ip("-n", ns, "addr", "add", f"{address}/24", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
                # SPDP multicast (239.255.0.1) leaves through the veth, as on a lab's LAN
                _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for ns in (self.robot, self.gpu):
            _ip("netns", "del", ns, check=False)  # takes its veth end, and so the pair, with it

    @staticmethod
    def prefix(ns: str) -> list[str]:
        """Command prefix that runs a program inside namespace ``ns`` (``ip netns exec`` execs it:
        the pid is the program's, so signals reach it directly)."""
        return ["ip", "netns", "exec", ns]

    def set_link(self, up: bool) -> None:
        """Cut (False) or restore (True) the link: the robot end goes down, the GPU end loses carrier."""
        _ip("-n", self.robot, "link", "set", self.robot_dev, "up" if up else "down")

    def netem(self, spec: str) -> str:
        """Shape both directions with ``tc qdisc ... netem <spec>`` ("delay 5ms loss 1%");
        returns '' or why the kernel refused it (e.g. no sch_netem)."""
        for ns, dev in ((self.robot, self.robot_dev), (self.gpu, self.gpu_dev)):
            done = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root",
                                   "netem", *spec.split()], capture_output=True, text=True, timeout=10)
            if done.returncode != 0:
                return f"tc netem {spec}: {done.stderr.strip() or done.returncode}"
        return ""

    def netem_off(self) -> None:
        for ns, dev in ((self.robot, self.robot_dev), (self.gpu, self.gpu_dev)):
            subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"],
                           capture_output=True, timeout=10)  # none there: nothing to do
