"""The viewer's outbox (pure logic, no sockets): input first, moves coalesce, keys are never
dropped silently, bounded in count and bytes, and close() / abandon() end the sender's loop."""

import threading
import unittest

from tagio.session.outbox import ACK, ACK_UPTO, INPUT, MOVE, Outbox

LAYER = "unit"


class OutboxTest(unittest.TestCase):
    def test_input_goes_before_acks_in_the_order_it_came(self):
        box = Outbox()
        box.put(b"ack1", ACK)
        box.put(b"key-down", INPUT)
        box.put(b"ack2", ACK)
        box.put(b"key-up", INPUT)
        self.assertEqual(box.take(0), [b"key-down", b"key-up", b"ack1", b"ack2"])
        self.assertEqual(box.take(0), [])
        self.assertEqual(box.pending(), (0, 0, 0))

    def test_a_move_replaces_the_move_waiting_at_the_tail_only(self):
        box = Outbox()
        for i in range(1000):
            self.assertTrue(box.put(b"move%d" % i, MOVE))
        box.put(b"press", INPUT)
        box.put(b"move-a", MOVE)
        box.put(b"move-b", MOVE)
        self.assertEqual(box.pending()[:2], (3, len(b"move999press") + len(b"move-b")))
        # a move never jumps over the click: the press lands where the pointer was then
        self.assertEqual(box.take(0), [b"move999", b"press", b"move-b"])

    def test_a_cumulative_ack_replaces_the_ack_waiting_at_the_tail(self):
        box = Outbox(max_acks=2)
        self.assertTrue(box.put(b"ack1", ACK_UPTO))
        self.assertTrue(box.put(b"key", INPUT))
        for i in range(2, 10):
            self.assertTrue(box.put(b"ack%d" % i, ACK_UPTO))
        self.assertEqual(box.pending(), (1, 3, 1))
        self.assertEqual(box.take(0), [b"key", b"ack9"])
        box.put(b"a1", ACK)
        box.put(b"a2", ACK)
        self.assertFalse(box.put(b"a3", ACK))           # one-frame acks still wait side by side
        self.assertTrue(box.put(b"a4", ACK_UPTO))
        self.assertEqual(box.take(0), [b"a1", b"a4"])

    def test_a_full_outbox_refuses_keys_and_drops_only_moves(self):
        box = Outbox(max_input=3)
        for i in range(3):
            self.assertTrue(box.put(b"key%d" % i))
        self.assertFalse(box.put(b"key3"))                  # never dropped silently
        self.assertTrue(box.put(b"move", MOVE))             # a lost move is healed by the next event
        self.assertEqual(box.dropped_moves, 1)
        self.assertEqual(box.take(0), [b"key0", b"key1", b"key2"])
        self.assertTrue(box.put(b"key3"))

    def test_a_full_outbox_gives_a_running_sender_a_moment(self):
        box = Outbox(max_input=2)
        box.put(b"key0")
        box.put(b"key1")
        taken = []
        sender = threading.Thread(target=lambda: taken.append(box.take(10)))
        sender.start()                                      # not yet scheduled, maybe
        self.assertTrue(box.put(b"key2", grace=10))         # room as soon as it takes the batch
        sender.join(10)
        self.assertEqual(taken, [[b"key0", b"key1"]])
        self.assertEqual(box.take(0), [b"key2"])

    def test_bounded_in_bytes_and_acks(self):
        box = Outbox(max_bytes=10, max_acks=2)
        self.assertTrue(box.put(b"x" * 8))
        self.assertFalse(box.put(b"yyy"))
        self.assertTrue(box.put(b"a1", ACK))
        self.assertTrue(box.put(b"a2", ACK))
        self.assertFalse(box.put(b"a3", ACK))
        self.assertEqual(box.pending(), (1, 8, 2))

    def test_close_hands_out_what_waits_then_ends(self):
        box = Outbox()
        box.put(b"last key")
        box.close()
        self.assertTrue(box.put(b"too late"))               # ignored: the session is ending
        self.assertEqual(box.take(), [b"last key"])
        self.assertIsNone(box.take())

    def test_abandon_drops_everything_and_says_who_did_it(self):
        box = Outbox()
        box.put(b"key")
        self.assertTrue(box.abandon())
        self.assertFalse(box.abandon())
        self.assertIsNone(box.take())
        self.assertEqual(box.pending(), (0, 0, 0))

    def test_take_waits_for_a_message_or_the_end(self):
        box = Outbox()
        got = []
        taker = threading.Thread(target=lambda: got.extend([box.take(10), box.take(10)]))
        taker.start()
        box.put(b"key")
        box.close()
        taker.join(10)
        self.assertFalse(taker.is_alive())
        self.assertEqual(got[0], [b"key"])
        self.assertIsNone(got[1])


if __name__ == "__main__":
    unittest.main()
