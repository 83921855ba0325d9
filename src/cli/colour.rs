//! Colour for people, plain text for everything else: the plan's symbols (`+` create, `~`
//! change, `>` start, `-` remove, `!` conflict) are coloured, and the text goes through `anstream`, which
//! drops every escape code unless stdout is a terminal (`NO_COLOR`, `CLICOLOR` and
//! `TERM=dumb` honoured). A pipe, a file or a CI log gets exactly the uncoloured text.

use std::io::Write;

use anstyle::{AnsiColor, Style};

/// Prints a rendered plan (`plan::render::text`) to stdout, its symbols coloured on a terminal.
pub(super) fn print_plan(text: &str) {
    let mut out = anstream::stdout();
    // A closed pipe (`dockhand plan | head`) loses the rest of the plan and nothing else.
    let _ = out.write_all(paint(text).as_bytes());
    let _ = out.flush();
}

/// `text` with the symbol that opens each plan line coloured.
fn paint(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let body = line.trim_start_matches(' ');
        let indent = &line[..line.len() - body.len()];
        let style = match body.as_bytes() {
            [b'+', b' ', ..] => Some(AnsiColor::Green.on_default()),
            [b'~', b' ', ..] => Some(AnsiColor::Yellow.on_default()),
            [b'-', b' ', ..] => Some(AnsiColor::Red.on_default()),
            [b'>', b' ', ..] => Some(AnsiColor::Cyan.on_default()),
            [b'!', b' ', ..] => Some(AnsiColor::Red.on_default().bold()),
            _ => None,
        };
        match style {
            Some(style) if !indent.is_empty() => {
                out.push_str(indent);
                push_styled(&mut out, style, &body[..1]);
                out.push_str(&body[1..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

fn push_styled(out: &mut String, style: Style, text: &str) {
    out.push_str(&format!("{style}{text}{style:#}"));
}

#[cfg(test)]
mod tests {
    use super::paint;

    #[test]
    fn plan_symbols_are_coloured_and_nothing_else_changes() {
        let plan = "stack shop\n  + network shop_backend\n  ~ container shop-api  (recreate: env changed)\n  - container shop-old  (no longer declared)\n  ! shop-db: exists\n      hint: remove it\n\nPlan: 1 to create - see above.\n";
        let painted = paint(plan);
        assert!(
            painted.contains("  \u{1b}[32m+\u{1b}[0m network shop_backend\n"),
            "{painted:?}"
        );
        assert!(
            painted.contains("  \u{1b}[33m~\u{1b}[0m container shop-api"),
            "{painted:?}"
        );
        assert!(
            painted.contains("  \u{1b}[31m-\u{1b}[0m container shop-old"),
            "{painted:?}"
        );
        assert!(
            painted.contains("  \u{1b}[1m\u{1b}[31m!\u{1b}[0m shop-db"),
            "{painted:?}"
        );
        // Headings, hints and the summary are untouched; stripping the codes gives the input.
        let stripped: String = anstream::adapter::strip_str(&painted).to_string();
        assert_eq!(stripped, plan);
        // Two codes per symbol, three for the bold `!`.
        assert_eq!(painted.matches('\u{1b}').count(), 9);
    }
}
