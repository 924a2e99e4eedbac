"""The HTTP application: routes, middleware (isolation, body limits, rate limits, the
websocket guard), probes and GraphiQL. Mounts the GraphQL schema of ``schema/``.
"""
