"""A host and viewer channel pair across an emulated WAN link (tests/wanlink.py) on loopback, a
scene program on a private Xvfb, a host and viewer session over the link, and the pixel check that
the viewer's picture equals the host's screen: shared by the streaming tests."""

import socket
import threading

HOST_ID, VIEWER_ID, PASSWORD = "111111111", "222222222", "pw"

# The start of a scene program (scene_on_xvfb) that fills a W x H window (argv 1 and 2) without a
# window manager and has `base`, a smooth photo-like picture to change; the scene goes on from here.
PICTURE_SCENE = r"""
import sys, threading, tkinter as tk
from PIL import Image, ImageChops, ImageDraw, ImageTk
W, H = int(sys.argv[1]), int(sys.argv[2])
root = tk.Tk()
root.geometry(f"{W}x{H}+0+0")
root.overrideredirect(True)
base = Image.merge("RGB", [Image.linear_gradient("L").resize((W, H)), Image.radial_gradient("L").resize((W, H)),
                           Image.linear_gradient("L").rotate(90).resize((W, H))])
"""


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


def scene_on_xvfb(test, width, height, script, args=(), stdin=False):
    """(xvfb, scene): a private Xvfb of `width` x `height` with the program `script` (Python source,
    run with `args`) on it; its first line of output is returned with them. Skips `test` without
    Xvfb. Stopped by `test`'s cleanups."""
    import gc
    import subprocess
    import sys
    from tests.xvfb import Xvfb, xvfb_available
    # Tk objects left by earlier in-process Tk tests must be collected here, in the main thread:
    # collected by a cycle GC run in one of our worker threads, Tcl aborts the process.
    gc.collect()
    if not xvfb_available():
        test.skipTest("needs Xvfb and xdotool")
    xvfb = Xvfb(width=width, height=height).start()
    test.addCleanup(xvfb.stop)
    scene = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=xvfb.env(),
                             stdin=subprocess.PIPE if stdin else None, stdout=subprocess.PIPE, text=True)
    test.addCleanup(scene.wait, 5)
    test.addCleanup(scene.kill)
    return xvfb, scene, scene.stdout.readline().strip()


def session_over_link(test, display, rtt_ms, mbit, wrap=None, **host_options):
    """(host, viewer): a view-only HostSession at 30 fps on `display` and a ViewerSession across a
    WanLink of `rtt_ms` and `mbit`, started; the viewer's channel goes through `wrap` if given.
    Stopped by `test`'s cleanups."""
    from tagio.session.host import HostSession
    from tagio.session.viewer import ViewerSession
    host_channel, viewer_channel = channels_over_link(test, rtt_ms=rtt_ms, mbit=mbit)
    host = HostSession(host_channel, view_only=True, fps_cap=30, display=display, **host_options)
    viewer = ViewerSession(wrap(viewer_channel) if wrap else viewer_channel)
    host.start()
    viewer.start()
    test.addCleanup(host.stop)
    test.addCleanup(viewer.stop)
    return host, viewer


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
