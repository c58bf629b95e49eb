"""A host and viewer channel pair across an emulated WAN link (tests/wanlink.py) on loopback, and
the pixel check that the viewer's picture equals the host's screen: shared by the streaming tests."""

import socket
import threading

HOST_ID, VIEWER_ID, PASSWORD = "111111111", "222222222", "pw"


def channels_over_link(test, rtt_ms, mbit):
    """(host_channel, viewer_channel): a real SPAKE2 handshake across a WanLink of `rtt_ms` and
    `mbit`; the sockets and the link are closed by `test`'s cleanups."""
    from tagio.crypto import handshake, kdf
    from tagio.net.stream import SocketStream
    from tests.wanlink import WanLink
    listener = socket.create_server(("127.0.0.1", 0))
    test.addCleanup(listener.close)
    link = WanLink(listener.getsockname(), rtt_ms=rtt_ms, mbit=mbit).start()
    test.addCleanup(link.close)
    viewer_sock = socket.create_connection(("127.0.0.1", link.port))
    host_sock, _ = listener.accept()
    session_id, box = b"s" * 16, {}
    thread = threading.Thread(target=lambda: box.update(host=handshake.host_handshake(
        SocketStream(host_sock, "direct-tcp"), [kdf.password_secret(PASSWORD, HOST_ID)],
        viewer_id=VIEWER_ID, host_id=HOST_ID, session_id=session_id)))
    thread.start()
    viewer_channel = handshake.viewer_handshake(SocketStream(viewer_sock, "direct-tcp"), PASSWORD,
                                                viewer_id=VIEWER_ID, host_id=HOST_ID,
                                                session_id=session_id)
    thread.join(15)
    return box["host"], viewer_channel


def screen(display):
    """The X screen `display` shows, as an RGB image (what the host captures)."""
    import mss
    from PIL import Image
    with mss.MSS(display=display) as sct:
        shot = sct.grab(sct.monitors[1])
        return Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")


def converged(viewer, display) -> bool:
    """The viewer's framebuffer equals the host's screen, pixel for pixel."""
    fb = viewer.framebuffer
    return fb is not None and fb.tobytes() == screen(display).tobytes()
