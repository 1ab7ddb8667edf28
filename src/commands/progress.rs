//! A progress line for people at a terminal while `plan` and `once` list registries: it
//! redraws on stderr as images are listed and disappears when the listing is done. Never
//! shown when stderr is not a terminal, with `--quiet`, or for `--output json`.

use std::io::{IsTerminal, Write};

use tokio::sync::watch;

use crate::engine::Progress;

/// Start the line when `wanted` and stderr is a terminal; the sender to hand the engine.
pub fn start(wanted: bool) -> Option<watch::Sender<Progress>> {
    if !wanted || !std::io::stderr().is_terminal() {
        return None;
    }
    let (tx, mut rx) = watch::channel(Progress::default());
    tokio::spawn(async move {
        let mut shown = false;
        while rx.changed().await.is_ok() {
            let p = *rx.borrow_and_update();
            let mut err = std::io::stderr().lock();
            if p.images > 0 && p.listed >= p.images {
                if shown {
                    let _ = write!(err, "\r\x1b[2K");
                    let _ = err.flush();
                }
                return;
            }
            let width = 20;
            let filled = (p.listed * width).checked_div(p.images).unwrap_or(0);
            let _ = write!(
                err,
                "\r\x1b[2K[{}{}] listing registries: {}/{} images",
                "#".repeat(filled),
                "-".repeat(width - filled),
                p.listed,
                p.images
            );
            let _ = err.flush();
            shown = true;
        }
        // The engine went away mid-listing (a failure): leave a clean line.
        if shown {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    });
    Some(tx)
}
