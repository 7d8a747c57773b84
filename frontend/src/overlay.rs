//! The overlay panel (CPL, mode, paging, IOPL and the last trap-log
//! events) and the lesson screen (a lesson's explanations), drawn with our
//! own 8x16 VGA font so they are as crisp as the guest's text mode.
//!
//! Everything here is plain pixels in a [`Frame`], with no window: the
//! window shows these frames, and headless runs write the same ones as
//! screenshots (the handout's pictures are made that way).
//!
//! The machine thread never draws: it only updates the shared
//! [`Overlay`] at events (the trap log's lines) and [`LessonScreen`] when
//! the guest prints; whoever shows them (the window's thread, or the end of
//! a headless run) copies and draws them here.

use ringside_machine::traplog::Overlay;
use ringside_machine::vga::{font_8x16, Frame, GLYPH_BYTES};

/// Character cell: 8 pixels wide (the font's own width; no ninth column,
/// so a 720-pixel picture holds 90 columns), 16 high.
pub const CELL_W: usize = 8;
/// Character cell height.
pub const CELL_H: usize = 16;
/// The panel's height in text rows: the state line and the events.
pub const PANEL_ROWS: usize = 12;
/// The panel's height in pixels.
pub const PANEL_HEIGHT: u32 = (PANEL_ROWS * CELL_H) as u32;
/// How many events the overlay keeps (more than fit: long ones wrap).
pub const KEEP_EVENTS: usize = 16;
/// The lesson screen: 96 columns of 25 rows (768x400), the VGA text
/// mode's height and just wide enough for the lessons' lines (up to 94
/// characters) not to wrap.
pub const LESSON_SIZE: (u32, u32) = (768, 400);

/// An RGB colour from the VGA's default 16-colour palette.
pub type Rgb = [u8; 3];

/// The VGA palette entries the panel uses (the text-mode attributes'
/// colours, so the panel looks like the guest's own screen).
pub mod colour {
    use super::Rgb;
    /// Attribute 0.
    pub const BLACK: Rgb = [0x00, 0x00, 0x00];
    /// Attribute 1.
    pub const BLUE: Rgb = [0x00, 0x00, 0xAA];
    /// Attribute 7.
    pub const GREY: Rgb = [0xAA, 0xAA, 0xAA];
    /// Attribute 8.
    pub const DARK_GREY: Rgb = [0x55, 0x55, 0x55];
    /// Attribute 10.
    pub const LIGHT_GREEN: Rgb = [0x55, 0xFF, 0x55];
    /// Attribute 11.
    pub const LIGHT_CYAN: Rgb = [0x55, 0xFF, 0xFF];
    /// Attribute 12.
    pub const LIGHT_RED: Rgb = [0xFF, 0x55, 0x55];
    /// Attribute 13.
    pub const LIGHT_MAGENTA: Rgb = [0xFF, 0x55, 0xFF];
    /// Attribute 14.
    pub const YELLOW: Rgb = [0xFF, 0xFF, 0x55];
    /// Attribute 15.
    pub const WHITE: Rgb = [0xFF, 0xFF, 0xFF];
}

/// One row of text: font codes and their colours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Code-page-437 character codes (see [`to_font`]).
    pub text: Vec<u8>,
    /// Foreground.
    pub fg: Rgb,
    /// Background (the whole row's width).
    pub bg: Rgb,
}

impl Row {
    fn new(text: Vec<u8>, fg: Rgb, bg: Rgb) -> Row {
        Row { text, fg, bg }
    }

    /// The row's text as a string (tests).
    #[cfg(test)]
    pub fn string(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

/// Text to our font's code page: ASCII stays, the few other characters
/// the trap log and the lessons use become ASCII look-alikes (our font
/// draws printable ASCII and the box and block characters only), anything
/// else a `?`.
pub fn to_font(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' '..='~' => out.push(c as u8),
            '\t' => out.extend_from_slice(b"    "),
            '→' => out.extend_from_slice(b"->"),
            '←' => out.extend_from_slice(b"<-"),
            '—' | '–' => out.push(b'-'),
            '≤' => out.extend_from_slice(b"<="),
            '≥' => out.extend_from_slice(b">="),
            '…' => out.extend_from_slice(b"..."),
            '×' => out.push(b'x'),
            '\r' | '\n' => {}
            _ => out.push(b'?'),
        }
    }
    out
}

