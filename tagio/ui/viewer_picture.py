"""The session window's picture: the partner's screen drawn on a Canvas, and the host's pointer.

Theory of operation. `ViewerPicture` is a mixin of ViewerWindow (it uses the window's canvas,
scrollbars, session and zoom); its methods run on the Tk thread only, called from the window's
after() poll with the session's typed events (tagio.session.events).

One Tk photo image of the remote screen (at the display scale) is shown on the Canvas. A changed
rectangle becomes a small ImageTk photo that is copied into the big one with `copy -to` - a
12-tile change costs well under a millisecond, where re-pasting the whole screen costs ~10 ms
(still the fastest way to show a whole new screen: measured against a Tk `put` of PPM data, 29-57
ms, and `copy -to` from a new photo, ~15 ms). The window tells the session which frame it has
drawn (`displayed`), and the session acknowledges frames only then, so the host sends what the
window can show instead of frames it would skip; a backlog of a screenful or more is drawn as one
paste from the framebuffer instead (`coalesce`). "Fit" scales the remote screen to the window
(pieces are resized before the copy, and a new window size redraws once from the framebuffer);
"1:1" and the other zooms show it at a fixed scale with scrollbars. Until the first frame is drawn
the picture area says that it waits (the canvas item tagged "message", on a dark backdrop tagged
"message_box" so that a message over a light picture stays readable: reconnecting, session ended).

The host's pointer is drawn over the picture: its own shape once the host sent one (scaled like
the screen, placed by its hot spot), a small arrow before that. Where it is drawn is decided with
the local pointer in tagio.ui.viewer_input.
"""

from PIL import Image, ImageTk

from tagio.session import events as ev

MESSAGE_FG, MESSAGE_BG = "#ffffff", "#1f2933"     # a message over the picture: light on a dark box
MESSAGE_PAD = 14                                   # pixels of backdrop around its text
CURSOR_SHAPE = (0, 0, 0, 16, 4, 12, 8, 19, 10, 18, 6, 11, 12, 11)   # a small arrow polygon


def coalesce(updates, screen):
    """Replace a backlog of rectangles covering at least a screenful by one redraw from the
    framebuffer (which already holds them): when the viewer falls behind, it catches up with one
    paste instead of drawing every frame it missed. Other updates keep their order."""
    if screen is None or any(isinstance(u, ev.Size) for u in updates):
        return updates
    rects = [u for u in updates if isinstance(u, ev.Rects)]
    area = sum(img.width * img.height for u in rects for _, _, img in u.pieces)
    if area < screen[0] * screen[1]:
        return updates
    kept = [u for u in updates if not isinstance(u, (ev.Rects, ev.Refresh))]
    return kept + [ev.Refresh(), ev.Rects(rects[-1].frame_id, [], rects[-1].capture_time)]


def scale_to_fit(remote, available):
    """Scale factor to fit `remote` (w, h) into `available` (w, h); never above 1."""
    if not remote or available[0] < 2 or available[1] < 2:
        return 1.0
    return min(1.0, available[0] / remote[0], available[1] / remote[1])


