//! Pacing per registry host: a request rate, a bound on requests in flight, and a host-wide
//! pause after a 429 (`Retry-After`), shared by everything that talks to that host.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The pace of one host.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    slots: Arc<Semaphore>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    next: Instant,
    paused_until: Option<Instant>,
}

/// Held while a request is in flight.
pub struct Turn {
    _permit: OwnedSemaphorePermit,
}

impl Pacer {
    /// At most `per_second` request starts per second and `concurrency` in flight.
    pub fn new(per_second: f64, concurrency: usize) -> Self {
        let interval = if per_second > 0.0 && per_second.is_finite() {
            Duration::from_secs_f64(1.0 / per_second)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            state: Mutex::new(State {
                next: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Wait for this host's next turn.
    pub async fn turn(&self) -> Turn {
        let permit = match Arc::clone(&self.slots).acquire_owned().await {
            Ok(p) => p,
            // The semaphore is never closed; a closed one would mean shutdown.
            Err(_) => std::future::pending().await,
        };
        let start = {
            let mut s = self.state.lock().await;
            let now = Instant::now();
            let mut start = s.next.max(now);
            if let Some(p) = s.paused_until {
                start = start.max(p);
            }
            s.next = start + self.interval;
            start
        };
        tokio::time::sleep_until(start).await;
        Turn { _permit: permit }
    }

    /// No request to this host before `for_` has passed (a 429's `Retry-After`).
    pub async fn pause(&self, for_: Duration) {
        let until = Instant::now() + for_;
        let mut s = self.state.lock().await;
        if s.paused_until.is_none_or(|p| p < until) {
            s.paused_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_and_paused() {
        let pacer = Pacer::new(10.0, 4);
        let t0 = Instant::now();
        for _ in 0..5 {
            drop(pacer.turn().await);
        }
        assert!(t0.elapsed() >= Duration::from_millis(400));
        pacer.pause(Duration::from_secs(3)).await;
        let t1 = Instant::now();
        drop(pacer.turn().await);
        assert!(t1.elapsed() >= Duration::from_secs(3));
    }
}
