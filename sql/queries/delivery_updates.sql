-- listen_delivery_updates --
-- Subscribe this connection to the announcements of delivery changes.
LISTEN webhooks_delivery_updates;
