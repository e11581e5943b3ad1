//! The key only Steward holds, the digest of what an approval covers, and
//! the signature that makes a record Steward's own: a record written while
//! the webhook was not called, copied from another exception, or edited by
//! hand does not verify.

use std::sync::Arc;

use ring::{digest, hmac};

use crate::api::PolicyException;
use crate::api::approval::{Record, Via};

/// The HMAC-SHA256 key that signs approval records, and the key it
/// replaced, if a rotation is under way: what that one signed still
/// verifies, and nothing new is signed with it. Cloning shares the keys
/// (352 bytes inline otherwise): every waiting decision holds a clone.
#[derive(Clone)]
pub struct Key {
    signing: Arc<hmac::Key>,
    replaced: Option<Arc<hmac::Key>>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;

impl Key {
    /// A key from its secret bytes; `None` when shorter than [`MIN_KEY_LEN`].
    pub fn new(secret: &[u8]) -> Option<Self> {
        (secret.len() >= MIN_KEY_LEN).then(|| Key {
            signing: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret)),
            replaced: None,
        })
    }

    /// This key, also verifying the records that the key it replaced
    /// (`secret`) signed, so a rotation takes no approval away; `None` when
    /// `secret` is shorter than [`MIN_KEY_LEN`].
    pub fn replacing(self, secret: &[u8]) -> Option<Self> {
        let replaced = Key::new(secret)?;
        Some(Key {
            replaced: Some(replaced.signing),
            ..self
        })
    }

    /// Signs `record` (its `sig` ignored) for the exception `ns`/`name`.
    pub fn sign(&self, ns: &str, name: &str, record: &Record) -> String {
        hex(hmac::sign(&self.signing, &signed_bytes(ns, name, record)).as_ref())
    }

    /// Whether `record.sig` is this key's signature of it for `ns`/`name`,
    /// or the replaced key's.
    pub fn verifies(&self, ns: &str, name: &str, record: &Record) -> bool {
        let Some(sig) = unhex(&record.sig) else {
            return false;
        };
        let bytes = signed_bytes(ns, name, record);
        std::iter::once(&self.signing)
            .chain(&self.replaced)
            .any(|key| hmac::verify(key, &bytes, &sig).is_ok())
    }
}

/// Every field but the signature, unambiguously: JSON of a fixed tuple.
fn signed_bytes(ns: &str, name: &str, r: &Record) -> Vec<u8> {
    let tuple = (
        "steward.dev/approval-record/v1",
        ns,
        name,
        &r.user,
        &r.groups,
        r.via.as_str(),
        &r.digest,
        &r.at,
        r.whole,
    );
    // Serializing strings and a list of strings cannot fail.
    serde_json::to_vec(&tuple).unwrap_or_default()
}

/// The digest of what an approval covers: the exception's namespace and
/// name, its control, ticket, window, grant and tolerations, and the
/// approver it names (through a trusted applier, the reviewer Git named). Any change to
/// one of them gives another digest, so an approval of the old content no
/// longer counts.
pub fn digest(pe: &PolicyException) -> String {
    let s = &pe.spec;
    let covered = serde_json::json!({
        "namespace": pe.metadata.namespace,
        "name": pe.metadata.name,
        "control": s.control,
        "approver": s.approver,
        "ticket": s.ticket,
        "startsAt": s.starts_at,
        "expiresAt": s.expires_at,
        "grant": s.grant,
        "tolerate": s.tolerate,
    });
    // serde_json's maps are sorted by key: the same content, the same bytes.
    let bytes = serde_json::to_vec(&covered).unwrap_or_default();
    format!("sha256:{}", hex(digest::digest(&digest::SHA256, &bytes).as_ref()))
}

/// A signed record of `user` (with `groups`) acting `via` on the content
/// with `digest` of the exception `(namespace, name)`, at `at`. (A request
/// record of a writer of the whole content: [`request_record`].)
pub fn record(
    key: &Key,
    (ns, name): (&str, &str),
    user: &str,
    groups: Vec<String>,
    via: Via,
    digest: &str,
    at: &str,
) -> Record {
    let mut r = Record {
        user: user.to_string(),
        groups,
        via,
        digest: digest.to_string(),
        whole: false,
        at: at.to_string(),
        sig: String::new(),
    };
    r.sig = key.sign(ns, name, &r);
    r
}

