//! The CustomResourceDefinitions, generated from the types in `api`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::api::{ControlOwnership, PolicyException};

/// Both CRDs, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![ControlOwnership::crd(), PolicyException::crd()]
}

/// The file name under `crds/` for a CRD.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// One CRD as YAML.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(crd)
}

/// All CRDs as one multi-document YAML stream.
pub fn all_yaml() -> Result<String, serde_yaml_ng::Error> {
    let docs = all().iter().map(to_yaml).collect::<Result<Vec<_>, _>>()?;
    Ok(docs.join("---\n"))
}

/// Writes each CRD to `dir/<name>.yaml`.
pub fn write_dir(dir: &std::path::Path) -> std::io::Result<()> {
    for crd in all() {
        let yaml = to_yaml(&crd).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(file_name(&crd)), yaml)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed CRDs, and the Helm chart's copies, are exactly the
    /// generated ones: run `make crds` after changing a type.
    #[test]
    fn committed_crds_match_generated() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for crd in all() {
            for dir in [repo.join("crds"), repo.join("charts/steward/crds")] {
                let path = dir.join(file_name(&crd));
                let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(
                    committed,
                    to_yaml(&crd).unwrap(),
                    "{} is stale: run `make crds`",
                    path.display()
                );
            }
        }
    }

    /// Every schema property has a description, so `kubectl explain` helps.
    #[test]
    fn every_field_is_described() {
        fn walk(v: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
            if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
                for (k, child) in props {
                    let p = format!("{path}.{k}");
                    if child.get("description").is_none() {
                        missing.push(p.clone());
                    }
                    walk(child, &p, missing);
                }
            }
            if let Some(items) = v.get("items") {
                walk(items, &format!("{path}[]"), missing);
            }
        }
        let mut missing = Vec::new();
        for crd in all() {
            let v = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
            walk(&v["openAPIV3Schema"], &crd.spec.names.kind, &mut missing);
        }
        assert!(missing.is_empty(), "fields without description: {missing:?}");
    }
}
