//! The image menu shown to a PTY session whose login name names no image (`ssh alice@host`
//! rather than `ssh alice+shell@host`): the images the user may use, in the user's own
//! terminal, to pick one with the arrow keys or by typing its name.
//!
//! The client's terminal is in raw mode, so the menu gets raw keystroke bytes and must draw
//! with `\r\n` itself; nothing stands between it and the user. It is a pure state machine:
//! [`Menu::input`] takes bytes and says what they amount to ([`Outcome`]), [`Menu::render`]
//! and [`Menu::clear`] give the bytes to write. The caller owns the I/O.
//!
//! # Drawing
//!
//! From the cursor's line down (the caller ends its own output with a newline first):
//!
//! ```text
//! Choose an image (Up/Down or type, Tab completes, Enter starts, Ctrl-C leaves):
//!   ... 3 more above
//! > shell                      (reverse video, and `>` for terminals without it)
//!   sql
//!   ... 12 more below
//! no such image: `shel` (2 attempts left)
//! image: sh█
//! ```
//!
//! - The prompt is the last line, so the cursor, left at the end of the typed text, is also on
//!   the drawing's last line; a redraw goes back up to the first line (`\r`, `ESC [ n A`),
//!   clears to the end of the screen (`ESC [ J`) and draws again. The message line (a refusal,
//!   the Tab candidates) sits just above the prompt, where a shell would list completions.
//! - Our own text is ASCII, one column per character (`↑`, `…` are ambiguous-width in East
//!   Asian terminals). Each line is cut to `cols - 1` characters so that nothing wraps and the
//!   cursor never sits in the last column; the prompt shows the end of a long typed text.
//!   Control characters in image names are drawn as `?`, so a name cannot inject escapes; the
//!   output is UTF-8 plus `\r`, `\n`, `ESC [ n A`, `ESC [ J`, `ESC [ 7 m` and `ESC [ 0 m` only.
//! - The drawing never exceeds `rows` lines, since otherwise the terminal scrolls its top off
//!   and a redraw could not go back up to it. Lines are given out in this order: the prompt,
//!   one list line, the message, the title, then the rest of the list. A list too long for its
//!   lines is shown as a window that holds the selection, with `... n more above/below` lines
//!   (when at least 3 list lines are available); the window scrolls only as far as the
//!   selection needs, so it does not jump at each key.
//! - A size of 0 (SSH clients may send it for "unknown") counts as 80 columns, 24 rows.
//! - After a narrowing resize, terminals that reflow their lines (VTE, iTerm2, kitty, Windows
//!   Terminal) have wrapped the old drawing, so the redraw goes up by the rows that wrapping
//!   made. A terminal that cuts lines instead (xterm) then sees the redraw start a little
//!   higher than the old drawing, erasing a few lines of earlier output: a lesser evil than
//!   leaving stale menu lines on screen in the other terminals.
//!
//! # Keys
//!
//! - Up/Down (`ESC [ A`/`ESC [ B`, application mode `ESC O A`/`ESC O B`, with or without
//!   modifier parameters) move the selection, clamped at both ends (holding a key down stops
//!   at the end rather than cycling past it unseen), and clear the typed text: the typed text,
//!   when there is some, wins over the selection at Enter.
//! - Printable ASCII is typed (at most [`MAX_TYPED`] bytes, a paste cannot grow it without
//!   bound); the selection jumps to the first image starting with the typed text, ignoring
//!   ASCII case. Backspace (DEL or BS) deletes a character, Ctrl-U the whole text.
//! - Tab completes: one image starting with the typed text (ASCII case ignored) → its whole
//!   name; several → their longest common prefix, and the candidates in the message line;
//!   none → a message saying so. On an empty prompt every image is a candidate (the
//!   selection then stays where it is, rather than jumping to the first one).
//! - Enter (`\r` or `\n`, `\r\n` being one Enter): no typed text → the selected image; typed
//!   text (surrounding spaces ignored) naming an image, exactly or else ignoring ASCII case →
//!   that image as the caller spelt it. Anything else, a unique prefix included (only Tab
//!   completes, so Enter never starts an image the user did not spell out), is a refused
//!   attempt: the message says so and how many attempts are left, the typed text is cleared,
//!   and at the [`ATTEMPTS`]th the menu gives up.
//! - Ctrl-C, Ctrl-\ leave; Ctrl-D leaves when nothing is typed (as at a shell prompt).
//! - A message stays until the next Tab or Enter replaces it, so the attempts left remain in
//!   view while the next name is typed.
//! - Everything else is ignored: other control bytes, bytes ≥ 0x80 (so a UTF-8 character
//!   typed cannot leave half of itself behind), and other escape sequences, even split across
//!   [`Menu::input`] calls. `ESC` followed by a printable byte (Alt-key) is dropped whole; a
//!   control byte ends a pending sequence and counts itself, so Ctrl-C always leaves and a lone
//!   Escape key does not swallow the following Enter.
//! - Once [`Menu::input`] has returned anything other than [`Outcome::Pending`], it keeps
//!   returning that outcome and ignores further bytes.

