"""Addresses and relay URLs (protocol/address.py): one parser, its vectors, its refusals."""

import json
import unittest
from pathlib import Path

from tagio.errors import ConfigError
from tagio.protocol.address import format_address, parse_address, parse_relay, parse_relay_url

LAYER = "unit"
VECTORS = Path(__file__).resolve().parent / "data" / "address_vectors.json"


class VectorTest(unittest.TestCase):
    """tests/data/address_vectors.json: text -> [host, port, tls, websocket, ws_path] or null (refused)."""

    def test_vectors(self):
        vectors = json.loads(VECTORS.read_text())
        self.assertGreater(len(vectors), 20)
        for text, expected in vectors.items():
            with self.subTest(text=text):
                if expected is None:
                    with self.assertRaises(ConfigError):
                        parse_relay(text)
                    continue
                target = parse_relay(text)
                self.assertEqual([*target.address, target.tls, target.websocket, target.ws_path], expected)

    def test_format_round_trips(self):
        for address in (("relay.example", 443), ("::1", 9), ("fe80::1%eth0", 1), ("10.0.0.1", 65535)):
            with self.subTest(address=address):
                self.assertEqual(parse_address(format_address(address)), address)

    def test_bind_addresses_may_use_port_zero(self):
        self.assertEqual(parse_address("0.0.0.0:0", default_port=0, min_port=0), ("0.0.0.0", 0))
        with self.assertRaises(ConfigError):
            parse_address("0.0.0.0:0")

    def test_tuple_form_for_the_relay_client(self):
        self.assertEqual(parse_relay_url("ws://[::1]:9000/relay"), (("::1", 9000), False, True, "/relay"))


if __name__ == "__main__":
    unittest.main()
