-- orphaned_deliveries --
-- Open deliveries overdue by a margin with no queued or running job: a lost job
-- (e.g. one that crashed while the database was down) is re-queued from these.
SELECT d.id, d.cycle, d.attempt_count + 1 AS attempt FROM deliveries d
WHERE d.status IN ('PENDING', 'RETRYING')
  AND d.next_attempt_at < now() - make_interval(secs => %(grace_seconds)s)
  AND NOT EXISTS (
      SELECT 1 FROM procrastinate_jobs j
      WHERE j.lock = d.id::text AND j.status IN ('todo', 'doing')
  )
ORDER BY d.next_attempt_at
LIMIT %(limit)s;
