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
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    fn menu(list: &[&str]) -> Menu {
        Menu::new(names(list), 80, 24)
    }

    /// The text of one render's lines, escape sequences and `\r` removed.
    fn text_lines(bytes: &[u8]) -> Vec<String> {
        let text = std::str::from_utf8(bytes).expect("render output is UTF-8");
        let mut plain = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\x1b' => {
                    assert_eq!(chars.next(), Some('['), "only CSI sequences: {text:?}");
                    for c in chars.by_ref() {
                        if !c.is_ascii_digit() {
                            break;
                        }
                    }
                }
                '\r' => {}
                c => plain.push(c),
            }
        }
        plain.split('\n').map(str::to_string).collect()
    }

    /// The counts of every `ESC [ n A` in `bytes`.
    fn ups(bytes: &[u8]) -> Vec<usize> {
        let text = String::from_utf8_lossy(bytes);
        text.split("\x1b[")
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                rest[digits.len()..]
                    .starts_with('A')
                    .then(|| digits.parse().expect("a count"))
            })
            .collect()
    }

    fn rendered(menu: &mut Menu) -> Vec<String> {
        text_lines(&menu.render())
    }

    fn selected_line(bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        let start = text.find("\x1b[7m").expect("a highlighted line") + 4;
        let end = text[start..].find("\x1b[0m").expect("highlight ends") + start;
        text[start..end].to_string()
    }

    /// A terminal as far as the menu uses one: an unbounded canvas below a banner line, that
    /// fails the test on anything the menu must not do (an unknown escape, a control character,
    /// writing in the last column, moving above the canvas). On narrowing, it rewraps its lines
    /// as VTE does.
    struct Screen {
        cols: usize,
        lines: Vec<Vec<char>>,
        row: usize,
        col: usize,
    }

    const BANNER: &str = "$";

    impl Screen {
        fn new(cols: u16) -> Self {
            Self {
                cols: usize::from(or_default(cols, DEFAULT_COLS)),
                lines: vec![BANNER.chars().collect(), Vec::new()],
                row: 1,
                col: 0,
            }
        }

        fn feed(&mut self, bytes: &[u8]) {
            let text = std::str::from_utf8(bytes).expect("render output is UTF-8");
            let mut chars = text.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\r' => self.col = 0,
                    '\n' => self.row += 1,
                    '\x1b' => {
                        assert_eq!(chars.next(), Some('['), "{text:?}");
                        let mut params = String::new();
                        let end = loop {
                            let c = chars.next().expect("a final byte");
                            if c.is_ascii_digit() {
                                params.push(c);
                            } else {
                                break c;
                            }
                        };
                        self.csi(&params, end);
                    }
                    c if c.is_control() => panic!("control character {c:?} drawn: {text:?}"),
                    c => self.put(c),
                }
            }
        }

        fn csi(&mut self, params: &str, end: char) {
            match end {
                'A' => {
                    let n: usize = params.parse().expect("a count");
                    assert!(n > 0, "ESC [ 0 A moves up one");
                    self.row = self.row.checked_sub(n).expect("moved above the canvas");
                }
                'J' => {
                    assert!(params.is_empty());
                    self.pad();
                    self.lines[self.row].truncate(self.col);
                    self.lines.truncate(self.row + 1);
                }
                'm' => assert!(params == "7" || params == "0", "SGR {params}"),
                other => panic!("unexpected CSI {params}{other}"),
            }
        }

        fn pad(&mut self) {
            while self.lines.len() <= self.row {
                self.lines.push(Vec::new());
            }
            let line = &mut self.lines[self.row];
            while line.len() < self.col {
                line.push(' ');
            }
        }

        fn put(&mut self, c: char) {
            assert!(
                self.col + 1 < self.cols,
                "{c:?} written in column {} of {}",
                self.col,
                self.cols
            );
            self.pad();
            let line = &mut self.lines[self.row];
            if self.col < line.len() {
                line[self.col] = c;
            } else {
                line.push(c);
            }
            self.col += 1;
        }

        fn resize(&mut self, cols: u16) {
            let cols = usize::from(or_default(cols, DEFAULT_COLS));
            if cols < self.cols {
                self.pad();
                let mut lines = Vec::new();
                let mut row = 0;
                for (i, line) in self.lines.iter().enumerate() {
                    if i == self.row {
                        let down = self.col.saturating_sub(1) / cols;
                        row = lines.len() + down;
                        self.col -= down * cols;
                    }
                    if line.is_empty() {
                        lines.push(Vec::new());
                    }
                    lines.extend(line.chunks(cols).map(<[char]>::to_vec));
                }
                self.lines = lines;
                self.row = row;
            }
            self.cols = cols;
        }

        /// The lines below the banner, which must be intact.
        fn below_banner(&self) -> Vec<String> {
            assert_eq!(self.lines[0].iter().collect::<String>(), BANNER);
            let mut lines: Vec<String> = self.lines[1..]
                .iter()
                .map(|line| line.iter().collect())
                .collect();
            while lines.last().is_some_and(String::is_empty) {
                lines.pop();
            }
            lines
        }
    }

    #[test]
    fn arrows_move_the_clamped_selection_and_enter_chooses_it() {
        let mut m = menu(&["alpha", "beta", "gamma"]);
        assert_eq!(selected_line(&m.render()), "> alpha");
        assert_eq!(m.input(b"\x1b[A"), Outcome::Pending);
        assert_eq!(selected_line(&m.render()), "> alpha", "clamped at the top");
        assert_eq!(m.input(b"\x1b[B"), Outcome::Pending);
        assert_eq!(selected_line(&m.render()), "> beta");
        assert_eq!(m.input(b"\x1bOB"), Outcome::Pending);
        assert_eq!(selected_line(&m.render()), "> gamma");
        assert_eq!(m.input(b"\x1b[B\x1b[B"), Outcome::Pending);
        assert_eq!(selected_line(&m.render()), "> gamma", "clamped at the end");
        assert_eq!(m.input(b"\x1bOA"), Outcome::Pending);
        assert_eq!(m.input(b"\r"), Outcome::Chosen("beta".into()));
    }

    #[test]
    fn moving_the_selection_drops_the_typed_text() {
        let mut m = menu(&["alpha", "beta", "gamma"]);
        m.input(b"gam");
        assert_eq!(selected_line(&m.render()), "> gamma");
        m.input(b"\x1b[A");
        assert_eq!(rendered(&mut m).last().unwrap(), "image: ");
        assert_eq!(m.input(b"\r"), Outcome::Chosen("beta".into()));
    }

    #[test]
    fn a_name_typed_in_full_is_chosen_as_given() {
        assert_eq!(
            menu(&["db", "shell"]).input(b"shell\r"),
            Outcome::Chosen("shell".into())
        );
        assert_eq!(
            menu(&["db", "shell"]).input(b"SHeLL\r"),
            Outcome::Chosen("shell".into())
        );
        assert_eq!(
            menu(&["Db", "shell"]).input(b"db\r"),
            Outcome::Chosen("Db".into())
        );
        assert_eq!(
            menu(&["SHELL", "shell"]).input(b"shell\r"),
            Outcome::Chosen("shell".into()),
            "an exact match wins over one ignoring case"
        );
        assert_eq!(
            menu(&["db", "shell"]).input(b"  db \r"),
            Outcome::Chosen("db".into())
        );
        assert_eq!(
            menu(&["db", "shell"]).input(b"shell\n"),
            Outcome::Chosen("shell".into())
        );
    }

    #[test]
    fn typing_highlights_the_first_image_it_starts() {
        let mut m = menu(&["alpha", "shell", "shop"]);
        m.input(b"S");
        assert_eq!(selected_line(&m.render()), "> shell");
        m.input(b"ho");
        assert_eq!(selected_line(&m.render()), "> shop");
        m.input(b"x");
        assert_eq!(selected_line(&m.render()), "> shop", "no match keeps it");
        assert_eq!(rendered(&mut m).last().unwrap(), "image: Shox");
    }

    #[test]
    fn tab_completes_a_unique_prefix() {
        let mut m = menu(&["database", "shell", "shop"]);
        assert_eq!(m.input(b"D\t"), Outcome::Pending);
        let lines = rendered(&mut m);
        assert_eq!(lines.last().unwrap(), "image: database");
        assert_eq!(m.input(b"\r"), Outcome::Chosen("database".into()));
    }

    #[test]
    fn enter_on_a_unique_prefix_is_refused() {
        let mut m = menu(&["database", "shell"]);
        assert_eq!(m.input(b"sh\r"), Outcome::Pending);
        let lines = rendered(&mut m);
        assert!(
            lines.contains(&"no such image: `sh` (2 attempts left)".to_string()),
            "{lines:?}"
        );
    }

    #[test]
    fn tab_on_several_completes_their_common_prefix_and_lists_them() {
        let mut m = menu(&["alpha", "shell", "shop", "shopping"]);
        m.input(b"s\t");
        let lines = rendered(&mut m);
        assert_eq!(lines.last().unwrap(), "image: sh");
        assert_eq!(
            lines[lines.len() - 2],
            "3 images start with `sh`: shell, shop, shopping"
        );
        m.input(b"o\t");
        let lines = rendered(&mut m);
        assert_eq!(lines.last().unwrap(), "image: shop");
        assert_eq!(
            lines[lines.len() - 2],
            "2 images start with `shop`: shop, shopping"
        );
        assert_eq!(m.input(b"\r"), Outcome::Chosen("shop".into()));
    }

    #[test]
    fn tab_keeps_the_case_typed_and_ignores_case_in_matching() {
        let mut m = menu(&["Shell", "shop"]);
        m.input(b"S\t");
        assert_eq!(rendered(&mut m).last().unwrap(), "image: Sh");
        let mut m = menu(&["Shell", "shop"]);
        m.input(b"SHE\t");
        assert_eq!(rendered(&mut m).last().unwrap(), "image: Shell");
    }

    #[test]
    fn tab_with_no_match_says_so() {
        let mut m = menu(&["shell", "shop"]);
        m.input(b"x\t");
        let lines = rendered(&mut m);
        assert_eq!(lines.last().unwrap(), "image: x");
        assert_eq!(lines[lines.len() - 2], "no image starts with `x`");
    }

    #[test]
    fn refused_names_count_down_to_giving_up() {
        let mut m = menu(&["shell"]);
        assert_eq!(m.input(b"nope\r"), Outcome::Pending);
        let lines = rendered(&mut m);
        assert_eq!(
            lines[lines.len() - 2],
            "no such image: `nope` (2 attempts left)"
        );
        assert_eq!(
            lines.last().unwrap(),
            "image: ",
            "the typed text is cleared"
        );
        m.input(b"sh");
        let lines = rendered(&mut m);
        assert_eq!(
            lines[lines.len() - 2],
            "no such image: `nope` (2 attempts left)",
            "the message stays while typing"
        );
        assert_eq!(m.input(b"\x15again\r"), Outcome::Pending);
        let lines = rendered(&mut m);
        assert_eq!(
            lines[lines.len() - 2],
            "no such image: `again` (1 attempt left)"
        );
        assert_eq!(m.input(b"third\rshell\r"), Outcome::GaveUp);
        assert_eq!(m.input(b"shell\r"), Outcome::GaveUp, "the outcome sticks");
    }

    #[test]
    fn control_keys_leave() {
        assert_eq!(menu(&["a"]).input(b"\x03"), Outcome::Cancelled);
        assert_eq!(menu(&["a"]).input(b"xy\x03"), Outcome::Cancelled);
        assert_eq!(menu(&["a"]).input(b"\x1c"), Outcome::Cancelled);
        assert_eq!(menu(&["a"]).input(b"\x04"), Outcome::Cancelled);
        let mut m = menu(&["a"]);
        assert_eq!(
            m.input(b"a\x04"),
            Outcome::Pending,
            "Ctrl-D with text typed"
        );
        assert_eq!(rendered(&mut m).last().unwrap(), "image: a");
        assert_eq!(m.input(b"\x15\x04"), Outcome::Cancelled);
        assert_eq!(m.input(b"\r"), Outcome::Cancelled, "the outcome sticks");
        let mut m = menu(&["a"]);
        assert_eq!(m.input(b"\x1b"), Outcome::Pending);
        assert_eq!(
            m.input(b"\x03"),
            Outcome::Cancelled,
            "even inside a sequence"
        );
        assert_eq!(menu(&["a"]).input(b"\x1b[1;\x03"), Outcome::Cancelled);
    }

    #[test]
    fn escape_sequences_split_across_calls() {
        let mut m = menu(&["a", "b", "c"]);
        for byte in b"\x1b[B" {
            assert_eq!(m.input(&[*byte]), Outcome::Pending);
        }
        assert_eq!(selected_line(&m.render()), "> b");
        for byte in b"\x1bOB" {
            m.input(&[*byte]);
        }
        assert_eq!(selected_line(&m.render()), "> c");
        // Right arrow, Home, F5, Alt-x, a modified Up, bracketed-paste markers: only the
        // modified Up does anything.
        for byte in b"\x1b[C\x1b[H\x1b[15~\x1bx\x1b[1;5A\x1b[200~" {
            m.input(&[*byte]);
        }
        assert_eq!(selected_line(&m.render()), "> b");
        assert_eq!(rendered(&mut m).last().unwrap(), "image: ");
        assert_eq!(m.input(b"\r"), Outcome::Chosen("b".into()));
    }

    #[test]
    fn a_lone_escape_does_not_swallow_enter() {
        let mut m = menu(&["a", "b"]);
        m.input(b"\x1b[B\x1b");
        assert_eq!(m.input(b"\r"), Outcome::Chosen("b".into()));
    }

    #[test]
    fn other_bytes_are_ignored() {
        let mut m = menu(&["shell"]);
        m.input("sh\u{e9}\u{1F600}el".as_bytes());
        m.input(&[0xc3]);
        m.input(&[0x00, 0x01, 0x07, 0x0b, 0x7e, 0xff]);
        m.input(&[0xa9, 0x9b, b'l']);
        assert_eq!(rendered(&mut m).last().unwrap(), "image: shel~l");
        assert_eq!(m.input(b"\x7f\x7fl\r"), Outcome::Chosen("shell".into()));
    }

    #[test]
    fn carriage_return_and_line_feed_are_one_enter() {
        let mut m = menu(&["shell"]);
        m.input(b"x\r\n");
        m.input(b"y\r");
        m.input(b"\n");
        let lines = rendered(&mut m);
        assert_eq!(
            lines[lines.len() - 2],
            "no such image: `y` (1 attempt left)"
        );
        assert_eq!(m.input(b"\n\n"), Outcome::Chosen("shell".into()));
        assert_eq!(
            menu(&["shell"]).input(b"x\r\r"),
            Outcome::Chosen("shell".into()),
            "a second \\r is an Enter of its own, on the emptied prompt"
        );
    }

    #[test]
    fn backspace_and_ctrl_u_edit() {
        assert_eq!(
            menu(&["shell"]).input(b"shelx\x7fl\r"),
            Outcome::Chosen("shell".into())
        );
        assert_eq!(
            menu(&["shell"]).input(b"shelxx\x08\x08l\r"),
            Outcome::Chosen("shell".into())
        );
        assert_eq!(
            menu(&["shell"]).input(b"junk\x15shell\r"),
            Outcome::Chosen("shell".into())
        );
        assert_eq!(
            menu(&["a", "b"]).input(b"\x7f\x7f\x15\x1b[B\r"),
            Outcome::Chosen("b".into()),
            "editing nothing is harmless"
        );
    }

    #[test]
    fn typed_text_is_bounded() {
        let mut m = menu(&["shell"]);
        m.input(&[b'a'; 10_000]);
        assert_eq!(m.typed.len(), MAX_TYPED);
    }

    fn many(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("img{i:03}")).collect()
    }

    #[test]
    fn a_long_list_is_windowed_around_the_selection() {
        let mut m = Menu::new(many(100), 80, 10);
        let mut screen = Screen::new(80);
        for step in 0..100 {
            let bytes = m.render();
            screen.feed(&bytes);
            let lines = screen.below_banner();
            assert!(lines.len() <= 10, "{lines:?}");
            assert_eq!(lines.len(), text_lines(&bytes).len());
            let selected = format!("> img{step:03}");
            assert_eq!(selected_line(&bytes), selected);
            assert!(lines.contains(&selected));
            assert_eq!(
                lines.iter().any(|l| l.contains("more above")),
                step > 6,
                "{lines:?}"
            );
            assert_eq!(
                lines.iter().any(|l| l.contains("more below")),
                step < 98,
                "{lines:?}"
            );
            m.input(b"\x1b[B");
        }
        m.input(b"img04");
        screen.feed(&m.render());
        let lines = screen.below_banner();
        assert!(lines.contains(&"> img040".to_string()), "{lines:?}");
        assert!(lines.len() <= 10);
    }

    #[test]
    fn the_window_scrolls_only_when_the_selection_leaves_it() {
        let mut m = Menu::new(many(50), 80, 10);
        // Title, prompt and 8 list lines: 7 images and "more below".
        let first = rendered(&mut m);
        assert_eq!(first[1], "> img000");
        assert_eq!(first[8], "  ... 43 more below");
        m.input(b"\x1b[B\x1b[B\x1b[B");
        assert_eq!(
            rendered(&mut m)[1..8],
            [
                "  img000", "  img001", "  img002", "> img003", "  img004", "  img005", "  img006"
            ],
            "no scroll while the selection is in view"
        );
        m.input(b"\x1b[B\x1b[B\x1b[B\x1b[B");
        let lines = rendered(&mut m);
        assert_eq!(lines[1], "  ... 2 more above");
        assert_eq!(lines[7], "> img007");
        m.input(b"\x1b[A");
        let lines = rendered(&mut m);
        assert_eq!(lines[1], "  ... 2 more above", "no scroll back");
        assert_eq!(lines[8], "  ... 42 more below");
    }

    #[test]
    fn every_line_fits_the_width() {
        let long = "x".repeat(200);
        let mut m = Menu::new(vec![long.clone(), "short".into()], 20, 24);
        let mut screen = Screen::new(20);
        screen.feed(&m.render());
        m.input(b"\t");
        screen.feed(&m.render());
        m.input(b"\x1b[B");
        m.input(&[b'y'; 100]);
        m.input(b"\r");
        let bytes = m.render();
        screen.feed(&bytes);
        for line in text_lines(&bytes) {
            assert!(line.chars().count() <= 19, "{line:?}");
        }
        let lines = screen.below_banner();
        assert_eq!(lines[0], TITLE[..19]);
        assert_eq!(lines[1], format!("  {}", &long[..17]));
        assert_eq!(lines[2], "> short");
        m.input(&[b'z'; 30]);
        let lines = text_lines(&m.render());
        assert_eq!(
            lines.last().unwrap(),
            &format!("image: {}", "z".repeat(12)),
            "the end of the typed text is shown"
        );
    }

    #[test]
    fn the_redraw_goes_up_exactly_over_the_previous_drawing() {
        let mut m = menu(&["a", "b", "c"]);
        let first = m.render();
        assert!(first.starts_with(b"\r\x1b[J"), "{first:?}");
        assert!(ups(&first).is_empty(), "a first drawing does not move up");
        let drawn = text_lines(&first).len();
        assert_eq!(drawn, 5, "title, three images, prompt");
        m.input(b"x\r");
        let second = m.render();
        let up = format!("\r\x1b[{}A\x1b[J", drawn - 1);
        assert!(second.starts_with(up.as_bytes()), "{second:?}");
        let drawn = text_lines(&second).len();
        assert_eq!(drawn, 6, "and a message");
        let third = m.render();
        let up = format!("\r\x1b[{}A\x1b[J", drawn - 1);
        assert!(third.starts_with(up.as_bytes()), "{third:?}");
        assert_eq!(ups(&third), [drawn - 1], "and moves nowhere else");
        let cleared = m.clear();
        assert_eq!(cleared, up.as_bytes(), "clear goes up as far");
    }

    #[test]
    fn redraws_leave_nothing_behind_and_clear_erases_all() {
        let mut m = menu(&["alpha", "beta", "gamma"]);
        let mut screen = Screen::new(80);
        screen.feed(&m.render());
        let first = screen.below_banner();
        m.input(b"nope\r");
        screen.feed(&m.render());
        m.input(b"\x1b[Bbe\t");
        screen.feed(&m.render());
        let lines = screen.below_banner();
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert_eq!(lines[2], "> beta");
        assert_eq!(lines[4], "image: beta");
        assert_eq!(
            (screen.row, screen.col),
            (5, 11),
            "at the end of the prompt"
        );
        assert_eq!(m.input(b"\r"), Outcome::Chosen("beta".into()));
        screen.feed(&m.clear());
        assert!(screen.below_banner().is_empty());
        assert_eq!((screen.row, screen.col), (1, 0), "where the menu began");
        assert!(m.clear().is_empty(), "nothing left to clear");
        screen.feed(&m.render());
        assert_eq!(screen.below_banner().len(), first.len(), "drawn afresh");
    }

    #[test]
    fn clear_before_any_render_writes_nothing() {
        assert!(menu(&["a"]).clear().is_empty());
    }

    #[test]
    fn a_narrowing_resize_counts_the_rows_the_terminal_rewrapped() {
        let long = "y".repeat(50);
        let mut m = Menu::new(vec!["a".into(), long], 80, 24);
        m.input(&[b'z'; 30]);
        let mut screen = Screen::new(80);
        screen.feed(&m.render());
        // Title 78 → 4 rows of 20, "a" 1, the long name 52 → 3, and the prompt's 37
        // characters put the cursor on its second row.
        screen.resize(20);
        m.resize(20, 24);
        let bytes = m.render();
        assert!(bytes.starts_with(b"\r\x1b[9A\x1b[J"), "{bytes:?}");
        screen.feed(&bytes);
        assert_eq!(screen.below_banner().len(), 4);
        screen.resize(60);
        m.resize(60, 24);
        let bytes = m.render();
        assert!(bytes.starts_with(b"\r\x1b[3A\x1b[J"), "wider: {bytes:?}");
        screen.feed(&bytes);
        assert_eq!(screen.below_banner().len(), 4);
    }

    #[test]
    fn a_short_terminal_keeps_the_prompt_and_the_selection() {
        let images = names(&["a", "b", "c", "d"]);
        let mut m = Menu::new(images.clone(), 80, 1);
        assert_eq!(rendered(&mut m), ["image: "]);
        let mut m = Menu::new(images.clone(), 80, 2);
        m.input(b"\x1b[B\x1b[B");
        assert_eq!(rendered(&mut m), ["> c", "image: "]);
        m.input(b"x\r");
        assert_eq!(
            rendered(&mut m),
            ["> c", "image: "],
            "no room for the message"
        );
        m.resize(80, 3);
        assert_eq!(
            rendered(&mut m),
            ["> c", "no such image: `x` (2 attempts left)", "image: "]
        );
        m.resize(80, 4);
        assert_eq!(rendered(&mut m)[..2], [TITLE, "> c"]);
        m.resize(80, 5);
        assert_eq!(
            rendered(&mut m)[1..3],
            ["> c", "  d"],
            "two lines, no markers"
        );
    }

    #[test]
    fn an_unknown_size_is_80_by_24() {
        let mut m = Menu::new(many(100), 0, 0);
        let lines = rendered(&mut m);
        assert_eq!(lines.len(), 24);
        assert_eq!(lines[0], TITLE, "its 78 characters fit");
        m.resize(0, 0);
        assert_eq!(rendered(&mut m).len(), 24);
    }

    #[test]
    fn names_cannot_inject_escapes() {
        let evil = "evil\x1b[2J\x07\u{9b}2J\r\n".to_string();
        let mut m = Menu::new(vec![evil.clone(), "fine".into()], 80, 24);
        let mut screen = Screen::new(80);
        screen.feed(&m.render());
        assert_eq!(screen.below_banner()[1], "> evil?[2J??2J??");
        m.input(b"e\t");
        screen.feed(&m.render());
        assert_eq!(m.input(b"\r"), Outcome::Chosen(evil));
    }

    #[test]
    fn no_images_at_all() {
        let mut m = Menu::new(Vec::new(), 80, 24);
        assert_eq!(m.input(b"\x1b[B\x1b[A\t\r"), Outcome::Pending);
        let lines = rendered(&mut m);
        assert!(lines.contains(&"  (no images)".to_string()), "{lines:?}");
        assert_eq!(m.input(b"a\rb\rc\r"), Outcome::GaveUp);
    }

    #[test]
    fn the_window_arithmetic() {
        for len in 1..30 {
            for height in 1..12 {
                let mut top = 0;
                for selected in (0..len).chain((0..len).rev()) {
                    top = scroll(len, height, selected, top);
                    let end = window_end(len, height, top);
                    assert!(
                        top <= selected && selected < end,
                        "{len} {height} {selected}"
                    );
                    let markers = len > height && height >= MIN_LINES_FOR_MARKERS;
                    let lines = end - top
                        + usize::from(markers && top > 0)
                        + usize::from(markers && end < len);
                    assert_eq!(lines, height.min(len), "{len} {height} {selected} {top}");
                }
            }
        }
    }

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix_len(&[]), 0);
        assert_eq!(common_prefix_len(&["shell"]), 5);
        assert_eq!(common_prefix_len(&["shell", "SHOP"]), 2);
        assert_eq!(common_prefix_len(&["é1", "é2"]), 2);
        assert_eq!(common_prefix_len(&["é", "è"]), 0, "not inside a character");
    }

    /// Bytes a terminal might send, weighted towards the ones the menu acts on.
    fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => any::<u8>(),
            2 => Just(ESC),
            2 => Just(b'['),
            1 => Just(b'O'),
            2 => Just(b'A'),
            2 => Just(b'B'),
            2 => Just(b'\r'),
            1 => Just(b'\n'),
            2 => Just(b'\t'),
            1 => Just(DEL),
            1 => Just(CTRL_U),
            3 => prop::sample::select(b"abs-h0".to_vec()),
        ];
        prop::collection::vec(byte, 0..12)
    }

    #[derive(Debug, Clone)]
    enum Step {
        Input(Vec<u8>),
        Resize(u16, u16),
        Clear,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            12 => key_bytes().prop_map(Step::Input),
            2 => (0u16..120, 0u16..40).prop_map(|(c, r)| Step::Resize(c, r)),
            1 => Just(Step::Clear),
        ]
    }

    fn image_names() -> impl Strategy<Value = Vec<String>> {
        let name = prop_oneof![
            4 => "[a-z][a-z0-9-]{0,15}",
            1 => "[a-zA-Z]{0,90}",
            1 => any::<String>(),
        ];
        prop::collection::vec(name, 0..40).prop_map(|mut names| {
            names.sort();
            names
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_input_draws_a_sound_menu(
            images in image_names(),
            size in (0u16..120, 0u16..40),
            steps in prop::collection::vec(step(), 0..60),
        ) {
            let mut m = Menu::new(images.clone(), size.0, size.1);
            let mut screen = Screen::new(size.0);
            let mut rows = usize::from(or_default(size.1, DEFAULT_ROWS));
            let mut ended: Option<Outcome> = None;
            for step in steps {
                match step {
                    Step::Input(bytes) => {
                        let outcome = m.input(&bytes);
                        if let Some(ended) = &ended {
                            prop_assert_eq!(&outcome, ended);
                        }
                        match &outcome {
                            Outcome::Pending => {}
                            Outcome::Chosen(name) => {
                                prop_assert!(images.contains(name));
                                ended = Some(outcome.clone());
                            }
                            _ => ended = Some(outcome.clone()),
                        }
                    }
                    Step::Resize(cols, new_rows) => {
                        screen.resize(cols);
                        m.resize(cols, new_rows);
                        rows = usize::from(or_default(new_rows, DEFAULT_ROWS));
                    }
                    Step::Clear => {
                        screen.feed(&m.clear());
                        prop_assert!(screen.below_banner().is_empty());
                        prop_assert_eq!((screen.row, screen.col), (1, 0));
                    }
                }
                let bytes = m.render();
                prop_assert!(std::str::from_utf8(&bytes).is_ok());
                screen.feed(&bytes);
                let drawn = text_lines(&bytes).len();
                prop_assert!(drawn <= rows, "{} lines for {} rows", drawn, rows);
                prop_assert_eq!(screen.row, drawn, "the cursor is on the last line");
                prop_assert!(screen.below_banner().len() <= drawn, "nothing left below");
                prop_assert!(screen.lines.len() <= drawn + 1, "nothing left below");
            }
        }
    }
}
