//! The progress bar of `check`, `gate`, `ci` and `hook` (indicatif): on standard error, only when it is a
//! terminal and not in CI (`CI` set), and only once the run has taken a second — short runs and piped or
//! logged output never see it. It is cleared when the run ends, so the report that follows is the same
//! as without it. The library reports progress through [`crate::check::Progress`]; only this module
//! draws.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::check::Progress;

/// Show nothing before this.
pub const DELAY: Duration = Duration::from_secs(1);

/// Whether a bar may be drawn here: stderr is a terminal and this is not a CI job.
pub fn wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none_or(|v| v.is_empty())
}

/// A bar that appears after [`DELAY`] if the run is still going, or a no-op when not [`wanted`].
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    pub fn new() -> Bar {
        if !wanted() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos}/{len} {msg} {elapsed}")
                .expect("a valid template"),
        );
        let shown = bar.clone();
        std::thread::spawn(move || {
            std::thread::sleep(DELAY);
            if !shown.is_finished() {
                shown.set_draw_target(ProgressDrawTarget::stderr());
                shown.enable_steady_tick(Duration::from_millis(120));
            }
        });
        Bar { bar: Some(bar) }
    }

    /// The callback for [`crate::check::run_with`].
    pub fn update(&self, p: Progress) {
        let Some(bar) = &self.bar else { return };
        match p {
            Progress::Gate { name, index, total } => {
                bar.set_length(total as u64);
                bar.set_position(index as u64);
                bar.set_message(name.to_owned());
            }
            Progress::Done => bar.finish_and_clear(),
        }
    }

    /// Long work that is not a gate: `done` of `total` items of `what`.
    pub fn work(&self, what: &str, done: usize, total: usize) {
        let Some(bar) = &self.bar else { return };
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        if bar.message() != what {
            bar.set_message(what.to_owned());
        }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
