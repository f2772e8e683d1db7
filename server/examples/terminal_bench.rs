//! The browser terminal's benchmark client (run by `bench/terminal.sh` against a running
//! Director): keystroke echo latency, `cat` throughput, and many terminals at once.
//!
//! `terminal_bench <manager URL> <session cookie> <director pid> <site id>...`

use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest as _, http::HeaderValue},
};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

struct Target {
    base: String,
    cookie: String,
}

impl Target {
    async fn open(&self, site: i32) -> Socket {
        let host = self.base.trim_start_matches("http://");
        let mut request = format!("ws://{host}/sites/{site}/terminal/ws?cols=200&rows=50")
            .into_client_request()
            .expect("a websocket request");
        let headers = request.headers_mut();
        headers.insert("origin", HeaderValue::from_str(&self.base).expect("an origin"));
        headers.insert("cookie", HeaderValue::from_str(&self.cookie).expect("a cookie"));
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the terminal opens");
        // The session message, then the first prompt.
        read_until(&mut socket, b"$ ").await;
        socket
    }
}

/// Reads until `wanted` has been seen; returns how many terminal bytes came.
async fn read_until(socket: &mut Socket, wanted: &[u8]) -> usize {
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(120), socket.next())
            .await
            .expect("output within 120 s")
            .expect("the socket stays open")
            .expect("a frame");
        let bytes = match message {
            Message::Binary(bytes) => bytes.to_vec(),
            Message::Text(text) => text.as_bytes().to_vec(),
            _ => continue,
        };
        total += bytes.len();
        tail.extend_from_slice(&bytes);
        if tail.windows(wanted.len()).any(|w| w == wanted) {
            return total;
        }
        let keep = tail.len().saturating_sub(wanted.len() + 64);
        tail.drain(..keep);
    }
}

async fn send(socket: &mut Socket, bytes: &[u8]) {
    socket
        .send(Message::Binary(bytes.to_vec().into()))
        .await
        .expect("the socket takes input");
}

/// Latencies of `count` keystrokes: each sent alone, timed until the terminal echoes it.
async fn keystrokes(socket: &mut Socket, count: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let key = [b'a' + (i % 26) as u8];
        let start = Instant::now();
        send(socket, &key).await;
        read_until(socket, &key).await;
        times.push(start.elapsed());
        if i % 100 == 99 {
            // Ctrl-U clears the line so that it never wraps.
            send(socket, b"\x15").await;
        }
    }
    send(socket, b"\x15").await;
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, cookie, pid, sites @ ..] = &args[..] else {
        eprintln!("usage: terminal_bench <manager URL> <session cookie> <director pid> <site id>...");
        std::process::exit(2);
    };
    let target = Target {
        base: base.clone(),
        cookie: cookie.clone(),
    };
    let pid: u32 = pid.parse().expect("a pid");
    let sites: Vec<i32> = sites.iter().map(|s| s.parse().expect("a site id")).collect();

    // 1. Keystroke echo, one terminal.
    let mut socket = target.open(sites[0]).await;
    let mut times = keystrokes(&mut socket, 1000).await;
    times.sort();
    println!(
        "echo, 1000 keystrokes: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(percentile(&times, 1.0))
    );

    // 2. `cat` of a 100 MB file (base64 text, so the TTY passes it unchanged but for CRs).
    send(
        &mut socket,
        b"head -c 78643200 /dev/urandom | base64 > .bench-100mb && echo MA''DE\n",
    )
    .await;
    // The quotes keep the command line's own echo from matching.
    read_until(&mut socket, b"MADE\r\n").await;
    let rss_before = rss_mib(pid);
    let start = Instant::now();
    send(&mut socket, b"cat .bench-100mb; echo CAT-''DONE\n").await;
    let bytes = read_until(&mut socket, b"CAT-DONE\r\n").await;
    let elapsed = start.elapsed();
    println!(
        "cat 100 MB: {:.1} MB in {:.2} s = {:.1} MB/s; director RSS {:.1} MiB before, {:.1} MiB after",
        bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        rss_before,
        rss_mib(pid)
    );
    send(&mut socket, b"rm -f .bench-100mb; exit\n").await;
    drop(socket);

    // 3. 200 terminals on the sites at once, each timing 50 keystrokes while all type.
    let opened = Instant::now();
    let sockets = futures::future::join_all((0..200).map(|i| target.open(sites[i % sites.len()]))).await;
    let open_time = opened.elapsed();
    let rss_open = rss_mib(pid);
    let all: Vec<Vec<Duration>> =
        futures::future::join_all(sockets.into_iter().map(|mut socket| async move {
            let times = keystrokes(&mut socket, 50).await;
            (socket, times)
        }))
        .await
        .into_iter()
        .map(|(socket, times)| {
            drop(socket);
            times
        })
        .collect();
    let mut times: Vec<Duration> = all.into_iter().flatten().collect();
    times.sort();
    println!(
        "200 terminals on {} sites: opened in {:.1} s; echo p50 {:.2} ms  p99 {:.2} ms; director RSS {:.1} MiB with all open",
        sites.len(),
        open_time.as_secs_f64(),
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        rss_open
    );
}
