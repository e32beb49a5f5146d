//! The one place stored values are encoded: a schema-version byte, then bincode 2 (standard
//! config) of the value. Changing a stored type means a new version byte and a migration.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The schema version written in front of every stored value.
pub const SCHEMA_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("stored value is empty")]
    Empty,
    #[error("stored value has schema version {0}, this build reads version {SCHEMA_VERSION}")]
    Version(u8),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![SCHEMA_VERSION];
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Encodes with a version byte other than `SCHEMA_VERSION`: for a type whose layout changed,
/// written under its own newer version (read back with `split_version`).
pub fn encode_as<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = encode(value)?;
    out[0] = version;
    Ok(out)
}

/// The version byte and the body of a stored value, for types with more than one layout.
pub fn split_version(bytes: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    Ok((version, body))
}

/// Decodes a body whose version the caller has already checked.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, _) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    Ok(value)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != SCHEMA_VERSION {
        return Err(CodecError::Version(version));
    }
    let (value, _) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let v = (7u64, String::from("x"));
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes[0], SCHEMA_VERSION);
        assert_eq!(decode::<(u64, String)>(&bytes).unwrap(), v);
        let mut wrong = bytes.clone();
        wrong[0] = 99;
        assert!(matches!(
            decode::<(u64, String)>(&wrong),
            Err(CodecError::Version(99))
        ));
        assert!(matches!(
            decode::<(u64, String)>(&[]),
            Err(CodecError::Empty)
        ));
        assert!(matches!(
            decode::<(u64, String)>(&[SCHEMA_VERSION, 0xff]),
            Err(CodecError::Corrupt(_))
        ));
    }
}