/// Break `text` into rows of at most `cols` characters, at spaces where
/// possible; continuation rows start with `indent` spaces.
pub fn wrap(text: &[u8], cols: usize, indent: usize) -> Vec<Vec<u8>> {
    let cols = cols.max(1);
    let indent = indent.min(cols / 2);
    let mut rows = Vec::new();
    let mut rest = text;
    let mut first = true;
    loop {
        let room = if first { cols } else { cols - indent };
        let pad = if first { 0 } else { indent };
        if rest.len() <= room {
            if first || !rest.is_empty() {
                let mut r = vec![b' '; pad];
                r.extend_from_slice(rest);
                rows.push(r);
            }
            return rows;
        }
        // The last space that keeps the row within `room`, else a hard cut.
        let cut = rest[..=room]
            .iter()
            .rposition(|&b| b == b' ')
            .filter(|&i| i > 0)
            .unwrap_or(room);
        let mut r = vec![b' '; pad];
        r.extend_from_slice(&rest[..cut]);
        rows.push(r);
        rest = &rest[cut..];
        while rest.first() == Some(&b' ') {
            rest = &rest[1..];
        }
        first = false;
    }
}

/// A black frame.
pub fn blank(width: u32, height: u32) -> Frame {
    let mut rgba = vec![0; width as usize * height as usize * 4];
    for px in rgba.chunks_exact_mut(4) {
        px[3] = 0xFF;
    }
    Frame {
        width,
        height,
        rgba,
    }
}

/// Draw `rows` from pixel row `y0` down, one text row per 16 pixels; each
/// row's background spans the frame's width.
pub fn draw_rows(frame: &mut Frame, y0: usize, rows: &[Row]) {
    let font = font_8x16();
    let width = frame.width as usize;
    let cols = width / CELL_W;
    for (r, row) in rows.iter().enumerate() {
        for line in 0..CELL_H {
            let y = y0 + r * CELL_H + line;
            if y >= frame.height as usize {
                return;
            }
            let base = y * width * 4;
            for x in 0..width {
                let col = x / CELL_W;
                let on = col < cols
                    && row.text.get(col).is_some_and(|&c| {
                        font[c as usize * GLYPH_BYTES + line] & (0x80 >> (x % CELL_W)) != 0
                    });
                let c = if on { row.fg } else { row.bg };
                frame.rgba[base + x * 4..base + x * 4 + 4]
                    .copy_from_slice(&[c[0], c[1], c[2], 0xFF]);
            }
        }
    }
}

/// The colour of an event's line, by kind: traps red, sensitive
/// instructions that did not trap yellow (the holes), ring changes cyan,
/// mode changes and hypercalls green, exceptions magenta.
fn kind_colour(kind: &str) -> Rgb {
    match kind {
        "trap" => colour::LIGHT_RED,
        "sensitive" => colour::YELLOW,
        "ring" => colour::LIGHT_CYAN,
        "mode" | "hypercall" => colour::LIGHT_GREEN,
        "exception" => colour::LIGHT_MAGENTA,
        _ => colour::GREY,
    }
}

/// Where an event's continuation rows start: under its words, after the
/// cycle and ring columns of [`ringside_machine::traplog::format_short`].
const EVENT_INDENT: usize = 15;

/// The panel's text: the state line, then the newest events that fit
/// (oldest at the top, long ones wrapped), `rows` rows of `cols` columns.
pub fn panel_rows(o: &Overlay, cols: usize, rows: usize) -> Vec<Row> {
    let mut status = to_font(&o.status_line());
    let hint = b"Ctrl+Alt+O hides";
    if status.len() + 2 + hint.len() <= cols {
        status.resize(cols - hint.len(), b' ');
        status.extend_from_slice(hint);
    }
    status.truncate(cols);
    let mut out = vec![Row::new(status, colour::WHITE, colour::BLUE)];
    let room = rows.saturating_sub(1);
    let mut events: Vec<Row> = Vec::new();
    for e in o.recent.iter().rev() {
        let fg = kind_colour(e.kind);
        let wrapped = wrap(&to_font(&e.text), cols, EVENT_INDENT);
        // Whole events only (a stray tail reads as an event of its own),
        // unless the newest alone is too long: then its first rows.
        if events.len() + wrapped.len() > room {
            if events.is_empty() {
                events.extend(
                    wrapped
                        .into_iter()
                        .take(room)
                        .rev()
                        .map(|r| Row::new(r, fg, colour::BLACK)),
                );
            }
            break;
        }
        for r in wrapped.into_iter().rev() {
            events.push(Row::new(r, fg, colour::BLACK));
        }
    }
    if o.recent.is_empty() {
        events.push(Row::new(
            b"no events yet".to_vec(),
            colour::DARK_GREY,
            colour::BLACK,
        ));
    }
    // Newest last.
    events.reverse();
    out.extend(events);
    out
}

