"""The Settings dialog: relay, unattended access, incoming-connection policy, session quality, files.

Theory of operation: the dialog copies the current Settings into Tk variables, and on Save
builds a model.SettingsForm from them, validates it with model.validate_settings (pure),
shows one message under each bad field, and only when everything is valid applies the
values (model.apply_settings) and calls Settings.save().  The permanent password is write
only: the entries start empty and the dialog says whether one is set, never what it is.
`on_saved(settings)` lets the controller re-read what changed (e.g. restart the relay
registration). `relay_override`: the relay given at start (--relay, TAGIO_RELAY), which wins over
the file for this run: the Address shows it read-only with a note, and the file's relay is kept.  Only the Tk main thread may touch it.

A new permanent password is stored as its SPAKE2+ verifier (from its scrypt secret), which takes tens of ms (more on a
slow machine): too long for the Tk thread, and not the dialog's job.  The dialog hands the
password to `derive_secret(password, done)`, owned by the controller (App.derive_permanent_secret
runs scrypt in one of its tracked workers), which calls `done(secret, error)` back on the Tk
thread; meanwhile Save is disabled and the dialog stays responsive.  Only when the secret is
back are the values applied and saved, so a cancelled or failed derivation changes nothing.
Nothing in this module derives a secret.

Reconnect: "Let a partner whose connection broke come back by itself" is Settings.allow_reconnect,
which the core reads at every use (client/resume.py): saved, it holds from the next broken path on.

Files: "Allow partners to send and fetch files" (off by default) and the one folder they may use
(Settings.files_folder(): "TagIO Files" in the home folder unless another is chosen with Browse);
on Save the folder is made if missing, and a folder that cannot be made is shown under it.
"""

import tkinter as tk
from tkinter import ttk

from tagio import DEFAULT_RELAY
from tagio.client.settings import default_files_dir
from tagio.errors import ConfigError, TagioError
from tagio.ui import model, theme
from tagio.ui.prompts import Dialog

RELAY_OVERRIDE_NOTE = ("Given when TagIO was started (--relay or TAGIO_RELAY): it is used for this run "
                       "whatever is saved here. Without it: {saved}.")


