-- worker_heartbeat --
-- A worker's heartbeat; puts its registration back when another worker pruned it as
-- stalled (the worker was paused, not dead), so the jobs it fetches can name it again.
INSERT INTO procrastinate_workers (id, last_heartbeat) OVERRIDING SYSTEM VALUE
VALUES (%(worker_id)s, now())
ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat;
