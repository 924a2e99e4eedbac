-- Seams between issue 17's parts, found by trying them together as an operator:
--
-- 1. Operator events' idempotency keys are derived from their cause
--    ("DELIVERY_FAILED:<delivery>:<cycle>") and shared one namespace per company with the order system's keys, so a publisher that
--    published first with such a key (it reads every delivery id) silenced that operator
--    event for good: its insert found the key taken and emitted nothing. Each kind of event
--    now has its own unique index, the order system's keys one, the service's the other.
-- 2. The publisher's role reads every company's events (0003), and an operator event's
--    payload names the subscription's callback URL, query string included, which the role
--    may not read from subscriptions (0009). It now reads neither operator events nor their
--    deliveries; the API's PUBLISHER key thus finds them missing.
CREATE UNIQUE INDEX events_idempotency_published ON events (company_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL
      AND webhook_key NOT IN ('DELIVERY_FAILED', 'SUBSCRIPTION_DEACTIVATED',
                              'SUBSCRIPTION_RECOVERED');
CREATE UNIQUE INDEX events_idempotency_operator ON events (company_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL
      AND webhook_key IN ('DELIVERY_FAILED', 'SUBSCRIPTION_DEACTIVATED',
                          'SUBSCRIPTION_RECOVERED');
DROP INDEX events_idempotency;

CREATE POLICY publisher_reads_no_operator_events ON events AS RESTRICTIVE FOR SELECT
    TO webhooks_publisher
    USING (webhook_key NOT IN ('DELIVERY_FAILED', 'SUBSCRIPTION_DEACTIVATED',
                               'SUBSCRIPTION_RECOVERED'));
CREATE POLICY publisher_reads_no_operator_events ON deliveries AS RESTRICTIVE FOR SELECT
    TO webhooks_publisher
    USING (webhook_key NOT IN ('DELIVERY_FAILED', 'SUBSCRIPTION_DEACTIVATED',
                               'SUBSCRIPTION_RECOVERED'));

-- 3. An attempt traced with WEBHOOKS_SEND_TRACEPARENT on sends its span's traceparent, and
--    DeliveryAttempt.request showed every header sent but that one (and a subscription's
--    custom header of that name, which ours replaced, as if it had been sent). The value
--    sent is kept with the attempt; NULL when none was. The roles' rights on attempts are
--    table-wide for the worker and the API (0003); the publisher's are column by column
--    (0009) and do not include it, as they include no other part of a request.
ALTER TABLE delivery_attempts ADD COLUMN traceparent text;
