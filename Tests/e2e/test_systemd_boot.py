"""The Debian package under a real systemd: a Debian bookworm machine booted by systemd-nspawn
(nspawn_machine.py), the package installed with dpkg as an operator would, the shipped units as
they are (no drop-in but the documented exe-rules.conf), Envoys inside the machine as users of
the group `envoy`, traffic from the host.

Needs root, systemd-nspawn and mmdebstrap (.ci/run installs them); skipped with the reason
otherwise, and a failure instead of a skip when SDS_AGENT_REQUIRE_BOOT=1 (dev/test as root).
The package is SDS_AGENT_DEB, or made from SDS_AGENT_BIN by dev/package-deb.sh --binary.

The tests run in file order on one machine, each starting from where the previous one left it:
install → socket activation → readiness → hardening → reload → watchdog → stop → restart and
upgrade under traffic → peer mode with an exe rule → remove and purge.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO_ROOT, SPIFFE_ID, agent_bin, envoy_bin, norm_serial, render_example
from daemon_support import SdsStream, leaf_of, lifetime_seconds, secrets_of
from nspawn_machine import Machine, missing_requirements, rootfs_tarball

SOCKET = "/run/sds-agent/sds.sock"
ADMIN = "/run/sds-agent/private/admin.sock"
SERVICE = "sds-agent.service"
SOCKET_UNIT = "sds-agent.socket"
CONFIG = "/etc/sds-agent/config.yaml"
ENVOY = "/usr/local/bin/envoy"
# Users of the machine: two Envoys in the socket's group, and one outside it.
USERS = {"gateway": 2001, "backend": 2002, "outsider": 2003}
GATEWAY_ID = "spiffe://cluster.local/ns/edge/sa/gateway"
BACKEND_ID = "spiffe://cluster.local/ns/web/sa/backend"
# An Istio CA's plaintext port that answers nothing: the agent never gets its first certificate.
SILENT_CA_PORT = 15010
WATCHDOG_SEC = 30  # the shipped unit's
STOP_BOUND = 10.0  # the agent's documented graceful-shutdown bound (the unit allows 20 s)

timings: dict[str, float] = {}


def _require() -> None:
    reason = missing_requirements()
    if reason is None:
        return
    if os.environ.get("SDS_AGENT_REQUIRE_BOOT") == "1":
        pytest.fail(f"the booted-systemd test cannot run here: {reason}")
    pytest.skip(f"booted-systemd test: {reason}")


def _package(out_dir: Path) -> Path:
    if os.environ.get("SDS_AGENT_DEB"):
        deb = Path(os.environ["SDS_AGENT_DEB"]).resolve()
        shutil.copy(deb, out_dir / deb.name)
        return out_dir / deb.name
    t0 = time.monotonic()
    result = subprocess.run([REPO_ROOT / "dev" / "package-deb.sh", "--binary", agent_bin(), "--output", out_dir],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"dev/package-deb.sh failed:\n{result.stderr}"
    timings["package (dev/package-deb.sh)"] = time.monotonic() - t0
    return Path(result.stdout.strip().splitlines()[-1])


def _next_revision(deb: Path) -> Path:
    """The same package with Debian revision 2: what an upgrade installs (same binary and
    maintainer scripts, a newer version)."""
    work = deb.parent / "rev2"
    subprocess.run(["dpkg-deb", "-R", deb, work], check=True)
    control = work / "DEBIAN" / "control"
    text = control.read_text()
    version = re.search(r"^Version: (\S+)-1$", text, re.M).group(1)
    control.write_text(text.replace(f"Version: {version}-1", f"Version: {version}-2"))
    out = deb.parent / deb.name.replace(f"_{version}-1_", f"_{version}-2_")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", work, out], check=True,
                   capture_output=True)
    shutil.rmtree(work)
    return out


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    _require()
    t_module = time.monotonic()
    debs = tmp_path_factory.mktemp("debs")
    deb = _package(debs)
    tarball, made_in = rootfs_tarball()
    timings["rootfs (mmdebstrap, cold)" if made_in is not None else "rootfs (cached)"] = made_in or 0.0
    t0 = time.monotonic()
    m = Machine(tarball, "sds-agent-e2e", binds_ro={"/srv/e2e": debs, ENVOY: envoy_bin()})
    timings["rootfs unpacked"] = time.monotonic() - t0
    m.deb = deb
    m.debs = debs
    try:
        timings["boot to multi-user"] = m.boot()
        yield m
    finally:
        problems = m.stop()
        timings["whole module"] = time.monotonic() - t_module
        print("\nbooted-systemd test timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
        assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- helpers


def main_pid(m: Machine) -> int:
    return int(m.show(SERVICE, "MainPID")["MainPID"])


def proc_status(m: Machine, pid: int) -> dict[str, str]:
    text = m.run("cat", f"/proc/{pid}/status").stdout
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def fetch(m: Machine, user: str, *extra) -> subprocess.CompletedProcess:
    return m.run("sds-agent", "fetch", "--socket", SOCKET, "--json", *extra, user=user, check=False)


def fetched(m: Machine, user: str) -> dict[str, dict]:
    result = fetch(m, user)
    assert result.returncode == 0, f"sds-agent fetch as {user} failed:\n{result.stdout}{result.stderr}"
    return {s["name"]: s for s in json.loads(result.stdout)}


def write_config(m: Machine, text: str) -> None:
    (m.root / CONFIG.lstrip("/")).write_text(text)


def journal_entries(m: Machine, unit: str, since_cursor: str | None = None) -> list[dict]:
    argv = ["journalctl", "--no-pager", "-u", unit, "-o", "json"]
    if since_cursor:
        argv += ["--after-cursor", since_cursor]
    return [json.loads(line) for line in m.run(*argv).stdout.splitlines() if line.strip()]


def journal_cursor(m: Machine) -> str:
    out = m.run("journalctl", "--no-pager", "-n", "1", "-o", "json").stdout.strip().splitlines()
    return json.loads(out[-1])["__CURSOR"]


def wait_journal(m: Machine, unit: str, predicate, timeout: float, what: str, since_cursor: str | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        for entry in journal_entries(m, unit, since_cursor):
            if predicate(entry):
                return entry
        assert time.monotonic() < deadline, f"{unit}: no journal entry {what} within {timeout:.0f}s\n{m.journal(unit)}"
        time.sleep(0.2)


def message(entry: dict) -> str:
    value = entry.get("MESSAGE", "")
    return bytes(value).decode(errors="replace") if isinstance(value, list) else value


class MachineEnvoy:
    """An Envoy running in the machine as a transient systemd service of its own user."""

    def __init__(self, m: Machine, name: str, user: str, example: str, **values):
        self.m = m
        self.unit = f"envoy-{name}.service"
        self.admin_port, self.listen_port = free_tcp_port(), free_tcp_port()
        values = {"SDS_SOCKET": SOCKET, "ADMIN_PORT": self.admin_port, "LISTEN_PORT": self.listen_port,
                  "SPIFFE_ID": SPIFFE_ID, **values}
        config = m.root / "etc" / "e2e" / f"envoy-{name}.yaml"
        config.parent.mkdir(exist_ok=True)
        config.write_text(render_example(example, **values))
        m.run("systemd-run", f"--unit={self.unit}", f"--property=User={user}", f"--property=Group={user}",
              "--", ENVOY, "-c", f"/etc/e2e/envoy-{name}.yaml", "--concurrency", "1", "--disable-hot-restart",
              "-l", "info", "--base-id", str(USERS[user]))

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
            return r.read().decode()

    def wait_live(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.m.show(self.unit, "ActiveState")["ActiveState"]
            assert state in ("active", "activating"), f"{self.unit} is {state}\n{self.m.journal(self.unit)}"
            try:
                if self.admin("/ready").strip() == "LIVE":
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{self.unit} not LIVE within {timeout:.0f}s\n{self.m.journal(self.unit)}"
            time.sleep(0.2)

    def leaves(self) -> list[tuple[str, set[str]]]:
        data = json.loads(self.admin("/certs"))
        return [(norm_serial(leaf["serial_number"]),
                 {san["uri"] for san in leaf.get("subject_alt_names", []) if "uri" in san})
                for c in data.get("certificates", []) for leaf in c.get("cert_chain", [])[:1]]

    def wait_leaf(self, accept, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            held = self.leaves()
            if accept(held):
                return held
            assert time.monotonic() < deadline, f"{self.unit}: {what} not within {timeout:.0f}s; holds {held}"
            time.sleep(0.2)

    def stat(self, name: str) -> int:
        for line in self.admin(f"/stats?filter=^{re.escape(name)}$").splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        raise AssertionError(f"{self.unit}: no stat {name}")

    def stop(self) -> None:
        self.m.run("systemctl", "stop", self.unit, check=False)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Traffic(threading.Thread):
    """GET through the gateway every 50 ms until stopped; counts what failed and when."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.sent = 0
        self.failures: list[str] = []
        self.peers: set[str] = set()
        self.stop_event = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/hello")
                resp = conn.getresponse()
                resp.read()
                conn.close()
                with self.lock:
                    self.sent += 1
                    if resp.status != 200:
                        self.failures.append(f"status {resp.status}")
                    else:
                        self.peers.add(resp.getheader("x-peer-spiffe-id"))
            except OSError as e:
                with self.lock:
                    self.sent += 1
                    self.failures.append(repr(e))
            self.stop_event.wait(0.05)

    def sent_after(self, count: int, more: int, timeout: float) -> None:
        """Waits until `more` requests went out after the first `count`."""
        deadline = time.monotonic() + timeout
        while self.sent < count + more:
            assert time.monotonic() < deadline, f"traffic stalled at {self.sent} requests"
            time.sleep(0.05)


