-- The portal's access (issue 15, part 1): single-use links, sessions, embed origins.
--
-- Neither a link's token nor a session id is stored: only their SHA-256 (both are 32
-- random bytes, so a slow hash would add nothing), as for API keys. api_key_prefix is
-- the COMPANY key that minted the link (NULL: the operator's CLI); revoking that key
-- refuses its unused links and ends its sessions (the lookups join api_keys).
--
-- Opening a link and looking a session up happen before there is a caller, so they run
-- as the owner, like API-key authentication. A COMPANY key mints links and lists its
-- embed origins in its own scope: the policies below confine it to its company.

ALTER TABLE companies
    ADD COLUMN portal_embed_origins text[] NOT NULL DEFAULT '{}'
        CONSTRAINT companies_portal_embed_origins_count
            CHECK (cardinality(portal_embed_origins) <= 20);

CREATE TABLE portal_links (
    token_hash      bytea PRIMARY KEY,
    company_id      text NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    api_key_prefix  text REFERENCES api_keys (prefix) ON DELETE CASCADE,
    access          text NOT NULL CHECK (access IN ('READ_ONLY', 'FULL')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
-- Retention deletes by expiry.
CREATE INDEX portal_links_expires_idx ON portal_links (expires_at);

CREATE TABLE portal_sessions (
    session_hash    bytea PRIMARY KEY,
    company_id      text NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    api_key_prefix  text REFERENCES api_keys (prefix) ON DELETE CASCADE,
    access          text NOT NULL CHECK (access IN ('READ_ONLY', 'FULL')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX portal_sessions_expires_idx ON portal_sessions (expires_at);

GRANT SELECT, INSERT ON portal_links TO webhooks_api;
GRANT UPDATE (portal_embed_origins) ON companies TO webhooks_api;

ALTER TABLE portal_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE portal_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY company_scope ON portal_links TO webhooks_api
    USING (company_id = current_setting('webhooks.company_id', true))
    WITH CHECK (company_id = current_setting('webhooks.company_id', true));
