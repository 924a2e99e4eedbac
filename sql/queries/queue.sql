-- Every statement on Procrastinate's tables (procrastinate_*), run by app/store/queue.py only.

-- worker_heartbeat --
-- A worker's heartbeat; puts its registration back when another worker pruned it as
-- stalled (the worker was paused, not dead), so the jobs it fetches can name it again.
INSERT INTO procrastinate_workers (id, last_heartbeat) OVERRIDING SYSTEM VALUE
VALUES (%(worker_id)s, now())
ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat;

-- fetch_jobs --
-- The worker's fetch: up to max_jobs jobs in one statement (migration 0025's function,
-- Procrastinate's fetch repeated in one transaction), the columns Procrastinate's
-- Job.from_row reads, in the order taken. When it takes none, one row with a NULL id says
-- in how many seconds the next scheduled job comes due (NULL: none is scheduled). The
-- worker sleeps that long at most, so a retry starts when it is due, with no polling
-- between. The look-up is an InitPlan, run only when nothing was taken: one descent of
-- migration 0023's index. It names no queue on purpose: with a queue condition the
-- planner, on stale statistics, combined the queue index in a bitmap and sorted every
-- waiting retry (363 buffers behind 20,000); a job of a queue the worker does not take
-- costs it one wake-up more, when that job comes due. A job already due but not taken
-- (its lock is held, another worker is taking it) is not counted: the next poll finds it.
WITH taken AS (
    SELECT * FROM webhooks_fetch_jobs_v1(%(queues)s::varchar[], %(worker_id)s, %(max_jobs)s)
)
SELECT t.id, t.status, t.task_name, t.priority, t.lock, t.queueing_lock, t.args,
       t.scheduled_at, t.queue_name, t.attempts, t.worker_id, NULL::float AS next_due_seconds
FROM taken t
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, (
           SELECT extract(epoch FROM n.scheduled_at - now())::float
           FROM procrastinate_jobs n
           WHERE n.status = 'todo' AND n.scheduled_at IS NOT NULL AND n.scheduled_at > now()
           ORDER BY n.scheduled_at LIMIT 1
       )
WHERE NOT EXISTS (SELECT FROM taken);

-- fan_out_event --
-- One delivery per active subscription of the event's company to its webhook whose filter
-- matches the event's payload (a test event, for one subscription, ignores it), each with
-- the job of its first attempt, in one statement. The jobs go in through Procrastinate's
-- own procrastinate_defer_jobs_v1 (the function batch_defer_jobs_async calls), so its
-- triggers run as for any deferred job; arguments as AttemptJob.as_task_kwargs gives them.
-- On a PER_SUBJECT subscription an event with a subject (a test event excepted) takes the
-- next number of its (subscription, subject) queue (migration 0016): the upsert waits for
-- a concurrent publish of the subject and sees its committed row, and a delivery that
-- finds another open one before it is HELD, with no job. Queue rows are taken in id
-- order, so concurrent publishes of a subject to several subscriptions never deadlock.
WITH matching AS (
    SELECT s.id, s.company_id, s.webhook_key, s.created_at,
           s.ordering = 'PER_SUBJECT' AND %(subject)s::text IS NOT NULL
               AND %(subscription_id)s::uuid IS NULL AS ordered
    FROM subscriptions s
    WHERE s.company_id = %(company_id)s AND s.webhook_key = %(webhook_key)s
      AND s.is_active AND s.deleted_at IS NULL
      AND (%(subscription_id)s::uuid IS NULL OR s.id = %(subscription_id)s)
      AND (%(subscription_id)s::uuid IS NOT NULL OR webhooks_filter_matches(
               (SELECT e.payload FROM events e WHERE e.id = %(event_id)s), s.filter_path))
), numbered AS (
    INSERT INTO subject_queues AS q (subscription_id, subject, company_id, last_sequence,
                                     open_count)
    SELECT m.id, %(subject)s, m.company_id, 1, 1 FROM matching m WHERE m.ordered
    ORDER BY m.id
    ON CONFLICT (subscription_id, subject) DO UPDATE
        SET last_sequence = q.last_sequence + 1, open_count = q.open_count + 1
    RETURNING q.subscription_id, q.last_sequence, q.open_count > 1 AS held
), fanned_out AS (
    INSERT INTO deliveries (webhook_id, company_id, event_id, subscription_id, webhook_key,
                            subject, max_attempts, next_attempt_at, status, sequence, in_queue)
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), m.company_id, %(event_id)s,
           m.id, m.webhook_key, %(subject)s, %(max_attempts)s,
           CASE WHEN n.held THEN NULL ELSE now() END,
           CASE WHEN n.held THEN 'HELD' ELSE 'PENDING' END,
           n.last_sequence, n.subscription_id IS NOT NULL
    FROM matching m LEFT JOIN numbered n ON n.subscription_id = m.id
    ORDER BY m.created_at, m.id
    RETURNING id, cycle, status
), queued AS (
    SELECT procrastinate_defer_jobs_v1(array_agg(
               ROW(%(queue)s::varchar, %(task)s::varchar, %(priority)s::integer, id::text,
                   NULL, jsonb_build_object('delivery_id', id::text, 'cycle', cycle,
                                            'attempt', 1), NULL
               )::procrastinate_job_to_defer_v1)) AS job_ids
    FROM fanned_out
    WHERE status = 'PENDING'
)
SELECT (SELECT count(*) FROM fanned_out) AS deliveries,
       (SELECT count(*) FROM fanned_out WHERE status = 'HELD') AS held,
       coalesce((SELECT cardinality(job_ids) FROM queued), 0) AS jobs;

