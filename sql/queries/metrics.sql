-- queue_depth --
-- Jobs waiting per queue: due now, scheduled for later, and running.
SELECT queue_name,
       count(*) FILTER (WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now()))
           AS due,
       count(*) FILTER (WHERE status = 'todo' AND scheduled_at > now()) AS scheduled,
       count(*) FILTER (WHERE status = 'doing') AS running
FROM procrastinate_jobs
WHERE status IN ('todo', 'doing')
GROUP BY queue_name;

-- oldest_due_job_age --
-- Seconds since the oldest due job became due (0 when none waits): how far behind we are.
SELECT coalesce(extract(epoch FROM now() - min(coalesce(j.scheduled_at, e.at))), 0)::float
    AS seconds
FROM procrastinate_jobs j
LEFT JOIN LATERAL (
    SELECT min(at) AS at FROM procrastinate_events
    WHERE job_id = j.id AND type = 'deferred'
) e ON j.scheduled_at IS NULL
WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now());
