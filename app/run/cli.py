"""The ``webhooks`` command: run the service, the worker, migrations, and manage keys
and the webhook catalogue (``webhook-type``: app/run/catalogue.py).

``--json`` output is one JSON object on stdout; human output and logs go elsewhere.
A bad setting or bad input stops the command with the message and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.errors import UndefinedTable

from app.core.logs import configure_logging
from app.core.settings import Settings, SettingsError
from app.core.tracing import traced_process
from app.domain import api_keys, companies
from app.run import catalogue, portal
from app.run.command import CommandError, UsageError, emit, require_database, with_services
from app.store.migrations import apply_migrations
from app.store.services import Services

if TYPE_CHECKING:
    from app.delivery.mailer import OutboxEntry


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        # Written out here, inside the try: at interpreter exit a closed pipe would
        # print a traceback instead.
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`webhooks ... | head`): what was left to print has no
        # one to go to. Point stdout at /dev/null so the exit's own flush is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    if getattr(args, "settings_free", False):
        # Reads no setting, so it must work where they are broken: the error for a
        # missing production key recommends `webhooks secret-key generate`.
        return handler(args, Settings())
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"webhooks: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings)
    if settings.database_url is None and handler not in (_dev, _emails_list, _emails_show):
        settings = _with_dev_database(settings)
        if settings.database_url is not None:
            print(
                "webhooks: no database configured; using the one of `webhooks dev` "
                f"({Path(settings.data_dir).absolute()})",
                file=sys.stderr,
            )
    try:
        return handler(args, settings)
    except SettingsError as error:
        print(f"webhooks: configuration error: {error}", file=sys.stderr)
        return 2
    except UsageError as error:
        print(f"webhooks: {error}", file=sys.stderr)
        return 2
    except CommandError as error:
        print(f"webhooks: {error}", file=sys.stderr)
        return 1
    except UndefinedTable:
        print(
            "webhooks: the database is not migrated (or not this service's): "
            "run `webhooks migrate`",
            file=sys.stderr,
        )
        return 1
    except psycopg.OperationalError as error:
        print(f"webhooks: cannot reach the database: {error}".rstrip(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webhooks", description="PlanOmatic webhook delivery service."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="zero-setup run: embedded database, API and worker")
    dev.add_argument("--port", type=int, default=None, help="default: WEBHOOKS_PORT, else 8000")
    dev.set_defaults(handler=_dev)

    serve = commands.add_parser("serve", help="serve the API (production)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--with-worker", action="store_true", help="run the worker in-process")
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="run the delivery worker")
    worker.add_argument("--concurrency", type=int, default=None)
    worker.add_argument(
        "--metrics-port", type=int, default=None, help="serve this worker's /metrics on a port"
    )
    worker.set_defaults(handler=_worker)

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    migrate.add_argument("--json", action="store_true")
    migrate.set_defaults(handler=_migrate)

    company = commands.add_parser("company", help="manage companies").add_subparsers(
        required=True, metavar="ACTION"
    )
    company_create = company.add_parser("create", help="create a company")
    company_create.add_argument("name")
    company_create.add_argument("--id", dest="company_id", default=None)
    company_create.add_argument("--json", action="store_true")
    company_create.set_defaults(handler=_company_create)
    company_list = company.add_parser("list", help="list companies")
    company_list.add_argument("--json", action="store_true")
    company_list.set_defaults(handler=_company_list)
    portal.add_commands(commands, company)

    key = commands.add_parser("key", help="manage API keys").add_subparsers(
        required=True, metavar="ACTION"
    )
    key_create = key.add_parser("create", help="create an API key (shown once)")
    owner = key_create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--company", dest="company_id")
    owner.add_argument("--publisher", action="store_true")
    key_create.add_argument("--json", action="store_true")
    key_create.set_defaults(handler=_key_create)
    key_list = key.add_parser("list", help="list API keys (prefixes only)")
    key_list.add_argument("--company", dest="company_id", default=None)
    key_list.add_argument("--json", action="store_true")
    key_list.set_defaults(handler=_key_list)
    key_revoke = key.add_parser("revoke", help="revoke an API key by its prefix")
    key_revoke.add_argument("prefix")
    key_revoke.add_argument("--json", action="store_true")
    key_revoke.set_defaults(handler=_key_revoke)

    emails = commands.add_parser(
        "emails",
        help="read the failure emails kept in the development outbox",
        description="Read the failure emails kept in the development outbox "
        "(WEBHOOKS_DATA_DIR/outbox; only when no WEBHOOKS_SMTP_URL is set).",
    ).add_subparsers(required=True, metavar="ACTION")
    emails_list = emails.add_parser(
        "list", help="list the emails, newest first: date, recipient, subject, id"
    )
    emails_list.add_argument("--json", action="store_true")
    emails_list.set_defaults(handler=_emails_list)
    emails_show = emails.add_parser("show", help="print one email: headers and text")
    emails_show.add_argument(
        "name", metavar="ID", help="its id as `emails list` prints it, its notice id or Message-ID"
    )
    emails_show.set_defaults(handler=_emails_show)

    secret_key = commands.add_parser(
        "secret-key", help="the master key that encrypts secrets at rest"
    ).add_subparsers(required=True, metavar="ACTION")
    secret_key.add_parser("generate", help="print a new key").set_defaults(
        handler=_secret_key_generate, settings_free=True
    )
    rotate = secret_key.add_parser(
        "rotate", help="re-encrypt every secret under WEBHOOKS_SECRET_KEY"
    )
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(handler=_secret_key_rotate)

    catalogue.add_commands(commands)

    export = commands.add_parser("schema", help="print the GraphQL schema (SDL)")
    export.set_defaults(handler=_schema, settings_free=True)
    return parser


def _with_dev_database(settings: Settings) -> Settings:
    """With no database configured, a running `webhooks dev` of the same data directory
    lends its own: `webhooks company create` next to it just works."""
    from app.run.development import dev_database_url

    url = dev_database_url(Path(settings.data_dir))
    if url is None:
        return settings
    return settings.with_overrides(database_url=url)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = apply_migrations(require_database(settings))
    human = "\n".join(f"applied {name}" for name in applied) or "database is up to date"
    emit(args, {"applied": applied}, human)
    return 0


def _company_create(args: argparse.Namespace, settings: Settings) -> int:
    async def work(services: Services) -> companies.Company:
        try:
            return await companies.create_company(services.db, args.name, args.company_id)
        except companies.CompanyError as error:
            raise CommandError(str(error)) from None

    company = with_services(settings, work)
    emit(
        args,
        {"id": company.id, "name": company.name},
        f"created company {company.id} ({company.name})",
    )
    return 0


def _company_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(services: Services) -> list[companies.Company]:
        return await companies.list_companies(services.db)

    found = with_services(settings, work)
    data = {"companies": [{"id": company.id, "name": company.name} for company in found]}
    emit(args, data, "\n".join(f"{company.id}\t{company.name}" for company in found))
    return 0


def _key_create(args: argparse.Namespace, settings: Settings) -> int:
    async def work(services: Services) -> api_keys.CreatedKey:
        if args.publisher:
            return await api_keys.create_key(services.db, "PUBLISHER", None)
        if await companies.get_company(services.db, args.company_id) is None:
            raise CommandError(f"no company with id {args.company_id!r}")
        return await api_keys.create_key(services.db, "COMPANY", args.company_id)

    created = with_services(settings, work)
    emit(
        args,
        {
            "key": created.key,
            "prefix": created.prefix,
            "role": created.role,
            "companyId": created.company_id,
        },
        f"{created.role} key (shown once, store it now):\n{created.key}",
    )
    return 0


def _key_info(info: api_keys.KeyInfo) -> dict[str, Any]:
    return {
        "prefix": info.prefix,
        "role": info.role,
        "companyId": info.company_id,
        "createdAt": info.created_at.isoformat(),
        "revokedAt": info.revoked_at.isoformat() if info.revoked_at else None,
    }


def _key_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(services: Services) -> list[api_keys.KeyInfo]:
        return await api_keys.list_keys(services.db, args.company_id)

    found = with_services(settings, work)
    lines = [
        f"{info.prefix}\t{info.role}\t{info.company_id or '-'}\t"
        f"{'revoked' if info.revoked_at else 'active'}"
        for info in found
    ]
    emit(args, {"keys": [_key_info(info) for info in found]}, "\n".join(lines))
    return 0


def _key_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def work(services: Services) -> api_keys.KeyInfo | None:
        return await api_keys.revoke_key(services.db, args.prefix)

    revoked = with_services(settings, work)
    if revoked is None:
        raise CommandError(f"no API key with prefix {args.prefix!r}")
    emit(args, _key_info(revoked), f"revoked {revoked.prefix}")
    return 0


def _outbox(settings: Settings) -> Path:
    from app.delivery.worker import outbox_dir

    directory = outbox_dir(settings).absolute()
    # A data directory without an outbox is a dev that has mailed nothing yet: an empty
    # outbox. No data directory at all is the wrong place to look.
    if not directory.parent.is_dir():
        raise CommandError(
            f"no outbox at {directory}: `webhooks dev` keeps failure emails there when "
            "WEBHOOKS_SMTP_URL is unset, and none has been kept yet; run this command "
            "where `webhooks dev` runs, or set WEBHOOKS_DATA_DIR to its data directory"
        )
    return directory


def _emails_list(args: argparse.Namespace, settings: Settings) -> int:
    from app.delivery.mailer import list_outbox

    directory = _outbox(settings)
    entries = list_outbox(directory)
    data = {
        "outbox": str(directory),
        "emails": [
            {
                "id": entry.name.removesuffix(".eml"),
                "name": entry.name,
                "noticeId": entry.notice_id,
                "date": _when(entry).isoformat(),
                "to": entry.to,
                "subject": entry.subject,
            }
            for entry in entries
        ],
    }
    if not entries and not getattr(args, "json", False):
        print(f"no emails in the outbox {directory}", file=sys.stderr)
        return 0
    lines = [
        f"{_when(entry).strftime('%Y-%m-%d %H:%M:%S UTC')}\t"
        f"{entry.to or '-'}\t{entry.subject or '-'}\t{entry.name.removesuffix('.eml')}"
        for entry in entries
    ]
    emit(args, data, "\n".join(lines))
    return 0


def _when(entry: OutboxEntry) -> datetime:
    return (entry.sent_at or entry.saved_at).astimezone(UTC)


def _emails_show(args: argparse.Namespace, settings: Settings) -> int:
    from app.delivery.mailer import find_in_outbox, read_outbox

    directory = _outbox(settings)
    entry = find_in_outbox(directory, args.name)
    if entry is None:
        raise CommandError(
            f"no email {args.name!r} in the outbox {directory}; "
            "`webhooks emails list` shows the ids"
        )
    print(read_outbox(directory, entry.name))
    return 0


def _secret_key_generate(args: argparse.Namespace, settings: Settings) -> int:
    from app.core.secret_box import generate_key

    print(generate_key())
    return 0


def _secret_key_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from app.domain.secret_rotation import RotationReport, reencrypt_secrets

    if settings.secret_key is None:
        raise SettingsError("WEBHOOKS_SECRET_KEY must name the new key to rotate to")

    async def work(services: Services) -> RotationReport:
        return await reencrypt_secrets(services.db, services.secret_box)

    report = with_services(settings, work)
    emit(
        args,
        {"subscriptions": report.subscriptions, "reencrypted": report.reencrypted},
        f"re-encrypted the secrets of {report.reencrypted} of {report.subscriptions} subscriptions",
    )
    return 0


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    from schema.root import export_sdl

    sys.stdout.write(export_sdl())
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from app.run.runner import serve

    require_database(settings)
    # --host and --port win over WEBHOOKS_HOST/PORT, for the portal's links and its
    # websocket's own origin too (they are built on the address served).
    if args.host is not None:
        settings = settings.with_overrides(host=args.host)
    if args.port is not None:
        settings = settings.with_overrides(port=args.port)
    with traced_process("api"):
        serve(settings, host=args.host, port=args.port, with_worker=args.with_worker)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from app.run.runner import run_worker_process

    require_database(settings)
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        settings = settings.with_overrides(worker_concurrency=args.concurrency)
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        from app.delivery.metrics import REGISTRY

        start_http_server(args.metrics_port, addr=settings.host, registry=REGISTRY)
    with traced_process("worker"):
        run_worker_process(settings)
    return 0


def _dev(args: argparse.Namespace, settings: Settings) -> int:
    from app.run.development import AlreadyRunning, PortInUse, run_development

    try:
        with traced_process("dev"):
            run_development(settings, port=args.port)
    except (PortInUse, AlreadyRunning) as error:
        print(f"webhooks: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
