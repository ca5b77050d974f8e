"""Istio's credential sockets: istio-agent's Envoy asks /var/run/secrets/credential-uds/socket
(cluster `sds-external`) for a Gateway's `credentialName: sds://NAME` under that whole name, and
`sds://NAME-cacert` for its CA, and /var/run/secrets/credential-uds/files-socket (cluster
`sds-files-grpc`) for mounted files as `file-cert:<cert>~<key>` and `file-root:<ca>`. One
sds-agent (`--istio-credential-sockets`, beside its workload socket, here under a temporary root)
serves an Envoy whose bootstrap is shaped like such a gateway's (examples/envoy-istio-gateway.yaml):
a client with a certificate from the operator's CA gets through both of its mTLS filter chains,
each served the certificate of its own files, and the agent's streams are the ones Istio names.
A name with `sds://` for a secret that is not configured is NOT_FOUND.

Run: SDS_AGENT_BIN=$(swift build --show-bin-path)/sds-agent .venv/bin/python -m pytest Tests/e2e/test_istio_credential_sockets.py -q -s
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import time

import grpc
import pytest

from conftest import Agent
from daemon_support import agent_argv, clean_env, fetch_secrets, poll, secrets_of, short_dir
from test_file_secrets import CA, write

WORKLOAD_SOCKET = "var/run/secrets/workload-spiffe-uds/socket"
CREDENTIAL_SOCKETS = "var/run/secrets/credential-uds"


def issue_client(ca: CA) -> tuple[str, str]:
    key, csr, cert = (ca.dir / f"client.{ext}" for ext in ("key", "csr", "pem"))
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", "/CN=gateway client"], check=True, capture_output=True)
    ext = ca.dir / "client.cnf"
    ext.write_text("extendedKeyUsage=clientAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
                    "-out", cert, "-days", "1", "-extfile", ext], check=True, capture_output=True)
    return str(cert), str(key)


def handshake(port: int, host: str, ca: CA, client: tuple[str, str]) -> tuple[str, int, bytes]:
    """(the served certificate's serial, status, body) of a GET through the gateway as `host`."""
    context = ssl.create_default_context(cafile=str(ca.cert))
    context.load_cert_chain(*client)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            serial = tls.getpeercert()["serialNumber"].lower().lstrip("0")
            conn = http.client.HTTPConnection(host, port, timeout=5)
            conn.sock = tls
            conn.request("GET", "/")
            response = conn.getresponse()
            return serial, response.status, response.read()


def test_an_istio_shaped_gateway_on_the_credential_sockets(start_envoy, processes):
    root = short_dir("cred-")
    processes.dirs.append(root)
    ca = CA(root)
    certs = root / "etc" / "gateway-certs"
    certs.mkdir(parents=True)
    served = {}
    for host in ("web", "files"):
        cert, key, served[host] = ca.issue(f"{host}.example")
        write(certs / f"{host}.pem", cert, 0o644)
        write(certs / f"{host}.key", key)
    write(certs / "ca.pem", ca.cert.read_text(), 0o644)
    client = issue_client(ca)

    workload_socket, credential_dir = root / WORKLOAD_SOCKET, root / CREDENTIAL_SOCKETS
    workload_socket.parent.mkdir(parents=True)
    argv = agent_argv(workload_socket, root / "state", "--socket-mode", "0660",
                      "--istio-credential-sockets", credential_dir,
                      "--secret", f"name=web,cert={certs / 'web.pem'},key={certs / 'web.key'}",
                      "--secret", f"name=web-cacert,ca={certs / 'ca.pem'}",
                      "--file-secret-dirs", certs, admin=f"unix:{root / 'admin.sock'}")
    agent = processes.add(Agent("agent", argv, root, workload_socket, env=clean_env(), admin=f"unix:{root / 'admin.sock'}"))
    agent.wait_serving()
    for name in ("socket", "files-socket"):
        path = credential_dir / name
        poll(lambda: path.is_socket(), 5, what=f"{path} listening")
        assert oct(os.stat(path).st_mode & 0o777) == "0o660"

    file_cert = f"file-cert:{certs / 'files.pem'}~{certs / 'files.key'}"
    file_root = f"file-root:{certs / 'ca.pem'}"
    t0 = time.monotonic()
    gateway = start_envoy("istio-gateway", workload_socket, CREDENTIAL_SOCKETS=credential_dir,
                          FILE_CERT=file_cert, FILE_ROOT=file_root)
    for host in ("web", "files"):
        poll(lambda: handshake(gateway.listen_port, f"{host}.example", ca, client)
             == (served[host], 200, b"hello from the gateway\n"), 15, what=f"{host}.example through the gateway")
    print(f"\nboth gateway chains served {time.monotonic() - t0:.2f}s after starting Envoy")

    streams = [s for s in agent.admin.json("/debug/streams") if s.get("node_id", "").startswith("router~")]
    held = sorted(name for s in streams for name in s.get("resources", []))
    assert held == sorted(["sds://web", "sds://web-cacert", file_cert, file_root]), streams
    assert all(not s.get("last_nack_message") for s in streams), streams

    # The credential socket answers only for names it serves; sds:// of an unknown secret is NOT_FOUND.
    with pytest.raises(grpc.RpcError) as refused:
        fetch_secrets(credential_dir / "socket", names=("sds://nothing",))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND, refused.value
    secret = secrets_of(fetch_secrets(credential_dir / "socket", names=("sds://web",)))["sds://web"]
    assert secret.tls_certificate.certificate_chain.inline_bytes.decode() == (certs / "web.pem").read_text()
