"""``webhooks dev``: the zero-setup run.

With no database configured it starts an embedded PostgreSQL in the data directory
(``.webhooks/`` by default; a second run reuses it), migrates, creates a demo company
with a COMPANY key and a PUBLISHER key on first run, opens loopback as a delivery target
so a local receiver works, and serves the API with GraphiQL and the worker in-process.
Ctrl-C stops everything, the embedded database too.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core import event_loop
from app.core.errors import WebhooksError
from app.core.portal_tokens import PortalAccess
from app.core.settings import Settings
from app.domain import api_keys, companies, portal
from app.domain.webhook_types import get_webhook_type
from app.run.postgres_cluster import LocalCluster
from app.run.runner import serve, sigterm_interrupts
from app.store.migrations import apply_migrations, ensure_development_database
from app.store.services import open_services

DEMO_COMPANY_ID = "demo"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# Where the banner's receiver example listens: examples/receiver.py takes the port.
EXAMPLE_RECEIVER_PORT = 9000
# While `webhooks dev` runs, the database URL it serves from; the other commands started
# with the same data directory and no database configured use it (app/run/cli.py).
DEV_DATABASE_FILE = "dev-database-url"
DEV_LOCK_FILE = "dev.lock"
# The body of the banner's publish step: a full ORDER_STATUS payload is too long to type.
PUBLISH_EXAMPLE_FILE = "publish-order-status.json"
PUBLISH_EXAMPLE_QUERY = (
    "mutation Publish($input: PublishEventInput!) { publishEvent(input: $input) "
    "{ event { id subject deliveries { id status } } userErrors { field message code } } }"
)


class PortInUse(WebhooksError):
    """The port `webhooks dev` was asked to serve on is taken."""


class AlreadyRunning(WebhooksError):
    """Another `webhooks dev` runs with the same data directory."""


@contextmanager
def only_dev_of(data_dir: Path) -> Iterator[None]:
    """Hold the data directory for this `webhooks dev`, or refuse: a second one would
    take over the first one's embedded PostgreSQL and stop it when it exits. The lock
    goes with the process, however it ends (a crashed dev leaves no stale lock)."""
    with (data_dir / DEV_LOCK_FILE).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(
                f"`webhooks dev` already runs with the data directory {data_dir}; stop it "
                "first, or give this one another directory (WEBHOOKS_DATA_DIR)"
            ) from None
        yield


def dev_database_url(data_dir: Path) -> str | None:
    """The database URL of a `webhooks dev` running with this data directory, if any."""
    try:
        return (data_dir / DEV_DATABASE_FILE).read_text().strip() or None
    except OSError:
        return None


def check_port_free(host: str, port: int) -> None:
    """Refuse before anything starts: otherwise the banner would print keys and then the
    server die on its bind. (A race with another process remains; uvicorn reports it.)"""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUse(
                f"cannot listen on {host}:{port} ({error.strerror}); another process uses "
                f"it. Choose another port: `webhooks dev --port N`, `make dev PORT=N` or "
                f"WEBHOOKS_PORT=N"
            ) from error


@dataclass(frozen=True)
class DemoKeys:
    company_id: str
    company_key: str
    publisher_key: str


def run_development(settings: Settings, *, port: int | None = None) -> None:
    """Until SIGINT or SIGTERM; either stops the embedded database too, even mid-start.

    ``port`` (``--port``) wins over ``WEBHOOKS_PORT``. Raises :class:`PortInUse` when the
    port is taken, :class:`AlreadyRunning` when another dev holds the data directory,
    before starting anything.
    """
    port = port or settings.port
    check_port_free(settings.host, port)
    data_dir = Path(settings.data_dir).absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    with only_dev_of(data_dir), sigterm_interrupts():
        _run_development(settings, port, data_dir)


def _run_development(settings: Settings, port: int, data_dir: Path) -> None:
    cluster: LocalCluster | None = None
    try:
        if settings.database_url is None:
            cluster = LocalCluster(data_dir / "postgres")
            print(f"starting embedded PostgreSQL in {cluster.data_dir} ...", flush=True)
            ensure_development_database(cluster.start())
            settings = settings.with_overrides(database_url=cluster.url("webhooks"))
        database_url = settings.database_url
        if database_url is None:  # pragma: no cover - set just above
            raise RuntimeError("no database URL")
        settings = settings.with_overrides(
            allowed_networks=(*settings.allowed_networks, *LOOPBACK), data_dir=str(data_dir)
        )
        apply_migrations(database_url)
        keys_file = data_dir / "demo-keys.json"
        saved = DemoKeys(**json.loads(keys_file.read_text())) if keys_file.exists() else None
        demo = event_loop.run(ensure_demo(settings, saved))
        _save_keys(keys_file, demo)
        example = event_loop.run(publish_example(settings))
        (data_dir / PUBLISH_EXAMPLE_FILE).write_text(json.dumps(example, indent=2) + "\n")
        (data_dir / DEV_DATABASE_FILE).write_text(database_url + "\n")
        settings = settings.with_overrides(port=port)  # the portal link's address
        link = event_loop.run(demo_portal_link(settings, demo))
        serve(settings, port=port, with_worker=True, banner=banner(settings, demo, port, link.url))
    finally:
        (data_dir / DEV_DATABASE_FILE).unlink(missing_ok=True)
        if cluster is not None:
            cluster.stop()
            print("embedded PostgreSQL stopped", flush=True)


async def ensure_demo(settings: Settings, saved: DemoKeys | None) -> DemoKeys:
    """The demo company and its keys: created on first run, read back afterwards.

    Keys are stored hashed in the database, so development keeps a plain copy in the
    data directory (mode 0600) to print them on every run.
    """
    async with open_services(settings) as services:
        if (
            saved is not None
            and await api_keys.authenticate(services.db, saved.company_key)
            and await api_keys.authenticate(services.db, saved.publisher_key)
        ):
            return saved
        if await companies.get_company(services.db, DEMO_COMPANY_ID) is None:
            await companies.create_company(services.db, "Demo Company", DEMO_COMPANY_ID)
        company_key = await api_keys.create_key(services.db, "COMPANY", DEMO_COMPANY_ID)
        publisher_key = await api_keys.create_key(services.db, "PUBLISHER", None)
    return DemoKeys(DEMO_COMPANY_ID, company_key.key, publisher_key.key)


async def demo_portal_link(settings: Settings, demo: DemoKeys) -> portal.PortalLink:
    """A FULL portal link of the demo company, minted by its key, valid for the cap."""
    prefix = api_keys.prefix_of(demo.company_key)
    async with open_services(settings) as services:
        return await portal.create_link(
            services.db,
            portal.PortalLimits.of(settings),
            portal.LinkGrant(demo.company_id, prefix, PortalAccess.FULL),
            None,
        )


async def publish_example(settings: Settings) -> dict[str, Any]:
    """The GraphQL request of the banner's publish step: an ORDER_STATUS event for the
    demo company whose payload is the catalogue's sample (so it matches the schema);
    no subject, so it is the order id."""
    async with open_services(settings) as services:
        webhook = await get_webhook_type(services.db, "ORDER_STATUS")
    if webhook is None:
        raise RuntimeError("the catalogue has no ORDER_STATUS")
    payload = webhook.sample_payload
    return {
        "query": PUBLISH_EXAMPLE_QUERY,
        "variables": {
            "input": {
                "companyId": DEMO_COMPANY_ID,
                "webhook": webhook.key,
                "idempotencyKey": f"{payload.get('order_id')}:{payload.get('order_status')}",
                "payload": payload,
            }
        },
    }


def _save_keys(keys_file: Path, demo: DemoKeys) -> None:
    descriptor = os.open(keys_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(demo.__dict__, handle)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _email_timing(settings: Settings) -> str:
    """When the first failure email comes with these settings, and how to see one sooner."""
    attempts, interval = settings.max_attempts, settings.retry_interval_seconds
    wait = (attempts - 1) * interval + settings.email_window_seconds
    timing = (
        f"  A dead receiver's email comes after {attempts} attempts {interval:g} s apart"
        f" and a {settings.email_window_seconds:g} s grouping window: about"
        f" {f'{wait:.0f} s' if wait < 120 else f'{wait / 60:.0f} min'} after the publish."
    )
    if wait <= 60:
        return timing + "\n"
    return (
        timing + "\n  To see one within a minute, start with\n"
        "    WEBHOOKS_RETRY_INTERVAL_SECONDS=5 WEBHOOKS_MAX_ATTEMPTS=3"
        " WEBHOOKS_EMAIL_WINDOW_SECONDS=0 make dev\n"
    )


def banner(settings: Settings, demo: DemoKeys, port: int, portal_url: str) -> str:
    """What `webhooks dev` prints once it serves: keys, and examples that work when
    copied as they are (tests/acceptance/test_dev.py runs them)."""
    base = f"http://127.0.0.1:{port}"
    cli = Path(sys.executable).with_name("webhooks")
    python = Path(sys.executable)
    receiver_script = Path(__file__).resolve().parents[2] / "examples" / "receiver.py"
    callback = f"http://127.0.0.1:{EXAMPLE_RECEIVER_PORT}/planomatic"
    subscribe = (
        'mutation { createWebhookSubscription(input: {webhook: \\"ORDER_STATUS\\", '
        f'callbackUrl: \\"{callback}\\", notificationEmail: \\"ops@demo.example\\"}}) '
        "{ subscription { id callbackUrl } signingSecret userErrors { field message } } }"
    )
    publish_body = Path(settings.data_dir) / PUBLISH_EXAMPLE_FILE
    portal_note = (
        f"(the demo company's portal: opens once, within "
        f"{_duration(settings.portal_link_max_seconds)}; another one:\n"
        f"                {cli} portal-link --company {demo.company_id})"
    )
    return f"""
