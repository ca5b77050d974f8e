"""Generic secrets from files: `--secret name=NAME,generic=FILE` is served as a generic_secret,
and Envoy 1.40's credential injector (`envoy.http.injected_credentials.generic`,
examples/envoy-generic-secret.yaml) sends it upstream as a header value.

test_a_generic_secret_reaches_the_backend_and_follows_its_file (SDS over GRPC, then DELTA_GRPC):
the backend sees the file's value
(Envoy drops the trailing line break itself); a rewrite in place and a rename over the file are
seen within 2 s on the same Envoy (printed: how long each took); an empty file and a vanished
file keep the last good value, logged and counted; the file reappearing is served again.
`sds-agent fetch` never prints the value.

test_a_generic_secret_follows_kubernetes_data_swaps: three `..data` swaps, each pushed on the open
stream (printed: how long after the swap).

test_a_multi_key_generic_secret_is_served_and_envoy_accepts_it: `generic.KEY=FILE` fills
`GenericSecret.secrets`; Envoy takes the push (no NACK), and its credential injector, which reads
only `secret`, refuses requests with it (401): the map is for filters that read it.

Run: SDS_AGENT_BIN=$(swift build --show-bin-path)/sds-agent .venv/bin/python -m pytest Tests/e2e/test_generic_secrets.py -q -s
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import agent_bin
from daemon_support import SdsStream, poll, secrets_of
from test_daemon import run_cli, start  # noqa: F401 - `start` is a fixture

HEADER = "X-Upstream-Token"
NAME = "upstream-token"


class Backend:
    """An HTTP server on 127.0.0.1 that answers 200 and remembers the last HEADER it was sent."""

    def __init__(self):
        self.lock = threading.Lock()
        self.last: str | None = None
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                with backend.lock:
                    backend.last = self.headers.get(HEADER)
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def request(port: int) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def seen_by_backend(port: int, backend: Backend) -> str | None:
    status, _ = request(port)
    with backend.lock:
        return backend.last if status == 200 else None


def write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


@pytest.mark.parametrize("api_type", ["GRPC", "DELTA_GRPC"])
def test_a_generic_secret_reaches_the_backend_and_follows_its_file(start, start_envoy, tmp_path, api_type):
    token = tmp_path / "token"
    write(token, "first-token\n")
    agent = start("agent", "--secret", f"name={NAME},generic={token}")
    backend = Backend()
    try:
        envoy = start_envoy("generic-secret", agent.socket_path, api_type=api_type, UPSTREAM_PORT=backend.port,
                            SECRET_NAME=NAME, HEADER=HEADER)
        pid = envoy.pid
        poll(lambda: seen_by_backend(envoy.listen_port, backend) == "first-token", 15,
             what="the file's value at the backend")

        took = {}
        for how, value in (("in place", "second-token"), ("renamed over", "third-token")):
            t0 = time.monotonic()
            if how == "in place":
                write(token, value + "\n")
            else:
                write(tmp_path / ".token.tmp", value)
                os.rename(tmp_path / ".token.tmp", token)
            poll(lambda: seen_by_backend(envoy.listen_port, backend) == value, 2, interval=0.05,
                 what=f"the value written {how} at the backend within 2 s")
            took[how] = time.monotonic() - t0

        write(token, "")
        agent.wait_log(lambda line: "cannot use the changed files" in line and "empty" in line, 5)
        os.unlink(token)
        agent.wait_log(lambda line: "cannot use the changed files" in line and "missing" in line, 5)
        assert seen_by_backend(envoy.listen_port, backend) == "third-token"
        metrics = agent.admin.get("/metrics")
        for reason in ("empty", "missing"):
            assert f'sds_agent_file_secret_errors_total{{secret="{NAME}",reason="{reason}"}} 1' in metrics, metrics

        t0 = time.monotonic()
        write(token, "fourth-token\n")
        poll(lambda: seen_by_backend(envoy.listen_port, backend) == "fourth-token", 2, interval=0.05,
             what="the file's value once it reappears")
        took["reappeared"] = time.monotonic() - t0
        assert envoy.alive() and envoy.pid == pid, "Envoy restarted"
        print(f"\n{api_type}: the backend saw the new value after " + ", ".join(f"{k}: {v * 1000:.0f} ms" for k, v in took.items()))

        shown = subprocess.run([str(agent_bin()), "fetch", "--socket", str(agent.socket_path), "--resource", NAME],
                               capture_output=True, text=True, timeout=30, env=agent.env)
        assert "fourth-token" not in shown.stdout + shown.stderr
        assert "is a generic secret" in shown.stderr and "13 bytes" in shown.stderr, shown.stderr
        for secret in ("first-token", "second-token", "third-token", "fourth-token"):
            assert not any(secret in line for line in agent.log_lines()), f"{secret} reached the log"
    finally:
        backend.close()


def test_a_multi_key_generic_secret_is_served_and_envoy_accepts_it(start, start_envoy, tmp_path):
    for key, value in (("client-id", "edge"), ("client-secret", "s3cret\n")):
        write(tmp_path / key, value)
    config = tmp_path / "config.yaml"
    config.write_text(f"secret:\n  - name: oauth\n    generic: {{client-id: {tmp_path / 'client-id'}, "
                      f"client-secret: {tmp_path / 'client-secret'}}}\n")
    agent = start("agent", "--config", config)
    stream = SdsStream(agent.socket_path, names=("oauth",))
    generic = secrets_of(stream.next_response(5))["oauth"].generic_secret
    assert {key: source.inline_bytes for key, source in generic.secrets.items()} == {
        "client-id": b"edge", "client-secret": b"s3cret\n"}
    assert not generic.HasField("secret")
    stream.send(None)

    backend = Backend()
    try:
        envoy = start_envoy("generic-secret", agent.socket_path, UPSTREAM_PORT=backend.port, SECRET_NAME="oauth",
                            HEADER=HEADER)
        poll(lambda: any(s.get("node_id") == "generic-secret" and s.get("resources") == ["oauth"]
                         for s in agent.admin.json("/debug/streams")), 10, what="Envoy's stream for oauth")
        status, body = request(envoy.listen_port)
        streams = [s for s in agent.admin.json("/debug/streams") if s.get("node_id") == "generic-secret"]
        print(f"\nEnvoy's credential injector with only GenericSecret.secrets: {status} {body!r}")
        assert status == 401 and b"Failed to inject credential" in body
        assert all(not s.get("last_nack_message") for s in streams), streams
    finally:
        backend.close()

    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(f"secret:\n  - {{name: web, cert: /a.pem, generic: {tmp_path / 'client-id'}}}\n")
    refused = run_cli("check-config", "--config", mixed)
    assert refused.returncode != 0 and "a generic secret has no cert" in refused.stderr, refused.stderr


def test_a_generic_secret_follows_kubernetes_data_swaps(start, tmp_path):
    """A Secret volume as kubelet writes it: `token` -> `..data/token`, `..data` swapped by rename
    to a new timestamped directory. Each swap is pushed on the open stream."""
    mount = tmp_path / "mount"
    mount.mkdir()

    def swap(generation: int, value: str) -> None:
        data = mount / f"..2026_12_06_{generation}"
        data.mkdir()
        write(data / "token", value)
        os.symlink(data.name, mount / "..data_tmp")
        old = os.readlink(mount / "..data") if (mount / "..data").is_symlink() else None
        os.rename(mount / "..data_tmp", mount / "..data")
        if not (mount / "token").is_symlink():
            os.symlink("..data/token", mount / "token")
        if old:
            (mount / old / "token").unlink()
            (mount / old).rmdir()

    swap(1, "k8s-1\n")
    agent = start("agent", "--secret", f"name=k8s,generic={mount / 'token'}")
    stream = SdsStream(agent.socket_path, names=("k8s",))
    first = stream.next_response(5)
    assert secrets_of(first)["k8s"].generic_secret.secret.inline_bytes == b"k8s-1\n"
    stream.ack(first)
    for generation in (2, 3, 4):
        t0 = time.monotonic()
        swap(generation, f"k8s-{generation}\n")
        response = stream.next_response(2)
        assert secrets_of(response)["k8s"].generic_secret.secret.inline_bytes == f"k8s-{generation}\n".encode()
        print(f"..data swap {generation - 1}: pushed after {(time.monotonic() - t0) * 1000:.0f} ms")
        stream.ack(response)
    stream.send(None)
