"""Trust that can change: a staged rotation of the embedded CA's root (prepare, switch, retire)
while two Envoys talk mTLS through certificates and bundles from one sds-agent, with the agent
restarted in the middle of the overlap. Zero failed requests, the same Envoy processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

from conftest import SPIFFE_ID, norm_serial, wait_envoys_hold
from daemon_support import poll
from test_daemon import run_cli, start  # noqa: F401 - `start` is a fixture
from test_envoy_rotation import get, split_pem

CERT_TTL = "20s"
OVERLAP = "5s"


class Traffic(threading.Thread):
    """Sends requests through the gateway Envoy until stopped; counts failures."""

    def __init__(self, port: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.port = port
        self.interval = interval
        self.sent = 0
        self.failures: list[str] = []
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self.stop_event.is_set():
            self.sent += 1
            elapsed = time.monotonic() - self.t0
            try:
                status, peer = get(self.port)
                if status != 200 or peer != SPIFFE_ID:
                    self.failures.append(f"t={elapsed:.1f}s status {status} peer {peer}")
            except OSError as e:
                self.failures.append(f"t={elapsed:.1f}s {e!r}")
            self.stop_event.wait(self.interval)

    def stop(self):
        self.stop_event.set()
        self.join(10)


def trust(agent) -> dict:
    return agent.admin.json("/debug/trust")


def envoy_ca_serials(envoy) -> set[str]:
    """Serials of the trusted CA certificates Envoy reports in /certs."""
    data = json.loads(envoy.admin("/certs"))
    return {norm_serial(ca["serial_number"]) for c in data.get("certificates", []) for ca in c.get("ca_cert", [])}


def verify(leaf_pem: str, intermediates: list[str], roots_pem: str, tmp_path, name: str) -> subprocess.CompletedProcess:
    (tmp_path / f"{name}-leaf.pem").write_text(leaf_pem)
    (tmp_path / f"{name}-roots.pem").write_text(roots_pem)
    argv = ["openssl", "verify", "-CAfile", str(tmp_path / f"{name}-roots.pem"), "-purpose", "sslclient"]
    if intermediates:
        (tmp_path / f"{name}-int.pem").write_text("".join(intermediates))
        argv += ["-untrusted", str(tmp_path / f"{name}-int.pem")]
    return subprocess.run(argv + [str(tmp_path / f"{name}-leaf.pem")], capture_output=True, text=True)


def test_root_rotation_under_traffic_with_a_restart_in_the_overlap(start, start_envoy, tmp_path):
    agent = start("agent", "--root-overlap", OVERLAP, cert_ttl=CERT_TTL)
    directory, admin = agent.log_dir, agent.admin_address
    backend = start_envoy("backend", agent.socket_path)
    gateway = start_envoy("gateway", agent.socket_path, BACKEND_PORT=backend.listen_port)
    envoys = (gateway, backend)
    pids = {e.name: e.pid for e in envoys}
    before = trust(agent)
    assert before["phase"] == "idle" and before["rotatable"] is True, before
    (old_root,) = [r["serial"] for r in before["roots"]]
    old_pem = agent.fetch("ROOTCA")[0][0]["pem"]

    traffic = Traffic(gateway.listen_port)
    traffic.start()
    timeline = {}
    try:
        poll(lambda: traffic.sent >= 10, 10, what="traffic flowing")
        t0 = time.monotonic()
        res = run_cli("ca", "rotate-root", "--admin", admin)
        assert res.returncode == 0, res.stderr
        prepared = json.loads(res.stdout)
        new_root = prepared["rotation"]["new_root"]
        switch_at = prepared["rotation"]["switch_at"]
        assert prepared["phase"] == "prepared" and new_root != old_root, prepared
        assert {r["serial"]: r["phase"] for r in prepared["roots"]} == {old_root: "signing", new_root: "next"}

        # A second rotation while this one runs is refused, naming the phase.
        again = run_cli("ca", "rotate-root", "--admin", admin)
        assert again.returncode == 1 and "phase prepared" in again.stderr, (again.returncode, again.stderr)

        # Both Envoys get the bundle with both roots on their open streams.
        poll(lambda: all(norm_serial(new_root) in envoy_ca_serials(e) for e in envoys), 10,
             what="both Envoys trusting the new root")
        timeline["new root in both Envoys"] = time.monotonic() - t0

        # Restart the agent during the overlap: the rotation resumes at its original deadlines.
        assert trust(agent)["phase"] == "prepared"
        agent.stopped_on_purpose = True
        assert agent.stop(), "the agent did not stop on SIGTERM"
        agent = start("agent-restarted", "--root-overlap", OVERLAP, cert_ttl=CERT_TTL, directory=directory,
                      admin=admin)
        timeline["agent restarted"] = time.monotonic() - t0
        resumed = trust(agent)
        assert resumed["phase"] == "prepared", resumed
        assert resumed["rotation"]["switch_at"] == switch_at, (resumed["rotation"], switch_at)
        assert resumed["rotation"]["new_root"] == new_root
        assert any("root rotation: resuming" in line for line in agent.log_lines()), agent.tail()

        # Switch: the new root signs and every identity is re-issued and pushed.
        switched = poll(lambda: (t := trust(agent))["phase"] == "switched" and t, 30, what="the switch")
        timeline["switched"] = time.monotonic() - t0
        assert {r["serial"]: r["phase"] for r in switched["roots"]} == {old_root: "previous", new_root: "signing"}
        secrets, _ = agent.fetch()
        by_name = {s["name"]: s for s in secrets}
        leaf, *intermediates = split_pem(by_name["default"]["pem"])
        new_pem = "".join(p for p in split_pem(by_name["ROOTCA"]["pem"]) if p.strip() != old_pem.strip())
        assert verify(leaf, intermediates, new_pem, tmp_path, "after-switch").returncode == 0
        assert verify(leaf, intermediates, old_pem, tmp_path, "old-root").returncode != 0, \
            "a leaf issued after the switch verifies against the old root"
        wait_envoys_hold(envoys, lambda: agent.admin.current_serial(), timeout=30)
        timeline["Envoys hold a new-root leaf"] = time.monotonic() - t0

        # Retire: one certificate lifetime after the switch, the old root leaves every bundle.
        poll(lambda: trust(agent)["phase"] == "idle", 40, interval=0.5, what="the retirement")
        timeline["retired"] = time.monotonic() - t0
        poll(lambda: all(envoy_ca_serials(e) == {norm_serial(new_root)} for e in envoys), 10,
             what="both Envoys trusting only the new root")
        timeline["old root gone from both Envoys"] = time.monotonic() - t0
        # New connections keep working on the new root alone.
        sent_at_retire = traffic.sent
        poll(lambda: traffic.sent >= sent_at_retire + 20, 10, what="traffic after the retirement")
    finally:
        traffic.stop()

    print(f"\nrequests={traffic.sent} failed={len(traffic.failures)} "
          + " ".join(f"{k}=+{v:.1f}s" for k, v in timeline.items()))
    assert not traffic.failures, f"{len(traffic.failures)}/{traffic.sent} requests failed: {traffic.failures[:10]}"
    for e in envoys:
        assert e.alive() and e.pid == pids[e.name], f"{e.name} restarted or died"
    metrics = agent.admin.get("/metrics")
    assert 'sds_agent_trust_bundle_roots{trust_domain="cluster.local"} 1' in metrics, metrics
    (final,) = trust(agent)["roots"]
    assert final["serial"] == new_root


def test_root_drill_follows_a_rotation_to_the_end(start):
    agent = start("agent", cert_ttl="6s")
    res = run_cli("drill", "--root", "--overlap", "2s", "--socket", agent.socket_path, "--admin", agent.admin_address,
                  timeout=90)
    print(res.stdout)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    lines = res.stdout.splitlines()
    assert lines[0] == "root drill: PASSED"
    phases = [line.split()[1] for line in lines if line.strip().startswith("phase ")]
    assert phases == ["prepared", "switched", "idle"], lines
    (new_root,) = [line.split()[-1] for line in lines if line.strip().startswith("new root:")]
    assert any(f"chains to {new_root}" in line for line in lines), lines
    assert any(line.strip().endswith(f'ROOTCA roots=["{new_root}"]') for line in lines), lines
    assert trust(agent)["phase"] == "idle"

    # A root drill while a rotation runs is refused, and says why.
    run_cli("ca", "rotate-root", "--admin", agent.admin_address, "--overlap", "1h")
    busy = run_cli("drill", "--root", "--socket", agent.socket_path, "--admin", agent.admin_address, timeout=30)
    assert busy.returncode == 1 and "root drill: FAILED" in busy.stdout, busy.stdout + busy.stderr
    assert "2 roots before the drill" in busy.stdout or "in progress" in busy.stdout, busy.stdout


def make_ca(directory, name: str):
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "30", "-subj", f"/O=cluster.local/CN={name}",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def root_serials(agent) -> set[str]:
    return {norm_serial(r["serial"]) for r in trust(agent)["roots"]}


def cert_serial(path) -> str:
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return norm_serial(out.strip().split("=", 1)[1])


def test_operator_ca_change_on_reload_is_staged(start, tmp_path):
    first, first_key = make_ca(tmp_path, "first")
    second, second_key = make_ca(tmp_path, "second")
    config = tmp_path / "agent.yaml"
    config.write_text(f"ca-cert: {first}\nca-key: {first_key}\n")
    agent = start("agent", "--config", config, cert_ttl="6s")
    assert root_serials(agent) == {cert_serial(first)}
    assert trust(agent)["rotatable"] is False

    # A new certificate with a key that does not match: refused, the running CA stays.
    config.write_text(f"ca-cert: {second}\nca-key: {first_key}\n")
    mark = len(agent.log_lines())
    agent.signal(signal.SIGHUP)
    agent.wait_log(lambda line: "refused the new configuration" in line, 10, start=mark)
    assert root_serials(agent) == {cert_serial(first)}

    # The new CA: it signs at once, every identity is re-issued, both roots are trusted.
    config.write_text(f"ca-cert: {second}\nca-key: {second_key}\n")
    mark = len(agent.log_lines())
    agent.signal(signal.SIGHUP)
    agent.wait_log(lambda line: "reloaded configuration" in line, 10, start=mark)
    assert root_serials(agent) == {cert_serial(first), cert_serial(second)}
    secrets, _ = agent.fetch()
    by_name = {s["name"]: s for s in secrets}
    leaf, *intermediates = split_pem(by_name["default"]["pem"])
    assert verify(leaf, intermediates, second.read_text(), tmp_path, "second").returncode == 0
    assert verify(leaf, intermediates, first.read_text(), tmp_path, "first").returncode != 0

    # Once no leaf of the first CA can be valid (one lifetime), its root leaves the bundle.
    poll(lambda: root_serials(agent) == {cert_serial(second)}, 20, interval=0.5, what="the old root retired")
    (served_root,) = agent.fetch("ROOTCA")[0]
    assert served_root["serial"].lower().lstrip("0") == cert_serial(second)


def ca_files_version(mount, version: str, cert_from, key_from):
    """A Kubernetes secret mount's version directory ..VERSION holding tls.crt and tls.key."""
    directory = mount / f"..{version}"
    directory.mkdir(parents=True)
    (directory / "tls.crt").write_text(cert_from.read_text())
    (directory / "tls.key").write_text(key_from.read_text())
    os.chmod(directory / "tls.key", 0o600)


