//! `psm-load`: drives a running gateway like many people would, over its real HTTP API and
//! WebSocket tunnel, and reports what it measured. Used by `bench/sessions.sh` and `bench/rdp.sh`.

mod display;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Parser)]
struct Cli {
    /// The gateway, e.g. 127.0.0.1:8080.
    #[arg(long)]
    gateway: String,
    /// The gateway's data directory (for the start-link key).
    #[arg(long)]
    data_dir: std::path::PathBuf,
    #[arg(long)]
    person: String,
    #[arg(long)]
    computer: String,
    #[arg(long)]
    policy: String,
    /// The person's master password.
    #[arg(long)]
    master: String,
    /// ExternalCredentialGuid: a personal credential (not leased, so sessions can run side by side).
    #[arg(long)]
    credential: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start link to first shell byte, `count` times one after another: p50, p99.
    Latency { count: usize },
    /// Bytes per second of terminal output through the gateway (`bytes` of base64 text).
    Throughput { bytes: u64 },
    /// Opens `count` idle sessions and holds them for `hold_secs`, printing progress.
    Idle { count: usize, hold_secs: u64 },
    /// A graphical session (display channel): idle for `idle_secs`, then a scripted xterm scroll
    /// for `scroll_secs`: frames, bytes and the gateway's CPU (`gateway_pid`) per frame.
    Display {
        idle_secs: u64,
        scroll_secs: u64,
        gateway_pid: u32,
    },
    /// The same scroll on a terminal session, for the baseline: bytes per second and gateway CPU.
    TerminalScroll { scroll_secs: u64, gateway_pid: u32 },
}

async fn http(
    addr: &str,
    method: &str,
    path: &str,
    secret: Option<&str>,
    body: &Value,
) -> Result<Value> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = body.to_string();
    let auth = secret
        .map(|s| format!("Authorization: Bearer {s}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (_, body) = response.split_once("\r\n\r\n").context("no HTTP body")?;
    Ok(serde_json::from_str(body)?)
}

/// Walks the workflow and opens the tunnel; returns the socket once the first byte arrived.
async fn launch(cli: &Cli, key: &openpsm_gateway::startlink::LinkKey) -> Result<Ws> {
    let (secret, token) = walk(cli, key).await?;
    let mut request = format!("ws://{}/api/v1/tunnel", cli.gateway).into_client_request()?;
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {secret}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    ws.send(Message::text(token)).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(_))) => return Ok(ws),
            Some(Ok(Message::Text(t))) if t.contains("\"ended\"") || t.contains("\"error\"") => {
                bail!("session refused: {t}")
            }
            Some(Ok(_)) => {}
            other => bail!("tunnel closed: {other:?}"),
        }
    }
}

