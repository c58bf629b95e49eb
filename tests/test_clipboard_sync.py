"""Clipboard sharing without a platform: the Clipboard message codec (golden vectors, bounds), the
sync decisions (echo suppression, limits and notices, off switches), the link's sender thread with
a recording fake backend, and the Windows backend's pure conversions (UTF-16, DIB <-> PNG)."""

import io
import struct
import threading
import unittest

from PIL import Image

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol import session as m
from tagio.session.clipboard import Content
from tagio.session.clipboard_sync import ClipboardLink, ClipboardSync, human_size
from tagio.session.clipboard_win import dib_to_png, png_to_dib, text_utf16, utf16_text


def png_bytes(image):
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def picture(mode="RGB", size=(7, 5)):
    image = Image.new(mode, size)
    image.putdata([((x * 37) % 256, (y * 51) % 256, (x * y * 13) % 256, 255 - x)[:len(mode)]
                   for y in range(size[1]) for x in range(size[0])])
    return image


PNG = png_bytes(picture())


class Message(unittest.TestCase):
    def test_golden_vectors(self):
        self.assertEqual(m.encode(m.Clipboard.of_text("copied")), b"\x09\x01\x00\x00\x00\x06copied")
        self.assertEqual(m.encode(m.Clipboard(m.CLIP_PNG, PNG)),
                         b"\x09\x02" + struct.pack("!I", len(PNG)) + PNG)
        self.assertEqual(m.encode(m.Clipboard(m.CLIP_TEXT, b"", 300000)), b"\x09\x01\x00\x04\x93\xe0")

    def test_round_trips(self):
        for msg in (m.Clipboard.of_text("héllo ✓"), m.Clipboard(m.CLIP_PNG, PNG),
                    m.Clipboard(m.CLIP_PNG, b"", 5 << 20), m.Clipboard.of_text("")):
            with self.subTest(msg=msg.mime):
                self.assertEqual(m.decode(m.encode(msg)), msg)
        self.assertEqual(m.decode(m.encode(m.Clipboard.of_text("héllo"))).text, "héllo")
        self.assertTrue(m.Clipboard(m.CLIP_TEXT, b"", 10).omitted)
        self.assertFalse(m.Clipboard.of_text("x").omitted)

    def test_limits_are_exact(self):
        at_limit = m.Clipboard(m.CLIP_TEXT, b"a" * m.MAX_CLIPBOARD)
        self.assertEqual(m.decode(m.encode(at_limit)), at_limit)
        with self.assertRaises(LocalProtocolError):
            m.encode(m.Clipboard(m.CLIP_TEXT, b"a" * (m.MAX_CLIPBOARD + 1)))
        with self.assertRaises(LocalProtocolError):
            m.encode(m.Clipboard("text/html", b"<b>"))
        image = m.Clipboard(m.CLIP_PNG, PNG + b"\0" * (m.MAX_CLIPBOARD_IMAGE - len(PNG)))
        self.assertLessEqual(len(m.encode(image)), m.MAX_MESSAGE)

    def test_malformed_is_the_peers_fault(self):
        cases = {
            b"\x09\x01\x00": "truncated",
            b"\x09\x07\x00\x00\x00\x01a": "unknown clipboard format 7",
            b"\x09\x01\x00\x00\x00\x05abc": "does not match",
            b"\x09\x01\x00\x00\x00\x02\xff\xfe": "not valid UTF-8",
            b"\x09\x02\x00\x00\x00\x03GIF": "not a PNG",
            b"\x09\x01" + struct.pack("!I", m.MAX_CLIPBOARD + 1) + b"a" * (m.MAX_CLIPBOARD + 1): "over",
        }
        for data, fragment in cases.items():
            with self.subTest(fragment=fragment):
                with self.assertRaises(RemoteProtocolError) as ctx:
                    m.decode(data)
                self.assertIn(fragment, str(ctx.exception))


class Recorder:
    def __init__(self, allowed=True):
        self.sent, self.applied, self.notices = [], [], []
        self.allowed = allowed
        self.sync = ClipboardSync(self.sent.append, lambda mime, data: self.applied.append((mime, data)),
                                  self.notices.append, lambda: self.allowed)


def text(value):
    data = value.encode("utf-8")
    return Content(m.CLIP_TEXT, data, len(data))


