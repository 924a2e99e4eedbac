-- Live delivery updates: every change of a delivery is announced on a channel that each
-- API process LISTENs to, so websocket subscribers hear of it whichever process (API or
-- worker) made the change. The payload carries ids only; listeners load the delivery
-- through their own, company-scoped, queries.

CREATE FUNCTION webhooks_notify_delivery_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'webhooks_delivery_updates',
        json_build_object(
            'id', NEW.id,
            'company_id', NEW.company_id,
            'subscription_id', NEW.subscription_id,
            'subject', NEW.subject,
            'status', NEW.status
        )::text
    );
    RETURN NULL;
END;
$$;

CREATE TRIGGER deliveries_notify_update
    AFTER INSERT OR UPDATE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION webhooks_notify_delivery_update();
