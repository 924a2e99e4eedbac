-- insert_api_key --
-- Store a new API key's hash; the key itself is never stored.
INSERT INTO api_keys (prefix, key_hash, role, company_id)
VALUES (%(prefix)s, %(key_hash)s, %(role)s, %(company_id)s)
RETURNING id, prefix, role, company_id, created_at, revoked_at;

-- get_api_key_by_prefix --
-- The key row a presented key claims to be, with its hash for the constant-time check.
SELECT k.id, k.prefix, k.key_hash, k.role, k.company_id, k.revoked_at, c.name AS company_name
FROM api_keys k LEFT JOIN companies c ON c.id = k.company_id
WHERE k.prefix = %(prefix)s;

-- list_api_keys --
-- Keys, optionally of one company, newest first; never the hash.
SELECT prefix, role, company_id, created_at, revoked_at
FROM api_keys
WHERE (%(company_id)s::text IS NULL OR company_id = %(company_id)s)
ORDER BY created_at DESC, prefix;

-- revoke_api_key --
-- Revoke a key by its prefix; revoking twice keeps the first time.
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE prefix = %(prefix)s
RETURNING prefix, role, company_id, created_at, revoked_at;
