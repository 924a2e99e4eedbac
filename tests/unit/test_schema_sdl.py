"""The GraphQL schema: the checked-in SDL matches the code, and the code keeps the contract.

``schema/schema.graphql`` is what clients and reviewers read; it must be what the code
serves. The contract (the API promised to front-ends, partners and the order system)
is embedded below as the list of its members, so this test runs in any clone.
"""

from __future__ import annotations

import difflib

from graphql import parse, print_ast
from graphql.language import ast

from schema.root import SDL_PATH, export_sdl

REGENERATE = "webhooks schema > schema/schema.graphql"

# Every type, field (with its type), argument (with its type and contract default),
# input field and enum value of the contract, one per line, in the contract's order.
# Generated from the contract's SDL with `members()` below.
CONTRACT_MEMBERS = """
scalar DateTime
scalar JSON
type Query
Query.viewer: Viewer!
Query.webhookTypes: [WebhookType!]!
Query.webhookSubscriptions: WebhookSubscriptionConnection!
Query.webhookSubscriptions(first: Int = 50)
Query.webhookSubscriptions(after: String)
Query.webhookSubscriptions(filter: WebhookSubscriptionFilter)
Query.webhookSubscription: WebhookSubscription
Query.webhookSubscription(id: ID!)
Query.events: EventConnection!
Query.events(first: Int = 50)
Query.events(after: String)
Query.events(filter: EventFilter)
Query.event: Event
Query.event(id: ID!)
Query.deliveries: DeliveryConnection!
Query.deliveries(first: Int = 50)
Query.deliveries(after: String)
Query.deliveries(filter: DeliveryFilter)
Query.delivery: Delivery
Query.delivery(id: ID!)
type Mutation
Mutation.createWebhookSubscription: WebhookSubscriptionPayload!
Mutation.createWebhookSubscription(input: CreateWebhookSubscriptionInput!)
Mutation.updateWebhookSubscription: WebhookSubscriptionPayload!
Mutation.updateWebhookSubscription(input: UpdateWebhookSubscriptionInput!)
Mutation.deleteWebhookSubscription: DeleteWebhookSubscriptionPayload!
Mutation.deleteWebhookSubscription(id: ID!)
Mutation.rotateWebhookSubscriptionSecret: WebhookSubscriptionPayload!
Mutation.rotateWebhookSubscriptionSecret(id: ID!)
Mutation.sendTestEvent: PublishEventPayload!
Mutation.sendTestEvent(subscriptionId: ID!)
Mutation.redeliver: DeliveryPayload!
Mutation.redeliver(deliveryId: ID!)
Mutation.redeliverFailed: RedeliverFailedPayload!
Mutation.redeliverFailed(subscriptionId: ID!)
Mutation.redeliverFailed(since: DateTime!)
Mutation.publishEvent: PublishEventPayload!
Mutation.publishEvent(input: PublishEventInput!)
type Subscription
Subscription.deliveryUpdates: Delivery!
Subscription.deliveryUpdates(subscriptionId: ID)
Subscription.deliveryUpdates(subject: String)
enum ApiKeyRole
ApiKeyRole.COMPANY
ApiKeyRole.PUBLISHER
type Viewer
Viewer.role: ApiKeyRole!
Viewer.company: Company
type Company
Company.id: ID!
Company.name: String!
type WebhookType
WebhookType.key: String!
WebhookType.name: String!
WebhookType.description: String!
WebhookType.samplePayload: JSON!
type ApiKeyParam
ApiKeyParam.name: String!
ApiKeyParam.valueHint: String!
type WebhookSubscription
WebhookSubscription.id: ID!
WebhookSubscription.webhook: WebhookType!
WebhookSubscription.callbackUrl: String!
WebhookSubscription.notificationEmail: String!
WebhookSubscription.apiKeyParams: [ApiKeyParam!]!
WebhookSubscription.isActive: Boolean!
WebhookSubscription.description: String
WebhookSubscription.createdAt: DateTime!
WebhookSubscription.updatedAt: DateTime!
WebhookSubscription.deliveries: DeliveryConnection!
WebhookSubscription.deliveries(first: Int = 50)
WebhookSubscription.deliveries(after: String)
WebhookSubscription.deliveries(status: DeliveryStatus)
input ApiKeyParamInput
ApiKeyParamInput.name: String!
ApiKeyParamInput.value: String!
input CreateWebhookSubscriptionInput
CreateWebhookSubscriptionInput.webhook: String!
CreateWebhookSubscriptionInput.callbackUrl: String!
CreateWebhookSubscriptionInput.notificationEmail: String!
CreateWebhookSubscriptionInput.apiKeyParams: [ApiKeyParamInput!] = []
CreateWebhookSubscriptionInput.isActive: Boolean = true
CreateWebhookSubscriptionInput.description: String
input UpdateWebhookSubscriptionInput
UpdateWebhookSubscriptionInput.id: ID!
UpdateWebhookSubscriptionInput.callbackUrl: String
UpdateWebhookSubscriptionInput.notificationEmail: String
UpdateWebhookSubscriptionInput.apiKeyParams: [ApiKeyParamInput!]
UpdateWebhookSubscriptionInput.isActive: Boolean
UpdateWebhookSubscriptionInput.description: String
input WebhookSubscriptionFilter
WebhookSubscriptionFilter.webhook: String
WebhookSubscriptionFilter.isActive: Boolean
enum UserErrorCode
UserErrorCode.INVALID
UserErrorCode.REQUIRED
UserErrorCode.NOT_FOUND
UserErrorCode.DUPLICATE
UserErrorCode.UNKNOWN_WEBHOOK
UserErrorCode.FORBIDDEN_TARGET
UserErrorCode.TOO_LARGE
type UserError
UserError.field: [String!]
UserError.message: String!
UserError.code: UserErrorCode!
type WebhookSubscriptionPayload
WebhookSubscriptionPayload.subscription: WebhookSubscription
WebhookSubscriptionPayload.signingSecret: String
WebhookSubscriptionPayload.userErrors: [UserError!]!
type DeleteWebhookSubscriptionPayload
DeleteWebhookSubscriptionPayload.deletedId: ID
DeleteWebhookSubscriptionPayload.userErrors: [UserError!]!
input PublishEventInput
PublishEventInput.companyId: ID!
PublishEventInput.webhook: String!
PublishEventInput.payload: JSON!
PublishEventInput.subject: String
PublishEventInput.idempotencyKey: String
type PublishEventPayload
PublishEventPayload.event: Event
PublishEventPayload.userErrors: [UserError!]!
type Event
Event.id: ID!
Event.company: Company!
Event.webhook: WebhookType!
Event.subject: String
Event.payload: JSON!
Event.idempotencyKey: String
Event.createdAt: DateTime!
Event.deliveries: [Delivery!]!
input EventFilter
EventFilter.webhook: String
EventFilter.subject: String
EventFilter.createdAfter: DateTime
EventFilter.createdBefore: DateTime
enum DeliveryStatus
DeliveryStatus.PENDING
DeliveryStatus.RETRYING
DeliveryStatus.SUCCEEDED
DeliveryStatus.FAILED
DeliveryStatus.CANCELLED
type Delivery
Delivery.id: ID!
Delivery.webhookId: String!
Delivery.event: Event!
Delivery.subscription: WebhookSubscription!
Delivery.status: DeliveryStatus!
Delivery.attemptCount: Int!
Delivery.maxAttempts: Int!
Delivery.nextAttemptAt: DateTime
Delivery.lastAttemptAt: DateTime
Delivery.lastResponseStatus: Int
Delivery.createdAt: DateTime!
Delivery.completedAt: DateTime
Delivery.attempts: [DeliveryAttempt!]!
type DeliveryAttempt
DeliveryAttempt.number: Int!
DeliveryAttempt.startedAt: DateTime!
DeliveryAttempt.durationMs: Int!
DeliveryAttempt.responseStatus: Int
DeliveryAttempt.responseBody: String
DeliveryAttempt.error: String
DeliveryAttempt.succeeded: Boolean!
input DeliveryFilter
DeliveryFilter.status: DeliveryStatus
DeliveryFilter.webhook: String
DeliveryFilter.subscriptionId: ID
DeliveryFilter.eventId: ID
DeliveryFilter.subject: String
DeliveryFilter.createdAfter: DateTime
DeliveryFilter.createdBefore: DateTime
type DeliveryPayload
DeliveryPayload.delivery: Delivery
DeliveryPayload.userErrors: [UserError!]!
type RedeliverFailedPayload
RedeliverFailedPayload.count: Int!
RedeliverFailedPayload.userErrors: [UserError!]!
type PageInfo
PageInfo.hasNextPage: Boolean!
PageInfo.endCursor: String
type WebhookSubscriptionEdge
WebhookSubscriptionEdge.cursor: String!
WebhookSubscriptionEdge.node: WebhookSubscription!
type WebhookSubscriptionConnection
WebhookSubscriptionConnection.edges: [WebhookSubscriptionEdge!]!
WebhookSubscriptionConnection.nodes: [WebhookSubscription!]!
WebhookSubscriptionConnection.pageInfo: PageInfo!
type EventEdge
EventEdge.cursor: String!
EventEdge.node: Event!
type EventConnection
EventConnection.edges: [EventEdge!]!
EventConnection.nodes: [Event!]!
EventConnection.pageInfo: PageInfo!
type DeliveryEdge
DeliveryEdge.cursor: String!
DeliveryEdge.node: Delivery!
type DeliveryConnection
DeliveryConnection.edges: [DeliveryEdge!]!
DeliveryConnection.nodes: [Delivery!]!
DeliveryConnection.pageInfo: PageInfo!
"""


