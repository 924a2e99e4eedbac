-- Procrastinate's job fetch no longer reads the jobs scheduled for later.
--
-- procrastinate_fetch_job_v2 wants the first 'todo' job in (priority DESC, id) order
-- that is due (scheduled_at NULL or past) and that no open job with the same lock holds
-- back. It walks procrastinate_jobs_priority_idx_v1 in that order (migration 0005) and
-- fetches every row it passes to check scheduled_at. A retry waits six minutes, at the
-- default priority, with an id smaller than every new job's: each fetch of a new job
-- first passed every waiting retry, so its cost grew with the retry backlog (20,000
-- retries waiting: about 20,000 buffers a fetch against 1, and the burst rate fell by
-- a third). No index fixes that walk: its order cannot skip rows by scheduled_at, and a
-- partial index cannot mention now().
--
-- The function below takes the job level by level, highest priority first (a level is
-- found with one descent of the priority index). On each level:
--
-- - jobs queued for now (scheduled_at NULL) in id order, from an index of their own:
--   every row it passes is due;
-- - jobs scheduled for a time, from an index on (priority, scheduled_at, id), scanned
--   only up to now(): the first rows are the ones that came due first, and the scan
--   stops at the first row still in the future.
--
-- It takes the one of the two with the smaller id. So the order is Procrastinate's
-- (priority, then id) with one difference: among scheduled jobs of one priority that
-- are all due, the one that came due first goes first, not the one queued first. That
-- keeps the cost constant when thousands come due at once, too (an exact id order would
-- have to read all of those). Queues, locks (the NOT EXISTS check is Procrastinate's,
-- word for word, but for the collation, see below), SKIP LOCKED and the 'doing' update are
-- unchanged. Each of the two candidate rows is locked FOR UPDATE SKIP LOCKED; the one
-- not taken stays locked only until the fetch's own transaction ends (Procrastinate
-- fetches in autocommit), and another worker skips it meanwhile, as SKIP LOCKED does
-- with any row being taken.
--
-- The settings of migrations 0005 and 0008 are kept (CREATE OR REPLACE replaces them).
-- A Procrastinate upgrade that redefines the function undoes this file:
-- tests/integration/test_queue_fetch_backlog.py fails then, to be carried over.

CREATE INDEX procrastinate_jobs_todo_now_idx ON procrastinate_jobs (priority DESC, id)
    WHERE status = 'todo' AND scheduled_at IS NULL;

CREATE INDEX procrastinate_jobs_todo_scheduled_idx
    ON procrastinate_jobs (priority DESC, scheduled_at, id)
    WHERE status = 'todo' AND scheduled_at IS NOT NULL;

-- The lock check's index. Migration 0008's index on lock served it too, but planned
-- with the statistics of an empty queue (vacuumed between bursts, reltuples 0) every
-- index on lock costs the same, and Procrastinate's (id, lock) index, considered first,
-- won the tie: the check then read that whole index, every waiting retry's entry (184 of
-- a fetch's 278 buffers with 20,000 retries waiting). Compared in the "C" collation, the
-- only index that can answer is this one. For a deterministic collation (the database's
-- default always is) equality is byte equality, so the check means the same.
DROP INDEX procrastinate_jobs_open_lock_idx;
CREATE INDEX procrastinate_jobs_open_lock_c_idx ON procrastinate_jobs (lock COLLATE "C")
    WHERE status IN ('todo', 'doing') AND lock IS NOT NULL;

CREATE OR REPLACE FUNCTION procrastinate_fetch_job_v2(
    target_queue_names character varying[],
    p_worker_id bigint
)
    RETURNS procrastinate_jobs
    LANGUAGE plpgsql
    SET enable_sort = off
    SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    found_jobs procrastinate_jobs;
    level integer;
    now_id bigint;
    scheduled_id bigint;
BEGIN
    -- ORDER BY ... LIMIT 1 rather than max(): planned on an empty table, max() became
    -- an aggregate over the whole index.
    SELECT jobs.priority INTO level
        FROM procrastinate_jobs AS jobs
        WHERE jobs.status = 'todo'
        ORDER BY jobs.priority DESC LIMIT 1;
    WHILE level IS NOT NULL LOOP
        SELECT jobs.id INTO now_id
            FROM procrastinate_jobs AS jobs
            WHERE
                jobs.status = 'todo'
                AND jobs.scheduled_at IS NULL
                AND jobs.priority = level
                AND (target_queue_names IS NULL OR jobs.queue_name = ANY( target_queue_names ))
                AND NOT EXISTS (
                    SELECT 1
                        FROM procrastinate_jobs AS other_jobs
                        WHERE
                            jobs.lock IS NOT NULL
                            AND other_jobs.lock COLLATE "C" = jobs.lock COLLATE "C"
                            AND (
                                other_jobs.status = 'doing'
                                OR (
                                    other_jobs.status = 'todo'
                                    AND (
                                        other_jobs.priority > jobs.priority
                                        OR (
                                            other_jobs.priority = jobs.priority
                                            AND other_jobs.id < jobs.id
                                        )
                                    )
                                )
                            )
                )
            ORDER BY jobs.id ASC LIMIT 1
            FOR UPDATE OF jobs SKIP LOCKED;
        SELECT jobs.id INTO scheduled_id
            FROM procrastinate_jobs AS jobs
            WHERE
                jobs.status = 'todo'
                AND jobs.scheduled_at IS NOT NULL
                AND jobs.priority = level
                AND jobs.scheduled_at <= now()
                AND (target_queue_names IS NULL OR jobs.queue_name = ANY( target_queue_names ))
                AND NOT EXISTS (
                    SELECT 1
                        FROM procrastinate_jobs AS other_jobs
                        WHERE
                            jobs.lock IS NOT NULL
                            AND other_jobs.lock COLLATE "C" = jobs.lock COLLATE "C"
                            AND (
                                other_jobs.status = 'doing'
                                OR (
                                    other_jobs.status = 'todo'
                                    AND (
                                        other_jobs.priority > jobs.priority
                                        OR (
                                            other_jobs.priority = jobs.priority
                                            AND other_jobs.id < jobs.id
                                        )
                                    )
                                )
                            )
                )
            ORDER BY jobs.scheduled_at ASC, jobs.id ASC LIMIT 1
            FOR UPDATE OF jobs SKIP LOCKED;
        IF now_id IS NOT NULL OR scheduled_id IS NOT NULL THEN
            UPDATE procrastinate_jobs
                SET status = 'doing', worker_id = p_worker_id
                WHERE procrastinate_jobs.id = least(now_id, scheduled_id)
                RETURNING procrastinate_jobs.* INTO found_jobs;
            RETURN found_jobs;
        END IF;
        SELECT jobs.priority INTO level
            FROM procrastinate_jobs AS jobs
            WHERE jobs.status = 'todo' AND jobs.priority < level
            ORDER BY jobs.priority DESC LIMIT 1;
    END LOOP;
    RETURN found_jobs;
END;
$$;
