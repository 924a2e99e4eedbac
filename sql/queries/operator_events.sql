-- insert_operator_event --
-- Record an operator event (app/delivery/operator_events.py) in the transaction of its
-- cause. Returns nothing, writing nothing, when its idempotency key (derived from the
-- cause) was used before by an operator event (the order system's keys are apart, 0024),
-- so a replayed job emits nothing twice, or when the company has
-- no active subscription to its type: nobody would receive it, and a dead endpoint of a
-- company that never subscribed must not fill the events table.
INSERT INTO events (id, company_id, webhook_key, subject, payload, idempotency_key, is_test,
                    body, created_at, traceparent)
SELECT %(id)s, %(company_id)s, %(webhook_key)s, %(subject)s, %(payload)s,
       %(idempotency_key)s, false, %(body)s, %(created_at)s, %(traceparent)s
WHERE EXISTS (
    SELECT 1 FROM subscriptions s
    WHERE s.company_id = %(company_id)s AND s.webhook_key = %(webhook_key)s
      AND s.is_active AND s.deleted_at IS NULL
)
ON CONFLICT (company_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL
      AND webhook_key IN ('DELIVERY_FAILED', 'SUBSCRIPTION_DEACTIVATED', 'SUBSCRIPTION_RECOVERED')
    DO NOTHING
RETURNING id;
