//! Multi-version key-value store: every change gets a revision; old revisions
//! stay readable until compacted.
//!
//! Layout follows etcd's: the `kv` table of the backend maps a revision to the
//! `mvccpb.KeyValue` written at that revision, and an in-memory index maps
//! each key to the revisions that touched it. Reads resolve key → revision in
//! the index, then revision → value in the backend.

pub mod backend;
pub mod compaction;
pub mod index;
pub mod packed_copy;
pub mod revision;
pub mod revision_key;
pub mod store;

pub use backend::Backend;
pub use revision::Revision;
pub use store::{KvStore, ReadView, WriteBatch};
