-- The webhook service's own tables.
--
-- Companies own everything a customer sees; every tenant table carries company_id so
-- that queries (and row-level security) can confine a key to its own company.
-- Externally visible ids are random UUIDs, never sequences.

CREATE TABLE companies (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    prefix       text NOT NULL UNIQUE,
    key_hash     bytea NOT NULL,
    role         text NOT NULL CHECK (role IN ('COMPANY', 'PUBLISHER')),
    company_id   text REFERENCES companies (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CHECK ((role = 'COMPANY') = (company_id IS NOT NULL))
);
CREATE INDEX api_keys_company_idx ON api_keys (company_id, created_at DESC);

CREATE TABLE webhook_types (
    key             text PRIMARY KEY CHECK (key ~ '^[A-Z][A-Z0-9_]{0,63}$'),
    name            text NOT NULL,
    description     text NOT NULL,
    sample_payload  jsonb NOT NULL CHECK (jsonb_typeof(sample_payload) = 'object')
);

INSERT INTO webhook_types (key, name, description, sample_payload) VALUES (
    'ORDER_STATUS',
    'Order Status',
    'Sent whenever an order changes status, from placement through scheduling, '
    'shooting, editing and delivery of the media.',
    '{"orderId": "ord_12345", "status": "SCHEDULED", "previousStatus": "PLACED",
      "address": "123 Main St, Denver, CO 80202", "scheduledFor": "2026-12-01T15:00:00Z",
      "updatedAt": "2026-11-28T06:00:00Z"}'
);

CREATE TABLE subscriptions (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id              text NOT NULL REFERENCES companies (id),
    webhook_key             text NOT NULL REFERENCES webhook_types (key),
    callback_url            text NOT NULL,
    notification_email      text NOT NULL,
    -- [{"name": ..., "value": <encrypted>, "hint": "••••3f9a"}]; values never leave in clear.
    api_key_params          jsonb NOT NULL DEFAULT '[]',
    is_active               boolean NOT NULL DEFAULT true,
    description             text,
    signing_secret          text NOT NULL,
    previous_signing_secret text,
    previous_secret_expires_at timestamptz,
    deactivated_reason      text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz
);
CREATE UNIQUE INDEX subscriptions_unique_target
    ON subscriptions (company_id, webhook_key, callback_url) WHERE deleted_at IS NULL;
CREATE INDEX subscriptions_company_page
    ON subscriptions (company_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX subscriptions_fanout
    ON subscriptions (company_id, webhook_key) WHERE deleted_at IS NULL AND is_active;

CREATE TABLE events (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id       text NOT NULL REFERENCES companies (id),
    webhook_key      text NOT NULL REFERENCES webhook_types (key),
    subject          text,
    payload          jsonb NOT NULL,
    idempotency_key  text,
    is_test          boolean NOT NULL DEFAULT false,
    -- The exact bytes POSTed for this event on every attempt of every delivery, fixed
    -- at publish time; stored once however many subscriptions it fans out to.
    body             bytea,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX events_idempotency
    ON events (company_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_company_page ON events (company_id, created_at DESC, id DESC);
CREATE INDEX events_company_subject ON events (company_id, subject, created_at DESC, id DESC);
CREATE INDEX events_page ON events (created_at DESC, id DESC);

CREATE TABLE deliveries (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The webhook-id header: the receiver's deduplication key, stable across attempts.
    webhook_id            text NOT NULL UNIQUE CHECK (position('.' IN webhook_id) = 0),
    company_id            text NOT NULL REFERENCES companies (id),
    event_id              uuid NOT NULL REFERENCES events (id),
    subscription_id       uuid NOT NULL REFERENCES subscriptions (id),
    webhook_key           text NOT NULL,
    subject               text,
    status                text NOT NULL DEFAULT 'PENDING'
                          CHECK (status IN ('PENDING', 'RETRYING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    -- A redelivery starts a new cycle; attempt numbers restart at 1 within it.
    cycle                 integer NOT NULL DEFAULT 1,
    attempt_count         integer NOT NULL DEFAULT 0,
    max_attempts          integer NOT NULL,
    next_attempt_at       timestamptz,
    last_attempt_at       timestamptz,
    last_response_status  integer,
    created_at            timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz,
    UNIQUE (event_id, subscription_id)
);
CREATE INDEX deliveries_company_page ON deliveries (company_id, created_at DESC, id DESC);
CREATE INDEX deliveries_company_status
    ON deliveries (company_id, status, created_at DESC, id DESC);
CREATE INDEX deliveries_subscription_page
    ON deliveries (subscription_id, created_at DESC, id DESC);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_page ON deliveries (created_at DESC, id DESC);
CREATE INDEX deliveries_open
    ON deliveries (subscription_id) WHERE status IN ('PENDING', 'RETRYING');

CREATE TABLE delivery_attempts (
    delivery_id      uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    cycle            integer NOT NULL,
    number           integer NOT NULL CHECK (number >= 1),
    company_id       text NOT NULL,
    started_at       timestamptz NOT NULL,
    duration_ms      integer NOT NULL,
    response_status  integer,
    response_body    text,
    error            text,
    succeeded        boolean NOT NULL,
    -- One row per attempt: a replayed job can never record the same attempt twice.
    PRIMARY KEY (delivery_id, cycle, number)
);

-- Failed deliveries waiting to be reported by email, grouped per subscription.
CREATE TABLE failure_notices (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id       text NOT NULL,
    subscription_id  uuid NOT NULL REFERENCES subscriptions (id),
    reason           text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    send_attempts    integer NOT NULL DEFAULT 0,
    last_error       text
);
CREATE INDEX failure_notices_unsent ON failure_notices (subscription_id) WHERE sent_at IS NULL;

CREATE TABLE failed_delivery_reports (
    delivery_id      uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    cycle            integer NOT NULL,
    subscription_id  uuid NOT NULL,
    company_id       text NOT NULL,
    notice_id        uuid REFERENCES failure_notices (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (delivery_id, cycle)
);
CREATE INDEX failed_delivery_reports_pending
    ON failed_delivery_reports (subscription_id, created_at) WHERE notice_id IS NULL;
