-- Failure emails are sent with no database connection held, and each address is rate limited.
--
-- The email job used to keep a transaction open (the notice locked FOR UPDATE) for the
-- whole SMTP conversation, so a slow mail server held a pooled connection per pending
-- email and starved every delivery of the worker. Now the job leases a notice in a short
-- transaction (leased_until), commits, talks to SMTP with no connection, then records
-- the outcome in another short transaction. A sender that crashes mid-send leaves the
-- lease to run out, and the notice is taken again then: it is retried, not lost.
--
-- recipient keeps the address a notice was opened for: notices per address in the last
-- hour and day are what the per-address limit counts (app/address_limit.py), across
-- companies, so that no tenant can make the service mail an address at will.

ALTER TABLE failure_notices
    ADD COLUMN leased_until timestamptz,
    ADD COLUMN recipient text;

CREATE INDEX failure_notices_recipient ON failure_notices (lower(recipient), created_at)
    WHERE recipient IS NOT NULL;
