-- Ordered delivery per subject (issue 14, part 1).
--
-- A subscription with ordering PER_SUBJECT sends the deliveries that share a subject
-- (the order id) strictly in publish order: a later one is not attempted until every
-- earlier one has ended. Each (subscription, subject) has a queue row: the last sequence
-- number given out and how many of its deliveries are open. The fan-out takes a number
-- with INSERT ... ON CONFLICT DO UPDATE on that row (its row lock orders concurrent
-- publishes of one subject, and the update sees the latest committed row); a delivery
-- that finds another open one before it is HELD (no job) instead of PENDING.
--
-- When a queued delivery ends (SUCCEEDED, FAILED, CANCELLED: by any statement), the
-- triggers below take it out of its queue and, in the same transaction, hand the queue
-- to the next one: the HELD delivery with the lowest sequence becomes PENDING with the
-- job of its first attempt. If the subscription is closed (inactive or deleted) they
-- cancel the queue's HELD deliveries instead, so cancelling a subscription's open
-- deliveries cancels the held ones too, without releasing them first.
--
-- in_queue says a delivery is counted in its queue's open_count; a manual redelivery of an
-- ordered delivery runs outside the queue (in_queue stays false) and releases nothing.
-- Queue rows are never deleted: numbering of a subject never starts over.

ALTER TABLE subscriptions
    ADD COLUMN ordering text NOT NULL DEFAULT 'NONE'
        CONSTRAINT subscriptions_ordering CHECK (ordering IN ('NONE', 'PER_SUBJECT'));

