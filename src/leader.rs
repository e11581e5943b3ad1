//! Leader election on a `coordination.k8s.io/v1` Lease, through
//! kube-lease-manager (maintained, built on kube 5, renews with server-side
//! apply). Only the leader runs the controllers. Losing the lease ends the
//! work at once: the caller exits, so a deposed leader never writes again,
//! and the Deployment restarts it as a candidate.

use std::future::Future;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use thiserror::Error;

/// Where and how long the lease is held.
#[derive(Clone, Debug)]
pub struct Election {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This process's identity (the pod name in a Deployment).
    pub identity: String,
    /// Lease duration in seconds; a dead leader is replaced after at most this.
    pub duration_seconds: u64,
}

/// Why leading stopped.
#[derive(Debug, Error)]
pub enum LeaderError {
    /// The lease could not be set up.
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    /// Another process holds the lease now.
    #[error("lost the lease {0}; stopping so that only the new leader writes")]
    Lost(String),
    /// The lease task ended.
    #[error("the lease task ended")]
    Ended,
}

/// Waits for the lease, calls `on_elected`, then runs `work` while the lease
/// is held. Returns `Err(Lost)` the moment the lease is lost.
pub async fn lead<W, F>(client: Client, election: Election, on_elected: F, work: W) -> Result<(), LeaderError>
where
    W: Future<Output = ()>,
    F: FnOnce(),
{
    // Renew a third of the duration before expiry, so one slow renewal does
    // not lose the lease.
    let grace = (election.duration_seconds / 3).max(1);
    let manager = LeaseManagerBuilder::new(client, &election.name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(election.duration_seconds)
        .with_grace(grace)
        // One field manager per candidate: taking a free lease is a
        // server-side apply of holderIdentity, and only a different
        // manager makes a concurrent candidate's apply conflict. A shared
        // manager let two replicas that started together both lead.
        .with_field_manager(format!("{}-lease-{}", crate::apply::FIELD_MANAGER, election.identity))
        .build()
        .await?;
    let (mut leading, _task) = manager.watch().await;
    tracing::info!(lease = %election.name, identity = %election.identity, "waiting for the lease");
    if leading.wait_for(|l| *l).await.is_err() {
        return Err(LeaderError::Ended);
    }
    tracing::info!(lease = %election.name, identity = %election.identity, "leading");
    on_elected();
    tokio::select! {
        _ = work => Ok(()),
        _ = leading.wait_for(|l| !*l) => Err(LeaderError::Lost(election.name.clone())),
    }
}

/// Competes for every shard's Lease (`<name>-shard-<i>` for shard i) and
/// records each one taken in `held`. Never returns while every shard taken
/// is still held; returns `Err(Lost)` the moment one is lost, so the
/// process stops before the new holder writes there.
///
/// A replica stands first for its preferred shard (the hash of its identity)
/// and joins the race for each other one `stagger` later per step away from
/// it, so replicas started together spread over the shards instead of the
/// fastest taking all of them. Once in the race, it takes over a dead
/// holder's shard when that Lease runs out, like any candidate.
pub async fn hold_shards(
    client: Client,
    election: Election,
    held: std::sync::Arc<crate::shard::Held>,
    on_acquired: impl Fn(u32) + Send + Sync + 'static,
) -> Result<(), LeaderError> {
    let shards = held.shards();
    let preferred = crate::shard::shard_of(&election.identity, shards);
    let stagger = std::time::Duration::from_millis(election.duration_seconds.saturating_mul(500));
    let on_acquired = std::sync::Arc::new(on_acquired);
    let mut candidates = tokio::task::JoinSet::new();
    for shard in 0..shards {
        let steps = (shard + shards - preferred) % shards;
        let (client, held, on_acquired) = (client.clone(), held.clone(), on_acquired.clone());
        let election = Election {
            name: format!("{}-shard-{shard}", election.name),
            ..election.clone()
        };
        candidates.spawn(async move {
            tokio::time::sleep(stagger * steps).await;
            let acquired = || {
                held.acquire(shard);
                on_acquired(shard);
            };
            lead(client, election, acquired, std::future::pending::<()>()).await
        });
    }
    match candidates.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(_)) | None => Err(LeaderError::Ended),
    }
}
