"""Errors the service raises, all under one base, and the user errors the domain reports.

Every exception class of ``app``, ``schema`` and ``jobs`` derives from
``WebhooksError``; some also from the standard exception that callers (or a library
that catches them) expect. The tree, each class with its module
(``tests/unit/test_errors.py`` keeps it in step with the code)::

    WebhooksError
      InvalidInput                 app.core.errors
      InvalidArgument              app.core.errors, also a ValueError
      SecretBoxError               app.core.secret_box
        SecretKeyError             app.core.secret_box
      SettingsError                app.core.settings, also a ValueError
      TargetError                  app.core.target_policy
        ResolutionError            app.core.target_policy
      FanOutMismatch               app.store.queue, also a RuntimeError
      CompanyError                 app.domain.companies, also a ValueError
      MailDeliveryError            app.delivery.mailer
      SubscriptionOverHttp         schema.api_schema, also Strawberry's InvalidOperationTypeError
      AmbiguousCredentials         app.web.bearer, also a ValueError
      RateLimited                  app.web.rate_limit
      CsrfRefused                  app.web.portal_access
      SessionEnded                 app.web.portal_access
      _Refused                     app.web.refusals
      JsonRefused                  app.web.request_json, also a json.JSONDecodeError
      SocketRefused                app.web.socket_guard
      CommandError                 app.run.command
        UsageError                 app.run.command
      PortInUse                    app.run.development
      AlreadyRunning               app.run.development
      ClusterError                 app.run.postgres_cluster, also a RuntimeError

``UserError`` is bad input, with the field it is about and a code from the contract, in
the domain's words: ``schema/`` reports it in a mutation payload under the field's
GraphQL path. ``InvalidInput`` carries a list of them when a domain function refuses to
write anything. ``InvalidArgument`` is a malformed id or cursor in a query: the GraphQL
layer turns it into a clear GraphQL error (extensions.code BAD_USER_INPUT).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class UserErrorCode(StrEnum):
    """What is wrong with an input field: the contract's codes (the GraphQL enum is this)."""

    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    NOT_FOUND = "NOT_FOUND"
    DUPLICATE = "DUPLICATE"
    UNKNOWN_WEBHOOK = "UNKNOWN_WEBHOOK"
    FORBIDDEN_TARGET = "FORBIDDEN_TARGET"
    TOO_LARGE = "TOO_LARGE"
    SCHEMA_MISMATCH = "SCHEMA_MISMATCH"
    PORTAL_NOT_CONFIGURED = "PORTAL_NOT_CONFIGURED"


class WebhooksError(Exception):
    """The base of every exception the service defines."""


Field = tuple[str | int, ...]
"""An input field as the domain names it: a parameter of the domain function or a field
of its input value, then an index or a name within it, e.g. ``("callback_url",)`` or
``("api_key_params", 2, "name")``; within a JSON value, keys are :class:`JsonKey`, e.g.
``("payload", JsonKey("client"), JsonKey("email"))``."""


class JsonKey(str):
    """A key of a JSON value the client sent (a filter's field path or operator, a
    payload's field name), as a part of a :data:`Field`: reported as it was written,
    never renamed as field names are (``order_status`` stays ``order_status``)."""

    __slots__ = ()


@dataclass(frozen=True)
class UserError:
    """One problem with one input field."""

    field: Field
    message: str
    code: UserErrorCode


class InvalidInput(WebhooksError):
    """The input was refused; nothing was written."""

    def __init__(self, errors: list[UserError]) -> None:
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors


class InvalidArgument(WebhooksError, ValueError):
    """A malformed id, cursor or argument of a query."""


def missing(field: Field, noun: str) -> UserError:
    """The uniform answer for a missing id and for another company's id."""
    return UserError(field, f"No {noun} with this id.", UserErrorCode.NOT_FOUND)


def not_found(field: Field, noun: str) -> InvalidInput:
    """The input refused for the :func:`missing` id in ``field``."""
    return InvalidInput([missing(field, noun)])
