-- insert_event --
-- Record a published event; returns nothing when its idempotency key was used before.
INSERT INTO events (id, company_id, webhook_key, subject, payload, idempotency_key, is_test,
                    body, created_at)
VALUES (%(id)s, %(company_id)s, %(webhook_key)s, %(subject)s, %(payload)s,
        %(idempotency_key)s, %(is_test)s, %(body)s, %(created_at)s)
ON CONFLICT (company_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
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
WHERE company_id = %(company_id)s AND idempotency_key = %(idempotency_key)s;

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

-- fan_out_event --
-- One delivery per active subscription of the event's company to its webhook, each with
-- the job of its first attempt, in one statement. The jobs go in through Procrastinate's
-- own procrastinate_defer_jobs_v1 (the function batch_defer_jobs_async calls), so its
-- triggers run as for any deferred job; arguments as defer_attempts gives them.
WITH fanned_out AS (
    INSERT INTO deliveries (webhook_id, company_id, event_id, subscription_id, webhook_key,
                            subject, max_attempts, next_attempt_at)
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), s.company_id, %(event_id)s,
           s.id, s.webhook_key, %(subject)s, %(max_attempts)s, now()
    FROM subscriptions s
    WHERE s.company_id = %(company_id)s AND s.webhook_key = %(webhook_key)s
      AND s.is_active AND s.deleted_at IS NULL
      AND (%(subscription_id)s::uuid IS NULL OR s.id = %(subscription_id)s)
    ORDER BY s.created_at, s.id
    RETURNING id, cycle
), queued AS (
    SELECT procrastinate_defer_jobs_v1(array_agg(
               ROW(%(queue)s::varchar, %(task)s::varchar, %(priority)s::integer, id::text,
                   NULL, jsonb_build_object('delivery_id', id::text, 'cycle', cycle,
                                            'attempt', 1), NULL
               )::procrastinate_job_to_defer_v1)) AS job_ids
    FROM fanned_out
)
SELECT (SELECT count(*) FROM fanned_out) AS deliveries,
       coalesce((SELECT cardinality(job_ids) FROM queued), 0) AS jobs;
