//! Rendering solver events: BuildKit-style plain text, a JSON stream, a TTY display, or nothing.
//!
//! rawjson: one object per line on stderr, with `"type"` one of `started`, `cached`,
//! `completed`, `error`, `log`, `status`; vertex events carry `vertex` (number) and `name`,
//! `completed` carries `elapsed_ms`, `log` carries `data` (UTF-8, lossily decoded), `error` carries
//! `error`, `status` carries `message`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use builder_solver::progress::{Event, ProgressSink};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

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
}

impl State {
    fn number(&mut self, vertex: usize) -> usize {
        let next = self.numbers.len() + 1;
        *self.numbers.entry(vertex).or_insert(next)
    }
}

impl Renderer {
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
            eprintln!(
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
                writeln!(err, "#{} ERROR: {error}", s.number(*vertex))
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
        }
    }
}

impl ProgressSink for Renderer {
    fn event(&self, event: Event) {
        let Ok(mut s) = self.state.lock() else { return };
        match self.mode {
            ProgressMode::Quiet => {}
            ProgressMode::Plain => self.plain(&mut s, &event),
            ProgressMode::RawJson => self.json(&event),
            ProgressMode::Tty => self.tty(&mut s, &event),
        }
    }
}
