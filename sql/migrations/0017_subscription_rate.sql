-- A delivery rate per subscription (issue 14, part 2): at most so many deliveries a
-- second, all worker processes together, measured at the receiver over any one-second
-- window.
--
-- max_deliveries_per_second is the subscriber's setting (NULL: no limit). The API and
-- worker roles hold table-wide rights on subscriptions, which cover it; the publisher's
-- are column by column (0009) and do not: like the rest of the configuration, it is not
-- the publisher's to read.
ALTER TABLE subscriptions
    ADD COLUMN max_deliveries_per_second integer
        CONSTRAINT subscriptions_rate_range CHECK (max_deliveries_per_second BETWEEN 1 AND 1000);

-- The pacing of each rate-limited subscription, kept apart from its wide, often-read row
-- (the fan-out's, the API's): a narrow row updated once per attempt. next_slot is the
-- first moment no attempt holds yet; an attempt takes greatest(next_slot, now()) and
-- moves it on by 1/rate, in one statement (sql/queries/pacing.sql), so slots never
-- overlap however many workers reserve at once. per_second is the rate the slots were
-- spaced for: a different one starts the pacing afresh from now (the rate was changed).
-- Only the worker touches it; a subscription's row appears with its first paced attempt.
CREATE TABLE subscription_pacing (
    subscription_id uuid PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    per_second integer NOT NULL,
    next_slot timestamptz NOT NULL
);

GRANT SELECT, INSERT, UPDATE ON subscription_pacing TO webhooks_worker;
ALTER TABLE subscription_pacing ENABLE ROW LEVEL SECURITY;
CREATE POLICY worker_all ON subscription_pacing TO webhooks_worker USING (true);
