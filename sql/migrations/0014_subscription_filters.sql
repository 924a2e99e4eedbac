-- Content filters: a subscription may receive only the events whose payload its filter
-- matches. `filter` is the document as the subscriber wrote it (shown back, explained by
-- testSubscriptionFilter); `filter_path` is the same filter compiled once, when it was
-- saved, into the jsonpath predicate the fan-out evaluates (app/core/filter_jsonpath.py).
-- Both or neither.
ALTER TABLE subscriptions
    ADD COLUMN filter jsonb,
    ADD COLUMN filter_path jsonpath,
    ADD CONSTRAINT subscriptions_filter_compiled CHECK ((filter IS NULL) = (filter_path IS NULL));

-- Whether a payload passes a subscription's compiled filter (none: it does). The one
-- definition of a match, for the fan-out and for testing a filter alike: anything but a
-- true result (a jsonpath error, silenced; a non-boolean) is no match. A plain SQL
-- expression, so the planner inlines it into the fan-out's statement.
CREATE FUNCTION webhooks_filter_matches(payload jsonb, filter_path jsonpath)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT $2 IS NULL OR coalesce(jsonb_path_match($1, $2, '{}', true), false)
$$;

-- The publisher runs the fan-out, so it reads the compiled predicate. It publishes every
-- payload itself, so what a filter selects tells it nothing about any data it lacks; the
-- document (`filter`) stays with the rest of the configuration, unreadable to it.
GRANT SELECT (filter_path) ON subscriptions TO webhooks_publisher;
