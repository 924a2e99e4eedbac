"""publishEvent checks each payload against its webhook's JSON Schema: every violation is a
userError at its JSON pointer, nothing is written; the subject defaults to the order id;
an operator's update of the schema is seen by the running API at once."""

from __future__ import annotations

from typing import Any

import pytest

from app.store.services import Services
from tests.catalogue import add_webhook_type, order_status_sample, order_status_schema
from tests.integration.test_api_events import counts
from tests.payloads import order_status_payload
from tests.service import GraphQLClient, Tenants

PUBLISH = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) {
    event { id subject payload deliveries { id } }
    userErrors { field code message }
  }
}"""
SUBSCRIBE = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { subscription { id } userErrors { code } }
}"""
EVENT = "query($id: ID!) { event(id: $id) { id subject payload } }"
STATUS_VALUES = (
    '"ordered", "scheduled", "assembly", "notified", "completed", "hold", "cancelled", '
    '"submitted_cancel_onsite", "pending_appointment", "ready_to_schedule", "committed"'
)


async def publish(
    api: GraphQLClient, tenants: Tenants, payload: Any, **changes: Any
) -> dict[str, Any]:
    """publishEvent for company A; returns its payload (event and userErrors)."""
    event_input = {"companyId": tenants.a, "webhook": "ORDER_STATUS", "payload": payload}
    data = await api.data(PUBLISH, {"input": event_input | changes}, key=tenants.publisher)
    result: dict[str, Any] = data["publishEvent"]
    return result


async def subscribe(api: GraphQLClient, tenants: Tenants) -> None:
    subscription = {
        "webhook": "ORDER_STATUS",
        "callbackUrl": "http://127.0.0.1:9/hook",
        "notificationEmail": "ops@example.com",
    }
    data = await api.data(SUBSCRIBE, {"input": subscription}, key=tenants.key_a)
    assert data["createWebhookSubscription"]["userErrors"] == []


def without(field: str) -> dict[str, Any]:
    payload = order_status_payload()
    del payload[field]
    return payload


def with_client(**fields: Any) -> dict[str, Any]:
    payload = order_status_payload()
    payload["client"] |= fields
    return payload


def with_address(**fields: Any) -> dict[str, Any]:
    payload = order_status_payload()
    payload["property_info"]["address"] |= fields
    return payload


APPOINTMENT = {
    "start_datetime": "2026-12-02T15:00:00Z",
    "end_datetime": "2026-12-02T16:30:00Z",
    "duration": 90,
    "cancellation_reason": None,
    "cancellation_reason_detail": None,
}

# payload -> (GraphQL field, message)
BAD_PAYLOADS: dict[str, tuple[dict[str, Any], list[str], str]] = {
    "wrong-type": (
        order_status_payload(order_id="ord_41"),
        ["input", "payload", "order_id"],
        '/order_id: expected an integer, got "ord_41"',
    ),
    "missing-required": (
        without("order_id"),
        ["input", "payload"],
        '/: missing required field "order_id"',
    ),
    "bad-status": (
        order_status_payload(order_status="shipped"),
        ["input", "payload", "order_status"],
        f'/order_status: expected one of {STATUS_VALUES}; got "shipped"',
    ),
    "nested-wrong-type": (
        with_client(email=3),
        ["input", "payload", "client", "email"],
        "/client/email: expected a string, got 3",
    ),
    "nested-missing-required": (
        order_status_payload(
            client={"first_name": "Casey", "email": "c@example.com", "phone": "+1-555-0100"}
        ),
        ["input", "payload", "client"],
        '/client: missing required field "last_name"',
    ),
    # Payload keys are reported as they are (a GraphQL field would be camelCased).
    "deep-key-with-underscores": (
        with_address(postal_code=80301),
        ["input", "payload", "property_info", "address", "postal_code"],
        "/property_info/address/postal_code: expected a string, got 80301",
    ),
    "array-item": (
        order_status_payload(appointments=[APPOINTMENT | {"duration": -1}]),
        ["input", "payload", "appointments", "0", "duration"],
        "/appointments/0/duration: -1 is less than the minimum of 0",
    ),
    "date-time-format": (
        order_status_payload(request_datetime="yesterday"),
        ["input", "payload", "request_datetime"],
        '/request_datetime: expected a date-time string, got "yesterday"',
    ),
    "nullable-wrong-type": (
        order_status_payload(job_due_date=20261203),
        ["input", "payload", "job_due_date"],
        "/job_due_date: expected a string or null, got 20261203",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PAYLOADS))
