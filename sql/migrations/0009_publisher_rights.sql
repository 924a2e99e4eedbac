-- The PUBLISHER key (the order system) publishes, and reads the status of what it
-- published: events and their deliveries, of every company (it publishes for all of
-- them). It does not read a subscription's configuration (callback URL, which may carry
-- a tenant's own secrets in its query string, notification email, API key parameters,
-- signing secrets, description) nor what receivers answered (response bodies, error texts,
-- which name the callback's host and quote malformed answers, the URL each attempt went
-- to). The application refuses or withholds those fields; these privileges make a
-- forgotten check fail with "permission denied" instead of leaking.

-- Subscriptions: which one a delivery went to and whether it is on (through deliveries,
-- of any state: a deleted subscription's past deliveries stay readable), and what fan-out
-- matches and orders by; none of its configuration.
REVOKE SELECT ON subscriptions FROM webhooks_publisher;
GRANT SELECT (id, company_id, webhook_key, is_active, deleted_at, created_at, updated_at)
    ON subscriptions TO webhooks_publisher;

-- Attempts: when, how long, the status code and whether it succeeded; nothing the
-- receiver wrote and nothing of where it went.
REVOKE SELECT ON delivery_attempts FROM webhooks_publisher;
GRANT SELECT (delivery_id, cycle, number, company_id, started_at, duration_ms,
              response_status, succeeded)
    ON delivery_attempts TO webhooks_publisher;

-- Live updates announce the state a change produced, not only that something changed:
-- a listener that reloads the row when it gets to the notification sees a later state
-- (a fast first attempt turned PENDING into SUCCEEDED, announced twice). The state
-- fields travel with the ids; listeners still load the delivery through their own
-- company-scoped query before saying anything about it.
CREATE OR REPLACE FUNCTION webhooks_notify_delivery_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'webhooks_delivery_updates',
        json_build_object(
            'id', NEW.id,
            'company_id', NEW.company_id,
            'subscription_id', NEW.subscription_id,
            'subject', NEW.subject,
            'status', NEW.status,
            'cycle', NEW.cycle,
            'attempt_count', NEW.attempt_count,
            'next_attempt_at', NEW.next_attempt_at,
            'last_attempt_at', NEW.last_attempt_at,
            'last_response_status', NEW.last_response_status,
            'completed_at', NEW.completed_at
        )::text
    );
    RETURN NULL;
END;
$$;
