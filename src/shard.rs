//! Which worker of a sharded fleet owns which promotion. Pure: names in, an owner out.
//!
//! Ownership is by rendezvous (highest-random-weight) hashing of the promotion's name: each
//! shard scores every promotion, and the highest score owns it. Going from N to N+1 shards
//! moves only the promotions the new shard now wins (about 1/(N+1) of them), and every
//! worker computes the same owner from the same rules without talking to the others. A
//! promotion is the unit: its environments, chain and holds stay with one worker.

use std::fmt;

use sha2::{Digest, Sha256};

/// This worker's place in the fleet: shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This worker's index, `0..count`.
    pub index: usize,
    /// How many workers share the fleet.
    pub count: usize,
}

impl Shard {
    /// The only worker: it owns everything.
    pub const ALONE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`, or why that is not a shard.
    pub fn new(index: usize, count: usize) -> Result<Self, String> {
        if count == 0 {
            return Err("--shards must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard {index} is not one of --shards {count} (0 to {})",
                count - 1
            ));
        }
        Ok(Self { index, count })
    }

    /// Whether this worker owns `promotion`.
    pub fn owns(&self, promotion: &str) -> bool {
        owner(promotion, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// This worker's shard and how to reach its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// This worker's shard.
    pub shard: Shard,
    /// A peer's base URL with `{shard}` for its index (through a StatefulSet's headless
    /// Service: `http://tagpromoter-{shard}.tagpromoter:9090`); `None`: peers are not
    /// reached (webhooks for their promotions wait for their interval).
    pub peer_url: Option<String>,
}

impl Fleet {
    /// One worker alone.
    pub fn alone() -> Self {
        Self {
            shard: Shard::ALONE,
            peer_url: None,
        }
    }

    /// The base URL of shard `index`, when peers can be reached.
    pub fn peer(&self, index: usize) -> Option<String> {
        let template = self.peer_url.as_deref()?;
        Some(
            template
                .replace("{shard}", &index.to_string())
                .trim_end_matches('/')
                .to_string(),
        )
    }

    /// The other shards.
    pub fn others(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.shard.count).filter(|&i| i != self.shard.index)
    }
}

/// The shard of `count` that owns `promotion`.
pub fn owner(promotion: &str, count: usize) -> usize {
    (0..count)
        .max_by_key(|&shard| (score(promotion, shard), std::cmp::Reverse(shard)))
        .unwrap_or(0)
}

fn score(promotion: &str, shard: usize) -> u64 {
    let mut hash = Sha256::new();
    hash.update((shard as u64).to_be_bytes());
    hash.update(promotion.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The index a StatefulSet gave its pod: the number after the last `-` of its host name
/// (`tagpromoter-2` is 2).
pub fn ordinal_of(hostname: &str) -> Option<usize> {
    hostname.rsplit_once('-')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("app-{i:05}")).collect()
    }

    /// Every promotion has exactly one owner, and shards get a fair share.
    #[test]
    fn each_promotion_has_one_owner_and_shares_are_even() {
        let names = names(10_000);
        for count in [1, 3, 4, 7] {
            let mut shares = vec![0usize; count];
            for n in &names {
                let owners: Vec<usize> = (0..count)
                    .filter(|&i| Shard { index: i, count }.owns(n))
                    .collect();
                assert_eq!(owners.len(), 1, "{n} with {count} shards: {owners:?}");
                shares[owners[0]] += 1;
            }
            let fair = names.len() / count;
            for s in &shares {
                assert!(s.abs_diff(fair) * 10 < fair, "{count} shards: {shares:?}");
            }
        }
    }

    /// Scaling N to N+1 moves about 1/(N+1) of the promotions, all to the new shard.
    #[test]
    fn scaling_up_moves_only_what_the_new_shard_takes() {
        let names = names(10_000);
        for n in [1, 3, 9] {
            let moved: Vec<&String> = names
                .iter()
                .filter(|p| owner(p, n) != owner(p, n + 1))
                .collect();
            assert!(moved.iter().all(|p| owner(p, n + 1) == n), "n={n}");
            let expected = names.len() / (n + 1);
            assert!(
                moved.len().abs_diff(expected) * 10 < expected,
                "n={n}: {} moved, about {expected} expected",
                moved.len()
            );
        }
    }

    #[test]
    fn a_statefulset_pods_ordinal_is_its_shard() {
        assert_eq!(ordinal_of("tagpromoter-2"), Some(2));
        assert_eq!(ordinal_of("my-tagpromoter-12"), Some(12));
        assert_eq!(ordinal_of("tagpromoter"), None);
        assert_eq!(ordinal_of("tagpromoter-7d9f8-abcde"), None);
        assert!(Shard::new(3, 3).is_err());
        assert!(Shard::new(0, 0).is_err());
    }
}
