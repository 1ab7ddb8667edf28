//! `RegistryUnavailable`: listing an image's tags failed on 3 passes in a row. Resolves
//! when a listing succeeds.

use super::Context;
use crate::alert::{Alert, AlertName};

/// Failed listings in a row before the alert fires.
pub const PASSES: u32 = 3;

/// The images whose listing has failed [`PASSES`] times in a row.
pub fn check(cx: &Context<'_>) -> Vec<Alert> {
    cx.memory
        .listing_failures()
        .filter(|(_, failure)| failure.passes >= PASSES)
        .map(|(image, failure)| {
            cx.memory.keep_since(Alert {
                name: AlertName::RegistryUnavailable,
                promotion: String::new(),
                repository: String::new(),
                environment: String::new(),
                image: image.to_string(),
                since: failure.since,
                from: None,
                to: None,
                class: Some(failure.class.clone()),
                error: Some(failure.error.clone()),
            })
        })
        .collect()
}
