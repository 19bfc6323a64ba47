//! Progress of a long wait, for people: a bar (or a spinner when the total is unknown) on
//! a terminal, otherwise a plain line on stderr every few seconds, so a log shows how far it
//! got without one line per step.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain line is written when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(5);

pub struct Reporter {
    bar: Option<ProgressBar>,
    every: Duration,
    last_line: Option<Instant>,
}

impl Reporter {
    /// A bar of `total` steps (a spinner when `None`) drawn with the indicatif `template`
    /// on a terminal; plain lines at most every `every` otherwise.
    pub fn new(total: Option<u64>, template: &str, every: Duration) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            // The spinner and elapsed time move while nothing else does.
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            every,
            last_line: None,
        }
    }

    /// At `position`, with `text` saying what it waits for and how far it is: shown on the
    /// bar, or written as a line if `every` has passed since the last one (the first at
    /// once). `text` is only made when shown.
    pub fn update(&mut self, position: u64, text: impl FnOnce() -> String) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.set_message(text());
            }
            None => {
                if self.last_line.is_none_or(|t| t.elapsed() >= self.every) {
                    self.line(&text());
                }
            }
        }
    }

    /// Like [`Reporter::update`], but a plain line is written whenever it was last.
    pub fn note(&mut self, position: u64, text: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.set_message(text.to_owned());
            }
            None => self.line(text),
        }
    }

    /// The last word: the bar stops with `text` as its message, or `text` is a last line.
    pub fn finish(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(text.to_owned()),
            None => self.line(text),
        }
    }

    fn line(&mut self, text: &str) {
        eprintln!("{text}");
        self.last_line = Some(Instant::now());
    }
}

impl Drop for Reporter {
    /// A bar left unfinished (an error on the way) stops where it was rather than ticking.
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}
