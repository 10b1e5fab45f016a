//! Measurements of a graphical session over the display channel, and the terminal baseline: the
//! same scripted scroll, frames and bytes as the browser receives them, and the gateway's CPU time
//! (from /proc, clock ticks of 10 ms) over the same seconds.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::{SinkExt as _, StreamExt as _};
use openpsm_plugin_api::guac::{Instruction, Parser};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

use super::Ws;

/// The scroll both channels run: an endless stream of short lines.
const SCROLL: &str =
    "for i in $(seq 1 10000000); do echo \"scroll line $i of the openpsm benchmark\"; done\n";

/// The gateway's CPU time so far (user + system), in ms.
fn cpu_ms(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) * 10.0)
}

#[derive(Default)]
struct Counts {
    frames: u64,
    bytes: u64,
    images: u64,
}

/// Reads for `secs`, acknowledging each `sync` at once (a fast browser).
async fn pump(ws: &mut Ws, parser: &mut Parser, secs: f64) -> Result<Counts> {
    let mut counts = Counts::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Ok(counts),
            Ok(Some(Ok(msg))) => msg,
            Ok(other) => bail!("tunnel closed: {other:?}"),
        };
        let Message::Text(text) = msg else { continue };
        counts.bytes += text.len() as u64;
        for i in parser.feed(text.as_str())? {
            match i.opcode.as_str() {
                "sync" => {
                    counts.frames += 1;
                    let ack = Instruction::new("sync", &[i.arg(0).unwrap_or("0")]).encode();
                    ws.send(Message::text(ack)).await?;
                }
                "img" => counts.images += 1,
                "error" => bail!("the session ended: {:?}", i.args),
                _ => {}
            }
        }
    }
}

async fn type_keys(ws: &mut Ws, text: &str) -> Result<()> {
    for c in text.chars() {
        let keysym = if c == '\n' { 0xFF0D } else { c as u32 };
        for pressed in ["1", "0"] {
            let key = Instruction::new("key", &[&keysym.to_string(), pressed]).encode();
            ws.send(Message::text(key)).await?;
        }
    }
    Ok(())
}

async fn ctrl_c(ws: &mut Ws) -> Result<()> {
    for (keysym, pressed) in [
        (0xFFE3u32, "1"),
        (u32::from('c'), "1"),
        (u32::from('c'), "0"),
        (0xFFE3, "0"),
    ] {
        ws.send(Message::text(
            Instruction::new("key", &[&keysym.to_string(), pressed]).encode(),
        ))
        .await?;
    }
    Ok(())
}

fn phase(counts: &Counts, secs: f64, cpu: f64) -> Value {
    let frames = counts.frames.max(1) as f64;
    json!({
        "seconds": secs,
        "frames": counts.frames,
        "images": counts.images,
        "fps": counts.frames as f64 / secs,
        "bytes": counts.bytes,
        "bytes_per_s": counts.bytes as f64 / secs,
        "bytes_per_frame": if counts.frames == 0 { 0.0 } else { counts.bytes as f64 / frames },
        "gateway_cpu_ms": cpu,
        "gateway_cpu_ms_per_frame": if counts.frames == 0 { 0.0 } else { cpu / frames },
    })
}

pub async fn measure(
    gateway: &str,
    secret: &str,
    token: &str,
    idle_secs: u64,
    scroll_secs: u64,
    pid: u32,
) -> Result<Value> {
    let mut request = format!("ws://{gateway}/api/v1/tunnel").into_client_request()?;
    let headers = request.headers_mut();
    headers.insert("Authorization", format!("Bearer {secret}").parse()?);
    headers.insert("Sec-WebSocket-Protocol", "guacamole".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    let _opened = ws.next().await.context("no tunnel id")??;
    ws.send(Message::text(Instruction::new("token", &[token]).encode()))
        .await?;
    let mut parser = Parser::new();
    let started = Instant::now();
    // The desktop: until the first picture, then let it settle.
    let mut first = Counts::default();
    while first.images == 0 && started.elapsed() < Duration::from_secs(30) {
        first = pump(&mut ws, &mut parser, 0.5).await?;
    }
    if first.images == 0 {
        bail!("no picture within 30 s");
    }
    let first_picture_ms = started.elapsed().as_millis();
    pump(&mut ws, &mut parser, 3.0).await?;
    let cpu0 = cpu_ms(pid)?;
    let idle = pump(&mut ws, &mut parser, idle_secs as f64).await?;
    let cpu1 = cpu_ms(pid)?;
    type_keys(&mut ws, SCROLL).await?;
    // Skip the echo of the command; measure the scroll itself.
    pump(&mut ws, &mut parser, 1.0).await?;
    let cpu2 = cpu_ms(pid)?;
    let t = Instant::now();
    let scroll = pump(&mut ws, &mut parser, scroll_secs as f64).await?;
    let secs = t.elapsed().as_secs_f64();
    let cpu3 = cpu_ms(pid)?;
    ctrl_c(&mut ws).await?;
    pump(&mut ws, &mut parser, 1.0).await?;
    let _ = ws
        .send(Message::text(Instruction::new("disconnect", &[]).encode()))
        .await;
    Ok(json!({
        "first_picture_ms": first_picture_ms,
        "idle": phase(&idle, idle_secs as f64, cpu1 - cpu0),
        "scroll": phase(&scroll, secs, cpu3 - cpu2),
    }))
}

/// The baseline: the same scroll through the terminal channel.
pub async fn terminal_scroll(mut ws: Ws, scroll_secs: u64, pid: u32) -> Result<Value> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    ws.send(Message::binary(SCROLL.as_bytes().to_vec())).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu0 = cpu_ms(pid)?;
    let t = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(scroll_secs);
    let (mut bytes, mut messages) = (0u64, 0u64);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Binary(b) = msg {
            bytes += b.len() as u64;
            messages += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_ms(pid)? - cpu0;
    ws.send(Message::binary(vec![3])).await?;
    ws.send(Message::binary(b"exit\n".to_vec())).await?;
    Ok(
        json!({"seconds": secs, "bytes": bytes, "messages": messages, "bytes_per_s": bytes as f64 / secs, "gateway_cpu_ms": cpu}),
    )
}
