//! Routine upkeep the operator schedules (`spec.maintenance`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scheduled upkeep of the members.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceSpec {
    /// Defragmentation: gives the space freed by compaction back to the filesystem. Each
    /// member is defragmented in turn (it blocks while it runs), the leader last; a run
    /// while any member is down or without a leader does nothing and waits for the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defrag: Option<DefragSpec>,
}

/// When to defragment.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefragSpec {
    /// Cron schedule (five fields, UTC), e.g. `0 3 * * 0` (Sundays at 03:00).
    #[schemars(length(max = 128), extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^ *[^ ]+( +[^ ]+){4} *$')",
        "message": "maintenance.defrag.schedule must be a cron schedule of five fields (minute hour day-of-month month day-of-week), e.g. '0 3 * * 0'"
    }]))]
    pub schedule: String,
    /// Stops scheduling new runs.
    #[serde(default)]
    pub suspend: bool,
}

/// The last scheduled defragmentation.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefragStatus {
    /// When the last run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<Time>,
    /// The Job of that run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Whether it ended well (a run that found the cluster unhealthy and did nothing did).
    #[serde(default)]
    pub succeeded: bool,
    /// What `ballast defrag` reported: each member's size before and after, why it skipped,
    /// or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
