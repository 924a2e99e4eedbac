-- How often the maintenance loop re-queued a delivery's current attempt because no job
-- was left for it (a job lost in a crash, or one that failed for good). Recording an
-- attempt sets it back to 0; past a bound the attempt is given up (the delivery FAILED,
-- its notification email sent) instead of being sent again and again.
ALTER TABLE deliveries ADD COLUMN requeues integer NOT NULL DEFAULT 0;
