//! Where a site's work goes: sites hash onto a fixed number of partitions, and each partition's
//! preferred owner among the live instances is chosen by rendezvous (highest-random-weight)
//! hashing, so an instance joining or leaving moves only the partitions it gains or held.
//!
//! Both hashes are SHA-256 over explicit bytes, not `std::hash::Hash` or a fast hasher whose
//! output may change between releases: a site that moved partition after an upgrade would
//! break the de-duplication ids and the partition's saved state. See `docs/scaling.md`.

use sha2::{Digest, Sha256};

/// The first 8 bytes of SHA-256 over the parts, big-endian.
fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The partition of a site, in `0..partitions` (`partitions` ≥ 1; 0 is treated as 1).
pub fn partition_of(site: &str, partitions: u32) -> u32 {
    let n = u64::from(partitions.max(1));
    (hash64(&[b"safegate-site-v1", site.as_bytes()]) % n) as u32
}

/// How much `instance` wants `partition`: the highest score among the live instances owns it.
fn score(partition: u32, instance: &str) -> u64 {
    hash64(&[
        b"safegate-hrw-v1",
        &partition.to_be_bytes(),
        instance.as_bytes(),
    ])
}

/// The preferred owner of `partition` among `live` (none if nobody is live). Ties, which
/// need equal 64-bit scores, go to the smaller id so every instance picks the same one.
pub fn preferred_owner(partition: u32, live: &[String]) -> Option<&str> {
    live.iter().map(String::as_str).max_by(|a, b| {
        score(partition, a)
            .cmp(&score(partition, b))
            .then_with(|| b.cmp(a))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_site_always_lands_on_the_same_partition() {
        // Pinned values: a change here moves every deployment's sites (see the module doc).
        let pinned: Vec<u32> = ["park-a", "mine-1", "652201000001"]
            .iter()
            .map(|s| partition_of(s, 16))
            .collect();
        assert_eq!(pinned, [11, 8, 8]);
        let three = ids(&["gw-1", "gw-2", "gw-3"]);
        assert_eq!(preferred_owner(0, &three), Some("gw-2"));
        let spread: std::collections::BTreeSet<u32> = (0..200)
            .map(|i| partition_of(&format!("site-{i}"), 16))
            .collect();
        assert_eq!(
            spread.len(),
            16,
            "200 sites reach every one of 16 partitions"
        );
        assert!((0..50).all(|i| partition_of(&format!("s{i}"), 1) == 0));
        assert_eq!(partition_of("x", 0), 0);
    }

    #[test]
    fn a_leaving_instance_moves_only_its_own_partitions() {
        let three = ids(&["gw-a", "gw-b", "gw-c"]);
        let two = ids(&["gw-a", "gw-c"]);
        let before: Vec<&str> = (0..64)
            .map(|p| preferred_owner(p, &three).unwrap())
            .collect();
        for (p, was) in before.iter().enumerate() {
            let now = preferred_owner(p as u32, &two).unwrap();
            if *was != "gw-b" {
                assert_eq!(now, *was, "partition {p} moved though its owner stayed");
            }
        }
        for id in ["gw-a", "gw-b", "gw-c"] {
            let n = before.iter().filter(|o| **o == id).count();
            assert!((10..=35).contains(&n), "{id} prefers {n} of 64 partitions");
        }
    }

    #[test]
    fn every_instance_computes_the_same_owner_whatever_the_order() {
        let a = ids(&["gw-1", "gw-2", "gw-3"]);
        let b = ids(&["gw-3", "gw-1", "gw-2"]);
        for p in 0..32 {
            assert_eq!(preferred_owner(p, &a), preferred_owner(p, &b));
        }
        assert_eq!(preferred_owner(0, &[]), None);
    }
}
