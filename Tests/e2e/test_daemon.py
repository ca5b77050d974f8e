"""sds-agent as a daemon: rotation drill, socket activation, sd_notify readiness and watchdog,
SIGHUP reload, SIGTERM, the admin endpoint (/metrics, /healthz, /readyz, /debug/*, POST /rotate, and
its refusal of web pages: foreign Origin or Host), log formats, secrecy and escaping (a client's
newline or ESC never reaches a log line or `status` raw), and check-config — all against the real binary (SDS_AGENT_BIN).

Nothing here sleeps in place of an event: tests block on socket reads with timeouts or poll with
deadlines. The only fixed waits are silence windows, where the point is that nothing arrives.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography import x509

from conftest import REPO_ROOT, SPIFFE_ID, STOP_TIMEOUT, Agent, _free_port, agent_bin
from daemon_support import (
    RESPONSE_TIMEOUT, START_TIMEOUT, NotifyReceiver, SdsStream, agent_argv, clean_env, fetch_secrets, has,
    inline_pem, leaf_of, lifetime_seconds, parse_iso, poll, sds_request, sds_stub, secrets_of, serial_hex, short_dir,
    wait_admin,
)

SYSTEMD_DIR = REPO_ROOT / "systemd"
LEVELS = ("trace", "debug", "info", "notice", "warning", "error", "critical")
# syslog priorities journald expects as the <N> prefix
PRIORITY = {"trace": 7, "debug": 7, "info": 6, "notice": 5, "warning": 4, "error": 3, "critical": 2}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def start(processes):
    """start(name, *extra_args, admin="tcp"|"unix"|None|ADDR, env={}, cert_ttl="1h",
    log_level="debug", wait=True, directory=None) -> a serving Agent (banner seen; admin up)."""

    def start_(name: str = "agent", *extra, admin: str | None = "tcp", env: dict | None = None,
               cert_ttl: str | None = "1h", log_level: str | None = "debug", wait: bool = True,
               directory: Path | None = None) -> Agent:
        binary = agent_bin()
        if not binary.exists():
            pytest.fail(f"sds-agent binary not found at {binary} (set SDS_AGENT_BIN)")
        d = directory or short_dir()
        processes.dirs.append(d)
        socket_path = d / "sds.sock"
        if admin == "tcp":
            admin = f"127.0.0.1:{_free_port()}"
        elif admin == "unix":
            admin = f"unix:{d / 'admin.sock'}"
        argv = agent_argv(socket_path, d / "state", *extra, admin=admin, cert_ttl=cert_ttl, log_level=log_level)
        agent = processes.add(Agent(name, argv, d, socket_path, env=clean_env(**(env or {})), admin=admin))
        if wait:
            took = agent.wait_serving()
            if admin:
                wait_admin(agent.admin)
            print(f"{name}: serving after {took:.2f}s (pid {agent.pid}, admin {admin})")
        return agent

    return start_


def run_cli(*args, env: dict | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess:
    argv = [str(agent_bin()), *[str(a) for a in args]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=clean_env(**(env or {})))


def level_of(line: str) -> str | None:
    """Level of a plain log line `<iso8601> <level> <message> ...`."""
    parts = line.split(" ", 2)
    return parts[1] if len(parts) > 1 and parts[1] in LEVELS else None


# --------------------------------------------------------------------------- 1. rotation drill


def _drill_report(out: str) -> dict:
    fields = {}
    for line in out.splitlines():
        m = re.match(r"\s*(old serial|new serial|push latency|identity):\s*(.+?)\s*$", line)
        if m:
            fields[m.group(1)] = m.group(2)
    return fields


@pytest.mark.parametrize("admin", ["tcp", "unix"])
def test_drill_passes_against_a_running_agent(start, admin):
    agent = start("agent", admin=admin)
    # Certificate times have a resolution of one second, and the drill requires the new
    # certificate to expire later than the old one: let a second pass since the last issuance
    # (test_drill_right_after_an_issuance covers the drill run within that second).
    _wait_past_issuance(agent, 1.5)
    before = agent.admin.current_serial()
    res = run_cli("drill", "--socket", agent.socket_path, "--admin", agent.admin_address)
    print(res.stdout + res.stderr)
    assert res.returncode == 0, f"drill exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert "rotation drill: PASSED" in res.stdout, res.stdout
    report = _drill_report(res.stdout)
    old, new = report.get("old serial"), report.get("new serial")
    assert old and new, f"drill report lacks old/new serial:\n{res.stdout}"
    assert re.fullmatch(r"[0-9a-f]+", old) and re.fullmatch(r"[0-9a-f]+", new), (old, new)
    assert old != new, f"drill reports the same serial twice: {old}"
    assert old.lstrip("0") == before.lstrip("0"), f"drill's old serial {old} is not the one served before ({before})"
    assert new.lstrip("0") == agent.admin.current_serial().lstrip("0"), "drill's new serial is not the served one"
    m = re.fullmatch(r"([0-9.]+)\s*(ms|s|µs|us)", report.get("push latency", ""))
    assert m, f"no push latency in the report:\n{res.stdout}"
    latency_ms = float(m.group(1)) * {"ms": 1, "s": 1000, "µs": 0.001, "us": 0.001}[m.group(2)]
    assert latency_ms < 10_000, latency_ms
    print(f"FIGURE drill push latency ({admin} admin): {latency_ms:.1f} ms")


def test_status_shows_the_node_and_exits_by_health(start):
    """`sds-agent status` as a monitoring check calls it: the table, --json, and the exit codes."""
    agent = start("agent")
    res = run_cli("status", "--admin", agent.admin_address)
    print(res.stdout + res.stderr)
    assert res.returncode == 0, f"status exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    serial = agent.admin.current_serial()
    assert "serving" in res.stdout and serial[:16] in res.stdout.lower() and res.stdout.rstrip().endswith("healthy")
    res = run_cli("status", "--admin", agent.admin_address, "--json")
    assert res.returncode == 0, res.stderr
    status = json.loads(res.stdout)
    (identity,) = status["identities"]
    assert identity["phase"] == "serving" and identity["healthy"] and identity["pinned"]
    assert identity["serial"].lower().lstrip("0") == serial.lstrip("0")
    assert len(status["trust_bundle"]) == 1 and "PRIVATE KEY" not in res.stdout
    code, _ = agent.terminate_and_time()
    assert code == 0
    res = run_cli("status", "--admin", agent.admin_address)
    assert res.returncode == 2, f"status of a stopped agent exited {res.returncode}: {res.stdout}{res.stderr}"
    assert "cannot read the agent's status" in res.stderr, res.stderr


def _wait_past_issuance(agent, seconds: float) -> None:
    """Poll the wall clock until `seconds` have passed since the served certificate's issuance
    (its notBefore is backdated 10 s)."""
    (default,) = [s for s in agent.admin.json("/debug/secrets") if s.get("name") == "default"]
    issued = parse_iso(default["not_before"]).timestamp() + 10
    poll(lambda: time.time() >= issued + seconds, 10, interval=0.05, what="a second past the last issuance")


def test_drill_right_after_an_issuance(start):
    """An operator may run the drill twice in a row, or right after the agent started: the
    forced rotation then happens within the same second as the previous issuance. The drill
    must still pass (a fresh certificate was pushed); it must not compare second-resolution
    notAfter values strictly."""
    agent = start("agent")
    poll(lambda: time.time() % 1 < 0.3, 2, interval=0.01, what="the start of a second")
    status, _ = agent.admin.rotate()
    assert status == 200
    res = run_cli("drill", "--socket", agent.socket_path, "--admin", agent.admin_address)
    print(res.stdout + res.stderr)
    assert res.returncode == 0 and "rotation drill: PASSED" in res.stdout, \
        f"drill right after an issuance exited {res.returncode}:\n{res.stdout}{res.stderr}"


def test_drill_fails_when_the_push_never_comes(start):
    a = start("agent-a")
    b = start("agent-b")
    a_serial, b_serial = a.admin.current_serial(), b.admin.current_serial()
    t0 = time.monotonic()
    # the stream is on A, the forced rotation on B: the new certificate never arrives on the stream
    res = run_cli("drill", "--socket", a.socket_path, "--admin", b.admin_address, "--timeout", "2s", timeout=60)
    elapsed = time.monotonic() - t0
    out = res.stdout + res.stderr
    print(out)
    print(f"drill (mismatched agents) exited {res.returncode} after {elapsed:.1f}s")
    assert res.returncode != 0, f"drill passed although the push could not arrive:\n{out}"
    assert "rotation drill: FAILED" in out, out
    assert "PASSED" not in out, out
    # a clear message: says what did not happen and within how long
    assert re.search(r"(no|not|never).{0,80}(push|certificate|serial)|timed? ?out", out, re.I | re.S), out
    assert elapsed < 2 + 20, f"drill took {elapsed:.1f}s with --timeout 2s"
    assert b.admin.current_serial() != b_serial, "the drill did not rotate agent B (its --admin)"
    assert a.admin.current_serial() == a_serial, "agent A rotated although only B was asked to"


# --------------------------------------------------------------------------- 2. socket activation


def _socket_activate(processes, *agent_args, notify: NotifyReceiver | None = None):
    d = short_dir()
    processes.dirs.append(d)
    sock = d / "sds.sock"
    argv = ["systemd-socket-activate", "-l", sock]
    if notify is not None:  # systemd-socket-activate passes only PATH, TERM, USER, HOME and -E
        argv += ["-E", f"NOTIFY_SOCKET={notify.path}"]
    argv += agent_argv(None, d / "state", *agent_args)
    if shutil.which("systemd-socket-activate") is None:
        pytest.skip("systemd-socket-activate not installed")
    # systemd-socket-activate execs the agent: the same process, held to the agent's account
    proc = processes.add(Agent("socket-activate", argv, d, sock, env=clean_env()))
    poll(lambda: sock.is_socket(), 30, what=f"systemd-socket-activate listening on {sock}")
    return proc, sock, d


def test_socket_activation_serves_on_the_passed_socket(processes):
    d0 = short_dir()
    processes.dirs.append(d0)
    notify = NotifyReceiver(d0)
    try:
        proc, sock, d = _socket_activate(processes, notify=notify)
        notify.probe_socket = sock
        # systemd-socket-activate execs the agent on the first connection: this fetch starts it
        t0 = time.monotonic()
        resp = fetch_secrets(sock, timeout=START_TIMEOUT, wait_for_ready=True)
        print(f"first fetch through the activated socket answered after {time.monotonic() - t0:.2f}s")
        secrets = secrets_of(resp)
        assert set(secrets) == {"default", "ROOTCA"}, set(secrets)
        assert secrets["default"].tls_certificate.private_key, "no private key in default"
        assert inline_pem(secrets["ROOTCA"].validation_context.trusted_ca).startswith("-----BEGIN CERTIFICATE-----")
        san = leaf_of(resp).extensions.get_extension_for_oid(x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [SPIFFE_ID]

        _, line = proc.wait_log("using the socket passed by systemd", 10)
        assert str(sock) in line, f"the log line does not name the passed socket {sock}: {line}"
        _, ready = notify.wait_for(has("READY", "1"), 30, what="READY=1 from the socket-activated agent")
        assert ready.sds_socket_accepted, "READY=1 came while the socket did not accept"
        print(f"socket activation: READY=1 {ready.raw!r}")

        # a stream works too, and the agent bound nothing of its own next to the passed socket
        stream = SdsStream(sock, node_id="e2e-activated")
        try:
            assert set(secrets_of(stream.first_response_acked())) == {"default", "ROOTCA"}
        finally:
            stream.close()
        assert sorted(p.name for p in d.iterdir() if p.is_socket()) == ["sds.sock"]

        code, took = proc.terminate_and_time()
        notify.wait_for(has("STOPPING", "1"), 5, what="STOPPING=1")
        # the exit code with NOTIFY_SOCKET set is asserted by test_notify_ready_watchdog_reload_stop
        print(f"socket-activated agent: STOPPING=1, exit {code} after {took:.2f}s")
        assert took < STOP_TIMEOUT
    finally:
        notify.close()


def test_socket_activation_banner_names_the_passed_socket(processes):
    """The banner and the printed Envoy snippet must name the socket actually served."""
    proc, sock, _ = _socket_activate(processes)
    fetch_secrets(sock, timeout=START_TIMEOUT, wait_for_ready=True)
    banner = proc.banner()
    print(f"banner under socket activation: {banner!r}")
    lines = proc.stdout_lines()
    pipes = [l.strip() for l in lines if "path:" in l or "pipe" in l]
    assert banner.startswith(f"sds-agent: serving SDS on {sock}"), \
        f"banner names another socket than the one passed by systemd ({sock}): {banner!r}"
    assert any(str(sock) in p for p in pipes), f"the Envoy snippet does not point at {sock}: {pipes}"


# --------------------------------------------------------------------------- 3. sd_notify


def test_notify_ready_watchdog_reload_stop(start):
    d = short_dir()
    notify = NotifyReceiver(d, probe_socket=d / "sds.sock")
    try:
        agent = start("agent", admin=None, directory=d,
                      env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"}, wait=False)
        ready_idx, ready = notify.wait_for(has("READY", "1"), START_TIMEOUT, what="READY=1")
        assert ready.sds_socket_accepted, "READY=1 arrived before the SDS socket accepted connections"
        resp = fetch_secrets(agent.socket_path, timeout=5)  # no wait_for_ready: must work right now
        assert "default" in secrets_of(resp), "READY=1 sent, but no certificate served yet"
        agent.wait_serving(10)
        print(f"READY: {ready.raw!r}")
        assert "STATUS" in ready.fields, f"READY=1 without STATUS=: {ready.raw!r}"

        # watchdog: WATCHDOG_USEC=2s, so WATCHDOG=1 about every second, each with STATUS=
        wd = []
        i = ready_idx + 1
        while len(wd) < 3:
            i, m = notify.wait_for(has("WATCHDOG", "1"), 10, start=i, what=f"WATCHDOG=1 #{len(wd) + 1}")
            assert "STATUS" in m.fields and m.fields["STATUS"].strip(), f"WATCHDOG=1 without STATUS=: {m.raw!r}"
            wd.append(m)
            i += 1
        intervals = [b.at - a.at for a, b in zip(wd, wd[1:])]
        print(f"FIGURE watchdog: WATCHDOG_USEC=2000000, intervals observed {[round(x, 3) for x in intervals]} s; "
              f"STATUS={wd[-1].fields['STATUS']!r}")
        assert all(x < 2.0 for x in intervals), f"WATCHDOG=1 not within WATCHDOG_USEC: {intervals}"
        assert all(x > 0.4 for x in intervals), f"WATCHDOG=1 far more often than WATCHDOG_USEC/2: {intervals}"
        assert "\n" not in wd[-1].fields["STATUS"]

        # SIGHUP: RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC, same clock as time.monotonic), then READY=1
        n = len(notify.snapshot())
        sent_at = time.monotonic()
        agent.signal(signal.SIGHUP)
        r_idx, reloading = notify.wait_for(has("RELOADING", "1"), 10, start=n, what="RELOADING=1")
        assert "MONOTONIC_USEC" in reloading.fields, f"RELOADING=1 without MONOTONIC_USEC: {reloading.raw!r}"
        mono = int(reloading.fields["MONOTONIC_USEC"]) / 1e6
        assert sent_at - 1 <= mono <= reloading.at + 0.5, \
            f"MONOTONIC_USEC={mono:.3f}s is not between SIGHUP ({sent_at:.3f}) and the message ({reloading.at:.3f})"
        _, ready2 = notify.wait_for(has("READY", "1"), 10, start=r_idx + 1, what="READY=1 after RELOADING=1")
        print(f"reload: {reloading.raw!r} then {ready2.raw!r} ({ready2.at - reloading.at:.3f}s later)")

        code, took = agent.terminate_and_time()
        _, stopping = notify.wait_for(has("STOPPING", "1"), 2, start=r_idx, what="STOPPING=1 after SIGTERM")
        assert code == 0, f"exit code {code} after SIGTERM"
        assert stopping.at <= time.monotonic()
        print(f"SIGTERM: STOPPING=1 then exit 0 after {took:.2f}s")
    finally:
        notify.close()


class _SilentSocket:
    """A listening Unix socket that never answers: the kernel completes connections into its
    backlog, so a client connects and then waits in vain, as with a hung server."""

    def __init__(self, path: Path):
        import socket

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(64)

    def close(self) -> None:
        self.sock.close()


def test_watchdog_pings_stop_while_the_sds_socket_does_not_answer(start):
    """WATCHDOG=1 must depend on the agent answering on its own socket path. The fault is real for
    every client: the path is handed to a socket that accepts and never answers (the agent's own
    listener is moved aside, so it is unharmed and can be put back). Pings must flow before, stop
    during, and resume after."""
    d = short_dir()
    notify = NotifyReceiver(d)
    silent = None
    try:
        agent = start("agent", admin=None, directory=d, env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"})
        withheld = "withholding the watchdog ping"  # logged on each failed self-check
        # control: pings flow while the socket answers
        idx, _ = notify.wait_for(has("WATCHDOG", "1"), 15, what="WATCHDOG=1 before the fault")
        notify.wait_for(has("WATCHDOG", "1"), 15, start=idx + 1, what="a second WATCHDOG=1 before the fault")

        moved = d / "sds.sock.real"
        os.rename(agent.socket_path, moved)
        silent = _SilentSocket(agent.socket_path)
        mark, n = len(agent.log_lines()), len(notify.snapshot())
        # Every datagram for three WATCHDOG_USEC periods: at most one ping, from a self-check that
        # had connected before the swap; an agent pinging regardless would send about six.
        pings, i, deadline = [], n, time.monotonic() + 3 * 2.0
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                i, m = notify.wait_for(has("WATCHDOG", "1"), remaining, start=i, what="WATCHDOG=1")
            except AssertionError:
                break
            pings.append(m.raw)
            i += 1
        print(f"watchdog with a silent socket at {agent.socket_path}: {len(pings)} ping(s) in 6 s")
        assert len(pings) <= 1, f"WATCHDOG=1 kept coming while the SDS socket did not answer: {pings}"
        # ... because the self-check failed, not because the agent stalled
        first, _ = agent.wait_log(withheld, 10, start=mark, what="a withheld watchdog ping")
        agent.wait_log(withheld, 10, start=first + 1, what="a second withheld watchdog ping")
        assert agent.alive()

        # put the real socket back: the pings resume
        silent.close()
        silent = None
        os.replace(moved, agent.socket_path)
        n = len(notify.snapshot())
        notify.wait_for(has("WATCHDOG", "1"), 15, start=n, what="WATCHDOG=1 after the socket answers again")
    finally:
        if silent is not None:
            silent.close()
        notify.close()


def test_no_watchdog_for_another_pid(start):
    """WATCHDOG_PID names another process: the agent must not send WATCHDOG=1 (silence window)."""
    d = short_dir()
    notify = NotifyReceiver(d)
    try:
        start("agent", admin=None, directory=d, env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000",
                                                      "WATCHDOG_PID": "1"}, wait=False)
        idx, _ = notify.wait_for(has("READY", "1"), START_TIMEOUT, what="READY=1")
        time.sleep(2.5)  # silence window: five WATCHDOG_USEC/2 periods
        wd = [m.raw for m in notify.snapshot() if "WATCHDOG" in m.fields]
        assert not wd, f"WATCHDOG=1 sent although WATCHDOG_PID=1 is not the agent: {wd}"
    finally:
        notify.close()


# --------------------------------------------------------------------------- 4. SIGHUP reload


def settle_for_signals(agent) -> None:
    """The agent installs its SIGHUP handler after the banner (and possibly after READY=1, see
    test_sighup_right_after_ready_is_a_reload): let it answer a fetch first, which takes longer
    than the agent needs to finish starting."""
    assert "default" in secrets_of(fetch_secrets(agent.socket_path))


def test_sighup_right_after_ready_is_a_reload(start):
    """systemd may send ExecReload's SIGHUP as soon as READY=1 arrived: from then on SIGHUP must
    reload, never kill the agent with SIGHUP's default action."""
    tries, killed = 10, []
    for i in range(tries):
        d = short_dir()
        notify = NotifyReceiver(d)
        try:
            agent = start(f"agent-{i}", admin=None, directory=d, env={"NOTIFY_SOCKET": notify.path}, wait=False)
            idx, _ = notify.wait_for(has("READY", "1"), START_TIMEOUT, what="READY=1")
            agent.signal(signal.SIGHUP)
            try:
                notify.wait_for(has("RELOADING", "1"), 5, start=idx + 1, what="RELOADING=1")
            except AssertionError:
                if agent.proc.poll() is None:
                    raise
                agent.stopped_on_purpose = True
                killed.append(agent.proc.returncode)
                continue
            assert agent.alive()
            agent.stopped_on_purpose = True  # its exit code is test_notify_ready_watchdog_reload_stop's business
            agent.stop()
        finally:
            notify.close()
    print(f"SIGHUP right after READY=1: agent killed in {len(killed)} of {tries} starts")
    assert not killed, (f"SIGHUP sent right after READY=1 killed the agent in {len(killed)} of {tries} starts "
                        f"(exit codes {killed}; -1 = killed by SIGHUP)")


