-- report_failed_delivery --
-- Queue a failed delivery (cycle) for the next failure email of its subscription.
INSERT INTO failed_delivery_reports (delivery_id, cycle, subscription_id, company_id)
VALUES (%(delivery_id)s, %(cycle)s, %(subscription_id)s, %(company_id)s)
ON CONFLICT (delivery_id, cycle) DO NOTHING;

-- insert_failure_notice --
-- Open a notice (one email) for a subscription, to its notification address of now.
INSERT INTO failure_notices (company_id, subscription_id, reason, recipient)
SELECT company_id, id, %(reason)s, notification_email FROM subscriptions
WHERE id = %(subscription_id)s
RETURNING id;

-- pending_reports --
-- Whether a subscription has failures that no notice reports yet (a row, or none).
SELECT 1 AS pending FROM failed_delivery_reports
WHERE subscription_id = %(subscription_id)s AND notice_id IS NULL
LIMIT 1;

-- notification_address --
-- Where a subscription's failure emails go.
SELECT notification_email FROM subscriptions WHERE id = %(subscription_id)s;

-- lock_address --
-- Serialise the opening of notices to one address (until commit), so that two jobs cannot
-- both take its last place in the per-address limit.
SELECT pg_advisory_xact_lock(hashtextextended('failure-notice-address:' || lower(%(address)s), 0));

-- address_usage --
-- Notices opened for an address in the last hour and day, and when the oldest of each
-- leaves its window.
SELECT count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS last_hour,
       count(*) AS last_day,
       min(created_at) FILTER (WHERE created_at > now() - interval '1 hour')
           + interval '1 hour' AS hour_frees_at,
       min(created_at) + interval '1 day' AS day_frees_at,
       now() AS now
FROM failure_notices
WHERE recipient IS NOT NULL AND lower(recipient) = lower(%(address)s)
  AND created_at > now() - interval '1 day';

-- claim_pending_reports --
-- Put every unreported failure of a subscription into a notice.
UPDATE failed_delivery_reports SET notice_id = %(notice_id)s
WHERE (delivery_id, cycle) IN (
    SELECT delivery_id, cycle FROM failed_delivery_reports
    WHERE subscription_id = %(subscription_id)s AND notice_id IS NULL
    FOR UPDATE SKIP LOCKED
)
RETURNING delivery_id;

-- lease_unsent_notice --
-- Take the oldest unsent notice of a subscription that no other sender holds, for
-- lease_seconds: the email is then sent with no transaction open, and a sender that dies
-- mid-send leaves a lease that runs out, so the notice is taken again, not lost.
UPDATE failure_notices
SET leased_until = now() + make_interval(secs => %(lease_seconds)s)
WHERE id = (
    SELECT id FROM failure_notices
    WHERE subscription_id = %(subscription_id)s AND sent_at IS NULL
      AND (leased_until IS NULL OR leased_until <= now())
    ORDER BY created_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, subscription_id, reason, recipient, send_attempts;

-- next_lease_end --
-- Seconds until the first lease another sender holds on a subscription's unsent notices
-- runs out (NULL: none is held).
SELECT extract(epoch FROM min(leased_until) - now()) AS seconds_left FROM failure_notices
WHERE subscription_id = %(subscription_id)s AND sent_at IS NULL AND leased_until > now();

-- notice_subscription --
-- What a failure email says about the subscription, and its secrets (still encrypted),
-- which the email masks wherever they occur.
SELECT s.id, s.company_id, s.webhook_key, s.callback_url, s.notification_email,
       s.api_key_params, s.headers, s.signing_secret, s.previous_signing_secret,
       w.name AS webhook_name
FROM subscriptions s JOIN webhook_types w ON w.key = s.webhook_key
WHERE s.id = %(id)s;

-- notice_deliveries --
-- The deliveries a notice reports, with their events.
SELECT d.id, d.webhook_id, d.event_id, d.subject, r.cycle
FROM failed_delivery_reports r JOIN deliveries d ON d.id = r.delivery_id
WHERE r.notice_id = %(notice_id)s
ORDER BY d.created_at, d.id;

-- notice_payloads --
-- The payloads of some events of a company that a failure email shows: the delivered
-- body (its data keeps the publisher's key order), or the stored payload where retention
-- dropped the body (every delivery of the event succeeded since, after a redelivery).
SELECT id, body, CASE WHEN body IS NULL THEN payload END AS payload
FROM events
WHERE id = ANY(%(event_ids)s) AND company_id = %(company_id)s;

-- mark_notice_sent --
-- The email went out.
UPDATE failure_notices
SET sent_at = now(), send_attempts = send_attempts + 1, last_error = NULL, leased_until = NULL
WHERE id = %(id)s AND sent_at IS NULL;

-- mark_notice_failed --
-- The email could not be sent this time.
UPDATE failure_notices
SET send_attempts = send_attempts + 1, last_error = %(error)s, leased_until = NULL
WHERE id = %(id)s AND sent_at IS NULL
RETURNING send_attempts;

-- delete_empty_notice --
-- Drop a notice that found nothing to report.
DELETE FROM failure_notices WHERE id = %(id)s;

-- recent_failed_deliveries --
-- The latest FAILED deliveries of a subscription (context for a deactivation email).
SELECT d.id, d.webhook_id, d.event_id, d.subject, d.cycle
FROM deliveries d
WHERE d.subscription_id = %(subscription_id)s AND d.status = 'FAILED'
ORDER BY d.completed_at DESC
LIMIT 5;
