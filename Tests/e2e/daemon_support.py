"""Helpers for the daemon end-to-end tests (test_daemon.py): the agent's command line and a clean
environment for it, an sd_notify receiver, an independent SDS client (grpcio + xds-protos), an
admin endpoint client (TCP loopback or Unix socket) and Prometheus text parsing.

The processes themselves are conftest's (`Agent`, `ManagedProcess`, `ProcessRegistry`).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from conftest import AGENT_START_TIMEOUT as START_TIMEOUT
from conftest import SECRET_TYPE_URL, StreamCall, agent_bin

RESPONSE_TIMEOUT = 15.0

# Variables a parent (a systemd service, a CI runner) could leak into the agent's environment and
# that change what it does; every agent started here gets exactly the ones a test asks for.
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS",
               "LISTEN_FDNAMES", "JOURNAL_STREAM", "INVOCATION_ID", "RUNTIME_DIRECTORY", "STATE_DIRECTORY")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV and not k.startswith("SDS_AGENT_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def short_dir(prefix: str = "sdsd-") -> Path:
    """A fresh directory with a short path (Unix socket paths are limited to ~108 bytes)."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


# --------------------------------------------------------------------------- agent command line


def agent_argv(socket_path: Path | None, state_dir: Path, *extra, admin: str | None = None,
               cert_ttl: str | None = "1h", log_level: str | None = "debug") -> list[str]:
    argv = [str(agent_bin()), "run", "--state-dir", str(state_dir)]
    if socket_path is not None:
        argv += ["--socket", str(socket_path)]
    if cert_ttl is not None:
        argv += ["--cert-ttl", cert_ttl]
    if log_level is not None:
        argv += ["--log-level", log_level]
    if admin is not None:
        argv += ["--admin", admin]
    return argv + [str(a) for a in extra]


# --------------------------------------------------------------------------- sd_notify


@dataclass
class NotifyMessage:
    at: float  # time.monotonic() on arrival
    raw: str
    fields: dict[str, str] = field(default_factory=dict)
    sds_socket_accepted: bool | None = None  # for READY=1: did the SDS socket accept right then?


class NotifyReceiver:
    """An AF_UNIX SOCK_DGRAM socket standing in for systemd's NOTIFY_SOCKET. A thread records
    every datagram with its arrival time. When READY=1 arrives and `probe_socket` is set, the
    thread immediately tries to connect to that path, recording whether it accepted."""

    def __init__(self, directory: Path, probe_socket: Path | None = None):
        self.path = directory / "notify.sock"
        assert len(str(self.path)) < 100, self.path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.probe_socket = probe_socket
        self.messages: list[NotifyMessage] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            at = time.monotonic()
            raw = data.decode("utf-8", "replace")
            fields = {}
            for line in raw.split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            msg = NotifyMessage(at, raw, fields)
            if fields.get("READY") == "1" and self.probe_socket is not None:
                msg.sds_socket_accepted = _connects(self.probe_socket)
            with self._cond:
                self.messages.append(msg)
                self._cond.notify_all()

    def wait_for(self, predicate, timeout: float, start: int = 0, what: str = "notify message") -> tuple[int, NotifyMessage]:
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self.messages):
                    if predicate(self.messages[i]):
                        return i, self.messages[i]
                    i += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = [m.raw for m in self.messages[start:]]
                    raise AssertionError(f"{what} not received within {timeout:.0f}s; received since: {got}")
                self._cond.wait(remaining)

    def snapshot(self) -> list[NotifyMessage]:
        with self._cond:
            return list(self.messages)

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self.sock.close()


def has(key: str, value: str | None = None):
    return lambda m: key in m.fields and (value is None or m.fields[key] == value)


def _connects(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


# --------------------------------------------------------------------------- SDS client


def sds_stub(socket_path: Path):
    import grpc
    from envoy.service.secret.v3 import sds_pb2_grpc

    channel = grpc.insecure_channel(f"unix:{socket_path}")
    return channel, sds_pb2_grpc.SecretDiscoveryServiceStub(channel)


def sds_request(names=("default", "ROOTCA"), node_id: str = "e2e-daemon", **kw):
    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import discovery_pb2

    return discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id=node_id, cluster="e2e"), type_url=SECRET_TYPE_URL,
                                          resource_names=list(names), **kw)


def secrets_of(resp) -> dict:
    from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

    out = {}
    for any_ in resp.resources:
        assert any_.type_url == SECRET_TYPE_URL, any_.type_url
        s = secret_pb2.Secret()
        assert any_.Unpack(s)
        assert s.name not in out, f"{s.name} twice in one response"
        out[s.name] = s
    return out


def inline_pem(source) -> str:
    kind = source.WhichOneof("specifier")
    assert kind in ("inline_string", "inline_bytes"), f"not an inline data source: {kind}"
    value = getattr(source, kind)
    return value.decode() if isinstance(value, bytes) else value


def leaf_of(resp_or_secret):
    """The leaf certificate (cryptography x509) of the `default` secret of a response."""
    from cryptography import x509

    secret = secrets_of(resp_or_secret)["default"] if hasattr(resp_or_secret, "resources") else resp_or_secret
    chain = inline_pem(secret.tls_certificate.certificate_chain)
    return x509.load_pem_x509_certificate(chain.encode())


