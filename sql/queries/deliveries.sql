-- get_delivery --
-- One delivery, confined to a company unless company_id is NULL (publisher).
SELECT id, webhook_id, company_id, event_id, subscription_id, webhook_key, subject, status,
       cycle, attempt_count, max_attempts, next_attempt_at, last_attempt_at,
       last_response_status, created_at, completed_at, sequence
FROM deliveries
WHERE id = %(id)s AND (%(company_id)s::text IS NULL OR company_id = %(company_id)s);

-- list_deliveries --
-- One page of deliveries, newest first (keyset), confined to a company unless NULL.
SELECT id, webhook_id, company_id, event_id, subscription_id, webhook_key, subject, status,
       cycle, attempt_count, max_attempts, next_attempt_at, last_attempt_at,
       last_response_status, created_at, completed_at, sequence
FROM deliveries
WHERE (%(company_id)s::text IS NULL OR company_id = %(company_id)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(webhook_key)s::text IS NULL OR webhook_key = %(webhook_key)s)
  AND (%(subscription_id)s::uuid IS NULL OR subscription_id = %(subscription_id)s)
  AND (%(event_id)s::uuid IS NULL OR event_id = %(event_id)s)
  AND (%(subject)s::text IS NULL OR subject = %(subject)s)
  AND (%(created_after)s::timestamptz IS NULL OR created_at > %(created_after)s)
  AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
  AND (%(after_created_at)s::timestamptz IS NULL
       OR (created_at, id) < (%(after_created_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- deliveries_of_subscriptions --
-- One page of deliveries of each of several subscriptions (DataLoader), newest first
-- (keyset), confined to a company unless NULL: one index range scan per subscription.
SELECT d.id, d.webhook_id, d.company_id, d.event_id, d.subscription_id, d.webhook_key,
       d.subject, d.status, d.cycle, d.attempt_count, d.max_attempts, d.next_attempt_at,
       d.last_attempt_at, d.last_response_status, d.created_at, d.completed_at, d.sequence
FROM unnest(%(subscription_ids)s::uuid[]) AS s(id)
CROSS JOIN LATERAL (
    SELECT * FROM deliveries
    WHERE subscription_id = s.id
      AND (%(company_id)s::text IS NULL OR company_id = %(company_id)s)
      AND (%(status)s::text IS NULL OR status = %(status)s)
      AND (%(after_created_at)s::timestamptz IS NULL
           OR (created_at, id) < (%(after_created_at)s::timestamptz, %(after_id)s::uuid))
    ORDER BY created_at DESC, id DESC
    LIMIT %(limit)s
) d
ORDER BY d.subscription_id, d.created_at DESC, d.id DESC;

-- deliveries_of_events --
-- The deliveries of several events (DataLoader), oldest first, confined to a company unless
-- company_id is NULL.
SELECT id, webhook_id, company_id, event_id, subscription_id, webhook_key, subject, status,
       cycle, attempt_count, max_attempts, next_attempt_at, last_attempt_at,
       last_response_status, created_at, completed_at, sequence
FROM deliveries
WHERE event_id = ANY(%(event_ids)s)
  AND (%(company_id)s::text IS NULL OR company_id = %(company_id)s)
ORDER BY created_at, id;

-- attempts_of_deliveries --
-- The attempts of several deliveries (DataLoader), oldest first.
SELECT delivery_id, cycle, number, started_at, duration_ms, response_status, response_body,
       error, succeeded, url
FROM delivery_attempts
WHERE delivery_id = ANY(%(delivery_ids)s)
ORDER BY delivery_id, cycle, number;

-- sent_deliveries --
-- What the requests of several deliveries' attempts share (DataLoader for
-- DeliveryAttempt.request, read only when asked for): the webhook-id and number they sent,
-- and the event whose body they carried, if retention has not dropped it; confined to a
-- company unless NULL.
SELECT d.id, d.webhook_id, d.sequence, d.event_id, e.body IS NOT NULL AS body_kept
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.id = ANY(%(ids)s) AND (%(company_id)s::text IS NULL OR d.company_id = %(company_id)s);

-- sent_headers_of_deliveries --
-- The record of the headers each attempt of several deliveries sent (migration 0018),
-- for the attempts that sent any; confined to a company unless NULL.
SELECT delivery_id, cycle, number, webhook_timestamp, signature, user_agent, header_names,
       traceparent
FROM delivery_attempts
WHERE delivery_id = ANY(%(ids)s) AND webhook_timestamp IS NOT NULL
  AND (%(company_id)s::text IS NULL OR company_id = %(company_id)s);

-- restart_delivery --
-- Start a fresh cycle of attempts for a finished delivery of a live, active subscription.
UPDATE deliveries d SET
    cycle = d.cycle + 1,
    status = 'PENDING',
    attempt_count = 0,
    next_attempt_at = now(),
    completed_at = NULL
FROM subscriptions s, events e
WHERE d.id = %(id)s AND d.company_id = %(company_id)s
  AND d.status IN ('SUCCEEDED', 'FAILED', 'CANCELLED')
  AND s.id = d.subscription_id AND s.is_active AND s.deleted_at IS NULL
  AND e.id = d.event_id AND e.body IS NOT NULL
RETURNING d.id, d.cycle;

-- failed_deliveries_since --
-- A batch of a company's FAILED deliveries created at or after a moment, of one
-- subscription or (subscription_id NULL) of all, oldest first (keyset by creation time
-- and id, the order of deliveries_company_status and deliveries_subscription_page read
-- backwards: a batch starts where the last one ended, not from the start again).
SELECT id, created_at FROM deliveries
WHERE company_id = %(company_id)s
  AND (%(subscription_id)s::uuid IS NULL OR subscription_id = %(subscription_id)s)
  AND status = 'FAILED' AND created_at >= %(since)s
  AND (%(after_id)s::uuid IS NULL
       OR (created_at, id) > (%(after_created_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY created_at, id
LIMIT %(limit)s;

-- attempt_statuses_of_deliveries --
-- The attempts of several deliveries without what the receiver answered or where they
-- went (PUBLISHER keys: see migration 0009), oldest first.
SELECT delivery_id, cycle, number, started_at, duration_ms, response_status,
       NULL::text AS response_body, NULL::text AS error, succeeded, NULL::text AS url
FROM delivery_attempts
WHERE delivery_id = ANY(%(delivery_ids)s)
ORDER BY delivery_id, cycle, number;

-- queue_heads --
-- The delivery each of several (subscription, subject) queues is sending: its first open
-- queued delivery that is not HELD (DataLoader, for what a HELD one waits for), confined
-- to a company unless NULL.
SELECT d.id, d.webhook_id, d.company_id, d.event_id, d.subscription_id, d.webhook_key,
       d.subject, d.status, d.cycle, d.attempt_count, d.max_attempts, d.next_attempt_at,
       d.last_attempt_at, d.last_response_status, d.created_at, d.completed_at, d.sequence
FROM unnest(%(subscription_ids)s::uuid[], %(subjects)s::text[]) AS q(subscription_id, subject)
CROSS JOIN LATERAL (
    SELECT * FROM deliveries
    WHERE subscription_id = q.subscription_id AND subject = q.subject AND in_queue
      AND status IN ('PENDING', 'RETRYING')
      AND (%(company_id)s::text IS NULL OR company_id = %(company_id)s)
    ORDER BY sequence
    LIMIT 1
) d;
