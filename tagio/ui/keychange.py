"""The dialog for a partner whose key changed, and the choice to trust the new key.

Theory of operation: a connect that ends in KeyChangedError (client/pins.py: the partner's key is
not the one pinned for its ID) shows this dialog instead of the plain error box: the words of the
one table (tagio.client.words), the key this desk knew and the new one as fingerprints, and two
buttons. Cancel is the default (Enter and Escape do nothing harmful); "Trust the new key" closes
the dialog as Cancel does and then calls `on_trust(error)`, and the App connects again with
`accept_new_key` set to exactly the key shown here, so a third key still gets this dialog. The new
key replaces the pin only once that connect's host has proven it and admitted us. Like every
dialog in tagio.ui it is non-blocking and touched only by the Tk thread.
"""

from tkinter import ttk

from tagio.client import words
from tagio.client.pins import KeyChangedError
from tagio.crypto.identity import fingerprint
from tagio.ui.prompts import Dialog, MessageDialog


class KeyChangedDialog(Dialog):
    """Loud refusal of a changed key: `on_close()` when dismissed either way, then `on_trust(error)`
    only for "Trust the new key"."""

    def __init__(self, parent, error: KeyChangedError, title, message, on_close=None, on_trust=None):
        super().__init__(parent, title)
        self.error, self.on_close, self.on_trust = error, on_close, on_trust
        self.heading(title, message)
        keys = ttk.Frame(self.body, style="Plain.TFrame")
        keys.pack(anchor="w", pady=(10, 0))
        for row, (label, key) in enumerate((("Known key:", error.pinned), ("New key:", error.offered))):
            ttk.Label(keys, text=label, style="Muted.TLabel").grid(row=row, column=0, sticky="w")
            ttk.Label(keys, text=fingerprint(key), style="Muted.TLabel").grid(row=row, column=1,
                                                                               sticky="w", padx=(8, 0))
        self.cancel_button, self.trust_button = self.buttons(
            ("Cancel", self.cancel, "Accent.TButton"),
            (words.TRUST_NEW_KEY, self.trust, "TButton"))
        self.bind("<Return>", lambda _e: self.cancel())
        self.show()
        self.cancel_button.focus_set()      # Enter by reflex must not trust a stranger

    def cancel(self):
        self._close(trust=False)

    def trust(self):
        self._close(trust=True)

    def _close(self, trust):
        on_close, on_trust, error = self.on_close, self.on_trust, self.error
        self.on_close = self.on_trust = None
        super().cancel()
        if on_close:
            on_close()
        if trust and on_trust:
            on_trust(error)


def failure_dialog(parent, error, title, message, on_close, on_trust):
    """The dialog for a failed connect: KeyChangedDialog for a changed key, else a MessageDialog."""
    if isinstance(error, KeyChangedError):
        return KeyChangedDialog(parent, error, title, message, on_close, on_trust)
    return MessageDialog(parent, title, message, on_close=on_close)


def accepted_key(choice, partner_id):
    """The key the person chose to trust for `partner_id` (ViewerSide.accept_key: (partner, key)), or None."""
    if choice is not None and choice[0] == partner_id:
        return choice[1]
    return None
