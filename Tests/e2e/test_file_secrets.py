"""Secrets from files: an Envoy terminating TLS with secrets sds-agent reads from files. Each
secret's files are replaced while handshakes run — written in place, renamed over, the
Kubernetes `..data` symlink swap (three times in a row), certbot's live/ → archive/ symlinks —
and the new serial is served within 2 s with no failed handshake; a torn write (a key from
another certificate) keeps the old certificate served, logged and counted.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

from conftest import Envoy, envoy_bin
from daemon_support import poll
from test_daemon import start  # noqa: F401 - `start` is a fixture
from test_node_agent import node_agent, open_dirs  # noqa: F401 - fixtures

NAMES = ("inplace", "renamed", "kubernetes", "certbot")


class CA:
    def __init__(self, directory: Path):
        self.dir = directory
        self.key, self.cert = directory / "ca.key", directory / "ca.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=file secrets test CA",
                        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
                       check=True, capture_output=True)
        self.count = 0

    def issue(self, host: str) -> tuple[str, str, str]:
        """(cert PEM, key PEM, serial) for `host`."""
        self.count += 1
        key, csr, cert = (self.dir / f"{host}-{self.count}.{ext}" for ext in ("key", "csr", "pem"))
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", csr, "-subj", f"/CN={host}"], check=True, capture_output=True)
        ext = self.dir / "ext.cnf"
        ext.write_text(f"subjectAltName=DNS:{host}\nextendedKeyUsage=serverAuth\n")
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial",
                        "-out", cert, "-days", "1", "-extfile", ext], check=True, capture_output=True)
        serial = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", cert], check=True, capture_output=True,
                                text=True).stdout.strip().split("=", 1)[1].lower().lstrip("0")
        return cert.read_text(), key.read_text(), serial


def write(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text)
    os.chmod(path, mode)


class Layout:
    """One secret's files, replaced the way its name says."""

    def __init__(self, kind: str, root: Path):
        self.kind, self.root, self.generation = kind, root / kind, 0
        self.root.mkdir()
        if kind == "kubernetes":
            self.cert, self.key = self.root / "tls.crt", self.root / "tls.key"
        elif kind == "certbot":
            (self.root / "live").mkdir()
            (self.root / "archive").mkdir()
            self.cert, self.key = self.root / "live" / "fullchain.pem", self.root / "live" / "privkey.pem"
        else:
            self.cert, self.key = self.root / "cert.pem", self.root / "key.pem"

    def install(self, cert: str, key: str) -> None:
        self.generation += 1
        n = self.generation
        if self.kind == "inplace":
            with open(self.key, "w") as f:
                f.write(key)
            os.chmod(self.key, 0o600)
            with open(self.cert, "w") as f:
                f.write(cert)
        elif self.kind == "renamed":
            write(self.root / ".key.tmp", key)
            write(self.root / ".cert.tmp", cert, 0o644)
            os.rename(self.root / ".key.tmp", self.key)
            os.rename(self.root / ".cert.tmp", self.cert)
        elif self.kind == "kubernetes":
            # kubelet's AtomicWriter: a new timestamped directory, ..data swapped by rename.
            data = self.root / f"..2026_11_30_{n}"
            data.mkdir()
            write(data / "tls.crt", cert, 0o644)
            write(data / "tls.key", key, 0o600)
            os.symlink(data.name, self.root / "..data_tmp")
            old = os.readlink(self.root / "..data") if (self.root / "..data").is_symlink() else None
            os.rename(self.root / "..data_tmp", self.root / "..data")
            for name in ("tls.crt", "tls.key"):
                if not (self.root / name).is_symlink():
                    os.symlink(f"..data/{name}", self.root / name)
            if old:
                for f in (self.root / old).iterdir():
                    f.unlink()
                (self.root / old).rmdir()
        else:  # certbot: new numbered files in archive/, live/ symlinks replaced
            write(self.root / "archive" / f"fullchain{n}.pem", cert, 0o644)
            write(self.root / "archive" / f"privkey{n}.pem", key, 0o600)
            for link, target in ((self.cert, f"fullchain{n}.pem"), (self.key, f"privkey{n}.pem")):
                tmp = link.with_suffix(".tmp")
                os.symlink(f"../archive/{target}", tmp)
                os.rename(tmp, link)


