//! Rendering solver events: BuildKit-style plain text, a JSON stream, a TTY display, or nothing.
//!
//! rawjson: one object per line on stderr, with `"type"` one of `started`, `cached`,
//! `completed`, `error`, `log`, `status`; vertex events carry `vertex` (number) and `name`,
//! `completed` carries `elapsed_ms`, `log` carries `data` (UTF-8, lossily decoded), `error` carries
//! `error`, `status` carries `message`. `progress` (bytes of one blob pulled, pushed or exported)
//! carries `id` (the blob's digest), `action` (`pull`, `push` or `export`), `current` and `total`
//! (bytes); for one `id`, `current` starts at 0 (or where a resumed transfer picks up), never goes
//! down, and ends equal to `total`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use builder_solver::progress::{Event, ProgressSink, Transfer};
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressStyle};

use super::UsageError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    Tty,
    Plain,
    RawJson,
    Quiet,
}

impl ProgressMode {
    pub fn parse(s: &str) -> Result<ProgressMode, UsageError> {
        Ok(match s {
            "auto" => {
                if std::io::stderr().is_terminal() {
                    ProgressMode::Tty
                } else {
                    ProgressMode::Plain
                }
            }
            "tty" => ProgressMode::Tty,
            "plain" => ProgressMode::Plain,
            "rawjson" => ProgressMode::RawJson,
            "quiet" => ProgressMode::Quiet,
            other => {
                return Err(UsageError(format!(
                    "--progress={other}: expected auto, tty, plain, rawjson or quiet"
                )));
            }
        })
    }
}

pub struct Renderer {
    mode: ProgressMode,
    start: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Display numbers (#1, #2, ...) in order of first appearance, as BuildKit numbers vertices.
    numbers: HashMap<usize, usize>,
    bars: HashMap<usize, ProgressBar>,
    multi: Option<MultiProgress>,
    done: usize,
    /// Per blob id: the last byte count shown, when it was printed (plain), and its bar (tty).
    transfers: HashMap<String, Shown>,
}

/// Plain output prints a blob's byte count at most this often (and always at its end).
const PLAIN_TRANSFER_EVERY: Duration = Duration::from_secs(1);

struct Shown {
    current: u64,
    printed: Option<Instant>,
    bar: Option<ProgressBar>,
}

impl State {
    fn number(&mut self, vertex: usize) -> usize {
        let next = self.numbers.len() + 1;
        *self.numbers.entry(vertex).or_insert(next)
    }

    /// Records a transfer's byte count; false when it would go backwards (a retry that starts a
    /// blob over), so what is shown only ever grows.
    fn advance(&mut self, id: &str, current: u64) -> bool {
        match self.transfers.get_mut(id) {
            Some(t) if current < t.current => false,
            Some(t) => {
                t.current = current;
                true
            }
            None => {
                let t = Shown {
                    current,
                    printed: None,
                    bar: None,
                };
                self.transfers.insert(id.to_string(), t);
                true
            }
        }
    }
}

/// `sha256:0123456789ab…` → `0123456789ab`, as docker shows layers.
fn short_id(id: &str) -> &str {
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    hex.get(..12).unwrap_or(hex)
}

impl Renderer {
    /// A line before any step, as buildx's `#0 building with "default" instance`: numbered
    /// #0 in plain output, a status line otherwise.
    pub fn preamble(&self, message: &str) {
        match self.mode {
            ProgressMode::Plain => {
                let _ = writeln!(std::io::stderr().lock(), "#0 {message}");
            }
            ProgressMode::Quiet => {}
            ProgressMode::Tty | ProgressMode::RawJson => self.event(Event::Status {
                message: message.to_string(),
            }),
        }
    }

    pub fn new(mode: ProgressMode) -> Renderer {
        let state = State {
            multi: (mode == ProgressMode::Tty).then(MultiProgress::new),
            ..State::default()
        };
        Renderer {
            mode,
            start: Instant::now(),
            state: Mutex::new(state),
        }
    }

    pub fn finish(&self) {
        if self.mode == ProgressMode::Tty
            && let Ok(s) = self.state.lock()
        {
            errln!(
                "Building {:.1}s ({} steps)",
                self.start.elapsed().as_secs_f64(),
                s.done
            );
        }
    }

