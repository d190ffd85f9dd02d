"""Inbound from the region: subscription notifications turned into municipal documents, delivered via the outbox.

    notification.parse(bundle)            -> Notification (event type, focus references)
    regional.RegionalReader(base_url)     -> reads the changed resources (and what they reference)
    changes.translate(resource, reader)   -> municipal documents (canonical model) for a change
    municipal.enqueue(...)                -> queued in the outbox for the municipal endpoint or folder
    municipal.MunicipalGateway            -> what the outbox worker delivers those messages with
"""