def envoy_config(sds_socket, admin_port: int, port: int) -> str:
    chains = "\n".join(f"""
    - filter_chain_match: {{server_names: ["{name}.example"]}}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificate_sds_secret_configs:
            - name: {name}
              sds_config: {{resource_api_version: V3, api_config_source: {{api_type: GRPC, transport_api_version: V3,
                            grpc_services: [{{envoy_grpc: {{cluster_name: sds-grpc}}}}]}}}}
      filters: *filters""" for name in NAMES)
    return f"""
node: {{id: files, cluster: files}}
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}}}
static_resources:
  listeners:
  - name: tls
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}
    filter_chains:
    - filter_chain_match: {{server_names: ["unused.invalid"]}}
      filters: &filters
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: files
          http_filters: [{{name: envoy.filters.http.router, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}}}]
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: "/"}}, direct_response: {{status: 200}}}}]}}]}}
{chains}
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


def served_serial(port: int, name: str, ca: CA) -> str:
    context = ssl.create_default_context(cafile=str(ca.cert))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=f"{name}.example") as tls:
            return tls.getpeercert()["serialNumber"].lower().lstrip("0")


class Handshakes(threading.Thread):
    def __init__(self, port: int, ca: CA):
        super().__init__(daemon=True)
        self.port, self.ca = port, ca
        self.sent, self.failures = 0, []
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            for name in NAMES:
                self.sent += 1
                try:
                    served_serial(self.port, name, self.ca)
                except (OSError, ssl.SSLError) as e:
                    self.failures.append(f"{name}: {e!r}")
            self.stop_event.wait(0.05)


def test_secrets_from_files_follow_every_kind_of_replacement(start, processes, tmp_path, free_port):
    ca = CA(tmp_path)
    layouts = {name: Layout(name, tmp_path) for name in NAMES}
    serials = {}
    for name, layout in layouts.items():
        cert, key, serial = ca.issue(f"{name}.example")
        layout.install(cert, key)
        serials[name] = serial
    args = [a for name, l in layouts.items() for a in ("--secret", f"name={name},cert={l.cert},key={l.key}")]
    agent = start("agent", *args)
    admin_port, port = free_port(), free_port()
    config = tmp_path / "envoy.yaml"
    config.write_text(envoy_config(agent.socket_path, admin_port, port))
    envoy = processes.add(Envoy("envoy-files", [envoy_bin(), "-c", config, "--concurrency", "1",
                                                "--disable-hot-restart", "-l", "info"], tmp_path, admin_port, port))
    envoy.wait_live()
    for name in NAMES:
        poll(lambda: served_serial(port, name, ca) == serials[name], 10, what=f"{name}'s first certificate")

    traffic = Handshakes(port, ca)
    traffic.start()
    took = {}
    try:
        for round_ in range(3):
            for name, layout in layouts.items():
                if round_ > 0 and name != "kubernetes":
                    continue  # the ..data swap three times in a row; the others once
                cert, key, serial = ca.issue(f"{name}.example")
                t0 = time.monotonic()
                layout.install(cert, key)
                poll(lambda: served_serial(port, name, ca) == serial, 2, interval=0.05,
                     what=f"{name}'s new certificate within 2 s (round {round_ + 1})")
                took[f"{name}#{round_ + 1}"] = time.monotonic() - t0
                serials[name] = serial

        # A torn write: a new certificate with the key of another one. The old one stays.
        cert, _, _ = ca.issue("renamed.example")
        _, other_key, _ = ca.issue("other.example")
        layouts["renamed"].install(cert, other_key)
        agent.wait_log(lambda line: "cannot use the changed files" in line and "key_mismatch" in line, 5)
        assert served_serial(port, "renamed", ca) == serials["renamed"]
    finally:
        traffic.stop_event.set()
        traffic.join(10)
    print("\nnew serial served after " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in took.items())
          + f"; {traffic.sent} handshakes, {len(traffic.failures)} failed")
    assert not traffic.failures, traffic.failures[:5]
    assert 'sds_agent_file_secret_errors_total{secret="renamed",reason="key_mismatch"} 1' in agent.admin.get("/metrics")
    assert envoy.alive()


def test_a_secret_whose_files_appear_later_is_served_then(start, tmp_path):
    """A first ACME run may write the files after the agent started: it starts, logs and counts
    the missing files, and serves the secret on the open stream as soon as a good pair appears.
    An unknown key in a secret entry is refused, naming it."""
    from daemon_support import SdsStream, secrets_of

    ca = CA(tmp_path)
    layout = Layout("renamed", tmp_path)
    agent = start("agent", "--secret", f"name=web,cert={layout.cert},key={layout.key}")
    agent.wait_log(lambda line: "cannot serve a secret from files" in line and "missing" in line, 10)
    assert 'sds_agent_file_secret_errors_total{secret="web",reason="missing"} 1' in agent.admin.get("/metrics")
    stream = SdsStream(agent.socket_path, names=("web",))
    cert, key, serial = ca.issue("web.example")
    layout.install(cert, key)
    response = stream.next_response(5)
    chain = secrets_of(response)["web"].tls_certificate.certificate_chain.inline_bytes.decode()
    assert chain == cert
    stream.send(None)

    from test_daemon import run_cli

    config = tmp_path / "bad.yaml"
    config.write_text("secret:\n  - {name: web, cert: /a.pem, key: /a.key, passphrase: hunter2}\n")
    bad = run_cli("check-config", "--config", config)
    assert bad.returncode != 0 and "passphrase" in bad.stderr and "hunter2" not in bad.stderr, bad.stderr


def test_istio_file_names_only_under_the_allowed_directories(start, tmp_path):
    """Istio's on-the-fly names: `file-cert:<cert>~<key>` and `file-root:<ca>` are served for
    files under --file-secret-dirs and followed like configured secrets; a path outside, with
    `..`, or a symlink out of the directory is PERMISSION_DENIED naming the rule."""
    import grpc

    from daemon_support import SdsStream, fetch_secrets, secrets_of

    ca = CA(tmp_path)
    allowed = tmp_path / "mounted"
    allowed.mkdir()
    cert, key, serial = ca.issue("pod.example")
    write(allowed / "cert.pem", cert, 0o644)
    write(allowed / "key.pem", key)
    os.symlink("/etc/hostname", allowed / "escape.pem")
    agent = start("agent", "--file-secret-dirs", allowed)
    name = f"file-cert:{allowed}/cert.pem~{allowed}/key.pem"
    one = SdsStream(agent.socket_path, names=(name,))
    response = one.next_response(5)
    assert secrets_of(response)[name].tls_certificate.certificate_chain.inline_bytes.decode() == cert
    one.ack(response)
    new_cert, new_key, _ = ca.issue("pod.example")
    write(allowed / ".key.tmp", new_key)
    os.rename(allowed / ".key.tmp", allowed / "key.pem")
    write(allowed / ".cert.tmp", new_cert, 0o644)
    os.rename(allowed / ".cert.tmp", allowed / "cert.pem")
    pushed = one.next_response(5)
    assert secrets_of(pushed)[name].tls_certificate.certificate_chain.inline_bytes.decode() == new_cert
    one.send(None)
    for bad, rule in ((f"file-cert:{ca.cert}~{ca.key}", "file-secret-dirs"),
                      (f"file-root:{allowed}/../ca.pem", ".."),
                      (f"file-root:{allowed}/escape.pem", "file-secret-dirs"),
                      ("file-cert:/etc/passwd", "file-cert:<cert-path>~<key-path>")):
        try:
            fetch_secrets(agent.socket_path, names=(bad,))
            raise AssertionError(f"{bad} was served")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.PERMISSION_DENIED and rule in e.details(), (bad, e.details())


# ------------------------------------------------------------------ issue #21: never the agent's own key


def _responses_so_far(stream) -> list:
    """Every response the stream received until now (errors and the end are dropped)."""
    import queue

    out = []
    while True:
        try:
            kind, value = stream.events.get_nowait()
        except queue.Empty:
            return out
        if kind == "response":
            out.append(value)


def _served_pems(responses) -> str:
    from daemon_support import secrets_of

    text = ""
    for response in responses:
        for secret in secrets_of(response).values():
            text += secret.tls_certificate.private_key.inline_bytes.decode(errors="replace")
            text += secret.tls_certificate.certificate_chain.inline_bytes.decode(errors="replace")
            text += secret.validation_context.trusted_ca.inline_bytes.decode(errors="replace")
    return text


def mounted_pair(tmp_path: Path) -> tuple[Path, str, str]:
    """A directory `mounted` with a certificate and its key: (directory, cert PEM, file-cert: name)."""
    allowed = tmp_path / "mounted"
    allowed.mkdir()
    cert, key, _ = CA(tmp_path).issue("pod.example")
    write(allowed / "cert.pem", cert, 0o644)
    write(allowed / "key.pem", key)
    return allowed, cert, f"file-cert:{allowed}/cert.pem~{allowed}/key.pem"


def test_symlinks_into_the_state_directory_never_serve_the_agent_key(start, tmp_path):
    """Issue #21, class 1. The agent's own CA key (state-dir/ca-key.pem) and certificate form a
    valid pair: a file-cert: name admitted while its files did not exist, then made symlinks into
    the state directory; a Kubernetes `..data` swap onto the state directory; and a named secret
    whose key file is a hard link of ca-key.pem are all refused when read, by real path and by
    device and inode, and logged with reason agent_key_material. ca-key.pem never reaches a stream."""
    from daemon_support import SdsStream, fetch_secrets, secrets_of, short_dir

    import grpc

    ca = CA(tmp_path)
    allowed = tmp_path / "mounted"
    allowed.mkdir()
    hard = tmp_path / "hard"
    hard.mkdir()
    directory = short_dir()
    state = directory / "state"
    agent = start("agent", "--file-secret-dirs", allowed,
                  "--secret", f"name=hard,cert={hard}/tls.crt,key={hard}/tls.key", directory=directory)
    ca_key = (state / "ca-key.pem").read_text()
    assert "PRIVATE KEY" in ca_key

    # 1. Admitted while missing, then symlinks into the state directory.
    late = f"file-cert:{allowed}/late.crt~{allowed}/late.key"
    late_stream = SdsStream(agent.socket_path, names=(late,))
    # 2. A Kubernetes volume whose ..data is later swapped onto the state directory.
    kube = allowed / "kube"
    kube.mkdir()
    first = kube / "..2026_12_06_1"
    first.mkdir()
    cert, key, _ = ca.issue("pod.example")
    write(first / "ca-cert.pem", cert, 0o644)
    write(first / "ca-key.pem", key)
    os.symlink(first.name, kube / "..data")
    for name in ("ca-cert.pem", "ca-key.pem"):
        os.symlink(f"..data/{name}", kube / name)
    swapped = f"file-cert:{kube}/ca-cert.pem~{kube}/ca-key.pem"
    kube_stream = SdsStream(agent.socket_path, names=(swapped,))
    served = kube_stream.next_response(5)
    assert secrets_of(served)[swapped].tls_certificate.private_key.inline_bytes.decode() == key
    kube_stream.ack(served)

    mark = len(agent.log_lines())
    os.symlink(state / "ca-cert.pem", allowed / "late.crt")
    os.symlink(state / "ca-key.pem", allowed / "late.key")
    os.symlink(state, kube / "..data_tmp")
    os.rename(kube / "..data_tmp", kube / "..data")
    # 3. A named secret whose files appear later: the CA certificate copied, its key hard-linked.
    (hard / "tls.crt").write_text((state / "ca-cert.pem").read_text())
    os.link(state / "ca-key.pem", hard / "tls.key")

    # Until each file is refused (logged with its path), or the key shows up on a stream.
    needles = ("late.crt", "kube/ca-cert.pem", "hard/tls.key")
    pushed = []

    def refused_or_leaked() -> bool:
        pushed.extend(_responses_so_far(late_stream) + _responses_so_far(kube_stream))
        refusals = [line for line in agent.log_lines()[mark:] if "agent_key_material" in line]
        return ca_key.strip() in _served_pems(pushed) or all(any(n in line for line in refusals) for n in needles)

    poll(refused_or_leaked, 10, what="each file refused (or the CA key pushed)")
    leaked = _served_pems(pushed)
    assert ca_key.strip() not in leaked, "the agent's own CA key was pushed on a stream"
    refusals = [line for line in agent.log_lines()[mark:] if "agent_key_material" in line]
    print(f"refused: {refusals[0]}")
    for name in (late, swapped, "hard"):
        try:
            leaked += _served_pems([fetch_secrets(agent.socket_path, names=(name,), timeout=5)])
        except grpc.RpcError as e:
            assert e.code() != grpc.StatusCode.OK
    assert ca_key.strip() not in leaked, "the agent's own CA key was served"
    key_line = ca_key.splitlines()[1]  # the first line of the key's base64
    assert not any(key_line in line for line in agent.log_lines()), "the CA key was logged"
    assert agent.alive()
    late_stream.close()
    kube_stream.close()


def test_a_secret_directory_holding_the_agent_key_material_is_refused_at_start(tmp_path):
    """A --file-secret-dirs that contains the state directory (or the operator CA key) would serve
    the CA key by name: the agent refuses to start, naming the setting and the directory."""
    from daemon_support import agent_argv, clean_env, short_dir

    ca = CA(tmp_path)
    directory = short_dir()
    for dirs, extra, names in (
        (directory, (), ("file-secret-dirs", str(directory), "state")),
        (tmp_path, ("--ca-cert", ca.cert, "--ca-key", ca.key), ("file-secret-dirs", str(tmp_path), "ca-key")),
    ):
        argv = agent_argv(directory / "sds.sock", directory / "state", "--file-secret-dirs", dirs, *extra)
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=clean_env())
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the agent started with --file-secret-dirs {dirs}, which holds its key material")
        assert result.returncode != 0
        for needle in names:
            assert needle in result.stderr, (needle, result.stderr[-2000:])
        print("refused at start: " + next(line for line in result.stderr.splitlines() if "file-secret-dirs" in line))


def test_fetch_secrets_serves_file_names_without_a_stream_first(start, tmp_path):
    """Issue #21, class 4: FetchSecrets reads a file-cert: name itself (it was UNAVAILABLE until a
    stream had asked for the name); files that do not exist are UNAVAILABLE naming the reason."""
    import grpc

    from daemon_support import fetch_secrets, secrets_of

    allowed, cert, name = mounted_pair(tmp_path)
    agent = start("agent", "--file-secret-dirs", allowed)
    took = []
    for names in (("default",), (name,), (name,)):
        t0 = time.monotonic()
        response = fetch_secrets(agent.socket_path, names=names, timeout=5)
        took.append((time.monotonic() - t0) * 1000)
    assert secrets_of(response)[name].tls_certificate.certificate_chain.inline_bytes.decode() == cert
    print(f"\nFetchSecrets (new channel each): default {took[0]:.1f} ms, a file-cert: name first {took[1]:.1f} ms, "
          f"again {took[2]:.1f} ms")
    try:
        fetch_secrets(agent.socket_path, names=(f"file-root:{allowed}/nothing.pem",), timeout=5)
        raise AssertionError("a file that does not exist was served")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAVAILABLE and "missing" in e.details(), e.details()
        print(f"a file that does not exist: UNAVAILABLE {e.details()!r}")


def test_missing_file_names_do_not_crowd_out_the_real_ones(start, tmp_path):
    """Issue #21, class 3: a client asking for hundreds of file-cert: names whose files do not
    exist (more than the old global cap of 256) does not stop a name whose files exist from being
    served: names whose files are missing are not counted, and the count is per caller."""
    from daemon_support import SdsStream, secrets_of

    allowed, cert, name = mounted_pair(tmp_path)
    agent = start("agent", "--file-secret-dirs", allowed)
    floods = []
    for n in range(5):
        names = [f"file-root:{allowed}/missing-{n}-{i}.pem" for i in range(60)]
        floods.append(SdsStream(agent.socket_path, names=names, node_id=f"flood-{n}"))
        agent.wait_log(lambda line: f"missing-{n}-0.pem" in line, 5, what=f"flood {n} read")
    t0 = time.monotonic()
    stream = SdsStream(agent.socket_path, names=(name,), node_id="legitimate")
    response = stream.next_response(5)
    assert secrets_of(response)[name].tls_certificate.certificate_chain.inline_bytes.decode() == cert
    print(f"\nafter 300 missing names, a real one served in {(time.monotonic() - t0) * 1000:.1f} ms")
    for flood in floods:
        flood.close()
    stream.close()


def test_node_agent_file_names_only_for_the_callers_named(node_agent, open_dirs, tmp_path):
    """Issue #21, class 2: in node-agent mode a file-cert: name is served only to the identities
    --file-secret-callers names for its directory. With none named nobody gets it; with the
    frontend's directory named for the frontend, uid 1001 gets it and uid 1002 (the backend)
    gets PERMISSION_DENIED naming the rule, never the key."""
    from test_node_agent import ID_A, ID_B, UID_A, UID_B, assert_refused, probe, served

    ca = CA(tmp_path)
    mounted = open_dirs("sdsf-")
    frontend = mounted / "frontend"
    frontend.mkdir()
    cert, key, _ = ca.issue("frontend.example")
    write(frontend / "tls.crt", cert, 0o644)
    write(frontend / "tls.key", key)
    name = f"file-cert:{frontend}/tls.crt~{frontend}/tls.key"
    workloads = [f"uid={UID_A},spiffe-id={ID_A}", f"uid={UID_B},spiffe-id={ID_B}"]

    agent = node_agent("peer", workloads=workloads, extra=["--file-secret-dirs", mounted])
    for uid in (UID_B, UID_A):
        details = assert_refused(probe(agent.socket_path, names=(name,), uid=uid), "PERMISSION_DENIED",
                                 "file-secret-callers")
        print(f"uid {uid}, no callers named: PERMISSION_DENIED {details!r}")
    agent.stopped_on_purpose = True
    agent.stop()

    agent = node_agent("peer", workloads=workloads,
                       extra=["--file-secret-dirs", mounted,
                              "--file-secret-callers", f"dir={frontend},callers={ID_A}"])
    secrets = served(probe(agent.socket_path, names=(name,), uid=UID_A))
    assert secrets[name]["key"] == key
    result = probe(agent.socket_path, names=(name,), uid=UID_B)
    details = assert_refused(result, "PERMISSION_DENIED", "file-secret-callers", str(frontend))
    assert ID_B in details, details
    print(f"uid {UID_B} asking for the frontend's files: PERMISSION_DENIED {details!r}")