PlanOmatic Webhooks (development) is running.

  GraphiQL     {base}/graphql   (set the header  Authorization: Bearer <key>)
  Database     {settings.database_url}
  Company      {demo.company_id} (Demo Company)
  COMPANY key  {demo.company_key}
  PUBLISHER    {demo.publisher_key}
  Portal       {portal_url}
               {portal_note}
  CLI          {cli}   (in this directory it finds this database by itself)

  Delivery targets on loopback (127.0.0.0/8, ::1) are ALLOWED in development so that a
  local receiver works; production allows no private address unless
  WEBHOOKS_ALLOWED_NETWORKS says so.
  Failure emails go to the log and to {settings.data_dir}/outbox (`webhooks emails list`).
{_email_timing(settings)}
Try it, in another terminal:

  1. Subscribe the demo company to a local receiver (COMPANY key):
curl -s {base}/graphql -H 'Authorization: Bearer {demo.company_key}' \\
  -H 'content-type: application/json' \\
  -d '{{"query": "{subscribe}"}}'

     (already done on an earlier run? the secret is shown once: get a new one with
      rotateWebhookSubscriptionSecret, or use another callback URL)

  2. Run the example receiver with the signingSecret that step 1 printed:
SIGNING_SECRET=whsec_... {python} {receiver_script} {EXAMPLE_RECEIVER_PORT}

  3. Publish an event, as the order system does (PUBLISHER key); the body is the
     catalogue's ORDER_STATUS sample (`{cli} webhook-type show ORDER_STATUS --sample`):
curl -s {base}/graphql -H 'Authorization: Bearer {demo.publisher_key}' \\
  -H 'content-type: application/json' \\
  -d @{publish_body}

  4. Watch deliveries live: in GraphiQL (header above) run
       subscription {{ deliveryUpdates {{ id status attemptCount lastResponseStatus }} }}
     a websocket client sends {{"authorization": "Bearer <key>"}} in connection_init
     (graphql-transport-ws protocol, {base.replace("http", "ws")}/graphql).

Press Ctrl-C to stop (the embedded database stops too; the data stays for next time).
"""
