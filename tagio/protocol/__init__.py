"""tagio.protocol: the relay wire protocol, sans-I/O.

framing (header, FrameDecoder), fields (payload codecs), messages (type-code table), websocket
(RFC 6455 framing for HTTPS-only front ends). Nothing here touches a socket.
"""
