-- The worker learns when the next scheduled job comes due, from the fetch that found
-- nothing to do (fetch_job in sql/queries/queue.sql), and sleeps until then rather than
-- a whole poll interval: a retry due at T starts at T, not up to one interval later.
--
-- That look-up wants the earliest scheduled_at still in the future, of any priority.
-- Migration 0011's index on scheduled jobs leads with priority, so it cannot answer
-- "the earliest" in one descent; with 20,000 retries waiting it would read them all at
-- every idle fetch. This one answers it with one descent from now(). Only scheduled jobs
-- (retries, paced attempts, failure emails) are in it: a first attempt (scheduled_at
-- NULL) costs no more to queue or to take.
CREATE INDEX procrastinate_jobs_todo_due_at_idx ON procrastinate_jobs (scheduled_at)
    WHERE status = 'todo' AND scheduled_at IS NOT NULL;
