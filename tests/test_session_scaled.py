"""Moving regions at a reduced resolution: the host's encoder (tagio/session/scaled.py), ENC_SCALED
on the wire, the viewer scaling it up (tagio/session/framebuffer.py), the capability handshake
(only a viewer that says it takes them gets them), and a real host and viewer on Xvfb over a slow
WanLink whose picture converges pixel for pixel once the motion stops."""

import io
import unittest
from unittest import mock

from PIL import Image, ImageChops, ImageDraw, ImageStat

from tagio.errors import LocalProtocolError, RemoteProtocolError
from tagio.protocol import session as m
from tagio.protocol.version import CAP_ACK_UPTO, CAP_SCALED_RECT, SESSION_CAPABILITIES
from tagio.session import framebuffer, scaled
from tests.test_session_viewer import ScriptedHostCase
from tests.wan_session import PICTURE_SCENE, converged, scene_on_xvfb, screen, session_over_link
from tests.waiting import wait_until


def photo(width=640, height=360, shift=0):
    """A smooth photo-like picture (three gradients and a disc): many colours, JPEG territory."""
    base = Image.merge("RGB", [Image.linear_gradient("L").resize((width, height)),
                               Image.radial_gradient("L").resize((width, height)),
                               Image.linear_gradient("L").rotate(90).resize((width, height))])
    img = ImageChops.offset(base, shift * 37, shift * 23)
    ImageDraw.Draw(img).ellipse((40 + shift * 30, 60, 200 + shift * 30, 220), fill=(200, (40 * shift) % 256, 90))
    return img


def jpeg(img, quality=75):
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def mean_diff(a, b):
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


class ScaledEncoderTest(unittest.TestCase):
    LAYER = "unit"

    def test_a_large_photo_goes_at_the_scale_and_costs_a_fraction(self):
        img = photo()
        parts = scaled.encode_region(img, 16, 32, 40, 0.5)
        self.assertEqual(len(parts), 1)
        x, y, w, h, enc, data = parts[0]
        self.assertEqual((x, y, w, h, enc), (16, 32, 640, 360, m.ENC_SCALED))
        rect = m.Rect(*parts[0])
        self.assertEqual(m.scaled_size(rect), (320, 180))
        self.assertLess(len(data), 0.5 * len(jpeg(img, 40)))
        self.assertEqual(scaled.encoded_pixels(rect), 320 * 180)
        self.assertEqual(scaled.encoded_pixels(m.Rect(0, 0, 64, 32, m.ENC_JPEG, b"")), 64 * 32)

    def test_what_is_not_scaled(self):
        self.assertIsNone(scaled.encode_region(photo(), 0, 0, 40, 1.0))                 # full scale
        self.assertIsNone(scaled.encode_region(photo(200, 200), 0, 0, 40, 0.5))         # small
        self.assertIsNone(scaled.encode_region(Image.new("RGB", (640, 360), (1, 2, 3)), 0, 0, 40, 0.5))
        text = Image.new("RGB", (640, 360), "white")
        ImageDraw.Draw(text).text((10, 10), "few colours stay exact " * 8, fill="black")
        self.assertIsNone(scaled.encode_region(text, 0, 0, 40, 0.5))

    def test_scaled_size_is_at_least_one_pixel_and_at_most_the_rectangle(self):
        self.assertEqual(scaled.scaled_size(1920, 1080, 0.375), (720, 405))
        self.assertEqual(scaled.scaled_size(3, 1, 0.25), (1, 1))
        self.assertEqual(scaled.scaled_size(10, 10, 1.0), (10, 10))
        for k in (2, 3, 4):         # whole fractions: the size reduce() gives, rounded up
            with self.subTest(k=k):
                self.assertEqual(scaled.scaled_size(1081, 7, 1 / k), Image.new("RGB", (1081, 7)).reduce(k).size)
                self.assertEqual(scaled.shrink(photo(300, 200), 1 / k).size, scaled.scaled_size(300, 200, 1 / k))
        self.assertEqual(scaled.shrink(photo(300, 200), 0.6).size, (180, 120))

    def test_a_part_over_the_message_limit_is_split_in_halves(self):
        with mock.patch.object(m, "MAX_RECT_DATA", 3000):
            parts = scaled.encode_region(photo(), 0, 0, 75, 0.5)
        self.assertGreater(len(parts), 1)
        self.assertEqual(sum(p[3] for p in parts), 360)
        self.assertTrue(all(p[4] == m.ENC_SCALED and p[2] == 640 for p in parts))
        fb = Image.new("RGB", (640, 360))
        for part in parts:
            fb.paste(framebuffer.decode_scaled(m.Rect(*part)), (part[0], part[1]))
        self.assertLess(mean_diff(fb, photo()), 6)