def swap_data(mount, version: str):
    """Points ..data at ..VERSION in one rename, as the kubelet does."""
    os.symlink(f"..{version}", mount / "..data_tmp")
    os.rename(mount / "..data_tmp", mount / "..data")


def test_operator_ca_files_replaced_without_a_reload(start, tmp_path):
    """Issue #22: the operator's CA files are watched. Mounted as a Kubernetes secret, a pair whose
    key does not match is refused and counted, the running CA signing on; a good pair swapped in
    by one rename of ..data is adopted without SIGHUP, and the new CA's leaves reach SDS."""
    first, first_key = make_ca(tmp_path, "first")
    second, second_key = make_ca(tmp_path, "second")
    mount = tmp_path / "ca"
    ca_files_version(mount, "1", first, first_key)
    ca_files_version(mount, "mismatched", second, first_key)
    ca_files_version(mount, "2", second, second_key)
    os.symlink("..1", mount / "..data")
    for name in ("tls.crt", "tls.key"):
        os.symlink(f"..data/{name}", mount / name)
    agent = start("agent", "--ca-cert", mount / "tls.crt", "--ca-key", mount / "tls.key", cert_ttl="6s")
    assert root_serials(agent) == {cert_serial(first)}

    mark = len(agent.log_lines())
    swap_data(mount, "mismatched")
    agent.wait_log(lambda line: "cannot use the changed CA files" in line, 10, start=mark)
    assert 'sds_agent_operator_ca_errors_total{reason="unusable"} 1' in agent.admin.get("/metrics")
    assert root_serials(agent) == {cert_serial(first)}

    started = time.monotonic()
    swap_data(mount, "2")

    def served_by_second():
        secrets, _ = agent.fetch()
        leaf, *intermediates = split_pem({s["name"]: s for s in secrets}["default"]["pem"])
        return verify(leaf, intermediates, second.read_text(), tmp_path, "second").returncode == 0

    poll(served_by_second, 10, interval=0.1, what="a leaf of the second CA served")
    print(f"FIGURE operator CA files swapped to a leaf of the new CA on SDS: {time.monotonic() - started:.2f} s")
    assert root_serials(agent) == {cert_serial(first), cert_serial(second)}
    assert not any("reloaded configuration" in line for line in agent.log_lines()), "adopted through a reload"


