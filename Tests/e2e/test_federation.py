"""Federation: a backend Envoy that validates peers with `ALL` (Envoy's SPIFFE certificate
validator, every trust domain's bundle from sds-agent) accepts a client whose certificate comes
from another trust domain's CA while that domain's bundle is configured (`--trust-bundle`), keeps
the last good bundle when the file turns bad, and refuses every new handshake once the file
holds another root or the trust domain is removed by reload.

Each handshake is a new TLS connection from a fresh SSLContext, so no session is resumed (a
resumed session skips the certificate check). Envoy does not re-check connections that are
already established.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
from pathlib import Path

from daemon_support import poll
from test_daemon import start  # noqa: F401 - `start` is a fixture

OTHER_DOMAIN = "other.example"
GATEWAY_ID = f"spiffe://{OTHER_DOMAIN}/ns/edge/sa/gateway"


def write_private(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def client_files(agent, directory: Path) -> tuple[Path, Path]:
    """The agent's `default` certificate and key, as files for a TLS client."""
    secrets, _ = agent.fetch("default", extra=["--show-key"])
    (default,) = secrets
    return write_private(directory / "client.pem", default["pem"]), write_private(directory / "client.key",
                                                                                   default["private_key"])


def handshake(port: int, cert: Path, key: Path, server_roots: Path) -> tuple[int, str | None] | str:
    """A GET over a new mTLS connection; (status, x-peer-spiffe-id), or the error as text."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server_roots))
    context.check_hostname = False
    context.load_cert_chain(str(cert), str(key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw) as tls:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.sock = tls
                conn.request("GET", "/hello")
                response = conn.getresponse()
                response.read()
                return response.status, response.getheader("x-peer-spiffe-id")
    except (OSError, ssl.SSLError, http.client.HTTPException) as e:
        return f"{type(e).__name__}: {e}"


def another_root(directory: Path) -> Path:
    key, cert = directory / "stranger.key", directory / "stranger.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/O=stranger/CN=another root",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
                   check=True, capture_output=True)
    return cert


def federated(agent) -> dict:
    (entry,) = agent.admin.json("/debug/trust")["federated"]
    return entry


def test_federated_trust_domain_with_the_spiffe_validator(start, start_envoy, tmp_path):
    other = start("agent-other", "--trust-domain", OTHER_DOMAIN, "--identity", GATEWAY_ID)
    other_root = other.log_dir / "state" / "ca-cert.pem"
    bundle = tmp_path / "other-bundle.pem"
    shutil.copy(other_root, bundle)
    config = tmp_path / "agent.yaml"
    config.write_text(f"trust-bundle:\n  - spiffe://{OTHER_DOMAIN}={bundle}\n")
    agent = start("agent", "--config", config)
    backend = start_envoy("backend-spiffe", agent.socket_path, SPIFFE_ID=GATEWAY_ID)
    cert, key = client_files(other, tmp_path)
    (rootca,) = agent.fetch("ROOTCA")[0]
    server_roots = tmp_path / "server-roots.pem"
    server_roots.write_text(rootca["pem"])

    def accepted():
        result = handshake(backend.listen_port, cert, key, server_roots)
        return result if result == (200, GATEWAY_ID) else None

    def refused():
        result = handshake(backend.listen_port, cert, key, server_roots)
        return isinstance(result, str) and result

    # The other domain's bundle is configured: its workload is accepted.
    poll(accepted, 15, what="a handshake from the other trust domain accepted")
    served, _ = agent.fetch("ALL")
    assert served[0]["validator"] == "spiffe" and set(served[0]["trust_domains"]) == {"cluster.local", OTHER_DOMAIN}

    # A garbage file, then an empty one: the last good bundle stays, each is logged and counted.
    for content, reason in ((b"not a bundle\n", "unparsable"), (b"", "empty")):
        bundle.write_bytes(content)
        poll(lambda: federated(agent)["last_error"] and federated(agent)["last_error"].startswith(reason), 10,
             what=f"the {reason} bundle file noticed")
        assert federated(agent)["served"] is True
        assert accepted(), "a bad bundle file changed what is trusted"
        metric = f'sds_agent_trust_bundle_errors_total{{trust_domain="{OTHER_DOMAIN}",reason="{reason}"}} 1'
        assert metric in agent.admin.get("/metrics")

    # Another root in the file: every new handshake from the other domain's workload fails.
    stranger = another_root(tmp_path)
    tmp = tmp_path / "next.pem"
    shutil.copy(stranger, tmp)
    os.rename(tmp, bundle)
    print("refused after the root changed:", poll(refused, 10, what="the handshake refused after the root changed"))
    assert federated(agent)["last_error"] is None

    # Its own root again: accepted again.
    shutil.copy(other_root, tmp)
    os.rename(tmp, bundle)
    poll(accepted, 10, what="the handshake accepted again")

    # The trust domain removed by reload: pushed as removed, every new handshake fails.
    config.write_text("log-level: debug\n")
    agent.signal(signal.SIGHUP)
    agent.wait_log(lambda line: "reloaded configuration" in line, 10)
    print("refused after removal:", poll(refused, 10, what="the handshake refused after the domain was removed"))
    assert agent.admin.json("/debug/trust")["federated"] == []
    served, _ = agent.fetch("ALL")
    assert set(served[0]["trust_domains"]) == {"cluster.local"}
    assert backend.alive(), "the backend Envoy died"
    # The removed domain's name is still served, trusting nothing, to streams that hold it.
    removed, _ = agent.fetch(f"spiffe://{OTHER_DOMAIN}")
    assert json.dumps(removed).count("serial") >= 1
    assert other_root.read_text().strip() not in removed[0]["pem"]
