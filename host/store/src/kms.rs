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
    /// Earlier master keys, for opening what was sealed before a rotation; never for sealing.
    previous: Vec<Aes256Gcm>,
}

impl Kms {
    /// The master key: exactly 32 bytes (AES-256).
    pub fn new(master_key: &[u8; 32]) -> Self {
        Self { master: cipher(master_key), previous: Vec::new() }
    }

    /// Also opens secrets wrapped by these earlier master keys (`kms.previous_keys`).
    pub fn with_previous_keys<'k>(mut self, keys: impl IntoIterator<Item = &'k [u8; 32]>) -> Self {
        self.previous.extend(keys.into_iter().map(cipher));
        self
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
        let parts = Parts::split(sealed)?;
        let (data_key, _) = self.unwrap_data_key(&parts, context)?;
        Aes256Gcm::new_from_slice(&data_key)
            .map_err(|_| KmsError::Rejected)?
            .decrypt(&nonce(parts.data_nonce), Payload { msg: parts.ciphertext, aad: context })
            .map_err(|_| KmsError::Rejected)
    }

    /// The same secret with its data key wrapped by the current master key, or `None` when it
    /// already is. The data itself is not re-encrypted: its key did not change. The whole value
    /// is opened first, so a rotation never writes something that no longer opens.
    pub fn rewrap(&self, sealed: &[u8], context: &[u8]) -> Result<Option<Vec<u8>>, KmsError> {
        self.open(sealed, context)?;
        let parts = Parts::split(sealed)?;
        let (data_key, current) = self.unwrap_data_key(&parts, context)?;
        if current {
            return Ok(None);
        }
        let key_nonce = Aes256Gcm::generate_nonce(OsRng);
        let wrapped = self
            .master
            .encrypt(&key_nonce, Payload { msg: &data_key[..], aad: context })
            .expect("AES-GCM encryption of 32 bytes cannot fail");
        let mut rewrapped = Vec::with_capacity(sealed.len());
        rewrapped.push(VERSION);
        rewrapped.extend_from_slice(&key_nonce);
        rewrapped.extend_from_slice(&wrapped);
        rewrapped.extend_from_slice(parts.data_nonce);
        rewrapped.extend_from_slice(parts.ciphertext);
        Ok(Some(rewrapped))
    }

    /// The data key, and whether the current master key wrapped it.
    fn unwrap_data_key(&self, parts: &Parts<'_>, context: &[u8]) -> Result<(Vec<u8>, bool), KmsError> {
        let payload = || Payload { msg: parts.wrapped, aad: context };
        if let Ok(key) = self.master.decrypt(&nonce(parts.key_nonce), payload()) {
            return Ok((key, true));
        }
        self.previous
            .iter()
            .find_map(|previous| previous.decrypt(&nonce(parts.key_nonce), payload()).ok())
            .map(|key| (key, false))
            .ok_or(KmsError::Rejected)
    }
}

/// The fields of a sealed value, borrowed.
struct Parts<'a> {
    key_nonce: &'a [u8],
    wrapped: &'a [u8],
    data_nonce: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> Parts<'a> {
    fn split(sealed: &'a [u8]) -> Result<Self, KmsError> {
        if sealed.len() < HEADER + 16 || sealed[0] != VERSION {
            return Err(KmsError::Malformed);
        }
        let (key_nonce, rest) = sealed[1..].split_at(NONCE);
        let (wrapped, rest) = rest.split_at(WRAPPED_KEY);
        let (data_nonce, ciphertext) = rest.split_at(NONCE);
        Ok(Self { key_nonce, wrapped, data_nonce, ciphertext })
    }
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key).expect("32 bytes is an AES-256 key")
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

    #[test]
    fn rotation_rewraps_under_the_new_key_and_keeps_the_secret() {
        let sealed = kms(1).seal(b"kubeconfig", b"c_1");
        let rotated = kms(2).with_previous_keys([&[1; 32]]);
        assert_eq!(rotated.open(&sealed, b"c_1").unwrap(), b"kubeconfig", "previous keys open");
        let rewrapped = rotated.rewrap(&sealed, b"c_1").unwrap().expect("wrapped by an old key");
        assert_eq!(kms(2).open(&rewrapped, b"c_1").unwrap(), b"kubeconfig", "the new key alone opens it");
        assert!(kms(1).open(&rewrapped, b"c_1").is_err(), "the old key no longer does");
        assert_eq!(rotated.rewrap(&rewrapped, b"c_1").unwrap(), None, "already current");
        assert!(matches!(kms(3).rewrap(&sealed, b"c_1"), Err(KmsError::Rejected)), "unknown key");
        assert!(matches!(rotated.rewrap(&sealed, b"c_2"), Err(KmsError::Rejected)), "other context");
    }
}
