"""Storage: the database seam, the named queries, migrations, the job queue (every defer,
every statement on Procrastinate's tables) and the live-update hub. Imports only app.core.
"""
