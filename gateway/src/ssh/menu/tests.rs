//! The menu's unit tests: behaviour, rendering through a fake terminal, and random input.

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
                let lines =
                    end - top + usize::from(markers && top > 0) + usize::from(markers && end < len);
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
