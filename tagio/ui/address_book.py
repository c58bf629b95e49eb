"""The controller of the home window's address book: rows, online rounds, rename, remove, history.

Theory of operation: `AddressBook` is the small part of the controller (app.py) that moves data
between the partner book and the host's history (tagio.client.partners / history, reached through
Settings) and the home window. The App calls `refresh()` and `poll()` from its after() poll on the
Tk thread, and routes the home window's rename / remove / history callbacks here. Rows are
recomputed only when the book, an online state or the shown minute changed. Who is online is
asked of the relay in the App's tracked workers (OnlineRounds in ui/partners.py decides when), so
the Tk thread never waits on the network. Dialogs go through the App's one-dialog-at-a-time slot.
Remove asks first, and forgets the partner's pinned key (client/pins.py) with its row: a desk
removed here is a new partner on its next connect, its key trusted afresh.
"""

import time

from tagio.client import words
from tagio.client.pins import PinStore
from tagio.ui import model
from tagio.ui.partners import HistoryDialog, OnlineRounds, RenameDialog, partner_rows
from tagio.ui.prompts import ConfirmDialog


class AddressBook:
    """`app` gives: root, home, settings, client, fonts, run_in_worker, dialog slot
    (`dialog`, `_dialog_open()`), and `_closing` (stops an online round)."""

    def __init__(self, app):
        self.app = app
        self.online = OnlineRounds()
        self._shown = None

    def callbacks(self) -> dict:
        return {"rename": self.rename, "remove": self.remove, "history": self.open_history}

    def refresh(self):
        """The address book's rows, recomputed only when something shown changed."""
        book = self.app.settings.partners
        key = (book.version, tuple(sorted(self.online.states.items())), int(time.time() // 60))
        if key != self._shown:
            self._shown = key
            self.app.home.set_partners(partner_rows(book.partners(), self.online.states))

    def poll(self):
        """At most one round of relay lookups per ROUND_S, only while the window shows and the
        relay is reachable; the lookups run in a worker (they wait on the network)."""
        app = self.app
        relay = app.client.current_relay()
        online = model.parse_relay_status(app.client.relay_status)[0] == "online"
        if relay is None or not self.online.due(bool(app.root.winfo_viewable()), online):
            return
        ids = [p.id for p in app.settings.partners.partners()]
        if not ids:
            return          # nothing to ask: the first partner is asked about at once
        self.online.started()
        app.run_in_worker(lambda: self.online.ask(relay, ids, stop=app._closing),
                          lambda found, _error: self.online.finished(found))

    def rename(self, partner_id):
        app = self.app
        if app._dialog_open():
            return
        partner = app.settings.partners.get(partner_id)

        def done(name):
            app.dialog = None
            if name is not None:
                app.settings.partners.rename(partner_id, name)
        app.dialog = RenameDialog(app.root, partner_id, partner.name if partner else "", done)

    def remove(self, partner_id):
        """Ask first: removing a partner also forgets the key pinned for it (client/pins.py)."""
        app = self.app
        if app._dialog_open():
            return
        partner = app.settings.partners.get(partner_id)
        desk = model.desk_text(partner_id, partner.shown_name if partner else "")

        def done(yes):
            app.dialog = None
            if yes:
                self.forget(partner_id)
        app.dialog = ConfirmDialog(app.root, words.REMOVE_TITLE, words.REMOVE_CONFIRM.format(desk=desk),
                                   done, yes=words.REMOVE, no="Keep")

    def forget(self, partner_id):
        """Out of the address book, and its pinned key forgotten: a new partner from now on. A
        pin file that cannot be written raises PinFileError (shown as an error by the App)."""
        self.app.settings.partners.remove(partner_id)
        self.online.states.pop(partner_id, None)
        PinStore(self.app.settings.config_dir).forget(partner_id)

    def open_history(self):
        app = self.app
        if not app._dialog_open():
            app.dialog = HistoryDialog(app.root, app.settings.history.entries(), app.fonts)