/// Attempts at naming an image before the menu gives up.
pub const ATTEMPTS: u32 = 3;

/// Longest typed text kept, in bytes: well beyond any image name (a DNS label, 63 bytes).
const MAX_TYPED: usize = 256;
/// The size assumed for a dimension the client gives as 0.
const DEFAULT_COLS: u16 = 80;
const DEFAULT_ROWS: u16 = 24;
/// Fewer list lines than this leave no room for "more above/below" lines beside the selection.
const MIN_LINES_FOR_MARKERS: usize = 3;

const TITLE: &str =
    "Choose an image (Up/Down or type, Tab completes, Enter starts, Ctrl-C leaves):";
const PROMPT: &str = "image: ";

const ESC: u8 = 0x1b;
const CTRL_C: u8 = 0x03;
const CTRL_D: u8 = 0x04;
const BACKSPACE: u8 = 0x08;
const CTRL_U: u8 = 0x15;
const CTRL_BACKSLASH: u8 = 0x1c;
const DEL: u8 = 0x7f;

/// What the menu made of the input so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still choosing: send `Menu::render()` output to the terminal.
    Pending,
    /// The user chose this image (one of the names given to `new`, exactly as given).
    Chosen(String),
    /// The user pressed Ctrl-C or Ctrl-D (Ctrl-D only when nothing is typed) or Ctrl-\\: leave.
    Cancelled,
    /// `ATTEMPTS` names were refused ("no such image"): leave.
    GaveUp,
}

/// The image menu of one session: its state, and the bytes that draw it.
#[derive(Debug, Clone)]
pub struct Menu {
    /// The names as the caller gave them (sorted by the caller).
    images: Vec<String>,
    cols: u16,
    rows: u16,
    /// Index into `images`; always 0 when there are none.
    selected: usize,
    /// First image of the list window, kept so the window scrolls only when it must.
    top: usize,
    typed: String,
    message: Option<String>,
    attempts_left: u32,
    outcome: Outcome,
    escape: Escape,
    /// The previous byte was `\r`, so a `\n` right after it is the same Enter.
    after_cr: bool,
    /// What is on screen now, if anything.
    drawing: Option<Drawing>,
}

/// Where the input stands in an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Not in one.
    Idle,
    /// After `ESC`.
    Started,
    /// After `ESC [` or `ESC O`, before the final byte.
    Sequence,
}

/// A keystroke the menu acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Up,
    Down,
    Char(char),
    Backspace,
    ClearLine,
    Tab,
    Enter,
    Cancel,
    EndOfInput,
}

/// The lines of the drawing on screen, for the next redraw to find its first line.
#[derive(Debug, Clone)]
struct Drawing {
    /// Visible characters of each line.
    widths: Vec<usize>,
    /// The terminal width it was drawn for.
    cols: u16,
}

/// One line to draw, before it is cut to the terminal's width.
#[derive(Debug, Clone)]
struct Line {
    text: String,
    reverse: bool,
}

impl Menu {
    /// A menu of `images` (names, already sorted by the caller, at least one) for a terminal of
    /// `cols` × `rows` (0 meaning unknown: 80 × 24). With no images at all, Enter on an empty
    /// prompt does nothing and every name typed is refused.
    pub fn new(images: Vec<String>, cols: u16, rows: u16) -> Self {
        Self {
            images,
            cols: or_default(cols, DEFAULT_COLS),
            rows: or_default(rows, DEFAULT_ROWS),
            selected: 0,
            top: 0,
            typed: String::new(),
            message: None,
            attempts_left: ATTEMPTS,
            outcome: Outcome::Pending,
            escape: Escape::Idle,
            after_cr: false,
            drawing: None,
        }
    }

