//! Who acts, for the audit trail: an authenticated caller, or the platform itself.

use cmp_store::AuditContext;

use crate::auth::Caller;

tokio::task_local! {
    /// The id of the HTTP request being served: the `instance` of its problems, and the
    /// `request_id` of the audit events it causes.
    pub static REQUEST_ID: String;
}

/// The context of a change `caller` makes at `now_us` (microseconds since the epoch).
pub fn caller_context(caller: &Caller, now_us: i64) -> AuditContext {
    AuditContext {
        actor: caller.actor.clone(),
        request_id: REQUEST_ID.try_with(|id| id.clone()).ok(),
        now_us,
    }
}

/// The context of a change the platform makes by itself; `actor` names the part that acts,
/// e.g. `system:scheduler`.
pub fn system_context(actor: &str, now_us: i64) -> AuditContext {
    AuditContext { actor: actor.into(), request_id: None, now_us }
}
