"""Hold a sending file engine half way, so that a Pause clicked in a test always lands mid-way.

A fast path moves a whole test file between "data on the way" and the click (more so on a loaded
machine, where the click comes late), and a Pause after the last byte changes nothing (as it
should). `hold_half_way` holds the sending engine at the first chunk that takes a send past half of
its data, counted (the panel shows it) but not yet handed on, until the returned Event is set.
"""

import threading
from unittest import mock

HOLD_LIMIT = 60                 # seconds the engine is held at most (a failing test goes on)


def hold_half_way(case, files):
    """Hold the FileEngine `files` (the sender, in this process) half way through a send until the
    returned Event is set; `case` (a TestCase) releases it and undoes the patch at cleanup. Progress
    is reported for every chunk meanwhile, so the hold comes at that very chunk; the last report
    (all sent, from the receive thread) is never held."""
    from tagio.session import files as engine
    release, report = threading.Event(), files.on_event
    every_chunk = mock.patch.object(engine, "PROGRESS_EVERY", 0)
    every_chunk.start()
    case.addCleanup(every_chunk.stop)      # (stopped at the hold already: then a no-op)

    def on_event(name, **fields):
        if (name == "file_progress" and fields["direction"] == "send" and not release.is_set()
                and fields["total"] <= 2 * fields["bytes"] < 2 * fields["total"]):
            every_chunk.stop()
            release.wait(HOLD_LIMIT)
        report(name, **fields)

    files.on_event = on_event
    case.addCleanup(release.set)
    return release