class ViewerPicture:
    """Mixin: needs canvas, hbar, vbar, session, fit, zoom, remote_size, _photo, _image_item,
    _cursor_item, _cursor_photo, _cursor_hot, _cursor_at, _cursor_drawn_at, _canvas_size,
    drawn_rects, shown_frame and _host_pointer_shown() (viewer_input) from the window."""

    def _canvas_resized(self, event):
        self.canvas.coords("message", event.width // 2, event.height // 2)
        self._fit_message_box()
        if self.fit and (event.width, event.height) != self._canvas_size:
            self._canvas_size = (event.width, event.height)
            self._relayout()

    def _show_message(self, text, fill=MESSAGE_FG):
        """Say `text` over the middle of the picture, on a dark backdrop (readable over any picture)."""
        self._clear_message()
        c = self.canvas
        c.create_text(max(c.winfo_width(), 2) // 2, max(c.winfo_height(), 2) // 2, text=text, fill=fill,
                      tags="message", font=("TkDefaultFont", 14), justify="center")
        c.create_rectangle(0, 0, 0, 0, fill=MESSAGE_BG, outline="", tags="message_box")
        self._fit_message_box()

    def _set_message(self, text):
        """A new text for the message on show (if any)."""
        self.canvas.itemconfigure("message", text=text)
        self._fit_message_box()

    def _fit_message_box(self):
        """The backdrop around the message's text (wrapped to the picture's width), just under it."""
        c = self.canvas
        c.itemconfigure("message", width=max(100, c.winfo_width() - 4 * MESSAGE_PAD))
        box = c.bbox("message")
        if box is None:
            return
        c.coords("message_box", box[0] - MESSAGE_PAD, box[1] - MESSAGE_PAD // 2,
                 box[2] + MESSAGE_PAD, box[3] + MESSAGE_PAD // 2)
        c.tag_lower("message_box", "message")

    def _clear_message(self):
        self.canvas.delete("message", "message_box")

    def _show_scrollbars(self, show):
        for bar, spec in ((self.hbar, dict(row=2, column=0, sticky="ew")),
                          (self.vbar, dict(row=1, column=1, sticky="ns"))):
            bar.grid(**spec) if show else bar.grid_remove()

    def _relayout(self):
        """(Re)create the photo at the current scale and draw the whole framebuffer once."""
        if self.remote_size is None:
            return
        fit = self.fit
        # The scrollbars come and go first: the canvas is measured as it will be (measured before,
        # Fit after 1:1 kept the scrollbars' room as a dark band).
        self._show_scrollbars(not fit)
        self.update_idletasks()
        avail = (self.canvas.winfo_width(), self.canvas.winfo_height())
        if fit:
            self._canvas_size = avail       # this size is laid out: its <Configure> needs no redraw
        self.scale = scale_to_fit(self.remote_size, avail) if fit else self.zoom
        w, h = (max(1, round(v * self.scale)) for v in self.remote_size)
        if self._photo is None or (self._photo.width(), self._photo.height()) != (w, h):
            self._photo = ImageTk.PhotoImage("RGB", (w, h), master=self)
            self.canvas.delete("screen")
            self._image_item = self.canvas.create_image(0, 0, anchor="nw", image=self._photo, tags="screen")
            self.canvas.tag_lower("screen")
        self.canvas.configure(scrollregion=(0, 0, w, h))
        self._on_refresh()
        if self._cursor_at is not None:
            self._on_cursor(*self._cursor_at)       # same remote spot at the new scale

    def _on_refresh(self):
        fb = self.session.framebuffer
        if fb is not None and self._photo is not None:
            self._put(0, 0, fb)
        self.session.displayed()                # the framebuffer holds every frame decoded so far
        shape = self.session.cursor_shape       # its update may have been dropped
        if shape is not None:
            self._on_cursor_shape(*shape)

    def _on_rects(self, frame_id, pieces, capture_time):
        if self._photo is not None:
            for x, y, img in pieces:
                self._put(x, y, img)
            self.shown_frame = frame_id
            self._clear_message()               # the picture is here: no more "waiting"
        self.session.displayed(frame_id)

    def _put(self, x, y, img):
        """Copy one remote rectangle into the photo at the display scale."""
        if self.scale != 1.0:
            x0, y0 = int(x * self.scale), int(y * self.scale)
            x1 = int((x + img.width) * self.scale)
            y1 = int((y + img.height) * self.scale)
            if x1 <= x0 or y1 <= y0:
                return
            img, x, y = img.resize((x1 - x0, y1 - y0), Image.BILINEAR), x0, y0
        if (x, y) == (0, 0) and img.size == (self._photo.width(), self._photo.height()):
            self._photo.paste(img)      # a whole screen: one blit, no intermediate photo
        else:
            piece = ImageTk.PhotoImage(img, master=self)
            self.tk.call(str(self._photo), "copy", str(piece), "-to", x, y)
        self.drawn_rects += 1

    def _on_cursor(self, x, y):
        """The host's pointer is at (x, y) on its screen."""
        self._cursor_at = (x, y)
        if self._host_pointer_shown():
            self._place_cursor(x * self.scale, y * self.scale)

    def _place_cursor(self, sx, sy):
        """Draw the host's pointer with its hot spot at canvas point (sx, sy)."""
        self._cursor_drawn_at = (sx, sy)
        if self._cursor_photo is not None:
            hx, hy = self._cursor_hot
            coords = (sx - hx * self.scale, sy - hy * self.scale)
            if self._cursor_item is None:
                self._cursor_item = self.canvas.create_image(*coords, anchor="nw", image=self._cursor_photo)
            else:
                self.canvas.coords(self._cursor_item, *coords)
                self.canvas.itemconfigure(self._cursor_item, image=self._cursor_photo)
        else:
            shape = [v + (sx if i % 2 == 0 else sy) for i, v in enumerate(CURSOR_SHAPE)]
            if self._cursor_item is None:
                self._cursor_item = self.canvas.create_polygon(*shape, fill="white", outline="black")
            else:
                self.canvas.coords(self._cursor_item, *shape)
        self.canvas.tag_raise(self._cursor_item)

    def _on_cursor_shape(self, hot_x, hot_y, image):
        """Draw the host's own pointer picture from now on (scaled like the screen)."""
        if self.scale != 1.0:
            size = (max(1, round(image.width * self.scale)), max(1, round(image.height * self.scale)))
            image = image.resize(size, Image.BILINEAR)
        self._cursor_photo = ImageTk.PhotoImage(image, master=self)
        self._cursor_hot = (hot_x, hot_y)
        if self._cursor_item is not None:
            self.canvas.delete(self._cursor_item)     # a polygon arrow becomes an image item
            self._cursor_item = None
        if self._cursor_drawn_at is not None:
            self._place_cursor(*self._cursor_drawn_at)  # the new picture where the old one was
        if self._cursor_at is not None:
            self._on_cursor(*self._cursor_at)
