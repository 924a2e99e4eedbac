-- load_attempt_context --
-- Everything one delivery attempt needs: the delivery, its body and its subscription.
SELECT d.id, d.webhook_id, d.company_id, d.event_id, d.subscription_id, d.status, d.cycle,
       d.attempt_count, d.max_attempts, e.body,
       s.callback_url, s.api_key_params, s.signing_secret, s.previous_signing_secret,
       s.previous_secret_expires_at, s.is_active, s.deleted_at
FROM deliveries d
JOIN events e ON e.id = d.event_id
JOIN subscriptions s ON s.id = d.subscription_id
WHERE d.id = %(id)s;

-- insert_attempt --
-- Record one attempt; a replayed job finds its attempt already there and records nothing.
INSERT INTO delivery_attempts (delivery_id, cycle, number, company_id, started_at,
                               duration_ms, response_status, response_body, error, succeeded,
                               url)
VALUES (%(delivery_id)s, %(cycle)s, %(number)s, %(company_id)s, %(started_at)s,
        %(duration_ms)s, %(response_status)s, %(response_body)s, %(error)s, %(succeeded)s,
        %(url)s)
ON CONFLICT (delivery_id, cycle, number) DO NOTHING
RETURNING number;

-- advance_delivery --
-- Move a delivery past an attempt, only if it is still at the attempt before.
UPDATE deliveries SET
    status = %(status)s,
    attempt_count = %(number)s,
    last_attempt_at = %(attempted_at)s,
    last_response_status = %(response_status)s,
    next_attempt_at = %(next_attempt_at)s,
    completed_at = CASE WHEN %(status)s IN ('SUCCEEDED', 'FAILED') THEN now() END
WHERE id = %(delivery_id)s AND cycle = %(cycle)s AND attempt_count = %(number)s - 1
  AND status IN ('PENDING', 'RETRYING')
RETURNING id, subscription_id, company_id;

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
