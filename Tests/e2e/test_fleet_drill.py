"""A drill across nodes (issue #25, item 7): a small fleet built on this one machine with network
namespaces — a CA host running PostgreSQL and two `sds-agent ca serve` replicas sharing one CA
through it, and three nodes, each with its own agent in fetch mode (given both replicas as
`--ca-address`) and its own Envoy — with mTLS traffic between every pair of nodes the whole time,
while: one replica is killed with SIGKILL (renewals, TTL 10 s, go on through the other); the root
is rotated in stages through the survivor; one node's identity is revoked through the survivor;
PostgreSQL is stopped and started again (the survivor signs on while it is down).

Zero failed requests between nodes whose identity was not revoked; the revoked node's old
certificate is refused by the others and its new one accepted. The fleet distributes roots as
an operator would: the test writes the survivor's `GET /ca/roots` into every node's `--ca-root`
file. PostgreSQL listens on 127.0.0.1 inside the CA host's namespace: only the replicas reach it.

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
from postgres_server import PostgresServer

TTL = "10s"
CA_PORTS = {"replica-a": 15012, "replica-b": 15013}
KILLED, SURVIVOR = "replica-a", "replica-b"
CRL_PORT = 8081
NODES = ("node1", "node2", "node3")
REVOKED = "node3"


@pytest.fixture
def network():
    net = Network()
    yield net
    net.close()


@pytest.fixture
def ca_host(network):
    return network.add_host("ca")


@pytest.fixture
def postgres(ca_host):
    """PostgreSQL inside the CA host's namespace, stopped (and its directory removed) before the
    namespace goes, whatever happened."""
    server = PostgresServer(wrap=ca_host.argv)
    try:
        server.__enter__()
        yield server
    finally:
        server.__exit__(None, None, None)


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


def start_replica(processes, host, name, directory, jwt_keys, datastore: str, kek) -> tuple[CaServer, AdminClient]:
    """One `ca serve` replica on the shared datastore, with its own state directory and admin socket.

    CRL distribution: both replicas write the SAME URL into the leaves they sign, the one served
    (`--crl-listen`) by the replica that stays alive in this drill. Each replica signs its own
    CRLs with the shared key and their CRL numbers increase per replica (README "A fleet CA"), so
    an agent following two replicas' lists in turn could see a lower number and refuse it; and an
    agent follows the URL in the leaf it serves: one whose leaf named the killed replica could no
    longer refresh the CRL it gives its Envoy, and its node would not learn of the revocation. One
    URL served by the survivor stands for what an operator would put behind one name (a load
    balancer or DNS in front of the replicas' CRL listeners).
    """
    admin = AdminClient(f"unix:{directory}/{name}-admin.sock")
    state = directory / f"{name}-state"
    port = CA_PORTS[name]
    crl = ["--crl-url", f"http://{host.address}:{CRL_PORT}/crl/ca.crl"]
    if name == SURVIVOR:
        crl += ["--crl-listen", f"{host.address}:{CRL_PORT}"]
    argv = host.argv(
        agent_bin(), "ca", "serve", "--listen", f"{host.address}:{port}", "--state-dir", state,
        "--jwt-keys", jwt_keys.jwks_path, "--trust-domain", "cluster.local", "--tls-san", host.address,
        "--max-ttl", TTL, "--root-overlap", TTL, "--admin", admin.address,
        "--datastore", datastore, "--key-encryption-key", kek, "--replica-name", name, *crl)
    ca = processes.add(CaServer(name, argv, directory, port, state))
    ca.address = f"{host.address}:{port}"
    ca.wait_ready()
    return ca, admin


def start_node_agent(processes, host, cas: list[CaServer], mesh_roots, jwt_keys, directory) -> Agent:
    directory.mkdir()
    token = jwt_keys.write_token(directory / "token", sub=service_account_sub(node_identity(host.name)))
    socket_path, state = directory / "sds.sock", directory / "state"
    state.mkdir()
    admin = f"unix:{directory}/admin.sock"
    argv = host.argv(
        agent_bin(), "run", "--socket", socket_path, "--state-dir", state, "--cert-ttl", TTL,
        "--trust-domain", "cluster.local", "--ca", "istio",
        *[arg for ca in cas for arg in ("--ca-address", ca.address)], "--ca-root", mesh_roots,
        "--token-file", token, "--admin", admin, "--crl-refresh", "1s", "--log-level", "debug")
    agent = processes.add(Agent(f"agent-{host.name}", argv, directory, socket_path, state_dir=state, admin=admin))
    agent.wait_serving()
    return agent


def roots_of(admin: AdminClient) -> set[str]:
    return {norm_serial(r["serial"]) for r in admin.json("/debug/trust")["roots"]}


def pems(text: str) -> list[str]:
    return ["-----BEGIN CERTIFICATE-----" + b for b in text.split("-----BEGIN CERTIFICATE-----")[1:]]


def serial_of(pem: str) -> str:
    from cryptography import x509

    return format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "x")


def serials(agents: dict[str, Agent]) -> dict[str, str]:
    return {name: norm_serial(served(agent)["default"]["serial"]) for name, agent in agents.items()}


def all_renewed(agents: dict[str, Agent], before: dict[str, str]) -> dict[str, str] | None:
    """Every agent's serial once each one differs from `before`, else None."""
    now = serials(agents)
    return now if all(now[n] != before[n] for n in now) else None


def ledger_verifies(host, url: str, serials) -> str | None:
    """`ca ledger --verify` inside the CA host (PostgreSQL listens there only) once the ledger
    lists every one of `serials`; its verdict line."""
    listed = subprocess.run(host.argv(agent_bin(), "ca", "ledger", "--datastore", url, "--json"),
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    rows = {norm_serial(r["serial"]) for r in json.loads(listed.stdout)["rows"]}
    if not {norm_serial(s) for s in serials} <= rows:
        return None
    verdict = subprocess.run(host.argv(agent_bin(), "ca", "ledger", "--datastore", url, "--verify"),
                             capture_output=True, text=True, timeout=30)
    assert verdict.returncode == 0, f"the drill's ledger does not verify: {verdict.stdout}{verdict.stderr}"
    return verdict.stdout.strip()


def signed_by(postgres: PostgresServer, database: str, serial: str) -> str:
    """The replica that signed `serial` (norm_serial's form), from the issued rows; '' until uploaded.
    Compared without leading zeros whichever way the row writes them."""
    return postgres.psql("SELECT replica FROM sds_agent_issued "
                         f"WHERE ltrim(lower(serial), '0') = '{norm_serial(serial)}'", database).strip()


def test_a_fleet_rides_out_a_killed_replica_a_rotation_a_revocation_and_a_datastore_restart(
        network, ca_host, postgres, processes, jwt_keys, tmp_path):
    hosts = [network.add_host(name) for name in NODES]
    database = postgres.create_database("sds_fleet")
    kek = tmp_path / "kek"
    kek.write_bytes(os.urandom(32))
    os.chmod(kek, 0o600)
    replicas = {name: start_replica(processes, ca_host, name, tmp_path, jwt_keys, postgres.url(database), kek)
                for name in CA_PORTS}
    killed, (survivor, ca_admin) = replicas[KILLED][0], replicas[SURVIVOR]
    old_pem = survivor.root_path.read_text()
    assert killed.root_path.read_text() == old_pem, "the replicas do not share one root"
    mesh_roots = tmp_path / "mesh-roots.pem"
    install(mesh_roots, old_pem)
    cas = [ca for ca, _ in replicas.values()]
    agents = {h.name: start_node_agent(processes, h, cas, mesh_roots, jwt_keys, tmp_path / h.name) for h in hosts}
    for agent in agents.values():
        poll(lambda: served(agent).get("default"), 30, what=f"{agent.name}'s first certificate")
    envoys = {h.name: start_node_envoy(processes, h, [p for p in hosts if p != h], agents[h.name].socket_path,
                                       tmp_path / h.name) for h in hosts}
    pids = {name: e.pid for name, e in envoys.items()}
    traffic = PairTraffic(hosts)
    traffic.start()
    timeline: dict[str, float] = {}
    figures: list[str] = []
    t0 = time.monotonic()

    def mark(event: str) -> None:
        timeline[event] = time.monotonic() - t0

    try:
        poll(lambda: all(n >= 5 for n in traffic.sent.values()), 20, what="traffic between every pair")
        assert not any(traffic.failures.values()), traffic.summary()
        mark("traffic flows")

        # 1. One replica dies (SIGKILL): every node renews through the other one.
        before = serials(agents)
        killed.signal(9)
        killed.wait_exit(10)
        mark(f"{KILLED} killed")

        def renewed_by_survivor() -> dict[str, str] | None:
            # A renewal signed by the killed replica just before it died may be unrecorded (it
            # uploads rows within a second): only rows naming the survivor count.
            now = serials(agents)
            return now if all(now[n] != before[n] and signed_by(postgres, database, now[n]) == SURVIVOR
                              for n in now) else None

        renewed = poll(renewed_by_survivor, 25, interval=0.2, what=f"every node renewing through {SURVIVOR}")
        mark(f"every node renewed through {SURVIVOR}")
        figures.append(f"after the kill: {', '.join(f'{n} serial {s}' for n, s in renewed.items())} "
                       f"signed by {SURVIVOR}")

        # 2. The root rotates through the survivor; the fleet distributes its GET /ca/roots.
        rotation = cli("ca", "rotate-root", "--admin", ca_admin.address)["rotation"]
        new_root = norm_serial(rotation["new_root"])
        both = ca_admin.get("/ca/roots")
        assert len(pems(both)) == 2, both
        new_pem = next(p for p in pems(both) if norm_serial(serial_of(p)) == new_root)
        install(mesh_roots, both)
        for agent in agents.values():
            poll(lambda: new_root in roots_of(agent.admin), 10, what=f"{agent.name} trusting the new root")
        mark("every agent trusts both roots")
        poll(lambda: ca_admin.json("/debug/trust")["phase"] == "switched", 30, what=f"{SURVIVOR}'s switch")
        mark(f"{SURVIVOR} switched")
        poll(lambda: ca_admin.json("/debug/trust")["phase"] == "idle", 40, what=f"{SURVIVOR} retiring the old root")
        only = ca_admin.get("/ca/roots")
        assert pems(only) and [p.strip() for p in pems(only)] == [new_pem.strip()], only
        install(mesh_roots, only)
        for agent in agents.values():
            poll(lambda: roots_of(agent.admin) == {new_root}, 40, interval=0.5,
                 what=f"{agent.name} trusting the new root only")
        mark("every agent trusts the new root only")

        # 3. One node's identity is revoked through the survivor: the others refuse its
        # certificate (the CRL from the survivor's --crl-listen), it renews.
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
        mark("node1 refuses the revoked certificate")
        renewed = poll(lambda: (s := served(agents[REVOKED]))["default"]["serial"] != secrets["default"]["serial"]
                       and s, 10, what="node3 renewing")
        (tmp_path / "renewed.pem").write_text(renewed["default"]["pem"])
        (tmp_path / "renewed.key").write_text(renewed["default"]["private_key"])
        assert poll(lambda: mtls_get(target, tmp_path / "renewed.pem", tmp_path / "renewed.key", old[2]) == "ok",
                    10, what="node1 accepting node3's new certificate")
        mark("node3's new certificate accepted")
        figures.append(f"revocation: refused {time.monotonic() - t_revoke:.2f}s after `ca revoke` at the latest")

        # 4. PostgreSQL stops and starts again: the survivor signs on while it is down, and
        # uploads what it signed meanwhile when it is back.
        log_mark = len(survivor.log_lines())
        postgres.stop()
        mark("postgres stopped")
        try:
            survivor.wait_log("datastore: cannot be read", 10, start=log_mark,
                              what=f"{SURVIVOR} noticing the datastore is down")
            before = serials(agents)
            during = poll(lambda: all_renewed(agents, before), 20, interval=0.2,
                          what="every node renewing while PostgreSQL is down")
            mark("every node renewed with postgres down")
        finally:
            postgres.start()
        mark("postgres started")
        survivor.wait_log("datastore: reachable again", 15, start=log_mark,
                          what=f"{SURVIVOR} reading the datastore again")
        mark(f"{SURVIVOR} follows the datastore again")
        by = {name: poll(lambda: signed_by(postgres, database, serial), 10, interval=0.1,
                         what=f"{name}'s certificate signed while PostgreSQL was down, in the issued rows")
              for name, serial in during.items()}
        assert set(by.values()) == {SURVIVOR}, by
        figures.append(f"signed while postgres was down, uploaded after: {by}")
        # The issuance ledger holds every certificate of the drill, both replicas', in one chain.
        verified = poll(lambda: ledger_verifies(ca_host, postgres.url(database), during.values()), 10,
                        interval=0.2, what="the ledger holding the certificates signed while PostgreSQL was down")
        figures.append(f"ca ledger --verify: {verified}")
        sent = traffic.total_sent()
        poll(lambda: traffic.total_sent() >= sent + 30, 15, what="traffic after the drill")
        mark("drill over")
    finally:
        traffic.stop()
    print("\nfleet drill, requests per pair: " + traffic.summary())
    print("\n".join(figures))
    print("timeline:\n" + "\n".join(f"  +{v:5.1f}s  {k}" for k, v in timeline.items()))
    unrevoked = {pair: f for pair, f in traffic.failures.items() if REVOKED not in pair}
    assert not any(unrevoked.values()), f"requests between unrevoked nodes failed: {unrevoked}"
    for name, envoy in envoys.items():
        assert envoy.alive() and envoy.pid == pids[name], f"{name}'s Envoy restarted"
