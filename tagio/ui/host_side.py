"""The controller's host side: what this desk shows while partners come in and control it.

Theory of operation: `HostSide` is the part of the controller (app.py) that turns the core's host
events into windows: the accept prompt (prompts.AcceptPrompt) for an "accept_request" that the
AcceptBridge (bridge.py) posted from a core thread, the always-on-top "being controlled" bar
(prompts.ControlledIndicator) from "session_started" to "session_ended" (its Disconnect ends the
host sessions in one of the App's tracked workers: stopping them may wait on the network), the
host's chat window per partner (chat_panel.HostChats), and one-line notices in the home window for
the rest (incoming, refused, failed guesses and attempts, clipboard notices).

Everything here runs on the Tk thread: the App's after() poll dispatches the events of HANDLERS
to these methods and calls `close_withdrawn_prompts()` on every tick, so a prompt whose viewer gave
up (the core resolved its request) goes away at once. "Always allow this desk" in a prompt that was
accepted stores the desk and its rights in the partner book before the request is resolved.
"""

from tagio.client import words
from tagio.client.admission import CANCELLED
from tagio.ui import model
from tagio.ui.chat_panel import HostChats
from tagio.ui.prompts import AcceptPrompt, ControlledIndicator
from tagio.ui.tkutil import destroy, exists


class HostSide:
    """`app` gives: root, settings, client (read each time: a new relay makes a new Client), home
    (set_notice) and _spawn (a tracked worker)."""

    def __init__(self, app):
        self.app = app
        self.indicators = {}        # peer id -> ControlledIndicator
        self.prompts = {}           # AcceptRequest -> AcceptPrompt
        self.chats = HostChats(app.root, self.host_session, app.home.set_notice, model.display_id)

    def active(self) -> bool:
        """True while this desk is being controlled (or watched)."""
        return bool(self.indicators)

    # --- accept prompts -----------------------------------------------------------------------

    def on_accept_request(self, request):
        if request.done:
            return
        settings = self.app.settings

        def answered(granted, always):
            self.prompts.pop(request, None)
            if always and granted:
                settings.partners.trust(request.peer_id, _rights(granted), request.name)
            request.resolve(granted)
        self.prompts[request] = AcceptPrompt(
            self.app.root, request.peer_id, answered, timeout=request.timeout, name=request.name,
            files=request.files, view_only=bool(self.app.client.host_options.get("view_only")))

    def close_withdrawn_prompts(self):
        """A viewer that gave up (or fell silent) resolved its request: its prompt goes at once."""
        for request, prompt in list(self.prompts.items()):
            if request.done:
                self.prompts.pop(request, None)
                if exists(prompt):
                    destroy(prompt)

    # --- the "being controlled" bar -------------------------------------------------------------

    def on_session_started(self, peer_id, role="host", path="", view_only=None, desk_name="", **_fields):
        if role != "host" or peer_id in self.indicators:
            return
        if view_only is None:       # the rights of this session, else the settings
            view_only = bool(self.app.client.host_options.get("view_only"))
        self.indicators[peer_id] = ControlledIndicator(self.app.root, peer_id, self.disconnect_clicked,
                                                       view_only=view_only, name=desk_name)
        # "Desk X is connecting..." must not stay: a desk allowed without a prompt never answered one
        self.app.home.set_notice(f"Desk {model.display_id(peer_id)} connected"
                                 + (" (view only)." if view_only else "."))

    def on_view_only(self, peer_id, **_fields):
        """The host session could not load input injection: the partner only sees."""
        indicator = self.indicators.get(peer_id)
        if indicator is not None:
            indicator.set_view_only(True)

    def on_session_ended(self, peer_id, role="host", reason=None, **_fields):
        if role != "host":
            return
        indicator = self.indicators.pop(peer_id, None)
        if indicator is not None:
            destroy(indicator)
        self.chats.ended(peer_id)
        self.app.home.set_notice(f"Session with {model.display_id(peer_id)} ended."
                                 + (f" {words.ending(reason)}" if reason else ""))

    def disconnect_clicked(self, _peer_id):
        self.app._spawn(self.app.client.end_host_sessions, name="end-host-sessions")

    # --- notices and chat -----------------------------------------------------------------------

    def on_auth_failed(self, peer_id, tries_left=0, **_fields):
        self.app.home.set_notice(words.wrong_guess(model.display_id(peer_id), tries_left))

    def on_refused(self, peer_id, reason="", **_fields):
        if reason == CANCELLED:
            return self.app.home.set_notice(words.PARTNER_GAVE_UP.format(desk=model.display_id(peer_id)))
        self.app.home.set_notice(f"Refused desk {model.display_id(peer_id)}"
                                 + (f" ({reason})." if reason else "."))

    def on_incoming(self, peer_id, **_fields):
        self.app.home.set_notice(f"Desk {model.display_id(peer_id)} is connecting\u2026")

    def on_attempt_failed(self, peer_id, reason="", error=None, **_fields):
        why = words.explain(error, partner_id=peer_id).sentence if error is not None else (
            words.ending(reason) if reason else "")
        self.app.home.set_notice(f"Connection from {model.display_id(peer_id)} failed."
                                 + (f" {why}" if why else ""))

    def on_clipboard_notice(self, peer_id, message="", **_fields):
        self.app.home.set_notice(message)       # e.g. a copied text too big to share

    def on_chat(self, peer_id, **_fields):
        self.chats.message(peer_id)     # opens that partner's chat window (it polls the session)

    def host_session(self, peer_id):
        return next((s for s in self.app.client.host_sessions if getattr(s, "peer_id", None) == peer_id),
                    None)


# event name -> handler(host_side, **fields), dispatched by the App's poll
HANDLERS = {
    "accept_request": HostSide.on_accept_request,
    "session_started": HostSide.on_session_started,
    "session_ended": HostSide.on_session_ended,
    "auth_failed": HostSide.on_auth_failed,
    "refused": HostSide.on_refused,
    "incoming": HostSide.on_incoming,
    "attempt_failed": HostSide.on_attempt_failed,
    "host_clipboard_notice": HostSide.on_clipboard_notice,
    "host_view_only": HostSide.on_view_only,
    "host_chat": HostSide.on_chat,
}


def _rights(granted):
    """The accept prompt's answer as Rights to remember (True: everything the settings allow)."""
    from tagio.client.hosting import ALL_RIGHTS
    return granted if granted is not True else ALL_RIGHTS