class FromTheGrabTest(unittest.TestCase):
    """Scaling straight from a BGRX grab gives the same rectangles as converting it to RGB first."""
    LAYER = "unit"

    def test_same_bytes_as_from_the_converted_picture(self):
        from tagio.session import tiles as t
        screen = Image.new("RGB", (800, 600), (10, 20, 30))
        screen.paste(photo(640, 384, shift=2), (96, 64))
        raw = screen.tobytes("raw", "BGRX")
        for rect in ((96, 64, 640, 384), (0, 0, 800, 600), (96, 64, 640, 200)):
            view = scaled.bgrx_view(raw, 800, *rect)
            got = scaled.encode_view(view, rect[0], rect[1], 50, 0.5)
            want = scaled.encode_region(t.region_image(raw, 800, *rect), rect[0], rect[1], 50, 0.5)
            self.assertEqual(got, want)
            self.assertEqual(got[0][4], m.ENC_SCALED)

    def test_a_rectangle_the_buffer_cannot_map_is_left_to_the_converting_path(self):
        raw = bytes(800 * 600 * 4)
        self.assertIsNone(scaled.bgrx_view(raw, 800, 96, 300, 640, 300))     # bottom edge, not column 0
        self.assertIsNotNone(scaled.bgrx_view(raw, 800, 0, 300, 640, 300))
        flat = scaled.bgrx_view(raw, 800, 0, 0, 800, 600)
        self.assertIsNone(scaled.encode_view(flat, 0, 0, 50, 0.5))           # one colour: not scaled
        self.assertIsNone(scaled.encode_view(flat, 0, 0, 50, 1.0))


class ScaledWireTest(unittest.TestCase):
    LAYER = "unit"

    def test_round_trip_and_bounds(self):
        rect = m.scaled_rect(0, 0, 640, 360, 320, 180, b"jpeg")
        frame = m.Frame(1, m.FINAL, 0.0, 0, [rect])
        self.assertEqual(m.decode(m.encode(frame)), frame)
        self.assertEqual(m.scaled_data(rect), b"jpeg")
        self.assertIn(m.ENC_SCALED, m.LOSSY_ENCODINGS)
        for bad in ((641, 360), (0, 180), (320, 361)):
            with self.assertRaises(LocalProtocolError):
                m.scaled_rect(0, 0, 640, 360, *bad, b"jpeg")
        with self.assertRaises(LocalProtocolError):
            m.scaled_rect(0, 0, 640, 360, 320, 180, b"")

    def test_a_bad_scaled_rectangle_is_the_hosts_fault(self):
        good = m.encode(m.Frame(1, m.FINAL, 0.0, 0, [m.scaled_rect(0, 0, 640, 360, 320, 180, b"jpeg")]))
        head = 1 + 17 + 13          # type, frame head, rect head: the scaled header follows
        cases = {
            "bigger than its rectangle": good[:head] + (641).to_bytes(2, "big") + good[head + 2:],
            "zero height": good[:head + 2] + bytes(2) + good[head + 4:],
        }
        for what, data in cases.items():
            with self.subTest(what), self.assertRaises(RemoteProtocolError):
                m.decode(data)
        short = m.Rect(0, 0, 640, 360, m.ENC_SCALED, b"\x01\x40\x00")     # no room for the picture
        raw = m.encode(m.Frame(1, m.FINAL, 0.0, 0, [m.Rect(0, 0, 640, 360, m.ENC_FILL, b"abc")]))
        raw = raw[:head - 5] + bytes([m.ENC_SCALED]) + (3).to_bytes(4, "big") + short.data
        with self.assertRaisesRegex(RemoteProtocolError, "truncated"):
            m.decode(raw)

    def test_the_viewer_scales_up_and_refuses_a_picture_of_another_size(self):
        img = photo(640, 360)
        small = img.resize((320, 180), Image.BILINEAR)
        out = framebuffer.decode_scaled(m.scaled_rect(0, 0, 640, 360, 320, 180, jpeg(small, 90)))
        self.assertEqual(out.size, (640, 360))
        self.assertLess(mean_diff(out, img), 4)
        lying = m.scaled_rect(0, 0, 640, 360, 160, 90, jpeg(small, 90))
        with self.assertRaisesRegex(RemoteProtocolError, "rectangle says 160x90"):
            framebuffer.decode_scaled(lying)
        with self.assertRaises(RemoteProtocolError):
            framebuffer.decode_scaled(m.scaled_rect(0, 0, 640, 360, 320, 180, b"not a jpeg"))

    def test_a_large_rectangle_is_scaled_up_by_repeating_pixels(self):
        small = photo(320, 180)
        with mock.patch.object(framebuffer, "SMOOTH_PIXELS", 640 * 360 - 1):
            out = framebuffer.decode_scaled(m.scaled_rect(0, 0, 640, 360, 320, 180, jpeg(small, 90)))
        decoded = Image.open(io.BytesIO(jpeg(small, 90))).convert("RGB")
        self.assertEqual(out.size, (640, 360))
        self.assertEqual(out.reduce(2).tobytes(), decoded.tobytes())    # every 2 x 2 block one pixel


