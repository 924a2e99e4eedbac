"""The API's domain: companies, API keys, webhook types, subscriptions, events, deliveries,
redelivery, secret rotation, retention. Imports app.store and app.core, never app.delivery.
"""
