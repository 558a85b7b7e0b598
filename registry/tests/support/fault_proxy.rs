//! A TCP proxy in front of a real registry that injects faults into chosen requests:
//! an HTTP error status, a connection closed halfway through the response body, or a
//! stall (the request is read and never answered).
//!
//! Each client connection carries one request: the proxy reads the request head, picks a
//! fault (if one is armed for that method and path), and otherwise forwards the request
//! upstream with `Connection: close`, so every response ends the connection and the next
//! request arrives on a fresh one where the next decision is made.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status (and `Retry-After` when given) instead of forwarding.
    Status { code: u16, retry_after: Option<u64> },
    /// Forward, but close the connection after half of the response body.
    ResetMidBody,
    /// Read the request and never answer (until the proxy is dropped).
    Stall,
}

/// A fault for the next `remaining` requests whose method and path match.
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: FaultKind,
    /// e.g. "GET", or "" for any method.
    pub method: String,
    /// A substring of the request path, e.g. "/blobs/" or "/manifests/"; "" for any.
    pub path: String,
    pub remaining: usize,
}

impl Fault {
    pub fn new(kind: FaultKind, method: &str, path: &str, remaining: usize) -> Fault {
        Fault {
            kind,
            method: method.to_string(),
            path: path.to_string(),
            remaining,
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.remaining > 0
            && (self.method.is_empty() || self.method == method)
            && path.contains(&self.path)
    }
}

#[derive(Default)]
struct State {
    faults: Vec<Fault>,
    /// "METHOD path -> what happened", for assertions and failure messages.
    log: Vec<String>,
}

pub struct FaultProxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (st, sp) = (st.clone(), sp.clone());
                std::thread::spawn(move || serve(conn, upstream, &st, &sp));
            }
        });
        FaultProxy { port, state, stop }
    }

    /// `127.0.0.1:<port>`, the registry part of references that go through the proxy.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn arm(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push(fault);
    }

    pub fn disarm(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// How many requests got a fault of this kind.
    pub fn injected(&self, kind: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| l.ends_with(&format!("-> {kind}")))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Handles one connection: one request, faulted or forwarded.
fn serve(client: TcpStream, upstream: u16, state: &Mutex<State>, stop: &AtomicBool) {
    let mut first = [0u8; 1];
    // TLS is tried first on loopback; refusing it makes the client fall back to http.
    match client.peek(&mut first) {
        Ok(1) if first[0].is_ascii_uppercase() => {}
        _ => return,
    }
    let mut reader = BufReader::new(client.try_clone().expect("clone client socket"));
    let Some(head) = read_head(&mut reader) else {
        return;
    };
    let mut words = head.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or_default().to_string(),
        words.next().unwrap_or_default().to_string(),
    );
    let fault = {
        let mut s = state.lock().unwrap();
        let fault = s.faults.iter_mut().find(|f| f.matches(&method, &path));
        let kind = fault.map(|f| {
            f.remaining -= 1;
            f.kind.clone()
        });
        let what = match &kind {
            None => "forwarded".to_string(),
            Some(FaultKind::Status { code, .. }) => format!("status {code}"),
            Some(FaultKind::ResetMidBody) => "reset".to_string(),
            Some(FaultKind::Stall) => "stall".to_string(),
        };
        s.log.push(format!("{method} {path} -> {what}"));
        kind
    };
    match fault {
        Some(FaultKind::Status { code, retry_after }) => {
            respond_status(client, reader, code, retry_after)
        }
        Some(FaultKind::Stall) => {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(FaultKind::ResetMidBody) => forward(client, reader, &head, upstream, true),
        None => forward(client, reader, &head, upstream, false),
    }
}

/// The request line and headers, up to the blank line; None if the client went away.
fn read_head(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            return Some(head);
        }
    }
}

fn content_length(head: &str) -> Option<u64> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

/// The head with `Connection: close` in place of any Connection header.
fn closing(head: &str) -> String {
    let mut out: String = head
        .trim_end()
        .lines()
        .filter(|l| {
            !l.split(':')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("connection")
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn respond_status(
    mut client: TcpStream,
    mut reader: BufReader<TcpStream>,
    code: u16,
    retry_after: Option<u64>,
) {
    let body =
        format!("{{\"errors\":[{{\"code\":\"UNAVAILABLE\",\"message\":\"injected {code}\"}}]}}");
    let extra = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
    let resp = format!(
        "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(resp.as_bytes());
    // Swallow whatever request body is still coming, so the client reads our answer
    // instead of tripping over a reset while it sends.
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
    let _ = client.shutdown(Shutdown::Both);
}

/// Sends the request upstream and relays the answer; with `cut`, only half of the
/// response body is relayed before both connections are closed.
fn forward(
    mut client: TcpStream,
    mut reader: BufReader<TcpStream>,
    head: &str,
    upstream: u16,
    cut: bool,
) {
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if up.write_all(closing(head).as_bytes()).is_err() {
        return;
    }
    let mut up_writer = up.try_clone().expect("clone upstream socket");
    // The request body (if any) flows upstream while the answer flows back.
    let pump = std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut up_writer);
    });
    let mut up_reader = BufReader::new(up.try_clone().expect("clone upstream socket"));
    if cut {
        if let Some(resp_head) = read_head(&mut up_reader) {
            let half = content_length(&resp_head).unwrap_or(0) / 2;
            let _ = client.write_all(resp_head.as_bytes());
            let mut body = (&mut up_reader).take(half);
            let _ = std::io::copy(&mut body, &mut client);
            let _ = client.flush();
        }
    } else {
        let _ = std::io::copy(&mut up_reader, &mut client);
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
    let _ = pump.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_rewritten_to_close() {
        let h =
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nconnection: keep-alive\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(
            closing(h),
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(content_length(h), Some(12));
    }
}