class HostConsentTest(unittest.TestCase):
    """The host scales only for a viewer that said it takes scaled rectangles."""
    LAYER = "unit"

    def test_only_the_viewers_word_lets_the_policy_scale(self):
        from tagio.session.host import HostSession
        host = HostSession(channel=None)
        self.assertFalse(host._policy.can_scale)           # an older viewer never says it
        host._on_viewer_capabilities(m.ViewerCapabilities(SESSION_CAPABILITIES & ~CAP_SCALED_RECT))
        self.assertFalse(host._policy.can_scale)
        host._on_viewer_capabilities(m.ViewerCapabilities(SESSION_CAPABILITIES))
        self.assertTrue(host._policy.can_scale)
        self.assertIn(m.ViewerCapabilities, HostSession._HANDLERS)

    def test_the_encoder_scales_large_photos_and_the_top_off_follows_them(self):
        from tagio.session import tiles as t
        from tagio.session.host import HostSession
        host = HostSession(channel=None)
        rects = []
        host._encode_rect(rects, photo(640, 384), (64, 0), 40, False, (1920, 1080), 0.5)
        self.assertEqual([r.encoding for r in rects], [m.ENC_SCALED])
        tiles = t.rect_tiles(64, 0, 640, 384)
        self.assertTrue(host._refresh.holds_lossy(tiles))
        refreshed = []
        host._encode_rect(refreshed, photo(640, 384), (64, 0), 40, True, (1920, 1080))     # the lossless top-off
        self.assertEqual([r.encoding for r in refreshed], [m.ENC_PNG])
        self.assertFalse(host._refresh.holds_lossy(tiles))
        small = []
        host._encode_rect(small, photo(128, 128), (0, 0), 40, False, (1920, 1080), 0.5)     # small: full size
        self.assertEqual([r.encoding for r in small], [m.ENC_JPEG])
        from tagio.session import flow
        host._learn_sizes(rects, 40)        # learns from the scaled picture's own pixels
        bpp = len(rects[0].data) / (320 * 192) / flow.JPEG_SIZE[40]
        self.assertAlmostEqual(host._policy.bpp75, flow.INITIAL_BPP + flow.BPP_WEIGHT * (bpp - flow.INITIAL_BPP))

    def test_text_probed_on_the_grab_is_not_probed_again_for_scaling(self):
        from tagio.session.host import HostSession
        host = HostSession(channel=None)
        text = Image.new("RGB", (640, 200), "white")
        ImageDraw.Draw(text).text((10, 10), "a page of text " * 20, fill="black")
        raw = text.tobytes("raw", "BGRX")
        rects = []
        with mock.patch.object(scaled, "encode_region", wraps=scaled.encode_region) as asked:
            host._encode_moving(rects, raw, (0, 0, 640), (0, 0, 640, 200), 40, (1920, 1080), 0.5)
        self.assertEqual([r.encoding for r in rects], [m.ENC_PNG])
        self.assertEqual(asked.call_count, 0)       # encode_view found it is no photo

    def test_a_policy_that_may_not_scale_never_does(self):
        from tagio.session.flow import QualityPolicy
        policy = QualityPolicy(can_scale=False)
        self.assertEqual(policy.choose(10_000, 1920 * 1080).scale, 1.0)
        policy.can_scale = True
        self.assertLess(policy.choose(10_000, 1920 * 1080).scale, 1.0)


