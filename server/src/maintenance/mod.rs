//! `ballast defrag`: scheduled defragmentation of a whole cluster, as a Kubernetes CronJob
//! runs it.
//!
//! Defragmenting a member blocks it while its database is rewritten, so operators do it
//! by hand one member at a time, followers first and the leader last (a leader that stalls
//! costs an election). Doing it on a cluster that is already degraded can tip it over, so
//! the command first checks that every member answers, none reports errors (alarms) and
//! all agree on one leader; if not, it does nothing and leaves the work to the next
//! scheduled run. The decision is the pure function [`plan::plan`], the network side is
//! [`defrag`], the command line [`cli`].

pub mod cli;
pub mod defrag;
pub mod plan;
