//! The backup file format: every tree of the store (plugin namespaces and
//! the host's own trees), versioned and checksummed.
//!
//! Layout (integers big-endian):
//!
//! ```text
//! magic     8 bytes  "SYSHBAK\n"
//! version   u32      backup format (BACKUP_VERSION)
//! store     u32      store format of the data (store::FORMAT_VERSION)
//! created   i64      milliseconds since the Unix epoch
//! trees     u32      number of trees, then per tree:
//!   name    u32 length + UTF-8 bytes
//!   pairs   u64      number of pairs, then per pair:
//!     key   u32 length + bytes
//!     value u32 length + bytes
//! sha256    32 bytes over everything before it
//! ```
//!
//! A file is checked completely (magic, versions, checksum, structure)
//! before anything is written from it.

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::store::{TreeDump, FORMAT_VERSION};

/// The backup format this build writes and the newest it reads.
pub const BACKUP_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"SYSHBAK\n";
const CHECKSUM_BYTES: usize = 32;

/// Why a backup file cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BackupError {
    /// Not a syshost backup at all.
    #[error("not a syshost backup file (bad magic bytes)")]
    NotABackup,
    /// Written by a newer syshost.
    #[error("backup format {found} is newer than this syshost understands ({supported}); upgrade syshost")]
    NewerVersion {
        /// The version in the file.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// The data is in a newer store format.
    #[error("the backup holds store format {found}, newer than this syshost understands ({supported}); upgrade syshost")]
    NewerStore {
        /// The store format in the file.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// The checksum does not match: the file is damaged or truncated.
    #[error("backup checksum mismatch: the file is damaged or truncated")]
    Checksum,
    /// The structure is inconsistent.
    #[error("backup file is malformed: {0}")]
    Malformed(String),
}

/// A decoded backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// When it was taken (milliseconds since the Unix epoch).
    pub created_unix_ms: i64,
    /// The store format of the data.
    pub store_format: u32,
    /// Every tree with its pairs.
    pub trees: Vec<TreeDump>,
}

impl Backup {
    /// Number of pairs over all trees.
    pub fn pair_count(&self) -> usize {
        self.trees.iter().map(|t| t.pairs.len()).sum()
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), BackupError> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| BackupError::Malformed("an entry is larger than 4 GiB".into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Encodes `trees` (taken at `created_unix_ms`) as a backup file.
pub fn encode(trees: &[TreeDump], created_unix_ms: i64) -> Result<Vec<u8>, BackupError> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&BACKUP_VERSION.to_be_bytes());
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&created_unix_ms.to_be_bytes());
    let count =
        u32::try_from(trees.len()).map_err(|_| BackupError::Malformed("too many trees".into()))?;
    out.extend_from_slice(&count.to_be_bytes());
    for tree in trees {
        put_bytes(&mut out, tree.name.as_bytes())?;
        out.extend_from_slice(&(tree.pairs.len() as u64).to_be_bytes());
        for (k, v) in &tree.pairs {
            put_bytes(&mut out, k)?;
            put_bytes(&mut out, v)?;
        }
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    Ok(out)
}

/// Reads a backup file, checking everything before returning.
pub fn decode(bytes: &[u8]) -> Result<Backup, BackupError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let mut r = Reader {
        bytes,
        pos: MAGIC.len(),
    };
    let version = r.u32()?;
    if version > BACKUP_VERSION {
        return Err(BackupError::NewerVersion {
            found: version,
            supported: BACKUP_VERSION,
        });
    }
    if bytes.len() < MAGIC.len() + CHECKSUM_BYTES {
        return Err(BackupError::Checksum);
    }
    let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    if Sha256::digest(body).as_slice() != checksum {
        return Err(BackupError::Checksum);
    }
    r.bytes = body;
    let store_format = r.u32()?;
    if store_format > FORMAT_VERSION {
        return Err(BackupError::NewerStore {
            found: store_format,
            supported: FORMAT_VERSION,
        });
    }
    let created_unix_ms = i64::from_be_bytes(r.take(8)?.try_into().unwrap_or_default());
    let count = r.u32()?;
    let mut trees = Vec::new();
    for _ in 0..count {
        let name = String::from_utf8(r.chunk()?.to_vec())
            .map_err(|_| BackupError::Malformed("a tree name is not UTF-8".into()))?;
        let pairs = u64::from_be_bytes(r.take(8)?.try_into().unwrap_or_default());
        let mut dump = TreeDump {
            name,
            pairs: Vec::new(),
        };
        for _ in 0..pairs {
            let k = r.chunk()?.to_vec();
            let v = r.chunk()?.to_vec();
            dump.pairs.push((k, v));
        }
        trees.push(dump);
    }
    if r.pos != body.len() {
        return Err(BackupError::Malformed(format!(
            "{} unexpected bytes after the last tree",
            body.len() - r.pos
        )));
    }
    Ok(Backup {
        created_unix_ms,
        store_format,
        trees,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BackupError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| BackupError::Malformed("unexpected end of data".into()))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, BackupError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }

    fn chunk(&mut self) -> Result<&'a [u8], BackupError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<TreeDump> {
        vec![
            TreeDump {
                name: "host/meta".into(),
                pairs: vec![(b"format_version".to_vec(), 1u32.to_be_bytes().to_vec())],
            },
            TreeDump {
                name: "plugin/user".into(),
                pairs: vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), vec![])],
            },
            TreeDump {
                name: "plugin/empty".into(),
                pairs: vec![],
            },
        ]
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let bytes = encode(&sample(), 42).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back.trees, sample());
        assert_eq!(back.created_unix_ms, 42);
        assert_eq!(back.pair_count(), 3);

        // Every single flipped byte after the magic is detected.
        for i in MAGIC.len()..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "flip at {i} went unnoticed");
        }
        for cut in [0, 4, 12, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(
            decode(b"hello world, not a backup"),
            Err(BackupError::NotABackup)
        );
    }

    #[test]
    fn newer_versions_are_refused_by_name() {
        let mut bytes = encode(&sample(), 0).unwrap();
        bytes[8..12].copy_from_slice(&(BACKUP_VERSION + 1).to_be_bytes());
        assert!(matches!(
            decode(&bytes),
            Err(BackupError::NewerVersion { .. })
        ));
        let mut bytes = encode(&sample(), 0).unwrap();
        bytes[12..16].copy_from_slice(&(FORMAT_VERSION + 1).to_be_bytes());
        let body = bytes.len() - CHECKSUM_BYTES;
        let digest = Sha256::digest(&bytes[..body]);
        bytes[body..].copy_from_slice(&digest);
        assert!(matches!(
            decode(&bytes),
            Err(BackupError::NewerStore { .. })
        ));
    }
}