    /// The terminal was resized (the next render uses the new size; 0 means unknown, as in
    /// [`Menu::new`]).
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.cols = or_default(cols, DEFAULT_COLS);
        self.rows = or_default(rows, DEFAULT_ROWS);
    }

    /// Feeds keystroke bytes as they arrived (an escape sequence may be split across calls).
    /// Bytes after the one that ends the menu are ignored.
    pub fn input(&mut self, bytes: &[u8]) -> Outcome {
        for &byte in bytes {
            if self.outcome != Outcome::Pending {
                break;
            }
            if let Some(key) = self.decode(byte) {
                self.outcome = self.press(key);
            }
        }
        self.outcome.clone()
    }

    /// Bytes that (re)draw the whole menu in place of the previous drawing (the first call
    /// draws it fresh below the cursor: from the start of the cursor's line down). The cursor
    /// is left at the end of the prompt, on the drawing's last line.
    pub fn render(&mut self) -> Vec<u8> {
        let lines = self.lines();
        let width = usize::from(self.cols).saturating_sub(1);
        let mut out = self.erase();
        let mut widths = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n");
            }
            widths.push(line.write(width, &mut out));
        }
        self.drawing = Some(Drawing {
            widths,
            cols: self.cols,
        });
        out
    }

    /// Bytes that erase the menu's drawing and leave the cursor at the start of the line where
    /// it began (called once the menu is done, before anything else is written to the
    /// terminal). Nothing when nothing is drawn; a later [`Menu::render`] draws afresh.
    pub fn clear(&mut self) -> Vec<u8> {
        if self.drawing.is_none() {
            return Vec::new();
        }
        let out = self.erase();
        self.drawing = None;
        out
    }

    /// The key `byte` completes, if any, given the escape sequence in progress.
    fn decode(&mut self, byte: u8) -> Option<Key> {
        let after_cr = std::mem::take(&mut self.after_cr);
        match self.escape {
            Escape::Idle => {}
            Escape::Started => match byte {
                ESC => return None,
                b'[' | b'O' => {
                    self.escape = Escape::Sequence;
                    return None;
                }
                // A control byte is a key of its own (Ctrl-C must always leave); anything
                // else was the key pressed with Alt, or junk.
                0x20.. => {
                    self.escape = Escape::Idle;
                    return None;
                }
                _ => self.escape = Escape::Idle,
            },
            Escape::Sequence => match byte {
                ESC => {
                    self.escape = Escape::Started;
                    return None;
                }
                // Parameters and intermediates (`ESC [ 1 ; 5 A` is Ctrl-Up); DEL is ignored
                // inside a sequence, as terminals do.
                0x20..=0x3f | DEL => return None,
                0x40..=0x7e => {
                    self.escape = Escape::Idle;
                    return match byte {
                        b'A' => Some(Key::Up),
                        b'B' => Some(Key::Down),
                        _ => None,
                    };
                }
                0x80.. => {
                    self.escape = Escape::Idle;
                    return None;
                }
                _ => self.escape = Escape::Idle,
            },
        }
        self.plain_key(byte, after_cr)
    }

    /// The key a byte outside any escape sequence is.
    fn plain_key(&mut self, byte: u8, after_cr: bool) -> Option<Key> {
        match byte {
            ESC => {
                self.escape = Escape::Started;
                None
            }
            b'\r' => {
                self.after_cr = true;
                Some(Key::Enter)
            }
            b'\n' => (!after_cr).then_some(Key::Enter),
            CTRL_C | CTRL_BACKSLASH => Some(Key::Cancel),
            CTRL_D => Some(Key::EndOfInput),
            BACKSPACE | DEL => Some(Key::Backspace),
            CTRL_U => Some(Key::ClearLine),
            b'\t' => Some(Key::Tab),
            0x20..=0x7e => Some(Key::Char(char::from(byte))),
            _ => None,
        }
    }

    fn press(&mut self, key: Key) -> Outcome {
        match key {
            Key::Up => self.select(self.selected.saturating_sub(1)),
            Key::Down => self.select(self.selected.saturating_add(1)),
            Key::Char(c) => {
                if self.typed.len() < MAX_TYPED {
                    self.typed.push(c);
                    self.follow_typed();
                }
            }
            Key::Backspace => {
                self.typed.pop();
                self.follow_typed();
            }
            Key::ClearLine => self.typed.clear(),
            Key::Tab => self.complete(),
            Key::Enter => return self.enter(),
            Key::Cancel => return Outcome::Cancelled,
            Key::EndOfInput if self.typed.is_empty() => return Outcome::Cancelled,
            Key::EndOfInput => {}
        }
        Outcome::Pending
    }

    /// Moves the selection to `index`, clamped to the list; the typed text goes, since Enter
    /// would otherwise choose it rather than what the user just pointed at.
    fn select(&mut self, index: usize) {
        self.selected = index.min(self.images.len().saturating_sub(1));
        self.typed.clear();
    }

    /// Moves the selection to the first image starting with the typed text, if any.
    fn follow_typed(&mut self) {
        if self.typed.is_empty() {
            return;
        }
        let first = self.matches().next().map(|(i, _)| i);
        if let Some(i) = first {
            self.selected = i;
        }
    }

    /// The images (with their indices) starting with the typed text, ASCII case ignored.
    fn matches(&self) -> impl Iterator<Item = (usize, &String)> + '_ {
        self.images
            .iter()
            .enumerate()
            .filter(|(_, name)| starts_with_ignore_case(name, &self.typed))
    }

    /// Tab: completes the typed text as far as the images starting with it agree.
    fn complete(&mut self) {
        let candidates: Vec<(usize, String)> =
            self.matches().map(|(i, name)| (i, name.clone())).collect();
        match candidates.as_slice() {
            [] => self.message = Some(format!("no image starts with `{}`", self.typed)),
            [(only, name)] => {
                self.typed = name.clone();
                self.selected = *only;
                self.message = None;
            }
            [(_, first), ..] => {
                let names: Vec<&str> = candidates.iter().map(|(_, name)| name.as_str()).collect();
                let common = common_prefix_len(&names);
                // The typed text is a prefix of every candidate, so `common` is at least its
                // length; the user's own case is kept for what they typed.
                if let Some(rest) = first.get(self.typed.len()..common) {
                    self.typed.push_str(rest);
                }
                // An empty prompt lists every image: the selection stays where it was.
                self.follow_typed();
                self.message = Some(format!(
                    "{} images start with `{}`: {}",
                    names.len(),
                    self.typed,
                    names.join(", ")
                ));
            }
        }
    }

    /// Enter: the selection, or the image the typed text names, or a refused attempt.
    fn enter(&mut self) -> Outcome {
        // Only spaces can surround what was typed (keys type printable ASCII); a name taken
        // from Tab is kept whole, whatever it holds.
        let wanted = self.typed.trim_matches(' ');
        if wanted.is_empty() {
            return match self.images.get(self.selected) {
                Some(name) => Outcome::Chosen(name.clone()),
                None => Outcome::Pending,
            };
        }
        let exact = self.images.iter().find(|name| name.as_str() == wanted);
        let found = exact.or_else(|| {
            self.images
                .iter()
                .find(|name| name.eq_ignore_ascii_case(wanted))
        });
        if let Some(name) = found {
            return Outcome::Chosen(name.clone());
        }
        self.refuse()
    }

    /// The typed text names no image: one attempt fewer.
    fn refuse(&mut self) -> Outcome {
        self.attempts_left = self.attempts_left.saturating_sub(1);
        let left = match self.attempts_left {
            0 => "no attempts left".to_string(),
            1 => "1 attempt left".to_string(),
            n => format!("{n} attempts left"),
        };
        self.message = Some(format!(
            "no such image: `{}` ({left})",
            self.typed.trim_matches(' ')
        ));
        self.typed.clear();
        if self.attempts_left == 0 {
            Outcome::GaveUp
        } else {
            Outcome::Pending
        }
    }

    /// The lines of the drawing, at most `rows` of them.
    fn lines(&mut self) -> Vec<Line> {
        // The prompt always, one list line, then the message and the title, then the list.
        let mut spare = usize::from(self.rows).saturating_sub(1);
        let list_min = spare.min(1);
        spare -= list_min;
        let message = self.message.clone().filter(|_| spare > 0);
        if message.is_some() {
            spare -= 1;
        }
        let title = spare > 0;
        if title {
            spare -= 1;
        }
        let mut lines = Vec::new();
        if title {
            lines.push(Line::plain(TITLE.to_string()));
        }
        lines.extend(self.list_lines(list_min + spare));
        lines.extend(message.map(Line::plain));
        lines.push(self.prompt_line());
        lines
    }

    /// At most `height` lines of the list, the selection among them.
    fn list_lines(&mut self, height: usize) -> Vec<Line> {
        if height == 0 {
            return Vec::new();
        }
        if self.images.is_empty() {
            return vec![Line::plain("  (no images)".to_string())];
        }
        let len = self.images.len();
        self.top = scroll(len, height, self.selected, self.top);
        let end = window_end(len, height, self.top);
        let markers = len > height && height >= MIN_LINES_FOR_MARKERS;
        let mut lines = Vec::with_capacity(height);
        if markers && self.top > 0 {
            lines.push(Line::plain(format!("  ... {} more above", self.top)));
        }
        for (i, name) in self.images.iter().enumerate().take(end).skip(self.top) {
            let selected = i == self.selected;
            let marker = if selected { '>' } else { ' ' };
            lines.push(Line {
                text: format!("{marker} {name}"),
                reverse: selected,
            });
        }
        if markers && end < len {
            lines.push(Line::plain(format!("  ... {} more below", len - end)));
        }
        lines
    }

    /// The prompt with as much of the end of the typed text as fits, the cursor being there.
    fn prompt_line(&self) -> Line {
        let width = usize::from(self.cols).saturating_sub(1);
        let room = width.saturating_sub(PROMPT.chars().count());
        let skip = self.typed.chars().count().saturating_sub(room);
        let shown: String = self.typed.chars().skip(skip).collect();
        Line::plain(format!("{PROMPT}{shown}"))
    }

    /// Back to the start of the drawing's first line (the cursor's line when nothing is
    /// drawn), clearing everything from there down.
    fn erase(&self) -> Vec<u8> {
        let mut out = b"\r".to_vec();
        let up = self
            .drawing
            .as_ref()
            .map_or(0, |drawing| drawing.rows_above_cursor(self.cols));
        // `ESC [ 0 A` moves up one line, not zero.
        if up > 0 {
            out.extend_from_slice(format!("\x1b[{up}A").as_bytes());
        }
        out.extend_from_slice(b"\x1b[J");
        out
    }
}

