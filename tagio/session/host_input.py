"""The host's input side: the viewer's mouse and keys, replayed on this desktop.

Theory of operation. `HostInput` is the part of HostSession (tagio.session.host) that applies
input. The receive thread hands Mouse/Key/Scroll/Text to `_on_input`, which drops them in
view-only mode, keeps Ctrl+Alt+Del from a Windows host (the system would drop it; the viewer is
told why instead) and queues the rest (bounded). The inject thread replays them with pynput or
XTest (tagio.session.inject, loaded lazily; without it the host is view-only), warns once when a
press goes into an elevated window on Windows, and releases every held key and button when it
ends. The injector is closed exactly once, by whichever of stop() and join() comes last.
"""

import time

from tagio.protocol import session as m
from tagio.session import capture_win32 as win
from tagio.session.inject import Injector, InjectorUnavailable


class HostInput:
    """The input half of HostSession (a mixin: the state lives on the session)."""

    def _open_injector(self):
        self._elevated = self._elevated or win.ElevatedForeground.open(time.monotonic)
        try:
            self._injector = Injector().open(self.display)
        except InjectorUnavailable as exc:
            self.view_only = True
            self.on_event("view_only", reason=str(exc))


    def _release_input(self):
        """Close input injection once its thread is gone, and only once: stop() (the Disconnect
        button's thread, or a quitting host) and join() (the session's owner) both get here, at
        the same time. Two closes of one X connection at once left Xlib's request lock held, and
        the host hung for ever in the second."""
        with self._teardown:
            if self._injector is None or self._workers.alive():
                return
            injector, self._injector = self._injector, None
        injector.close()


    def _on_input(self, msg):
        if self.view_only:
            return      # view-only: the viewer may send input, it is simply not applied
        if isinstance(msg, m.Key) and self._sas.feed(msg.key, msg.pressed) and self.refuse_secure_attention:
            self.on_event("warning", message=win.SAS_NOTICE)
            self._notice = win.SAS_NOTICE   # the capture thread draws it for the viewer
            return      # Windows would drop it anyway; the Ctrl and Alt releases still go through
        self._workers.put(self._input_q, msg)


    def _check_elevated(self, msg):
        """Windows: a press into an elevated program's window is dropped by the system; say so
        (once per window and ELEVATED_REPEAT) on both sides. The input still goes out."""
        pressing = getattr(msg, "pressed", False) or getattr(msg, "action", None) in (m.MOUSE_PRESS, m.MOUSE_CLICK)
        if self._elevated is None or not (pressing or isinstance(msg, m.Text)):
            return
        try:
            blocked = self._elevated.blocked_window()
        except OSError:         # a window that went away while we asked
            return
        if blocked is not None:
            self.on_event("warning", message=win.ELEVATED_NOTICE)
            self._notice = win.ELEVATED_NOTICE

    def _inject_loop(self):
        try:
            while True:
                msg = self._workers.get(self._input_q)
                if msg is None:
                    return
                self._check_elevated(msg)
                try:
                    self._injector.handle(msg)
                except KeyError as exc:
                    self.on_event("warning", message=f"unknown key {exc.args[0]!r} ignored")
        finally:
            # Here, not only in join()/stop(): the session may end (Bye, error, lost peer) long
            # before its owner joins it, and a held Ctrl must not stay down meanwhile. This thread
            # owns the injector, so releasing here cannot race with a key still being pressed.
            if self._injector is not None:
                self._injector.release_all()
