-- Procrastinate's job fetch reads less and plans once, and takes the same job as before.
--
-- After migration 0005 (which fixed the plan's shape: walk the (priority, id) index, stop
-- at the first job that can be taken), pg_stat_statements during python -m bench on
-- PostgreSQL 15 still showed the fetch as a job's dearest statement: 270-560 us and 105-166
-- buffers a call in phases B and C. Two causes, both removed here.
--
-- 1. The lock check read every open job. Before taking a job, the fetch checks that no
--    other open job holds its lock (NOT EXISTS ... other_jobs.lock = jobs.lock AND
--    other_jobs.status = 'doing' OR an earlier 'todo' job ...). Procrastinate's only index
--    for it is procrastinate_jobs_id_lock_idx_v1 on (id, lock): lock is its second
--    column, so every fetch read the whole index, every waiting job plus the entries of
--    finished jobs that vacuum had not removed yet (EXPLAIN (ANALYZE, BUFFERS), 9,000 jobs
--    waiting: 102 of the fetch's 117 buffers). So the fetch got dearer with the backlog,
--    and in a steady stream with an empty queue between vacuums too (28 to 172 buffers a
--    call in 40 s at 300 jobs/s, once that index's dead entries were not cleaned on the
--    way). With lock first, the check is one lookup, 3 buffers. Jobs without a lock skip
--    the check, hence NOT NULL. The planner chose this index in every state tried (empty
--    table, unanalyzed and analyzed backlog; generic and custom plans): an equality on a
--    leading column costs less than a full index scan, even in an empty table.
--
-- 2. The fetch's statement was planned again on many calls. PL/pgSQL keeps a generic
--    plan, or makes a custom plan at every call when the generic one's estimate is higher.
--    The generic plan cannot see which queues the worker asks for, so after the table is
--    analyzed with jobs waiting its estimate can stay above the custom plans' for
--    thousands of calls, each planned at 330-390 us: 3,854 of 15,121 fetches in one run
--    of phase C, 3,736 of 12,007 in one of B, a few dozen in others. Both plans walk the
--    same index the same way (0005) and check the lock as above. Forcing the generic plan
--    plans once per connection, and again after each ANALYZE or VACUUM of the table.
--
-- Together, per fetch in phases B and C: 57-68 buffers, 170-330 us (pg_stat_statements),
-- and at most a few dozen plans a run. The index costs each deferred job about 2-4 more
-- buffers. Neither change touches which job is taken: an index is an access path, and
-- the plan cache mode only decides when the plan is made. A Procrastinate upgrade that
-- replaces the function drops the setting, and one that rebuilds the table drops the
-- index: tests/integration/test_queue_fetch_plan.py and test_queue_lock_index.py fail.

CREATE INDEX procrastinate_jobs_open_lock_idx ON procrastinate_jobs (lock)
    WHERE status IN ('todo', 'doing') AND lock IS NOT NULL;

ALTER FUNCTION procrastinate_fetch_job_v2(character varying[], bigint)
    SET plan_cache_mode = force_generic_plan;
