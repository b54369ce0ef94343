//! Writers whose failures never reach the verdict.
//!
//! plumbline is a gate: its exit code is the product, the text only explains it. A reader that went
//! away (`plumbline hook pre-commit 2>&1 | head -1`, a CI log collector that closed early) must not turn
//! a failing run into exit 0, and must not turn it into "could not do its job" either. So every write to
//! the process's stdout and stderr goes through a [`Sink`]: the first error is remembered, later text is
//! dropped, and the write reports success to its caller, whatever the caller was in the middle of. At
//! the end [`crate::cli::run`] decides the exit code from the verdict and what the sinks remember
//! ([`exit_code`]). ripgrep's "a broken pipe is success" fits a search tool; it does not fit a gate.

use std::io::{self, Write};

/// A writer that never fails; see the module docs.
pub struct Sink<'a> {
    inner: &'a mut dyn Write,
    failed: Option<io::Error>,
}

impl<'a> Sink<'a> {
    pub fn new(inner: &'a mut dyn Write) -> Self {
        Sink {
            inner,
            failed: None,
        }
    }

    /// The first write error, if any.
    pub fn failure(&self) -> Option<&io::Error> {
        self.failed.as_ref()
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed.is_none()
            && let Err(e) = self.inner.write_all(buf)
        {
            self.failed = Some(e);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.failed.is_none()
            && let Err(e) = self.inner.flush()
        {
            self.failed = Some(e);
        }
        Ok(())
    }
}

/// The exit code of a run whose verdict is `verdict`, given what writing its results to stdout did.
/// A closed pipe changes nothing. Any other failure to write the results (a full disk behind `>`) can
/// only raise the code: a passing run whose results were lost exits 2, never a failing one 0.
pub fn exit_code(verdict: u8, stdout_failure: Option<&io::Error>) -> u8 {
    match stdout_failure {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => verdict.max(2),
        _ => verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing(io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(self.0.into())
        }
    }

    #[test]
    fn a_sink_reports_success_and_remembers_the_first_error() {
        let mut closed = Failing(io::ErrorKind::BrokenPipe);
        let mut s = Sink::new(&mut closed);
        assert!(writeln!(s, "text").is_ok());
        assert!(s.flush().is_ok());
        assert_eq!(s.failure().unwrap().kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn write_errors_never_lower_the_code() {
        let pipe = io::Error::from(io::ErrorKind::BrokenPipe);
        let full = io::Error::other("disk full");
        for verdict in [0, 1, 2] {
            assert_eq!(exit_code(verdict, None), verdict);
            assert_eq!(exit_code(verdict, Some(&pipe)), verdict);
            assert_eq!(exit_code(verdict, Some(&full)), verdict.max(2));
        }
    }
}
