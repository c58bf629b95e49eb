"""The question about files already there: overwrite, keep both or skip (the files panel's).

Theory of operation. Nothing is overwritten without a decision: under the "ask" policy a receiver
refuses a file whose name is taken, with a reason ending in files_receive.EXISTS_ASK. The panel
finds those refusals in the queue (`already_there`), asks once per transfer with `ExistsDialog`,
and sends (or fetches) just those files again under the answer's policy, one transfer per folder
they are in (`by_folder`): each lands where it was meant to. A part left by an interrupted transfer
needs no question: it is resumed by itself (its blocks checked) whatever the policy.
"""

import posixpath

from tagio.protocol import files as f
from tagio.session.files_receive import EXISTS_ASK
from tagio.ui.prompts import Dialog

SHOWN_NAMES = 3             # names listed in the question; more are counted


def already_there(refused) -> list:
    """The paths of `refused` [(path, reason)] refused only because their name is taken."""
    return [path for path, reason in refused if reason.endswith(EXISTS_ASK)]


def by_folder(paths) -> dict:
    """{folder of a path ("" for the top): [paths in it]}, in the order given."""
    groups = {}
    for path in paths:
        groups.setdefault(posixpath.dirname(path), []).append(path)
    return groups


def remote_join(*parts) -> str:
    return "/".join(p for p in parts if p)


class ExistsDialog(Dialog):
    """Asks what to do about `paths` already on `where`; `on_done(policy)` with POLICY_OVERWRITE,
    POLICY_KEEP_BOTH or POLICY_SKIP (Skip, Escape and the close box)."""

    def __init__(self, parent, direction, paths, on_done):
        super().__init__(parent, "Already there")
        self.on_done = on_done
        where = "the partner's computer" if direction == "send" else "this computer"
        names = ", ".join(f"\u201c{posixpath.basename(p)}\u201d" for p in paths[:SHOWN_NAMES])
        more = f" and {len(paths) - SHOWN_NAMES} more" if len(paths) > SHOWN_NAMES else ""
        what = f"{names}{more} {'is' if len(paths) == 1 else 'are'} already on {where}."
        self.heading("Already there", f"{what} Overwrite replaces; Keep both keeps the new one as "
                                      f"\u201cname (1)\u201d; Skip leaves what is there.")
        self.skip_button, self.keep_button, self.overwrite_button = self.buttons(
            ("Skip", lambda: self.answer(f.POLICY_SKIP), "TButton"),
            ("Keep both", lambda: self.answer(f.POLICY_KEEP_BOTH), "TButton"),
            ("Overwrite", lambda: self.answer(f.POLICY_OVERWRITE), "Accent.TButton"))
        self.show()
        self.skip_button.focus_set()        # Enter by reflex must not overwrite

    def cancel(self):
        self.answer(f.POLICY_SKIP)

    def answer(self, policy):
        callback, self.on_done = self.on_done, None
        self.destroy()
        if callback:
            callback(policy)