ALTER TABLE deliveries
    DROP CONSTRAINT deliveries_status_check,
    ADD CONSTRAINT deliveries_status_check
        CHECK (status IN ('PENDING', 'RETRYING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'HELD')),
    -- Its number in its (subscription, subject) queue: the webhook-sequence header.
    ADD COLUMN sequence bigint,
    ADD COLUMN in_queue boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT deliveries_queued_are_open_and_numbered
        CHECK (NOT in_queue OR (status IN ('PENDING', 'RETRYING', 'HELD')
                                AND subject IS NOT NULL AND sequence IS NOT NULL)),
    ADD CONSTRAINT deliveries_held_are_queued CHECK (status <> 'HELD' OR in_queue);

-- The open deliveries of each queue, in order: who is next, who is sending, what to cancel.
CREATE INDEX deliveries_subject_queue
    ON deliveries (subscription_id, subject, sequence) WHERE in_queue;

CREATE TABLE subject_queues (
    subscription_id  uuid NOT NULL REFERENCES subscriptions (id),
    subject          text NOT NULL,
    company_id       text NOT NULL REFERENCES companies (id),
    last_sequence    bigint NOT NULL,
    -- Its deliveries with in_queue: the one being sent and those HELD behind it. Never
    -- below zero: a bookkeeping error fails its statement instead of passing silently.
    open_count       integer NOT NULL CHECK (open_count >= 0),
    PRIMARY KEY (subscription_id, subject)
);

-- A queued delivery that ends leaves its queue (BEFORE: the row is written so).
CREATE FUNCTION webhooks_leave_subject_queue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.in_queue := false;
    RETURN NEW;
END;
$$;

CREATE TRIGGER deliveries_leave_subject_queue
    BEFORE UPDATE ON deliveries
    FOR EACH ROW
    WHEN (OLD.in_queue AND NEW.status IN ('SUCCEEDED', 'FAILED', 'CANCELLED'))
    EXECUTE FUNCTION webhooks_leave_subject_queue();

-- ... and hands its queue on (AFTER). The arguments are the queue, task and priority of
-- a delivery job (app/store/queue.py: DELIVERY_QUEUE, DELIVER_TASK, DEFAULT_PRIORITY;
-- tests/integration/test_subject_ordering.py holds them together).
--
-- Lock order: the ended delivery (locked by the statement that ended it), then the queue
-- row, then the next delivery. Each statement here takes a fresh snapshot (READ
-- COMMITTED), so once the queue row is ours it sees every delivery that a publish of
-- this subject committed while this one waited for the row.
CREATE FUNCTION webhooks_hand_on_subject_queue() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    subscription_open boolean;
    job_ids bigint[];
BEGIN
    UPDATE subject_queues SET open_count = open_count - 1
    WHERE subscription_id = OLD.subscription_id AND subject = OLD.subject;

    SELECT s.is_active AND s.deleted_at IS NULL INTO subscription_open
    FROM subscriptions s WHERE s.id = OLD.subscription_id;
    IF NOT coalesce(subscription_open, false) THEN
        -- Nothing more goes to it: what waited behind this one is cancelled (each of
        -- those leaves the queue through these triggers in turn, finding nothing held).
        UPDATE deliveries SET status = 'CANCELLED', completed_at = now(), next_attempt_at = NULL
        WHERE subscription_id = OLD.subscription_id AND subject = OLD.subject
          AND in_queue AND status = 'HELD';
        RETURN NULL;
    END IF;

    -- The next one goes only when none of its queue is being sent (after ordering was
    -- switched off and on again, several may be).
    WITH released AS (
        UPDATE deliveries d SET status = 'PENDING', next_attempt_at = now()
        WHERE d.id = (
            SELECT n.id FROM deliveries n
            WHERE n.subscription_id = OLD.subscription_id AND n.subject = OLD.subject
              AND n.in_queue AND n.status = 'HELD'
              AND NOT EXISTS (
                  SELECT 1 FROM deliveries h
                  WHERE h.subscription_id = OLD.subscription_id AND h.subject = OLD.subject
                    AND h.in_queue AND h.status IN ('PENDING', 'RETRYING')
              )
            ORDER BY n.sequence
            LIMIT 1
            FOR UPDATE
        ) AND d.status = 'HELD'
        RETURNING d.id, d.cycle, d.attempt_count
    )
    SELECT procrastinate_defer_jobs_v1(array_agg(
               ROW(TG_ARGV[0]::varchar, TG_ARGV[1]::varchar, TG_ARGV[2]::integer, id::text,
                   NULL, jsonb_build_object('delivery_id', id::text, 'cycle', cycle,
                                            'attempt', attempt_count + 1), NULL
               )::procrastinate_job_to_defer_v1))
    INTO job_ids
    FROM released;
    RETURN NULL;
END;
$$;

-- Triggers of one event fire in name order: this one after deliveries_notify_update, so
-- live updates tell of the end before they tell of the next one let go.
CREATE TRIGGER deliveries_pass_on_subject_queue
    AFTER UPDATE ON deliveries
    FOR EACH ROW
    WHEN (OLD.in_queue AND NOT NEW.in_queue AND NEW.status IN ('SUCCEEDED', 'FAILED', 'CANCELLED'))
    EXECUTE FUNCTION webhooks_hand_on_subject_queue('deliveries', 'deliver_webhook', '0');

-- Rights. The publisher numbers the deliveries it fans out: it reads a subscription's
-- ordering (as it reads the compiled filter: how the fan-out treats it, not where it
-- sends) and writes the queue rows. A COMPANY key's test events run the same fan-out
-- statement (a test event is never numbered, but the statement's INSERT needs the
-- right all the same). The worker and a COMPANY key's requests end deliveries
-- (attempts, cancellations), so the triggers update queue rows as them.
GRANT SELECT (ordering) ON subscriptions TO webhooks_publisher;
GRANT SELECT, INSERT, UPDATE ON subject_queues TO webhooks_publisher, webhooks_api;
GRANT SELECT, UPDATE ON subject_queues TO webhooks_worker;

ALTER TABLE subject_queues ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_scope ON subject_queues TO webhooks_api
    USING (company_id = current_setting('webhooks.company_id', true))
    WITH CHECK (company_id = current_setting('webhooks.company_id', true));
CREATE POLICY publisher_publish ON subject_queues TO webhooks_publisher
    USING (true) WITH CHECK (true);
CREATE POLICY worker_all ON subject_queues TO webhooks_worker USING (true);