impl Drawing {
    /// Screen rows between the drawing's first line and the cursor (at the end of its last
    /// line), once a terminal now `cols` wide has rewrapped it.
    fn rows_above_cursor(&self, cols: u16) -> usize {
        let Some((last, above)) = self.widths.split_last() else {
            return 0;
        };
        if cols >= self.cols {
            return above.len();
        }
        let cols = usize::from(cols.max(1));
        let wrapped: usize = above.iter().map(|w| w.div_ceil(cols).max(1)).sum();
        // A cursor just past a full row waits there to wrap rather than starting the next.
        wrapped + last.saturating_sub(1) / cols
    }
}

impl Line {
    fn plain(text: String) -> Self {
        Self {
            text,
            reverse: false,
        }
    }

    /// Writes the line cut to `width` characters; returns how many it wrote.
    fn write(&self, width: usize, out: &mut Vec<u8>) -> usize {
        let shown: String = self.text.chars().take(width).map(printable).collect();
        if shown.is_empty() {
            return 0;
        }
        if self.reverse {
            out.extend_from_slice(b"\x1b[7m");
        }
        out.extend_from_slice(shown.as_bytes());
        if self.reverse {
            out.extend_from_slice(b"\x1b[0m");
        }
        shown.chars().count()
    }
}

fn or_default(size: u16, default: u16) -> u16 {
    if size == 0 { default } else { size }
}

