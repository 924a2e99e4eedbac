"""``webhooks dev``: the zero-setup run.

With no database configured it starts an embedded PostgreSQL in the data directory
(``.webhooks/`` by default; a second run reuses it), migrates, creates a demo company
with a COMPANY key and a PUBLISHER key on first run, opens loopback as a delivery target
so a local receiver works, and serves the API with GraphiQL and the worker in-process.
Ctrl-C stops everything, the embedded database too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from app import api_keys, companies
from app.migrations import apply_migrations, ensure_development_database
from app.postgres_cluster import LocalCluster
from app.runner import serve, sigterm_interrupts
from app.services import open_services
from app.settings import Settings

DEMO_COMPANY_ID = "demo"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class DemoKeys:
    company_id: str
    company_key: str
    publisher_key: str


def run_development(settings: Settings, *, port: int) -> None:
    """Until SIGINT or SIGTERM; either stops the embedded database too, even mid-start."""
    data_dir = Path(settings.data_dir).absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    with sigterm_interrupts():
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
        assert database_url is not None
        settings = settings.with_overrides(
            allowed_networks=(*settings.allowed_networks, *LOOPBACK), data_dir=str(data_dir)
        )
        apply_migrations(database_url)
        keys_file = data_dir / "demo-keys.json"
        saved = DemoKeys(**json.loads(keys_file.read_text())) if keys_file.exists() else None
        demo = asyncio.run(ensure_demo(settings, saved))
        _save_keys(keys_file, demo)
        serve(settings, port=port, with_worker=True, banner=banner(settings, demo, port))
    finally:
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


def _save_keys(keys_file: Path, demo: DemoKeys) -> None:
    descriptor = os.open(keys_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(demo.__dict__, handle)


def banner(settings: Settings, demo: DemoKeys, port: int) -> str:
    base = f"http://127.0.0.1:{port}"
    query = '{"query": "{ webhookTypes { key name } }"}'
    return f"""
PlanOmatic Webhooks (development) is running.

  GraphiQL     {base}/graphql   (set the header  Authorization: Bearer <key>)
  Database     {settings.database_url}
  Company      {demo.company_id} (Demo Company)
  COMPANY key  {demo.company_key}
  PUBLISHER    {demo.publisher_key}

  Delivery targets on loopback (127.0.0.0/8, ::1) are ALLOWED in development so that a
  local receiver works; production allows no private address unless
  WEBHOOKS_ALLOWED_NETWORKS says so.
  Failure emails go to the log and to {settings.data_dir}/outbox (`webhooks emails list`).

Try it:
  curl -s {base}/graphql -H 'Authorization: Bearer {demo.company_key}' \\
       -H 'content-type: application/json' -d '{query}'

Press Ctrl-C to stop (the embedded database stops too; the data stays for next time).
"""
