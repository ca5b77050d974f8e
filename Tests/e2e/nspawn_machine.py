"""A Debian machine booted under a real systemd (PID 1) by systemd-nspawn, for test_systemd_boot.py.

The root file system is made by mmdebstrap (Debian bookworm, minbase plus systemd) and cached as
a tarball under /var/cache/sds-agent-test (SDS_AGENT_ROOTFS_CACHE), named by a hash of what made
it; each run unpacks a fresh copy. The machine shares the host's network namespace (its Envoys'
ports are reachable on 127.0.0.1) but has its own PID, mount, IPC and UTS namespaces; the test
drives it from outside with `nsenter -t <its PID 1> -a …`. There is no system bus on the host, so
it runs with --register=no --keep-unit. `stop()` powers it off and then makes sure that no
process of its PID namespace is left, whatever happened before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# procps is left out on purpose: the unit's ExecReload must not need /bin/kill.
PACKAGES = ("systemd", "systemd-sysv")
CACHE_DIR = Path(os.environ.get("SDS_AGENT_ROOTFS_CACHE", "/var/cache/sds-agent-test"))
BOOT_TIMEOUT = 60.0
POWEROFF_TIMEOUT = 30.0
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def missing_requirements() -> str | None:
    """Why this machine cannot boot a container, or None."""
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn, mmdebstrap)"
    for tool in ("systemd-nspawn", "mmdebstrap", "nsenter"):
        if shutil.which(tool) is None:
            return f"needs {tool} (apt-get install systemd-container mmdebstrap util-linux)"
    return None


def rootfs_tarball() -> tuple[Path, float | None]:
    """The cached root file system tarball, made first if missing. Returns it and the seconds
    making it took (None when it was cached)."""
    version = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True).stdout.strip()
    key = hashlib.sha256(repr((SUITE, MIRROR, PACKAGES, "minbase", version)).encode()).hexdigest()[:16]
    tarball = CACHE_DIR / f"rootfs-{key}.tar.zst"
    if tarball.exists():
        return tarball, None
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(f".partial-{os.getpid()}")
    t0 = time.monotonic()
    result = subprocess.run(["mmdebstrap", "--variant=minbase", "--mode=root", "--include=" + ",".join(PACKAGES),
                             SUITE, str(partial) + ".tar.zst", MIRROR],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        Path(str(partial) + ".tar.zst").unlink(missing_ok=True)
        raise AssertionError(f"mmdebstrap failed ({result.returncode}):\n{result.stderr[-3000:]}")
    os.replace(str(partial) + ".tar.zst", tarball)
    return tarball, time.monotonic() - t0


class Machine:
    """One booted container. `root` is its root directory on the host: files written there are
    the machine's (except under /tmp and /run, which are its own tmpfs)."""

    def __init__(self, tarball: Path, name: str, binds_ro: dict[str, Path]):
        self.name = name
        self.workdir = Path(tempfile.mkdtemp(prefix="sds-nspawn-", dir="/var/tmp"))
        self.root = self.workdir / "root"
        self.root.mkdir()
        subprocess.run(["tar", "-C", str(self.root), "--zstd", "-xf", str(tarball)], check=True)
        self.console_log = self.workdir / "console.log"
        self.binds_ro = binds_ro
        self.nspawn: subprocess.Popen | None = None
        self.pid1: int | None = None
        self.pid_ns: str | None = None

    def boot(self) -> float:
        """Boot to multi-user; returns the seconds it took."""
        argv = ["systemd-nspawn", "--quiet", "-D", str(self.root), "-M", self.name, "--boot",
                "--register=no", "--keep-unit", "--console=read-only"]
        argv += [f"--bind-ro={src}:{dst}" for dst, src in self.binds_ro.items()]
        t0 = time.monotonic()
        with open(self.console_log, "wb") as log:
            self.nspawn = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        deadline = t0 + BOOT_TIMEOUT
        while self.pid1 is None:
            assert self.nspawn.poll() is None, f"systemd-nspawn exited ({self.nspawn.returncode}):\n{self.console()}"
            assert time.monotonic() < deadline, f"no container init within {BOOT_TIMEOUT:.0f}s\n{self.console()}"
            for child in _children(self.nspawn.pid):
                if _comm(child) == "systemd":
                    self.pid1 = child
                    self.pid_ns = os.readlink(f"/proc/{child}/ns/pid")
            time.sleep(0.05)
        # Until its systemd listens, systemctl cannot reach it; then --wait waits for the boot.
        while True:
            result = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=BOOT_TIMEOUT)
            state = result.stdout.strip()
            if state not in ("", "offline"):
                break
            assert time.monotonic() < deadline, f"systemctl cannot reach the machine's systemd: {result.stderr}"
            time.sleep(0.05)
        assert state == "running", (f"the machine booted to {state!r}:\n"
                                    + self.run("systemctl", "--failed", "--no-legend", check=False).stdout)
        return time.monotonic() - t0

    def console(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def run(self, *argv, check: bool = True, timeout: float = 60.0, user: str | None = None,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Runs a command in the machine's namespaces as root, or as `user` with its groups."""
        assert self.pid1 is not None, "the machine is not booted"
        cmd = ["nsenter", "-t", str(self.pid1), "-a"]
        if user is not None:
            cmd += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
        cmd += [str(a) for a in argv]
        env = {"PATH": PATH, "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "TERM": "dumb"}
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input,
                                stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd[4:])} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_unit(self, unit: str, predicate, timeout: float, what: str) -> dict[str, str]:
        """Polls `systemctl show` until predicate(properties) holds."""
        props = ("ActiveState", "SubState", "MainPID", "Result", "NRestarts", "ExecMainStatus")
        deadline = time.monotonic() + timeout
        while True:
            shown = self.show(unit, *props)
            if predicate(shown):
                return shown
            assert time.monotonic() < deadline, f"{unit}: not {what} within {timeout:.0f}s: {shown}\n{self.journal(unit)}"
            time.sleep(0.1)

    def journal(self, unit: str, lines: int = 40) -> str:
        return self.run("journalctl", "--no-pager", "-u", unit, "-n", str(lines), check=False).stdout

    def path(self, inside: str) -> Path:
        """A path of the machine as the host reaches it through its PID 1 (its /run included)."""
        return Path(f"/proc/{self.pid1}/root") / inside.lstrip("/")

    def processes(self) -> list[int]:
        """Every host PID in the machine's PID namespace."""
        if self.pid_ns is None:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/ns/pid") == self.pid_ns:
                        found.append(int(entry))
                except OSError:
                    pass
        return found

    def stop(self) -> list[str]:
        """Powers the machine off (SIGTERM to nspawn asks its systemd to halt), kills what is left
        if that does not finish in time, and removes its files. Returns problems."""
        problems = []
        if self.nspawn is not None and self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(POWEROFF_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"the machine did not power off within {POWEROFF_TIMEOUT:.0f}s; killed")
                if self.pid1 is not None:
                    _kill(self.pid1)  # PID 1 of a namespace: the kernel kills the rest with it
                _kill(self.nspawn.pid)
                self.nspawn.wait(10)
        deadline = time.monotonic() + 10
        while (left := self.processes()) and time.monotonic() < deadline:
            for pid in left:
                _kill(pid)
            time.sleep(0.1)
        if left:
            problems.append(f"processes of the machine still running: {left}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        return problems


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
