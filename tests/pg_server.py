"""A throwaway PostgreSQL server on 127.0.0.1, for the sweep's storage tests and
benchmarks/bench_sweep.py.

Debian's server binaries (``/usr/lib/postgresql/<version>/bin``) run on a free
port in a temporary folder, with fsync off (the data is thrown away). initdb
and postgres refuse to run as root: as root (CI, this machine) the server runs
as the ``postgres`` system user the Debian package creates, and its folder is
chowned to it. ``stop`` shuts it down and removes the folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SUPERUSER, SUPERUSER_PASSWORD = "postgres", "admin-secret"
USER, PASSWORD, DATABASE = "edgeprune", "s3cret:@/pw", "sweeps"
REQUIRE_VARIABLE = "EDGEPRUNE_REQUIRE_POSTGRES"


def binaries() -> str | None:
    """The newest installed server's bin folder, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0,
    )
    return os.path.dirname(found[-1]) if found else None


def why_unavailable() -> str | None:
    """Why no server can be started here (None when one can)."""
    if binaries() is None:
        return "no PostgreSQL server binaries (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A running server with database ``sweeps`` owned by user ``edgeprune``."""

    def __init__(self) -> None:
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError(why_unavailable())
        self.root = tempfile.mkdtemp(prefix="edgeprune-pg.")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen | None = None
        self._as = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            os.chown(self.root, account.pw_uid, account.pw_gid)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def url(
        self,
        user: str = USER,
        password: str | None = PASSWORD,
        database: str = DATABASE,
        scheme: str = "postgresql",
    ) -> str:
        from urllib.parse import quote

        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        return f"{scheme}://{auth}@{self.host}:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, **self._as)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def _start(self) -> None:
        pwfile = os.path.join(self.root, "pw")
        with open(pwfile, "w") as f:
            f.write(SUPERUSER_PASSWORD + "\n")
        if self._as:
            os.chown(pwfile, self._as["user"], self._as["group"])
        self._run(
            os.path.join(self.bin, "initdb"), "-D", self.data, "-U", SUPERUSER,
            f"--pwfile={pwfile}", "--auth=scram-sha-256", "--no-sync", "-E", "UTF8",
            "--locale=C",
        )  # fmt: skip
        log = open(os.path.join(self.root, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [
                os.path.join(self.bin, "postgres"), "-D", self.data,
                "-c", f"port={self.port}", "-c", "listen_addresses=127.0.0.1",
                "-c", f"unix_socket_directories={self.root}",
                "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=100",
            ],
            stdout=log, stderr=subprocess.STDOUT, **self._as,
        )  # fmt: skip
        log.close()
        self._wait_ready()
        self.admin(
            f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD.replace(chr(39), chr(39) * 2)}'",
            f"CREATE DATABASE {DATABASE} OWNER {USER}",
        )

    def _wait_ready(self) -> None:
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg2.connect(self._dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("PostgreSQL did not start: " + self.log()) from None
                time.sleep(0.1)

    def _dsn(self, database: str) -> str:
        return (
            f"host={self.host} port={self.port} user={SUPERUSER} "
            f"password={SUPERUSER_PASSWORD} dbname={database}"
        )

    def admin(self, *statements: str, database: str = "postgres") -> None:
        """Run SQL statements as the superuser, each outside a transaction."""
        import psycopg2

        conn = psycopg2.connect(self._dsn(database), connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def fresh_database(self, name: str) -> str:
        """A new empty database owned by ``edgeprune``; its URL."""
        self.admin(f"CREATE DATABASE {name} OWNER {USER}")
        return self.url(database=name)

    def log(self) -> str:
        try:
            with open(os.path.join(self.root, "server.log"), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown: clients may be connected
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
