"""``webhooks webhook-type ...``: an operator adds and changes webhook types, no code.

    webhooks webhook-type put KEY --name N --description D --schema FILE --sample FILE \\
        [--subject-pointer /order_id] [--status-pointer /order_status]
    webhooks webhook-type list
    webhooks webhook-type show KEY [--schema | --sample]

The rules are :func:`app.domain.webhook_types.put_webhook_type`'s; this module reads the
files and reports. A bad file or a refused definition prints what and where, one line
each, and exits 2, with no traceback.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.core.errors import Field, InvalidInput
from app.core.settings import Settings
from app.domain import webhook_types
from app.domain.webhook_types import PutResult, WebhookType, WebhookTypeDefinition
from app.run.command import CommandError, UsageError, emit, with_services
from app.store.services import Services


def add_commands(commands: Any) -> None:
    """Register ``webhook-type`` and its actions with the ``webhooks`` parser."""
    webhook_type = commands.add_parser(
        "webhook-type",
        help="manage the webhook catalogue (types, their JSON Schemas and samples)",
    ).add_subparsers(required=True, metavar="ACTION")

    put = webhook_type.add_parser(
        "put",
        help="create a webhook type, or replace every field of an existing one",
        description="Create a webhook type, or replace every field of the one with KEY "
        "(a pointer left out is removed). Events already published are never touched.",
    )
    put.add_argument("key", metavar="KEY", help="e.g. ORDER_STATUS")
    put.add_argument("--name", required=True, help="human name, e.g. 'Order Status'")
    put.add_argument("--description", required=True)
    put.add_argument(
        "--schema", required=True, metavar="FILE", help="JSON Schema (draft 2020-12) file"
    )
    put.add_argument(
        "--sample", required=True, metavar="FILE", help="sample payload (JSON) matching it"
    )
    put.add_argument(
        "--subject-pointer",
        default=None,
        metavar="POINTER",
        help="payload value that is the subject when the publisher gives none, e.g. /order_id",
    )
    put.add_argument(
        "--status-pointer",
        default=None,
        metavar="POINTER",
        help="payload field whose values the schema lists, e.g. /order_status",
    )
    put.add_argument("--json", action="store_true")
    put.set_defaults(handler=_put)

    listing = webhook_type.add_parser("list", help="list the webhook types")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)

    show = webhook_type.add_parser("show", help="print a webhook type as JSON")
    show.add_argument("key", metavar="KEY")
    part = show.add_mutually_exclusive_group()
    part.add_argument("--schema", action="store_true", help="print only its JSON Schema")
    part.add_argument("--sample", action="store_true", help="print only its sample payload")
    show.set_defaults(handler=_show)


def read_json_file(option: str, path: str) -> Any:
    """The JSON document in ``path``; UsageError naming ``option`` and the file if not."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{option} {path}: cannot read it: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{option} {path}: not UTF-8 text") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{option} {path}: not JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    except ValueError as error:
        raise UsageError(f"{option} {path}: not JSON: {error}") from None
    except RecursionError:
        raise UsageError(f"{option} {path}: nested too deeply") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# Where each field of a definition came from on the command line.
_OPTIONS = {
    "key": "KEY",
    "name": "--name",
    "description": "--description",
    "subject_pointer": "--subject-pointer",
    "status_pointer": "--status-pointer",
}


def _where(field: Field, args: argparse.Namespace) -> str:
    name = str(field[0])
    if name in ("schema", "sample"):
        return f"--{name} {getattr(args, name)}"
    return _OPTIONS.get(name, name)


def _put(args: argparse.Namespace, settings: Settings) -> int:
    definition = WebhookTypeDefinition(
        key=args.key,
        name=args.name,
        description=args.description,
        payload_schema=read_json_file("--schema", args.schema),
        sample_payload=read_json_file("--sample", args.sample),
        subject_pointer=args.subject_pointer,
        status_pointer=args.status_pointer,
    )

    async def work(services: Services) -> PutResult:
        return await webhook_types.put_webhook_type(services.db, definition)

    try:
        result = with_services(settings, work)
    except InvalidInput as refused:
        raise UsageError(
            f"webhook type {args.key} refused:\n"
            + "\n".join(
                f"  {_where(error.field, args)}: {error.message}" for error in refused.errors
            )
        ) from None
    webhook = result.webhook_type
    emit(
        args,
        {"key": webhook.key, "outcome": str(result.outcome), **_summary(webhook)},
        f"{result.outcome} {webhook.key} ({webhook.name}): "
        f"subject {webhook.subject_pointer or 'as published'}, "
        f"status {webhook.status_pointer or 'none'}"
        + (f" ({len(webhook.statuses)} values)" if webhook.statuses else ""),
    )
    return 0


def _summary(webhook: WebhookType) -> dict[str, Any]:
    """What list and put print of a type (show prints it all)."""
    return {
        "name": webhook.name,
        "subjectPointer": webhook.subject_pointer,
        "statusPointer": webhook.status_pointer,
        "updatedAt": webhook.updated_at.isoformat(),
    }


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(services: Services) -> list[WebhookType]:
        return await webhook_types.list_webhook_types(services.db)

    found = with_services(settings, work)
    emit(
        args,
        {"webhookTypes": [{"key": webhook.key, **_summary(webhook)} for webhook in found]},
        "\n".join(
            f"{webhook.key}\t{webhook.name}\tupdated {webhook.updated_at.isoformat()}"
            for webhook in found
        ),
    )
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(services: Services) -> WebhookType | None:
        return await webhook_types.get_webhook_type(services.db, args.key)

    webhook = with_services(settings, work)
    if webhook is None:
        raise CommandError(f"no webhook type {args.key!r}; `webhooks webhook-type list` shows them")
    if args.schema:
        document: Any = webhook.payload_schema
    elif args.sample:
        document = webhook.sample_payload
    else:
        document = {
            "key": webhook.key,
            "description": webhook.description,
            **_summary(webhook),
            "statuses": [
                {"value": status.value, "description": status.description}
                for status in webhook.statuses
            ],
            "schema": webhook.payload_schema,
            "sample": webhook.sample_payload,
        }
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0
