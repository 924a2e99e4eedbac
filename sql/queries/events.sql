-- insert_event --
-- Record a published event; returns nothing when its idempotency key was used before by
-- a published event (operator events' keys are apart, migration 0024).
INSERT INTO events (id, company_id, webhook_key, subject, payload, idempotency_key, is_test,
                    body, created_at, traceparent)
VALUES (%(id)s, %(company_id)s, %(webhook_key)s, %(subject)s, %(payload)s,
        %(idempotency_key)s, %(is_test)s, %(body)s, %(created_at)s, %(traceparent)s)
ON CONFLICT (company_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL
      AND webhook_key NOT IN ('DELIVERY_FAILED', 'SUBSCRIPTION_DEACTIVATED', 'SUBSCRIPTION_RECOVERED')
    DO NOTHING
RETURNING id, company_id, webhook_key, subject, payload, idempotency_key, is_test, created_at;

-- get_event_by_idempotency_key --
-- The event first published with this key, and which parts of it a new request repeats:
-- the webhook, the subject (NULL equals NULL) and the payload, compared as JSON values
-- (jsonb equality: key order and spacing do not count, 1 equals 1.0, true is not 1).
SELECT id, company_id, webhook_key, subject, payload, idempotency_key, is_test, created_at,
       webhook_key = %(webhook_key)s AS same_webhook,
       subject IS NOT DISTINCT FROM %(subject)s AS same_subject,
       payload = %(payload)s AS same_payload
FROM events
WHERE company_id = %(company_id)s AND idempotency_key = %(idempotency_key)s
  AND webhook_key NOT IN ('DELIVERY_FAILED', 'SUBSCRIPTION_DEACTIVATED', 'SUBSCRIPTION_RECOVERED');

-- get_event --
-- One event, confined to a company unless company_id is NULL (publisher).
SELECT id, company_id, webhook_key, subject, payload, idempotency_key, is_test, created_at
FROM events
WHERE id = %(id)s AND (%(company_id)s::text IS NULL OR company_id = %(company_id)s);

-- get_events --
-- Events by id (DataLoader for deliveries), confined to a company unless company_id is NULL.
SELECT id, company_id, webhook_key, subject, payload, idempotency_key, is_test, created_at
FROM events
WHERE id = ANY(%(ids)s) AND (%(company_id)s::text IS NULL OR company_id = %(company_id)s);

-- list_events --
-- One page of events, newest first (keyset), confined to a company unless NULL.
SELECT id, company_id, webhook_key, subject, payload, idempotency_key, is_test, created_at
FROM events
WHERE (%(company_id)s::text IS NULL OR company_id = %(company_id)s)
  AND (%(webhook_key)s::text IS NULL OR webhook_key = %(webhook_key)s)
  AND (%(subject)s::text IS NULL OR subject = %(subject)s)
  AND (%(created_after)s::timestamptz IS NULL OR created_at > %(created_after)s)
  AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
  AND (%(after_created_at)s::timestamptz IS NULL
       OR (created_at, id) < (%(after_created_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- event_bodies --
-- The delivered bytes of events by id (DataLoader for DeliveryAttempt.request), confined
-- to a company unless company_id is NULL; NULL once retention dropped them.
SELECT id, body FROM events
WHERE id = ANY(%(ids)s) AND (%(company_id)s::text IS NULL OR company_id = %(company_id)s);