# --------------------------------------------------------------------------- the tests, in order


def test_package_installs_on_plain_debian(machine):
    m = machine
    assert not (m.root / "opt" / "swift").exists(), "the machine must not have the Swift toolchain"
    assert m.run("dpkg-query", "-W", "procps", check=False).returncode != 0, "procps must not be installed"
    m.run("dpkg", "-i", f"/srv/e2e/{m.deb.name}")
    package_version = m.run("dpkg-query", "-W", "-f=${Version}", "sds-agent").stdout
    binary_version = m.run("sds-agent", "--version").stdout.strip()
    assert package_version == f"{binary_version}-1", (package_version, binary_version)

    # The postinst enabled and started the socket; the agent itself waits for a connection.
    sock = m.show(SOCKET_UNIT, "ActiveState", "SubState", "UnitFileState")
    assert sock == {"ActiveState": "active", "SubState": "listening", "UnitFileState": "enabled"}, sock
    assert m.show(SERVICE, "ActiveState")["ActiveState"] == "inactive"

    # The socket's group is the one sysusers creates.
    socket_group = re.search(r"^SocketGroup=(\S+)$", m.run("cat", f"/lib/systemd/system/{SOCKET_UNIT}").stdout, re.M)[1]
    sysusers = m.run("cat", "/usr/lib/sysusers.d/sds-agent.conf").stdout
    assert re.search(rf"^g {re.escape(socket_group)}\s", sysusers, re.M), (socket_group, sysusers)
    assert m.run("getent", "group", socket_group).returncode == 0
    assert m.run("getent", "passwd", "sds-agent").stdout.split(":")[5] == "/var/lib/sds-agent"
    assert m.run("stat", "-c", "%U:%G %a", "/run/sds-agent", SOCKET).stdout.split("\n")[:2] == \
        ["root:root 755", f"sds-agent:{socket_group} 660"]
    assert m.run("stat", "-c", "%U:%G %a", CONFIG).stdout.strip() == "root:root 644"
    assert (m.root / "var/lib/dpkg/info/sds-agent.conffiles").read_text().split() == [CONFIG]

    for user, uid in USERS.items():
        groups = [] if user == "outsider" else ["-G", socket_group]
        m.run("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-u", uid, "-U", *groups, user)


