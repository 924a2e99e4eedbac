-- load_attempt_contexts --
-- Everything a delivery attempt needs, for each delivery of "ids": the delivery, its body
-- (and the trace its event was published in) and its subscription, and the database's
-- clock (a paced attempt waits for its slot by it). Attempts that start together load
-- with one statement (app/delivery/attempt_loads.py); an id not found has no row.
SELECT clock_timestamp() AS loaded_at, d.id, d.webhook_id, d.company_id, d.event_id,
       d.subscription_id, d.webhook_key, d.subject, d.status, d.cycle, d.attempt_count,
       d.max_attempts, d.sequence, e.body, e.traceparent,
       s.callback_url, s.api_key_params, s.headers, s.signing_secret, s.previous_signing_secret,
       s.max_deliveries_per_second,
       s.previous_secret_expires_at, s.is_active, s.deleted_at
FROM deliveries d
JOIN events e ON e.id = d.event_id
JOIN subscriptions s ON s.id = d.subscription_id
WHERE d.id = ANY(%(ids)s::uuid[]);

-- record_attempt --
-- Record one attempt and move its delivery past it, in one statement. "recorded" is false
-- when a replayed job finds its attempt already there (then nothing changes); "advanced" is
-- false when the delivery moved on while the attempt was in flight (cancelled, redelivered):
-- the attempt is kept all the same.
-- A success to a failing subscription (failing_since set, migration 0021) is not recorded
-- here unless "recover" says the caller records it in the transaction that clears the
-- marker and emits SUBSCRIPTION_RECOVERED: "failing" is then true, and nothing changed.
-- The statement also ends the attempt's job ("job_id", as the worker would once the task
-- returned; migration 0022), so the worker need not finish it after: "job_finished" says
-- it did. Not when "failing" (the caller records the success in a transaction after), and
-- in a transaction the job ends only if that commits.
-- (The marker is set and cleared by statements of their own, mark_failing and
-- clear_failing, not by a CTE here: an UPDATE of subscriptions in every attempt's
-- statement costs even when it matches no row; see README, "Figures behind the code".)
WITH failing AS (
    SELECT FROM subscriptions
    WHERE %(succeeded)s AND NOT %(recover)s
      AND id = %(subscription_id)s AND failing_since IS NOT NULL
), attempt AS (
    INSERT INTO delivery_attempts (delivery_id, cycle, number, company_id, started_at,
                                   duration_ms, response_status, response_body, error,
                                   succeeded, url, webhook_timestamp, signature, user_agent,
                                   header_names, traceparent)
    SELECT %(delivery_id)s::uuid, %(cycle)s::integer, %(number)s::integer,
           %(company_id)s::text, %(started_at)s::timestamptz, %(duration_ms)s::integer,
           %(response_status)s::integer, %(response_body)s::text, %(error)s::text,
           %(succeeded)s::boolean, %(url)s::text, %(webhook_timestamp)s::bigint,
           %(signature)s::text, %(user_agent)s::text, %(header_names)s::text[],
           %(traceparent)s::text
    WHERE NOT EXISTS (SELECT FROM failing)
    ON CONFLICT (delivery_id, cycle, number) DO NOTHING
    RETURNING number
), advanced AS (
    UPDATE deliveries SET
        status = %(status)s,
        attempt_count = %(number)s,
        last_attempt_at = %(started_at)s,
        last_response_status = %(response_status)s,
        next_attempt_at = %(next_attempt_at)s,
        requeues = 0,
        completed_at = CASE WHEN %(status)s IN ('SUCCEEDED', 'FAILED') THEN now() END
    WHERE id = %(delivery_id)s AND cycle = %(cycle)s AND attempt_count = %(number)s - 1
      AND status IN ('PENDING', 'RETRYING')
      AND EXISTS (SELECT FROM attempt)
    RETURNING id
), finished AS (
    SELECT webhooks_finish_job_v1(%(job_id)s::bigint, %(delete_job)s::boolean) AS closed
    WHERE %(job_id)s::bigint IS NOT NULL AND NOT EXISTS (SELECT FROM failing)
)
SELECT EXISTS (SELECT FROM attempt) AS recorded, EXISTS (SELECT FROM advanced) AS advanced,
       EXISTS (SELECT FROM failing) AS failing,
       coalesce((SELECT closed FROM finished), false) AS job_finished;

-- lock_failing_subscription --
-- A failing subscription's marker, its row locked until the transaction ends: of two
-- successes recorded at once, only the first finds it set (SUBSCRIPTION_RECOVERED once).
SELECT failing_since FROM subscriptions WHERE id = %(id)s FOR UPDATE;

-- mark_failing --
-- A delivery of the subscription failed for good: it is failing from now, unless it was.
UPDATE subscriptions SET failing_since = now()
WHERE id = %(id)s AND failing_since IS NULL;

-- clear_failing --
-- An attempt to the subscription succeeded: it is failing no more.
UPDATE subscriptions SET failing_since = NULL
WHERE id = %(id)s AND failing_since IS NOT NULL;

-- cancel_delivery --
-- Stop one open delivery (its subscription went away).
UPDATE deliveries SET status = 'CANCELLED', completed_at = now(), next_attempt_at = NULL
WHERE id = %(id)s AND status IN ('PENDING', 'RETRYING')
RETURNING id;

-- lock_subscription --
-- Lock a subscription that an attempt's outcome is about to close (410 Gone) before the
-- attempt's delivery: the API closes one subscription, then its deliveries, and the two
-- must take their locks in that one order. NO KEY UPDATE, as the API's: the fan-out's
-- foreign keys share-lock the row, and need not wait for it.
SELECT id FROM subscriptions WHERE id = %(id)s FOR NO KEY UPDATE;

-- deactivate_subscription --
-- Turn a subscription off for a reason (410 Gone, a long run of failures).
UPDATE subscriptions SET is_active = false, deactivated_reason = %(reason)s, updated_at = now()
WHERE id = %(id)s AND is_active AND deleted_at IS NULL
RETURNING id, company_id, webhook_key, callback_url, updated_at AS deactivated_at, failing_since;
