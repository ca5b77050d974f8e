"""A small network of hosts on one machine for drills across nodes: one network namespace per
host, each with a veth (`eth0`) on one bridge in the root namespace, one IPv4 address per host.

The test process stays in the root namespace and reaches every host through the bridge; a host's
processes run under `ip netns exec`, which execs the command (its pid is the process's own, so
signals reach it). Unix sockets are files and work across namespaces: agents, their admin
endpoints and Envoy's SDS cluster keep using them. Needs root (CAP_NET_ADMIN).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass


def _ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} exited {res.returncode}: {res.stderr.strip()}")


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str

    def argv(self, *argv) -> list[str]:
        """`argv` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *[str(a) for a in argv]]


class Network:
    """Hosts on 10.<n>.0.0/24, <n> from the test's pid so parallel runs do not meet; the bridge
    (the root namespace's side) is .254."""

    def __init__(self):
        if os.geteuid() != 0:
            raise RuntimeError("network namespaces need root (run the end-to-end tests as root, as .ci/run does)")
        self.tag = f"{os.getpid() % 10000}"
        self.subnet = f"10.{200 + os.getpid() % 50}.0"
        self.bridge = f"sdsbr{self.tag}"
        self.hosts: dict[str, Host] = {}
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    @property
    def gateway_address(self) -> str:
        return f"{self.subnet}.254"

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 1
        namespace = f"sds{self.tag}-{name}"
        outside = f"sdsv{self.tag}h{index}"
        _ip("netns", "add", namespace)
        _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        address = f"{self.subnet}.{index}"
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        host = Host(name, namespace, address)
        self.hosts[name] = host
        return host

    def close(self) -> None:
        """Removes every namespace (their veths go with them) and the bridge; best effort, so a
        half-built network is torn down too."""
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)
