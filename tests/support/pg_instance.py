"""A PostgreSQL server of a test's own, to stop and start without touching the shared one.

Debian's PostgreSQL 15 binaries (the ones ``deploy/postgres/pg.sh`` uses) run
``initdb`` into a fresh folder owned by the ``postgres`` user, on a free
loopback port, with trust authentication for loopback only. ``stop()`` is a
real fast shutdown (connections are terminated, the port closes), ``start()``
brings the same data back on the same port.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from support.net import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *command],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


class PgInstance:
    def __init__(self) -> None:
        self.port = free_port()
        self._root = Path(tempfile.mkdtemp(prefix="slawatch-pg-"))
        self._root.chmod(0o755)
        self.data = self._root / "data"
        self.log = self._root / "server.log"
        shutil.chown(self._root, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/slawatch"

    def create(self) -> None:
        _as_postgres(str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()
        _as_postgres(
            str(BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "slawatch",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._root}"
        _as_postgres(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def require_tls(self, cert: Path, key: Path) -> None:
        """From now on (after a restart) TLS with ``cert`` only: a connection in clear is
        refused by ``pg_hba.conf``."""
        for source, name in ((cert, "server.crt"), (key, "server.key")):
            target = self.data / name
            shutil.copyfile(source, target)
            target.chmod(0o600)
            shutil.chown(target, "postgres", "postgres")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        hba = self.data / "pg_hba.conf"
        hba.write_text("hostnossl all all 0.0.0.0/0 reject\n" + hba.read_text())

    def running(self) -> bool:
        done = subprocess.run(
            [str(BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return done.returncode == 0

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                ["runuser", "-u", "postgres", "--", str(BIN / "pg_ctl"), "-D", str(self.data),
                 "-m", "immediate", "-w", "stop"],
                cwd="/", capture_output=True, timeout=60, check=False,
            )  # fmt: skip
        shutil.rmtree(self._root, ignore_errors=True)
