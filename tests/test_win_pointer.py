"""The viewer's mouse as Windows Tk reports it: side buttons arrive as 4/5 (X11's wheel numbers) and
must not scroll the host; touchpad wheel deltas below 120 add up to notches instead of each being
one. Pure: Tk events are given as the numbers Windows Tk produces."""

import unittest

from tagio.ui import pointer

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses


class Buttons(unittest.TestCase):
    def test_windows_side_buttons_are_back_and_forward_not_the_wheel(self):
        self.assertEqual(pointer.button_role(4, windows=True), ("keys", ("Alt_L", "Left")))
        self.assertEqual(pointer.button_role(5, windows=True), ("keys", ("Alt_L", "Right")))
        self.assertEqual(pointer.button_role(1, windows=True), ("button", 1))
        self.assertIsNone(pointer.button_role(6, windows=True))

    def test_x11_wheel_and_side_buttons(self):
        self.assertEqual(pointer.button_role(4, windows=False), ("scroll", (0, 1)))
        self.assertEqual(pointer.button_role(5, windows=False, shift=True), ("scroll", (1, 0)))
        self.assertEqual(pointer.button_role(7, windows=False), ("scroll", (1, 0)))
        self.assertEqual(pointer.button_role(8, windows=False), ("keys", ("Alt_L", "Left")))
        self.assertEqual(pointer.button_role(3, windows=False), ("button", 3))


class Wheel(unittest.TestCase):
    def test_notched_wheel_one_step_per_notch(self):
        acc = pointer.WheelAccumulator(windows=True)
        self.assertEqual([acc.add(120, t) for t in (0.0, 0.1)], [1, 1])
        self.assertEqual(acc.add(-240, 0.2), -2)

    def test_touchpad_deltas_add_up(self):
        acc = pointer.WheelAccumulator(windows=True)
        steps = [acc.add(30, t / 100) for t in range(8)]          # 8 x 30 = two notches, not eight
        self.assertEqual(sum(steps), 2)
        self.assertEqual(steps.count(0), 6)

    def test_remainder_is_dropped_after_a_pause_or_a_turn(self):
        acc = pointer.WheelAccumulator(windows=True)
        acc.add(100, 0.0)
        self.assertEqual(acc.add(30, 5.0), 0)                      # 100 forgotten: 30 is not a notch
        acc.add(100, 5.1)
        self.assertEqual(acc.add(-30, 5.2), 0)                     # turned: no jump back

    def test_elsewhere_each_event_is_at_least_a_notch(self):
        acc = pointer.WheelAccumulator(windows=False)              # macOS Tk reports lines
        self.assertEqual([acc.add(d, 0.0) for d in (1, -2, 240, 5000)], [1, -1, 2, 10])


if __name__ == "__main__":
    unittest.main()
