"""The carebridge API (FastAPI): documents in, status, $validate, dead letters, audit log, inbound from the region.

    from adapter.api.app import create_app
    app = create_app(settings, outbox)        # settings: adapter.api.settings.load(path)

Module map: ``app`` (factory), ``settings``, ``principal`` (callers and scopes), ``tokens`` (JWT),
``mtls`` (client certificates), ``auth`` (401), ``authorisation`` (403), ``parties`` (who a
document involves), ``access`` (AuditEvents for API access), ``limits`` (413/429/503),
``errors`` (OperationOutcome answers), ``routes/`` (one module per area). FastAPI is imported
only by these modules, never on the CLI's start path.
"""