def _default(node: ast.InputValueDefinitionNode) -> str:
    # An explicit `= null` default says the same as no default.
    if node.default_value is None or isinstance(node.default_value, ast.NullValueNode):
        return ""
    return " = " + print_ast(node.default_value)


def members(sdl: str) -> list[str]:
    """The members of an SDL document, one line each, in the format of CONTRACT_MEMBERS."""
    found: list[str] = []
    for node in parse(sdl).definitions:
        if isinstance(node, ast.ScalarTypeDefinitionNode):
            found.append(f"scalar {node.name.value}")
        elif isinstance(node, ast.EnumTypeDefinitionNode):
            name = node.name.value
            found.append(f"enum {name}")
            found += [f"{name}.{value.name.value}" for value in node.values or ()]
        elif isinstance(node, ast.InputObjectTypeDefinitionNode):
            name = node.name.value
            found.append(f"input {name}")
            found += [
                f"{name}.{field.name.value}: {print_ast(field.type)}{_default(field)}"
                for field in node.fields or ()
            ]
        elif isinstance(node, ast.ObjectTypeDefinitionNode):
            name = node.name.value
            found.append(f"type {name}")
            for field in node.fields or ():
                found.append(f"{name}.{field.name.value}: {print_ast(field.type)}")
                found += [
                    f"{name}.{field.name.value}"
                    f"({argument.name.value}: {print_ast(argument.type)}{_default(argument)})"
                    for argument in field.arguments or ()
                ]
    return found


