"""The API's domain: companies, API keys, webhook types, subscriptions, events, deliveries,
redelivery, secret rotation, retention. Imports app.store and app.core, never app.delivery.

Functions take the parts they use (``db``, ``box``, ``queue``, a small frozen value of the
settings they read), never the process's ``Services``: the signature says what is touched.

Tenancy is expressed one way: a function working for an API caller takes its ``Viewer``
and confines itself by ``viewer.read_scope`` (reads) or ``viewer.own_company`` (a company's
configuration; it raises for a PUBLISHER key), never by a bare company id, which cannot say
who asks or what they may see. A function without a viewer works for the system: the CLI's
administration (companies, api_keys, secret_rotation), authentication, the worker's
retention, the shared catalogue (webhook_types), and ``publish_event``, whose input names
the company. Row-level security is unchanged underneath: whoever learns who is asking
binds the database scope (``bind_scope`` in app/store/database.py).
"""
