//! Server configuration: etcd's flags, `ETCD_*` variables and `--config-file`.
