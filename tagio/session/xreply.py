"""Reading one reply off an X connection that this process speaks to with struct.

Theory of operation. A few hot paths of the host talk to the X server on a connection of their own,
after python-xlib opened and authenticated it (tagio.session.cursor's QueryPointer,
tagio.session.xshm's ShmGetImage): they write a request and read its 32-byte reply. No events are
asked for on those connections, but the server sends some to every client anyway: MappingNotify
after any change of the keyboard mapping (TagIO's own key injection borrows spare keycodes for
characters the keyboard lacks, so it happens during a session). Taking such an event for the reply
would leave the reader one reply behind for good, so `read_reply` skips events and returns the
first reply. Every packet the server sends starts with 32 bytes; replies and generic events say
how many more follow (byte 4, in 4-byte units), which are read and dropped.
"""

import struct

PACKET = 32                 # every reply, error and event starts with 32 bytes
ERROR, REPLY, GENERIC_EVENT = 0, 1, 35
_LENGTH = struct.Struct("=I")       # a reply's extra length in 4-byte units, at byte 4 (native
                                    # order: python-xlib speaks the host's byte order)


def read_reply(sock, head=b"") -> bytes:
    """The first 32 bytes of the next reply on `sock`, reading on from the bytes `head` already
    read; events before it are skipped. Raises OSError for an X error, ConnectionResetError when
    the server closed the connection."""
    while True:
        head = read_exactly(sock, head, PACKET)
        kind = head[0] & 0x7F
        if kind == ERROR:
            raise OSError(f"the X server answered with X error {head[1]}")
        extra = 4 * _LENGTH.unpack_from(head, 4)[0] if kind in (REPLY, GENERIC_EVENT) else 0
        if extra:
            read_exactly(sock, b"", extra)
        if kind == REPLY:
            return head
        head = b""


def read_exactly(sock, data, size) -> bytes:
    """`data` plus what `sock` gives until there are `size` bytes."""
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            raise ConnectionResetError("the X server closed the connection")
        data += more
    return data
