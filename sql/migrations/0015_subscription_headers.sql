-- Custom headers: a subscription's own HTTP headers, sent with every attempt (issue 13).
--
-- The sibling of api_key_params, in the same shape:
-- [{"name": "Authorization", "value": <encrypted>, "hint": "••••3f9a"}]. Each value is
-- sealed by app/core/secret_box.py for its subscription and header name, so a value
-- copied to another row or name does not decrypt; values never leave in clear.
--
-- The API and worker roles hold table-wide rights on subscriptions, which cover the new
-- column; the publisher's are column by column (0009) and do not: it cannot read them.

ALTER TABLE subscriptions ADD COLUMN headers jsonb NOT NULL DEFAULT '[]';