/// The panel as pixels, `width` wide and [`PANEL_HEIGHT`] high.
pub fn panel(o: &Overlay, width: u32) -> Frame {
    let width = panel_width(width);
    let mut f = blank(width, PANEL_HEIGHT);
    draw_rows(
        &mut f,
        0,
        &panel_rows(o, width as usize / CELL_W, PANEL_ROWS),
    );
    f
}

/// The guest's frame at the window's pixel scale: 320-pixel-wide modes
/// doubled horizontally and 200-line modes vertically (as the VGA
/// double-scans them), so every mode keeps a 4:3 picture.
pub fn for_window(f: &Frame) -> Frame {
    let (w, h) = (f.width as usize, f.height as usize);
    let dx = if w <= 400 { 2 } else { 1 };
    let dy = if h <= 300 { 2 } else { 1 };
    if dx == 1 && dy == 1 {
        return f.clone();
    }
    let mut rgba = Vec::with_capacity(w * dx * h * dy * 4);
    for row in f.rgba.chunks_exact(w * 4).take(h) {
        let start = rgba.len();
        for px in row.chunks_exact(4) {
            for _ in 0..dx {
                rgba.extend_from_slice(px);
            }
        }
        for _ in 1..dy {
            rgba.extend_from_within(start..start + w * dx * 4);
        }
    }
    Frame {
        width: (w * dx) as u32,
        height: (h * dy) as u32,
        rgba,
    }
}

/// Where the panel goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Below the picture (the window was opened with room for it, and
    /// screenshots).
    Below,
    /// Over the bottom of the picture (a window opened without room: its
    /// size stays, so the picture stays sharp).
    #[cfg_attr(not(feature = "window"), allow(dead_code))]
    Over,
}

/// The narrowest panel: 80 columns. A guest that has not set a video
/// mode yet can have a frame a few pixels wide.
pub const MIN_PANEL_WIDTH: u32 = 640;

/// The panel's width for a picture `width` wide.
pub fn panel_width(width: u32) -> u32 {
    width.max(MIN_PANEL_WIDTH)
}

/// The picture with the panel (when there is one): below it or over its
/// bottom rows, at the picture's top left. With `reserve`, the space below
/// is kept (black) even without a panel, so a window's picture does not
/// jump when the panel is toggled. The result is at least as big as the
/// panel, and as wide as the wider of the two.
pub fn compose(
    picture: &Frame,
    panel: Option<&Frame>,
    placement: Placement,
    reserve: bool,
) -> Frame {
    let below = placement == Placement::Below && (panel.is_some() || reserve);
    let pw = panel.map_or(0, |p| p.width);
    let ph = panel.map_or(0, |p| p.height);
    let width = picture.width.max(pw);
    let height = if below {
        picture.height + PANEL_HEIGHT
    } else {
        picture.height.max(ph)
    };
    let mut out = blank(width, height);
    let paste = |out: &mut Frame, f: &Frame, top: usize| {
        let (w, fw) = (out.width as usize, f.width as usize);
        for (y, row) in f.rgba.chunks_exact(fw * 4).enumerate() {
            if top + y >= out.height as usize {
                break;
            }
            let dst = (top + y) * w * 4;
            out.rgba[dst..dst + fw * 4].copy_from_slice(row);
        }
    };
    paste(&mut out, picture, 0);
    if let Some(p) = panel {
        let top = if below {
            picture.height
        } else {
            height - p.height
        };
        paste(&mut out, p, top as usize);
    }
    out
}

/// A lesson's explanations as they arrive on its debug console, for the
/// window (the lesson guests print on port 0xE9, not on the VGA).
#[derive(Clone, Debug, Default)]
pub struct LessonScreen {
    /// Everything the guest printed so far.
    text: String,
    /// The prompt shown while the lesson waits at a pause.
    prompt: Option<String>,
    /// Bumped on every change, so a reader redraws only when it moved.
    pub changes: u64,
}