class SettingsDialog(Dialog):
    def __init__(self, parent, settings, host_id, *, derive_secret, on_saved=None, relay_override=None):
        super().__init__(parent, "TagIO Settings")
        self.relay_override = relay_override
        self.settings, self.host_id, self.on_saved = settings, host_id, on_saved
        self.derive_secret = derive_secret
        self.deriving = False
        self.vars = self._make_vars(settings)
        self.errors = {name: tk.StringVar(master=self) for name in model.FIELD_CHECKS}
        self.errors["save"] = tk.StringVar(master=self)
        self.entries, self.checks = {}, {}
        self._error_slots = {}
        self._outer = self.body
        self.notebook = ttk.Notebook(self._outer)    # one page a section: the dialog fits a small screen
        self.notebook.pack(fill="both", expand=True)
        self._section("Relay server")
        if relay_override:
            self._relay_override(relay_override)
        else:
            self._entry("relay", "Address", hint=f"Empty: the public relay {DEFAULT_RELAY}")
        self._entry("relay_secret", "Relay secret", show="\u2022", hint="Only for private relays started with --auth")
        self._section("Incoming connections")
        self._check("ask_before_accept", "Ask me before accepting a connection")
        self._check("allow_reconnect", "Let a partner whose connection broke come back by itself (within 60 s)")
        self._password_block()
        self._section("Sessions")
        self._spin("fps_cap", "Frame-rate cap (frames/s)", model.FPS_RANGE)
        self._spin("quality", "Image quality", model.QUALITY_RANGE)
        self._check("view_only", "View only: partners can watch this computer but not control it")
        self.share_clipboard = tk.BooleanVar(master=self, value=getattr(settings, "clipboard", True))
        ttk.Checkbutton(self.body, text="Share the clipboard with partners (not in view-only sessions)",
                        variable=self.share_clipboard, style="Card.TCheckbutton").pack(anchor="w", pady=2)
        self._files_block(settings)
        self._desks_section(settings)
        self.body = self._outer
        self._error("save")
        self.save_button, self.cancel_button = self.buttons(("Save", self.save, "Accent.TButton"),
                                                            ("Cancel", self.cancel, "TButton"))
        self.bind("<Return>", lambda _e: self.save())
        self.show()
        self.entries["relay"].focus_set()

    def _make_vars(self, settings):
        text = lambda value="": tk.StringVar(master=self, value=value)
        flag = lambda value: tk.BooleanVar(master=self, value=bool(value))
        return {
            "relay": text(settings.relay or ""),
            "relay_secret": text(settings.relay_secret or ""),
            "new_password": text(), "confirm_password": text(),
            "clear_password": flag(False),
            "ask_before_accept": flag(settings.ask_before_accept),
            "fps_cap": text(str(settings.fps_cap)),
            "quality": text(str(settings.quality)),
            "view_only": flag(settings.view_only),
            "allow_reconnect": flag(settings.allow_reconnect),
        }

    # --- layout helpers ----------------------------------------------------------------------

    def _section(self, title):
        """A new page of the notebook; the widgets made next go on it."""
        page = ttk.Frame(self.notebook, style="Plain.TFrame", padding=theme.PAD)
        self.notebook.add(page, text=title)
        self.body = page
        ttk.Label(page, text=title, style="Heading.TLabel").pack(anchor="w", pady=(0, 4))

    def show_page_of(self, widget):
        """Bring forward the page that holds `widget` (an error is shown there, or a test clicks it)."""
        while widget is not None and widget.master is not self.notebook:
            widget = widget.master
        if widget is not None:
            self.notebook.select(widget)

    def _row(self, label):
        row = ttk.Frame(self.body, style="Plain.TFrame")
        row.pack(fill="x", pady=2)
        ttk.Label(row, text=label, style="Card.TLabel", width=24).pack(side="left")
        return row

    def _error(self, name):
        """An error line for field `name`, packed (after the last widget) only while it has text."""
        label = ttk.Label(self.body, textvariable=self.errors[name], style="Error.TLabel",
                          wraplength=420, justify="left")
        self._error_slots[name] = (label, self.body.pack_slaves()[-1])

    def _show_errors(self, errors):
        first = None
        for name, var in self.errors.items():
            var.set(errors.get(name, ""))
            label, after = self._error_slots.get(name, (None, None))
            if label is not None and errors.get(name):
                label.pack(anchor="w", after=after)
                first = first or label
            elif label is not None:
                label.pack_forget()
        if first is not None:
            self.show_page_of(first)            # the error is where the user can see it

    def _relay_override(self, text):
        """The relay given at start (--relay or TAGIO_RELAY) wins over the file for this run: shown
        read-only with why; the file's relay (self.vars["relay"]) is saved unchanged."""
        row = self._row("Address")
        self.relay_in_use = tk.StringVar(master=self, value=text)
        entry = ttk.Entry(row, textvariable=self.relay_in_use, width=34, state="readonly", style="Entry.TEntry")
        entry.pack(side="left", fill="x", expand=True)
        self.entries["relay"] = entry
        saved = self.settings.relay or f"the public relay {DEFAULT_RELAY}"
        self.relay_note = ttk.Label(self.body, style="Muted.TLabel", wraplength=420, justify="left",
                                    text=RELAY_OVERRIDE_NOTE.format(saved=saved))
        self.relay_note.pack(anchor="w")
        self._error("relay")

    def _entry(self, name, label, show=None, hint=None, error=""):
        row = self._row(label)
        entry = ttk.Entry(row, textvariable=self.vars[name], width=34, show=show or "", style="Entry.TEntry")
        entry.pack(side="left", fill="x", expand=True)
        self.entries[name] = entry
        if hint:
            ttk.Label(self.body, text=hint, style="Muted.TLabel").pack(anchor="w")
        if error is not None:
            self._error(error or name)

    def _check(self, name, label, error=True):
        self.checks[name] = ttk.Checkbutton(self.body, text=label, variable=self.vars[name],
                                            style="Card.TCheckbutton")
        self.checks[name].pack(anchor="w", pady=2)
        if error:
            self._error(name)

    def _spin(self, name, label, bounds):
        row = self._row(label)
        spin = ttk.Spinbox(row, from_=bounds[0], to=bounds[1], textvariable=self.vars[name], width=6)
        spin.pack(side="left")
        self.entries[name] = spin
        self._error(name)

    def _files_block(self, settings):
        self._section("Files")
        self.allow_files = tk.BooleanVar(master=self, value=settings.allow_files)
        self.files_dir = tk.StringVar(master=self, value=str(settings.files_folder()))
        self.allow_files_check = ttk.Checkbutton(
            self.body, text="Allow partners to send and fetch files", variable=self.allow_files,
            style="Card.TCheckbutton")
        self.allow_files_check.pack(anchor="w", pady=2)
        row = self._row("Only in the folder")
        self.entries["files_dir"] = ttk.Entry(row, textvariable=self.files_dir, width=28, style="Entry.TEntry")
        self.entries["files_dir"].pack(side="left", fill="x", expand=True)
        ttk.Button(row, text="Browse\u2026", command=self._browse_files_dir).pack(side="left", padx=(4, 0))
        ttk.Label(self.body, text="Partners can list, fetch, add, rename and delete what is in it.",
                  style="Muted.TLabel").pack(anchor="w")

    def _browse_files_dir(self):
        from tkinter import filedialog
        chosen = filedialog.askdirectory(parent=self, title="The folder partners may use",
                                         initialdir=self.files_dir.get(), mustexist=False)
        if chosen:
            self.files_dir.set(chosen)

    def _apply_files(self):
        """Copy the files choice onto Settings; the folder is made now. Raises ConfigError."""
        text = self.files_dir.get().strip()
        if self.allow_files.get() and not text:
            raise ConfigError("Choose the folder partners may use, or do not allow files.")
        self.settings.allow_files = bool(self.allow_files.get())
        default = str(default_files_dir())
        self.settings.files_dir = None if text in ("", default) else text   # the default follows $HOME
        self.settings.host_files_dir()

    def _password_block(self):
        state = ("A permanent password is set: partners who know it connect without a prompt."
                 if self.settings.permanent_verifier else
                 "No permanent password: only the one-time password lets partners in.")
        ttk.Label(self.body, text="Unattended access", style="Card.TLabel").pack(anchor="w", pady=(6, 0))
        self.password_state = ttk.Label(self.body, text=state, style="Muted.TLabel")
        self.password_state.pack(anchor="w")
        self._entry("new_password", "New permanent password", show="\u2022", error=None,
                    hint=f"At least {model.MIN_PERMANENT_PASSWORD} characters")
        self._entry("confirm_password", "Repeat it", show="\u2022", error="permanent_password")
        if self.settings.permanent_verifier:
            self._check("clear_password", "Remove the permanent password", error=False)

    def _desks_section(self, settings):
        """"This desk and its partners": the desk's name, and the desks allowed without asking
        (ui/partners.py TrustedSection; a Revoke there is saved at once)."""
        from tagio.client import words
        from tagio.ui.partners import TrustedSection
        self._section("This desk and its partners")
        self.desk_name = tk.StringVar(master=self, value=settings.desk_name)
        row = self._row(words.DESK_NAME)
        self.entries["desk_name"] = ttk.Entry(row, textvariable=self.desk_name, width=34, style="Entry.TEntry")
        self.entries["desk_name"].pack(side="left", fill="x", expand=True)
        ttk.Label(self.body, text=words.DESK_NAME_HINT, style="Muted.TLabel", wraplength=420,
                  justify="left").pack(anchor="w")
        self.trusted = TrustedSection(self.body, settings.partners, {"body": "TkDefaultFont"})

    def _apply_desks(self):
        from tagio.protocol.session import clean_name
        self.settings.desk_name = clean_name(self.desk_name.get())

    # --- actions ----------------------------------------------------------------------------------

    def form(self) -> model.SettingsForm:
        return model.SettingsForm(**{name: var.get() for name, var in self.vars.items()})

    def save(self):
        """Validate; apply and save at once, or (new permanent password) after a worker has
        derived its secret.  True when the values were accepted (saved, or being saved)."""
        if self.deriving:
            return False        # a second Save (or Return) while the secret is being made
        values, errors = model.validate_settings(self.form())
        self._show_errors(errors)
        if errors:
            return False
        password = values.get("permanent_password")
        if not password:        # None (unchanged) or "" (clear): no scrypt, nothing to wait for
            return self._apply(values, None)
        self.deriving = True
        self.save_button.state(["disabled"])
        self.errors["save"].set("")
        self.password_state.configure(text="Securing the permanent password\u2026")
        self.derive_secret(password, lambda secret, error: self._derived(values, secret, error))
        return True

    def _derived(self, values, secret, error):
        """Tk thread: the worker's result.  The dialog may have been cancelled meanwhile."""
        if not _exists(self):
            return
        self.deriving = False
        if error is not None:
            self.save_button.state(["!disabled"])
            self.password_state.configure(text="The permanent password could not be stored.")
            self._show_errors({"save": str(error) if isinstance(error, TagioError)
                               else f"Cannot store the password ({type(error).__name__})."})
            return
        self._apply(values, secret)

    def _apply(self, values, secret):
        """Copy the values (and a derived secret) onto Settings and save; then close.  Only
        "remove the password" ("") or "leave it" (None) reach apply_settings: no scrypt here."""
        clear = values.get("permanent_password") == "" and not secret
        values = dict(values, permanent_password="" if clear else None)
        try:
            model.apply_settings(self.settings, values, self.host_id)
            self.settings.clipboard = bool(self.share_clipboard.get())
            self._apply_files()
            self._apply_desks()
            if secret:
                self.settings.permanent_verifier = secret
            self.settings.save()
        except ConfigError as exc:
            self.save_button.state(["!disabled"])
            self._show_errors({"save": str(exc)})
            return False
        self.destroy()
        if self.on_saved:
            self.on_saved(self.settings)
        return True


def _exists(widget) -> bool:
    try:
        return bool(widget.winfo_exists())
    except Exception:   # Tcl errors out once the widget's interpreter is gone
        return False
