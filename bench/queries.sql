-- worker_count --
-- Workers Procrastinate lists as registered.
SELECT count(*) AS workers FROM procrastinate_workers;

-- queued_jobs --
-- Jobs of a queue still in the table (successful ones are deleted).
SELECT count(*) AS jobs FROM procrastinate_jobs WHERE queue_name = %(queue)s;

-- delivery_progress --
-- A company's deliveries by status, with the last completion (epoch seconds).
SELECT status, count(*) AS deliveries,
       extract(epoch FROM max(completed_at))::float8 AS last_completed
FROM deliveries
WHERE company_id = %(company_id)s
GROUP BY status;

-- retry_lateness --
-- Per delivery: attempt 2 start minus (attempt 1 start + its duration + the interval), s.
SELECT extract(epoch FROM second.started_at - first.started_at)::float8
       - first.duration_ms / 1000.0 - %(interval)s AS lateness
FROM delivery_attempts first
JOIN delivery_attempts second
  ON second.delivery_id = first.delivery_id AND second.cycle = first.cycle
 AND second.number = 2
WHERE first.company_id = %(company_id)s AND first.number = 1;

-- transactions_committed --
-- Transactions committed in this database so far (each autocommit statement is one).
SELECT xact_commit AS committed FROM pg_stat_database WHERE datname = current_database();

-- park_far_job --
-- A job due in an hour, so that an idle worker's empty fetches find one scheduled.
INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args, scheduled_at)
VALUES ('deliveries', 'bench_idle_probe', 'bench-idle-probe', '{}', now() + interval '1 hour');

-- drop_far_job --
DELETE FROM procrastinate_jobs WHERE task_name = 'bench_idle_probe';

-- is_superuser --
-- Whether bulk loading may skip triggers (session_replication_role needs a superuser).
SELECT rolsuper AS superuser FROM pg_roles WHERE rolname = current_user;

-- skip_triggers --
-- Bulk load: no foreign-key checks (the data is consistent by construction), no NOTIFY.
SET session_replication_role = replica;

-- scale_companies --
-- The companies of the data set: scale-001, scale-002, ...
INSERT INTO companies (id, name)
SELECT 'scale-' || lpad(n::text, 3, '0'), 'Scale company ' || n
FROM generate_series(1, %(companies)s) AS n;

-- scale_subscriptions --
-- Each scale company's subscriptions (secrets are placeholders: nothing is sent).
INSERT INTO subscriptions (company_id, webhook_key, callback_url, notification_email,
                           signing_secret, created_at)
SELECT c.id, 'ORDER_STATUS', 'https://hooks.' || c.id || '.example/' || n,
       'ops@' || c.id || '.example', 'placeholder', now() - interval '90 days'
FROM companies c CROSS JOIN generate_series(1, %(per_company)s) AS n
WHERE c.id LIKE 'scale-%%';

-- scale_events --
-- One company's events, newest first every spacing seconds back from now (offset apart
-- from the other companies' so that their rows interleave in time).
INSERT INTO events (company_id, webhook_key, subject, payload, body, created_at)
SELECT %(company_id)s, 'ORDER_STATUS', 'ord_' || n, %(payload)s, %(body)s,
       now() - ((n + %(offset)s) * %(spacing)s) * interval '1 second'
FROM generate_series(1, %(events)s) AS n;

-- scale_deliveries --
-- One delivery per event and subscription of a company; 1 % FAILED after 10 attempts,
-- 2 % RETRYING after 2, 5 % SUCCEEDED at the second attempt, the rest at the first.
INSERT INTO deliveries (webhook_id, company_id, event_id, subscription_id, webhook_key,
                        subject, status, attempt_count, max_attempts, next_attempt_at,
                        last_attempt_at, last_response_status, created_at, completed_at)
SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.company_id, e.id, s.id,
       e.webhook_key, e.subject, o.status, o.attempts, 10,
       CASE WHEN o.status = 'RETRYING' THEN now() + interval '6 minutes' END,
       e.created_at + (o.attempts - 1) * interval '6 minutes',
       CASE WHEN o.status = 'SUCCEEDED' THEN 200 ELSE 500 END,
       e.created_at,
       CASE WHEN o.status <> 'RETRYING'
            THEN e.created_at + (o.attempts - 1) * interval '6 minutes' END
FROM (SELECT events.*, row_number() OVER (ORDER BY created_at) AS n
      FROM events WHERE company_id = %(company_id)s) e
JOIN (SELECT subscriptions.*, row_number() OVER (ORDER BY id) AS k
      FROM subscriptions WHERE company_id = %(company_id)s) s ON true
