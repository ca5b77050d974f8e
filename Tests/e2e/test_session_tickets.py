"""Session ticket keys for a fleet: gateway Envoys, each with its own sds-agent, derive their
ticket keys from one seed file (`--session-ticket-keys name=tickets,seed=FILE,period=10s`), so a
TLS session established on one gateway resumes on another (TLS 1.3 and 1.2), also across an epoch
boundary; a ticket older than two periods does not; a gateway with another seed never resumes
one; a new seed takes effect without a restart. The resumption rate across gateways is measured
with and without shared keys and printed.

Gateways a, b and c serve the same certificate (a file secret); d, with the shared seed, one for
another name, and never resumes a's sessions; e, with the shared seed, the same name certified
again with another key, does: Envoy resumes only where the certificate's names are the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import ssl
import struct
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from conftest import Envoy, envoy_bin
from daemon_support import poll, short_dir
from test_daemon import run_cli, start  # noqa: F401 - `start` is a fixture
from test_file_secrets import CA

PERIOD = 10
HOST = "web.example"


def envoy_config(sds_socket, admin_port: int, port: int) -> str:
    sds = (f"{{resource_api_version: V3, api_config_source: {{api_type: GRPC, transport_api_version: V3, "
           f"grpc_services: [{{envoy_grpc: {{cluster_name: sds-grpc}}}}]}}}}")
    return f"""
node: {{id: gateway, cluster: gateway}}
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}}}
static_resources:
  listeners:
  - name: tls
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          session_ticket_keys_sds_secret_config: {{name: tickets, sds_config: {sds}}}
          common_tls_context:
            tls_certificate_sds_secret_configs: [{{name: web, sds_config: {sds}}}]
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          http_filters: [{{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: "/"}}, direct_response: {{status: 200, body: {{inline_string: ok}}}}}}]}}]}}
  clusters:
  - name: sds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: sds-grpc
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{pipe: {{path: "{sds_socket}"}}}}}}}}]}}]
"""


def derived_key(seed: bytes, epoch: int) -> bytes:
    """The README's derivation, implemented independently of the agent."""
    info = b"sds-agent session ticket key v1" + struct.pack(">q", epoch)
    return HKDF(algorithm=hashes.SHA256(), length=80, salt=None, info=info).derive(seed)


