"""How files share the session's path: the pump never has more than WINDOW chunks waiting to be
written, and the viewer's outbox sends files after input and acknowledgements."""

import tempfile
import threading
import unittest
from pathlib import Path

from tagio.protocol import files as f
from tagio.protocol import session as sm
from tagio.session import files as engine_mod
from tagio.session.files import FileEngine, is_chunk
from tagio.session.outbox import ACK, FILE, INPUT, Outbox

LAYER = "unit"


class Window(unittest.TestCase):
    def test_pump_stops_at_the_window_until_chunks_are_written(self):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "big").write_bytes(bytes(10 * f.CHUNK))
            posted, cond = [], threading.Condition()

            def send(msg):
                with cond:
                    posted.append(sm.encode(sm.Files(msg)))
                    cond.notify_all()
            engine = FileEngine(send)
            engine.flow.window = 1 << 30    # no Got comes here: the path's window is test_files_flow's
            tid = engine.send_paths([str(Path(tmp) / "big")])[0]
            engine.handle(f.Accept(tid, [(f.ACT_SEND, 0, 0, b"", "")]))
            stopping = threading.Event()
            pump = threading.Thread(target=engine.pump, args=(stopping,))
            pump.start()
            try:
                with cond:
                    self.assertTrue(cond.wait_for(
                        lambda: sum(map(is_chunk, posted)) == engine_mod.WINDOW, 10))
                    self.assertFalse(cond.wait_for(
                        lambda: sum(map(is_chunk, posted)) > engine_mod.WINDOW, 0.3))
                engine.sent(posted[1])          # one chunk written: one more may come
                with cond:
                    self.assertTrue(cond.wait_for(
                        lambda: sum(map(is_chunk, posted)) == engine_mod.WINDOW + 1, 10))
                engine.sent(sm.encode(sm.Chat("x")))     # not a chunk: frees nothing
                with cond:
                    self.assertFalse(cond.wait_for(
                        lambda: sum(map(is_chunk, posted)) > engine_mod.WINDOW + 1, 0.3))
            finally:
                stopping.set()
                pump.join(5)
            self.assertFalse(pump.is_alive())


class OutboxOrder(unittest.TestCase):
    def test_files_after_input_and_acks(self):
        box = Outbox()
        box.put(b"file1", FILE)
        box.put(b"ack1", ACK)
        box.put(b"key1", INPUT)
        box.put(b"file2", FILE)
        self.assertEqual(box.take(0), [b"key1", b"ack1", b"file1", b"file2"])

    def test_files_are_bounded(self):
        box = Outbox(max_files=2)
        self.assertTrue(box.put(b"1", FILE))
        self.assertTrue(box.put(b"2", FILE))
        self.assertFalse(box.put(b"3", FILE, grace=0.01))
        self.assertTrue(box.put(b"key", INPUT))          # input still has room
        box.abandon()
        self.assertIsNone(box.take(0))


if __name__ == "__main__":
    unittest.main()