def serial_hex(cert) -> str:
    return format(cert.serial_number, "x")


def lifetime_seconds(cert) -> float:
    return (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()


def fetch_secrets(socket_path: Path, names=("default", "ROOTCA"), timeout: float = RESPONSE_TIMEOUT,
                  wait_for_ready: bool = False):
    channel, stub = sds_stub(socket_path)
    try:
        return stub.FetchSecrets(sds_request(names), timeout=timeout, wait_for_ready=wait_for_ready)
    finally:
        channel.close()


class SdsStream(StreamCall):
    """A StreamSecrets call driven from the test that owns its channel and subscribes at once."""

    def __init__(self, socket_path: Path, names=("default", "ROOTCA"), node_id: str = "e2e-daemon"):
        self.names = list(names)
        self.node_id = node_id
        self.channel, stub = sds_stub(socket_path)
        super().__init__(lambda requests: stub.StreamSecrets(requests, timeout=600), label=f"stream {node_id}")
        self.send(sds_request(self.names, node_id))

    def next_event(self, timeout: float = RESPONSE_TIMEOUT):
        return super().next_event(timeout)

    def next_response(self, timeout: float = RESPONSE_TIMEOUT):
        return super().next_response(timeout)

    def ack(self, resp) -> None:
        self.send(sds_request(self.names, self.node_id, version_info=resp.version_info, response_nonce=resp.nonce))

    def first_response_acked(self, timeout: float = RESPONSE_TIMEOUT):
        resp = self.next_response(timeout)
        self.ack(resp)
        return resp

    def wait_serial(self, serial: str, timeout: float = RESPONSE_TIMEOUT):
        """ACK every response until one carries a leaf with `serial` (lowercase hex); that response."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"stream {self.node_id}: serial {serial} not pushed within {timeout:.0f}s "
                                     f"(saw {seen})")
            resp = self.next_response(remaining)
            self.ack(resp)
            if "default" in secrets_of(resp):
                got = serial_hex(leaf_of(resp))
                seen.append(got)
                if got == serial.lower().lstrip("0"):
                    return resp

    def close(self) -> None:
        self._requests.put(None)
        self.call.cancel()
        self.channel.close()


# --------------------------------------------------------------------------- admin endpoint


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class AdminClient:
    """HTTP/1.1 client for the admin endpoint: '127.0.0.1:PORT', '[::1]:PORT' or 'unix:/path'."""

    def __init__(self, address: str):
        self.address = address

    def _conn(self, timeout: float):
        if self.address.startswith("unix:"):
            return _UnixHTTPConnection(self.address[len("unix:"):], timeout)
        host, port = self.address.rsplit(":", 1)
        return http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)

    def request(self, method: str, path: str, timeout: float = 10.0) -> tuple[int, str, dict]:
        conn = self._conn(timeout)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace"), {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()

    def get(self, path: str, expect: int | None = 200) -> str:
        status, body, _ = self.request("GET", path)
        if expect is not None:
            assert status == expect, f"GET {path}: {status} (expected {expect}): {body[:500]}"
        return body

    def json(self, path: str):
        body = self.get(path)
        try:
            return json.loads(body)
        except json.JSONDecodeError as e:
            raise AssertionError(f"GET {path} is not JSON ({e}): {body[:500]}") from None

    def metrics(self) -> "Metrics":
        return Metrics(self.get("/metrics"))

    def rotate(self, identity: str | None = None) -> tuple[int, str]:
        path = "/rotate" if identity is None else f"/rotate?identity={identity}"
        status, body, _ = self.request("POST", path)
        return status, body

    def current_serial(self) -> str:
        secrets = self.json("/debug/secrets")
        (default,) = [s for s in secrets if s.get("name") == "default"]
        return default["serial"].lower()


def wait_admin(admin: AdminClient, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            admin.request("GET", "/healthz", timeout=2)
            return
        except OSError as e:
            last = e
            time.sleep(0.1)
    raise AssertionError(f"admin endpoint {admin.address} not answering within {timeout:.0f}s: {last!r}")


class Metrics:
    """Prometheus text parsed with prometheus_client; samples indexed by name and labels."""

    def __init__(self, text: str):
        from prometheus_client.parser import text_string_to_metric_families

        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: dict[tuple[str, tuple], float] = {}
        for fam in self.families.values():
            for s in fam.samples:
                self.samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def value(self, name: str, default: float | None = 0.0, **labels) -> float:
        """A sample's value; `default` if absent (client libraries omit counters never touched)."""
        key = (name, tuple(sorted(labels.items())))
        if key not in self.samples:
            assert default is not None, f"no sample {name}{labels or ''} in /metrics:\n{self.text}"
            return default
        return self.samples[key]

    def has(self, name: str) -> bool:
        return any(k[0] == name for k in self.samples)


def poll(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Call predicate() until it returns a truthy value; that value. Fails after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except AssertionError as e:  # e.g. a transient HTTP status while the state settles
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f}s (last: {last!r})")
        time.sleep(interval)


def parse_iso(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(timezone.utc)
