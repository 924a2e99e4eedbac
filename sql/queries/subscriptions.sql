-- insert_subscription --
-- Create a subscription; returns nothing when the same target already exists.
INSERT INTO subscriptions (
    id, company_id, webhook_key, callback_url, notification_email, api_key_params, headers,
    max_deliveries_per_second,
    is_active, description, signing_secret,
    filter, filter_path, ordering
) VALUES (
    %(id)s, %(company_id)s, %(webhook_key)s, %(callback_url)s, %(notification_email)s,
    %(api_key_params)s, %(headers)s,
    %(max_deliveries_per_second)s,
    %(is_active)s, %(description)s, %(signing_secret)s,
    %(filter)s, %(filter_path)s::jsonpath, %(ordering)s
)
ON CONFLICT (company_id, webhook_key, callback_url) WHERE deleted_at IS NULL DO NOTHING
RETURNING id, company_id, webhook_key, callback_url, notification_email, api_key_params, headers,
          max_deliveries_per_second,
          is_active, description, created_at, updated_at,
          filter, ordering;

-- get_subscription --
-- One live subscription of a company.
SELECT id, company_id, webhook_key, callback_url, notification_email, api_key_params, headers,
       max_deliveries_per_second,
       is_active, description, created_at, updated_at,
       filter, ordering
FROM subscriptions
WHERE id = %(id)s AND company_id = %(company_id)s AND deleted_at IS NULL;

-- get_subscription_for_update --
-- Lock one live subscription of a company for a change. FOR NO KEY UPDATE, not FOR
-- UPDATE: a change never touches its id, and the fan-out's inserts of its deliveries and
-- queue rows take key-share locks on it (their foreign keys). FOR UPDATE made a publish
-- of an ordered subject wait for this transaction while holding the subject's queue row,
-- which the cancellation of the subscription's deliveries then waited for: a deadlock.
SELECT id, company_id, webhook_key, callback_url, notification_email, api_key_params, headers,
       max_deliveries_per_second,
       is_active, description, created_at, updated_at,
       filter, ordering
FROM subscriptions
WHERE id = %(id)s AND company_id = %(company_id)s AND deleted_at IS NULL
FOR NO KEY UPDATE;

-- get_subscriptions_any_company --
-- Subscriptions by id whatever their company or state (DataLoader for deliveries, which
-- are already scoped); deleted ones are still readable through their past deliveries.
SELECT id, company_id, webhook_key, callback_url, notification_email, api_key_params, headers,
       max_deliveries_per_second,
       is_active, description, created_at, updated_at,
       filter, ordering
FROM subscriptions
WHERE id = ANY(%(ids)s);

-- get_subscription_summaries --
-- Subscriptions by id without their configuration (PUBLISHER keys, through deliveries:
-- see migration 0009), whatever their company or state.
SELECT id, company_id, webhook_key, is_active, created_at, updated_at
FROM subscriptions
WHERE id = ANY(%(ids)s);

-- list_subscriptions --
-- One page of a company's live subscriptions, newest first (keyset).
SELECT id, company_id, webhook_key, callback_url, notification_email, api_key_params, headers,
       max_deliveries_per_second,
       is_active, description, created_at, updated_at,
       filter, ordering
FROM subscriptions
WHERE company_id = %(company_id)s AND deleted_at IS NULL
  AND (%(webhook_key)s::text IS NULL OR webhook_key = %(webhook_key)s)
  AND (%(is_active)s::boolean IS NULL OR is_active = %(is_active)s)
  AND (%(after_created_at)s::timestamptz IS NULL
       OR (created_at, id) < (%(after_created_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- update_subscription --
-- Apply a validated change; NULL arguments keep the current value.
UPDATE subscriptions SET
    callback_url = coalesce(%(callback_url)s, callback_url),
    notification_email = coalesce(%(notification_email)s, notification_email),
    api_key_params = coalesce(%(api_key_params)s, api_key_params),
    headers = coalesce(%(headers)s, headers),
    max_deliveries_per_second = CASE WHEN %(set_rate)s THEN %(max_deliveries_per_second)s::integer
                                     ELSE max_deliveries_per_second END,
    is_active = coalesce(%(is_active)s, is_active),
    description = CASE WHEN %(set_description)s THEN %(description)s ELSE description END,
    filter = CASE WHEN %(set_filter)s THEN %(filter)s ELSE filter END,
    filter_path = CASE WHEN %(set_filter)s THEN %(filter_path)s::jsonpath ELSE filter_path END,
    ordering = coalesce(%(ordering)s, ordering),
    deactivated_reason = CASE WHEN coalesce(%(is_active)s, is_active) THEN NULL
                              ELSE deactivated_reason END,
    updated_at = now()
WHERE id = %(id)s AND company_id = %(company_id)s AND deleted_at IS NULL
RETURNING id, company_id, webhook_key, callback_url, notification_email, api_key_params, headers,
          max_deliveries_per_second,
          is_active, description, created_at, updated_at,
          filter, ordering;

-- delete_subscription --
-- Soft-delete: past deliveries keep pointing at it and stay queryable.
UPDATE subscriptions SET deleted_at = now(), is_active = false, updated_at = now()
WHERE id = %(id)s AND company_id = %(company_id)s AND deleted_at IS NULL
RETURNING id;


-- rotate_signing_secret --
-- Install a new signing secret; the current one keeps signing alongside until expiry.
UPDATE subscriptions SET
    previous_signing_secret = signing_secret,
    previous_secret_expires_at = %(previous_expires_at)s,
    signing_secret = %(signing_secret)s,
    updated_at = now()
WHERE id = %(id)s AND company_id = %(company_id)s AND deleted_at IS NULL
RETURNING id, company_id, webhook_key, callback_url, notification_email, api_key_params, headers,
          max_deliveries_per_second,
          is_active, description, created_at, updated_at,
          filter, ordering;

-- subscriptions_with_secrets --
-- A batch of subscriptions (deleted ones too) with their encrypted secrets, by id.
SELECT id, signing_secret, previous_signing_secret, api_key_params, headers
FROM subscriptions
WHERE (%(after_id)s::uuid IS NULL OR id > %(after_id)s)
ORDER BY id
LIMIT %(limit)s
FOR UPDATE;

-- store_reencrypted_secrets --
-- Replace a subscription's encrypted secrets with their re-encrypted forms.
UPDATE subscriptions SET signing_secret = %(signing_secret)s,
    previous_signing_secret = %(previous_signing_secret)s,
    api_key_params = %(api_key_params)s,
    headers = %(headers)s
WHERE id = %(id)s;