def test_socket_activation_on_first_connection_and_group_access(machine):
    m = machine
    assert m.show(SERVICE, "ActiveState")["ActiveState"] == "inactive"
    first = fetched(m, "gateway")  # the first connection starts the agent
    assert first["default"]["spiffe_id"] == SPIFFE_ID
    assert "BEGIN CERTIFICATE" in first["ROOTCA"]["pem"]
    shown = m.show(SERVICE, "ActiveState", "MainPID")
    assert shown["ActiveState"] == "active" and int(shown["MainPID"]) > 0, shown
    m.root_ca = first["ROOTCA"]["pem"]

    # Starting the agent did not take the socket from the Envoys (issue #14: a RuntimeDirectory=
    # of the same path re-owned it to sds-agent:sds-agent 0750).
    assert m.run("stat", "-c", "%U:%G %a", "/run/sds-agent", SOCKET).stdout.split("\n")[:2] == \
        ["root:root 755", "sds-agent:envoy 660"]
    assert fetched(m, "backend")["ROOTCA"]["pem"] == m.root_ca

    refused = fetch(m, "outsider")
    assert refused.returncode != 0 and "Permission denied" in refused.stdout + refused.stderr, refused
    # The agent's private runtime directory exists only while it runs, and only it may enter.
    assert m.run("stat", "-c", "%U:%G %a", "/run/sds-agent/private").stdout.strip() == "sds-agent:sds-agent 700"