def test_checked_in_sdl_is_what_the_code_serves() -> None:
    # Given the schema built from the code and the checked-in SDL file
    served = export_sdl()
    checked_in = SDL_PATH.read_text(encoding="utf-8") if SDL_PATH.exists() else ""

    # Then they are the same text
    if served != checked_in:
        diff = "".join(
            difflib.unified_diff(
                checked_in.splitlines(keepends=True),
                served.splitlines(keepends=True),
                "schema/schema.graphql (checked in)",
                "export_sdl() (code)",
                n=1,
            )
        )
        raise AssertionError(
            f"schema/schema.graphql is out of date; regenerate it with `{REGENERATE}`\n{diff}"
        )


def test_every_contract_member_exists() -> None:
    # Given the contract's members and the members of the schema the code serves
    required = CONTRACT_MEMBERS.strip().splitlines()
    served = set(members(export_sdl()))

    # When we look for each contract member (an argument the contract requires may be
    # optional now: relaxing an input breaks no client)
    missing = [line for line in required if line not in served and relaxed(line) not in served]

    # Then none is missing (the last gap, Subscription.deliveryUpdates, closed with the
    # websocket transport; a new one would need a reason in the closing note)
    assert not missing, (
        "the schema lost or changed contract members (renaming or removing one needs a "
        "reason in the issue's closing note):\n  " + "\n  ".join(missing)
    )


def relaxed(member: str) -> str | None:
    """A required argument's member made optional (``X.f(a: T!)`` -> ``X.f(a: T)``)."""
    if member.endswith("!)") and "(" in member and "=" not in member:
        return member[: -len("!)")] + ")"
    return None


def test_a_required_argument_may_be_relaxed_but_not_otherwise_changed() -> None:
    assert relaxed("Mutation.redeliverFailed(subscriptionId: ID!)") == (
        "Mutation.redeliverFailed(subscriptionId: ID)"
    )
    assert relaxed("Mutation.redeliverFailed: RedeliverFailedPayload!") is None
    assert relaxed("Query.deliveries(first: Int = 50)") is None


def test_members_reads_types_fields_arguments_defaults_and_enum_values() -> None:
    # Given a small SDL document
    sdl = """
    scalar JSON
    enum Colour { RED GREEN }
    input Paint { colour: Colour! = RED, note: String = null }
    type Query { paints(first: Int = 50, after: String): [Paint!]! }
    """

    # Then members() lists each part in the contract's line format
    assert members(sdl) == [
        "scalar JSON",
        "enum Colour",
        "Colour.RED",
        "Colour.GREEN",
        "input Paint",
        "Paint.colour: Colour! = RED",
        "Paint.note: String",
        "type Query",
        "Query.paints: [Paint!]!",
        "Query.paints(first: Int = 50)",
        "Query.paints(after: String)",
    ]


def test_the_signing_secret_is_only_ever_returned_by_create_and_rotate_payloads() -> None:
    # Given every field of the served schema
    fields = [
        line.split(": ", 1) for line in members(export_sdl()) if ": " in line and "(" not in line
    ]

    # Then the only string field named after a secret is the payload's signingSecret
    secret_fields = [
        name for name, kind in fields if "secret" in name.lower() and kind.startswith("String")
    ]
    assert secret_fields == ["WebhookSubscriptionPayload.signingSecret"]
