"""N: phase C across a real network, with and without 0.5 ms of delay each way.

On a real deployment PostgreSQL is a network hop away (0.2-1 ms a round trip), not
loopback's tens of microseconds. Here one ``webhooks worker`` runs in a network namespace
of its own (bench/namespace.py) and reaches a PostgreSQL of the phase's own, listening on
this namespace's end of the veth pair only, across that pair. The receiver runs inside the
namespace too, on its loopback, so only the worker's database round trips cross the veth.
The driver publishes from here (a local address: no delay).

Each setting (no delay, then ``netem delay 0.5ms`` on both ends; without netem in the
kernel, bench/delay_relay.py with no delay and with the delay) runs twice, in turns (ABBA),
with one worker: fan-out 10 published by publishEvent (an eighth of C's events) and
fan-out 1 published by publishEvents in batches of 100, then a steady stream at D's rate
for a third of D's time, its publish-to-completion latency read from the database (event
created -> delivery completed). The measured ``SELECT 1`` round trip from inside the
namespace says what the worker saw.

Skipped, with the reason, where namespaces cannot be made (not root, no ``ip`` or ``tc``,
or the kernel refuses). The namespace is deleted and the server stopped even on failure.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from app.run.postgres_cluster import SUPERUSER, LocalCluster
from app.store.migrations import apply_migrations
from bench.flow import wait_for_deliveries
from bench.latency import publish_on_schedule
from bench.namespace import WorkerNamespace, unavailable_reason
from bench.processes import PYTHON, WEBHOOKS, Child, Receiver, environment
from bench.queries import BENCH_QUERIES
from bench.stats import rate, summary_ms
from bench.suite import Bench, wait_for_workers
from bench.tenants import GraphQLClient, create_company, in_process_api, publisher_key, subscribe
from bench.throughput import BATCH, publish_many

DELAY_MS = 0.5
DATABASE = "bench_network"
TITLE = "C across a veth pair: worker in a network namespace, PostgreSQL across it"


@dataclass(frozen=True)
class Setting:
    """How the worker reaches PostgreSQL in one measurement."""

    name: str
    delay_ms: float  # added each way
    relayed: bool  # through bench.delay_relay (else straight across the veth)


# With netem: the veth as it is, then netem on both ends. Without it: the veth, then the
# relay with no delay and with the delay (their ratio is the delay's cost: the relay's own
# CPU is in both).
WITH_NETEM = (Setting("veth", 0.0, False), Setting("netem", DELAY_MS, False))
WITHOUT_NETEM = (
    Setting("veth", 0.0, False),
    Setting("relay", 0.0, True),
    Setting("relay-delayed", DELAY_MS, True),
)


async def run(bench: Bench) -> dict[str, Any]:
    reason = unavailable_reason()
    if reason is not None:
        bench.log(f"[bench] N skipped: {reason}")
        return {"title": TITLE, "skipped": reason}
    namespace = WorkerNamespace()
    try:
        namespace.create()
    except RuntimeError as error:
        namespace.delete()
        bench.log(f"[bench] N skipped: cannot create a network namespace: {error}")
        return {"title": TITLE, "skipped": f"cannot create a network namespace: {error}"}
    cluster = LocalCluster(
        bench.work_dir / "postgres-network", durable=True, host=namespace.outer_address
    )
    receiver: Receiver | None = None
    measured: list[dict[str, Any]] = []
    try:
        netem = _netem_works(namespace)
        settings = WITH_NETEM if netem else WITHOUT_NETEM
        if not netem:
            bench.log("[bench] N: this kernel has no netem qdisc; the delay is bench.delay_relay's")
        database_url = _start_database(cluster, namespace)
        receiver = Receiver(bench.work_dir / "receiver-network.log", prefix=namespace.prefix)
        # Each setting twice, the second round in reverse order (ABCCBA): a machine whose
        # load drifts over the phase favours none of them.
        rounds: dict[str, list[dict[str, Any]]] = {setting.name: [] for setting in settings}
        # (once each in the smoke run, which has a minute for every phase)
        order = settings if bench.sizes.smoke else (*settings, *reversed(settings))
        for setting in order:
            namespace.delay(setting.delay_ms if netem else 0.0)
            rounds[setting.name].append(
                await _measure(
                    bench,
                    namespace,
                    cluster,
                    database_url,
                    receiver,
                    setting,
                    f"{setting.name}-{len(rounds[setting.name]) + 1}",
                )
            )
        measured = [_combined(rounds[setting.name]) for setting in settings]
    finally:
        if receiver is not None:
            receiver.stop()
        namespace.delete()
        cluster.stop(mode="fast")
        shutil.rmtree(cluster.data_dir, ignore_errors=True)
    plain, delayed = measured[-2], measured[-1]
    return {
        "title": TITLE,
        "delay_by": "tc netem on both veth ends"
        if netem
        else "bench.delay_relay inside the namespace (this kernel has no sch_netem)",
        "settings": measured,
        # with the delay / without it (the last two settings): what the round trips cost
        "throughput_ratio": {
            name: round(delayed[name]["per_second"] / plain[name]["per_second"], 2)
            if plain[name]["per_second"]
            else None
            for name in ("fanout_10", "fanout_1_batched")
        },
        "latency_p99_ratio": round(
            delayed["latency"]["latency"]["p99_ms"] / plain["latency"]["latency"]["p99_ms"], 2
        ),
    }


def _combined(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One setting's rounds: the means of its figures, and every round as measured."""
    first = rounds[0]

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 2)

    return {
        "setting": first["setting"],
        "delay_ms_each_way": first["delay_ms_each_way"],
        "relayed": first["relayed"],
        "select_1_round_trip_ms": mean([run["select_1_round_trip_ms"] for run in rounds]),
        **{
            name: first[name] | {"per_second": mean([run[name]["per_second"] for run in rounds])}
            for name in ("fanout_10", "fanout_1_batched")
        },
        "latency": first["latency"]
        | {
            "latency": {
                "p50_ms": mean([run["latency"]["latency"]["p50_ms"] for run in rounds]),
                "p99_ms": mean([run["latency"]["latency"]["p99_ms"] for run in rounds]),
            }
        },
        "rounds": rounds,
    }


