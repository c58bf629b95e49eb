"""tagio.protocol: every TagIO wire format, sans-I/O, and the one place for IDs, addresses, codes
and versions. Nothing here touches a socket; everything here may be imported by any layer above.

Wire formats (one codec style: message classes, a type-code -> class table MESSAGE_TYPES, encode()
-> bytes, decoders that raise only RemoteProtocolError for what the peer sent):
    framing, fields, relay   relay frames and control messages (TCP and UDP)
    handshake                SPAKE2 handshake messages (the state machine is crypto/handshake.py)
    records                  secure-channel record header (the AEAD is crypto/records.py)
    session                  session messages inside the secure channel
    rudp                     reliable-UDP datagrams (punches, data, acks)
    websocket                RFC 6455 framing for HTTPS-only front ends
    lan                      LAN announcements and queries
    direct                   the direct-TCP preamble
    proof                    the identity proofs inside a new secure channel
One place each:
    ids       9-digit IDs        address   host:port and relay URLs
    codes     relay error codes  version   versions and capability bits
"""