    fn plain(&self, s: &mut State, event: &Event) {
        let mut err = std::io::stderr().lock();
        let _ = match event {
            Event::Started { vertex, name } => writeln!(err, "#{} {name}", s.number(*vertex)),
            Event::Cached { vertex, name } => {
                let n = s.number(*vertex);
                writeln!(err, "#{n} {name}\n#{n} CACHED")
            }
            Event::Completed {
                vertex, elapsed, ..
            } => writeln!(
                err,
                "#{} DONE {:.1}s",
                s.number(*vertex),
                elapsed.as_secs_f64()
            ),
            Event::Failed { vertex, error, .. } => {
                // The headline only: what follows it (the step's last lines of output) was
                // just streamed above, and the final `error:` message prints it once more for
                // those who did not see the stream.
                let headline = error.lines().next().unwrap_or_default();
                writeln!(err, "#{} ERROR: {headline}", s.number(*vertex))
            }
            Event::Log { vertex, data, .. } => {
                let n = s.number(*vertex);
                let t = self.start.elapsed().as_secs_f64();
                let text = String::from_utf8_lossy(data);
                let mut r = Ok(());
                for line in text.lines() {
                    r = writeln!(err, "#{n} {t:.3} {line}");
                }
                r
            }
            Event::Status { message } => writeln!(err, "#{} {message}", s.numbers.len() + 1),
            Event::Transfer(t) => {
                let n = s.numbers.len() + 1;
                let Some(shown) = s.transfers.get_mut(&t.id) else {
                    return;
                };
                let due = shown
                    .printed
                    .is_none_or(|at| at.elapsed() >= PLAIN_TRANSFER_EVERY);
                if t.current < t.total && !(due && t.current > 0) {
                    return;
                }
                shown.printed = Some(Instant::now());
                writeln!(
                    err,
                    "#{n} {} {}: {} / {}{}",
                    t.kind.as_str(),
                    short_id(&t.id),
                    HumanBytes(t.current),
                    HumanBytes(t.total),
                    if t.current == t.total { " done" } else { "" }
                )
            }
        };
    }

    fn json(&self, event: &Event) {
        let value = match event {
            Event::Started { vertex, name } => {
                serde_json::json!({"type": "started", "vertex": vertex, "name": name})
            }
            Event::Cached { vertex, name } => {
                serde_json::json!({"type": "cached", "vertex": vertex, "name": name})
            }
            Event::Completed {
                vertex,
                name,
                elapsed,
            } => {
                serde_json::json!({"type": "completed", "vertex": vertex, "name": name, "elapsed_ms": elapsed.as_millis() as u64})
            }
            Event::Failed {
                vertex,
                name,
                error,
            } => {
                serde_json::json!({"type": "error", "vertex": vertex, "name": name, "error": error})
            }
            Event::Log { vertex, data, .. } => {
                serde_json::json!({"type": "log", "vertex": vertex, "data": String::from_utf8_lossy(data)})
            }
            Event::Status { message } => serde_json::json!({"type": "status", "message": message}),
            Event::Transfer(t) => {
                serde_json::json!({"type": "progress", "id": t.id, "action": t.kind.as_str(), "current": t.current, "total": t.total})
            }
        };
        let _ = writeln!(std::io::stderr().lock(), "{value}");
    }

    fn tty(&self, s: &mut State, event: &Event) {
        let Some(multi) = s.multi.clone() else { return };
        match event {
            Event::Started { vertex, name } => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(name.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                s.bars.insert(*vertex, bar);
            }
            Event::Cached { name, .. } => {
                s.done += 1;
                let _ = multi.println(format!("=> CACHED {name}"));
            }
            Event::Completed {
                vertex,
                name,
                elapsed,
            } => {
                s.done += 1;
                if let Some(bar) = s.bars.remove(vertex) {
                    bar.finish_and_clear();
                }
                let _ = multi.println(format!("=> {name} {:.1}s", elapsed.as_secs_f64()));
            }
            Event::Failed { vertex, name, .. } => {
                if let Some(bar) = s.bars.remove(vertex) {
                    bar.finish_and_clear();
                }
                let _ = multi.println(format!("=> ERROR {name}"));
            }
            Event::Log { vertex, data, .. } => {
                if let (Some(bar), Some(line)) = (
                    s.bars.get(vertex),
                    String::from_utf8_lossy(data).lines().last(),
                ) {
                    bar.set_message(format!(
                        "{}\n   {line}",
                        bar.message().lines().next().unwrap_or("")
                    ));
                }
            }
            Event::Status { message } => {
                let _ = multi.println(format!("=> {message}"));
            }
            Event::Transfer(t) => {
                let Some(shown) = s.transfers.get_mut(&t.id) else {
                    return;
                };
                if t.current >= t.total {
                    if let Some(bar) = shown.bar.take() {
                        bar.finish_and_clear();
                    }
                    let _ = multi.println(format!(
                        "=> {} {} {}",
                        t.kind.as_str(),
                        short_id(&t.id),
                        HumanBytes(t.total)
                    ));
                    return;
                }
                let bar = shown.bar.get_or_insert_with(|| transfer_bar(&multi, t));
                bar.set_position(t.current);
            }
        }
    }
}

fn transfer_bar(multi: &MultiProgress, t: &Transfer) -> ProgressBar {
    let bar = multi.add(ProgressBar::new(t.total));
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("{} {}", t.kind.as_str(), short_id(&t.id)));
    bar
}

impl ProgressSink for Renderer {
    fn event(&self, event: Event) {
        let Ok(mut s) = self.state.lock() else { return };
        if let Event::Transfer(t) = &event
            && !s.advance(&t.id, t.current)
        {
            return;
        }
        match self.mode {
            ProgressMode::Quiet => {}
            ProgressMode::Plain => self.plain(&mut s, &event),
            ProgressMode::RawJson => self.json(&event),
            ProgressMode::Tty => self.tty(&mut s, &event),
        }
    }
}
