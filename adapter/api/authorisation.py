"""Authorisation per organisation: who may submit, read, replay and search what.

- A caller needs the scope of what it does (``documents.write``, ``documents.read``, ...).
- It submits only documents its organisation speaks for (the document's senders, see
  ``adapter.api.parties``), and reads only documents its organisation submitted, sent or is
  named in (recipient, performer, participant).
- A document about a person with skyddad folkbokföring or sekretessmarkering is readable only
  with the ``protected-identity.read`` scope, whoever the caller is.

Every refusal is a 403 with an OperationOutcome, and the access AuditEvent records why.
"""

from __future__ import annotations

from typing import Any

from adapter.api import principal as scopes
from adapter.api.access import note
from adapter.api.errors import ApiError
from adapter.api.parties import Parties
from adapter.api.principal import Principal


def forbid(request: Any, reason: str) -> ApiError:
    """A 403 whose reason also goes into the access AuditEvent."""
    note(request).refusal = reason
    return ApiError(403, f"forbidden: {reason}", code="forbidden")


def require_scope(request: Any, principal: Principal, scope: str) -> None:
    """Refuse unless the caller was granted ``scope``."""
    if not principal.has(scope):
        raise forbid(request, f"the caller lacks scope {scope}")


def require_submitter(request: Any, principal: Principal, parties: Parties) -> None:
    """Refuse unless the caller's organisation is one the document speaks for."""
    if not parties.senders:
        raise forbid(request, "the document names no sending organisation, so it cannot be attributed")
    if not parties.sent_by(principal.organisation):
        raise forbid(request, f"organisation {principal.organisation} may not submit a document sent by "
                              f"{', '.join(sorted(parties.senders))}")


def require_reader(request: Any, principal: Principal, parties: Parties, submitter: str | None = None) -> None:
    """Refuse unless the caller's organisation submitted or is named in the document (and may see protected persons)."""
    if not (parties.involves(principal.organisation) or principal.organisation == submitter):
        raise forbid(request, f"organisation {principal.organisation} neither sent nor is named in this document")
    require_protected_scope(request, principal, parties)


def require_protected_scope(request: Any, principal: Principal, parties: Parties) -> None:
    """Refuse documents of persons with skyddad folkbokföring unless the caller has the explicit scope."""
    if parties.protected and not principal.has(scopes.PROTECTED):
        raise forbid(request, f"the person has skyddad folkbokföring; scope {scopes.PROTECTED} required")