def _netem_works(namespace: WorkerNamespace) -> bool:
    try:
        namespace.delay(DELAY_MS)
    except RuntimeError:
        return False
    finally:
        namespace.delay(0.0)
    return True


def _round_trip_ms(namespace: WorkerNamespace, database_url: str) -> float:
    """The median ``SELECT 1`` round trip from inside the namespace, in ms."""
    completed = subprocess.run(  # noqa: S603 (our own argv, no shell)
        [*namespace.prefix, PYTHON, "-m", "bench.round_trip", database_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return float(completed.stdout.strip())


def _start_database(cluster: LocalCluster, namespace: WorkerNamespace) -> str:
    """The phase's own durable server on the veth address, migrated; returns its URL."""
    cluster.start()
    # initdb trusts loopback only; the worker connects from the namespace's end, and the
    # driver from this end's own address.
    with (cluster.data_dir / "pg_hba.conf").open("a", encoding="utf-8") as hba:
        hba.write(f"host all all {namespace.network} trust\n")
    cluster.stop()
    cluster.start()
    with psycopg.connect(cluster.url(), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    url = cluster.url(DATABASE)
    apply_migrations(url)
    return url


async def _measure(
    bench: Bench,
    namespace: WorkerNamespace,
    cluster: LocalCluster,
    database_url: str,
    receiver: Receiver,
    setting: Setting,
    label: str,
) -> dict[str, Any]:
    """One round of one setting; ``label`` names what it creates."""
    relay: Child | None = None
    worker: Child | None = None
    worker_url = database_url
    try:
        if setting.relayed:
            relay, port = _start_relay(bench, namespace, cluster, setting)
            worker_url = (
                urlsplit(database_url)._replace(netloc=f"{SUPERUSER}@127.0.0.1:{port}").geturl()
            )
        round_trip_ms = await asyncio.to_thread(_round_trip_ms, namespace, worker_url)
        worker = Child(
            f"worker-network-{label}",
            [*namespace.prefix, WEBHOOKS, "worker"],
            bench.service_env(worker_url),
            bench.work_dir / f"worker-network-{label}.log",
        )
        wait_for_workers(database_url, worker, expected=None)
        result: dict[str, Any] = {
            "setting": setting.name,
            "round": label,
            "delay_ms_each_way": setting.delay_ms,
            "relayed": setting.relayed,
            "select_1_round_trip_ms": round_trip_ms,
        }
        result.update(await _runs(bench, database_url, receiver, worker, label))
        worker.check()
    finally:
        for child in (worker, relay):
            if child is not None:
                child.stop()
    return result


def _start_relay(
    bench: Bench, namespace: WorkerNamespace, cluster: LocalCluster, setting: Setting
) -> tuple[Child, int]:
    """bench.delay_relay inside the namespace, on its loopback, to the server; its port."""
    port_file = bench.work_dir / f"relay-{setting.name}.port"
    port_file.unlink(missing_ok=True)
    relay = Child(
        f"relay-{setting.name}",
        [
            *namespace.prefix,
            *(PYTHON, "-m", "bench.delay_relay", "--port-file", str(port_file)),
            *("--target-host", namespace.outer_address, "--target-port", str(cluster.port)),
            *("--delay-ms", f"{setting.delay_ms:g}"),
        ],
        environment(),
        bench.work_dir / f"relay-{setting.name}.log",
    )
    deadline = time.monotonic() + 20
    while not port_file.exists() or not port_file.read_text().strip():
        relay.check()
        if time.monotonic() > deadline:
            relay.stop()
            raise RuntimeError(f"the delay relay did not start\n{relay.tail()}")
        time.sleep(0.02)
    return relay, int(port_file.read_text().strip())


async def _runs(
    bench: Bench, database_url: str, receiver: Receiver, worker: Child, label: str
) -> dict[str, Any]:
    """C's two single-worker shapes, then the steady stream, on the running worker."""
    sizes = bench.sizes
    result: dict[str, Any] = {}
    async with in_process_api(bench.settings(database_url)) as (services, http):
        client = GraphQLClient(http, await publisher_key(services))
        for name, fanout, events, batch in (
            # an eighth of C's events (C's fan-out 10 has a quarter): each setting runs twice
            ("fanout_10", 10, max(1, sizes.events // 8), 1),
            ("fanout_1_batched", 1, sizes.events, BATCH),
        ):
            company_id = await create_company(services, f"n-{name}-{label}")
            await subscribe(
                services,
                company_id,
                [receiver.url(f"/ok?subscription={index}") for index in range(fanout)],
            )
            started = time.time()
            await publish_many(client, company_id, events, sizes.publishers, batch)
            expected = events * fanout
            done = await wait_for_deliveries(
                database_url, company_id, expected, within=120 + expected / 20, check=worker.check
            )
            succeeded = done["counts"].get("SUCCEEDED", 0)
            seconds = (done["last_completed"] or time.time()) - started
            result[name] = {
                "fanout": fanout,
                "publish_batch": batch,
                "deliveries": expected,
                "succeeded": succeeded,
                "seconds": round(seconds, 2),
                "per_second": rate(succeeded, seconds),
            }
            bench.log(f"[bench] N {label} {name}: {result[name]['per_second']} deliveries/s")
        company_id = await create_company(services, f"n-latency-{label}")
        await subscribe(services, company_id, [receiver.url("/ok")])
        result["latency"] = await _steady_latency(bench, client, database_url, company_id)
        bench.log(f"[bench] N {label} latency {result['latency']['latency']}")
    return result


async def _steady_latency(
    bench: Bench, client: GraphQLClient, database_url: str, company_id: str
) -> dict[str, Any]:
    """Publish to ``company_id`` at D's rate for a third of D's time; the latency of each
    delivery from its event's creation to its completion."""
    sizes = bench.sizes
    count = max(1, round(sizes.latency_seconds / 3 * sizes.latency_rate))

    async def publish(subject: str) -> None:
        await client.publish(company_id, subject)

    await publish_on_schedule(publish, f"{company_id}-", count, sizes.latency_rate)
    await wait_for_deliveries(database_url, company_id, count, within=60)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        cursor = await connection.execute(
            BENCH_QUERIES["delivery_latencies"], {"company_id": company_id}
        )
        latencies = [row[0] for row in await cursor.fetchall()]
    return {"events": count, "rate": sizes.latency_rate, "latency": summary_ms(latencies)}
