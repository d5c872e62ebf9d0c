//! How a wait shows itself. On a terminal: one line redrawn in place, a spinner, what is awaited
//! and the time so far. Elsewhere (a pipe, a CI log): plain lines — one when the wait starts,
//! one every [`PLAIN_EVERY`] while it lasts, and one when it ends — never escape codes.
//!
//! Waiting functions in this crate take an [`Observer`]; they never print. `ocmctl` hands them a
//! [`Reporter`] on standard error, tests a [`Quiet`] one or a reporter over a buffer.

use std::io::Write;
use std::time::Duration;

/// Told what a wait is doing, every time it checks again (a few times a second).
pub trait Observer {
    /// Still waiting for `what` (e.g. "waiting for ocm-hub to serve at hub:8090"), `elapsed`
    /// since the wait began.
    fn waiting(&mut self, what: &str, elapsed: Duration);
    /// The wait ended; `outcome` says how (e.g. "ocm-hub serves at hub:8090").
    fn done(&mut self, outcome: &str, elapsed: Duration);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Observer for Quiet {
    fn waiting(&mut self, _: &str, _: Duration) {}
    fn done(&mut self, _: &str, _: Duration) {}
}

/// How often a plain (non-terminal) report repeats that it is still waiting.
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// Return to the line's start and clear it.
const REDRAW: &str = "\r\x1b[2K";

/// Writes progress to `out`: redrawn in place when `terminal`, plain lines otherwise.
/// Write errors are ignored: progress never fails a command.
#[derive(Debug)]
pub struct Reporter<W: Write> {
    out: W,
    terminal: bool,
    frame: usize,
    /// What the last plain line was about, and when the next "still" line is due.
    plain: Option<(String, Duration)>,
    drawn: bool,
}

impl<W: Write> Reporter<W> {
    pub fn new(out: W, terminal: bool) -> Self {
        Self {
            out,
            terminal,
            frame: 0,
            plain: None,
            drawn: false,
        }
    }

    /// What was written so far (for tests reading what was reported).
    pub fn writer(&self) -> &W {
        &self.out
    }
}

impl<W: Write> Observer for Reporter<W> {
    fn waiting(&mut self, what: &str, elapsed: Duration) {
        if self.terminal {
            let spinner = SPINNER[self.frame % SPINNER.len()];
            self.frame = self.frame.wrapping_add(1);
            let _ = write!(
                self.out,
                "{REDRAW}{spinner} {what} ({})",
                format_elapsed(elapsed)
            );
            self.drawn = true;
        } else {
            match &mut self.plain {
                Some((current, due)) if current == what => {
                    if elapsed >= *due {
                        let _ = writeln!(self.out, "still {what} ({})", format_elapsed(elapsed));
                        *due = elapsed + PLAIN_EVERY;
                    }
                }
                _ => {
                    let _ = writeln!(self.out, "{what} …");
                    self.plain = Some((what.to_owned(), elapsed + PLAIN_EVERY));
                }
            }
        }
        let _ = self.out.flush();
    }

    fn done(&mut self, outcome: &str, elapsed: Duration) {
        let elapsed = format_elapsed(elapsed);
        if self.terminal {
            let clear = if self.drawn { REDRAW } else { "" };
            let _ = writeln!(self.out, "{clear}✓ {outcome} ({elapsed})");
        } else {
            let _ = writeln!(self.out, "{outcome} ({elapsed})");
        }
        self.drawn = false;
        self.plain = None;
        let _ = self.out.flush();
    }
}

impl<W: Write> Drop for Reporter<W> {
    /// A wait that ended in an error leaves no half-drawn line for the error to follow.
    fn drop(&mut self) {
        if self.drawn {
            let _ = writeln!(self.out);
            let _ = self.out.flush();
        }
    }
}

/// `0.4s`, `12s`, `2m05s`, `1h02m`: precise while short, compact when long.
pub fn format_elapsed(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    match seconds {
        0..10 => format!("{:.1}s", elapsed.as_secs_f64()),
        10..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(reporter: &Reporter<Vec<u8>>) -> String {
        String::from_utf8(reporter.writer().clone()).unwrap()
    }

    #[test]
    fn elapsed_time_reads_naturally() {
        assert_eq!(format_elapsed(Duration::from_millis(430)), "0.4s");
        assert_eq!(format_elapsed(Duration::from_secs(12)), "12s");
        assert_eq!(format_elapsed(Duration::from_secs(125)), "2m05s");
        assert_eq!(format_elapsed(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn a_terminal_gets_one_line_redrawn_with_a_spinner() {
        let mut reporter = Reporter::new(Vec::new(), true);
        reporter.waiting("waiting for the hub", Duration::from_millis(100));
        reporter.waiting("waiting for the hub", Duration::from_millis(300));
        reporter.done("the hub serves", Duration::from_millis(500));
        assert_eq!(
            text(&reporter),
            "\r\x1b[2K⠋ waiting for the hub (0.1s)\
             \r\x1b[2K⠙ waiting for the hub (0.3s)\
             \r\x1b[2K✓ the hub serves (0.5s)\n"
        );
    }

    #[test]
    fn a_wait_that_fails_ends_its_line_for_the_error() {
        let mut out = Vec::new();
        {
            let mut reporter = Reporter::new(&mut out, true);
            reporter.waiting("waiting for the hub", Duration::from_millis(100));
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\r\x1b[2K⠋ waiting for the hub (0.1s)\n"
        );
        let mut out = Vec::new();
        Reporter::new(&mut out, false).waiting("waiting for the hub", Duration::ZERO);
        assert_eq!(String::from_utf8(out).unwrap(), "waiting for the hub …\n");
    }

    #[test]
    fn a_pipe_gets_plain_lines_at_a_calm_rate() {
        let mut reporter = Reporter::new(Vec::new(), false);
        for tenths in 0..=250 {
            reporter.waiting("waiting for cluster1", Duration::from_millis(tenths * 100));
        }
        reporter.waiting("waiting for cluster2", Duration::from_secs(26));
        reporter.done("both joined", Duration::from_secs(27));
        let out = text(&reporter);
        assert_eq!(
            out,
            "waiting for cluster1 …\n\
             still waiting for cluster1 (10s)\n\
             still waiting for cluster1 (20s)\n\
             waiting for cluster2 …\n\
             both joined (27s)\n"
        );
        assert!(!out.contains('\x1b') && !out.contains('\r'));
    }
}
