-- The delivery job is finished by the statement that records its attempt.
--
-- A first attempt cost the worker four statements: Procrastinate's fetch, the load of the
-- delivery, record_attempt (sql/queries/attempts.sql) and Procrastinate's finish_job.
-- record_attempt now ends the job itself, through this function, and the worker's job
-- manager (app/store/queue.py) then skips its own finish of that job: three statements,
-- and one commit fewer (README, Performance, round 3).
--
-- It does what procrastinate_finish_job_v1(job_id, 'succeeded', delete_job) does (the
-- worker's finish of a task that returned), word for word, with one difference: a job
-- that is no longer open is no error but false, so that the attempt is recorded all the
-- same (the job was re-queued as stalled while its worker was paused, and another worker
-- finished it; RejoiningJobManager lets that pass the same way). The status update fires
-- Procrastinate's own triggers, so its events (and its admin and CLI) see the job
-- succeeded, or gone when the worker deletes successful jobs. A Procrastinate upgrade that
-- changes how a job is finished is to be carried over here
-- (tests/integration/test_job_finished_with_attempt.py compares the two).
--
-- record_attempt runs as webhooks_worker, which may not delete jobs (nor write
-- procrastinate_periodic_defers, which Procrastinate's delete trigger updates): the
-- function runs as its owner, as Procrastinate's own finish does on the owner's pool, and
-- only the worker's role may call it.

CREATE FUNCTION webhooks_finish_job_v1(job_id bigint, delete_job boolean)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path FROM CURRENT
AS $$
DECLARE
    _job_id bigint;
BEGIN
    IF delete_job THEN
        DELETE FROM procrastinate_jobs
        WHERE id = job_id AND status IN ('todo', 'doing')
        RETURNING id INTO _job_id;
    ELSE
        UPDATE procrastinate_jobs
        SET status = 'succeeded',
            abort_requested = false,
            attempts = CASE status
                WHEN 'doing' THEN attempts + 1 ELSE attempts
            END
        WHERE id = job_id AND status IN ('todo', 'doing')
        RETURNING id INTO _job_id;
    END IF;
    RETURN _job_id IS NOT NULL;
END;
$$;

REVOKE EXECUTE ON FUNCTION webhooks_finish_job_v1(bigint, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION webhooks_finish_job_v1(bigint, boolean) TO webhooks_worker;
