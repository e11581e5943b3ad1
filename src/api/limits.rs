//! Size limits of the fields the CRDs bound with `maxLength`/`maxItems`. The
//! schema (and so the API server) and `decide::validate` (and so `steward
//! validate`, offline) read the same numbers.

/// A team name (owner, backup owner) or a person (approver, requester).
pub const NAME: usize = 256;
/// The name of a ControlOwnership an exception refers to (a Kubernetes name).
pub const OBJECT_NAME: usize = 253;
/// A ticket reference.
pub const TICKET: usize = 128;
/// One sentence of prose: a task or a reason.
pub const SENTENCE: usize = 1024;
/// An RFC 3339 timestamp.
pub const TIMESTAMP: usize = 64;
/// Workload identities of one control.
pub const IDENTITIES: usize = 100;