/// A character as drawn: control characters would be taken by the terminal as commands.
fn printable(c: char) -> char {
    if c.is_control() { '?' } else { c }
}

fn starts_with_ignore_case(name: &str, prefix: &str) -> bool {
    name.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// Length in bytes of the prefix all `names` share (ASCII case ignored), on a character
/// boundary of the first name.
fn common_prefix_len(names: &[&str]) -> usize {
    let Some((first, rest)) = names.split_first() else {
        return 0;
    };
    let mut len = first.len();
    for name in rest {
        len = first
            .bytes()
            .zip(name.bytes())
            .take(len)
            .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
            .count();
    }
    while !first.is_char_boundary(len) {
        len = len.saturating_sub(1);
    }
    len
}

/// Index just past the last image shown when the window of a `len`-image list in `height`
/// lines starts at `top`: the "more above/below" lines, when shown, take a line each.
fn window_end(len: usize, height: usize, top: usize) -> usize {
    if len <= height {
        return len;
    }
    if height < MIN_LINES_FOR_MARKERS {
        return top.saturating_add(height).min(len);
    }
    let room = height - usize::from(top > 0);
    if len.saturating_sub(top) <= room {
        len
    } else {
        top + room - 1
    }
}

/// The window's first image: `top` moved as little as needed to show `selected`, and pulled
/// back up when lines would otherwise stay empty below the list's end (after a resize).
fn scroll(len: usize, height: usize, selected: usize, top: usize) -> usize {
    if len <= height || height == 0 {
        return 0;
    }
    let selected = selected.min(len - 1);
    let mut top = top.min(selected);
    // Ends by `top == selected` at the latest: a window always shows its first image.
    while selected >= window_end(len, height, top) {
        top += 1;
    }
    while top > 0 && window_end(len, height, top - 1) == len {
        top -= 1;
    }
    top
}

#[cfg(test)]
mod tests;
