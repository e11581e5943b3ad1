//! The approval signing key: a Secret in the controller's own namespace,
//! created by the first replica to start and read by every other. Only
//! Steward's service account may read it (its Role names the Secret); whoever
//! could read it could forge approvals, so nothing else should.
//!
//! Rotating (README): the key moves to `data.previous`, a new one goes in
//! `data.key`, and every replica restarts. Records are then signed with the
//! new key, and those the previous key signed still verify, so no approval
//! is lost. Removing `previous` (once every exception it approved has
//! ended, or at once if it leaked) makes its records stop counting.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use thiserror::Error;

use crate::decide::approval::{Key, MIN_KEY_LEN};

/// The data key inside the Secret.
pub const DATA_KEY: &str = "key";

/// The data key of the key a rotation replaced (optional).
pub const PREVIOUS_DATA_KEY: &str = "previous";

/// Why the key could not be had.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Reading or creating the Secret failed.
    #[error("approval key Secret {0}/{1}")]
    Api(String, String, #[source] kube::Error),
    /// The Secret exists but holds no usable key.
    #[error("approval key Secret {0}/{1} has no data.{DATA_KEY} of at least {MIN_KEY_LEN} bytes")]
    Unusable(String, String),
    /// The Secret holds a replaced key too short to be one.
    #[error(
        "approval key Secret {0}/{1}: data.{PREVIOUS_DATA_KEY} is shorter than {MIN_KEY_LEN} bytes; restore the replaced key there, or remove it"
    )]
    UnusablePrevious(String, String),
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

/// The key in `secret`, verifying also what the key it replaced signed when
/// the Secret still holds that one. A malformed replaced key is an error,
/// not ignored: ignoring it would take every approval it signed away.
fn key_of(secret: &Secret, ns: &str, name: &str) -> Result<Key, KeyError> {
    let data = secret.data.as_ref();
    let key = data
        .and_then(|d| d.get(DATA_KEY))
        .and_then(|b| Key::new(&b.0))
        .ok_or_else(|| KeyError::Unusable(ns.to_string(), name.to_string()))?;
    match data.and_then(|d| d.get(PREVIOUS_DATA_KEY)) {
        None => Ok(key),
        Some(previous) => key
            .replacing(&previous.0)
            .ok_or_else(|| KeyError::UnusablePrevious(ns.to_string(), name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::approval::sample_record as signed_by;

    /// A Secret's data entries.
    type Entries<'a> = &'a [(&'a str, &'a [u8])];

    fn secret(entries: Entries<'_>) -> Secret {
        Secret {
            data: Some(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn a_rotated_secret_signs_with_its_key_and_still_verifies_the_previous_one() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let before = signed_by(&Key::new(&old).expect("key"));
        let rotated = key_of(&secret(&[(DATA_KEY, &new), (PREVIOUS_DATA_KEY, &old)]), "ns", "s").expect("rotated");
        assert!(rotated.verifies("shop", "debug", &before));
        let after = signed_by(&rotated);
        assert!(Key::new(&new).expect("key").verifies("shop", "debug", &after));
        assert!(!Key::new(&old).expect("key").verifies("shop", "debug", &after));
        let only_new = key_of(&secret(&[(DATA_KEY, &new)]), "ns", "s").expect("new");
        assert!(!only_new.verifies("shop", "debug", &before), "previous removed");
    }

    #[test]
    fn a_secret_without_a_usable_key_or_previous_key_is_refused_with_what_to_fix() {
        let cases: [(Entries<'_>, &str); 4] = [
            (&[], "no data.key"),
            (&[(DATA_KEY, &[1; 31])], "no data.key"),
            (&[(PREVIOUS_DATA_KEY, &[1; 32])], "no data.key"),
            (
                &[(DATA_KEY, &[1; 32]), (PREVIOUS_DATA_KEY, &[2; 31])],
                "data.previous is shorter",
            ),
        ];
        for (entries, says) in cases {
            let err = key_of(&secret(entries), "steward-system", "steward-approval-key")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(says), "{entries:?}: {err}");
            assert!(err.contains("steward-system/steward-approval-key"), "{err}");
        }
    }
}
