-- A change of a subscription's delivery rate restarts its pacing (review of issue 14).
--
-- The pacing row (0017) remembers the rate its slots were spaced for and the first free
-- moment. A rate changed and changed back (or removed and set again) before any attempt
-- reserved at the new one left that row as it was: attempts at the old rate again queued
-- behind slots that attempts long gone had taken. updateWebhookSubscription now deletes the
-- row in the transaction that changes the rate, so the next attempt starts from now.
--
-- The API's role may delete a pacing row, and only its own company's (the row has no
-- company of its own: its subscription's says). It reads the key column only, which its
-- DELETE's WHERE needs; where the slots stand stays the worker's to read and move.
GRANT SELECT (subscription_id), DELETE ON subscription_pacing TO webhooks_api;
CREATE POLICY company_scope ON subscription_pacing TO webhooks_api
    USING (EXISTS (
        SELECT 1 FROM subscriptions s
        WHERE s.id = subscription_pacing.subscription_id
          AND s.company_id = current_setting('webhooks.company_id', true)
    ));

-- The request each attempt sent, for a COMPANY key to read (DeliveryAttempt.request):
-- what its delivery and its number do not say. webhook_timestamp and signature are the
-- webhook-timestamp and webhook-signature headers as sent (the signature is no secret,
-- and the secrets may be rotated since), user_agent the version that sent it,
-- header_names the subscription's custom headers sent with it, in order (their values
-- are never kept here). NULL for attempts that sent nothing (a delivery given up) and for
-- those recorded before this migration. Like url (0009), the publisher does not read them.
ALTER TABLE delivery_attempts
    ADD COLUMN webhook_timestamp bigint,
    ADD COLUMN signature text,
    ADD COLUMN user_agent text,
    ADD COLUMN header_names text[];
