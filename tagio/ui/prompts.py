"""Small windows: password prompt, message box, accept/deny prompt, "being controlled" bar.

Theory of operation: every dialog here is non-blocking.  It is a Toplevel that calls a
callback with the answer and destroys itself; nothing runs a nested `wait_window` loop,
so the controller's after() poll keeps draining the event queue while a dialog is open,
and tests can find the dialog and press its buttons.  The accept prompt counts down with
after() and denies by itself when the time is up (a host left unattended must not be
opened by a forgotten prompt).  Only the Tk main thread may touch these windows.
"""

import tkinter as tk
from tkinter import ttk

from tagio.client import words
from tagio.ui import model, theme


class Dialog(tk.Toplevel):
    """A transient, centred, card-styled Toplevel; Escape closes it via `cancel()`."""

    def __init__(self, parent, title, transient=True):
        super().__init__(parent, background=theme.CARD)
        self.withdraw()
        self.title(title)
        self.resizable(False, False)
        if transient:       # window managers hide transients with a minimised parent
            self.transient(parent.winfo_toplevel())
        self.body = ttk.Frame(self, style="Plain.TFrame", padding=20)
        self.body.pack(fill="both", expand=True)
        self.protocol("WM_DELETE_WINDOW", self.cancel)
        self.bind("<Escape>", lambda _e: self.cancel())

    def show(self):
        """Centre over the parent and map the window."""
        self.update_idletasks()
        parent = self.master.winfo_toplevel()
        if parent.winfo_viewable():
            left, top, width, height = (parent.winfo_rootx(), parent.winfo_rooty(),
                                        parent.winfo_width(), parent.winfo_height())
        else:               # main window minimised or hidden: centre on the screen
            left, top, width, height = 0, 0, self.winfo_screenwidth(), self.winfo_screenheight()
        x = left + max(0, (width - self.winfo_reqwidth()) // 2)
        y = top + max(0, (height - self.winfo_reqheight()) // 3)
        self.geometry(f"+{x}+{y}")
        self.deiconify()
        self.lift()
        return self

    def heading(self, title, message):
        """A bold title over a wrapped message: the top of every message-style dialog."""
        self.title_text, self.message_text = title, message
        ttk.Label(self.body, text=title, style="Heading.TLabel").pack(anchor="w")
        ttk.Label(self.body, text=message, style="Card.TLabel", wraplength=380,
                  justify="left").pack(anchor="w", pady=(8, 0))

    def buttons(self, *specs):
        """specs: (text, command, style) from right to left; returns the button widgets."""
        row = ttk.Frame(self.body, style="Plain.TFrame")
        row.pack(fill="x", pady=(16, 0))
        made = []
        for text, command, style in specs:
            button = ttk.Button(row, text=text, command=command, style=style)
            button.pack(side="right", padx=(theme.GAP, 0))
            made.append(button)
        return made

    def cancel(self):
        self.destroy()

    def destroy(self):
        super().destroy()
        self._release()

    def _release(self):
        """Drop our references to child widgets and Tk variables now, on the Tk thread.

        Widgets and their owner form reference cycles; left to the cyclic GC they may be freed
        on a worker thread, and a tkinter Variable freed there calls into Tcl from the wrong
        thread ("main thread is not in main loop")."""
        for name, value in list(vars(self).items()):
            if name == "master":
                continue
            if isinstance(value, dict) and any(isinstance(v, (tk.Misc, tk.Variable)) for v in value.values()):
                value.clear()
            elif isinstance(value, (tk.Misc, tk.Variable)):
                delattr(self, name)


class MessageDialog(Dialog):
    """One clear message with an OK button; `on_close()` runs when it is dismissed."""

    def __init__(self, parent, title, message, on_close=None):
        super().__init__(parent, title)
        self.on_close = on_close
        self.heading(title, message)
        (self.ok_button,) = self.buttons(("OK", self.cancel, "Accent.TButton"))
        self.bind("<Return>", lambda _e: self.cancel())
        self.show()
        self.ok_button.focus_set()

    def cancel(self):
        callback, self.on_close = self.on_close, None
        super().cancel()
        if callback:
            callback()


class ConfirmDialog(Dialog):
    """A yes/no question; `on_answer(True)` only for Yes (No, Escape and the close box: False)."""

    def __init__(self, parent, title, message, on_answer, yes="Yes", no="No"):
        super().__init__(parent, title)
        self.on_answer = on_answer
        self.heading(title, message)
        self.yes_button, self.no_button = self.buttons((yes, lambda: self.answer(True), "Accent.TButton"),
                                                       (no, lambda: self.answer(False), "TButton"))
        self.show()
        self.no_button.focus_set()     # Enter by reflex must not end a session

    def cancel(self):
        self.answer(False)

    def answer(self, yes: bool):
        callback, self.on_answer = self.on_answer, None
        self.destroy()
        if callback:
            callback(bool(yes))


class AnswerDialog(Dialog):
    """A dialog that hands one answer (None: cancelled) to `self.on_done`, once, after it is gone."""

    def cancel(self):
        self._finish(None)

    def _finish(self, answer):
        callback, self.on_done = self.on_done, None
        self.destroy()
        if callback:
            callback(answer)


class PasswordDialog(AnswerDialog):
    """Asks for the partner's password; `on_done(password or None)`."""

    def __init__(self, parent, partner_id, on_done):
        super().__init__(parent, "Password")
        self.on_done = on_done
        self.password_var = tk.StringVar(master=self)
        ttk.Label(self.body, text=f"Connect to {model.display_id(partner_id)}",
                  style="Heading.TLabel").pack(anchor="w")
        ttk.Label(self.body, text="Enter the password shown on your partner's screen.",
                  style="Muted.TLabel").pack(anchor="w", pady=(2, 10))
        self.entry = ttk.Entry(self.body, textvariable=self.password_var, show="\u2022", width=30,
                               style="Entry.TEntry")
        self.entry.pack(fill="x")
        self.error_var = tk.StringVar(master=self)
        ttk.Label(self.body, textvariable=self.error_var, style="Error.TLabel").pack(anchor="w", pady=(4, 0))
        self.ok_button, _cancel = self.buttons(("Connect", self.submit, "Accent.TButton"),
                                               ("Cancel", self.cancel, "TButton"))
        self.entry.bind("<Return>", lambda _e: self.submit())
        self.entry.bind("<KP_Enter>", lambda _e: self.submit())
        self.show()
        self.entry.focus_set()

    def submit(self):
        password = self.password_var.get()
        if not password.strip():
            self.error_var.set("Enter the password.")
            return
        if len(password) > model.MAX_PASSWORD_LEN:
            self.error_var.set(f"A password has at most {model.MAX_PASSWORD_LEN} characters.")
            return
        self._finish(password)

class AcceptPrompt(Dialog):
    """"Desk X (name) wants to connect" with what it may do (control, clipboard, files), "always
    allow this desk", and Accept / Deny; denies by itself after `timeout` seconds.

    `on_answer(answer, always)`: answer is False (denied), True (everything offered was left
    ticked: all the host's settings allow) or a partners.Rights with what was ticked; `always`
    is the "always allow this desk" box. A callback taking one argument gets the answer alone."""

    def __init__(self, parent, peer_id, on_answer, timeout=model.ACCEPT_TIMEOUT_S, name="",
                 files=False, view_only=False):
        super().__init__(parent, "Incoming connection", transient=False)   # seen even if TagIO is minimised
        self.peer_id, self.on_answer, self.left, self.name = peer_id, on_answer, int(timeout), name
        self.attributes("-topmost", True)
        ttk.Label(self.body, text="Incoming connection", style="Heading.TLabel").pack(anchor="w")
        self.text_var = tk.StringVar(master=self, value=model.countdown_text(peer_id, self.left, name))
        ttk.Label(self.body, textvariable=self.text_var, style="Card.TLabel", wraplength=440,
                  justify="left").pack(anchor="w", pady=(8, 0))
        # Only a viewer that proved its ID is ever asked about (client/proving.py).
        ttk.Label(self.body, text=words.ACCEPT_VERIFIED, style="Muted.TLabel", wraplength=440,
                  justify="left").pack(anchor="w", pady=(2, 0))
        self._rights_boxes(files, view_only)
        self.accept_button, self.deny_button = self.buttons(
            ("Accept", lambda: self.answer(True), "Accent.TButton"),
            ("Deny", lambda: self.answer(False), "TButton"))
        self._tick_id = self.after(1000, self._tick)
        self.show()
        self.deny_button.focus_set()   # Enter by reflex must not let someone in

    def _rights_boxes(self, files, view_only):
        """One box per right the host can give (files only with a files folder; control and the
        clipboard not when Settings say view only: a view-only host shares no clipboard), all
        ticked; and "always allow this desk", not ticked. Unticking control unticks and greys the
        clipboard (see only shares no clipboard); ticking it again gives the clipboard box back."""
        offered = {"control": not view_only, "clipboard": not view_only, "files": bool(files)}
        self.rights, self.rights_boxes = {}, {}
        for key, text in words.ACCEPT_RIGHTS:
            if offered[key]:
                self.rights[key] = tk.BooleanVar(master=self, value=True)
                self.rights_boxes[key] = ttk.Checkbutton(self.body, text=text, variable=self.rights[key],
                                                         style="Card.TCheckbutton")
                self.rights_boxes[key].pack(anchor="w", pady=(4, 0))
        if "control" in self.rights_boxes:
            self.rights_boxes["control"].configure(command=self._control_changed)
        self._clipboard_was = True
        self.always = tk.BooleanVar(master=self, value=False)
        self.always_box = ttk.Checkbutton(self.body, text=words.ALWAYS_ALLOW, variable=self.always,
                                          style="Card.TCheckbutton")
        self.always_box.pack(anchor="w", pady=(8, 0))

    def _control_changed(self):
        clipboard, box = self.rights.get("clipboard"), self.rights_boxes.get("clipboard")
        if clipboard is None:
            return
        if self.rights["control"].get():
            box.state(["!disabled"])
            clipboard.set(self._clipboard_was)
        else:
            self._clipboard_was = clipboard.get()
            clipboard.set(False)
            box.state(["disabled"])

    def granted(self):
        """True when every offered right is ticked, else the Rights ticked."""
        from tagio.client.partners import Rights
        ticked = {key: var.get() for key, var in self.rights.items()}
        if all(ticked.values()):
            return True
        return Rights(**{key: ticked.get(key, False) for key in ("control", "clipboard", "files")})

    def _tick(self):
        self.left -= 1
        if self.left <= 0:
            self.answer(False)
            return
        self.text_var.set(model.countdown_text(self.peer_id, self.left, self.name))
        self._tick_id = self.after(1000, self._tick)

    def cancel(self):
        self.answer(False)

    def destroy(self):
        # Also when the parent goes first: a pending countdown would fire into a deleted command.
        if self._tick_id:
            self.after_cancel(self._tick_id)
            self._tick_id = None
        super().destroy()
        # Tk variables must die on the Tk thread, not in a garbage collection in another thread.
        self.text_var = self.always = None
        self.rights = {}

    def answer(self, accepted: bool):
        callback, self.on_answer = self.on_answer, None
        granted = self.granted() if accepted and callback else False
        always = bool(granted) and self.always.get()
        self.destroy()
        if callback is None:
            return
        if _arity(callback) >= 2:
            callback(granted, always)
        else:
            callback(bool(granted))


def _arity(callback) -> int:
    import inspect
    try:
        return len(inspect.signature(callback).parameters)
    except (TypeError, ValueError):
        return 1


def primary_monitor(widget):
    """(left, top, width) of the primary monitor of the widget's screen (see primary_area)."""
    return primary_area(widget)[:3]


def primary_area(widget):
    """(left, top, width, height) of the primary monitor of the widget's screen, as mss reads it
    (one short look: X RandR's primary output; on Windows the main display); the whole screen
    when it cannot tell. Tk sees only the virtual screen: across two monitors its middle is
    where they meet."""
    kwargs = {"display": widget.winfo_screen()} if widget.tk.call("tk", "windowingsystem") == "x11" else {}
    try:
        import mss
        with mss.MSS(**kwargs) as sct:
            monitor = sct.primary_monitor
        return monitor["left"], monitor["top"], monitor["width"], monitor["height"]
    except Exception:       # mss (third-party) could not tell: no RandR, no monitor; the virtual screen
        return 0, 0, widget.winfo_screenwidth(), widget.winfo_screenheight()


class ControlledIndicator(tk.Toplevel):
    """Small always-on-top bar: "Being controlled by 123 456 789  [Disconnect]", or in view-only
    "Viewing your screen (no control) - 123 456 789" (the partner sees but cannot touch)."""

    def __init__(self, parent, peer_id, on_disconnect, view_only=False, name=""):
        super().__init__(parent, background=theme.ACCENT)
        self.withdraw()
        self.peer_id, self.name = peer_id, name
        self.on_disconnect = on_disconnect
        self.title("TagIO \u2014 being controlled")
        self.resizable(False, False)
        self.attributes("-topmost", True)
        self.protocol("WM_DELETE_WINDOW", self.disconnect)
        self.label = tk.Label(self, background=theme.ACCENT, foreground="#ffffff",
                              font=theme.indicator_font(self), padx=12, pady=8)
        self.label.pack(side="left")
        self.set_view_only(view_only)
        self.disconnect_button = ttk.Button(self, text="Disconnect", command=self.disconnect)
        self.disconnect_button.pack(side="left", padx=(0, 10), pady=6)
        self.update_idletasks()
        left, top, width = primary_monitor(self)
        x = left + (width - self.winfo_reqwidth()) // 2
        self.geometry(f"+{max(left, x)}+{top}")     # top centre of the primary monitor, like AnyDesk's bar
        self.deiconify()

    def set_view_only(self, view_only):
        """Say whether the partner controls this computer or only sees it."""
        self.view_only = bool(view_only)
        if self.view_only:
            self.text = words.HOST_VIEWED.format(desk=model.desk_text(self.peer_id, self.name))
            self.title("TagIO \u2014 screen being viewed")
        else:
            self.text = model.controlled_text(self.peer_id, self.name)
        self.label.configure(text=("\u25c9  " if self.view_only else "\u25cf  ") + self.text)

    def disconnect(self):
        callback, self.on_disconnect = self.on_disconnect, None
        if callback:
            callback(self.peer_id)


class AboutDialog(MessageDialog):
    def __init__(self, parent, version):
        super().__init__(parent, "About TagIO",
                         f"TagIO {version}\nSecure, self-hostable remote desktop.\n\n"
                         "Every session is end-to-end encrypted, with keys agreed from the password "
                         "(SPAKE2); the relay never sees your screen or your password.")
