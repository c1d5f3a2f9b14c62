//! A stable 128-bit hash for identities that must not change between builds
//! or platforms (request ids, series identities). Not cryptographic.

/// Hashes `parts`, each length-delimited so that moving a boundary between
/// parts changes the hash. Two independent 64-bit lanes over 8-byte words.
pub fn hash128(parts: &[&[u8]]) -> u128 {
    let (mut a, mut b) = (0x243f_6a88_85a3_08d3u64, 0x1319_8a2e_0370_7344u64);
    let mut mix = |w: u64| {
        a = (a.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
        b = (b ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31);
    };
    for part in parts {
        for chunk in part.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            mix(u64::from_le_bytes(word) ^ ((chunk.len() as u64) << 60));
        }
        mix(part.len() as u64 ^ 0xffff_0000_0000_0000);
    }
    (u128::from(a) << 64) | u128::from(b)
}

/// [`hash128`] as 32 hex digits.
pub fn hex128(parts: &[&[u8]]) -> String {
    format!("{:032x}", hash128(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_boundary_sensitive() {
        assert_eq!(hex128(&[b"t", b"abc"]), hex128(&[b"t", b"abc"]));
        assert_ne!(hex128(&[b"t", b"abc"]), hex128(&[b"ta", b"bc"]));
        assert_ne!(hex128(&[b"t", b"abc"]), hex128(&[b"t", b"abc\0"]));
        assert_ne!(hex128(&[b"t", b""]), hex128(&[b"t"]));
        assert_eq!(hex128(&[]).len(), 32);
        // Pinned: stored identities must survive a rebuild.
        // Literal values: D1 and R2 keep what these produced, across deploys.
        assert_eq!(hash128(&[b"tenant", b"metric"]), 293121077417959745150893204396252623014);
        assert_eq!(hex128(&[b"t", b"abc"]), "1fc88332b7c26554401cf8e07c7fc52d");
    }
}