def _await_new_leaf(stream: SdsStream, old_serial: str, timeout: float = RESPONSE_TIMEOUT):
    """ACK responses on `stream` until one carries a leaf other than old_serial: (resp, leaf, received_at)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = stream.next_response(max(0.1, deadline - time.monotonic()))
        at = datetime.now(timezone.utc)
        stream.ack(resp)
        if "default" in secrets_of(resp):
            leaf = leaf_of(resp)
            if serial_hex(leaf) != old_serial:
                return resp, leaf, at


def test_sighup_reload_applies_live_and_refuses_a_broken_config(start):
    d = short_dir()
    cfg = d / "config.yaml"
    cfg.write_text("cert-ttl: 1h\nlog-level: info\n")
    agent = start("agent", "--config", cfg, cert_ttl=None, log_level=None, directory=d)
    stream = SdsStream(agent.socket_path, node_id="e2e-reload")
    try:
        first = stream.first_response_acked()
        leaf1 = leaf_of(first)
        assert 3600 - 5 <= lifetime_seconds(leaf1) <= 3600 + 15, f"first lifetime {lifetime_seconds(leaf1)}s"
        # the ACK is recorded before we go on (so the push below is a push, not a re-send)
        poll(lambda: any(s.get("node_id") == "e2e-reload" and s.get("last_acked_version") == first.version_info
                         for s in agent.admin.json("/debug/streams")), 10, what="ACK recorded")
        before = agent.log_lines()
        assert not [l for l in before if level_of(l) in ("debug", "trace")], "debug lines at log-level info"

        # live change: cert-ttl 1h -> 30s, log-level info -> debug
        cfg.write_text("cert-ttl: 30s\nlog-level: debug\n")
        n = len(before)
        agent.signal(signal.SIGHUP)
        _, reloaded = agent.wait_log("reloaded configuration", 10, start=n)
        print(f"reload: {reloaded}")
        resp, leaf2, received = _await_new_leaf(stream, serial_hex(leaf1))
        issued_ago = (leaf2.not_valid_after_utc - received).total_seconds()
        print(f"pushed after SIGHUP: serial {serial_hex(leaf2)} lifetime(notAfter-notBefore)="
              f"{lifetime_seconds(leaf2):.0f}s, notAfter-receipt={issued_ago:.1f}s")
        assert 20 <= issued_ago <= 31, f"new certificate expires {issued_ago:.1f}s after receipt, not ~30s"
        assert lifetime_seconds(leaf2) <= 30 + 15, f"lifetime {lifetime_seconds(leaf2)}s is not ~30s"
        agent.wait_log(lambda l: level_of(l) == "debug", 10, start=n, what="a debug line after the reload")

        # broken config: refused, nothing changes, the stream stays open
        cfg.write_text("cert-ttl: soon\nlog-level: info\n")
        m = len(agent.log_lines())
        agent.signal(signal.SIGHUP)
        _, refused = agent.wait_log("refused the new configuration; keeping the running one", 10, start=m)
        print(f"refusal: {refused}")
        assert level_of(refused) in ("error", "critical"), f"refusal not logged as an error: {refused}"
        assert "cert-ttl" in refused or "soon" in refused, f"the refusal does not say what is wrong: {refused}"
        assert not [l for l in agent.log_lines()[m:] if "reloaded configuration" in l], "broken config was applied"

        status, body = agent.admin.rotate()
        assert status == 200, (status, body)
        serial = json.loads(body)["serial"].lower()
        pushed = stream.wait_serial(serial)  # the SAME stream gets the forced rotation
        leaf3 = leaf_of(pushed)
        assert lifetime_seconds(leaf3) <= 30 + 15, "the running cert-ttl (30s) was not kept after the refusal"
        agent.wait_log(lambda l: level_of(l) == "debug", 10, start=m, what="debug lines still on after the refusal")
        fetched = secrets_of(fetch_secrets(agent.socket_path))
        assert set(fetched) == {"default", "ROOTCA"}
        assert agent.alive()
    finally:
        stream.close()


def test_sighup_restart_only_change_is_reported(start):
    d = short_dir()
    cfg = d / "config.yaml"
    cfg.write_text('cert-ttl: 1h\nsocket-mode: "0660"\n')
    agent = start("agent", "--config", cfg, cert_ttl=None, admin=None, directory=d)
    settle_for_signals(agent)
    cfg.write_text('cert-ttl: 1h\nsocket-mode: "0600"\n')
    n = len(agent.log_lines())
    agent.signal(signal.SIGHUP)
    _, line = agent.wait_log("some changes take effect only after a restart", 10, start=n)
    print(line)
    assert "socket-mode" in line or "socket_mode" in line, f"the key that needs a restart is not named: {line}"
    assert stat.S_IMODE(agent.socket_path.stat().st_mode) == 0o660, "socket mode changed without a restart"


# --------------------------------------------------------------------------- 5. SIGTERM


def test_sigterm_with_open_streams_exits_cleanly_within_the_bound(start):
    agent = start("agent")
    streams = [SdsStream(agent.socket_path, node_id=f"e2e-term-{i}") for i in range(3)]
    try:
        for s in streams:
            s.first_response_acked()
        poll(lambda: agent.admin.metrics().value("sds_agent_streams_open") >= 3, 10, what="3 streams open")
        code, took = agent.terminate_and_time(timeout=30)
        print(f"FIGURE SIGTERM with 3 open streams: exit {code} after {took:.2f}s")
        assert code == 0, f"exit code {code} after SIGTERM\n{agent.tail()}"
        assert took < STOP_TIMEOUT, f"shutdown took {took:.2f}s (bound {STOP_TIMEOUT:.0f}s)"
        endings = []
        for s in streams:
            kind, value = s.next_event(5)
            while kind == "response":
                kind, value = s.next_event(5)
            endings.append("end (OK)" if kind == "end" else f"{value.code().name} {value.details()!r}")
        print(f"stream endings: {endings}")
        # "end cleanly": an OK status, or UNAVAILABLE (the server going away), never INTERNAL/UNKNOWN
        for e in endings:
            assert e == "end (OK)" or e.startswith("UNAVAILABLE") or e.startswith("CANCELLED"), endings
        assert any("stopped" in l for l in agent.log_lines()[-5:]), "no 'stopped' log line at the end"
    finally:
        for s in streams:
            s.close()


# --------------------------------------------------------------------------- 6. admin endpoint


def test_metrics_and_debug_endpoints(start):
    agent = start("agent", cert_ttl="1h")
    admin = agent.admin
    base = admin.metrics()
    expiry = base.value("sds_agent_certificate_expiry_seconds", default=None, identity=SPIFFE_ID)
    assert 0 < expiry <= 3600 + 5, expiry
    assert base.value("sds_agent_certificates_issued_total", default=None) >= 1
    assert admin.request("GET", "/healthz")[0] == 200
    assert admin.request("GET", "/readyz")[0] == 200
    opened0 = base.value("sds_agent_streams_opened_total")
    closed0 = base.value("sds_agent_streams_closed_total")
    open0 = base.value("sds_agent_streams_open")
    sent0 = base.value("sds_agent_responses_sent_total")
    acks0 = base.value("sds_agent_acks_total")

    n = 3
    names = {f"e2e-metrics-{i}": (["default", "ROOTCA"] if i % 2 == 0 else ["default"]) for i in range(n)}
    streams = [SdsStream(agent.socket_path, names=r, node_id=node) for node, r in names.items()]
    try:
        for s in streams:
            s.first_response_acked()

        def opened():
            m = admin.metrics()
            return (m.value("sds_agent_streams_opened_total") >= opened0 + n
                    and m.value("sds_agent_streams_open") == open0 + n
                    and m.value("sds_agent_acks_total") >= acks0 + n and m)

        m = poll(opened, 10, what=f"{n} more streams opened/open/acked in /metrics")
        assert m.value("sds_agent_responses_sent_total") >= sent0 + n

        def listed_and_acked():
            mine = [e for e in admin.json("/debug/streams") if e.get("node_id") in names]
            return mine if len(mine) == n and all(e.get("last_acked_version") for e in mine) else None

        listed = poll(listed_and_acked, 10, what="/debug/streams listing the streams, ACKed")
        for entry in listed:
            for key in ("id", "node_id", "resources", "last_sent_version", "last_acked_version",
                        "last_nacked_nonce", "last_nack_message"):
                assert key in entry, f"/debug/streams entry lacks {key}: {entry}"
            assert sorted(entry["resources"]) == sorted(names[entry["node_id"]]), entry
            assert entry["last_acked_version"] == entry["last_sent_version"], entry
        print(f"/debug/streams: {listed}")

        # POST /rotate: the serial changes, /debug/secrets follows, the streams get it pushed
        old = admin.current_serial()
        status, body = admin.rotate()
        assert status == 200, (status, body)
        new = json.loads(body)["serial"].lower()
        assert new != old and admin.current_serial() == new
        for s in streams:
            s.wait_serial(new)
        status, body = admin.rotate("spiffe://cluster.local/ns/other/sa/other")
        assert status == 404, f"POST /rotate for another identity: {status} {body}"
        assert admin.current_serial() == new, "a refused /rotate rotated anyway"
        m2 = admin.metrics()
        assert m2.value("sds_agent_certificates_issued_total") >= base.value("sds_agent_certificates_issued_total") + 1

        # /debug/secrets: metadata only
        raw = admin.get("/debug/secrets")
        secrets = json.loads(raw)
        (default,) = [s for s in secrets if s.get("name") == "default"]
        for key in ("serial", "not_before", "not_after", "next_rotation"):
            assert key in default, f"/debug/secrets lacks {key}: {default}"
        key_pem = next(s for s in agent.fetch(extra=["--show-key"])[0] if s["name"] == "default")["private_key"]
        body_lines = [l for l in key_pem.splitlines() if l and not l.startswith("-----")]
        assert body_lines
        flat = raw.replace("\\/", "/")
        assert "PRIVATE KEY" not in flat and "private_key" not in flat
        assert not [l for l in body_lines if l[:24] in flat], "/debug/secrets contains private key material"
    finally:
        for s in streams:
            s.close()

    def closed():
        mm = admin.metrics()
        return (mm.value("sds_agent_streams_closed_total") >= closed0 + n
                and mm.value("sds_agent_streams_open") == open0 and mm)

    end = poll(closed, 10, what="streams closed in /metrics")
    assert not [s for s in admin.json("/debug/streams") if s.get("node_id") in names], "closed streams still listed"
    print("metrics moved: opened_total {:.0f}->{:.0f}, closed_total {:.0f}->{:.0f}, open {:.0f}->{:.0f}->{:.0f}".format(
        opened0, end.value("sds_agent_streams_opened_total"), closed0, end.value("sds_agent_streams_closed_total"),
        open0, open0 + n, end.value("sds_agent_streams_open")))
    for fam in ("sds_agent_certificate_issuance_seconds",):
        assert end.has(f"{fam}_bucket") and end.has(f"{fam}_count"), f"{fam} histogram missing"


def test_not_ready_without_a_certificate(start):
    """Fetch mode with an unreachable CA: the agent runs but has no certificate, so /readyz is
    503, /healthz 200, failures are counted, and READY=1 is never sent."""
    d = short_dir()
    notify = NotifyReceiver(d)
    try:
        (d / "token").write_text("not-a-real-token\n")
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2e unreachable CA")])
        now = datetime.now(timezone.utc)
        root = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now.replace(year=now.year + 1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        (d / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
        closed_port = _free_port()  # nothing listens there
        agent = start("agent", "--ca", "istio", "--ca-address", f"127.0.0.1:{closed_port}", "--ca-root",
                      d / "root.pem", "--token-file", d / "token", "--identity", SPIFFE_ID, directory=d,
                      env={"NOTIFY_SOCKET": notify.path})
        # the window: the agent has tried the CA and failed at least twice
        i, _ = agent.wait_log("could not issue a certificate", 30)
        agent.wait_log("could not issue a certificate", 30, start=i + 1)
        status, body, _ = agent.admin.request("GET", "/readyz")
        assert status == 503, f"/readyz without a certificate: {status} {body}"
        assert agent.admin.request("GET", "/healthz")[0] == 200
        m = agent.admin.metrics()
        failures = sum(v for (n, _), v in m.samples.items() if n == "sds_agent_issuance_failures_total")
        assert failures >= 2, f"issuance failures not counted:\n{m.text}"
        codes = {dict(l).get("code") for (n, l) in m.samples if n == "sds_agent_issuance_failures_total"}
        print(f"/readyz {status} {body.strip()!r}; issuance_failures_total={failures:.0f} codes={codes}")
        assert not [x.raw for x in notify.snapshot() if x.fields.get("READY") == "1"], "READY=1 without a certificate"
        # systemd may stop a service that never became ready: SIGTERM must still end it in time
        code, took = agent.terminate_and_time(timeout=STOP_TIMEOUT + 2)
        after = notify.snapshot()
        print(f"SIGTERM before READY=1: exit {code} after {took:.2f}s; notify messages: {[x.raw for x in after]}")
        problems = []
        if took >= 5:  # without NOTIFY_SOCKET the same agent stops in milliseconds
            problems.append(f"stopping took {took:.2f}s (the graceful path hung until the {STOP_TIMEOUT:.0f}s bound)")
        if [x for x in after if x.fields.get("READY") == "1"]:
            problems.append("READY=1 was sent although no certificate ever existed: "
                            f"{[x.raw for x in after if x.fields.get('READY') == '1']}")
        if not [x for x in after if x.fields.get("STOPPING") == "1"]:
            problems.append("no STOPPING=1")
        if code != 0:
            problems.append(f"exit code {code}")
        assert not problems, "SIGTERM before the first certificate: " + "; ".join(problems)
    finally:
        notify.close()


def test_admin_unix_socket_is_private(start):
    agent = start("agent", admin="unix")
    path = Path(agent.admin_address[len("unix:"):])
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, f"admin socket mode {oct(mode)}, expected 0o600"
    assert agent.admin.request("GET", "/healthz")[0] == 200
    assert agent.admin.metrics().has("sds_agent_certificate_expiry_seconds")


@pytest.mark.parametrize("address,via", [("0.0.0.0:1234", "flag"), ("10.1.2.3:1234", "flag"), ("[::]:1234", "flag"),
                                         ("unix:relative/admin.sock", "flag"), ("0.0.0.0:1234", "env")])
def test_admin_refuses_non_loopback(address, via):
    d = short_dir()
    try:
        argv = ["run", "--socket", d / "sds.sock", "--state-dir", d / "state"]
        env = {}
        if via == "flag":
            argv += ["--admin", address]
        else:
            env["SDS_AGENT_ADMIN"] = address
        res = run_cli(*argv, env=env, timeout=30)
        out = res.stdout + res.stderr
        print(f"--admin {address} ({via}): exit {res.returncode}: {res.stderr.strip().splitlines()[:1]}")
        assert res.returncode != 0, f"agent accepted admin {address}:\n{out}"
        assert "admin" in res.stderr and address in res.stderr, res.stderr
        assert "127.0.0.1" in res.stderr and "unix:" in res.stderr, f"allowed forms not named: {res.stderr}"
        assert "serving SDS" not in res.stdout
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _raw_admin(address: str, method: str, path: str, headers: dict) -> tuple[int, str]:
    """One request with exactly these headers (no Host added): what a browser's request looks like."""
    import http.client

    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_admin_on_tcp_refuses_cross_origin_and_foreign_host(start):
    """A web page cannot drive the loopback admin endpoint: a cross-site POST (Origin of another
    site, or `null`) is refused before any route runs, and so is a request whose Host is not the
    listen address or localhost (DNS rebinding). Operators' tools, which send no Origin, work."""
    agent = start("agent")
    port = agent.admin_address.rsplit(":", 1)[1]
    own = f"127.0.0.1:{port}"
    serial = agent.admin.current_serial()
    trust_before = agent.admin.json("/debug/trust")

    refused = [
        ("POST", "/ca/rotate-root?overlap=1s", {"Host": own, "Origin": "http://evil.example"}),
        ("POST", "/rotate", {"Host": own, "Origin": "http://evil.example"}),
        ("POST", "/rotate", {"Host": own, "Origin": "null"}),
        ("POST", "/rotate", {"Host": own, "Origin": f"http://127.0.0.1:{int(port) + 1}"}),
        ("GET", "/status", {"Host": f"evil.example:{port}"}),
        ("GET", "/debug/streams", {"Host": "evil.example"}),
        ("GET", "/status", {"Host": f"127.0.0.1.evil.example:{port}"}),
    ]
    for method, path, headers in refused:
        status, body = _raw_admin(agent.admin_address, method, path, headers)
        print(f"{method} {path} {headers}: {status} {body.strip()}")
        assert status == 403, f"{method} {path} with {headers} answered {status}: {body}"
        assert "admin endpoint" in body and ("Origin" in body or "Host" in body), body
    assert agent.admin.current_serial() == serial, "a refused cross-origin POST /rotate rotated anyway"
    assert agent.admin.json("/debug/trust") == trust_before, "a refused cross-origin rotate-root changed the trust"

    allowed = [
        ("GET", "/status", {"Host": own}),
        ("GET", "/status", {"Host": f"localhost:{port}"}),
        ("GET", "/healthz", {"Host": own, "Origin": f"http://{own}"}),
        ("GET", "/healthz", {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}),
    ]
    for method, path, headers in allowed:
        status, body = _raw_admin(agent.admin_address, method, path, headers)
        assert status == 200, f"{method} {path} with {headers} answered {status}: {body}"
    res = run_cli("status", "--admin", agent.admin_address)
    assert res.returncode == 0, f"status exited {res.returncode}\n{res.stdout}\n{res.stderr}"


