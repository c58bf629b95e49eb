"""A relay that refuses the relay secret is not asked again on a timer: real relay, real RelayClient.

Each registration with a wrong (or an impostor relay's) secret is one online guess at the secret
for whoever answers at the relay's address. Before the fix the link retried with backoff, and its
port probe cut the backoff short as soon as the relay answered: here, with a backoff of 10 ms, that
was hundreds of guesses a minute. Now it tries once, says why in plain words and waits for Retry
now (or a new secret).
"""

import unittest

from tagio.client.relay_link import RelayLink, _default_factory
from tagio.crypto.identity import Identity
from tests.relay_fixture import start_relay
from tests.waiting import wait_until

OBSERVE = 1.5     # seconds the link is watched for tries it makes on its own (each one would be a guess)


class RefusedSecretAtARealRelayTest(unittest.TestCase):
    def test_a_refused_secret_is_tried_again_only_on_retry_now(self):
        relay = start_relay(auth_secret="the-right-relay-secret")
        self.addCleanup(relay.stop)
        tries = []

        def factory(*args, **kwargs):
            tries.append(1)
            return _default_factory(*args, **kwargs)
        link = RelayLink(relay.address, Identity.generate(), auth_secret="a-wrong-secret",
                         on_peer=lambda peer: None, factory=factory, backoff=lambda d: 0.01)
        self.addCleanup(link.close)
        link.start()
        wait_until(lambda: "relay secret is missing or wrong" in link.status, 10, "the refusal")
        with self.assertRaises(AssertionError):   # no try of its own: the 10 ms backoff would make dozens
            wait_until(lambda: len(tries) > 1, OBSERVE, "a try the person did not ask for")
        self.assertEqual(relay.server.counters["auth_failures_total"], 1)
        link.retry_now()
        wait_until(lambda: relay.server.counters["auth_failures_total"] == 2, 10, "the try Retry now asked for")
        wait_until(lambda: link.waiting_for_user, 5, "the link to wait again")
        self.assertEqual(len(tries), 2)


if __name__ == "__main__":
    unittest.main()