async def test_a_payload_that_breaks_the_schema_is_refused_at_its_pointer_and_writes_nothing(
    api: GraphQLClient, services: Services, tenants: Tenants, case: str
) -> None:
    payload, field, message = BAD_PAYLOADS[case]
    # Given a subscription that a valid event would reach
    await subscribe(api, tenants)

    # When the order system publishes the payload
    result = await publish(api, tenants, payload)

    # Then one userError names the pointer and what was expected, and nothing was written
    assert result["userErrors"] == [{"field": field, "code": "SCHEMA_MISMATCH", "message": message}]
    assert result["event"] is None
    assert await counts(services) == (0, 0, 0)


async def test_every_violation_is_reported_up_to_twenty_then_one_says_more(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given a subscription, and a payload with 100 violations (appointments that are no
    # objects) and one more at the top
    await subscribe(api, tenants)
    payload = order_status_payload(appointments=list(range(100)), order_status="shipped")

    # When it is published
    result = await publish(api, tenants, payload)

    # Then the first twenty are listed, each at its pointer, and a last error says more
    # were found; nothing was written
    errors = result["userErrors"]
    assert len(errors) == 21
    assert {error["code"] for error in errors} == {"SCHEMA_MISMATCH"}
    assert errors[0]["field"] == ["input", "payload", "order_status"]
    assert [error["field"] for error in errors[1:20]] == [
        ["input", "payload", "appointments", str(index)] for index in range(19)
    ]
    assert errors[1]["message"] == "/appointments/0: expected an object, got 0"
    assert errors[20]["field"] == ["input", "payload"]
    assert errors[20]["message"].startswith("More violations are not listed")
    assert result["event"] is None
    assert await counts(services) == (0, 0, 0)


async def test_a_large_invalid_payload_is_reported_by_its_first_violation(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given a payload of about 200 KB (within the size cap) with 100,000 violations
    payload = order_status_payload(appointments=[0] * 100_000)

    # When it is published
    result = await publish(api, tenants, payload)

    # Then the first violation is listed, and that more are not; nothing was written
    assert [(error["field"], error["message"][:40]) for error in result["userErrors"]] == [
        (["input", "payload", "appointments", "0"], "/appointments/0: expected an object, got"),
        (["input", "payload"], "More violations are not listed (at most "),
    ]
    assert await counts(services) == (0, 0, 0)


async def test_fields_the_schema_does_not_list_are_accepted(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # The order system may add fields; receivers ignore those they do not know.
    result = await publish(api, tenants, order_status_payload(photographer_id=7))

    assert result["userErrors"] == []
    assert result["event"]["payload"]["photographer_id"] == 7


# --- the subject ----------------------------------------------------------------------


async def test_without_a_subject_the_subject_is_the_order_id_as_a_string(
    api: GraphQLClient, tenants: Tenants
) -> None:
    result = await publish(api, tenants, order_status_payload(order_id=332818))

    assert result["userErrors"] == []
    assert result["event"]["subject"] == "332818"
    found = await api.data(EVENT, {"id": result["event"]["id"]}, key=tenants.key_a)
    assert found["event"]["subject"] == "332818"


async def test_a_subject_given_is_kept_as_it_is(api: GraphQLClient, tenants: Tenants) -> None:
    result = await publish(api, tenants, order_status_payload(order_id=332818), subject="ord-A7")

    assert result["userErrors"] == []
    assert result["event"]["subject"] == "ord-A7"


async def test_a_retry_without_subject_finds_the_first_event(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # The derived subject is part of what a retry must repeat: the same payload gives it.
    first = await publish(api, tenants, order_status_payload(), idempotencyKey="41:ordered")
    again = await publish(api, tenants, order_status_payload(), idempotencyKey="41:ordered")

    assert again["userErrors"] == []
    assert again["event"]["id"] == first["event"]["id"]
    assert (await counts(services))[0] == 1


async def test_an_order_id_written_with_a_fraction_of_zero_is_the_same_subject(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given an order id a JSON encoder wrote as 332818.0, which the schema's integer accepts
    first = await publish(
        api, tenants, order_status_payload(order_id=332818.0), idempotencyKey="332818:x"
    )
    # When the order system retries it written as 332818
    again = await publish(
        api, tenants, order_status_payload(order_id=332818), idempotencyKey="332818:x"
    )

    # Then both name order 332818, and the retry finds the first event
    assert first["userErrors"] == []
    assert first["event"]["subject"] == "332818"
    assert again["userErrors"] == []
    assert again["event"]["id"] == first["event"]["id"]
    assert (await counts(services))[0] == 1


async def test_a_type_without_subject_pointer_leaves_the_subject_empty(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    await add_webhook_type(services, "NOTE_ADDED", sample={"note": "x"})

    result = await publish(api, tenants, {"note": "Gate code 4411"}, webhook="NOTE_ADDED")

    assert result["userErrors"] == []
    assert result["event"]["subject"] is None


async def test_a_derived_subject_is_checked_like_a_given_one(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given a type whose subject is a free string of the payload
    await add_webhook_type(
        services,
        "NOTE_ADDED",
        schema={"type": "object", "properties": {"ref": {"type": "string"}}},
        sample={"ref": "note-1"},
        subject_pointer="/ref",
    )

    # When a payload gives a subject longer than any subject may be
    result = await publish(api, tenants, {"ref": "r" * 201}, webhook="NOTE_ADDED")

    # Then it is refused at the payload value it came from
    assert [(error["field"], error["code"]) for error in result["userErrors"]] == [
        (["input", "payload", "ref"], "TOO_LARGE")
    ]
    assert "subject (from /ref)" in result["userErrors"][0]["message"]
    assert await counts(services) == (0, 0, 0)


# --- updates of the schema ------------------------------------------------------------


async def test_an_operators_update_is_seen_by_the_next_publish_and_spares_past_events(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given an event published under the current schema, and one refused by it
    sample = order_status_sample()
    earlier = await publish(api, tenants, order_status_payload())
    assert (await publish(api, tenants, order_status_payload(order_status="shipped")))["userErrors"]

    # When an operator adds "shipped" to the statuses, and makes a new field required
    schema = order_status_schema()
    schema["properties"]["order_status"]["oneOf"].append(
        {"const": "shipped", "description": "Prints are in the mail."}
    )
    schema["required"].append("tracking_number")
    await add_webhook_type(
        services,
        "ORDER_STATUS",
        schema=schema,
        sample=sample | {"tracking_number": "1Z999"},
        subject_pointer="/order_id",
        status_pointer="/order_status",
    )

    # Then the same API process accepts the new status at once, and refuses what the
    # new schema refuses
    shipped = order_status_payload(order_status="shipped", tracking_number="1Z999")
    assert (await publish(api, tenants, shipped))["userErrors"] == []
    refused = await publish(api, tenants, order_status_payload())
    assert [error["message"] for error in refused["userErrors"]] == [
        '/: missing required field "tracking_number"'
    ]
    # ...and the event published before is untouched
    found = await api.data(EVENT, {"id": earlier["event"]["id"]}, key=tenants.key_a)
    assert found["event"]["payload"] == order_status_payload()
