"""Values and rules: settings, errors, ids, validation, masking, signing, the target policy,
the secret box, logging. Pure or close to it; imports nothing else of the app.
"""
