-- The worker takes several due jobs in one statement.
--
-- Procrastinate's worker fetches one job per statement, one statement after the other:
-- each is a round trip and, in autocommit, a commit of its own (the 'doing' update), so
-- a commit's WAL flush on a durable server. That serial loop bounded a worker's rate
-- (README, Performance, round 3: "Fetching jobs in batches"). The worker now asks for as
-- many jobs as it has free slots (PunctualWorker in app/store/queue.py), and this function
-- takes them in one statement.
--
-- It is migration 0011's procrastinate_fetch_job_v2 taking up to max_jobs jobs where that
-- takes one: level by level, highest priority first; on each level up to the jobs still
-- wanted from each of its two indexes (queued for now, in id order; scheduled and due, in
-- the order they came due), merged as successive one-job fetches would take them (each
-- takes the smaller id of the two lists' next candidates). Queues, the lock check (Procrastinate's, word for
-- word, as in 0011), SKIP LOCKED and the 'doing' update are the same. The lock check lets
-- through only the lowest open job of a lock, and none while one is 'doing', so a batch
-- holds at most one job per lock, the one successive fetches would have taken. Candidates
-- locked and not taken stay locked until the statement's transaction ends (the worker
-- fetches in autocommit), and another worker skips them meanwhile, as SKIP LOCKED does
-- with any row being taken.
--
-- Why not procrastinate_fetch_job_v2 called in a loop: each call scans its index from
-- the start, past the entries of the jobs the calls before it set 'doing' (the partial
-- index still holds them until the transaction ends), so a batch of n cost n^2/2 heap
-- visits.
--
-- The worker starts every job of a batch at once (it asked for no more than it has free
-- slots), so a job taken here is running as any fetched job is: a stopping worker lets it
-- finish, a killed worker's is re-queued as stalled. A batch adds no job waiting unstarted
-- in a worker, and no duplicate delivery.
CREATE FUNCTION webhooks_fetch_jobs_v1(
    target_queue_names character varying[],
    p_worker_id bigint,
    max_jobs integer
)
    RETURNS SETOF procrastinate_jobs
    LANGUAGE plpgsql
    SET enable_sort = off
    SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    level integer;
    wanted integer := greatest(max_jobs, 0);
    now_ids bigint[];
    scheduled_ids bigint[];
    taken_ids bigint[];
    now_pos integer;
    sched_pos integer;
BEGIN
    IF wanted = 0 THEN
        RETURN;
    END IF;
    SELECT jobs.priority INTO level
        FROM procrastinate_jobs AS jobs
        WHERE jobs.status = 'todo'
        ORDER BY jobs.priority DESC LIMIT 1;
    WHILE level IS NOT NULL AND wanted > 0 LOOP
        now_ids := ARRAY(
            SELECT jobs.id
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
            ORDER BY jobs.id ASC LIMIT wanted
            FOR UPDATE OF jobs SKIP LOCKED
        );
        scheduled_ids := ARRAY(
            SELECT jobs.id
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
            ORDER BY jobs.scheduled_at ASC, jobs.id ASC LIMIT wanted
            FOR UPDATE OF jobs SKIP LOCKED
        );
        -- Merged as successive one-job fetches take them: the smaller id of the two
        -- lists' heads (the scheduled list in the order its jobs came due).
        taken_ids := '{}';
        now_pos := 1;
        sched_pos := 1;
        WHILE cardinality(taken_ids) < wanted
              AND (now_pos <= cardinality(now_ids) OR sched_pos <= cardinality(scheduled_ids))
        LOOP
            IF sched_pos > cardinality(scheduled_ids)
               OR (now_pos <= cardinality(now_ids) AND now_ids[now_pos] < scheduled_ids[sched_pos])
            THEN
                taken_ids := taken_ids || now_ids[now_pos];
                now_pos := now_pos + 1;
            ELSE
                taken_ids := taken_ids || scheduled_ids[sched_pos];
                sched_pos := sched_pos + 1;
            END IF;
        END LOOP;
        IF cardinality(taken_ids) > 0 THEN
            RETURN QUERY
                UPDATE procrastinate_jobs
                    SET status = 'doing', worker_id = p_worker_id
                    WHERE procrastinate_jobs.id = ANY(taken_ids)
                    RETURNING procrastinate_jobs.*;
            wanted := wanted - cardinality(taken_ids);
        END IF;
        SELECT jobs.priority INTO level
            FROM procrastinate_jobs AS jobs
            WHERE jobs.status = 'todo' AND jobs.priority < level
            ORDER BY jobs.priority DESC LIMIT 1;
    END LOOP;
    RETURN;
END;
$$;
