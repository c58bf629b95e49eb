"""The guess limiter: every started guess counts, limits per host, per source and per password."""

import unittest

from tagio.client import guesses
from tagio.client.guesses import Failure, Guess, GuessLimiter, Refusal

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (tests/__main__.py enforces it)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def limiter(**kwargs):
    clock = Clock()
    return GuessLimiter(clock=clock, **kwargs), clock


def fail(lim, source="a"):
    guess = lim.start(source)
    assert isinstance(guess, Guess), guess
    return lim.ended(guess)


class EveryGuessCountsTest(unittest.TestCase):
    def test_a_guess_counts_from_its_start(self):
        """A guesser that hangs up never reaches ended(): its guesses still use the budget."""
        lim, _ = limiter(tries_per_password=100)
        started = [lim.start(f"src{i}") for i in range(6)]
        self.assertTrue(all(isinstance(g, Guess) for g in started))
        self.assertIsInstance(lim.start("src9"), Refusal)

    def test_ended_reports_every_failure(self):
        lim, _ = limiter(tries_per_password=100)
        failures = [fail(lim, f"src{i}") for i in range(6)]
        self.assertTrue(all(isinstance(f, Failure) for f in failures))
        self.assertEqual([f.failures_in_window for f in failures], [1, 2, 3, 4, 5, 6])
        self.assertEqual(failures[0].source, "src0")

    def test_success_takes_the_guess_back(self):
        lim, _ = limiter()
        for _ in range(20):
            guess = lim.start("friend")
            lim.succeeded(guess)
            self.assertIsNone(lim.ended(guess))   # ended() in a finally after success: no failure
            lim.password_rotated()
        self.assertIsInstance(lim.start("friend"), Guess)

    def test_calls_after_the_end_change_nothing(self):
        lim, _ = limiter()
        guess = lim.start("a")
        self.assertIsInstance(lim.ended(guess), Failure)
        self.assertIsNone(lim.ended(guess))
        lim.succeeded(guess)              # too late: it stays failed
        self.assertEqual(fail(lim).failures_in_window, 2)


class HostWideTest(unittest.TestCase):
    def test_six_per_minute_from_any_number_of_sources(self):
        lim, clock = limiter(tries_per_password=1000)
        admitted = 0
        for second in range(600):           # one new source every second for ten minutes
            clock.now += 1
            guess = lim.start(f"source-{second}")
            if isinstance(guess, Guess):
                admitted += 1
                lim.ended(guess)
        # 6 in the first minute, then waits of 60, 120 and 240 s (seconds 66, 186, 426): 9 in 10 min
        self.assertEqual(admitted, 9)

    def test_window_then_exponential_delay(self):
        lim, clock = limiter(tries_per_password=1000, source_per_window=100, source_total=1000)
        for _ in range(6):
            last = fail(lim)
        self.assertEqual(last.next_guess_in, 60.0)
        refusal = lim.start("a")
        self.assertEqual((refusal.reason, refusal.retry_after), ("too many wrong passwords", 60.0))
        delays = []
        for _ in range(8):
            clock.now += lim.start("a").retry_after
            delays.append(fail(lim).next_guess_in)
        self.assertEqual(delays, [120.0, 240.0, 480.0, 960.0, 1920.0, 3600.0, 3600.0, 3600.0])

    def test_delay_is_exact_to_the_second(self):
        lim, clock = limiter(tries_per_password=1000, source_per_window=100)
        for _ in range(6):
            fail(lim)
        clock.now += 59.9
        self.assertIsInstance(lim.start("a"), Refusal)
        clock.now += 0.1
        self.assertIsInstance(lim.start("a"), Guess)

    def test_success_resets_the_delay(self):
        lim, clock = limiter(tries_per_password=1000, source_per_window=100, source_total=1000)
        for _ in range(8):
            clock.now += 3600
            fail(lim)
        clock.now += 3600
        lim.succeeded(lim.start("owner"))
        for _ in range(5):
            self.assertEqual(fail(lim).next_guess_in, 0.0)


