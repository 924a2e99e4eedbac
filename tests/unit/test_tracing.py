"""Tracing's pure rules: which exporter the OTEL_* variables choose, the W3C traceparent
read and written, the error kind of an attempt, and what an attempt span's attributes say."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext, TraceFlags

from app.core import tracing
from app.core.masking import MASK, masked_url
from app.core.settings import SettingsError
from app.delivery.attempt_trace import (
    attempt_attributes,
    error_kind,
    with_traceparent,
)
from app.delivery.outgoing import Endpoint, OutgoingDelivery
from app.delivery.transport import AttemptOutcome

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def traced() -> Iterator[None]:
    tracing.install(TracerProvider())
    yield
    tracing.uninstall()


# -- which exporter -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "none"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, "none"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "Console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, "none"),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, "none"),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, "otlp"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            "otlp",
        ),
    ],
)
def test_the_otel_variables_choose_the_exporter_and_nothing_configured_is_off(
    environ: dict[str, str], expected: str
) -> None:
    assert tracing.chosen_exporter(environ) == expected


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, "OTEL_TRACES_EXPORTER"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    ],
)
def test_an_exporter_that_cannot_be_had_stops_start_up_naming_the_variable(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        tracing.chosen_exporter(environ)


@pytest.mark.parametrize(
    ("environ", "endpoint"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http://c:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "http://c:4318/v1/traces"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t.example/custom",
            },
            "https://t.example/custom",
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, None),
    ],
)
def test_the_otlp_endpoint_follows_the_specifications_rule(
    environ: dict[str, str], endpoint: str | None
) -> None:
    assert tracing.otlp_traces_endpoint(environ) == endpoint


def test_with_nothing_configured_start_up_installs_nothing() -> None:
    assert tracing.start_tracing("api", {}) is False
    assert not tracing.enabled()
    assert tracing.current_traceparent() is None
    assert tracing.caller_context({"traceparent": VALID}) is None
    assert tracing.start_linked_span("x", VALID, {}) is None


def test_start_up_names_the_service_and_the_process_and_shutdown_turns_it_off() -> None:
    environ = {"OTEL_TRACES_EXPORTER": "console"}
    assert tracing.start_tracing("worker", environ) is True
    try:
        assert tracing.enabled()
        active = tracing._active
        assert active is not None and active.provider is not None
        attributes = active.provider.resource.attributes
        assert attributes["service.name"] == tracing.DEFAULT_SERVICE_NAME
        assert attributes["webhooks.process"] == "worker"
    finally:
        tracing.stop_tracing()
    assert not tracing.enabled()


# -- traceparent ----------------------------------------------------------------------


def test_a_traceparent_reads_back_as_it_was_written() -> None:
    context = tracing.parse_traceparent(VALID)
    assert context is not None
    assert (context.trace_id, context.span_id) == (
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
    )
    assert context.trace_flags.sampled
    assert tracing.format_traceparent(context) == VALID
    unsampled = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(0))
    assert tracing.format_traceparent(unsampled) == f"00-{1:032x}-{2:016x}-00"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # no flags
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",  # upper case
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # version 00 is exact
        "01" + VALID[2:] + "-" + "a" * 600,  # a later version may add fields, not 600 bytes
    ],
)
def test_a_malformed_traceparent_is_no_context(value: str | None) -> None:
    assert tracing.parse_traceparent(value) is None


def test_an_overlong_header_is_dropped_before_the_propagator_logs_about_it(
    traced: None, caplog: pytest.LogCaptureFixture
) -> None:
    # A caller must not be able to write a warning into our log with every request.
    long = "01" + VALID[2:] + "-" + "a" * 600
    with caplog.at_level("DEBUG"):
        assert tracing.caller_context({"traceparent": long}) is None
        assert tracing.parse_traceparent(long) is None
    assert caplog.records == []


@pytest.mark.parametrize(
    "state",
    [
        "Vendor=1",  # upper case key
        "a=b\tc",  # a control character
        "a=\u00c3\u00a9",  # UTF-8 as Starlette decodes a header (latin-1)
        "a=",  # no value
        "a=b=c",
        ",".join(f"k{n}=v" for n in range(33)),  # more than 32 members, short
    ],
)
def test_a_malformed_tracestate_is_dropped_quietly_and_the_traceparent_still_continued(
    traced: None, caplog: pytest.LogCaptureFixture, state: str
) -> None:
    # The SDK's parser logs each malformed member it meets, text included: any caller could
    # write up to 512 characters of its choosing into our log with every request.
    with caplog.at_level("DEBUG"):
        context = tracing.caller_context({"traceparent": VALID, "tracestate": state})
    assert caplog.records == []
    assert context is not None
    continued = trace.get_current_span(context).get_span_context()
    assert f"{continued.trace_id:032x}" == VALID.split("-")[1]
    assert len(continued.trace_state) == 0


def test_a_well_formed_tracestate_is_kept() -> None:
    state = "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7,tenant@vendor=a b"
    assert tracing.well_formed_tracestate(state)
    assert not tracing.well_formed_tracestate("a=1,A=2")


def test_an_invalid_span_context_has_no_traceparent() -> None:
    assert tracing.format_traceparent(SpanContext(0, 0, is_remote=False)) is None


def test_a_huge_hostile_header_is_refused_in_linear_time(traced: None) -> None:
    # Given headers of a megabyte that a regular expression might backtrack over
    hostile = {"traceparent": "00-" + "0" * 1_000_000, "tracestate": "a=" + "b," * 500_000}
    started = time.perf_counter()
    assert tracing.caller_context(hostile) is None
    assert tracing.parse_traceparent(hostile["traceparent"]) is None
    assert time.perf_counter() - started < 0.05


def test_the_callers_context_is_continued_with_its_tracestate_and_malformed_ones_ignored(
    traced: None,
) -> None:
    context = tracing.caller_context({"traceparent": VALID, "tracestate": "vendor=abc"})
    assert context is not None
    with tracing.server_span("publishEvent", context):
        current = tracing.current_traceparent()
    assert current is not None and current.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert current != VALID  # a span of its own in the caller's trace
    assert tracing.caller_context({"traceparent": "00-zz"}) is None
    assert tracing.caller_context({}) is None


# -- attempts -------------------------------------------------------------------------


def _outcome(error: str | None, status: int | None) -> AttemptOutcome:
    return AttemptOutcome(
        succeeded=error is None,
        status=status,
        body_excerpt=None,
        error=error,
        duration_ms=1,
        started_at=datetime.now(UTC),
    )


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (None, 204, None),
        ("HTTP 500", 500, "500"),
        ("HTTP 410", 410, "410"),
        ("redirect (301) not followed", 301, "redirect"),
        ("timed out after 15 s", None, "timeout"),
        ("timed out after 15 s reading the response body (status 200)", None, "timeout"),
        ("connection refused", None, "connection_refused"),
        ("connection reset (status 200)", None, "connection_reset"),
        ("connection closed before a full response", None, "connection_closed"),
        ("TLS error: certificate verify failed: hostname mismatch", None, "tls_error"),
        ("DNS lookup failed for hooks.acme.example", None, "dns_error"),
        (
            "blocked: hooks.acme.example resolves to a private address (10.0.0.1)",
            None,
            "blocked_target",
        ),
        ("The callback URL must use https://.", None, "invalid_url"),
        ("connection failed (network is unreachable)", None, "connection_failed"),
        ("invalid HTTP response (bad status line)", None, "invalid_response"),
        ("unexpected error (KeyError)", None, "unexpected"),
        ("something no one wrote yet", None, "_OTHER"),
    ],
)
def test_an_attempt_error_has_a_short_kind_never_its_text(
    error: str | None, status: int | None, kind: str | None
) -> None:
    assert error_kind(_outcome(error, status)) == kind


def test_an_attempt_spans_attributes_show_the_url_masked_and_no_secret() -> None:
    # Given a delivery whose callback carries an API key parameter value
    url = "https://hooks.acme.example/in?tenant=7&api_key=sekret-VALUE-123"
    shown = masked_url(url, ["api_key"])
    delivery = OutgoingDelivery(
        id=uuid.uuid4(),
        webhook_id="msg_abc",
        company_id="acme",
        event_id=uuid.uuid4(),
        webhook_key="ORDER_STATUS",
        subject="332818",
        status="PENDING",  # type: ignore[arg-type]
        cycle=1,
        attempt_count=0,
        max_attempts=10,
        body=b'{"secret-payload-value": 1}',
        endpoint=Endpoint(
            subscription_id=uuid.uuid4(),
            callback_url="https://hooks.acme.example/in?tenant=7",
            api_key_params=(),
            signing_secret="sealed-signing-secret",
            previous_signing_secret=None,
            previous_secret_expires_at=None,
            is_active=True,
            deleted_at=None,
        ),
    )

    attributes = attempt_attributes(delivery, 3, shown)

    assert attributes["url.full"] == f"https://hooks.acme.example/in?tenant=7&api_key={MASK}"
    assert attributes["webhooks.attempt.number"] == 3
    assert attributes["webhooks.webhook_id"] == "msg_abc"
    assert attributes["webhooks.delivery.id"] == str(delivery.id)
    assert attributes["webhooks.subscription.id"] == str(delivery.endpoint.subscription_id)
    text = repr(attributes)
    for secret in ("sekret-VALUE-123", "sealed-signing-secret", "secret-payload-value"):
        assert secret not in text


def test_our_traceparent_replaces_one_a_subscription_set_in_any_case() -> None:
    headers = with_traceparent({"TraceParent": "00-custom", "x-other": "1"}, VALID)
    assert headers == {"x-other": "1", "traceparent": VALID}


def test_otel_service_name_names_the_service() -> None:
    assert tracing.start_tracing(
        "api", {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "hooks-eu"}
    )
    try:
        active = tracing._active
        assert active is not None and active.provider is not None
        assert active.provider.resource.attributes["service.name"] == "hooks-eu"
    finally:
        tracing.stop_tracing()
