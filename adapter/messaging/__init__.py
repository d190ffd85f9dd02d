"""FHIR messaging for the discharge process (lag 2017:612): receive, acknowledge, dedupe, act.

    from adapter.messaging import Receiver, SqlReceiptStore, TaskEffects
    store = SqlReceiptStore.open(database_url())          # the outbox database
    receiver = Receiver(store, effects=TaskEffects(gateway), inbox=DirectoryInbox(path))
    ack_bytes = receiver.receive(message_bytes)

`sender.send_message` posts a message Bundle to a FHIR server's `$process-message` and reads
the acknowledgement. The rules (MedCom's four-case dedupe, what is stored, the Task state
machine) are in docs/flows/discharge.md.
"""

from adapter.messaging.effects import TaskChange, TaskEffects, task_effect
from adapter.messaging.receipts import Receipt, ReceiptStore, SqlReceiptStore
from adapter.messaging.receiver import DirectoryInbox, Inbox, NotAMessageError, Processed, Receiver

__all__ = ["DirectoryInbox", "Inbox", "NotAMessageError", "Processed", "Receipt", "ReceiptStore", "Receiver",
           "SqlReceiptStore", "TaskChange", "TaskEffects", "task_effect"]
