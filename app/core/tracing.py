"""Tracing: OpenTelemetry spans from a ``publishEvent`` call to every attempt it leads to.

Configured by the standard ``OTEL_*`` variables only (README, "Observability"). Tracing is
on when an exporter is configured: ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set (OTLP over HTTP/protobuf), or
``OTEL_TRACES_EXPORTER`` naming ``otlp`` or ``console``; ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none`` turn it off whatever else is set. Off, nothing is set up and
every function here returns at its first line: no SDK, no span objects, no header.

On, a process (``webhooks serve``, ``worker``, ``dev``) gets one SDK tracer provider with a
batch span processor: spans are queued in memory and exported from the processor's own
thread, so nothing on the event loop ever waits for the exporter; an exporter failing or
hanging only drops spans (the SDK logs it), never a delivery. The provider is flushed and
shut down when the process stops (:func:`traced_process`).

The traceparent of the ``publishEvent`` span is stored with the event, so that an attempt
made minutes later in another process continues that trace and links to it.

Secrets never reach a span: callers pass ids, counts, the masked URL and an error kind,
never a payload, a header value or a response; an exception escaping a span is named by
its type only (its text may quote a value).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from app.core.errors import InvalidInput
from app.core.settings import SettingsError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

DEFAULT_SERVICE_NAME = "planomatic-webhooks"
TRACER_NAME = "planomatic-webhooks"
# W3C trace context: a version-00 traceparent is 55 characters, later versions may add
# fields; a tracestate beyond 512 characters may be dropped whole. Longer headers are
# ignored before any parsing, and quietly: the SDK's propagator would log a warning for
# each, so any caller could write into our log with every request.
MAX_HEADER_LENGTH = 512
# A tracestate is continued only when every member is well formed (W3C trace context:
# key "=" value, at most 32 members); anything else is discarded whole, as the standard
# says, and before the SDK's parser could log the offending member's text.
_TRACESTATE_MEMBER = re.compile(
    r"(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
MAX_TRACESTATE_MEMBERS = 32

# A span attribute's value; None: leave the attribute out.
Attribute: TypeAlias = AttributeValue | None

Exporter = Literal["none", "otlp", "console"]
_EXPORTERS: tuple[Exporter, ...] = ("none", "otlp", "console")
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class _Active:
    provider: TracerProvider | None
    tracer: trace.Tracer


_active: _Active | None = None


def chosen_exporter(environ: Mapping[str, str]) -> Exporter:
    """Which exporter the ``OTEL_*`` variables ask for; ``"none"`` when tracing is off.

    Unlike the SDK's own default (``otlp`` to localhost), nothing configured means off:
    a service nobody points at a collector must not try to reach one.
    """
    if _variable(environ, "OTEL_SDK_DISABLED").lower() == "true":
        return "none"
    names = [name.strip().lower() for name in _variable(environ, "OTEL_TRACES_EXPORTER").split(",")]
    names = [name for name in names if name]
    if not names:
        endpoint = _variable(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or _variable(
            environ, "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        names = ["otlp" if endpoint else "none"]
    if "none" in names:
        return "none"
    unknown = [name for name in names if name not in _EXPORTERS]
    if unknown or len(names) > 1:
        raise SettingsError(
            "OTEL_TRACES_EXPORTER must be one of otlp, console, none; got "
            f"{_variable(environ, 'OTEL_TRACES_EXPORTER')!r}"
        )
    exporter: Exporter = names[0]  # type: ignore[assignment]
    if exporter == "otlp":
        protocol = _variable(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or _variable(
            environ, "OTEL_EXPORTER_OTLP_PROTOCOL"
        )
        if protocol not in ("", "http/protobuf"):
            raise SettingsError(
                "OTEL_EXPORTER_OTLP_PROTOCOL (or OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) must be "
                f"http/protobuf, the one OTLP transport installed; got {protocol!r}"
            )
    return exporter


def _variable(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def otlp_traces_endpoint(environ: Mapping[str, str]) -> str | None:
    """Where OTLP/HTTP spans go: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as it is, else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` plus ``/v1/traces`` (the OTLP specification's rule)."""
    traces = _variable(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = _variable(environ, "OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + "/v1/traces" if base else None


def start_tracing(process: str, environ: Mapping[str, str] | None = None) -> bool:
    """Set tracing up for this process as the ``OTEL_*`` variables say; returns whether
    it is on. ``process`` (``api``, ``worker``, ``dev``) becomes the resource attribute
    ``webhooks.process``.

    ``environ`` (default: the process environment) chooses the exporter, its endpoint
    and the service name; the SDK reads its other knobs (``OTEL_TRACES_SAMPLER``,
    ``OTEL_BSP_*``, ``OTEL_EXPORTER_OTLP_HEADERS``, ``_TIMEOUT``, ...) from the process
    environment itself."""
    env = os.environ if environ is None else environ
    exporter = chosen_exporter(env)
    if exporter == "none":
        return False
    # Imported only now: a process that does not trace never loads the SDK.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    attributes = {"webhooks.process": process}
    if _variable(env, "OTEL_SERVICE_NAME"):
        attributes["service.name"] = _variable(env, "OTEL_SERVICE_NAME")
    detected = Resource.create(attributes)
    if str(detected.attributes.get("service.name", "")).startswith("unknown_service"):
        detected = detected.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), the batching from OTEL_BSP_*.
    # Shut down by stop_tracing (traced_process), not by the SDK's own atexit hook: the
    # process decides when its last spans are written.
    provider = TracerProvider(resource=detected, shutdown_on_exit=False)
    span_exporter: SpanExporter
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter(endpoint=otlp_traces_endpoint(env))
    else:
        span_exporter = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    install(provider)
    return True


def stop_tracing() -> None:
    """Export what is queued and shut the provider down (bounded by the exporter's
    timeout, ``OTEL_EXPORTER_OTLP_TIMEOUT``); tracing is off afterwards."""
    global _active
    active, _active = _active, None
    if active is not None and active.provider is not None:
        active.provider.shutdown()


@contextmanager
def traced_process(process: str) -> Iterator[bool]:
    """Tracing for the life of a process: on if configured, flushed at the end."""
    on = start_tracing(process)
    try:
        yield on
    finally:
        if on:
            stop_tracing()


def install(provider: TracerProvider | trace.TracerProvider) -> None:
    """Trace through ``provider`` from now on (``start_tracing``; tests hand in one with an
    in-memory exporter). The global provider is left alone: only this service's spans."""
    global _active
    sdk = provider if hasattr(provider, "shutdown") else None
    _active = _Active(sdk, provider.get_tracer(TRACER_NAME))  # type: ignore[arg-type]


def uninstall() -> None:
    """Tracing off, without shutting the provider down (tests)."""
    global _active
    _active = None


def enabled() -> bool:
    """Whether spans are made in this process."""
    return _active is not None


# -- W3C trace context ------------------------------------------------------------------


def format_traceparent(span_context: SpanContext) -> str | None:
    """The ``traceparent`` value of a span context, or None for an invalid one."""
    if not span_context.is_valid:
        return None
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
        f"-{int(span_context.trace_flags):02x}"
    )


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The span context a ``traceparent`` value names, or None when it is absent,
    malformed, too long, of version ``ff`` or has an all-zero id (W3C: ignore it)."""
    if not value or len(value) > MAX_HEADER_LENGTH:
        return None
    extracted = _PROPAGATOR.extract({"traceparent": value})
    span_context = trace.get_current_span(extracted).get_span_context()
    return span_context if span_context.is_valid else None


def caller_context(headers: Mapping[str, str]) -> Context | None:
    """The trace context an HTTP request carries (``traceparent``, ``tracestate``), to
    continue; None when tracing is off or the request carries none that is valid. A
    malformed header is ignored, never an error."""
    if _active is None:
        return None
    parent = headers.get("traceparent")
    if not parent or len(parent) > MAX_HEADER_LENGTH:
        return None
    carrier = {"traceparent": parent}
    state = headers.get("tracestate")
    if state and well_formed_tracestate(state):
        carrier["tracestate"] = state
    extracted = _PROPAGATOR.extract(carrier)
    if not trace.get_current_span(extracted).get_span_context().is_valid:
        return None
    return extracted


def well_formed_tracestate(value: str) -> bool:
    """Whether a ``tracestate`` value is one to continue: at most ``MAX_HEADER_LENGTH``
    characters, at most 32 members, each ``key=value`` as W3C trace context defines them
    (empty members and spaces around them allowed). Linear in the value's length."""
    if len(value) > MAX_HEADER_LENGTH:
        return False
    members = [member.strip(" \t") for member in value.split(",")]
    members = [member for member in members if member]
    return len(members) <= MAX_TRACESTATE_MEMBERS and all(
        _TRACESTATE_MEMBER.fullmatch(member) for member in members
    )


def current_traceparent() -> str | None:
    """The ``traceparent`` of the span current now (None when tracing is off)."""
    if _active is None:
        return None
    return format_traceparent(trace.get_current_span().get_span_context())


# -- spans ------------------------------------------------------------------------------


# What a span is while tracing is off: one shared no-op (a generator-based context
# manager would cost a few microseconds per publish for nothing).
_OFF: AbstractContextManager[None] = nullcontext()


def server_span(name: str, parent: Context | None) -> AbstractContextManager[object]:
    """A SERVER span named ``name`` around the block, current inside it, continuing
    ``parent`` (the caller's trace) or starting a trace. Nothing when tracing is off."""
    if _active is None:
        return _OFF
    return _span(_active.tracer, name, SpanKind.SERVER, parent)


def internal_span(name: str) -> AbstractContextManager[object]:
    """An INTERNAL child span of the current one around the block."""
    if _active is None:
        return _OFF
    return _span(_active.tracer, name, SpanKind.INTERNAL, None)


@contextmanager
def _span(
    tracer: trace.Tracer, name: str, kind: SpanKind, parent: Context | None
) -> Iterator[Span]:
    # Not the SDK's record_exception: an exception's text may quote a payload value.
    with tracer.start_as_current_span(
        name, context=parent, kind=kind, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield span
        except BaseException as error:
            span.set_attribute("error.type", type(error).__name__)
            if not isinstance(error, InvalidInput):
                # Refused input is the caller's error (userErrors), as a 4xx is: the span's
                # status stays unset.
                span.set_status(Status(StatusCode.ERROR))
            raise


def annotate(attributes: Mapping[str, Attribute]) -> None:
    """Set attributes (None values skipped) on the current span, if it records."""
    if _active is None:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({key: value for key, value in attributes.items() if value is not None})


def start_linked_span(
    name: str,
    origin: str | None,
    attributes: Mapping[str, Attribute],
    *,
    kind: SpanKind = SpanKind.CLIENT,
) -> Span | None:
    """Start (not make current) a span that continues the trace whose ``traceparent`` is
    ``origin`` (stored with the event) and links to that span; a new trace when ``origin``
    is absent or invalid. The caller ends it. None when tracing is off."""
    if _active is None:
        return None
    origin_context = parse_traceparent(origin)
    parent = None
    links: list[Link] = []
    if origin_context is not None:
        remote = SpanContext(
            origin_context.trace_id,
            origin_context.span_id,
            is_remote=True,
            trace_flags=TraceFlags(origin_context.trace_flags),
        )
        parent = trace.set_span_in_context(NonRecordingSpan(remote))
        links.append(Link(remote))
    return _active.tracer.start_span(
        name,
        context=parent,
        kind=kind,
        attributes={key: value for key, value in attributes.items() if value is not None},
        links=links,
        record_exception=False,
        set_status_on_exception=False,
    )


def traceparent_of(span: Span | None) -> str | None:
    """The ``traceparent`` value that names ``span`` (None for no span)."""
    return None if span is None else format_traceparent(span.get_span_context())
