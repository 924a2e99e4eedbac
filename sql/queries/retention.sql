-- purge_attempt_details --
-- A batch of attempts of succeeded deliveries completed before the cutoff: their bodies
-- and errors go (the delivery keeps its status, count and last response status).
UPDATE delivery_attempts a SET response_body = NULL, error = NULL
WHERE (a.delivery_id, a.cycle, a.number) IN (
    SELECT a2.delivery_id, a2.cycle, a2.number
    FROM deliveries d JOIN delivery_attempts a2 ON a2.delivery_id = d.id
    WHERE d.status = 'SUCCEEDED' AND d.completed_at < %(cutoff)s
      AND (a2.response_body IS NOT NULL OR a2.error IS NOT NULL)
    LIMIT %(batch)s
);

-- purge_event_bodies --
-- A batch of events older than the cutoff whose every delivery succeeded: the delivered
-- bytes go (they cannot be redelivered any more; the payload stays readable).
UPDATE events e SET body = NULL
WHERE e.id IN (
    SELECT e2.id FROM events e2
    WHERE e2.created_at < %(cutoff)s AND e2.body IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM deliveries d WHERE d.event_id = e2.id AND d.status <> 'SUCCEEDED'
      )
    LIMIT %(batch)s
);
