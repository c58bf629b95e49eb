"""The session window's input side: mouse, wheel and keys to the host, the local shortcuts, and the
host's pointer drawn where the local one is.

Theory of operation. `ViewerInput` is a mixin of ViewerWindow (it uses the window's canvas, scale
and session). Every event becomes a call of a ViewerSession send_* method, which only hands the
message to the session's sender thread: nothing here waits on the network. `_safe` drops input
once the session ended and always in view-only, where the host would ignore it anyway: the window
does not pretend to control.

Local shortcuts (LOCAL_SHORTCUTS) are handled here and never sent: Ctrl+Alt+Enter switches full
screen on and off (the way out of full screen, whatever the toolbar shows), Ctrl+Alt+Home puts the
keyboard on the toolbar. Their Ctrl and Alt presses have gone to the host already (we cannot know a
shortcut is coming); the host sees them released when the user lets go, and no Enter or Home.

Pointer. Over the remote screen the local pointer is hidden and the host's pointer shape is drawn
at the local pointer's position at once, so moving feels immediate although the host's own
position comes back a round trip later. While the local pointer moved within LOCAL_POINTER_HOLD
seconds, the host's Cursor reports are remembered but not drawn (they would pull the picture back
to where the pointer was a moment ago); after that, or when the local pointer leaves the picture,
the host's position is drawn (a program on the host may move the pointer). "Show both pointers"
(View menu) keeps the local pointer visible and draws the host's at its own position, as before.
When the window's geometry changes under a pointer that does not move (leaving full screen moves
the picture by the window's title bar), X sends no Motion: the pointer's place is read again once
the layout settled, and counts as a move (when the pointer was moving over the picture before,
and has not left it), so the drawn pointer stays under the real one.
"""

import time

from tagio.platform import WINDOWS
from tagio.ui.keys import modifiers
from tagio.ui.pointer import button_role

LOCAL_POINTER_HOLD = 0.5
CTRL_ALT = frozenset({"Control", "Alt"})
# (keysym, modifiers that must be held) -> window method name
LOCAL_SHORTCUTS = {
    ("Return", CTRL_ALT): "toggle_fullscreen",
    ("KP_Enter", CTRL_ALT): "toggle_fullscreen",
    ("Home", CTRL_ALT): "focus_toolbar",
}


class PointerAt:
    """Where the pointer is over the canvas, as a Motion event would say (x, y in the widget)."""

    def __init__(self, x, y):
        self.x, self.y = x, y


