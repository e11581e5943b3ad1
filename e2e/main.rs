//! End-to-end tests against a real kube-apiserver with RBAC on, the
//! controller running as its own identity with the RBAC from `config/`.

mod admission;
mod api_rules;
mod approvals;
mod caches;
mod exceptions;
mod faults;
mod foundation;
mod harness;
mod helm;
mod hostile;
mod install;
mod kstatus;
mod ownership;
mod plugin;
mod sharding;
mod status;
