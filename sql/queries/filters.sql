-- subscription_filter --
-- A company's live subscription's filter, as written and as compiled, to test it.
SELECT id, webhook_key, filter, filter_path::text AS filter_path
FROM subscriptions
WHERE id = %(id)s AND company_id = %(company_id)s AND deleted_at IS NULL;

-- filter_matches --
-- Whether a payload passes a compiled filter, decided as the fan-out decides it.
SELECT webhooks_filter_matches(%(payload)s, %(filter_path)s::jsonpath) AS matched;
