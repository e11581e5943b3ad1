//! The approval signing key: a Secret in the controller's own namespace,
//! created by the first replica to start and read by every other. Only
//! Steward's service account may read it (its Role names the Secret); whoever
//! could read it could forge approvals, so nothing else should.
//!
//! Rotating: delete the Secret and restart every replica. Approvals signed
//! with the old key stop counting, so exceptions wait for approval again.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use thiserror::Error;

use crate::decide::approval::{Key, MIN_KEY_LEN};

/// The data key inside the Secret.
pub const DATA_KEY: &str = "key";

/// Why the key could not be had.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Reading or creating the Secret failed.
    #[error("approval key Secret {0}/{1}")]
    Api(String, String, #[source] kube::Error),
    /// The Secret exists but holds no usable key.
    #[error("approval key Secret {0}/{1} has no data.{DATA_KEY} of at least {MIN_KEY_LEN} bytes")]
    Unusable(String, String),
    /// No randomness for a new key.
    #[error("no random bytes for a new approval key")]
    Random,
}

/// Reads the key from `ns`/`name`, creating the Secret with a fresh random
/// key when it does not exist yet (a replica racing to do the same wins or
/// loses cleanly: the loser reads the winner's).
pub async fn load_or_create(client: kube::Client, ns: &str, name: &str) -> Result<Key, KeyError> {
    let api: Api<Secret> = Api::namespaced(client, ns);
    let err = |e| KeyError::Api(ns.to_string(), name.to_string(), e);
    if let Some(secret) = api.get_opt(name).await.map_err(err)? {
        return key_of(&secret, ns, name);
    }
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| KeyError::Random)?;
    let secret: Secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            labels: Some([("app.kubernetes.io/name".to_string(), "steward".to_string())].into()),
            ..Default::default()
        },
        data: Some([(DATA_KEY.to_string(), ByteString(bytes.to_vec()))].into()),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(created) => {
            tracing::info!(namespace = ns, name, "created the approval signing key");
            key_of(&created, ns, name)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let secret = api.get(name).await.map_err(err)?;
            key_of(&secret, ns, name)
        }
        Err(e) => Err(err(e)),
    }
}

fn key_of(secret: &Secret, ns: &str, name: &str) -> Result<Key, KeyError> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .and_then(|b| Key::new(&b.0))
        .ok_or_else(|| KeyError::Unusable(ns.to_string(), name.to_string()))
}
