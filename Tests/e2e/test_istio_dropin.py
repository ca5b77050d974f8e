"""Drop-in for Istio sidecars: istio-agent serves SDS itself unless a socket already exists at
/var/run/secrets/workload-spiffe-uds/socket. sds-agent listening at that path (here under a
temporary root) serves an Envoy whose bootstrap is shaped like Istio's sidecar bootstrap
(`sds-grpc` cluster on that pipe, Istio's sds_config, `default` and `ROOTCA`), and a client with
a certificate from the agent gets through its inbound mTLS listener.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl

from conftest import SPIFFE_ID, Agent, wait_envoys_hold
from daemon_support import agent_argv, clean_env, short_dir

ISTIO_SOCKET = "var/run/secrets/workload-spiffe-uds/socket"


def test_envoy_with_an_istio_shaped_bootstrap_on_the_workload_socket(start_envoy, processes):
    root = short_dir("istio-")
    processes.dirs.append(root)
    socket_path = root / ISTIO_SOCKET
    socket_path.parent.mkdir(parents=True)
    argv = agent_argv(socket_path, root / "state", "--socket-mode", "0660")
    agent = processes.add(Agent("agent", argv, root, socket_path, env=clean_env()))
    agent.wait_serving()
    assert oct(os.stat(socket_path).st_mode & 0o777) == "0o660"
    sidecar = start_envoy("istio-sidecar", socket_path)

    secrets, _ = agent.fetch("default", "ROOTCA", extra=["--show-key"])
    by_name = {s["name"]: s for s in secrets}
    wait_envoys_hold([sidecar], by_name["default"]["serial"], timeout=20)
    for name, content in (("client.pem", by_name["default"]["pem"]), ("client.key", by_name["default"]["private_key"]),
                          ("roots.pem", by_name["ROOTCA"]["pem"])):
        (root / name).write_text(content)
    os.chmod(root / "client.key", 0o600)
    context = ssl.create_default_context(cafile=str(root / "roots.pem"))
    context.check_hostname = False
    context.load_cert_chain(str(root / "client.pem"), str(root / "client.key"))
    with socket.create_connection(("127.0.0.1", sidecar.listen_port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            conn = http.client.HTTPConnection("127.0.0.1", sidecar.listen_port, timeout=5)
            conn.sock = tls
            conn.request("GET", "/")
            response = conn.getresponse()
            assert response.status == 200 and response.read() == b"hello from the sidecar\n"
            assert response.getheader("x-peer-spiffe-id") == SPIFFE_ID
