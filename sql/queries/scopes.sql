-- enter_scope --
-- Confine the rest of this transaction to a service role and (for COMPANY keys) a company.
SELECT set_config('role', %(role)s, true),
       set_config('webhooks.company_id', coalesce(%(company_id)s, ''), true);

-- take_session_role --
-- A role pool's connection: the service role for the whole session (set_config with
-- is_local false is SET ROLE, and takes a parameter).
SELECT set_config('role', %(role)s, false);
