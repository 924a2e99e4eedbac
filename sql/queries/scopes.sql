-- enter_scope --
-- Confine the rest of this transaction to a service role and (for COMPANY keys) a company.
SELECT set_config('role', %(role)s, true),
       set_config('webhooks.company_id', coalesce(%(company_id)s, ''), true);
