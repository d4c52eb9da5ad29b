//! Envelope encryption of secrets at rest (cluster kubeconfigs, …) with AES-256-GCM.
//!
//! Each secret gets its own random data key; the data key is encrypted ("wrapped") by the master
//! key. Rotating the master key then means re-wrapping small data keys, not re-encrypting data.
//! The caller passes associated data (for example the row id) so a sealed value cannot be moved
//! to another record unnoticed.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

const VERSION: u8 = 1;
const NONCE: usize = 12;
const WRAPPED_KEY: usize = 32 + 16;
const HEADER: usize = 1 + NONCE + WRAPPED_KEY + NONCE;

#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("sealed secret is malformed")]
    Malformed,
    #[error("sealed secret cannot be opened with this master key and context")]
    Rejected,
}

#[derive(Clone)]
pub struct Kms {
    master: Aes256Gcm,
}

impl Kms {
    /// The master key: exactly 32 bytes (AES-256).
    pub fn new(master_key: &[u8; 32]) -> Self {
        Self { master: Aes256Gcm::new_from_slice(master_key).expect("32 bytes is an AES-256 key") }
    }

    /// `version ‖ key nonce ‖ wrapped data key ‖ data nonce ‖ ciphertext+tag`.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let data_key = Aes256Gcm::generate_key(OsRng);
        let key_nonce = Aes256Gcm::generate_nonce(OsRng);
        let data_nonce = Aes256Gcm::generate_nonce(OsRng);
        let wrapped = self
            .master
            .encrypt(&key_nonce, Payload { msg: &data_key[..], aad: context })
            .expect("AES-GCM encryption of 32 bytes cannot fail");
        let ciphertext = Aes256Gcm::new(&data_key)
            .encrypt(&data_nonce, Payload { msg: plaintext, aad: context })
            .expect("AES-GCM encryption fails only past 64 GiB");
        let mut sealed = Vec::with_capacity(HEADER + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&key_nonce);
        sealed.extend_from_slice(&wrapped);
        sealed.extend_from_slice(&data_nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, KmsError> {
        if sealed.len() < HEADER + 16 || sealed[0] != VERSION {
            return Err(KmsError::Malformed);
        }
        let (key_nonce, rest) = sealed[1..].split_at(NONCE);
        let (wrapped, rest) = rest.split_at(WRAPPED_KEY);
        let (data_nonce, ciphertext) = rest.split_at(NONCE);
        let data_key = self
            .master
            .decrypt(&nonce(key_nonce), Payload { msg: wrapped, aad: context })
            .map_err(|_| KmsError::Rejected)?;
        Aes256Gcm::new_from_slice(&data_key)
            .map_err(|_| KmsError::Rejected)?
            .decrypt(&nonce(data_nonce), Payload { msg: ciphertext, aad: context })
            .map_err(|_| KmsError::Rejected)
    }
}

fn nonce(bytes: &[u8]) -> Nonce<<Aes256Gcm as AeadCore>::NonceSize> {
    let array: [u8; NONCE] = bytes.try_into().expect("split at NONCE bytes");
    array.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kms(byte: u8) -> Kms {
        Kms::new(&[byte; 32])
    }

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let secret = b"apiVersion: v1\nkind: Config\n";
        let sealed = kms(1).seal(secret, b"cluster c_1");
        assert!(!sealed.windows(secret.len()).any(|w| w == secret));
        assert_eq!(kms(1).open(&sealed, b"cluster c_1").unwrap(), secret);
        // Two seals of the same secret differ (fresh data key and nonces).
        assert_ne!(sealed, kms(1).seal(secret, b"cluster c_1"));
    }

    #[test]
    fn refuses_other_keys_other_contexts_and_tampering() {
        let sealed = kms(1).seal(b"secret", b"a");
        assert!(matches!(kms(2).open(&sealed, b"a"), Err(KmsError::Rejected)));
        assert!(matches!(kms(1).open(&sealed, b"b"), Err(KmsError::Rejected)));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(kms(1).open(&tampered, b"a"), Err(KmsError::Rejected)));
        assert!(matches!(kms(1).open(&sealed[..10], b"a"), Err(KmsError::Malformed)));
    }
}
