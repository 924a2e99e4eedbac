"""The delivery engine: making an attempt, the transport, fairness, endpoint health, failure
notices and their email, the worker's runtime. Imports app.store and app.core, never
app.domain.
"""
