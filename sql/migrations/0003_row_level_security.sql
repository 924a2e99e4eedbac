-- Row-level security: isolation in depth, below the application's own company filters.
--
-- Three roles, none of which owns a table (so none bypasses a policy):
--   webhooks_api        a COMPANY key's requests; every tenant row must carry the company
--                       set for the transaction: set_config('webhooks.company_id', $1, true)
--   webhooks_publisher  the order system's requests: read events and deliveries of every
--                       company, publish (insert events and deliveries); no subscription
--                       changes
--   webhooks_worker     the delivery worker: reads what it sends, records attempts,
--                       advances deliveries, writes failure notices
-- The service's connections enter one of these roles per transaction with
-- set_config('role', ..., true); migrations, the CLI and API-key authentication run as the
-- connecting (owner) user. Roles are cluster-wide, so they are created only if missing.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooks_api') THEN
        CREATE ROLE webhooks_api NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooks_publisher') THEN
        CREATE ROLE webhooks_publisher NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooks_worker') THEN
        CREATE ROLE webhooks_worker NOLOGIN;
    END IF;
END
$$;

-- The connecting user must be able to switch into the roles (a no-op for superusers).
DO $$
BEGIN
    EXECUTE format('GRANT webhooks_api, webhooks_publisher, webhooks_worker TO %I', current_user);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'could not grant the service roles to %: %', current_user, SQLERRM;
END
$$;

GRANT USAGE ON SCHEMA public TO webhooks_api, webhooks_publisher, webhooks_worker;

-- Queueing jobs (publish, redeliver, retries, emails) writes Procrastinate's tables.
GRANT SELECT, INSERT, UPDATE ON procrastinate_jobs, procrastinate_events
    TO webhooks_api, webhooks_publisher, webhooks_worker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public
    TO webhooks_api, webhooks_publisher, webhooks_worker;

GRANT SELECT ON webhook_types TO webhooks_api, webhooks_publisher, webhooks_worker;
GRANT SELECT ON companies TO webhooks_api, webhooks_publisher, webhooks_worker;
GRANT SELECT, INSERT, UPDATE ON subscriptions TO webhooks_api;
GRANT SELECT ON subscriptions TO webhooks_publisher;
GRANT SELECT, UPDATE ON subscriptions TO webhooks_worker;
GRANT SELECT, INSERT ON events TO webhooks_api, webhooks_publisher;
GRANT SELECT ON events TO webhooks_worker;
GRANT SELECT, INSERT, UPDATE ON deliveries TO webhooks_api;
GRANT SELECT, INSERT ON deliveries TO webhooks_publisher;
GRANT SELECT, UPDATE ON deliveries TO webhooks_worker;
GRANT SELECT ON delivery_attempts TO webhooks_api, webhooks_publisher;
GRANT SELECT, INSERT ON delivery_attempts TO webhooks_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON failure_notices, failed_delivery_reports
    TO webhooks_worker;
GRANT SELECT ON api_keys TO webhooks_api;

ALTER TABLE companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE delivery_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE failure_notices ENABLE ROW LEVEL SECURITY;
ALTER TABLE failed_delivery_reports ENABLE ROW LEVEL SECURITY;

-- COMPANY keys: only their own company's rows, for reading and writing alike.
CREATE POLICY company_scope ON companies TO webhooks_api
    USING (id = current_setting('webhooks.company_id', true));
CREATE POLICY company_scope ON api_keys TO webhooks_api
    USING (company_id = current_setting('webhooks.company_id', true));
CREATE POLICY company_scope ON subscriptions TO webhooks_api
    USING (company_id = current_setting('webhooks.company_id', true))
    WITH CHECK (company_id = current_setting('webhooks.company_id', true));
CREATE POLICY company_scope ON events TO webhooks_api
    USING (company_id = current_setting('webhooks.company_id', true))
    WITH CHECK (company_id = current_setting('webhooks.company_id', true));
CREATE POLICY company_scope ON deliveries TO webhooks_api
    USING (company_id = current_setting('webhooks.company_id', true))
    WITH CHECK (company_id = current_setting('webhooks.company_id', true));
CREATE POLICY company_scope ON delivery_attempts TO webhooks_api
    USING (company_id = current_setting('webhooks.company_id', true));

-- The PUBLISHER key reads every company and publishes for any; it changes nothing else.
CREATE POLICY publisher_read ON companies FOR SELECT TO webhooks_publisher USING (true);
CREATE POLICY publisher_read ON subscriptions FOR SELECT TO webhooks_publisher USING (true);
CREATE POLICY publisher_read ON events FOR SELECT TO webhooks_publisher USING (true);
CREATE POLICY publisher_publish ON events FOR INSERT TO webhooks_publisher WITH CHECK (true);
CREATE POLICY publisher_read ON deliveries FOR SELECT TO webhooks_publisher USING (true);
CREATE POLICY publisher_publish ON deliveries FOR INSERT TO webhooks_publisher
    WITH CHECK (true);
CREATE POLICY publisher_read ON delivery_attempts FOR SELECT TO webhooks_publisher
    USING (true);

-- The worker serves every company, within the privileges granted above.
CREATE POLICY worker_all ON companies TO webhooks_worker USING (true);
CREATE POLICY worker_all ON subscriptions TO webhooks_worker USING (true);
CREATE POLICY worker_all ON events TO webhooks_worker USING (true);
CREATE POLICY worker_all ON deliveries TO webhooks_worker USING (true);
CREATE POLICY worker_all ON delivery_attempts TO webhooks_worker USING (true);
CREATE POLICY worker_all ON failure_notices TO webhooks_worker USING (true);
CREATE POLICY worker_all ON failed_delivery_reports TO webhooks_worker USING (true);
