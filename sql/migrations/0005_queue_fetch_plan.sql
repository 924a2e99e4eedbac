-- Procrastinate's job fetch keeps a good plan through a burst of new jobs.
--
-- A worker takes each job with procrastinate_fetch_job_v2, whose query wants the first
-- 'todo' job in (priority DESC, id) order that no other open job with the same lock
-- holds back. Planned with statistics from a near-empty queue (the steady state, since
-- successful jobs are deleted), PostgreSQL sorts every 'todo' job and checks the lock of
-- each one before taking the first: every fetch costs as much as the whole backlog, so a
-- burst drains in quadratic time. Measured (python -m bench, phase B): 6,000 no-op jobs
-- drained at ~80 jobs/s, against ~560 jobs/s once the table was analyzed; the plan
-- stays bad until autovacuum analyzes the table, up to a minute later, and a worker
-- connection keeps the function's cached plan until then.
--
-- Without sorting, the planner reads the partial index on (priority DESC, id) in order
-- and stops at the first job it can take, whatever the statistics say; with a handful of
-- jobs that plan is as cheap as the other. The setting holds only while this function
-- runs. A Procrastinate upgrade that replaces the function drops it: the test
-- tests/integration/test_queue_fetch_plan.py fails then, to be carried over.

ALTER FUNCTION procrastinate_fetch_job_v2(character varying[], bigint) SET enable_sort = off;