class PerSourceTest(unittest.TestCase):
    def test_six_per_minute_per_source(self):
        lim, clock = limiter(host_per_window=100, tries_per_password=1000, base_delay=0)
        for _ in range(6):
            lim.start("a")
        refusal = lim.start("a")
        self.assertEqual(refusal.reason, "too many guesses from this source")
        self.assertIsInstance(lim.start("b"), Guess)
        clock.now += 60
        self.assertIsInstance(lim.start("a"), Guess)

    def test_thirty_in_total_then_never_again(self):
        lim, clock = limiter(host_per_window=100, tries_per_password=1000, base_delay=0)
        for _ in range(30):
            clock.now += 11
            self.assertIsInstance(fail(lim, "a"), Failure)
        clock.now += 10 ** 6
        refusal = lim.start("a")
        self.assertEqual(refusal, Refusal("this source has used up its guesses", None))
        self.assertIsInstance(lim.start("b"), Guess)

    def test_memory_is_bounded(self):
        lim, clock = limiter(host_per_window=10 ** 6, max_sources=50)
        for i in range(500):
            lim.start(f"s{i}")
        self.assertEqual(len(lim._sources), 50)
        self.assertLessEqual(len(lim._recent), 500)


class OneTimePasswordTest(unittest.TestCase):
    def test_three_tries_then_rotate(self):
        lim, clock = limiter()
        results = [fail(lim, f"s{i}") for i in range(3)]
        self.assertEqual([f.rotate_password for f in results], [False, False, True])
        self.assertEqual([f.tries_left for f in results], [2, 1, 0])
        refusal = lim.start("s9")
        self.assertEqual(refusal.reason, "the one-time password is being replaced")
        lim.password_rotated()
        self.assertIsInstance(lim.start("s9"), Guess)

    def test_pending_guesses_count_against_the_password(self):
        lim, _ = limiter()
        pending = [lim.start(f"s{i}") for i in range(3)]
        self.assertIsInstance(lim.start("s9"), Refusal)      # no fourth check of this password
        lim.succeeded(pending[0])
        self.assertIsInstance(lim.start("s9"), Guess)

    def test_permanent_password_guesses_do_not_use_the_one_time_tries(self):
        lim, _ = limiter(host_per_window=100, source_per_window=100, base_delay=0)
        for i in range(3):
            lim.ended(lim.start(f"s{i}", one_time=False))
        self.assertIsInstance(lim.start("s9"), Guess)           # the one-time password: all 3 tries
        results = [fail(lim, f"t{i}") for i in range(2)]
        self.assertEqual([f.rotate_password for f in results], [False, True])
        self.assertIsInstance(lim.start("p", one_time=False), Guess)   # not blocked by the rotation

    def test_defaults_match_the_brief(self):
        self.assertEqual((guesses.HOST_PER_WINDOW, guesses.WINDOW), (6, 60.0))
        self.assertEqual((guesses.SOURCE_PER_WINDOW, guesses.SOURCE_TOTAL), (6, 30))
        self.assertEqual(guesses.TRIES_PER_PASSWORD, 3)


if __name__ == "__main__":
    unittest.main()


class Refused(Exception):
    pass


class Taken(Exception):
    pass


class SessionGuessesTest(unittest.TestCase):
    def session(self, lim, source="viewer"):
        return guesses.SessionGuesses(lim, source, Refused, Taken)

    def test_one_guess_per_session_whatever_its_paths(self):
        lim, _ = limiter()
        tally = self.session(lim)
        tally.start()                     # the first path to reach its REPLY
        for _other_path in range(3):
            with self.assertRaises(Taken):
                tally.start()
        failures = tally.close()
        self.assertEqual([(f.source, f.failures_in_window) for f in failures], [("viewer", 1)])
        self.assertIsInstance(lim.start("someone"), Guess)      # 1 of 6 used, 1 of 3 tries

    def test_a_successful_session_takes_its_guess_back(self):
        lim, _ = limiter()
        for _ in range(10):
            tally = self.session(lim)
            tally.start()
            tally.succeeded()
            self.assertEqual(tally.close(), [])
        for i in range(6):
            self.assertIsInstance(lim.start(f"s{i}", one_time=False), Guess)

    def test_refusal_raises_the_given_error_with_when(self):
        lim, _ = limiter(tries_per_password=100)
        for i in range(6):
            self.session(lim, f"s{i}").start()
        with self.assertRaisesRegex(Refused, "too many wrong passwords; next guess in 60 s"):
            self.session(lim).start()

    def test_no_guess_after_close(self):
        lim, _ = limiter()
        tally = self.session(lim)
        tally.close()
        with self.assertRaises(Taken):
            tally.start()


if __name__ == "__main__":
    unittest.main()
