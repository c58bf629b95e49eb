"""The states of a file transfer and their one transition table each.

Theory of operation. A transfer we send (files_send.Outgoing) is OFFERED until the receiver's
Accept, SENDING while the pump yields its data, ENDING once End went out, and DONE at the Summary;
a transfer we receive (files_receive.Incoming) is ASKED (our Fetch went out), RECEIVING, then DONE
at End. Either may end FAILED (an Error for the whole transfer) or CANCELLED (a Cancel, or the
session ended). The engine (tagio.session.files) moves them with `fire(transfer, event)`; a pair
the table does not hold is the partner breaking the protocol. Late messages after a cancel or a
failure are in the tables too, and ignored: they were on their way.
"""

import enum

from tagio.errors import RemoteProtocolError
from tagio.session.files_receive import Incoming
from tagio.session.files_send import Outgoing


class Sending(enum.Enum):
    OFFERED = "offered"
    SENDING = "sending"
    ENDING = "ending"       # End sent, waiting for the Summary
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Receiving(enum.Enum):
    ASKED = "asked"         # we sent Fetch, the offer has not come
    RECEIVING = "receiving"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


_S, _R = Sending, Receiving
_SEND_LATE = ("accept", "summary", "file_error", "error", "cancel", "end_sent")
SEND_TABLE = {
    (_S.OFFERED, "accept"): _S.SENDING,
    (_S.SENDING, "file_error"): _S.SENDING,
    (_S.SENDING, "end_sent"): _S.ENDING,
    (_S.ENDING, "file_error"): _S.ENDING,
    (_S.ENDING, "summary"): _S.DONE,
    **{(s, "error"): _S.FAILED for s in (_S.OFFERED, _S.SENDING, _S.ENDING)},
    **{(s, "cancel"): _S.CANCELLED for s in (_S.OFFERED, _S.SENDING, _S.ENDING)},
    **{(s, e): s for s in (_S.FAILED, _S.CANCELLED) for e in _SEND_LATE},
}
_RECEIVE_LATE = ("chunk", "done", "end", "file_error", "error", "cancel", "offer")
RECEIVE_TABLE = {
    (_R.ASKED, "offer"): _R.RECEIVING,
    **{(_R.RECEIVING, e): _R.RECEIVING for e in ("chunk", "done", "file_error")},
    (_R.RECEIVING, "end"): _R.DONE,
    **{(s, "error"): _R.FAILED for s in (_R.ASKED, _R.RECEIVING)},
    **{(s, "cancel"): _R.CANCELLED for s in (_R.ASKED, _R.RECEIVING)},
    **{(s, e): s for s in (_R.FAILED, _R.CANCELLED) for e in _RECEIVE_LATE},
}
_TABLES = {Outgoing: SEND_TABLE, Incoming: RECEIVE_TABLE}
_FINAL = {_S.DONE, _S.FAILED, _S.CANCELLED, _R.DONE, _R.FAILED, _R.CANCELLED}


def fire(transfer, event):
    """Move `transfer` (which has .state) along its table. Raises RemoteProtocolError for a pair
    the table does not hold: the partner sent something that makes no sense now."""
    table = _TABLES[type(transfer)]
    new = table.get((transfer.state, event))
    if new is None:
        raise RemoteProtocolError(f"transfer {transfer.tid}: {event} while {transfer.state.value}")
    old, transfer.state = transfer.state, new
    return old != new