def test_a_root_rotation_reissues_on_demand_certificates_and_waits_for_them(start, tmp_path):
    """Issue #21, class 5: an on-demand certificate held on a delta stream is re-issued from the
    new root at the switch and pushed on the same stream, and the old root is retired only after
    the on-demand lifetime (60 s here, ten times the workload lifetime of 6 s)."""
    from datetime import datetime

    from daemon_support import inline_pem
    from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
    from test_delta import DeltaCall, delta_request

    agent = start("agent", "--on-demand-names", "*.internal.example", "--on-demand-ttl", "60s", cert_ttl="6s")
    call = DeltaCall(agent.socket_path)
    call.send(delta_request(subscribe=["ROOTCA", "a.internal.example"]))
    held: dict[str, str] = {}

    def receive(timeout: float = 10):
        response = call.response(timeout)
        for resource in response.resources:
            secret = secret_pb2.Secret()
            assert resource.resource.Unpack(secret)
            source = (secret.tls_certificate.certificate_chain if secret.HasField("tls_certificate")
                      else secret.validation_context.trusted_ca)
            held[resource.name] = inline_pem(source)
        call.send(delta_request(nonce=response.nonce))  # ACK

    while len(held) < 2:
        receive()
    first = held["a.internal.example"]
    old_pem = held["ROOTCA"]

    res = run_cli("ca", "rotate-root", "--admin", agent.admin_address, "--overlap", "2s")
    assert res.returncode == 0, res.stderr
    while len(split_pem(held["ROOTCA"])) < 2:
        receive()  # the bundle with both roots, acknowledged: the switch waits for that
    switched = poll(lambda: (t := trust(agent))["phase"] == "switched" and t, 20, interval=0.2, what="the switch")
    new_pem = "".join(p for p in split_pem(held["ROOTCA"]) if p.strip() != old_pem.strip())
    assert new_pem, "the stream never got the new root"

    # The switch re-issues the on-demand certificate from the new root and pushes it (its own
    # renewal would come only at half its 60 s lifetime).
    deadline = time.monotonic() + 10
    while held["a.internal.example"] == first and time.monotonic() < deadline:
        receive(timeout=max(0.1, deadline - time.monotonic()))
    assert held["a.internal.example"] != first, "the on-demand certificate was not re-issued at the switch"
    for name, chain, roots, ok in (("new", held["a.internal.example"], new_pem, True), ("old", first, old_pem, True),
                                   ("crossed", held["a.internal.example"], old_pem, False)):
        (tmp_path / f"{name}-chain.pem").write_text(chain)
        (tmp_path / f"{name}-roots.pem").write_text(roots)
        checked = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / f"{name}-roots.pem"), "-purpose",
                                  "sslserver", str(tmp_path / f"{name}-chain.pem")], capture_output=True, text=True)
        assert (checked.returncode == 0) == ok, (name, checked.stdout, checked.stderr)

    # The leaf the old root signed lives 60 s: the old root stays at least that long.
    rotation = switched["rotation"]
    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    kept = (parse(rotation["retire_at"]) - parse(rotation["switched_at"])).total_seconds()
    print(f"old root kept {kept:.1f}s after the switch")
    assert kept >= 55, f"the old root retires {kept:.1f}s after the switch, before the on-demand leaf expires"
    call.send(None)