class Sync(unittest.TestCase):
    def test_a_local_change_is_sent_once(self):
        r = Recorder()
        r.sync.local_changed(text("one"))
        r.sync.local_changed(text("one"))      # a clipboard manager taking the same value over
        r.sync.local_changed(Content(m.CLIP_PNG, PNG, len(PNG)))
        self.assertEqual(r.sent, [m.Clipboard.of_text("one"), m.Clipboard(m.CLIP_PNG, PNG)])

    def test_the_partners_value_is_applied_and_not_sent_back(self):
        r = Recorder()
        r.sync.received(m.Clipboard.of_text("from the partner"))
        self.assertEqual(r.applied, [(m.CLIP_TEXT, b"from the partner")])
        r.sync.local_changed(text("from the partner"))     # our own write, seen as a change
        self.assertEqual(r.sent, [])
        r.sync.local_changed(text("mine"))
        r.sync.local_changed(text("from the partner"))     # copied again after something else: news
        self.assertEqual(r.sent, [m.Clipboard.of_text("mine"), m.Clipboard.of_text("from the partner")])

    def test_over_the_limit_is_a_notice_and_only_the_size_goes(self):
        r = Recorder()
        big = "é" * (m.MAX_CLIPBOARD // 2 + 1)
        r.sync.local_changed(text(big))
        self.assertEqual(r.sent, [m.Clipboard(m.CLIP_TEXT, b"", len(big.encode()))])
        size = len(big.encode())
        self.assertEqual(r.notices, [f"Clipboard not shared: the text you copied is {size:,} bytes, "
                                     "over the 262,144 bytes limit."])
        r.sync.local_changed(Content(m.CLIP_PNG, None, 3_000_000))     # the backend gave up reading
        self.assertEqual(r.sent[-1], m.Clipboard(m.CLIP_PNG, b"", 3_000_000))
        self.assertEqual(r.notices[-1], "Clipboard not shared: the image you copied is 2.9 MB, "
                                        "over the 1024 KB limit.")

    def test_the_partners_over_limit_value_is_a_notice(self):
        r = Recorder()
        r.sync.received(m.Clipboard(m.CLIP_TEXT, b"", 400_000))
        self.assertEqual(r.applied, [])
        self.assertEqual(r.notices, ["Clipboard not shared: the text your partner copied is 391 KB, "
                                     "over the 256 KB limit."])

    def test_off_means_nothing_either_way(self):
        r = Recorder()
        r.sync.enabled = False
        r.sync.local_changed(text("secret"))
        r.sync.received(m.Clipboard.of_text("theirs"))
        r.sync.received(m.Clipboard(m.CLIP_TEXT, b"", 400_000))
        self.assertEqual((r.sent, r.applied, r.notices), ([], [], []))
        r.sync.enabled = True       # positive control
        r.sync.local_changed(text("secret"))
        self.assertEqual(r.sent, [m.Clipboard.of_text("secret")])
        r.sync.enabled = False
        r.sync.enabled = True       # off and on: the partner may hold anything now
        r.sync.local_changed(text("secret"))
        self.assertEqual(r.sent, [m.Clipboard.of_text("secret")] * 2)

    def test_not_allowed_means_nothing_is_sent(self):
        # The viewer before the host's Hello, or with a view-only host: nothing of ours goes out;
        # what a sharing host sends (possibly ahead of its Hello's decoding) is still applied.
        r = Recorder(allowed=False)
        r.sync.local_changed(text("secret"))
        r.sync.local_changed(Content(m.CLIP_TEXT, None, 400_000))
        self.assertEqual((r.sent, r.notices), ([], []))
        r.sync.received(m.Clipboard.of_text("theirs"))
        self.assertEqual(r.applied, [(m.CLIP_TEXT, b"theirs")])
        r.allowed = True            # positive control
        r.sync.local_changed(text("secret"))
        self.assertEqual(r.sent, [m.Clipboard.of_text("secret")])

    def test_empty_and_unknown_formats_are_not_sent(self):
        r = Recorder()
        r.sync.local_changed(text(""))
        r.sync.local_changed(Content("text/html", b"<b>", 3))
        r.sync.local_changed(Content(m.CLIP_PNG, b"GIF89a...", 9))     # a program's odd "image"
        self.assertEqual(r.sent, [])

    def test_what_goes_out_always_decodes_on_the_other_side(self):
        r = Recorder()
        r.sync.local_changed(Content(m.CLIP_TEXT, b"caf\xe9 \xff", 6))    # Latin-1 from a platform tool
        self.assertEqual(r.sent, [m.Clipboard.of_text("caf\ufffd \ufffd")])
        self.assertEqual(m.decode(m.encode(r.sent[0])), r.sent[0])

    def test_human_size(self):
        self.assertEqual([human_size(n) for n in (12, 2048, 2560, 262144, 1_500_000, 300 << 20)],
                         ["12 bytes", "2 KB", "2.5 KB", "256 KB", "1.4 MB", "300 MB"])


class FakeBackend:
    def __init__(self, value=None):
        self.value, self.written, self.callback, self.closed = value, [], None, False

    def read(self):
        return self.value

    def write(self, mime, data):
        self.written.append((mime, data))

    def watch(self, callback):
        self.callback = callback

    def close(self):
        self.closed = True


class Link(unittest.TestCase):
    def test_changes_go_out_through_the_sender_thread_and_close_joins_it(self):
        sent, gate = [], threading.Event()
        backend = FakeBackend((m.CLIP_TEXT, b"copied before"))

        def send(msg):
            gate.wait(10)           # a slow channel: the backend's thread must not wait for it
            sent.append(msg)
        link = ClipboardLink(backend, send, lambda text: None).start()
        self.addCleanup(link.close)
        link.share_current()
        backend.callback(text("a"))
        backend.callback(text("b"))     # while "a" or the first read waits, newer values replace
        gate.set()
        deadline = threading.Event()
        for _ in range(100):
            if sent and sent[-1] == m.Clipboard.of_text("b"):
                break
            deadline.wait(0.05)
        self.assertEqual(sent[-1], m.Clipboard.of_text("b"))
        self.assertLessEqual(len(sent), 2)
        link.received(m.Clipboard.of_text("theirs"))
        self.assertEqual(backend.written, [(m.CLIP_TEXT, b"theirs")])
        link.close()
        self.assertTrue(backend.closed)
        self.assertFalse(link._thread.is_alive())

    def test_share_current_sends_what_the_clipboard_holds(self):
        sent, done = [], threading.Event()
        link = ClipboardLink(FakeBackend((m.CLIP_TEXT, b"held")),
                             lambda msg: (sent.append(msg), done.set()), lambda text: None).start()
        self.addCleanup(link.close)
        link.share_current()
        self.assertTrue(done.wait(10))
        self.assertEqual(sent, [m.Clipboard.of_text("held")])


class CapabilityGate(unittest.TestCase):
    """A host that does not share its clipboard says so in its Hello, and the viewer then keeps
    its own clipboard to itself (it does not even send it)."""
    LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses

    def test_the_host_offers_clipboard_bits_only_while_it_shares(self):
        from tagio.protocol.version import CAP_CLIPBOARD_IMAGE, CAP_CLIPBOARD_TEXT
        from tagio.session.host import HostSession
        host = HostSession(channel=None, clipboard=False)
        self.assertFalse(host._capabilities() & (CAP_CLIPBOARD_TEXT | CAP_CLIPBOARD_IMAGE))
        host.clipboard = object()                    # what _open_clipboard leaves when sharing
        self.assertTrue(host._capabilities() & CAP_CLIPBOARD_TEXT)

    def test_the_viewer_shares_only_with_a_host_that_offers_it(self):
        from tagio.protocol.version import CAP_CLIPBOARD_TEXT, SESSION_CAPABILITIES, SESSION_VERSION
        from tagio.session.viewer import ViewerSession
        for caps, flags, allowed in ((SESSION_CAPABILITIES, m.HELLO_INPUT, True),
                                     (SESSION_CAPABILITIES & ~CAP_CLIPBOARD_TEXT, m.HELLO_INPUT, False),
                                     (SESSION_CAPABILITIES, m.HELLO_VIEW_ONLY, False)):
            viewer = ViewerSession(channel=None)
            self.assertFalse(viewer._clipboard_allowed())        # nothing before the Hello
            viewer._on_hello(m.Hello(SESSION_VERSION, flags, 64, 48, 1, caps))
            self.assertEqual(viewer._clipboard_allowed(), allowed, (caps, flags))


class WindowsConversions(unittest.TestCase):
    def test_utf16(self):
        sample = "héllo ✓ 𝄞"
        self.assertEqual(text_utf16(sample.encode()), sample.encode("utf-16-le") + b"\0\0")
        self.assertEqual(utf16_text(text_utf16(sample.encode()) + b"\0\0junk"), sample.encode())

    def test_png_to_dib_and_back_keeps_every_pixel(self):
        # A 32-bit BI_RGB bitmap has no alpha for Windows programs: colours survive, alpha is the
        # PNG format's job (written next to the DIB).
        for mode in ("RGB", "RGBA"):
            with self.subTest(mode=mode):
                original = picture(mode)
                dib = png_to_dib(png_bytes(original))
                self.assertIn(int.from_bytes(dib[:4], "little"), (40, 108, 124))     # an info header
                back = Image.open(io.BytesIO(dib_to_png(dib)))
                self.assertEqual(back.convert("RGB").tobytes(), original.convert("RGB").tobytes())

    def test_bitfields_dib_as_windows_makes_it(self):
        # A 32-bit BI_BITFIELDS DIB with a 40-byte header: three masks follow the header.
        width, height = 2, 2
        header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 32, 3, 16, 0, 0, 0, 0)
        masks = struct.pack("<III", 0x00FF0000, 0x0000FF00, 0x000000FF)
        # Bottom-up rows of BGRX pixels.
        rows = [bytes([0, 0, 255, 0, 0, 255, 0, 0]), bytes([255, 0, 0, 0, 255, 255, 255, 0])]
        image = Image.open(io.BytesIO(dib_to_png(header + masks + b"".join(rows)))).convert("RGB")
        self.assertEqual(list(image.getdata()), [(0, 0, 255), (255, 255, 255), (255, 0, 0), (0, 255, 0)])

    def test_garbage_is_a_value_error(self):
        with self.assertRaises(ValueError):
            dib_to_png(b"\x00" * 10)
        with self.assertRaises(ValueError):
            png_to_dib(b"not a png")


if __name__ == "__main__":
    unittest.main()