impl LessonScreen {
    /// More text from the guest.
    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
        self.changes += 1;
    }

    /// Show (or clear) the prompt of a pause.
    pub fn set_prompt(&mut self, prompt: Option<&str>) {
        self.prompt = prompt.map(str::to_string);
        self.changes += 1;
    }

    /// Whether the lesson waits at a pause.
    #[cfg_attr(not(feature = "window"), allow(dead_code))]
    pub fn waiting(&self) -> bool {
        self.prompt.is_some()
    }

    /// The last `rows` rows of the text wrapped to `cols` columns, and the
    /// prompt as the last row while paused. The lesson's title line is
    /// yellow, indented lines (what ring 3 or the monitor says) cyan.
    pub fn rows(&self, cols: usize, rows: usize) -> Vec<Row> {
        let mut out = Vec::new();
        for (i, line) in self.text.lines().enumerate() {
            let fg = if i == 0 && line.starts_with("Lesson") {
                colour::YELLOW
            } else if line.starts_with(' ') {
                colour::LIGHT_CYAN
            } else {
                colour::GREY
            };
            for r in wrap(&to_font(line), cols, 4) {
                out.push(Row::new(r, fg, colour::BLACK));
            }
        }
        if let Some(p) = &self.prompt {
            out.push(Row::new(to_font(p), colour::BLACK, colour::YELLOW));
        }
        let skip = out.len().saturating_sub(rows);
        out.split_off(skip)
    }

    /// The screen as pixels ([`LESSON_SIZE`]).
    pub fn render(&self) -> Frame {
        let (w, h) = LESSON_SIZE;
        let mut f = blank(w, h);
        let rows = self.rows(w as usize / CELL_W, h as usize / CELL_H);
        draw_rows(&mut f, 0, &rows);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringside_machine::traplog::OverlayEvent;

    #[test]
    fn font_mapping_and_wrapping() {
        assert_eq!(to_font("ring 3 → ring 0 — ok"), b"ring 3 -> ring 0 - ok");
        assert_eq!(to_font("é"), b"?");
        let rows = wrap(b"aaa bbb ccc dddddddddd", 8, 2);
        let rows: Vec<_> = rows.iter().map(|r| String::from_utf8_lossy(r)).collect();
        assert_eq!(rows, ["aaa bbb", "  ccc", "  dddddd", "  dddd"]);
        assert_eq!(wrap(b"", 8, 2), vec![Vec::<u8>::new()]);
    }

    fn overlay() -> Overlay {
        let mut o = Overlay::new(4);
        o.mode = "protected";
        o.cpl = 3;
        o.paging = true;
        for (kind, text) in [
            ("ring", "  27316 ring 0 iret: ring 0 → ring 3 via IRET"),
            (
                "trap",
                "  58402 ring 3 hlt: HLT trapped: HLT is privileged: CPL 3 is not 0 — a trap-and-emulate VMM sees this",
            ),
        ] {
            o.recent.push_back(OverlayEvent {
                kind,
                text: text.to_string(),
            });
        }
        o
    }

    #[test]
    fn panel_text_is_the_state_and_the_newest_events() {
        let rows = panel_rows(&overlay(), 90, 12);
        let text: Vec<String> = rows.iter().map(Row::string).collect();
        assert_eq!(
            text[0],
            format!(
                "{:<74}Ctrl+Alt+O hides",
                "CPL 3  protected mode  paging on  IOPL 0"
            )
        );
        assert_eq!(rows[0].bg, colour::BLUE);
        assert_eq!(
            &text[1..],
            [
                "  27316 ring 0 iret: ring 0 -> ring 3 via IRET",
                "  58402 ring 3 hlt: HLT trapped: HLT is privileged: CPL 3 is not 0 - a trap-and-emulate",
                "               VMM sees this",
            ]
        );
        assert_eq!(rows[1].fg, colour::LIGHT_CYAN);
        assert_eq!(
            (rows[2].fg, rows[3].fg),
            (colour::LIGHT_RED, colour::LIGHT_RED)
        );
        // Three rows only: the newest event, not the older one's tail.
        let rows = panel_rows(&overlay(), 90, 3);
        assert_eq!(rows.len(), 3);
        assert!(rows[1].string().starts_with("  58402"), "{rows:?}");
        let rows = panel_rows(&overlay(), 90, 4);
        assert_eq!(rows.len(), 4, "{rows:?}");
        // Two rows: the newest event's first row.
        let rows = panel_rows(&overlay(), 90, 2);
        assert!(rows[1].string().starts_with("  58402"), "{rows:?}");
    }

    /// The panel's pixels are the font's glyphs in the row's colours.
    #[test]
    fn panel_pixels_are_the_font() {
        let o = overlay();
        let p = panel(&o, 720);
        assert_eq!((p.width, p.height), (720, PANEL_HEIGHT));
        let rows = panel_rows(&o, 90, PANEL_ROWS);
        let font = font_8x16();
        for (r, row) in rows.iter().enumerate() {
            for (col, &c) in row.text.iter().enumerate() {
                for line in 0..CELL_H {
                    for bit in 0..CELL_W {
                        let on = font[c as usize * GLYPH_BYTES + line] & (0x80 >> bit) != 0;
                        let want = if on { row.fg } else { row.bg };
                        let px = p.pixel((col * CELL_W + bit) as u32, (r * CELL_H + line) as u32);
                        assert_eq!(px[..3], want, "row {r} col {col} line {line} bit {bit}");
                    }
                }
            }
        }
    }

    #[test]
    fn compose_below_over_and_reserved() {
        let mut pic = blank(640, 400);
        pic.rgba[0] = 0x12;
        let p = panel(&overlay(), 640);
        let below = compose(&pic, Some(&p), Placement::Below, true);
        assert_eq!((below.width, below.height), (640, 400 + PANEL_HEIGHT));
        assert_eq!(below.pixel(0, 0)[0], 0x12);
        assert_eq!(below.pixel(0, 400), p.pixel(0, 0));
        let reserved = compose(&pic, None, Placement::Below, true);
        assert_eq!(reserved.height, 400 + PANEL_HEIGHT);
        let over = compose(&pic, Some(&p), Placement::Over, false);
        assert_eq!(over.height, 400);
        assert_eq!(over.pixel(0, 400 - PANEL_HEIGHT), p.pixel(0, 0));
        assert_eq!(compose(&pic, None, Placement::Over, false), pic);
        // A frame a few pixels wide (no video mode set yet): the panel
        // keeps its 80 columns, over or below.
        let tiny = blank(18, 2);
        let p = panel(&overlay(), tiny.width);
        assert_eq!(p.width, MIN_PANEL_WIDTH);
        let over = compose(&tiny, Some(&p), Placement::Over, false);
        assert_eq!((over.width, over.height), (640, PANEL_HEIGHT));
        assert_eq!(over.pixel(0, 0), p.pixel(0, 0));
        let below = compose(&tiny, Some(&p), Placement::Below, true);
        assert_eq!((below.width, below.height), (640, 2 + PANEL_HEIGHT));
    }

    #[test]
    fn low_resolution_modes_are_doubled_for_the_window() {
        let f = blank(320, 200);
        let w = for_window(&f);
        assert_eq!((w.width, w.height), (640, 400));
        let f = blank(720, 400);
        assert_eq!(for_window(&f), f);
    }

    #[test]
    fn lesson_screen_wraps_colours_and_prompts() {
        let mut s = LessonScreen::default();
        s.push("Lesson: rings\nThe CPU starts in real mode.\n  ring 3 now\n");
        s.set_prompt(Some("[press Space or Enter to go on]"));
        let rows = s.rows(90, 25);
        let text: Vec<String> = rows.iter().map(Row::string).collect();
        assert_eq!(
            text,
            [
                "Lesson: rings",
                "The CPU starts in real mode.",
                "  ring 3 now",
                "[press Space or Enter to go on]"
            ]
        );
        assert_eq!(
            [rows[0].fg, rows[1].fg, rows[2].fg, rows[3].bg],
            [
                colour::YELLOW,
                colour::GREY,
                colour::LIGHT_CYAN,
                colour::YELLOW
            ]
        );
        assert!(s.waiting());
        // Only the last rows fit.
        assert_eq!(s.rows(90, 2).len(), 2);
        let f = s.render();
        assert_eq!((f.width, f.height), LESSON_SIZE);
    }
}
