//! The sessions running on this node, so they can be ended from outside: by an administrator
//! (through the store, from any node or the CLI) or by the gateway shutting down.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;
use uuid::Uuid;

pub const SHUTDOWN: &str = "The gateway is shutting down, so the session was ended.";
pub const TERMINATED: &str = "An administrator ended the session.";
pub const IDLE: &str = "The session was idle for too long, so it was ended.";

#[derive(Default)]
pub struct Live {
    sessions: Mutex<HashMap<Uuid, watch::Sender<Option<String>>>>,
}

/// Held by a running session; unregisters it when dropped.
pub struct Registration<'a> {
    live: &'a Live,
    id: Uuid,
    pub stop: watch::Receiver<Option<String>>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.live.sessions.lock() {
            map.remove(&self.id);
        }
    }
}

impl Live {
    pub fn register(&self, id: Uuid) -> Registration<'_> {
        let (tx, rx) = watch::channel(None);
        if let Ok(mut map) = self.sessions.lock() {
            map.insert(id, tx);
        }
        Registration {
            live: self,
            id,
            stop: rx,
        }
    }

    /// Asks one session to end; false when it does not run here.
    pub fn stop(&self, id: &Uuid, reason: &str) -> bool {
        self.sessions
            .lock()
            .ok()
            .and_then(|map| {
                map.get(id)
                    .map(|tx| tx.send(Some(reason.to_owned())).is_ok())
            })
            .unwrap_or(false)
    }

    pub fn stop_all(&self, reason: &str) {
        if let Ok(map) = self.sessions.lock() {
            for tx in map.values() {
                let _ = tx.send(Some(reason.to_owned()));
            }
        }
    }

    pub fn ids(&self) -> Vec<Uuid> {
        self.sessions
            .lock()
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.sessions.lock().map(|m| m.len()).unwrap_or(0)
    }
}