/// Walks the workflow from a fresh start link to the launch token: (flow secret, token).
async fn walk(cli: &Cli, key: &openpsm_gateway::startlink::LinkKey) -> Result<(String, String)> {
    let pairs = vec![
        ("TargetPersonGuid", cli.person.clone()),
        ("AccessRequestPolicyID", cli.policy.clone()),
        ("TargetComputerGuid", cli.computer.clone()),
        ("IsAdvanceMode", "false".to_owned()),
    ];
    let mut pairs = pairs;
    if let Some(c) = &cli.credential {
        pairs.push(("ExternalCredentialGuid", c.clone()));
    }
    let now = openpsm_gateway::store::unix_now();
    let link = openpsm_gateway::startlink::sign(
        &pairs,
        key,
        now + 60,
        &openpsm_gateway::startlink::new_nonce(),
    );
    let started = http(
        &cli.gateway,
        "POST",
        "/api/v1/flows",
        None,
        &json!({"link": link}),
    )
    .await?;
    let flow = started["flow"].as_str().context("no flow")?.to_owned();
    let secret = started["flow_secret"]
        .as_str()
        .context("no secret")?
        .to_owned();
    let mut step = started["step"].clone();
    for _ in 0..4 {
        let answer = match step["name"].as_str() {
            Some("agreement") => json!({"step": "agreement", "accept": true}),
            Some("master_password") => {
                json!({"step": "master_password", "master_password": cli.master})
            }
            Some("launch") => break,
            other => bail!("unexpected step {other:?}: {step}"),
        };
        step = http(
            &cli.gateway,
            "POST",
            &format!("/api/v1/flows/{flow}/answer"),
            Some(&secret),
            &answer,
        )
        .await?["step"]
            .clone();
    }
    let token = step["token"].as_str().context("no token")?.to_owned();
    Ok((secret, token))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let keys = openpsm_gateway::keys::Keys::load_or_create(&cli.data_dir)?;
    match cli.command {
        Command::Latency { count } => {
            let mut ms = Vec::with_capacity(count);
            for _ in 0..count {
                let started = Instant::now();
                let mut ws = launch(&cli, &keys.link).await?;
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
                ws.send(Message::binary(b"exit\n".to_vec())).await?;
                while let Some(Ok(_)) = ws.next().await {}
            }
            ms.sort_by(f64::total_cmp);
            println!(
                "{}",
                json!({"launches": count, "p50_ms": percentile(&ms, 0.5), "p99_ms": percentile(&ms, 0.99)})
            );
        }
        Command::Throughput { bytes } => {
            let mut ws = launch(&cli, &keys.link).await?;
            // Let the login banner pass, then time the output of one command.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let command =
                format!("head -c {bytes} /dev/zero | base64 -w 0; echo; echo psm-$((40+2))-end\n");
            let started = Instant::now();
            ws.send(Message::binary(command.into_bytes())).await?;
            let mut received = 0u64;
            let mut tail = String::new();
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => {
                        received += b.len() as u64;
                        tail.push_str(&String::from_utf8_lossy(&b));
                        if tail.contains("psm-42-end") {
                            break;
                        }
                        let keep = tail.len().saturating_sub(64);
                        tail.drain(
                            ..tail
                                .char_indices()
                                .map(|(i, _)| i)
                                .find(|i| *i >= keep)
                                .unwrap_or(0),
                        );
                    }
                    Some(Ok(_)) => {}
                    other => bail!("tunnel closed: {other:?}"),
                }
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{}",
                json!({"bytes": received, "seconds": secs, "mb_per_s": received as f64 / secs / 1e6})
            );
            ws.send(Message::binary(b"exit\n".to_vec())).await?;
        }
        Command::Display {
            idle_secs,
            scroll_secs,
            gateway_pid,
        } => {
            let (secret, token) = walk(&cli, &keys.link).await?;
            let report = display::measure(
                &cli.gateway,
                &secret,
                &token,
                idle_secs,
                scroll_secs,
                gateway_pid,
            )
            .await?;
            println!("{report}");
        }
        Command::TerminalScroll {
            scroll_secs,
            gateway_pid,
        } => {
            let ws = launch(&cli, &keys.link).await?;
            println!(
                "{}",
                display::terminal_scroll(ws, scroll_secs, gateway_pid).await?
            );
        }
        Command::Idle { count, hold_secs } => {
            let mut sessions = Vec::with_capacity(count);
            for i in 0..count {
                sessions.push(
                    launch(&cli, &keys.link)
                        .await
                        .with_context(|| format!("session {i}"))?,
                );
            }
            println!("{}", json!({"open": sessions.len()}));
            // Keep reading so nothing stalls, while the caller measures.
            let hold = tokio::time::sleep(Duration::from_secs(hold_secs));
            tokio::pin!(hold);
            let mut all = futures::stream::select_all(sessions.iter_mut().map(|ws| ws.by_ref()));
            loop {
                tokio::select! {
                    () = &mut hold => break,
                    _ = all.next() => {}
                }
            }
        }
    }
    Ok(())
}
