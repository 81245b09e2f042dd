//! Users, roles and the auth settings in etcd's buckets (`auth`, `authUsers`,
//! `authRoles`), both ways: a snapshot of Ballast restored by etcdutl keeps its
//! users, and one of etcd restored by Ballast keeps theirs. etcd stores the
//! same authpb records Ballast does, keyed by name.

use std::io::{Seek, Write};

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::bbolt::{Reader, Writer};
use super::layout as etcd;
use crate::auth::stored;
use crate::error::{Error, Result};
use crate::mvcc::backend::{get_u64, put_u64, AUTH, AUTH_ROLES, AUTH_USERS};

const AUTH_ENABLED: &[u8] = b"authEnabled";

pub(super) fn export<W: Write + Seek>(txn: &ReadTransaction, w: &mut Writer<W>) -> Result<()> {
    let settings = txn.open_table(AUTH)?;
    w.start_bucket(etcd::AUTH)?;
    // In key order: "authEnabled" < "authRevision". A store where auth was
    // never turned on has no authEnabled in etcd; absent reads as off.
    if get_u64(&settings, stored::ENABLED)? == 1 {
        w.put(AUTH_ENABLED, &[1])?;
    }
    let revision = get_u64(&settings, stored::REVISION)?.max(1);
    w.put(etcd::AUTH_REVISION, &revision.to_be_bytes())?;
    // redb orders names as bbolt does: by their bytes.
    w.start_bucket(etcd::AUTH_ROLES)?;
    for item in txn.open_table(AUTH_ROLES)?.iter()? {
        let (name, record) = item?;
        w.put(name.value().as_bytes(), record.value())?;
    }
    w.start_bucket(etcd::AUTH_USERS)?;
    for item in txn.open_table(AUTH_USERS)?.iter()? {
        let (name, record) = item?;
        w.put(name.value().as_bytes(), record.value())?;
    }
    Ok(())
}

/// Copies etcd's auth buckets into `txn`; `bad` names what is wrong with the file.
pub(super) fn import(
    db: &Reader,
    txn: &WriteTransaction,
    bad: &dyn Fn(String) -> Error,
) -> Result<()> {
    let read = |e| bad(format!("{e}"));
    let mut settings = txn.open_table(AUTH)?;
    if let Some(entries) = db.bucket(etcd::AUTH).map_err(read)? {
        for entry in entries {
            let (k, v) = entry.map_err(read)?;
            if k == AUTH_ENABLED {
                put_u64(&mut settings, stored::ENABLED, u64::from(v == [1]))?;
            } else if k == etcd::AUTH_REVISION {
                let rev: [u8; 8] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad("auth authRevision is not 8 bytes".into()))?;
                put_u64(&mut settings, stored::REVISION, u64::from_be_bytes(rev))?;
            }
        }
    }
    for (bucket, table) in [
        (etcd::AUTH_USERS, AUTH_USERS),
        (etcd::AUTH_ROLES, AUTH_ROLES),
    ] {
        let mut t = txn.open_table(table)?;
        if let Some(entries) = db.bucket(bucket).map_err(read)? {
            for entry in entries {
                let (k, v) = entry.map_err(read)?;
                let name = std::str::from_utf8(&k).map_err(|_| {
                    bad(format!(
                        "{} holds a name that is not UTF-8: {k:?}",
                        String::from_utf8_lossy(bucket)
                    ))
                })?;
                t.insert(name, v.as_slice())?;
            }
        }
    }
    Ok(())
}
