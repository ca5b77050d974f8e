"""A drill across nodes (issue #25, item 7): a small fleet built on this one machine with network
namespaces — a CA host running `sds-agent ca serve`, and three nodes, each with its own agent in
fetch mode and its own Envoy — with mTLS traffic between every pair of nodes the whole time,
while the CA rotates its root in stages and one node's identity is revoked.

Zero failed requests between nodes whose identity was not revoked; the revoked node's old
certificate is refused by the others and its new one accepted. The fleet distributes roots as
an operator would: the test writes the CA's roots into every node's `--ca-root` file.

Run (as root): SDS_AGENT_BIN=.build/debug/sds-agent .venv/bin/python -m pytest Tests/e2e/test_fleet_drill.py -q -s
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import time

import pytest

from conftest import Agent, CaServer, agent_bin, norm_serial, service_account_sub
from daemon_support import AdminClient, poll
from fleet_nodes import INGRESS_PORT, PairTraffic, node_identity, start_node_envoy
from netns import Network

TTL = "10s"
CA_PORT = 15012
CRL_PORT = 8081
NODES = ("node1", "node2", "node3")
REVOKED = "node3"


@pytest.fixture
def network():
    net = Network()
    yield net
    net.close()


def install(path, *pems: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(p if p.endswith("\n") else p + "\n" for p in pems))
    os.rename(tmp, path)


def cli(*args) -> dict:
    res = subprocess.run([str(agent_bin()), *[str(a) for a in args]], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"{args} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def served(agent: Agent) -> dict:
    argv = [str(agent_bin()), "fetch", "--socket", str(agent.socket_path), "--json", "--show-key",
            "--resource", "default", "--resource", "ROOTCA"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return {s["name"]: s for s in json.loads(res.stdout)}


def mtls_get(address: str, cert, key, root) -> str:
    """A new TLS connection to a node's ingress presenting cert/key: 'ok' on a 200, else why not."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(str(root))
    context.load_cert_chain(str(cert), str(key))
    conn = http.client.HTTPSConnection(address, INGRESS_PORT, context=context, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        return "ok" if resp.status == 200 else f"status {resp.status}"
    except (OSError, http.client.HTTPException) as e:
        return repr(e)
    finally:
        conn.close()


def start_ca(processes, host, directory, jwt_keys) -> tuple[CaServer, AdminClient]:
    admin = AdminClient(f"unix:{directory}/ca-admin.sock")
    state = directory / "ca-state"
    argv = host.argv(
        agent_bin(), "ca", "serve", "--listen", f"{host.address}:{CA_PORT}", "--state-dir", state,
        "--jwt-keys", jwt_keys.jwks_path, "--trust-domain", "cluster.local", "--tls-san", host.address,
        "--max-ttl", TTL, "--root-overlap", TTL, "--admin", admin.address,
        "--crl-url", f"http://{host.address}:{CRL_PORT}/crl/ca.crl", "--crl-listen", f"{host.address}:{CRL_PORT}")
    ca = processes.add(CaServer("ca-serve", argv, directory, CA_PORT, state))
    ca.address = f"{host.address}:{CA_PORT}"
    ca.wait_ready()
    return ca, admin


def start_node_agent(processes, host, ca: CaServer, mesh_roots, jwt_keys, directory) -> Agent:
    directory.mkdir()
    token = jwt_keys.write_token(directory / "token", sub=service_account_sub(node_identity(host.name)))
    socket_path, state = directory / "sds.sock", directory / "state"
    state.mkdir()
    admin = f"unix:{directory}/admin.sock"
    argv = host.argv(
        agent_bin(), "run", "--socket", socket_path, "--state-dir", state, "--cert-ttl", TTL,
        "--trust-domain", "cluster.local", "--ca", "istio", "--ca-address", ca.address, "--ca-root", mesh_roots,
        "--token-file", token, "--admin", admin, "--crl-refresh", "1s", "--log-level", "debug")
    agent = processes.add(Agent(f"agent-{host.name}", argv, directory, socket_path, state_dir=state, admin=admin))
    agent.wait_serving()
    return agent


def roots_of(admin: AdminClient) -> set[str]:
    return {norm_serial(r["serial"]) for r in admin.json("/debug/trust")["roots"]}


def test_a_fleet_rotates_its_root_and_revokes_a_node_with_no_failed_request(network, processes, jwt_keys,
                                                                              tmp_path):
    ca_host = network.add_host("ca")
    hosts = [network.add_host(name) for name in NODES]
    ca, ca_admin = start_ca(processes, ca_host, tmp_path, jwt_keys)
    old_pem = ca.root_path.read_text()
    mesh_roots = tmp_path / "mesh-roots.pem"
    install(mesh_roots, old_pem)
    agents = {h.name: start_node_agent(processes, h, ca, mesh_roots, jwt_keys, tmp_path / h.name) for h in hosts}
    for agent in agents.values():
        poll(lambda: served(agent).get("default"), 30, what=f"{agent.name}'s first certificate")
    envoys = {h.name: start_node_envoy(processes, h, [p for p in hosts if p != h], agents[h.name].socket_path,
                                       tmp_path / h.name) for h in hosts}
    pids = {name: e.pid for name, e in envoys.items()}
    traffic = PairTraffic(hosts)
    traffic.start()
    timeline: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        poll(lambda: all(n >= 5 for n in traffic.sent.values()), 20, what="traffic between every pair")
        assert not any(traffic.failures.values()), traffic.summary()

        # 1. The CA rotates its root; the fleet distributes the new root, then removes the old one.
        rotation = cli("ca", "rotate-root", "--admin", ca_admin.address)["rotation"]
        new_root = norm_serial(rotation["new_root"])
        new_pem = (ca.state_dir / "ca-next-cert.pem").read_text()
        install(mesh_roots, old_pem, new_pem)
        for agent in agents.values():
            poll(lambda: new_root in roots_of(agent.admin), 10, what=f"{agent.name} trusting the new root")
        timeline["every agent trusts both roots"] = time.monotonic() - t0
        poll(lambda: ca_admin.json("/debug/trust")["phase"] == "switched", 30, what="ca serve's switch")
        timeline["ca serve switched"] = time.monotonic() - t0
        poll(lambda: ca_admin.json("/debug/trust")["phase"] == "idle", 40, what="ca serve retiring the old root")
        install(mesh_roots, new_pem)
        for agent in agents.values():
            poll(lambda: roots_of(agent.admin) == {new_root}, 40, interval=0.5,
                 what=f"{agent.name} trusting the new root only")
        timeline["every agent trusts the new root only"] = time.monotonic() - t0

        # 2. One node's identity is revoked: the others refuse its certificate, it renews.
        secrets = served(agents[REVOKED])
        revoked_serial = norm_serial(secrets["default"]["serial"])
        old = (tmp_path / "revoked.pem", tmp_path / "revoked.key", tmp_path / "root.pem")
        for path, text in zip(old, (secrets["default"]["pem"], secrets["default"]["private_key"],
                                    secrets["ROOTCA"]["pem"])):
            path.write_text(text)
        target = hosts[0].address
        assert mtls_get(target, *old) == "ok", "node1 refuses node3's certificate before the revocation"
        t_revoke = time.monotonic()
        revoked = cli("ca", "revoke", "--serial", revoked_serial, "--reason", "keyCompromise",
                      "--admin", ca_admin.address)
        assert [norm_serial(s) for s in revoked["serials"]] == [revoked_serial]
        poll(lambda: mtls_get(target, *old) != "ok", 10, interval=0.1, what="node1 refusing the revoked certificate")
        timeline["node1 refuses the revoked certificate"] = time.monotonic() - t0
        renewed = poll(lambda: (s := served(agents[REVOKED]))["default"]["serial"] != secrets["default"]["serial"]
                       and s, 10, what="node3 renewing")
        (tmp_path / "renewed.pem").write_text(renewed["default"]["pem"])
        (tmp_path / "renewed.key").write_text(renewed["default"]["private_key"])
        assert poll(lambda: mtls_get(target, tmp_path / "renewed.pem", tmp_path / "renewed.key", old[2]) == "ok",
                    10, what="node1 accepting node3's new certificate")
        timeline["node3's new certificate accepted"] = time.monotonic() - t0
        print(f"\nrevocation: refused {time.monotonic() - t_revoke:.2f}s after `ca revoke` at the latest")
        sent = traffic.total_sent()
        poll(lambda: traffic.total_sent() >= sent + 30, 15, what="traffic after the drill")
    finally:
        traffic.stop()
    print(f"\n{traffic.summary()}\n" + " ".join(f"{k}=+{v:.1f}s" for k, v in timeline.items()))
    unrevoked = {pair: f for pair, f in traffic.failures.items() if REVOKED not in pair}
    assert not any(unrevoked.values()), f"requests between unrevoked nodes failed: {unrevoked}"
    for name, envoy in envoys.items():
        assert envoy.alive() and envoy.pid == pids[name], f"{name}'s Envoy restarted"
