-- list_webhook_types --
-- The catalogue of webhooks a company can subscribe to.
SELECT key, name, description, sample_payload FROM webhook_types ORDER BY key;
