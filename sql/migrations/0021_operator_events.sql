-- Operator events (issue 17, part 2): three webhook types about a company's own
-- deliveries, emitted by the service itself through the same fan-out as publishEvent.
--
-- DELIVERY_FAILED           a delivery failed for good (all attempts used, 410, given up)
-- SUBSCRIPTION_DEACTIVATED  a subscription was deactivated (reason GONE or FAILING)
-- SUBSCRIPTION_RECOVERED    a failing subscription delivered successfully again
--
-- Each is emitted in the transaction that records its cause (app/delivery/operator_events.py),
-- with an idempotency key derived from the cause, so a crash loses none and a replayed job
-- emits none twice. None is ever emitted about a delivery of an operator-event type, nor
-- about a subscription to one (app/core/operator_events.py): they cannot loop.
--
-- The schemas and samples are exactly examples/catalogue/{delivery_failed,
-- subscription_deactivated,subscription_recovered}.{schema,sample}.json
-- (tests/acceptance/test_catalogue_cli.py checks that a put of those files changes nothing).

INSERT INTO webhook_types (key, name, description, subject_pointer, status_pointer,
                           payload_schema, sample_payload)
VALUES ('DELIVERY_FAILED', 'Delivery Failed',
        'Sent when a delivery of one of your subscriptions failed for good: all its attempts used, a 410 Gone answer, or given up on. The subject is the subscription id. An operator event: emitted by the service, never about a delivery of an operator event.',
        '/subscription_id', '/error_kind',
        $schema$
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://webhooks.planomatic.invalid/schemas/DELIVERY_FAILED.json",
  "title": "Delivery Failed",
  "description": "An operator event: a delivery of one of the company's subscriptions failed for good (all its attempts used, a 410 Gone answer, or given up on). The subject is the subscription id. Never emitted about a delivery of an operator event. Fields not listed here may be added at any time.",
  "type": "object",
  "required": [
    "subscription_id",
    "webhook",
    "callback_url",
    "delivery_id",
    "webhook_id",
    "event_id",
    "subject",
    "cycle",
    "attempt_count",
    "last_response_status",
    "error_kind",
    "last_attempt_at",
    "failed_at"
  ],
  "properties": {
    "subscription_id": {
      "type": "string",
      "format": "uuid",
      "description": "The subscription concerned (also the event's subject)."
    },
    "webhook": {
      "type": "string",
      "description": "The subscription's webhook type, e.g. ORDER_STATUS."
    },
    "callback_url": {
      "type": "string",
      "description": "The subscription's callback URL as the API shows it: without its API key parameters."
    },
    "delivery_id": {
      "type": "string",
      "format": "uuid",
      "description": "The delivery (its GraphQL id)."
    },
    "webhook_id": {
      "type": "string",
      "description": "The delivery's webhook-id header, msg_..."
    },
    "event_id": {
      "type": "string",
      "format": "uuid",
      "description": "The event delivered."
    },
    "subject": {
      "type": [
        "string",
        "null"
      ],
      "description": "The delivered event's subject (for ORDER_STATUS the order id)."
    },
    "cycle": {
      "type": "integer",
      "minimum": 1,
      "description": "The delivery's cycle: 1, then one more per redelivery."
    },
    "attempt_count": {
      "type": "integer",
      "minimum": 1,
      "description": "Attempts made in this cycle."
    },
    "last_response_status": {
      "type": [
        "integer",
        "null"
      ],
      "description": "The HTTP status of the last attempt; null when no complete response arrived."
    },
    "error_kind": {
      "description": "What went wrong with the last attempt.",
      "oneOf": [
        {
          "const": "HTTP_STATUS",
          "description": "The receiver answered with a 4xx or 5xx status."
        },
        {
          "const": "REDIRECT",
          "description": "The receiver answered with a 3xx status; redirects are never followed."
        },
        {
          "const": "TIMEOUT",
          "description": "The attempt took longer than the request timeout."
        },
        {
          "const": "CONNECTION",
          "description": "The connection was refused, reset or closed before a full response."
        },
        {
          "const": "TLS",
          "description": "The TLS handshake failed (e.g. the certificate did not verify)."
        },
        {
          "const": "DNS",
          "description": "The callback's host name did not resolve."
        },
        {
          "const": "BLOCKED",
          "description": "The callback's address is not one deliveries may reach."
        },
        {
          "const": "INVALID_RESPONSE",
          "description": "The answer was not valid HTTP."
        },
        {
          "const": "GIVEN_UP",
          "description": "The service gave up on the delivery (its job was lost too often)."
        },
        {
          "const": "OTHER",
          "description": "Anything else."
        }
      ]
    },
    "last_attempt_at": {
      "type": "string",
      "format": "date-time",
      "description": "When the last attempt started."
    },
    "failed_at": {
      "type": "string",
      "format": "date-time",
      "description": "When the delivery failed for good."
    }
  }
}
$schema$,
        $sample$
{
  "subscription_id": "5f0c2b9e-8d3a-4c51-9a7e-1b2c3d4e5f60",
  "webhook": "ORDER_STATUS",
  "callback_url": "https://hooks.acme.example/planomatic",
  "delivery_id": "0b6f7c1e-2a3d-4e5f-8a9b-c0d1e2f3a4b5",
  "webhook_id": "msg_2f1e0d9c8b7a69584736251403f2e1d0",
  "event_id": "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
  "subject": "332818",
  "cycle": 1,
  "attempt_count": 10,
  "last_response_status": 503,
  "error_kind": "HTTP_STATUS",
  "last_attempt_at": "2026-11-30T17:01:12.412Z",
  "failed_at": "2026-11-30T17:01:12.530Z"
}
$sample$);

