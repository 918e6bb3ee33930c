//! The local terminal for `berth exec -t`: raw mode while the remote command owns the keyboard,
//! restored when the guard drops (on every return, error or panic), and the window's size.

use rustix::termios::{self, OptionalActions, Termios};

/// While alive, stdin's terminal is raw: keys (Ctrl-C and Ctrl-D among them) go to the remote
/// command as typed instead of being acted on here.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> std::io::Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

pub fn stdin_is_terminal() -> bool {
    termios::isatty(std::io::stdin())
}

/// Rows and columns of the terminal on stdout (or stdin), if it is one.
pub fn size() -> Option<(u32, u32)> {
    let ws = termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| termios::tcgetwinsize(std::io::stdin()))
        .ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then(|| (u32::from(ws.ws_row), u32::from(ws.ws_col)))
}
