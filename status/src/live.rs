//! `logpipe status`: the live view, refreshed every second until `q` (or Esc, or Ctrl-C), like `top`.
//!
//! The terminal is put in raw mode (keys arrive one by one, unechoed) on the alternate screen, and
//! [`Terminal`] puts it back when dropped: on `q`, on an error, on a panic, and on SIGINT/SIGTERM/SIGHUP
//! sent from outside (in raw mode Ctrl-C is a key, not a signal). When stdin or stdout is not a terminal
//! (a pipe, a file) there are no keys to read: the view prints one report per second, as text.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use crossterm::event::{Event, EventStream, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, queue, style, terminal};
use futures::StreamExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::client::fetch;
use crate::rates::Tracker;
use crate::view::render;

/// How often the report is fetched again.
const REFRESH: Duration = Duration::from_secs(1);

/// Shows the appliance at `address`: one report with `once`, else the live view.
pub async fn watch(address: &str, once: bool) -> Result<()> {
    // The first fetch fails loudly (a wrong address), before the terminal changes.
    let report = fetch(address).await?;
    if once {
        print!("{}", render(&report, None));
        return Ok(());
    }
    let mut tracker = Tracker::default();
    tracker.update(&report);
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return print_every_second(address, tracker).await;
    }
    let mut terminal = Terminal::enter()?;
    let mut screen = render(&report, Some(&Default::default()));
    let mut keys = EventStream::new();
    let mut signals = Signals::new()?;
    let mut tick = tokio::time::interval(REFRESH);
    tick.tick().await;
    loop {
        terminal.draw(&screen)?;
        tokio::select! {
            _ = tick.tick() => {
                screen = match fetch(address).await {
                    Ok(report) => {
                        let rates = tracker.update(&report);
                        render(&report, Some(&rates))
                    }
                    // The appliance may be restarting: say so and keep trying.
                    Err(e) => format!("{e:#}\nretrying every second; q quits\n"),
                };
            }
            key = keys.next() => match key {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release && quits(key.code, key.modifiers) => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("cannot read the keyboard"),
                None => break,
            },
            _ = signals.any() => break,
        }
    }
    Ok(())
}

/// `q`, `Q`, Esc and Ctrl-C quit.
fn quits(code: KeyCode, modifiers: KeyModifiers) -> bool {
    match code {
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => true,
        KeyCode::Char('c') => modifiers.contains(KeyModifiers::CONTROL),
        _ => false,
    }
}

/// Without a terminal: a report per second, separated by a blank line, until a signal.
async fn print_every_second(address: &str, mut tracker: Tracker) -> Result<()> {
    let mut signals = Signals::new()?;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = signals.any() => return Ok(()),
        }
        let report = fetch(address).await?;
        let rates = tracker.update(&report);
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) ends the view.
        if writeln!(out, "{}", render(&report, Some(&rates))).and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
    }
}

/// The terminal in raw mode on the alternate screen, restored on drop.
struct Terminal {
    out: std::io::Stdout,
}

impl Terminal {
    fn enter() -> Result<Self> {
        terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
        let mut terminal = Self { out: std::io::stdout() };
        execute!(terminal.out, terminal::EnterAlternateScreen, cursor::Hide).context("cannot set up the terminal")?;
        Ok(terminal)
    }

    /// Redraws the screen with `text`, cut to the terminal's height.
    fn draw(&mut self, text: &str) -> Result<()> {
        let rows = terminal::size().map_or(24, |(_, rows)| rows);
        let hint = "q quits";
        for (row, line) in text.lines().take(usize::from(rows.saturating_sub(1))).enumerate() {
            queue!(
                self.out,
                cursor::MoveTo(0, row as u16),
                style::Print(line),
                terminal::Clear(terminal::ClearType::UntilNewLine)
            )?;
        }
        queue!(
            self.out,
            terminal::Clear(terminal::ClearType::FromCursorDown),
            cursor::MoveTo(0, rows.saturating_sub(1)),
            style::Print(hint),
            terminal::Clear(terminal::ClearType::UntilNewLine)
        )?;
        self.out.flush()?;
        Ok(())
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = execute!(self.out, cursor::Show, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

/// SIGINT, SIGTERM and SIGHUP: each ends the view the way `q` does, so the terminal is restored.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        let install = |kind| signal(kind).context("cannot install signal handlers");
        Ok(Self {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
            hangup: install(SignalKind::hangup())?,
        })
    }

    async fn any(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            _ = self.hangup.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_escape_and_ctrl_c_quit() {
        assert!(quits(KeyCode::Char('q'), KeyModifiers::NONE));
        assert!(quits(KeyCode::Char('Q'), KeyModifiers::SHIFT));
        assert!(quits(KeyCode::Esc, KeyModifiers::NONE));
        assert!(quits(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(!quits(KeyCode::Char('c'), KeyModifiers::NONE));
        assert!(!quits(KeyCode::Char('x'), KeyModifiers::NONE));
    }
}