INSERT INTO webhook_types (key, name, description, subject_pointer, status_pointer,
                           payload_schema, sample_payload)
VALUES ('SUBSCRIPTION_DEACTIVATED', 'Subscription Deactivated',
        'Sent when one of your subscriptions was deactivated: its endpoint answered 410 Gone (GONE), or every delivery to it failed for WEBHOOKS_DISABLE_AFTER_FAILING_SECONDS (FAILING). The subject is the subscription id. An operator event: emitted by the service, never about a subscription to an operator event.',
        '/subscription_id', '/reason',
        $schema$
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://webhooks.planomatic.invalid/schemas/SUBSCRIPTION_DEACTIVATED.json",
  "title": "Subscription Deactivated",
  "description": "An operator event: one of the company's subscriptions was deactivated, because its endpoint answered 410 Gone (reason GONE) or because every delivery to it failed for WEBHOOKS_DISABLE_AFTER_FAILING_SECONDS (reason FAILING). Reactivate it with updateWebhookSubscription(isActive: true). The subject is the subscription id. Never emitted about a subscription to an operator event. Fields not listed here may be added at any time.",
  "type": "object",
  "required": [
    "subscription_id",
    "webhook",
    "callback_url",
    "reason",
    "deactivated_at",
    "failing_since",
    "delivery_id",
    "webhook_id",
    "last_response_status"
  ],
  "properties": {
    "subscription_id": {
      "type": "string",
      "format": "uuid",
      "description": "The subscription concerned (also the event's subject)."
    },
    "webhook": {
      "type": "string",
      "description": "The subscription's webhook type, e.g. ORDER_STATUS."
    },
    "callback_url": {
      "type": "string",
      "description": "The subscription's callback URL as the API shows it: without its API key parameters."
    },
    "reason": {
      "description": "Why the subscription was deactivated.",
      "oneOf": [
        {
          "const": "GONE",
          "description": "Its endpoint answered 410 Gone."
        },
        {
          "const": "FAILING",
          "description": "Every delivery to it failed for WEBHOOKS_DISABLE_AFTER_FAILING_SECONDS (default five days)."
        }
      ]
    },
    "deactivated_at": {
      "type": "string",
      "format": "date-time",
      "description": "When it was deactivated."
    },
    "failing_since": {
      "type": [
        "string",
        "null"
      ],
      "format": "date-time",
      "description": "When the first delivery that failed for good since its last success ended; null if none did (a 410 on a first failure)."
    },
    "delivery_id": {
      "type": [
        "string",
        "null"
      ],
      "format": "uuid",
      "description": "GONE: the delivery answered with 410; FAILING: null."
    },
    "webhook_id": {
      "type": [
        "string",
        "null"
      ],
      "description": "GONE: that delivery's webhook-id; FAILING: null."
    },
    "last_response_status": {
      "type": [
        "integer",
        "null"
      ],
      "description": "GONE: 410; FAILING: null."
    }
  }
}
$schema$,
        $sample$
{
  "subscription_id": "5f0c2b9e-8d3a-4c51-9a7e-1b2c3d4e5f60",
  "webhook": "ORDER_STATUS",
  "callback_url": "https://hooks.acme.example/planomatic",
  "reason": "GONE",
  "deactivated_at": "2026-11-30T17:01:12.530Z",
  "failing_since": "2026-11-30T16:12:40.018Z",
  "delivery_id": "0b6f7c1e-2a3d-4e5f-8a9b-c0d1e2f3a4b5",
  "webhook_id": "msg_2f1e0d9c8b7a69584736251403f2e1d0",
  "last_response_status": 410
}
$sample$);

INSERT INTO webhook_types (key, name, description, subject_pointer, status_pointer,
                           payload_schema, sample_payload)