CROSS JOIN LATERAL (
    SELECT CASE WHEN b.bucket = 0 THEN 'FAILED'
                WHEN b.bucket < 3 THEN 'RETRYING' ELSE 'SUCCEEDED' END AS status,
           CASE WHEN b.bucket = 0 THEN 10 WHEN b.bucket < 8 THEN 2 ELSE 1 END AS attempts
    FROM (SELECT (e.n * 7 + s.k * 13) %% 100 AS bucket) b
) o;

-- scale_attempts --
-- The attempt rows of a company's deliveries, six minutes apart; only a success's last
-- attempt succeeded.
INSERT INTO delivery_attempts (delivery_id, cycle, number, company_id, started_at,
                               duration_ms, response_status, response_body, error,
                               succeeded)
SELECT d.id, 1, n, d.company_id, d.created_at + (n - 1) * interval '6 minutes',
       20 + (n * 37 + length(d.webhook_id)) %% 200,
       CASE WHEN d.status = 'SUCCEEDED' AND n = d.attempt_count THEN 200 ELSE 500 END,
       CASE WHEN d.status = 'SUCCEEDED' AND n = d.attempt_count THEN 'ok'
            ELSE 'Internal Server Error' END,
       CASE WHEN d.status = 'SUCCEEDED' AND n = d.attempt_count THEN NULL ELSE 'HTTP 500' END,
       d.status = 'SUCCEEDED' AND n = d.attempt_count
FROM deliveries d CROSS JOIN LATERAL generate_series(1, d.attempt_count) AS n
WHERE d.company_id = %(company_id)s;

-- sample_deliveries --
-- Random deliveries of a company (the delivery(id) requests).
SELECT id FROM deliveries WHERE company_id = %(company_id)s ORDER BY random() LIMIT %(limit)s;

-- newest_deliveries --
-- The ids on a company's first page (attempts_of_deliveries' realistic argument).
SELECT id FROM deliveries WHERE company_id = %(company_id)s
ORDER BY created_at DESC, id DESC LIMIT %(limit)s;

-- table_sizes --
-- Rows and total size of the big tables.
SELECT relname AS table, n_live_tup AS rows,
       pg_size_pretty(pg_total_relation_size(relid)) AS size
FROM pg_stat_user_tables
WHERE relname IN ('events', 'deliveries', 'delivery_attempts')
ORDER BY relname;

-- prepared_plan_choice --
-- How PostgreSQL planned this connection's prepared statements so far.
SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
WHERE NOT from_sql;

-- backlog_retries --
-- Delivery retries waiting an hour, one lock each, as failed attempts leave them (phase I).
INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args, scheduled_at)
SELECT 'deliveries', 'deliver_webhook', d.id::text,
       jsonb_build_object('delivery_id', d.id::text, 'cycle', 1, 'attempt', 2),
       now() + interval '1 hour'
FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, %(count)s)) d;

-- bench_worker --
-- A worker row for a fetch made by the benchmark itself (rolled back with it).
INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id;

-- explain_fetch --
-- One fetch of the worker's queues, as Procrastinate's worker makes it, with its buffers.
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
SELECT * FROM procrastinate_fetch_job_v2(
    ARRAY['deliveries', 'notices', 'maintenance']::character varying[], %(worker)s);

-- overtaken_deliveries --
-- A company's numbered (ordered) deliveries whose first attempt started before the one
-- numbered just before them, of the same subscription and subject, had ended (phase K).
SELECT count(*) FROM deliveries d
JOIN deliveries p ON p.subscription_id = d.subscription_id AND p.subject = d.subject
                 AND p.sequence = d.sequence - 1
WHERE d.company_id = %(company_id)s AND d.sequence IS NOT NULL
  AND (SELECT min(a.started_at) FROM delivery_attempts a WHERE a.delivery_id = d.id)
      < p.completed_at;

-- statements_ready --
-- Loads pg_stat_statements in this database (its counts are the cluster's, by database).
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

-- statements_reset --
-- Starts the counts afresh (every database: the others are idle then).
SELECT pg_stat_statements_reset();

-- statements_by_query --
-- Statements this database ran since the reset, by statement text, most called first, with
-- the time PostgreSQL spent executing them (ms; a function's inner statements included).
SELECT s.query, sum(s.calls)::bigint AS calls, sum(s.total_exec_time)::float AS exec_ms
FROM pg_stat_statements s
JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = current_database()
GROUP BY s.query
ORDER BY calls DESC;

-- unfinished_jobs --
-- Jobs of a queue not yet finished (stock Procrastinate keeps finished ones).
SELECT count(*) AS jobs FROM procrastinate_jobs
WHERE queue_name = %(queue)s AND status IN ('todo', 'doing');

-- delivery_latencies --
-- Per finished delivery of a company: its completion minus its event's creation, s.
SELECT extract(epoch FROM d.completed_at - e.created_at)::float8 AS seconds
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.company_id = %(company_id)s AND d.completed_at IS NOT NULL;

-- ping --
-- One round trip doing nothing.
SELECT 1;
