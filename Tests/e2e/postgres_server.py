"""A real PostgreSQL (Debian's package) for the end-to-end tests, started in a temporary directory.

PostgreSQL refuses to run as root, so its directory is given to `nobody` and initdb and postgres
run through `setpriv --reuid=nobody --regid=nogroup --clear-groups`. It listens on 127.0.0.1 on a
free port with its Unix socket in the directory; loopback is trusted, except for the role
PASSWORD_ROLE, which must give its password (scram-sha-256).

    @pytest.fixture(scope="module")
    def postgres():
        with PostgresServer() as server:
            yield server

`PostgresServer(wrap=host.argv)` runs every command (initdb, postgres, pg_isready, psql, pg_dump)
through `wrap`, e.g. inside a network namespace of netns.py: it then listens on 127.0.0.1 of that
namespace, reachable only by the processes there.
"""

from __future__ import annotations

import glob
import os
import pwd
import grp
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from daemon_support import poll

PASSWORD_ROLE = "sds_agent_pw"
START_TIMEOUT = 30.0


def bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin): dev/requirements.sh install e2e")
    return Path(found[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, wrap: Callable[..., list[str]] | None = None):
        self.bin = bin_dir()
        self.wrap = wrap
        # Under /tmp itself: nobody cannot enter pytest's 0700 directories.
        self.dir = Path(tempfile.mkdtemp(prefix="sds-agent-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "postgres.log"
        self.uid = pwd.getpwnam("nobody").pw_uid
        self.gid = grp.getgrnam("nogroup").gr_gid
        os.chown(self.dir, self.uid, self.gid)

    def _wrapped(self, *argv) -> list[str]:
        """argv through `wrap` (e.g. into a network namespace), as given without one."""
        argv = [str(a) for a in argv]
        return [str(a) for a in self.wrap(*argv)] if self.wrap else argv

    def _as_nobody(self, *argv) -> list[str]:
        if os.geteuid() != 0:
            return self._wrapped(*argv)
        return self._wrapped("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv)

    def __enter__(self) -> "PostgresServer":
        t0 = time.monotonic()
        subprocess.run(self._as_nobody(self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                                       "-E", "UTF8", "--no-sync"),
                       check=True, capture_output=True, cwd=self.dir)
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n")
        self.start()
        self.psql(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'e2e-secret-pw'")
        print(f"postgres: {self.bin} on 127.0.0.1:{self.port} ready after {time.monotonic() - t0:.2f}s")
        return self

    def start(self) -> None:
        self._log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            self._as_nobody(self.bin / "postgres", "-D", self.data, "-p", self.port, "-k", self.dir,
                            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, cwd=self.dir)
        def ready() -> bool:
            assert self.proc.poll() is None, f"postgres exited: {self.log.read_text()[-2000:]}"
            return subprocess.run(self._wrapped(self.bin / "pg_isready", "-h", "127.0.0.1", "-p", self.port,
                                                 "-q")).returncode == 0

        poll(ready, START_TIMEOUT, what="postgres accepting connections")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def psql(self, sql: str, database: str = "postgres") -> str:
        res = subprocess.run(self._wrapped(self.bin / "psql", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres",
                                           "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql),
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        return res.stdout

    def create_database(self, name: str, owner: str = "postgres") -> str:
        self.psql(f"CREATE DATABASE {name} OWNER {owner}")
        return name

    def dump(self, database: str) -> bytes:
        res = subprocess.run(self._wrapped(self.bin / "pg_dump", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres",
                                           database), capture_output=True, timeout=60)
        assert res.returncode == 0, res.stderr
        return res.stdout
