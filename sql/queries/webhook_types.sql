-- list_webhook_types --
-- The catalogue of webhooks a company can subscribe to.
SELECT key, name, description, payload_schema, sample_payload, subject_pointer,
       status_pointer, updated_at
FROM webhook_types ORDER BY key;

-- get_webhook_type --
-- One type of the catalogue by key.
SELECT key, name, description, payload_schema, sample_payload, subject_pointer,
       status_pointer, updated_at
FROM webhook_types WHERE key = %(key)s;

-- put_webhook_type --
-- Create a type, or replace every field of the one with this key; returns nothing when
-- that changes nothing (so updated_at, the version running processes cache by, stays).
-- The documents compare as JSON values (jsonb), so a file that only reorders keys or
-- spacing is no change.
-- created: the row is new (xmax is 0 for a row this statement inserted).
INSERT INTO webhook_types AS w (key, name, description, payload_schema, sample_payload,
                                subject_pointer, status_pointer, updated_at)
VALUES (%(key)s, %(name)s, %(description)s, %(payload_schema)s, %(sample_payload)s,
        %(subject_pointer)s, %(status_pointer)s, now())
ON CONFLICT (key) DO UPDATE SET
    name = EXCLUDED.name, description = EXCLUDED.description,
    payload_schema = EXCLUDED.payload_schema, sample_payload = EXCLUDED.sample_payload,
    subject_pointer = EXCLUDED.subject_pointer, status_pointer = EXCLUDED.status_pointer,
    updated_at = now()
WHERE (w.name, w.description, w.payload_schema::jsonb, w.sample_payload::jsonb,
       w.subject_pointer, w.status_pointer)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.description, EXCLUDED.payload_schema::jsonb,
                        EXCLUDED.sample_payload::jsonb, EXCLUDED.subject_pointer,
                        EXCLUDED.status_pointer)
RETURNING key, name, description, payload_schema, sample_payload, subject_pointer,
          status_pointer, updated_at, xmax = 0 AS created;

-- get_payload_rules --
-- What publishing checks a payload with: the type's version and subject pointer, and
-- its schema only when the caller has not compiled this version (cached_version).
SELECT updated_at, subject_pointer,
       CASE WHEN updated_at = %(cached_version)s::timestamptz THEN NULL
            ELSE payload_schema END AS payload_schema
FROM webhook_types WHERE key = %(key)s;
