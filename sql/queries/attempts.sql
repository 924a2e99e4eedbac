-- load_attempt_context --
-- Everything one delivery attempt needs: the delivery, its body (and the trace its event
-- was published in) and its subscription, and the database's clock (a paced attempt waits for its slot by it).
SELECT clock_timestamp() AS loaded_at, d.id, d.webhook_id, d.company_id, d.event_id,
       d.subscription_id, d.status, d.cycle, d.attempt_count, d.max_attempts, d.sequence, e.body,
       e.traceparent,
       s.callback_url, s.api_key_params, s.headers, s.signing_secret, s.previous_signing_secret,
       s.max_deliveries_per_second,
       s.previous_secret_expires_at, s.is_active, s.deleted_at
FROM deliveries d
JOIN events e ON e.id = d.event_id
JOIN subscriptions s ON s.id = d.subscription_id
WHERE d.id = %(id)s;

-- record_attempt --
-- Record one attempt and move its delivery past it, in one statement. "recorded" is false
-- when a replayed job finds its attempt already there (then nothing changes); "advanced" is
-- false when the delivery moved on while the attempt was in flight (cancelled, redelivered):
-- the attempt is kept all the same.
WITH attempt AS (
    INSERT INTO delivery_attempts (delivery_id, cycle, number, company_id, started_at,
                                   duration_ms, response_status, response_body, error,
                                   succeeded, url)
    VALUES (%(delivery_id)s, %(cycle)s, %(number)s, %(company_id)s, %(started_at)s,
            %(duration_ms)s, %(response_status)s, %(response_body)s, %(error)s,
            %(succeeded)s, %(url)s)
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
)
SELECT EXISTS (SELECT FROM attempt) AS recorded, EXISTS (SELECT FROM advanced) AS advanced;

-- cancel_delivery --
-- Stop one open delivery (its subscription went away).
UPDATE deliveries SET status = 'CANCELLED', completed_at = now(), next_attempt_at = NULL
WHERE id = %(id)s AND status IN ('PENDING', 'RETRYING')
RETURNING id;

-- deactivate_subscription --
-- Turn a subscription off for a reason (410 Gone, a long run of failures).
UPDATE subscriptions SET is_active = false, deactivated_reason = %(reason)s, updated_at = now()
WHERE id = %(id)s AND is_active AND deleted_at IS NULL
RETURNING id;
