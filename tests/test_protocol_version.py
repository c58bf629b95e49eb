"""Version policy: one version per wire format, capability bits agreed from the session Hello."""

import struct
import unittest

from tagio.errors import RemoteProtocolError
from tagio.protocol import session as m
from tagio.protocol import version as v

LAYER = "unit"


class VersionPolicyTest(unittest.TestCase):
    def test_agree_is_the_intersection_of_known_bits(self):
        ours = v.CAP_CLIPBOARD_TEXT | v.CAP_CHAT
        theirs = v.CAP_CHAT | v.CAP_FILES | (1 << 30)     # bit 30: a feature from the future
        self.assertEqual(v.agree(v.SESSION_VERSION, theirs, our_capabilities=ours), v.CAP_CHAT)
        self.assertEqual(v.agree(v.SESSION_VERSION, 0), 0)

    def test_older_and_newer_partners_are_refused_in_words(self):
        with self.assertRaisesRegex(v.VersionMismatch, r"older TagIO \(session protocol version 1, "
                                                       r"this side speaks 2\); update both sides"):
            v.agree(1, v.ALL_CAPABILITIES)
        with self.assertRaisesRegex(RemoteProtocolError, "newer TagIO"):
            v.agree(v.SESSION_VERSION + 1, 0)

    def test_an_old_hello_is_refused_before_its_layout_is_checked(self):
        old_hello = b"\x01" + struct.pack("!BIHHB", 1, m.HELLO_INPUT, 800, 600, 1)   # session v1 layout
        with self.assertRaises(v.VersionMismatch) as ctx:
            m.decode(old_hello)
        self.assertIn("update both sides", str(ctx.exception))
        self.assertEqual((ctx.exception.theirs, ctx.exception.ours), (1, v.SESSION_VERSION))

    def test_hello_carries_capabilities(self):
        hello = m.Hello(v.SESSION_VERSION, m.HELLO_INPUT, 800, 600, 1, v.CAP_CLIPBOARD_TEXT | v.CAP_CHAT)
        self.assertEqual(m.decode(m.encode(hello)), hello)
        self.assertEqual(m.Hello(v.SESSION_VERSION, 0, 1, 1, 1).capabilities, v.SESSION_CAPABILITIES)
        self.assertEqual(v.describe(v.CAP_CLIPBOARD_TEXT | v.CAP_CHAT), ["clipboard text", "chat"])

    def test_every_format_has_a_named_version(self):
        from tagio.protocol import direct, framing, handshake, lan, rudp
        self.assertEqual(framing.RELAY_VERSION, v.RELAY_VERSION)
        self.assertEqual(handshake.HANDSHAKE_VERSION, v.HANDSHAKE_VERSION)
        self.assertEqual(rudp.VERSION, v.RUDP_VERSION)
        self.assertEqual(lan.LAN_VERSION, v.LAN_VERSION)
        self.assertEqual(direct.DIRECT_VERSION, v.DIRECT_VERSION)
        self.assertEqual(m.SESSION_VERSION, v.SESSION_VERSION)


if __name__ == "__main__":
    unittest.main()
