//! `etcd_mvcc_{range,put,delete,txn}_total`, counted the way etcd counts
//! them: per operation on one storage transaction, and one txn whenever a
//! storage transaction did more than one operation (so a put with
//! `--prev-kv`, which reads the key first, is a range, a put and a txn).
//! Writes are counted when applied, on every member; reads on the member
//! that serves them.

use super::Metrics;

/// Operations done on one storage transaction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpCounts {
    pub ranges: u64,
    pub puts: u64,
    pub deletes: u64,
}

impl OpCounts {
    /// Adds this transaction's operations to the counters.
    pub fn record(self, m: &Metrics) {
        m.range_total.inc_by(self.ranges);
        m.put_total.inc_by(self.puts);
        m.delete_total.inc_by(self.deletes);
        if self.ranges + self.puts + self.deletes > 1 {
            m.txn_total.inc();
        }
    }

    /// A read-only transaction: no puts, no deletes.
    pub fn read_only(self) -> bool {
        self.puts == 0 && self.deletes == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(m: &Metrics, name: &str) -> String {
        m.encode()
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn more_than_one_operation_is_a_txn() {
        let m = Metrics::default();
        OpCounts {
            puts: 1,
            ..Default::default()
        }
        .record(&m);
        assert_eq!(value(&m, "etcd_mvcc_txn_total"), "etcd_mvcc_txn_total 0");
        OpCounts {
            ranges: 1,
            puts: 1,
            deletes: 0,
        }
        .record(&m);
        assert_eq!(value(&m, "etcd_mvcc_put_total"), "etcd_mvcc_put_total 2");
        assert_eq!(
            value(&m, "etcd_mvcc_range_total"),
            "etcd_mvcc_range_total 1"
        );
        assert_eq!(value(&m, "etcd_mvcc_txn_total"), "etcd_mvcc_txn_total 1");
    }
}
