"""carebridge mappings: pure translation between municipal documents and FHIR R4.

No I/O beyond parsing: every function takes bytes, text or models and returns models,
dicts or bytes.
"""
