-- failing_subscriptions --
-- Active subscriptions whose deliveries have all failed for at least the period: the
-- first failure since their last success ended that long ago. Only subscriptions with a
-- recent failure are examined.
SELECT s.id, s.company_id
FROM subscriptions s
CROSS JOIN LATERAL (
    SELECT max(completed_at) AS at FROM deliveries
    WHERE subscription_id = s.id AND status = 'SUCCEEDED'
) last_success
CROSS JOIN LATERAL (
    SELECT min(completed_at) AS at FROM deliveries
    WHERE subscription_id = s.id AND status = 'FAILED'
      AND completed_at > coalesce(last_success.at, '-infinity')
) first_failure
WHERE s.is_active AND s.deleted_at IS NULL
  AND s.id IN (
      SELECT subscription_id FROM deliveries
      WHERE status = 'FAILED' AND completed_at > now() - make_interval(secs => %(period_seconds)s)
  )
  AND first_failure.at <= now() - make_interval(secs => %(period_seconds)s);

-- ping --
-- Whether the database answers at all (the worker supervisor's probe during an outage).
SELECT 1 AS ok;