class SpeedChoiceTest(unittest.TestCase):
    """A host too slow to encode large moving photos within its share of the frame interval sends
    them scaled; a fast one, small rectangles and a machine that got room again keep full scale."""
    LAYER = "unit"
    PIXELS, INTERVAL = 1920 * 1080, 1 / 60

    def setUp(self):
        self.speed = scaled.SpeedChoice()

    def per_frame(self, share, scale=1.0):
        """Teach encodes of a 1080p picture at `scale` that took `share` of the frame interval."""
        for _ in range(20):
            self.speed.timed(self.PIXELS, share * self.INTERVAL, scale)

    def test_full_scale_until_a_slow_encode_is_measured(self):
        self.assertEqual(self.speed.scale(self.PIXELS, self.INTERVAL), 1.0)     # nothing known yet
        self.per_frame(0.3)
        self.assertEqual(self.speed.scale(self.PIXELS, self.INTERVAL), 1.0)     # fast enough
        self.per_frame(0.8)
        self.assertEqual(self.speed.scale(self.PIXELS, self.INTERVAL), scaled.SPEED_SCALE)
        self.assertEqual(self.speed.scale(300 * 200, self.INTERVAL), 1.0)      # small: never
        self.assertEqual(self.speed.scale(self.PIXELS, 4 * self.INTERVAL), 1.0)    # 15 fps: time enough

    def test_scaled_encodes_tell_when_the_machine_has_room_again(self):
        self.per_frame(0.8)
        self.assertEqual(self.speed.scale(self.PIXELS, self.INTERVAL), scaled.SPEED_SCALE)
        # Scaled encodes standing for just under the share at full scale: stays scaled (no flapping).
        self.per_frame(0.45 / scaled.SCALED_TO_FULL, scaled.SPEED_SCALE)
        self.assertEqual(self.speed.scale(self.PIXELS, self.INTERVAL), scaled.SPEED_SCALE)
        # The machine got room: scaled encodes fast enough that full scale would fit again.
        self.per_frame(0.2 / scaled.SCALED_TO_FULL, scaled.SPEED_SCALE)
        self.assertEqual(self.speed.scale(self.PIXELS, self.INTERVAL), 1.0)
        self.assertEqual(self.speed.scale(self.PIXELS, self.INTERVAL), 1.0)

    def test_small_timings_teach_nothing(self):
        self.speed.timed(100 * 100, 1.0)
        self.assertIsNone(self.speed.cost)


class SpeedInTheEncoderTest(unittest.TestCase):
    """The encoder asks the speed choice only while most of the screen keeps moving, and only for
    a viewer that takes scaled rectangles; a full-scale JPEG teaches it its cost."""
    LAYER = "unit"

    def frame(self, host, pictures):
        from tagio.session import tiles as t
        w, h = pictures[0].size
        raw = pictures[0].tobytes("raw", "BGRX")
        tiles = t.rects_tiles([(0, 0, w, h)], w, h)
        source = (raw, 0, 0, w, h, tiles, None)
        msgs = host._encode_frame(1, 0.0, [source], [], w, h, len(tiles))
        return [r.encoding for msg in msgs for r in m.decode(msg).rects]

    def test_a_slow_host_scales_sustained_motion_for_a_viewer_that_takes_it(self):
        from tagio.session.host import HostSession
        host = HostSession(channel=None)
        host._speed.cost = 1.0                  # a host that needs a second a pixel
        pic = [photo(1280, 720)]
        self.assertEqual(self.frame(host, pic), [m.ENC_JPEG])      # one big change: not motion yet
        self.assertEqual(self.frame(host, pic), [m.ENC_JPEG])      # motion, but the viewer cannot take it
        host._policy.can_scale = True
        from tagio.session import tiles as t
        tiles = t.rect_tiles(0, 0, 1280, 720)
        host._refresh.refreshed(tiles, 0)       # as if the JPEGs so far were topped off
        self.assertFalse(host._refresh.holds_lossy(tiles))
        self.assertEqual(self.frame(host, pic), [m.ENC_SCALED])
        self.assertTrue(host._refresh.holds_lossy(tiles))       # the top-off follows the scaled picture
        host._speed.cost = 1e-12                # a fast host keeps full scale
        self.assertEqual(self.frame(host, pic), [m.ENC_JPEG])

    def test_full_scale_and_scaled_jpegs_teach_the_cost(self):
        from tagio.session.host import HostSession
        host = HostSession(channel=None)
        self.frame(host, [photo(640, 360)])
        self.assertGreater(host._speed.cost, 0)
        host._policy.can_scale, host._moving, host._speed.cost = True, True, 1.0
        self.assertEqual(self.frame(host, [photo(640, 360)]), [m.ENC_SCALED])
        self.assertLess(host._speed.cost, 1.0)          # the scaled encode's time was learned


