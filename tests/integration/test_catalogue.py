"""The webhook catalogue over GraphQL: each type's JSON Schema, sample, statuses with their
meanings, and where its subject is."""

from __future__ import annotations

from app.store.services import Services
from tests.catalogue import add_webhook_type, order_status_sample, order_status_schema
from tests.service import GraphQLClient, Tenants

TYPE_FIELDS = """
  key name description schema samplePayload subjectPointer statusPointer
  statuses { value description }
"""
WEBHOOK_TYPES = f"{{ webhookTypes {{ {TYPE_FIELDS} }} }}"
WEBHOOK_TYPE = f"query($key: String!) {{ webhookType(key: $key) {{ {TYPE_FIELDS} }} }}"
ORDER_STATUSES = [
    "ordered",
    "scheduled",
    "assembly",
    "notified",
    "completed",
    "hold",
    "cancelled",
    "submitted_cancel_onsite",
    "pending_appointment",
    "ready_to_schedule",
    "committed",
]


async def test_order_status_has_its_schema_sample_statuses_and_subject(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # When a company (and the order system) read the catalogue
    for key in (tenants.key_a, tenants.publisher):
        data = await api.data(WEBHOOK_TYPES, key=key)
        order_status = {item["key"]: item for item in data["webhookTypes"]}["ORDER_STATUS"]

        # Then ORDER_STATUS carries the operator's schema and sample as they are
        assert order_status["name"] == "Order Status"
        assert order_status["schema"] == order_status_schema()
        assert order_status["samplePayload"] == order_status_sample()
        # ...keys in the order the operator wrote them, as a person reads a catalogue
        assert list(order_status["schema"]) == list(order_status_schema())
        assert list(order_status["schema"]["properties"]) == list(
            order_status_schema()["properties"]
        )
        assert list(order_status["samplePayload"]) == list(order_status_sample())
        # ...its subject is the order id, and says so
        assert order_status["subjectPointer"] == "/order_id"
        assert "subject is the order id" in order_status["description"]
        # ...and every status value comes with its meaning, in the schema's order
        assert order_status["statusPointer"] == "/order_status"
        statuses = order_status["statuses"]
        assert [status["value"] for status in statuses] == ORDER_STATUSES
        assert all(status["description"] for status in statuses)
        meanings = {status["value"]: status["description"] for status in statuses}
        assert "Data Feed API" in meanings["notified"]


async def test_one_type_by_key_and_null_for_an_unknown_key(
    api: GraphQLClient, tenants: Tenants
) -> None:
    listed = await api.data(WEBHOOK_TYPES, key=tenants.key_a)
    [order_status] = [item for item in listed["webhookTypes"] if item["key"] == "ORDER_STATUS"]

    found = await api.data(WEBHOOK_TYPE, {"key": "ORDER_STATUS"}, key=tenants.key_a)
    missing = await api.data(WEBHOOK_TYPE, {"key": "ORDER_SHIPPED"}, key=tenants.key_a)

    assert found["webhookType"] == order_status
    assert missing["webhookType"] is None


async def test_statuses_of_a_plain_enum_and_none_without_a_status_field(
    api: GraphQLClient, services: Services, tenants: Tenants
) -> None:
    # Given a type whose status field is a plain enum, and one with no status or subject
    await add_webhook_type(
        services,
        "MEDIA_READY",
        schema={
            "type": "object",
            "properties": {
                "media": {"type": "object", "properties": {"state": {"enum": ["draft", "final"]}}}
            },
        },
        sample={"media": {"state": "final"}},
        status_pointer="/media/state",
    )
    await add_webhook_type(services, "NOTE_ADDED")

    # When the catalogue is read
    data = await api.data(WEBHOOK_TYPES, key=tenants.key_a)
    types = {item["key"]: item for item in data["webhookTypes"]}

    # Then the enum's values are the statuses, without meanings; the other has none
    assert types["MEDIA_READY"]["statuses"] == [
        {"value": "draft", "description": None},
        {"value": "final", "description": None},
    ]
    assert types["MEDIA_READY"]["statusPointer"] == "/media/state"
    assert types["NOTE_ADDED"]["statuses"] == []
    assert types["NOTE_ADDED"]["statusPointer"] is None
    assert types["NOTE_ADDED"]["subjectPointer"] is None


LISTED = "{ webhookTypes { key operatorEvent } }"


async def test_the_catalogue_lists_published_webhooks_first_then_operator_events(
    api: GraphQLClient, tenants: Tenants
) -> None:
    # When a company reads the catalogue (its portal's "new subscription" picks the first)
    listed = (await api.data(LISTED, key=tenants.key_a))["webhookTypes"]

    # Then what the order system publishes comes first, the service's own events last
    assert [(item["key"], item["operatorEvent"]) for item in listed] == [
        ("ORDER_STATUS", False),
        ("DELIVERY_FAILED", True),
        ("SUBSCRIPTION_DEACTIVATED", True),
        ("SUBSCRIPTION_RECOVERED", True),
    ]
