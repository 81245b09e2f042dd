//! Consensus: the Raft node driver, its durable log (WAL) and the in-memory
//! log raft-rs reads.

pub mod conf_check;
pub mod ids;
pub mod node;
pub mod storage;
pub mod transport;
pub mod wal;

pub use node::{Command, RaftHandle, RaftNode, RaftStatus};