def write_seed(path: Path, seed: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(seed)
    os.rename(temporary, path)


class Client:
    """A TLS client that keeps its sessions, for one protocol version."""

    def __init__(self, ca: CA, version: ssl.TLSVersion):
        self.context = ssl.create_default_context(cafile=str(ca.cert))
        self.context.minimum_version = version
        self.context.maximum_version = version

    def connect(self, port: int, session: ssl.SSLSession | None = None) -> tuple[ssl.SSLSession, bool]:
        """(the session to resume next time, whether this one was resumed). A request is made and
        its answer read first: TLS 1.3 sends the ticket after the handshake."""
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with self.context.wrap_socket(raw, server_hostname=HOST, session=session) as tls:
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
                # Read to the end of the answer, not of the connection: Envoy waits a second
                # (its delayed close) for the client to close first.
                answer = b""
                while not answer.endswith(b"\r\n\r\nok") and (chunk := tls.recv(4096)):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok"), answer[:100]
                return tls.session, tls.session_reused


VERSIONS = {"TLSv1.3": ssl.TLSVersion.TLSv1_3, "TLSv1.2": ssl.TLSVersion.TLSv1_2}


def epoch() -> int:
    return int(time.time()) // PERIOD


def served_epoch(agent) -> tuple[int, str]:
    """The epoch of the keys the agent serves now, and their SDS version."""
    listed = [s for s in json.loads(agent.admin.get("/debug/secrets")) if s.get("kind") == "session_ticket_keys"]
    return listed[0]["epoch"], str(listed[0]["version"])


def envoy_secret_version(envoy) -> str | None:
    dump = json.loads(envoy.admin("/config_dump?resource=dynamic_active_secrets"))
    for config in dump.get("configs", []):
        if config.get("name") == "tickets":
            return str(config.get("version_info"))
    return None


def wait_until(epoch_number: int, gateways) -> None:
    """Awaits the push of epoch `epoch_number`'s keys: every agent serving them, and every Envoy
    holding that version of the secret."""
    def pushed() -> bool:
        for agent, envoy in gateways:
            served, version = served_epoch(agent)
            if served < epoch_number or envoy_secret_version(envoy) != version:
                return False
        return True

    poll(pushed, 2 * PERIOD + 5, interval=0.1, what=f"the keys of epoch {epoch_number} pushed to every gateway")


def test_a_fleet_sharing_a_seed_resumes_sessions_across_gateways(start, processes, tmp_path, free_port):
    ca = CA(tmp_path)
    cert, key, _ = ca.issue(HOST)
    (tmp_path / "web.pem").write_text(cert)
    (tmp_path / "web.key").write_text(key)
    os.chmod(tmp_path / "web.key", 0o600)
    shared, other = tmp_path / "shared.seed", tmp_path / "other.seed"
    write_seed(shared, os.urandom(32))
    write_seed(other, os.urandom(48))

    # d: the shared seed, a certificate for another name; e: the shared seed, the same name
    # certified again with another key.
    for name, host in (("d", "other.example"), ("e", HOST)):
        cert, key, _ = ca.issue(host)
        (tmp_path / f"{name}.pem").write_text(cert)
        (tmp_path / f"{name}.key").write_text(key)
        os.chmod(tmp_path / f"{name}.key", 0o600)
    ports = {}
    seeds = {}
    gateways = {}
    for name, seed in (("a", shared), ("b", shared), ("c", other), ("d", shared), ("e", shared)):
        # Each gateway its own copy of the seed, as each host would have.
        own = tmp_path / f"{name}.seed"
        write_seed(own, seed.read_bytes())
        seeds[name] = own
        pair = "web" if name in "abc" else name
        agent = start(f"agent-{name}", "--secret", f"name=web,cert={tmp_path / pair}.pem,key={tmp_path / pair}.key",
                      "--session-ticket-keys", f"name=tickets,seed={own},period={PERIOD}s")
        admin_port, port = free_port(), free_port()
        config = tmp_path / f"envoy-{name}.yaml"
        config.write_text(envoy_config(agent.socket_path, admin_port, port))
        envoy = processes.add(Envoy(f"envoy-{name}", [envoy_bin(), "-c", config, "--concurrency", "1",
                                                      "--disable-hot-restart", "-l", "info"], tmp_path, admin_port, port))
        envoy.wait_live()
        ports[name] = port
        gateways[name] = (agent, envoy)
        # /debug/secrets shows the epoch and the fingerprint the README's derivation gives, never a key.
        listed = [s for s in json.loads(agent.admin.get("/debug/secrets")) if s.get("kind") == "session_ticket_keys"]
        assert [s["name"] for s in listed] == ["tickets"], listed
        key = derived_key(seed.read_bytes(), listed[0]["epoch"])
        assert listed[0]["fingerprint"] == hashlib.sha256(key).hexdigest()[:8], listed
        log = "\n".join(agent.stdout_lines()) + agent.stderr_path.read_text()
        assert "fingerprint" in log and key.hex() not in log and seed.read_bytes().hex() not in log

    for label, version in VERSIONS.items():
        client = Client(ca, version)
        poll(lambda: client.connect(ports["a"]), 10, what=f"gateway a answers over {label}")
        session, reused = client.connect(ports["a"])
        assert not reused
        _, reused = client.connect(ports["b"], session)
        assert reused, f"{label}: a session from gateway a did not resume on gateway b"
        session, _ = client.connect(ports["b"])
        _, reused = client.connect(ports["a"], session)
        assert reused, f"{label}: a session from gateway b did not resume on gateway a"
        _, reused = client.connect(ports["c"], session)
        assert not reused, f"{label}: gateway c, with another seed, resumed a session from gateway b"
        session, _ = client.connect(ports["c"])
        _, reused = client.connect(ports["a"], session)
        assert not reused, f"{label}: gateway a resumed a session from gateway c"
        print(f"{label}: a → b and b → a resumed; b → c and c → a did not")

    # Envoy resumes only where the certificate's names are the same: the key alone does not matter.
    client = Client(ca, ssl.TLSVersion.TLSv1_3)
    session, _ = client.connect(ports["a"])
    client.context.check_hostname = False
    _, reused = client.connect(ports["d"], session)
    assert not reused, "gateway d, whose certificate names another host, resumed a session from gateway a"
    _, reused = client.connect(ports["e"], session)
    assert reused, "gateway e, whose certificate has the same names and another key, did not resume"
    client.context.check_hostname = True
    print("a session from gateway a resumed on e (same names, another key), not on d (another name)")

    # Across one epoch boundary: the ticket's key is the previous one, still decrypted with.
    client = Client(ca, ssl.TLSVersion.TLSv1_3)
    issued = epoch() + 1
    wait_until(issued, [gateways[n] for n in "ab"])
    session, _ = client.connect(ports["a"])
    assert epoch() == issued
    wait_until(issued + 1, [gateways[n] for n in "ab"])
    _, reused = client.connect(ports["b"], session)
    assert reused, "a ticket from the previous epoch did not resume on the other gateway"
    # Two epochs later: its key is no longer among the three served.
    issued = epoch() + 1
    wait_until(issued, [gateways[n] for n in "ab"])
    session, _ = client.connect(ports["a"])
    assert epoch() == issued
    wait_until(issued + 2, [gateways[n] for n in "ab"])
    _, reused = client.connect(ports["b"], session)
    assert not reused, "a ticket two epochs old resumed"
    print("a ticket from the previous epoch resumed on the other gateway; one from two epochs before did not")

    # A new seed on a and b (c's): taken without a restart; a's old tickets stop resuming on a.
    old, _ = client.connect(ports["a"])
    for name in ("a", "b"):
        write_seed(seeds[name], other.read_bytes())
    changed = time.monotonic()

    def resumes_from_c() -> bool:
        session, _ = client.connect(ports["c"])
        return client.connect(ports["a"], session)[1] and client.connect(ports["b"], session)[1]

    poll(resumes_from_c, 10, interval=0.05, what="gateways a and b resuming c's sessions after the new seed")
    print(f"the new seed resumed c's sessions on a and b {time.monotonic() - changed:.2f}s after it was written")
    _, reused = client.connect(ports["a"], old)
    assert not reused, "a ticket issued under the old seed still resumed"


def test_resumption_rate_across_gateways_with_and_without_shared_keys(start, processes, tmp_path, free_port):
    ca = CA(tmp_path)
    cert, key, _ = ca.issue(HOST)
    (tmp_path / "web.pem").write_text(cert)
    (tmp_path / "web.key").write_text(key)
    os.chmod(tmp_path / "web.key", 0o600)
    ports = {}
    for name in ("a", "b", "c"):
        seed = tmp_path / f"{name}.seed"
        write_seed(seed, b"s" * 32 if name != "c" else os.urandom(32))
        agent = start(f"agent-{name}", "--secret", f"name=web,cert={tmp_path / 'web.pem'},key={tmp_path / 'web.key'}",
                      "--session-ticket-keys", f"name=tickets,seed={seed},period={PERIOD}s")
        admin_port, port = free_port(), free_port()
        config = tmp_path / f"envoy-{name}.yaml"
        config.write_text(envoy_config(agent.socket_path, admin_port, port))
        envoy = processes.add(Envoy(f"envoy-{name}", [envoy_bin(), "-c", config, "--concurrency", "1",
                                                      "--disable-hot-restart", "-l", "warning"], tmp_path, admin_port, port))
        envoy.wait_live()
        ports[name] = port
    # README's figures are from 1,000 (SDS_AGENT_TICKET_CONNECTIONS=1000); the suite keeps to 200.
    connections = int(os.environ.get("SDS_AGENT_TICKET_CONNECTIONS", "200"))
    rates = {}
    for label, version in VERSIONS.items():
        for fleet, names in (("shared keys", ("a", "b")), ("own keys", ("a", "c"))):
            client = Client(ca, version)
            poll(lambda: client.connect(ports[names[0]]), 10, what="the first gateway answers")
            chooser = random.Random(26)
            session, issuer = None, None
            moved = moved_resumed = stayed = stayed_resumed = 0
            began = time.monotonic()
            for _ in range(connections):
                gateway = chooser.choice(names)
                session, reused = client.connect(ports[gateway], session)
                if issuer is not None and gateway != issuer:
                    moved += 1
                    moved_resumed += reused
                elif issuer is not None:
                    stayed += 1
                    stayed_resumed += reused
                # A resumed connection brings a new ticket too, from the gateway it landed on.
                issuer = gateway
            took = time.monotonic() - began
            total = (moved_resumed + stayed_resumed) / (moved + stayed)
            rates[(label, fleet)] = (moved_resumed / moved, total)
            print(f"{label}, {fleet}: {connections} connections over 2 gateways in {took:.1f}s; resumed "
                  f"{moved_resumed}/{moved} landing on another gateway than the ticket's "
                  f"({100 * moved_resumed / moved:.1f}%), {stayed_resumed}/{stayed} on the same, "
                  f"{100 * total:.1f}% overall")
    for label in VERSIONS:
        assert rates[(label, "shared keys")][0] > 0.99, rates
        assert rates[(label, "own keys")][0] == 0, rates


def test_an_unusable_seed_refuses_the_start_naming_the_setting(tmp_path):
    seed = tmp_path / "seed"
    seed.write_bytes(b"x" * 32)
    os.chmod(seed, 0o644)
    directory = short_dir()
    result = run_cli("run", "--state-dir", directory / "state", "--socket", directory / "sds.sock",
                     "--session-ticket-keys", f"name=tickets,seed={seed},period=10s", timeout=60)
    assert result.returncode != 0
    assert "session-ticket-keys" in result.stderr and "chmod 600" in result.stderr, result.stderr
    os.chmod(seed, 0o600)
    seed.write_bytes(b"x" * 31)
    result = run_cli("run", "--state-dir", directory / "state", "--socket", directory / "sds.sock",
                     "--session-ticket-keys", f"name=tickets,seed={seed},period=10s", timeout=60)
    assert result.returncode != 0
    assert "session-ticket-keys" in result.stderr and "31 bytes" in result.stderr, result.stderr
