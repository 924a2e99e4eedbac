-- insert_company --
-- Create a company; returns nothing when the id is taken.
INSERT INTO companies (id, name) VALUES (%(id)s, %(name)s)
ON CONFLICT (id) DO NOTHING
RETURNING id, name, created_at;

-- get_company --
-- One company by id.
SELECT id, name, created_at FROM companies WHERE id = %(id)s;

-- get_companies --
-- Several companies by id (DataLoader batch).
SELECT id, name, created_at FROM companies WHERE id = ANY(%(ids)s);

-- list_companies --
-- Every company, oldest first (CLI).
SELECT id, name, created_at FROM companies ORDER BY created_at, id;
