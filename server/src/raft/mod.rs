//! Consensus: the Raft node driver and its durable log.

pub mod wal;
