//! Which partition a record goes to, as the Java client and librdkafka's `murmur2_random` decide it:
//! a keyed record to `murmur2(key) & 0x7fffffff % partitions`, so the same key always lands on the same
//! partition whichever of these clients wrote it; a keyless record to the topic's current sticky
//! partition, which moves to another one, at random, each time a batch for it is sealed (KIP-480), so
//! batches fill up instead of spreading thin over every partition.

use rand::Rng;

/// Kafka's `Utils.murmur2` (32-bit MurmurHash2, seed `0x9747b28c`).
pub(crate) fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record.
pub(crate) fn keyed(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) as u32 % partitions
}

/// A partition other than `current` (the same one when there is only one), at random.
pub(crate) fn next_sticky(current: Option<u32>, partitions: u32) -> u32 {
    let mut rng = rand::thread_rng();
    match current {
        Some(current) if partitions > 1 => {
            let other = rng.gen_range(0..partitions - 1);
            if other >= current {
                other + 1
            } else {
                other
            }
        }
        _ => rng.gen_range(0..partitions.max(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_utils_test() {
        // The cases of Kafka's UtilsTest.testMurmur2.
        for (key, want) in [
            (&b"21"[..], -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn sticky_moves_to_another_partition() {
        for _ in 0..200 {
            let next = next_sticky(Some(2), 4);
            assert!(next < 4 && next != 2);
        }
        assert_eq!(next_sticky(Some(0), 1), 0);
        assert_eq!(next_sticky(None, 1), 0);
    }
}