class SilentCA(threading.Thread):
    """A TCP listener on the Istio CA's plaintext port that accepts and never answers."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", port))
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []

    def run(self) -> None:
        try:
            while True:
                conn, _ = self.listener.accept()
                self.conns.append(conn)
                self.accepted.set()
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for c in self.conns:
            c.close()


def test_ready_only_when_serving(machine):
    m = machine
    original = (m.root / CONFIG.lstrip("/")).read_text()
    m.run("systemctl", "stop", SERVICE)

    # A CA that never answers: the agent listens on the passed socket but has no certificate,
    # so it must not send READY=1 and the unit stays "activating".
    ca = SilentCA(SILENT_CA_PORT)
    ca.start()
    try:
        write_config(m, f"ca: istio\nca-address: 127.0.0.1:{SILENT_CA_PORT}\nca-insecure-plaintext: true\n")
        cursor = journal_cursor(m)
        m.run("systemctl", "start", "--no-block", SERVICE)
        assert ca.accepted.wait(60), f"the agent never called its CA\n{m.journal(SERVICE)}"
        not_ready = m.run("timeout", "10", "sds-agent", "fetch", "--socket", SOCKET, user="gateway", check=False)
        assert not_ready.returncode != 0, f"a certificate without a CA? {not_ready.stdout}"
        shown = m.show(SERVICE, "ActiveState", "SubState", "StatusText")
        assert (shown["ActiveState"], shown["SubState"]) == ("activating", "start"), shown
        # The agent gives up on that call and logs it as an error, priority 3 in the journal.
        failed = wait_journal(m, SERVICE, lambda e: message(e).startswith("could not issue a certificate"),
                              90, "for the failed issuance", since_cursor=cursor)
        assert failed.get("PRIORITY") == "3", failed
        assert m.show(SERVICE, "ActiveState")["ActiveState"] == "activating"
        m.run("systemctl", "stop", SERVICE)
    finally:
        ca.close()

    # With its CA: `systemctl start` returns when READY=1 came, and the agent serves at once.
    # Back to the packaged config, whose admin endpoint is in the agent's private directory.
    assert f"admin: unix:{ADMIN}" in original, original
    write_config(m, original)
    t0 = time.monotonic()
    m.run("systemctl", "start", SERVICE)
    started = time.monotonic() - t0
    assert m.show(SERVICE, "ActiveState")["ActiveState"] == "active"
    now = fetched(m, "gateway")
    assert now["ROOTCA"]["pem"] == m.root_ca, "a restart must keep the CA"
    status = m.show(SERVICE, "StatusText")["StatusText"]
    assert status, "no STATUS= from the agent"
    print(f"\nstart to READY=1: {started:.2f}s; STATUS={status}")


def test_hardening_in_force(machine):
    m = machine
    pid = main_pid(m)
    status = proc_status(m, pid)
    assert status["NoNewPrivs"] == "1", status
    assert status["Seccomp"] == "2", status  # a filter
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0, status
    assert status["Uid"].split()[0] == m.run("id", "-u", "sds-agent").stdout.strip()

    # /etc is writable for root in the machine, and read-only in the agent's mount namespace.
    m.run("touch", "/etc/sds-agent/probe")
    m.run("rm", "/etc/sds-agent/probe")
    for path in ("/etc/sds-agent/probe", "/etc/probe", "/usr/probe"):
        probe = m.run("nsenter", "-t", pid, "-m", "touch", path, check=False)
        assert probe.returncode != 0 and "Read-only file system" in probe.stderr, probe
    state = m.run("nsenter", "-t", pid, "-m", "stat", "-c", "%U %a", "/var/lib/sds-agent").stdout.strip()
    assert state == "sds-agent 700", state

    # The admin socket could be made in the one writable runtime directory, and answers
    # `sds-agent status` with no arguments: it reads the packaged config's admin endpoint.
    assert m.run("stat", "-c", "%U %a", ADMIN).stdout.strip() == "sds-agent 600"
    status = m.run("sds-agent", "status", check=False)
    assert status.returncode == 0 and "healthy" in status.stdout, status
    as_json = m.run("sds-agent", "status", "--json", check=False)
    assert as_json.returncode == 0, as_json
    identities = json.loads(as_json.stdout)["identities"]
    assert identities and all(i["healthy"] for i in identities), identities
    # The service account may ask too; anyone else is told who may.
    assert m.run("sds-agent", "status", user="sds-agent", check=False).returncode == 0
    refused = m.run("sds-agent", "status", user="outsider", check=False)
    assert refused.returncode == 2 and "only root and user sds-agent may ask" in refused.stderr, refused

    # The agent's lines reach the journal with their own priority, the <N> prefix taken off.
    entries = [e for e in journal_entries(m, SERVICE) if e.get("_PID") == str(pid)]
    assert entries, m.journal(SERVICE)
    assert all(not message(e).startswith("<") for e in entries)
    info = [e for e in entries if message(e).startswith("open-file limit")]
    assert info and info[0]["PRIORITY"] == "6", info
    # LimitNOFILE=65536 sets soft and hard alike. A host without CAP_SYS_RESOURCE (this CI's
    # sandbox) cannot let the machine go above its own hard limit; then only soft == hard shows.
    limits = dict(re.findall(r"(soft|hard)=(\d+)", message(info[0])))
    assert limits["soft"] == limits["hard"], message(info[0])
    if _host_has_capability(24):  # CAP_SYS_RESOURCE
        assert limits["hard"] == "65536", message(info[0])


def test_reload_pushes_new_lifetime_on_open_stream(machine):
    m = machine
    pid = main_pid(m)
    stream = SdsStream(m.path(SOCKET), node_id="reload-probe")
    try:
        first = stream.first_response_acked()
        assert abs(lifetime_seconds(leaf_of(first)) - 24 * 3600) < 60
        config = m.root / CONFIG.lstrip("/")
        config.write_text(config.read_text().replace("cert-ttl: 24h", "cert-ttl: 1h"))
        assert "cert-ttl: 1h" in config.read_text()
        m.run("systemctl", "reload", SERVICE)
        deadline = time.monotonic() + 30
        while True:
            resp = stream.next_response(max(0.1, deadline - time.monotonic()))
            stream.ack(resp)
            if "default" in secrets_of(resp) and abs(lifetime_seconds(leaf_of(resp)) - 3600) < 60:
                break
        assert main_pid(m) == pid, "reload must not restart the agent"
    finally:
        stream.close()
    reloads = [e for e in journal_entries(m, SERVICE) if "Reloaded" in message(e) or "Reloading" in message(e)]
    assert reloads, "systemd did not log the reload"


def test_watchdog_restarts_a_hung_agent_with_the_same_ca(machine):
    m = machine
    pid = main_pid(m)
    restarts = int(m.show(SERVICE, "NRestarts")["NRestarts"])
    cursor = journal_cursor(m)
    t0 = time.monotonic()
    m.run("sh", "-c", f"kill -STOP {pid}")  # the shell's kill: no procps here
    m.wait_unit(SERVICE, lambda s: s["ActiveState"] == "active" and int(s["MainPID"]) not in (0, pid),
                WATCHDOG_SEC + 45, "restarted after the watchdog fired")
    took = time.monotonic() - t0
    wait_journal(m, SERVICE, lambda e: "Watchdog timeout" in message(e), 5, "Watchdog timeout", since_cursor=cursor)
    assert int(m.show(SERVICE, "NRestarts")["NRestarts"]) == restarts + 1
    assert fetched(m, "gateway")["ROOTCA"]["pem"] == m.root_ca
    print(f"\nwatchdog: hung agent replaced after {took:.1f}s (WatchdogSec={WATCHDOG_SEC})")


def test_stop_ends_within_its_bound(machine):
    m = machine
    stream = SdsStream(m.path(SOCKET), node_id="stop-probe")  # an Envoy's open stream
    stream.first_response_acked()
    t0 = time.monotonic()
    m.run("systemctl", "stop", SERVICE)
    took = time.monotonic() - t0
    kind, value = stream.next_event(STOP_BOUND)
    assert kind in ("end", "error"), (kind, value)
    ended = "ended" if kind == "end" else f"ended with {value.code()}"
    shown = m.show(SERVICE, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert shown == {"ActiveState": "inactive", "Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0"}, shown
    assert took < STOP_BOUND, f"systemctl stop took {took:.1f}s"
    # The socket stays: the next connection starts the agent again.
    assert m.show(SOCKET_UNIT, "SubState")["SubState"] == "listening"
    assert fetched(m, "backend")["ROOTCA"]["pem"] == m.root_ca
    print(f"\nsystemctl stop with an open stream: {took:.2f}s; the stream {ended}")


def test_restart_and_upgrade_under_traffic_fail_no_request(machine):
    m = machine
    backend = MachineEnvoy(m, "backend", "backend", "backend")
    gateway = MachineEnvoy(m, "gateway", "gateway", "gateway", BACKEND_PORT=backend.listen_port)
    try:
        for envoy in (backend, gateway):
            envoy.wait_live()
            envoy.wait_leaf(lambda held: any(SPIFFE_ID in sans for _, sans in held), 30, "a leaf")
        traffic = Traffic(gateway.listen_port)
        traffic.start()
        traffic.sent_after(0, 20, 30)
        socket_since = m.show(SOCKET_UNIT, "ActiveEnterTimestampMonotonic")["ActiveEnterTimestampMonotonic"]

        # systemctl restart: the socket keeps listening, the Envoys' SDS streams reconnect.
        pid = main_pid(m)
        connections = {e.unit: e.stat("cluster.sds-grpc.upstream_cx_total") for e in (backend, gateway)}
        m.run("systemctl", "restart", SERVICE)
        assert main_pid(m) != pid
        wait_reconnected(backend, gateway, connections, 60)
        traffic.sent_after(traffic.sent, 20, 30)

        # Upgrade to the next revision: the postinst restarts the agent and leaves the socket,
        # and an administrator's `disable` (the socket still listening) stays as it was.
        rev2 = _next_revision(m.deb)
        m.run("systemctl", "disable", SOCKET_UNIT)
        pid = main_pid(m)
        connections = {e.unit: e.stat("cluster.sds-grpc.upstream_cx_total") for e in (backend, gateway)}
        m.run("dpkg", "-i", f"/srv/e2e/{rev2.name}")
        assert m.run("dpkg-query", "-W", "-f=${Version}", "sds-agent").stdout.endswith("-2")
        new_pid = main_pid(m)
        assert new_pid not in (0, pid), "the upgrade must restart the agent"
        wait_reconnected(backend, gateway, connections, 60)
        traffic.sent_after(traffic.sent, 20, 30)
        assert m.show(SOCKET_UNIT, "ActiveEnterTimestampMonotonic")["ActiveEnterTimestampMonotonic"] == socket_since, \
            "the socket must not be restarted"
        assert m.show(SOCKET_UNIT, "UnitFileState", "ActiveState") == {"UnitFileState": "disabled",
                                                                       "ActiveState": "active"}
        m.run("systemctl", "enable", SOCKET_UNIT)
        assert "cert-ttl: 1h" in (m.root / CONFIG.lstrip("/")).read_text(), "the changed conffile must be kept"
        assert fetched(m, "gateway")["ROOTCA"]["pem"] == m.root_ca, "the upgrade must keep the CA"

        traffic.stop_event.set()
        traffic.join(10)
        print(f"\nrestart and upgrade under traffic: {traffic.sent} requests, {len(traffic.failures)} failed")
        assert traffic.failures == [], traffic.failures[:10]
        assert traffic.peers == {SPIFFE_ID}, traffic.peers
    finally:
        gateway.stop()
        backend.stop()


def wait_reconnected(backend, gateway, before: dict[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        now = {e.unit: e.stat("cluster.sds-grpc.upstream_cx_total") for e in (backend, gateway)}
        active = {e.unit: e.stat("cluster.sds-grpc.upstream_cx_active") for e in (backend, gateway)}
        if all(now[u] > before[u] and active[u] >= 1 for u in now):
            return
        assert time.monotonic() < deadline, f"Envoys did not reconnect to the agent: {before} -> {now}, active {active}"
        time.sleep(0.2)


def test_peer_mode_exe_rule_needs_the_drop_in(machine):
    m = machine
    write_config(m, "caller-identity: peer\ncert-ttl: 1h\nworkload:\n"
                    f"  - {{uid: {USERS['gateway']}, exe: {ENVOY}, spiffe-id: {GATEWAY_ID}}}\n"
                    f"  - {{uid: {USERS['backend']}, spiffe-id: {BACKEND_ID}}}\n")
    m.run("systemctl", "restart", SERVICE)
    # A uid rule needs no capability.
    assert fetched(m, "backend")["default"]["spiffe_id"] == BACKEND_ID

    # The shipped unit has no capability: the gateway's executable cannot be read, so its
    # exe rule does not match and the Envoy is refused, with a warning (priority 4).
    cursor = journal_cursor(m)
    envoy = MachineEnvoy(m, "peer", "gateway", "backend")
    try:
        envoy.wait_live()
        refused = wait_journal(m, SERVICE, lambda e: message(e).startswith("refused an SDS caller")
                               and f"uid={USERS['gateway']}" in message(e), 60, "refusing the gateway",
                               since_cursor=cursor)
        assert refused["PRIORITY"] == "4", refused
        assert "exe=unknown" in message(refused), message(refused)
        assert envoy.leaves() == []

        # With the documented drop-in the agent may read it, and the same Envoy gets its identity.
        dropin = m.root / "etc/systemd/system/sds-agent.service.d"
        dropin.mkdir(parents=True)
        m.run("install", "-m", "0644", "/usr/share/sds-agent/exe-rules.conf",
              "/etc/systemd/system/sds-agent.service.d/exe-rules.conf")
        m.run("systemctl", "daemon-reload")
        m.run("systemctl", "restart", SERVICE)
        status = proc_status(m, main_pid(m))
        assert int(status["CapEff"], 16) == 1 << 19 and int(status["CapBnd"], 16) == 1 << 19, status  # CAP_SYS_PTRACE
        assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2", status
        envoy.wait_leaf(lambda held: any(GATEWAY_ID in sans for _, sans in held), 60, f"a leaf for {GATEWAY_ID}")
        # The same uid through another executable still matches no rule.
        other = fetch(m, "gateway")
        assert other.returncode != 0 and "permission" in (other.stdout + other.stderr).lower(), other
    finally:
        envoy.stop()


def test_remove_keeps_state_and_purge_deletes_it(machine):
    m = machine
    t0 = time.monotonic()
    m.run("dpkg", "-r", "sds-agent")
    took = time.monotonic() - t0
    for unit in (SERVICE, SOCKET_UNIT):
        assert m.show(unit, "ActiveState")["ActiveState"] in ("inactive", "failed") and \
            m.show(unit, "LoadState")["LoadState"] in ("not-found", "masked"), m.show(unit, "ActiveState", "LoadState")
    agents = [p for p in m.processes() if "sds-agent" in _exe(p)]
    assert agents == [], f"agent processes left after remove: {agents}"
    assert not m.path(SOCKET).exists()
    assert m.path("/var/lib/sds-agent/ca-cert.pem").exists(), "remove must keep the CA"
    assert m.path(CONFIG).exists(), "remove must keep the conffile"
    print(f"\ndpkg -r (stops the agent and the socket): {took:.2f}s")

    m.run("dpkg", "--purge", "sds-agent")
    assert not m.path("/var/lib/sds-agent").exists(), "purge must delete the state directory"
    assert not m.path("/etc/sds-agent").exists(), "purge must delete the configuration"
    assert m.run("getent", "passwd", "sds-agent").returncode == 0, "the system account stays (Debian's convention)"
    assert m.run("dpkg-query", "-W", "sds-agent", check=False).returncode != 0


def _host_has_capability(bit: int) -> bool:
    with open("/proc/self/status") as f:
        bounding = next(line.split()[1] for line in f if line.startswith("CapBnd:"))
    return bool(int(bounding, 16) >> bit & 1)


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""
