"""Processes: the CLI, the server and worker runners, worker supervision, ``webhooks dev``
and the local PostgreSQL cluster it starts. The top layer: nothing imports it.
"""
