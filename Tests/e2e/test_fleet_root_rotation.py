"""A fleet's root rotation: `sds-agent ca serve` rotates its root in stages while an agent in
fetch mode follows it, two Envoys doing mTLS through the agent's certificates the whole time.

The fleet distributes the new root ahead of the switch by writing it into the agents' `--ca-root`
file (as Istio mounts the mesh root ConfigMap), and removes the old one after the retirement.
Zero failed requests, the same Envoy processes, leaves of the new root at the end, and no old
root left anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from conftest import norm_serial, wait_envoys_hold
from daemon_support import AdminClient, poll
from test_daemon import run_cli
from test_envoy_rotation import split_pem
from test_fetch_mode import Traffic, assert_envoys_intact, start_envoys

TTL = "10s"


def install(path, *pems: str) -> None:
    """Replace `path` atomically with these roots, as a configuration management tool would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(p if p.endswith("\n") else p + "\n" for p in pems))
    os.rename(tmp, path)


def roots_of(admin: AdminClient) -> set[str]:
    return {norm_serial(r["serial"]) for r in admin.json("/debug/trust")["roots"]}


def envoy_ca_serials(envoy) -> set[str]:
    data = json.loads(envoy.admin("/certs"))
    return {norm_serial(ca["serial_number"]) for c in data.get("certificates", []) for ca in c.get("ca_cert", [])}


def chains_to(agent, root_pem: str, tmp_path) -> bool:
    secrets, _ = agent.fetch("default")
    leaf, *intermediates = split_pem(secrets[0]["pem"])
    (tmp_path / "leaf.pem").write_text(leaf)
    (tmp_path / "root.pem").write_text(root_pem)
    argv = ["openssl", "verify", "-CAfile", str(tmp_path / "root.pem")]
    if intermediates:
        (tmp_path / "int.pem").write_text("".join(intermediates))
        argv += ["-untrusted", str(tmp_path / "int.pem")]
    return subprocess.run(argv + [str(tmp_path / "leaf.pem")], capture_output=True).returncode == 0


def test_fleet_root_rotation_ca_serve_and_an_agent_in_fetch_mode(start_ca_serve, start_agent, start_envoy,
                                                                  jwt_keys, tmp_path, free_port):
    ca_admin = AdminClient(f"127.0.0.1:{free_port()}")
    ca = start_ca_serve(extra_args=["--max-ttl", TTL, "--root-overlap", TTL, "--admin", ca_admin.address])
    token = jwt_keys.write_token(tmp_path / "token")
    mesh_roots = tmp_path / "mesh-roots.pem"
    old_pem = ca.root_path.read_text()
    install(mesh_roots, old_pem)
    agent_admin = AdminClient(f"127.0.0.1:{free_port()}")
    agent = start_agent(TTL, identity=None, extra_args=[
        "--ca", "istio", "--ca-address", ca.address, "--ca-root", mesh_roots, "--token-file", token,
        "--admin", agent_admin.address])
    poll(lambda: agent.fetch("default")[0], 30, what="the first certificate from ca serve")
    (old_root,) = roots_of(ca_admin)
    assert roots_of(agent_admin) == {old_root}

    gateway, backend = start_envoys(start_envoy, agent)
    envoys = (gateway, backend)
    pids = {e.name: e.pid for e in envoys}
    traffic = Traffic(gateway)
    traffic.start()
    timeline = {}
    t0 = time.monotonic()
    try:
        res = run_cli("ca", "rotate-root", "--admin", ca_admin.address)
        assert res.returncode == 0, res.stderr
        new_root = norm_serial(json.loads(res.stdout)["rotation"]["new_root"])
        new_pem = (ca.state_dir / "ca-next-cert.pem").read_text()

        # The fleet distributes the new root: the agent trusts it at once, before the CA switches.
        install(mesh_roots, old_pem, new_pem)
        poll(lambda: roots_of(agent_admin) == {old_root, new_root}, 10, what="the agent trusting both roots")
        poll(lambda: all(envoy_ca_serials(e) == {old_root, new_root} for e in envoys), 10,
             what="both Envoys trusting both roots")
        timeline["both roots in the Envoys"] = time.monotonic() - t0

        # The CA switches; the agent's next renewal is a leaf of the new root, pushed to both Envoys.
        poll(lambda: ca_admin.json("/debug/trust")["phase"] == "switched", 20, what="ca serve's switch")
        timeline["ca serve switched"] = time.monotonic() - t0
        poll(lambda: chains_to(agent, new_pem, tmp_path), 20, interval=0.5, what="a leaf of the new root")
        assert not chains_to(agent, old_pem, tmp_path)
        wait_envoys_hold(envoys, lambda: agent.fetch("default")[0][0]["serial"], timeout=20)
        timeline["Envoys hold a new-root leaf"] = time.monotonic() - t0

        # The CA retires the old root; the fleet removes it from the file; the agent drops it once
        # no leaf of it can be valid (one lifetime after the CA stopped sending it).
        poll(lambda: ca_admin.json("/debug/trust")["phase"] == "idle", 25, what="ca serve's retirement")
        timeline["ca serve retired"] = time.monotonic() - t0
        install(mesh_roots, new_pem)
        poll(lambda: roots_of(agent_admin) == {new_root}, 30, interval=0.5, what="the agent trusting the new root only")
        poll(lambda: all(envoy_ca_serials(e) == {new_root} for e in envoys), 10,
             what="both Envoys trusting the new root only")
        timeline["old root gone from both Envoys"] = time.monotonic() - t0
        sent = traffic.sent
        poll(lambda: traffic.sent >= sent + 20, 10, what="traffic after the rotation")
    finally:
        traffic.stop()
    print(f"\nrequests={traffic.sent} failed={len(traffic.failures)} "
          + " ".join(f"{k}=+{v:.1f}s" for k, v in timeline.items()))
    assert not traffic.failures, f"{len(traffic.failures)}/{traffic.sent} requests failed: {traffic.failures[:10]}"
    assert_envoys_intact(envoys, pids)
    assert any("reconnecting to the CA with the new roots" in line for line in agent.log_lines()), agent.tail()