VALUES ('SUBSCRIPTION_RECOVERED', 'Subscription Recovered',
        'Sent when a failing subscription of yours delivered successfully again (failing: one of its deliveries failed for good since its last successful attempt). The subject is the subscription id. An operator event: emitted by the service, never about a subscription to an operator event.',
        '/subscription_id', NULL,
        $schema$
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://webhooks.planomatic.invalid/schemas/SUBSCRIPTION_RECOVERED.json",
  "title": "Subscription Recovered",
  "description": "An operator event: a failing subscription of the company delivered successfully again. A subscription is failing from the moment one of its deliveries fails for good until the next successful attempt to it; that attempt's delivery is the one named here. The subject is the subscription id. Never emitted about a subscription to an operator event. Fields not listed here may be added at any time.",
  "type": "object",
  "required": [
    "subscription_id",
    "webhook",
    "callback_url",
    "delivery_id",
    "webhook_id",
    "event_id",
    "subject",
    "cycle",
    "attempt_count",
    "last_response_status",
    "failing_since",
    "recovered_at"
  ],
  "properties": {
    "subscription_id": {
      "type": "string",
      "format": "uuid",
      "description": "The subscription concerned (also the event's subject)."
    },
    "webhook": {
      "type": "string",
      "description": "The subscription's webhook type, e.g. ORDER_STATUS."
    },
    "callback_url": {
      "type": "string",
      "description": "The subscription's callback URL as the API shows it: without its API key parameters."
    },
    "delivery_id": {
      "type": "string",
      "format": "uuid",
      "description": "The delivery (its GraphQL id)."
    },
    "webhook_id": {
      "type": "string",
      "description": "The delivery's webhook-id header, msg_..."
    },
    "event_id": {
      "type": "string",
      "format": "uuid",
      "description": "The event delivered."
    },
    "subject": {
      "type": [
        "string",
        "null"
      ],
      "description": "The delivered event's subject (for ORDER_STATUS the order id)."
    },
    "cycle": {
      "type": "integer",
      "minimum": 1,
      "description": "The delivery's cycle: 1, then one more per redelivery."
    },
    "attempt_count": {
      "type": "integer",
      "minimum": 1,
      "description": "Attempts made in this cycle."
    },
    "last_response_status": {
      "type": [
        "integer",
        "null"
      ],
      "description": "The HTTP status of the last attempt; null when no complete response arrived."
    },
    "failing_since": {
      "type": "string",
      "format": "date-time",
      "description": "When the first delivery that failed for good since the subscription's previous success ended."
    },
    "recovered_at": {
      "type": "string",
      "format": "date-time",
      "description": "When the successful attempt started."
    }
  }
}
$schema$,
        $sample$
{
  "subscription_id": "5f0c2b9e-8d3a-4c51-9a7e-1b2c3d4e5f60",
  "webhook": "ORDER_STATUS",
  "callback_url": "https://hooks.acme.example/planomatic",
  "delivery_id": "4c3b2a19-0f8e-4d7c-b6a5-948372615041",
  "webhook_id": "msg_7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1",
  "event_id": "1e2d3c4b-5a69-4788-9796-a5b4c3d2e1f0",
  "subject": "332907",
  "cycle": 1,
  "attempt_count": 3,
  "last_response_status": 200,
  "failing_since": "2026-11-30T17:01:12.530Z",
  "recovered_at": "2026-11-30T18:14:03.221Z"
}
$sample$);

-- failing_since: when the first delivery of the subscription that failed for good since its
-- last successful attempt ended; NULL while it is not failing. Set (mark_failing) in the
-- transaction recording a delivery's last failed attempt, cleared (clear_failing) in the
-- one recording the next successful attempt, which emits SUBSCRIPTION_RECOVERED
-- (sql/queries/attempts.sql).
ALTER TABLE subscriptions ADD COLUMN failing_since timestamptz;

-- The worker emits operator events: it inserts their events, deliveries and, for
-- subscriptions ordered per subject, the subject queues' rows. Those INSERT rights are
-- confined to the three operator types by restrictive policies, so the worker still
-- cannot create an ORDER_STATUS event or a delivery of one.
GRANT INSERT ON events, deliveries, subject_queues TO webhooks_worker;

CREATE POLICY worker_emits_operator_events_only ON events AS RESTRICTIVE FOR INSERT
    TO webhooks_worker
    WITH CHECK (webhook_key IN ('DELIVERY_FAILED', 'SUBSCRIPTION_DEACTIVATED',
                                'SUBSCRIPTION_RECOVERED'));
CREATE POLICY worker_emits_operator_events_only ON deliveries AS RESTRICTIVE FOR INSERT
    TO webhooks_worker
    WITH CHECK (webhook_key IN ('DELIVERY_FAILED', 'SUBSCRIPTION_DEACTIVATED',
                                'SUBSCRIPTION_RECOVERED'));
-- ... and the order system may not forge them (publishEvent refuses them first, as a user
-- error; this holds even if that check were forgotten).
CREATE POLICY publisher_publishes_no_operator_events ON events AS RESTRICTIVE FOR INSERT
    TO webhooks_publisher
    WITH CHECK (webhook_key NOT IN ('DELIVERY_FAILED', 'SUBSCRIPTION_DEACTIVATED',
                                    'SUBSCRIPTION_RECOVERED'));