# --------------------------------------------------------------------------- 7. logs


def test_json_log_format(start):
    agent = start("agent", "--log-format", "json")
    stream = SdsStream(agent.socket_path, node_id="e2e-json")
    try:
        stream.first_response_acked()
        agent.admin.rotate()
    finally:
        stream.close()
    code, _ = agent.terminate_and_time()
    assert code == 0
    lines = agent.log_lines()
    assert len(lines) >= 5, lines
    levels = set()
    for line in lines:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"log line is not JSON: {line!r}") from None
        assert isinstance(obj, dict), line
        assert obj.get("level") in LEVELS, f"bad level: {line}"
        assert isinstance(obj.get("msg"), str) and obj["msg"], f"no msg: {line}"
        assert "ts" in obj, f"no ts: {line}"
        levels.add(obj["level"])
    msgs = [json.loads(l)["msg"] for l in lines]
    assert "issued certificate" in msgs and "stopped" in msgs, msgs
    issued = next(json.loads(l) for l in lines if json.loads(l)["msg"] == "issued certificate")
    assert "serial" in json.dumps(issued), f"metadata keys missing from the JSON object: {issued}"
    print(f"json log: {len(lines)} lines, levels {sorted(levels)}; e.g. {lines[0]}")


def test_journald_priority_prefix(start):
    d = short_dir()
    stderr_path = d / "agent.stderr.log"
    stderr_path.touch()  # ManagedProcess reopens it with "wb": same inode, so JOURNAL_STREAM matches for real
    st = os.stat(stderr_path)
    agent = start("agent", directory=d, env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    agent.admin.rotate()
    agent.wait_log(lambda l: "issued certificate" in l, 10, start=2)
    code, _ = agent.terminate_and_time()
    assert code == 0
    lines = agent.log_lines()
    bad = [l for l in lines if not re.match(r"^<[0-7]>\S", l)]
    assert not bad, f"lines without a <N> priority prefix: {bad[:5]}"
    assert not [l for l in lines if re.match(r"^<[0-7]>\d{4}-\d\d-\d\dT", l)], "timestamp kept under journald"
    prios = {int(l[1]) for l in lines}
    info = [l for l in lines if "issued certificate" in l]
    assert info and all(l.startswith("<6>") for l in info), info
    dbg = [l for l in lines if l.startswith("<7>")]
    assert dbg, "no <7> (debug) lines at --log-level debug"
    print(f"journald prefixes seen: {sorted(prios)}; e.g. {info[0]!r}")


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_no_private_key_in_logs_at_trace(start, log_format):
    agent = start("agent", "--log-format", log_format, log_level="trace")
    keys = []
    stream = SdsStream(agent.socket_path, node_id="e2e-secrecy")
    try:
        resp = stream.first_response_acked()
        keys.append(inline_pem(secrets_of(resp)["default"].tls_certificate.private_key))
        for _ in range(2):
            status, body = agent.admin.rotate()
            assert status == 200
            pushed = stream.wait_serial(json.loads(body)["serial"])
            keys.append(inline_pem(secrets_of(pushed)["default"].tls_certificate.private_key))
            keys.append(next(s for s in agent.fetch(extra=["--show-key"])[0] if s["name"] == "default")["private_key"])
    finally:
        stream.close()
    code, _ = agent.terminate_and_time()
    assert code == 0
    text = "\n".join(agent.log_lines() + agent.stdout_lines())
    flat = text.replace("\\/", "/").replace("\\n", "\n").replace("\\u002b", "+").replace("\\u002B", "+")
    n_lines = len(agent.log_lines())
    assert n_lines > 10, f"only {n_lines} log lines at trace"
    assert "PRIVATE KEY" not in flat, "a log line contains 'PRIVATE KEY'"
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    for pem in set(keys):
        assert "PRIVATE KEY" in pem
        body = "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))
        chunks = [body[i:i + 20] for i in range(0, len(body) - 20, 20)]
        leaked = [c for c in chunks if c in flat]
        assert not leaked, f"chunks of a served private key are in the logs: {leaked[:3]}"
        key = load_pem_private_key(pem.encode(), None)
        scalar = format(key.private_numbers().private_value, "x")
        assert scalar[:32] not in flat.lower(), "the private scalar (hex) is in the logs"
    print(f"{log_format} logs at trace: {n_lines} lines, {len(set(keys))} served keys, no key material")


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


@pytest.mark.parametrize("log_format", ["plain", "journal", "json"])
def test_a_forged_newline_in_a_resource_name_stays_in_its_log_line(start, log_format):
    """A client's resource name, node id or NACK message cannot add log lines: a refused name with
    a newline and a syslog prefix is one warning, its control characters escaped."""
    import grpc

    d = short_dir()
    env = {}
    extra = ["--log-format", "json"] if log_format == "json" else []
    if log_format == "journal":
        stderr_path = d / "agent.stderr.log"
        stderr_path.touch()
        st = os.stat(stderr_path)
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    agent = start("agent", *extra, admin=None, directory=d, env=env)
    forged = "default\n<2>FORGED critical entry\r\x1b[2Jcleared\x07"
    channel, stub = sds_stub(agent.socket_path)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            stub.FetchSecrets(sds_request([forged], node_id="node\n<3>FORGED node"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND, refused.value
    finally:
        channel.close()
    agent.wait_log("FORGED critical entry", 10)
    code, _ = agent.terminate_and_time()
    assert code == 0
    raw = agent.stderr_path.read_bytes()
    lines = raw.split(b"\n")
    forged_lines = [line for line in lines if b"FORGED critical entry" in line]
    print(f"{log_format}: {forged_lines}")
    assert len(forged_lines) == 1, f"the forged text spans {len(forged_lines)} lines: {forged_lines}"
    (line,) = forged_lines
    assert b"refused an SDS request" in line, f"the forged text is not inside the refusal's line: {line!r}"
    for bad in (b"\r", b"\x1b", b"\x07"):
        assert bad not in raw, f"a raw control character {bad!r} reached the log: {line!r}"
    assert not [l for l in lines if l.lstrip(b"<0123456789>").startswith(b"FORGED")], "a forged line starts a line"
    if log_format == "json":
        reason = json.loads(line)["reason"]
        assert not CONTROL.search(reason), f"the decoded JSON value holds control characters: {reason!r}"
        assert "\\n<2>FORGED" in reason, reason


def test_status_escapes_control_characters_from_clients(start):
    """`sds-agent status` never prints a client's ESC, BEL or CR to the terminal: an Envoy's node id
    and NACK message are shown escaped, in the table and in --json."""
    from google.rpc import status_pb2

    agent = start("agent")
    evil_node = "evil\x1b]0;owned\x07\rnode\x1b[31m"
    stream = SdsStream(agent.socket_path, node_id=evil_node)
    try:
        resp = stream.next_response()
        stream.send(sds_request(stream.names, evil_node, version_info="", response_nonce=resp.nonce,
                                error_detail=status_pb2.Status(code=3, message="bad\x1b[2J\rnack\nforged")))
        poll(lambda: any((s.get("last_nack_message") or "") for s in agent.admin.json("/debug/streams")), 10,
             what="NACK recorded")
        res = run_cli("status", "--admin", agent.admin_address)
        print(repr(res.stdout))
        assert res.returncode == 0, res.stderr
        assert "evil" in res.stdout and "bad" in res.stdout, res.stdout
        assert not CONTROL.search(res.stdout), f"status printed control characters: {res.stdout!r}"
        assert "\\u{1B}" in res.stdout, f"ESC not shown escaped: {res.stdout!r}"
        res = run_cli("status", "--admin", agent.admin_address, "--json")
        assert res.returncode == 0, res.stderr
        assert not CONTROL.search(res.stdout), f"status --json printed control characters: {res.stdout!r}"
        nodes = [s["node_id"] for s in json.loads(res.stdout)["streams"]]
        assert nodes and not any(CONTROL.search(n) for n in nodes), nodes
    finally:
        stream.close()


# --------------------------------------------------------------------------- 8. check-config


@pytest.mark.parametrize("name", ["config.minimal.yaml", "config.full.yaml"])
def test_shipped_configs_are_valid(name):
    res = run_cli("check-config", "--config", SYSTEMD_DIR / name, timeout=30)
    print(res.stdout)
    assert res.returncode == 0, f"{name}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert "configuration is valid" in res.stdout
    assert re.search(r"^\s*cert-ttl\s+\S+\s+\(file\)", res.stdout, re.M), "cert-ttl not reported from the file"


@pytest.mark.parametrize("content,named", [
    ("bogus-key: 1\n", ["bogus-key"]),
    ("cert-ttl: soon\n", ["cert-ttl", "soon"]),
    ("cert-ttl: [1h\n", ["YAML"]),
    ("admin: 0.0.0.0:9901\n", ["admin", "0.0.0.0:9901"]),
    ("key-type: dsa\n", ["key-type", "dsa", "ecdsa-p256"]),
], ids=["unknown-key", "bad-duration", "invalid-yaml", "non-loopback-admin", "bad-key-type"])
def test_check_config_refuses(tmp_path, content, named):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(content)
    res = run_cli("check-config", "--config", cfg, timeout=30)
    out = res.stdout + res.stderr
    print(f"{content.strip()!r}: exit {res.returncode}: {out.strip()}")
    assert res.returncode == 1, f"exit {res.returncode}\n{out}"
    for word in named:
        assert word in out, f"{word!r} not named in: {out}"
    if named == ["YAML"]:
        assert "config.yaml" in out, f"the file is not named: {out}"


def test_check_config_precedence(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("cert-ttl: 24h\nlog-level: info\n")
    res = run_cli("check-config", "--config", cfg, env={"SDS_AGENT_CERT_TTL": "2h"}, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    ttl = re.search(r"^\s*cert-ttl\s+(\S+)\s+\((\w+)", res.stdout, re.M)
    lvl = re.search(r"^\s*log-level\s+(\S+)\s+\((\w+)", res.stdout, re.M)
    assert ttl and ttl.group(1) == "2h" and ttl.group(2) in ("env", "environment"), res.stdout
    assert lvl and lvl.group(1) == "info" and lvl.group(2) == "file", res.stdout
    # SDS_AGENT_CONFIG names the file when --config is absent
    res2 = run_cli("check-config", env={"SDS_AGENT_CONFIG": str(cfg)}, timeout=30)
    assert res2.returncode == 0 and re.search(r"^\s*cert-ttl\s+1d\s+\(file\)", res2.stdout, re.M), res2.stdout


def test_systemd_units_verify():
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    res = subprocess.run([str(REPO_ROOT / "dev" / "verify-units.sh"), str(agent_bin())], capture_output=True,
                         text=True, timeout=120)
    print(res.stdout + res.stderr)
    assert res.returncode == 0, res.stdout + res.stderr
