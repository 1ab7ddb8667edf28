//! Delivery beside the passes: each sink has its own queue and task, sends batches in
//! order, retries failures with backoff, and never blocks the pass that queued them. A full
//! queue drops the oldest work for that sink (logged and counted) rather than wait.
//! [`Dispatcher::flush`] waits, up to a deadline, for what is queued (for `once`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::{Notify, mpsc};

use super::sinks::{Batch, Sink, SinkError};
use crate::metrics::AlertDeliveries;

/// Batches waiting per sink before the oldest are dropped.
const QUEUE: usize = 64;

/// Sends batches to every sink in the background.
pub struct Dispatcher {
    queues: Vec<(&'static str, mpsc::Sender<Arc<Batch>>)>,
    outstanding: Arc<AtomicUsize>,
    idle: Arc<Notify>,
    metrics: AlertDeliveries,
}

impl Dispatcher {
    /// Start one task per sink, on the current runtime.
    pub fn start(sinks: Vec<Box<dyn Sink>>, metrics: AlertDeliveries) -> Self {
        let outstanding = Arc::new(AtomicUsize::new(0));
        let idle = Arc::new(Notify::new());
        let mut queues = Vec::new();
        for sink in sinks {
            let (tx, rx) = mpsc::channel::<Arc<Batch>>(QUEUE);
            queues.push((sink.kind(), tx));
            tokio::spawn(drain(
                Arc::from(sink),
                rx,
                Arc::clone(&outstanding),
                Arc::clone(&idle),
                metrics.clone(),
            ));
        }
        Self {
            queues,
            outstanding,
            idle,
            metrics,
        }
    }

    /// Queue `batch` for every sink; returns at once.
    pub fn submit(&self, batch: Batch) {
        let batch = Arc::new(batch);
        for (kind, tx) in &self.queues {
            self.outstanding.fetch_add(1, Ordering::SeqCst);
            if tx.try_send(Arc::clone(&batch)).is_err() {
                self.done();
                self.metrics.sent(kind, "dropped");
                tracing::error!(
                    sink = kind,
                    "the alert queue is full; dropping this batch (is the receiver down for long?)"
                );
            }
        }
    }

    fn done(&self) {
        if self.outstanding.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Wait until every queued batch was sent or given up on, or `deadline` passed;
    /// `true` when all went out.
    pub async fn flush(&self, deadline: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.outstanding.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }
}

async fn drain(
    sink: Arc<dyn Sink>,
    mut rx: mpsc::Receiver<Arc<Batch>>,
    outstanding: Arc<AtomicUsize>,
    idle: Arc<Notify>,
    metrics: AlertDeliveries,
) {
    let kind = sink.kind();
    while let Some(batch) = rx.recv().await {
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(4)
            .with_jitter();
        let result = (|| sink.send(&batch))
            .retry(policy)
            .when(|e: &SinkError| e.retry)
            .notify(|e: &SinkError, wait| {
                tracing::warn!(sink = kind, error = %e, retry_in = ?wait, "alert delivery failed; retrying");
            })
            .await;
        match result {
            Ok(()) => metrics.sent(kind, "ok"),
            Err(e) => {
                metrics.sent(kind, "failed");
                tracing::error!(sink = kind, error = %e, "alert delivery failed; check the receiver's URL and that it is up (promotions go on)");
            }
        }
        if outstanding.fetch_sub(1, Ordering::SeqCst) == 1 {
            idle.notify_waiters();
        }
    }
}
