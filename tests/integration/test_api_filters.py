"""Content filters through the API: saved on subscriptions, honoured by the fan-out, tested
before saving, and refused at their place when malformed, with nothing written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.core.payload_filter import MAX_FILTER_BYTES, MAX_FILTER_DEPTH, MAX_FILTER_NODES
from app.store.services import Services
from tests.integration.test_api_subscriptions import sql
from tests.payloads import order_status_payload
from tests.receivers import Receiver
from tests.service import GraphQLClient, Tenants

CREATE = """
mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) {
    subscription { id filter description }
    userErrors { field code message }
  }
}"""
UPDATE = """
mutation($input: UpdateWebhookSubscriptionInput!) {
  updateWebhookSubscription(input: $input) {
    subscription { id filter description }
    userErrors { field code message }
  }
}"""
GET = "query($id: ID!) { webhookSubscription(id: $id) { id filter description } }"
PUBLISH = """
mutation($input: PublishEventInput!) {
  publishEvent(input: $input) {
    event { id deliveries { subscription { id } } }
    userErrors { field code }
  }
}"""
SEND_TEST_EVENT = """
mutation($id: ID!) {
  sendTestEvent(subscriptionId: $id) { event { deliveries { id } } userErrors { code } }
}"""
TEST_FILTER = """
query($filter: JSON, $subscriptionId: ID, $payload: JSON, $webhook: String) {
  testSubscriptionFilter(
    filter: $filter, subscriptionId: $subscriptionId, payload: $payload, webhook: $webhook
  ) {
    matched reasons mismatches { clause reason } userErrors { field code message }
  }
}"""
SAMPLE = "query { webhookTypes { key samplePayload } }"

ONLY_NOTIFIED = {"order_status": "notified"}
NOTIFIED_OR_COMPLETED = {"order_status": {"$in": ["notified", "completed"]}}


async def create(
    api: GraphQLClient, key: str, path: str = "/hook", **fields: Any
) -> dict[str, Any]:
    data = await api.data(
        CREATE,
        {
            "input": {
                "webhook": "ORDER_STATUS",
                "callbackUrl": f"http://127.0.0.1:9{path}",
                "notificationEmail": "ops@example.com",
                **fields,
            }
        },
        key=key,
    )
    payload: dict[str, Any] = data["createWebhookSubscription"]
    return payload


async def update(api: GraphQLClient, key: str, **fields: Any) -> dict[str, Any]:
    data = await api.data(UPDATE, {"input": fields}, key=key)
    payload: dict[str, Any] = data["updateWebhookSubscription"]
    return payload


async def publish(api: GraphQLClient, tenants: Tenants, **fields: Any) -> set[str]:
    """Publish an ORDER_STATUS event for company A; returns the subscriptions it reached."""
    data = await api.data(
        PUBLISH,
        {
            "input": {
                "companyId": tenants.a,
                "webhook": "ORDER_STATUS",
                "payload": order_status_payload(**fields),
            }
        },
        key=tenants.publisher,
    )
    assert data["publishEvent"]["userErrors"] == []
    return {item["subscription"]["id"] for item in data["publishEvent"]["event"]["deliveries"]}


async def tried(api: GraphQLClient, key: str, **variables: Any) -> dict[str, Any]:
    data = await api.data(TEST_FILTER, variables, key=key)
    result: dict[str, Any] = data["testSubscriptionFilter"]
    return result


async def stored(services: Services, subscription_id: str) -> tuple[Any, str | None]:
    [(document, path)] = await sql(
        services,
        "SELECT filter, filter_path::text FROM subscriptions WHERE id = %s",
        subscription_id,
    )
    return document, path


# --- saving ------------------------------------------------------------------------------


async def test_a_filter_is_saved_compiled_and_shown_back(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    created = await create(api, tenants.key_a, filter=NOTIFIED_OR_COMPLETED)

    subscription = created["subscription"]
    assert created["userErrors"] == []
    assert subscription["filter"] == NOTIFIED_OR_COMPLETED
    read = await api.data(GET, {"id": subscription["id"]}, key=tenants.key_a)
    assert read["webhookSubscription"]["filter"] == NOTIFIED_OR_COMPLETED
    document, path = await stored(services, subscription["id"])
    assert document == NOTIFIED_OR_COMPLETED
    assert path is not None and '"order_status"' in path


INLINE = """
mutation {
  createWebhookSubscription(input: {
    webhook: "ORDER_STATUS", callbackUrl: "http://127.0.0.1:9/inline",
    notificationEmail: "ops@example.com", filter: {order_status: "notified"}
  }) { subscription { filter } userErrors { field code } }
}"""


async def test_a_simple_filter_can_be_written_in_the_document(
    api: GraphQLClient, tenants: Tenants
) -> None:
    data = await api.data(INLINE, key=tenants.key_a)

    assert data["createWebhookSubscription"] == {
        "subscription": {"filter": ONLY_NOTIFIED},
        "userErrors": [],
    }


async def test_update_replaces_keeps_or_clears_the_filter(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given a subscription without a filter
    subscription_id = (await create(api, tenants.key_a))["subscription"]["id"]
    assert (await stored(services, subscription_id)) == (None, None)

    # When a filter is set, then another field is changed alone, then the filter is cleared
    set_to = await update(api, tenants.key_a, id=subscription_id, filter=ONLY_NOTIFIED)
    kept = await update(api, tenants.key_a, id=subscription_id, description="ops")
    cleared = await update(api, tenants.key_a, id=subscription_id, filter=None)

    # Then each answer shows the filter as it then was, and the compiled form follows it
    assert set_to["subscription"]["filter"] == ONLY_NOTIFIED
    assert kept["subscription"] == {
        "id": subscription_id,
        "filter": ONLY_NOTIFIED,
        "description": "ops",
    }
    assert cleared["subscription"]["filter"] is None
    assert (await stored(services, subscription_id)) == (None, None)


MALFORMED: dict[str, tuple[Any, list[str], str]] = {
    "unknown operator": ({"order_status": {"$regex": "^n"}}, ["order_status", "$regex"], "INVALID"),
    "wrong operand": ({"order_status": {"$in": "notified"}}, ["order_status", "$in"], "INVALID"),
    "wrong item": ({"order_id": {"$in": [1, [2]]}}, ["order_id", "$in", "1"], "INVALID"),
    "mixed keys": ({"client": {"$exists": True, "email": "x"}}, ["client"], "INVALID"),
    "empty segment": ({"client..email": "x"}, ["client..email"], "INVALID"),
    "nested object": ({"client": {"email": "x"}}, ["client"], "INVALID"),
    "empty $or": ({"$or": []}, ["$or"], "INVALID"),
    "not an object": (["notified"], [], "INVALID"),
    "too deep": (
        {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"a": 1}}}}}}}}},
        ["$not"] * MAX_FILTER_DEPTH,
        "TOO_LARGE",
    ),
    "too many values": ({f"k{n}": n for n in range(MAX_FILTER_NODES)}, [], "TOO_LARGE"),
    "too many bytes": ({"order_notes": "x" * MAX_FILTER_BYTES}, [], "TOO_LARGE"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_filter_is_refused_at_its_place_and_nothing_is_written(
    api: GraphQLClient, services: Services, tenants: Tenants, case: str
) -> None:
    document, where, code = MALFORMED[case]
    subscription_id = (await create(api, tenants.key_a, "/kept", filter=ONLY_NOTIFIED))[
        "subscription"
    ]["id"]
    [(before,)] = await sql(services, "SELECT count(*) FROM subscriptions")

    # When a subscription is created with it, and the existing one updated with it
    # (together with a valid change)
    created = await create(api, tenants.key_a, "/new", filter=document)
    updated = await update(
        api, tenants.key_a, id=subscription_id, description="changed", filter=document
    )

    # Then both are refused at the filter's offending place, and nothing was written
    for refused in (created, updated):
        assert refused["subscription"] is None
        assert [(error["field"], error["code"]) for error in refused["userErrors"]] == [
            (["input", "filter", *where], code)
        ]
    [(after,)] = await sql(services, "SELECT count(*) FROM subscriptions")
    assert after == before
    read = await api.data(GET, {"id": subscription_id}, key=tenants.key_a)
    assert read["webhookSubscription"] == {
        "id": subscription_id,
        "filter": ONLY_NOTIFIED,
        "description": None,
    }


async def test_a_refusal_names_the_offending_clause(api: GraphQLClient, tenants: Tenants) -> None:
    refused = await create(api, tenants.key_a, filter={"order_status": {"$in": "notified"}})

    [error] = refused["userErrors"]
    assert error["field"] == ["input", "filter", "order_status", "$in"]
    assert "$in takes a non-empty array" in error["message"]


# --- the fan-out ------------------------------------------------------------------------


async def test_an_event_reaches_only_the_subscriptions_whose_filter_matches(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # Given one company's subscriptions: unfiltered, only notified, notified or completed,
    # and one excluding Denver orders
    everything = (await create(api, tenants.key_a, "/all"))["subscription"]["id"]
    notified = (await create(api, tenants.key_a, "/notified", filter=ONLY_NOTIFIED))[
        "subscription"
    ]["id"]
    either = (await create(api, tenants.key_a, "/either", filter=NOTIFIED_OR_COMPLETED))[
        "subscription"
    ]["id"]
    not_boulder = (
        await create(
            api,
            tenants.key_a,
            "/not-boulder",
            filter={"property_info.address.city": {"$ne": "Boulder"}},
        )
    )["subscription"]["id"]

    # When events of three statuses are published
    scheduled = await publish(api, tenants, order_status="scheduled")
    notified_event = await publish(api, tenants, order_status="notified")
    completed = await publish(api, tenants, order_status="completed")

    # Then each reached exactly the subscriptions whose filter its payload passes
    assert scheduled == {everything}
    assert notified_event == {everything, notified, either}
    assert completed == {everything, either}
    assert not_boulder not in scheduled | notified_event | completed


async def test_a_filtered_subscription_receives_only_what_matches(
    api: GraphQLClient, tenants: Tenants, worker: asyncio.Task[None]
) -> None:
    with Receiver() as receiver:
        # Given two subscriptions of one company, one filtered to completed orders
        await create(api, tenants.key_a, filter=None, callbackUrl=receiver.url_for("/all"))
        await create(
            api,
            tenants.key_a,
            filter={"order_status": "completed"},
            callbackUrl=receiver.url_for("/completed"),
        )

        # When one order is scheduled, then completed
        await publish(api, tenants, order_status="scheduled", order_id=7)
        await publish(api, tenants, order_status="completed", order_id=7)

        # Then the unfiltered receiver gets both, the filtered one the completion only
        everything = await receiver.wait_for_async(2, path="/all")
        [completed] = await receiver.wait_for_async(1, path="/completed")
        await asyncio.sleep(0.3)
        assert len(receiver.requests_to("/completed")) == 1
        assert sorted(request.json()["data"]["order_status"] for request in everything) == [
            "completed",
            "scheduled",
        ]
        assert completed.json()["data"]["order_status"] == "completed"


async def test_a_test_event_ignores_the_filter(api: GraphQLClient, tenants: Tenants) -> None:
    # Given a subscription whose filter its sample payload can never pass
    subscription_id = (
        await create(api, tenants.key_a, filter={"order_status": {"$exists": False}, "x": 1})
    )["subscription"]["id"]

    # When a test event is sent to it
    data = await api.data(SEND_TEST_EVENT, {"id": subscription_id}, key=tenants.key_a)

    # Then it is delivered anyway: it was asked for by name
    assert data["sendTestEvent"]["userErrors"] == []
    assert len(data["sendTestEvent"]["event"]["deliveries"]) == 1


# --- testing a filter --------------------------------------------------------------------


async def test_a_filter_is_tested_on_a_given_payload(api: GraphQLClient, tenants: Tenants) -> None:
    scheduled = order_status_payload(order_status="scheduled")
    notified = order_status_payload(order_status="notified")

    miss = await tried(api, tenants.key_a, filter=NOTIFIED_OR_COMPLETED, payload=scheduled)
    hit = await tried(api, tenants.key_a, filter=NOTIFIED_OR_COMPLETED, payload=notified)

    reason = 'order_status is "scheduled", not one of ["notified", "completed"]'
    assert miss == {
        "matched": False,
        "reasons": [reason],
        "mismatches": [{"clause": ["order_status", "$in"], "reason": reason}],
        "userErrors": [],
    }
    assert hit["matched"] is True and hit["mismatches"] == [] and hit["userErrors"] == []
    assert hit["reasons"] == ['order_status is "notified", one of ["notified", "completed"]']


async def test_without_a_payload_the_webhooks_sample_is_used(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # Given the sample payload of ORDER_STATUS, and filters on one of its fields
    [sample] = [
        webhook["samplePayload"]
        for webhook in (await api.data(SAMPLE, key=tenants.key_a))["webhookTypes"]
        if webhook["key"] == "ORDER_STATUS"
    ]
    field, value = next((k, v) for k, v in sample.items() if isinstance(v, str | int))

    # When each is tested without a payload
    same = await tried(api, tenants.key_a, filter={field: value})
    other = await tried(api, tenants.key_a, filter={field: {"$ne": value}})

    # Then the sample decides
    assert (same["matched"], other["matched"]) == (True, False)


async def test_a_saved_subscriptions_filter_is_tested_as_the_fan_out_would(
    api: GraphQLClient, tenants: Tenants
) -> None:
    filtered = (await create(api, tenants.key_a, "/f", filter=ONLY_NOTIFIED))["subscription"]["id"]
    unfiltered = (await create(api, tenants.key_a, "/u"))["subscription"]["id"]
    scheduled = order_status_payload(order_status="scheduled")

    miss = await tried(api, tenants.key_a, subscriptionId=filtered, payload=scheduled)
    hit = await tried(
        api,
        tenants.key_a,
        subscriptionId=filtered,
        payload=order_status_payload(order_status="notified"),
    )
    everything = await tried(api, tenants.key_a, subscriptionId=unfiltered, payload=scheduled)

    assert miss["matched"] is False
    assert miss["mismatches"] == [
        {"clause": ["order_status"], "reason": 'order_status is "scheduled", not "notified"'}
    ]
    assert hit["matched"] is True
    assert everything["matched"] is True and everything["reasons"] == [
        "The subscription has no filter: it receives every event."
    ]


@pytest.mark.parametrize(
    ("variables", "field", "code"),
    [
        ({"filter": {"order_status": {"$in": "x"}}}, ["filter", "order_status", "$in"], "INVALID"),
        ({"filter": "notified"}, ["filter"], "INVALID"),
        ({}, ["filter"], "REQUIRED"),
        (
            {"filter": ONLY_NOTIFIED, "subscriptionId": "00000000-0000-0000-0000-000000000000"},
            ["filter"],
            "INVALID",
        ),
        (
            {"subscriptionId": "00000000-0000-0000-0000-000000000000"},
            ["subscriptionId"],
            "NOT_FOUND",
        ),
        ({"subscriptionId": "not-an-id"}, ["subscriptionId"], "NOT_FOUND"),
        ({"filter": ONLY_NOTIFIED, "webhook": "NOPE"}, ["webhook"], "UNKNOWN_WEBHOOK"),
        ({"filter": ONLY_NOTIFIED, "payload": ["not", "an", "object"]}, ["payload"], "INVALID"),
    ],
)
async def test_bad_arguments_of_the_test_are_user_errors(
    api: GraphQLClient, tenants: Tenants, variables: dict[str, Any], field: list[str], code: str
) -> None:
    result = await tried(api, tenants.key_a, **variables)

    assert result["matched"] is None
    assert [(error["field"], error["code"]) for error in result["userErrors"]] == [(field, code)]


async def test_the_publisher_can_neither_test_nor_read_filters(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # Given a filtered subscription with a delivery the publisher can follow
    await create(api, tenants.key_a, filter={"order_status": {"$ne": "hold"}})
    await publish(api, tenants)

    # When the publisher tests a filter, and reads the subscription's
    tested = await api.post(TEST_FILTER, {"filter": ONLY_NOTIFIED}, key=tenants.publisher)
    read = await api.post(
        "query { deliveries { nodes { subscription { id filter } } } }", key=tenants.publisher
    )

    # Then both are FORBIDDEN (the filter, a nullable field, is null), with no filter shown
    assert tested["data"] is None
    assert read["data"]["deliveries"]["nodes"][0]["subscription"]["filter"] is None
    for refused in (tested, read):
        assert {error["extensions"]["code"] for error in refused["errors"]} == {"FORBIDDEN"}
    assert "hold" not in str(read)