class ViewerAnswersTest(ScriptedHostCase):
    """A scripted host on a real SecureChannel: the viewer's answer to the Hello's bits, and a
    scaled rectangle decoded into the framebuffer."""

    def recv(self):
        return m.decode(self.host.recv())

    def test_a_host_offering_scaled_rects_is_told_and_they_are_drawn(self):
        self.send(m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, 640, 360, 1))
        self.assertEqual(self.recv(), m.ViewerCapabilities(SESSION_CAPABILITIES))
        img = photo(640, 360)
        small = img.resize((320, 180), Image.BILINEAR)
        self.send(m.Frame(1, m.FINAL, 0.0, 0, [m.scaled_rect(0, 0, 640, 360, 320, 180, jpeg(small, 90))]))
        self.assertEqual(self.recv(), m.FrameAck(1))
        self.assertLess(mean_diff(self.viewer.framebuffer, img), 4)

    def test_an_older_host_is_not_told(self):
        older = SESSION_CAPABILITIES & ~(CAP_SCALED_RECT | CAP_ACK_UPTO)     # neither needs our word
        self.send(m.Hello(m.PROTOCOL_VERSION, m.HELLO_INPUT, 64, 64, 1, older))
        self.send(m.Frame(1, m.FINAL, 0.0, 0, [m.Rect(0, 0, 8, 8, m.ENC_FILL, b"\x01\x02\x03")]))
        self.assertEqual(self.recv(), m.FrameAck(1))        # the first thing the viewer says


MOVING_SCENE = PICTURE_SCENE + r"""
frames = []
for k in range(8):
    img = ImageChops.offset(base, k * 37, k * 23)
    ImageDraw.Draw(img).ellipse((40 + k * 30, 60, 200 + k * 30, 220), fill=(200, (40 * k) % 256, 90))
    frames.append(ImageTk.PhotoImage(img))
label = tk.Label(root, image=frames[0], bd=0)
label.place(x=0, y=0)
state = {"n": 0, "moving": False}
def tick():
    if state["moving"]:
        state["n"] += 1
        label.configure(image=frames[state["n"] % len(frames)])
    root.after(33, tick)
def command(word):
    state["moving"] = word == "move"
    root.update_idletasks()
    sys.stdout.write(word + "\n"); sys.stdout.flush()
def commands():
    for line in sys.stdin:
        root.after(0, command, line.strip())
threading.Thread(target=commands, daemon=True).start()
root.after(200, lambda: (sys.stdout.write("ready\n"), sys.stdout.flush(), tick()))
root.mainloop()
"""


class CountingChannel:
    """The viewer's channel, counting the ENC_SCALED rectangles that come in."""

    def __init__(self, channel):
        self.channel, self.path, self.scaled = channel, channel.path, 0

    def recv(self):
        data = self.channel.recv()
        if data[:1] == bytes([2]):       # a Frame
            self.scaled += sum(r.encoding == m.ENC_SCALED for r in m.decode(data).rects)
        return data

    def send(self, data):
        self.channel.send(data)

    def close(self):
        self.channel.close()


class ScaledOverSlowLinkTest(unittest.TestCase):
    """A real host (Xvfb, mss) and viewer through a 0.5 Mbit/s WanLink: a moving picture that does
    not fit the link at any JPEG quality the policy allows goes scaled down; once it stops, the
    viewer's picture equals the host's screen pixel for pixel (the lossless top-off)."""

    WIDTH, HEIGHT = 480, 360

    def setUp(self):
        self.xvfb, self.scene, first = scene_on_xvfb(self, self.WIDTH, self.HEIGHT, MOVING_SCENE,
                                                     (self.WIDTH, self.HEIGHT), stdin=True)
        self.assertEqual(first, "ready")

    def tell_scene(self, word):
        self.scene.stdin.write(word + "\n")
        self.scene.stdin.flush()
        self.assertEqual(self.scene.stdout.readline().strip(), word)

    def session(self):
        box = {}
        host, viewer = session_over_link(self, self.xvfb.display, 20, 0.5,
                                         wrap=lambda channel: box.setdefault("counting", CountingChannel(channel)))
        return host, viewer, box["counting"]

    def screen(self):
        return screen(self.xvfb.display)

    def converged(self, viewer):
        return converged(viewer, self.xvfb.display)

    def test_moving_picture_goes_scaled_and_converges_once_still(self):
        host, viewer, counting = self.session()
        wait_until(lambda: viewer.framebuffer is not None and viewer.stats["frames"] > 0, 20, "the first picture")
        self.tell_scene("move")
        wait_until(lambda: counting.scaled >= 3, 30, "scaled rectangles for the moving picture")
        self.assertLess(host.stats["policy_scale"], 1.0)
        self.tell_scene("stop")
        wait_until(lambda: self.converged(viewer), 30, "the viewer's picture equal to the host's screen")


if __name__ == "__main__":
    unittest.main()
