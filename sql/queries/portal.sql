-- insert_portal_link --
-- Store a new portal link's token hash; the token itself is never stored.
INSERT INTO portal_links (token_hash, company_id, api_key_prefix, access, expires_at)
VALUES (
    %(token_hash)s, %(company_id)s, %(api_key_prefix)s, %(access)s,
    now() + make_interval(secs => %(expires_in_seconds)s)
)
RETURNING expires_at;

-- consume_portal_link --
-- Use a link once: only an unused, unexpired link whose minting key still stands. Two
-- concurrent opens both wait for the row; the second sees used_at set and gets nothing.
UPDATE portal_links l SET used_at = now()
WHERE l.token_hash = %(token_hash)s
  AND l.used_at IS NULL
  AND l.expires_at > now()
  AND NOT EXISTS (
      SELECT 1 FROM api_keys k
      WHERE k.prefix = l.api_key_prefix AND k.revoked_at IS NOT NULL
  )
RETURNING l.company_id, l.api_key_prefix, l.access;

-- insert_portal_session --
-- A session for a consumed link; its id is stored hashed.
INSERT INTO portal_sessions (session_hash, company_id, api_key_prefix, access, expires_at)
VALUES (
    %(session_hash)s, %(company_id)s, %(api_key_prefix)s, %(access)s,
    now() + make_interval(secs => %(session_seconds)s)
)
RETURNING expires_at;

-- get_portal_session --
-- A live session with its company: unexpired, and its minting key not revoked.
SELECT s.company_id, c.name AS company_name, c.portal_embed_origins, s.api_key_prefix,
       s.access, s.expires_at
FROM portal_sessions s
JOIN companies c ON c.id = s.company_id
LEFT JOIN api_keys k ON k.prefix = s.api_key_prefix
WHERE s.session_hash = %(session_hash)s
  AND s.expires_at > now()
  AND k.revoked_at IS NULL;

-- get_portal_embed_origins --
-- The origins allowed to frame a company's portal.
SELECT portal_embed_origins FROM companies WHERE id = %(company_id)s;

-- set_portal_embed_origins --
-- Replace a company's embed origins.
UPDATE companies SET portal_embed_origins = %(origins)s
WHERE id = %(company_id)s
RETURNING portal_embed_origins;

-- purge_portal_links --
-- A batch of expired links (used or not): nothing can open them any more.
DELETE FROM portal_links
WHERE token_hash IN (
    SELECT token_hash FROM portal_links WHERE expires_at < now() LIMIT %(batch)s
);

-- purge_portal_sessions --
-- A batch of expired sessions.
DELETE FROM portal_sessions
WHERE session_hash IN (
    SELECT session_hash FROM portal_sessions WHERE expires_at < now() LIMIT %(batch)s
);