class ViewerInput:
    """Mixin: needs canvas, session, scale, remote_size, view_only, show_both, _keyboard,
    _held_buttons, _last_motion, _cursor_at, _pointer_check_id, _pointer_over and _place_cursor()
    from the window."""

    def _bind_input(self):
        c = self.canvas
        c.bind("<Motion>", self._motion)
        c.bind("<ButtonPress>", self._button_down)
        c.bind("<ButtonRelease>", self._button_up)
        c.bind("<MouseWheel>", self._wheel)             # Windows / macOS
        c.bind("<KeyPress>", lambda e: self._key(e, True))
        c.bind("<KeyRelease>", lambda e: self._key(e, False))
        c.bind("<Enter>", lambda e: c.focus_set())
        c.bind("<Leave>", self._pointer_left)
        c.bind("<FocusOut>", lambda e: self.release_held())
        self.bind("<Configure>", self._geometry_changed, add="+")     # the window and its children
        c.focus_set()

    # -- the pointer -----------------------------------------------------------------------------
    @property
    def pointer_local(self):
        """True when the host's pointer follows the local one (hidden local pointer)."""
        return not self.show_both and not self.view_only

    def _update_local_cursor(self):
        self.canvas.configure(cursor="none" if self.pointer_local else "")

    def _host_pointer_shown(self):
        """May a host Cursor report move the drawn pointer now?"""
        return not self.pointer_local or time.monotonic() >= self._local_pointer_until

    def _pointer_left(self, _event):
        self._local_pointer_until = 0.0
        self._pointer_over = False
        if self._cursor_at is not None:
            self._on_cursor(*self._cursor_at)

    def _geometry_changed(self, _event):
        """The window moved or changed size (full screen left, the window manager placed it):
        the picture moved under a pointer that stayed still, and X sends no Motion for that.
        Once the new layout settled, where the pointer is now counts as a move."""
        if self._pointer_check_id is None:
            self._pointer_check_id = self.after_idle(self._pointer_still_here)

    def _pointer_still_here(self):
        self._pointer_check_id = None
        c = self.canvas
        px, py = c.winfo_pointerxy()
        x, y = px - c.winfo_rootx(), py - c.winfo_rooty()
        if self.pointer_local and self._pointer_over and 0 <= x < c.winfo_width() \
                and 0 <= y < c.winfo_height():
            self._motion(PointerAt(x, y))

    def _motion(self, event):
        point = self.remote_point(event.x, event.y)
        if point is None:
            return
        self._pointer_over = True
        if self.pointer_local:
            self._local_pointer_until = time.monotonic() + LOCAL_POINTER_HOLD
            self._place_cursor(self.canvas.canvasx(event.x), self.canvas.canvasy(event.y))
        if point != self._last_motion:
            self._last_motion = point
            self._safe(self.session.send_mouse_move, *point)

    # -- buttons and wheel -------------------------------------------------------------------------
    def _button_down(self, event):
        self.canvas.focus_set()
        self._button(event, True)

    def _button_up(self, event):
        self._button(event, False)

    def _button(self, event, pressed):
        point = self.remote_point(event.x, event.y)
        if point is None:
            return
        kind, value = button_role(event.num, WINDOWS, shift=bool(event.state & 0x0001)) or (None, None)
        if kind == "scroll" and pressed:        # X11 wheel buttons
            self._safe(self.session.send_scroll, *value)
        elif kind == "keys" and pressed:        # Back/Forward side buttons: Alt+Left/Right
            for name in value:
                self._safe(self.session.send_key, name, True)
            for name in reversed(value):
                self._safe(self.session.send_key, name, False)
        elif kind == "button":
            if pressed and not self.view_only:
                self._held_buttons.add(event.num)
            elif not pressed:
                self._held_buttons.discard(event.num)
            self._safe(self.session.send_mouse_button, event.num, pressed, *point)

    def _wheel(self, event):
        steps = self._wheel_acc.add(event.delta, time.monotonic())
        if not steps:
            return                              # part of a notch so far (touchpad)
        if event.state & 0x0001:
            self._safe(self.session.send_scroll, -steps, 0)
        else:
            self._safe(self.session.send_scroll, 0, steps)

    def remote_point(self, event_x, event_y):
        """Canvas widget coordinates -> remote screen pixel (clamped to the screen)."""
        if self.remote_size is None:
            return None
        cx, cy = self.canvas.canvasx(event_x), self.canvas.canvasy(event_y)
        x = min(max(int(cx / self.scale), 0), self.remote_size[0] - 1)
        y = min(max(int(cy / self.scale), 0), self.remote_size[1] - 1)
        return x, y

    # -- keys ------------------------------------------------------------------------------------
    def local_shortcut(self, keysym, state):
        """The window method a key press is a local shortcut for, or None."""
        held = modifiers(state, self._keyboard.windowing)
        for (name, needed), method in LOCAL_SHORTCUTS.items():
            if keysym == name and needed <= held:
                return method
        return None

    def _key(self, event, pressed):
        if pressed:
            method = self.local_shortcut(event.keysym, event.state)
            if method is not None:
                self._local_keys.add(event.keycode)     # its release is ours too
                getattr(self, method)()
                return "break"
            actions = self._keyboard.press(event.keycode, event.keysym, event.char, event.state)
        else:
            if event.keycode in self._local_keys:
                self._local_keys.discard(event.keycode)
                return "break"
            actions = self._keyboard.release(event.keycode)
        self._send_keys(actions)
        return "break"      # keep Tab & co. from moving focus out of the canvas

    def _send_keys(self, actions):
        for action in actions:
            if action[0] == "text":
                self._safe(self.session.send_text, action[1])
            else:
                self._safe(self.session.send_key, action[1], action[2])

    def send_keys(self, names):
        """Press `names` in order and release them in reverse (the toolbar's special keys)."""
        for name in names:
            self._safe(self.session.send_key, name, True)
        for name in reversed(names):
            self._safe(self.session.send_key, name, False)
        self.canvas.focus_set()

    def send_ctrl_alt_del(self):
        """The secure-attention sequence (a local Ctrl+Alt+Del never reaches us)."""
        self.send_keys(("Control_L", "Alt_L", "Delete"))

    def release_held(self):
        """Let go of every key and button we pressed on the host (our window lost the keyboard,
        so their releases would never reach us and the host would keep them held)."""
        self._send_keys(self._keyboard.release_all())
        for num in sorted(self._held_buttons):
            self._safe(self.session.send_mouse_button, num, False)
        self._held_buttons.clear()

    def _safe(self, fn, *args):
        """Input after the session ended, or in view-only, is dropped here.

        `fn` (a ViewerSession send_* method) only hands the message to the session's sender
        thread and returns: it never waits on the network and never raises for it (a path that
        stopped taking data ends the session, which the status line then shows)."""
        if self.session.running and not self.view_only:
            fn(*args)
