//! Active alarms (NOSPACE, CORRUPT): replicated through Raft, persisted in
//! the backend, checked before writes.

use ballast_proto::etcdserverpb::{AlarmMember, AlarmType};
use parking_lot::RwLock;
use redb::{ReadableTable, WriteTransaction};

use crate::error::Result;
use crate::mvcc::backend::{Backend, ALARMS};

#[derive(Default)]
pub struct Alarms {
    active: RwLock<Vec<(u64, i32)>>,
}

impl Alarms {
    pub fn load(backend: &Backend) -> Result<Alarms> {
        let txn = backend.read()?;
        let t = txn.open_table(ALARMS)?;
        let mut active = Vec::new();
        for item in t.iter()? {
            let (k, _) = item?;
            active.push(k.value());
        }
        Ok(Alarms {
            active: RwLock::new(active),
        })
    }

    /// Re-reads the active alarms after the backend was replaced.
    pub fn reload(&self, backend: &Backend) -> Result<()> {
        let fresh = Alarms::load(backend)?;
        *self.active.write() = fresh.active.into_inner();
        Ok(())
    }

    pub fn nospace(&self) -> bool {
        self.active
            .read()
            .iter()
            .any(|(_, a)| *a == AlarmType::Nospace as i32)
    }

    pub fn any(&self) -> bool {
        !self.active.read().is_empty()
    }

    pub fn list(&self) -> Vec<AlarmMember> {
        self.active
            .read()
            .iter()
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Returns the alarm if it was newly raised.
    pub fn activate(
        &self,
        txn: &WriteTransaction,
        member: u64,
        alarm: i32,
    ) -> Result<Vec<(u64, i32)>> {
        if alarm == AlarmType::None as i32 {
            return Ok(Vec::new());
        }
        let mut active = self.active.write();
        if active.contains(&(member, alarm)) {
            return Ok(vec![(member, alarm)]);
        }
        txn.open_table(ALARMS)?.insert((member, alarm), ())?;
        active.push((member, alarm));
        Ok(vec![(member, alarm)])
    }

    /// Returns the alarm if it was active.
    pub fn deactivate(
        &self,
        txn: &WriteTransaction,
        member: u64,
        alarm: i32,
    ) -> Result<Vec<(u64, i32)>> {
        let mut active = self.active.write();
        let before = active.len();
        active.retain(|a| *a != (member, alarm));
        if active.len() == before {
            return Ok(Vec::new());
        }
        txn.open_table(ALARMS)?.remove((member, alarm))?;
        Ok(vec![(member, alarm)])
    }
}
