"""A throwaway MariaDB server on 127.0.0.1 (Debian's mariadb-server, installed by
scripts/setup/mariadb.sh), with a `registry` database and an `admin` user."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pymysql

from support.net import free_port

__all__ = ["MariaDB"]


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
        if found:
            return found
    raise RuntimeError(f"none of {names} found: run scripts/setup/mariadb.sh")


@dataclass
class MariaDB:
    """One mariadbd process; ``stop()``/``start()`` keep its data (outage tests)."""

    base: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    database: str = "registry"
    user: str = "admin"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mysql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _sock(self) -> str:
        return str(self.base / "run" / "mysqld.sock")

    @classmethod
    @contextlib.contextmanager
    def temporary(cls) -> Iterator[MariaDB]:
        """A server in a fresh directory, removed afterwards. The directory is outside
        pytest's private temp root because mariadbd runs as the ``mysql`` user."""
        base = Path(tempfile.mkdtemp(prefix="roar-mariadb-"))
        base.chmod(0o755)
        server = cls(base=base)
        try:
            yield server.install()
        finally:
            server.stop()
            shutil.rmtree(base, ignore_errors=True)

    def install(self) -> MariaDB:
        data = self.base / "data"
        (self.base / "run").mkdir(parents=True, exist_ok=True)
        data.mkdir(parents=True, exist_ok=True)
        as_root = os.geteuid() == 0
        if as_root:
            shutil.chown(self.base, "mysql", "mysql")
            for p in (data, self.base / "run"):
                shutil.chown(p, "mysql", "mysql")
        cmd = [
            _binary("mariadb-install-db", "mysql_install_db"),
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
        if as_root:
            cmd.append("--user=mysql")
        subprocess.run(cmd, check=True, capture_output=True)
        self.start()
        self.root_sql(
            f"CREATE DATABASE {self.database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
            f"CREATE USER '{self.user}'@'%' IDENTIFIED BY '{self.password}';"
            f"GRANT ALL ON {self.database}.* TO '{self.user}'@'%';"
        )
        return self

    def start(self) -> None:
        cmd = [
            _binary("mariadbd", "mysqld"),
            "--no-defaults",
            f"--datadir={self.base / 'data'}",
            f"--socket={self._sock()}",
            f"--pid-file={self.base / 'run' / 'mysqld.pid'}",
            "--bind-address=127.0.0.1",
            f"--port={self.port}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--max-connections=500",
            f"--log-error={self.base / 'err.log'}",
        ]
        if os.geteuid() == 0:
            cmd.append("--user=mysql")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.base / "err.log").read_text()[-2000:]
                raise RuntimeError(f"mariadbd exited with {self.proc.returncode}:\n{log}")
            try:
                pymysql.connect(unix_socket=self._sock(), user="root", password="").close()
                return
            except pymysql.MySQLError:
                time.sleep(0.1)
        raise RuntimeError("mariadbd did not accept connections within 30s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None

    def root_sql(self, statements: str) -> None:
        conn = pymysql.connect(
            unix_socket=self._sock(), user="root", password="", client_flag=1 << 16
        )  # CLIENT.MULTI_STATEMENTS
        try:
            with conn.cursor() as cur:
                cur.execute(statements)
                while cur.nextset():
                    pass
            conn.commit()
        finally:
            conn.close()

    def connect(self, *, autocommit: bool = False) -> pymysql.Connection:  # type: ignore[type-arg]
        """A connection to the database as ROAR's user, over TCP on loopback as ROAR connects."""
        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.database,
            autocommit=autocommit,
        )

    def query(self, sql: str, *args: object) -> list[tuple]:
        """Run one statement as ROAR's user (bound parameters) and return its rows."""
        conn = self.connect(autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def reset_database(self) -> None:
        self.root_sql(
            f"DROP DATABASE IF EXISTS {self.database};"
            f"CREATE DATABASE {self.database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
        )

    def own_database(
        self, name: str, defaults: str = "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    ) -> MariaDB:
        """A fresh, empty database ``name`` on this server (with the character set and
        collation ``defaults`` give its tables), open to ROAR's user, as a MariaDB whose ``url``
        and ``query`` use it: for a module that must not share ``registry``. The returned
        object does not own the server process (its ``stop()`` does nothing)."""
        self.root_sql(
            f"DROP DATABASE IF EXISTS {name};"
            f"CREATE DATABASE {name} {defaults};"
            f"GRANT ALL ON {name}.* TO '{self.user}'@'%';"
        )
        return replace(self, database=name, proc=None)