-- repace_waiting_attempts --
-- The attempts of a subscription queued for a slot of its delivery rate (jobs carrying a
-- "slot"), made due now at the default priority and without the slot: the rate changed,
-- so each takes a slot at the new one when it runs (app/delivery/pacing.py). The lock is
-- compared in the "C" collation, as the fetch does, for the same index (migration 0011).
UPDATE procrastinate_jobs j SET scheduled_at = now(), args = j.args - 'slot',
    priority = %(priority)s
FROM deliveries d
WHERE d.subscription_id = %(subscription_id)s AND d.status IN ('PENDING', 'RETRYING')
  AND j.lock COLLATE "C" = d.id::text COLLATE "C" AND j.status = 'todo' AND j.args ? 'slot';

-- wake_delivery_workers --
-- Wake the workers listening on the delivery queue, with the notification a job's insert
-- sends (procrastinate_notify_queue_job_inserted_v1): a paced attempt is due, and
-- scheduled jobs coming due are otherwise found only by polling.
SELECT pg_notify('procrastinate_queue_v1#' || %(queue)s,
                 json_build_object('type', 'job_inserted', 'job_id', NULL)::text);

-- orphaned_deliveries --
-- Open deliveries overdue by a margin with no queued or running job: a lost job
-- (e.g. one that crashed while the database was down) is re-queued from these. Each one
-- counts the re-queue; "requeues" says how often its current attempt was re-queued.
UPDATE deliveries SET requeues = requeues + 1
WHERE id IN (
    SELECT d.id FROM deliveries d
    WHERE d.status IN ('PENDING', 'RETRYING')
      AND d.next_attempt_at < now() - make_interval(secs => %(grace_seconds)s)
      AND NOT EXISTS (
          SELECT 1 FROM procrastinate_jobs j
          WHERE j.lock = d.id::text AND j.status IN ('todo', 'doing')
      )
    ORDER BY d.next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, cycle, attempt_count + 1 AS attempt, requeues;

-- subscriptions_with_unsent_notices --
-- Subscriptions whose failures wait for an email but have no queued or running email job.
SELECT DISTINCT r.subscription_id FROM failed_delivery_reports r
LEFT JOIN failure_notices n ON n.id = r.notice_id
WHERE (r.notice_id IS NULL OR n.sent_at IS NULL)
  AND r.created_at < now() - make_interval(secs => %(older_than_seconds)s)
  AND NOT EXISTS (
      SELECT 1 FROM procrastinate_jobs j
      WHERE j.task_name = %(task_name)s AND j.status IN ('todo', 'doing')
        AND j.args ->> 'subscription_id' = r.subscription_id::text
  );

-- cancel_open_deliveries --
-- Cancel the pending and retrying deliveries of a subscription, and their waiting jobs
-- (as Procrastinate cancels a job): it runs jobs sharing a lock in id order, so a retry
-- left scheduled minutes ahead would hold back a redelivery until it came due. A job
-- already running finds the delivery finished and records nothing more. Callers close the
-- subscription first, so each cancelled delivery of a subject queue cancels the HELD ones
-- behind it (migration 0016's triggers: queue row, then those deliveries, the same lock
-- order as a delivery that ends while this runs; naming HELD here would lock them first).
WITH cancelled AS (
    UPDATE deliveries SET status = 'CANCELLED', completed_at = now(), next_attempt_at = NULL
    WHERE subscription_id = %(subscription_id)s AND status IN ('PENDING', 'RETRYING')
    RETURNING id
), cancelled_jobs AS (
    UPDATE procrastinate_jobs j SET status = 'cancelled'
    FROM cancelled c
    WHERE j.lock = c.id::text AND j.status = 'todo'
)
SELECT id FROM cancelled;

-- purge_finished_jobs --
-- A batch of finished Procrastinate jobs (with their events) last touched before the cutoff.
DELETE FROM procrastinate_jobs
WHERE id IN (
    SELECT j.id FROM procrastinate_jobs j
    WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
      AND NOT EXISTS (
          SELECT 1 FROM procrastinate_events e WHERE e.job_id = j.id AND e.at >= %(cutoff)s
      )
    LIMIT %(batch)s
);

-- metrics_snapshot --
-- What /metrics reports of the queue and the work waiting in it, in one statement (the
-- caller caches it, so scrapes cannot multiply it): jobs per queue and state (a JSON
-- list), how long the oldest due job has been due, workers that heartbeated within
-- alive_seconds and the age of the freshest heartbeat (NULL: no worker registered),
-- deliveries waiting for a retry, unsent failure emails and the age of the oldest one,
-- and failed deliveries no email has taken yet (inside the window, or held by the
-- address limit). Each part reads only open rows: partial indexes on the jobs, the
-- deliveries, the notices and the reports, and one row per worker.
SELECT
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'queue', queue_name, 'due', due, 'scheduled', scheduled, 'running', running)
                ORDER BY queue_name), '[]'::jsonb)
     FROM (
         SELECT queue_name,
                count(*) FILTER (WHERE status = 'todo'
                                   AND (scheduled_at IS NULL OR scheduled_at <= now())) AS due,
                count(*) FILTER (WHERE status = 'todo' AND scheduled_at > now()) AS scheduled,
                count(*) FILTER (WHERE status = 'doing') AS running
         FROM procrastinate_jobs
         WHERE status IN ('todo', 'doing')
         GROUP BY queue_name
     ) q) AS depths,
    (SELECT coalesce(extract(epoch FROM now() - min(coalesce(j.scheduled_at, e.at))), 0)::float
     FROM procrastinate_jobs j
     LEFT JOIN LATERAL (
         SELECT min(at) AS at FROM procrastinate_events
         WHERE job_id = j.id AND type = 'deferred'
     ) e ON j.scheduled_at IS NULL
     WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now()))
        AS oldest_due_seconds,
    (SELECT count(*) FROM procrastinate_workers
     WHERE last_heartbeat > now() - make_interval(secs => %(alive_seconds)s)) AS workers_up,
    (SELECT extract(epoch FROM now() - max(last_heartbeat))::float FROM procrastinate_workers)
        AS heartbeat_age_seconds,
    (SELECT count(*) FROM deliveries WHERE status = 'RETRYING') AS retries_pending,
    (SELECT count(*) FROM failure_notices WHERE sent_at IS NULL) AS emails_unsent,
    (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float
     FROM failure_notices WHERE sent_at IS NULL) AS oldest_unsent_email_seconds,
    (SELECT count(*) FROM failed_delivery_reports WHERE notice_id IS NULL)
        AS failures_unreported;

-- release_held_deliveries --
-- A subscription's ordering was switched off: its HELD deliveries go now, each with the
-- job of its first attempt. They stay counted in their queues, so when ordering comes
-- back, a new delivery of a subject waits until every one of them has ended.
WITH released AS (
    UPDATE deliveries SET status = 'PENDING', next_attempt_at = now()
    WHERE subscription_id = %(subscription_id)s AND in_queue AND status = 'HELD'
    RETURNING id, cycle, attempt_count
), queued AS (
    SELECT procrastinate_defer_jobs_v1(array_agg(
               ROW(%(queue)s::varchar, %(task)s::varchar, %(priority)s::integer, id::text,
                   NULL, jsonb_build_object('delivery_id', id::text, 'cycle', cycle,
                                            'attempt', attempt_count + 1), NULL
               )::procrastinate_job_to_defer_v1)) AS job_ids
    FROM released
)
SELECT (SELECT count(*) FROM released) AS released,
       coalesce((SELECT cardinality(job_ids) FROM queued), 0) AS jobs;
