//! Hashing and keyed markers: [`sha256_hex`] for spec hashes and the per-host [`MarkerKey`]
//! that marks hidden values without holding them.

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The per-host secret that keys the markers of hidden values (env values, env file
/// contents) in labels: 32 random bytes kept in the state directory (see
/// [`crate::history::marker_key`]), passed in as data. The default (all zero) is for plans
/// that never reach a host (tests, fuzzing, benchmarks).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct MarkerKey([u8; 32]);

impl MarkerKey {
    pub fn new(bytes: [u8; 32]) -> MarkerKey {
        MarkerKey(bytes)
    }

    /// HMAC-SHA256 of `value` under this key, 64 hex digits.
    pub fn mark(&self, value: &[u8]) -> String {
        use hmac::Mac;
        // HMAC takes a key of any length, so this never fails.
        match hmac::Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mut mac) => {
                mac.update(value);
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }
}

impl std::fmt::Debug for MarkerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never in logs or panics.
        f.write_str("MarkerKey(..)")
    }
}
