"""Chat in the GUI: the chat view (lines and an entry), the viewer's chat side panel, and the host's
small chat window.

Theory of operation. A session (ViewerSession or HostSession) keeps its chat in a ChatLog
(tagio.session.chat: bounded, for the session only) and sends a line with `send_chat(text)`, which
only queues it for the session's sender: nothing here waits on the network. `ChatView` shows a
session's log and polls it from an after() loop of its own (only the Tk thread touches the
widgets), so a view opened late shows the lines said before, and a view that is not on screen
still notices a new line from the partner (`on_partner`: the session window then shows its chat
panel, the host window comes to the front). The Text widget keeps at most MAX_SHOWN lines.

The viewer's chat is a side panel of the session window (ViewerWindow.toggle_chat). On the host,
`HostChats` opens one small `HostChatWindow` per partner when the first line arrives (the app's
"host_chat" event), with a notification: the window comes up, the bell rings and `notify(text)`
(the home window's notice line) says who wrote. Closing the window only hides the chat: the next
line opens it again with everything said so far. When the session ends the window says so and
its entry is disabled.
"""

import time
import tkinter as tk
from tkinter import ttk

POLL_MS = 200
MAX_SHOWN = 500             # lines kept in a view (the session's log keeps as many)
WHO = {"me": "You", "partner": "Partner"}


class ChatView(ttk.Frame):
    """The lines of `session.chat` and an entry that sends with Return or the Send button."""

    def __init__(self, master, session, *, on_partner=None, height=8, width=36):
        super().__init__(master)
        self.session = session
        self.on_partner = on_partner
        self._seen = 0
        self._after = None
        self.text = tk.Text(self, height=height, width=width, state="disabled", wrap="word")
        self.text.pack(fill="both", expand=True)
        self.status = ttk.Label(self, text="", foreground="#b00020")
        self.status.pack(fill="x")
        line = ttk.Frame(self)
        line.pack(fill="x")
        self.entry = ttk.Entry(line)
        self.entry.pack(side="left", fill="x", expand=True)
        self.entry.bind("<Return>", lambda _e: self.send())
        self.send_button = ttk.Button(line, text="Send", command=self.send)
        self.send_button.pack(side="right")
        self.poll()

    def send(self):
        text = self.entry.get()
        if not text.strip():
            return
        try:
            self.session.send_chat(text)
        except ValueError as exc:          # too long: say so, keep the text to shorten
            self.status.configure(text=str(exc))
            return
        self.status.configure(text="")
        self.entry.delete(0, "end")
        self.poll()

    def follow(self, session):
        """The session came back (a reconnect): send to and show `session`'s lines from now on;
        the lines shown so far stay, as the conversation goes on."""
        self.session, self._seen = session, 0

    def poll(self):
        """Show the lines added since the last poll; reschedules itself until destroyed."""
        if self._after is not None:
            self.after_cancel(self._after)
        new, self._seen = self.session.chat.since(self._seen)
        if new:
            self._show(new)
            if self.on_partner is not None and any(who == "partner" for _t, who, _x in new):
                self.on_partner()
        self._after = self.after(POLL_MS, self.poll)

    def _show(self, lines):
        self.text.configure(state="normal")
        for when, who, text in lines:
            stamp = time.strftime("%H:%M", time.localtime(when))
            self.text.insert("end", f"{stamp} {WHO.get(who, who)}: {text}\n")
        extra = int(self.text.index("end-1c").split(".")[0]) - 1 - MAX_SHOWN
        if extra > 0:
            self.text.delete("1.0", f"{extra + 1}.0")
        self.text.see("end")
        self.text.configure(state="disabled")

    def ended(self, text="The session ended."):
        self.status.configure(text=text)
        self.entry.configure(state="disabled")
        self.send_button.configure(state="disabled")

    def shown_text(self) -> str:
        return self.text.get("1.0", "end-1c")

    def destroy(self):
        if self._after is not None:
            self.after_cancel(self._after)
            self._after = None
        super().destroy()


class HostChatWindow(tk.Toplevel):
    """The host's small chat window for one partner."""

    def __init__(self, master, session, partner):
        super().__init__(master)
        self.title(f"Chat with {partner}")
        self.geometry("380x300")
        self.view = ChatView(self, session, on_partner=self.bring_up, height=10)
        self.view.pack(fill="both", expand=True, padx=6, pady=6)
        self.protocol("WM_DELETE_WINDOW", self.destroy)
        # No focus_set: the partner may be typing on this computer, and must not type into the chat.

    def bring_up(self):
        self.deiconify()
        self.lift()
        self.bell()


class HostChats:
    """One HostChatWindow per partner, opened by that partner's first line.

    find_session(peer_id) -> the HostSession or None; notify(text) shows a notice; name(peer_id)
    -> how to call the partner."""

    def __init__(self, master, find_session, notify, name=str):
        self.master, self.find_session, self.notify, self.name = master, find_session, notify, name
        self.windows = {}       # peer id -> HostChatWindow

    def message(self, peer_id):
        """The partner `peer_id` said something: show its chat (opening it if needed)."""
        window = self.windows.get(peer_id)
        if window is not None and _exists(window):
            return                  # its own poll shows the line and brings it up
        session = self.find_session(peer_id)
        if session is None:
            return                  # the session is gone already
        self.windows[peer_id] = HostChatWindow(self.master, session, self.name(peer_id))  # rings
        self.notify(f"{self.name(peer_id)} sent you a chat message.")

    def ended(self, peer_id):
        window = self.windows.pop(peer_id, None)
        if window is not None and _exists(window):
            window.view.ended()


def _exists(widget) -> bool:
    try:
        return bool(widget.winfo_exists())
    except tk.TclError:
        return False