/// A signed request record; `whole`: the writer wrote all of the content.
pub fn request_record(
    key: &Key,
    (ns, name): (&str, &str),
    user: &str,
    groups: Vec<String>,
    whole: bool,
    digest: &str,
    at: &str,
) -> Record {
    let mut r = record(key, (ns, name), user, groups, Via::Request, digest, at);
    r.whole = whole;
    r.sig = key.sign(ns, name, &r);
    r
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A record of alice approving `shop/debug`, signed with `key`: for tests
/// of which keys verify what.
#[cfg(test)]
pub(crate) fn sample_record(key: &Key) -> Record {
    record(
        key,
        ("shop", "debug"),
        "alice",
        vec![],
        Via::Approver,
        "sha256:ab",
        "2026-11-28T00:00:00Z",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every waiting decision holds a clone: a clone must not copy the
    /// keys (352 bytes inline, ten thousand clones after a restart).
    #[test]
    fn clones_share_the_keys() {
        let k = key(1).replacing(&[2; MIN_KEY_LEN]).unwrap_or_else(|| key(3));
        assert!(std::mem::size_of_val(&k) <= 2 * std::mem::size_of::<usize>());
        let c = k.clone();
        assert!(Arc::ptr_eq(&k.signing, &c.signing));
    }
    use crate::decide::fixtures::exception;

    fn key(b: u8) -> Key {
        Key::new(&[b; 32]).expect("key")
    }

    type Edit<T> = Box<dyn Fn(&mut T)>;

    #[test]
    fn after_a_rotation_the_replaced_key_verifies_and_only_the_new_one_signs() {
        let old = key(1);
        let rotated = key(2).replacing(&[1; 32]).expect("rotated");
        let (before, after) = (sample_record(&old), sample_record(&rotated));
        assert!(rotated.verifies("shop", "debug", &before), "signed before the rotation");
        assert!(rotated.verifies("shop", "debug", &after));
        assert!(key(2).verifies("shop", "debug", &after), "signed with the new key");
        assert!(!old.verifies("shop", "debug", &after), "signed with the replaced key");
        assert!(
            !key(2).verifies("shop", "debug", &before),
            "the replaced key dropped, its records still verify"
        );
        assert!(
            !rotated.verifies("shop", "other", &before),
            "copied to another exception"
        );
        assert!(key(2).replacing(&[1; 31]).is_none(), "a replaced key too short");
    }

    #[test]
    fn a_record_verifies_only_with_its_key_for_its_exception_unchanged() {
        let k = key(1);
        let r = record(
            &k,
            ("shop", "debug"),
            "alice",
            vec!["leads".into()],
            Via::Approver,
            "sha256:ab",
            "2026-11-28T00:00:00Z",
        );
        assert!(k.verifies("shop", "debug", &r));
        assert!(!key(2).verifies("shop", "debug", &r), "another key");
        assert!(!k.verifies("shop", "other", &r), "copied to another exception");
        assert!(!k.verifies("other", "debug", &r), "copied to another namespace");
        let edits: Vec<Edit<Record>> = vec![
            Box::new(|r| r.user = "mallory".into()),
            Box::new(|r| r.groups.push("admins".into())),
            Box::new(|r| r.via = Via::TrustedApplier),
            Box::new(|r| r.digest = "sha256:cd".into()),
            Box::new(|r| r.at = "2026-11-29T00:00:00Z".into()),
            Box::new(|r| r.whole = true),
            Box::new(|r| r.sig = "zz".into()),
            Box::new(|r| r.sig = String::new()),
            Box::new(|r| r.sig.truncate(10)),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut forged = r.clone();
            edit(&mut forged);
            assert!(!k.verifies("shop", "debug", &forged), "edit {i} verified");
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Key::new(&[0; 31]).is_none());
        assert!(Key::new(&[0; 32]).is_some());
    }

    #[test]
    fn the_digest_covers_exactly_what_an_approval_approves() {
        let pe = exception();
        let d = digest(&pe);
        let same: Vec<Edit<PolicyException>> = vec![
            Box::new(|p| p.spec.reason = "another reason".into()),
            Box::new(|p| p.spec.requester = Some("dan@example.com".into())),
            Box::new(|p| p.spec.policies.clear()),
            Box::new(|p| p.metadata.labels = Some([("a".to_string(), "b".to_string())].into())),
            Box::new(|p| p.status = None),
        ];
        for (i, change) in same.iter().enumerate() {
            let mut p = pe.clone();
            change(&mut p);
            assert_eq!(digest(&p), d, "change {i} voided the approval");
        }
        let covered: Vec<Edit<PolicyException>> = vec![
            Box::new(|p| p.spec.control = "other".into()),
            Box::new(|p| p.spec.approver = "bob@example.com".into()),
            Box::new(|p| p.spec.ticket = "SEC-2".into()),
            Box::new(|p| p.spec.starts_at = Some("2026-11-28T11:00:00Z".into())),
            Box::new(|p| p.spec.expires_at = "2026-11-29T11:00:00Z".into()),
            Box::new(|p| p.spec.grant = None),
            Box::new(|p| {
                if let Some(g) = &mut p.spec.grant {
                    g.rules[0].verbs.push("list".into());
                }
            }),
            Box::new(|p| {
                if let Some(g) = &mut p.spec.grant {
                    g.service_account = "worker".into();
                }
            }),
            Box::new(|p| p.spec.tolerate.clear()),
            Box::new(|p| p.metadata.name = Some("other".into())),
            Box::new(|p| p.metadata.namespace = Some("other".into())),
        ];
        for (i, change) in covered.iter().enumerate() {
            let mut p = pe.clone();
            change(&mut p);
            assert_ne!(digest(&p), d, "change {i} kept the approval");
        }
    }
}
