//! Reading manifests: files and directories, multi-document YAML, each
//! document with the line it starts on, and field paths resolved to lines.

use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use super::{Finding, Severity};

/// Why input could not be read (exit code 2).
#[derive(Debug, Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A document is not valid YAML.
    #[error("{path}:{line}:{column}: invalid YAML: {message}")]
    Yaml {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
}

/// A file's text.
#[derive(Clone, Debug)]
pub struct Source {
    /// Path as given.
    pub path: String,
    /// Content.
    pub text: String,
}

/// One YAML document of a Steward kind.
#[derive(Clone, Debug)]
pub struct Document {
    /// File path.
    pub path: String,
    /// Kind.
    pub kind: String,
    /// metadata.name.
    pub name: String,
    /// metadata.namespace.
    pub namespace: Option<String>,
    /// The document as JSON.
    pub value: Value,
    /// Its lines, for positions.
    lines: Vec<String>,
    /// 0-based line of its first line in the file.
    first_line: usize,
}

impl Document {
    /// A finding about `field` of this document.
    pub fn finding(&self, namespace: &str, severity: Severity, field: &str, reason: &str, message: &str) -> Finding {
        let (line, column) = self.position(field);
        Finding {
            file: self.path.clone(),
            line,
            column,
            severity,
            kind: self.kind.clone(),
            namespace: namespace.to_string(),
            name: self.name.clone(),
            field: field.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }

    /// 1-based line and column of `field` (a path such as
    /// `spec.grant.rules[0].verbs`), or of the deepest part found.
    pub fn position(&self, field: &str) -> (usize, usize) {
        let mut line = 0usize;
        let mut found = (self.first_line + 1, 1);
        // (line to search from, indent children must exceed, dash column of
        // the list item we are inside).
        let mut parent: Option<usize> = None;
        let mut item: Option<usize> = None;
        for seg in field.split('.') {
            let (key, index) = match seg.split_once('[') {
                Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (seg, None),
            };
            let Some((l, col)) = find_key(&self.lines, line, parent, item, key) else {
                return found;
            };
            line = l;
            parent = Some(col);
            item = None;
            found = (self.first_line + l + 1, col + 1);
            if let Some(i) = index {
                let Some((l, col)) = find_item(&self.lines, line, col, i) else {
                    return found;
                };
                found = (self.first_line + l + 1, col + 1);
                // Keys of the item start on the dash line, at `col`.
                line = l;
                parent = Some(col.saturating_sub(1));
                item = Some(col.saturating_sub(2));
            }
        }
        found
    }
}

fn indent_of(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

/// The line and column of `key:` from line `from` on, inside the block of
/// a parent whose children are indented more than `parent` (None: top
/// level). `item` is the dash column when the block is a list item, whose
/// first key sits on the dash line. Flow mappings on one line
/// (`{key: ...}`) are searched too.
fn find_key(
    lines: &[String],
    from: usize,
    parent: Option<usize>,
    item: Option<usize>,
    key: &str,
) -> Option<(usize, usize)> {
    let pattern = format!("{key}:");
    for (i, l) in lines.iter().enumerate().skip(from) {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let ind = indent_of(l);
        let body = t.strip_prefix("- ").unwrap_or(t);
        let col = ind + (t.len() - body.len());
        let own_line = i == from;
        if !own_line {
            if let Some(p) = parent
                && col <= p
            {
                return None;
            }
            if let Some(d) = item
                && ind == d
                && t.starts_with("- ")
            {
                return None;
            }
        }
        let on_own_line_allowed = item.is_some() || parent.is_none();
        if body.starts_with(&pattern) && (!own_line || on_own_line_allowed) {
            return Some((i, col));
        }
        if let Some(pos) = l.find(&pattern)
            && l[..pos].contains('{')
            && l[..pos].ends_with(['{', ' ', ','])
        {
            return Some((i, pos));
        }
    }
    None
}

/// The line of the `index`-th `- ` item of the list under the key at
/// (`from`, `key_col`).
fn find_item(lines: &[String], from: usize, key_col: usize, index: usize) -> Option<(usize, usize)> {
    let mut n = 0;
    let mut item_indent: Option<usize> = None;
    for (i, l) in lines.iter().enumerate().skip(from + 1) {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let ind = indent_of(l);
        if ind < key_col || (ind == key_col && !t.starts_with("- ")) {
            return None;
        }
        if t.starts_with("- ") && item_indent.is_none_or(|c| c == ind) {
            item_indent = Some(ind);
            if n == index {
                return Some((i, ind + 2));
            }
            n += 1;
        }
    }
    None
}

/// Files under the given paths: directories recursively (*.yaml, *.yml),
/// in a stable order.
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<Source>, LoadError> {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files)?;
    }
    files
        .into_iter()
        .map(|f| {
            let path = f.display().to_string();
            std::fs::read_to_string(&f)
                .map(|text| Source {
                    path: path.clone(),
                    text,
                })
                .map_err(|source| LoadError::Io { path, source })
        })
        .collect()
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: p.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(p).map_err(io)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            let is_yaml = e.extension().is_some_and(|x| x == "yaml" || x == "yml");
            if e.is_dir() || is_yaml {
                collect(&e, out)?;
            }
        }
    } else {
        out.push(p.to_path_buf());
    }
    Ok(())
}

/// The Steward documents of one file (other kinds are skipped).
pub fn documents(src: &Source) -> Result<Vec<Document>, LoadError> {
    let mut docs = Vec::new();
    let mut chunk: Vec<String> = Vec::new();
    let mut first = 0;
    let lines: Vec<&str> = src.text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let separator = l.starts_with("---") && (l.len() == 3 || l[3..].starts_with([' ', '\t']));
        if separator || *l == "..." {
            push(src, &chunk, first, &mut docs)?;
            chunk.clear();
            first = i + 1;
        } else {
            chunk.push((*l).to_string());
        }
    }
    push(src, &chunk, first, &mut docs)?;
    Ok(docs)
}

/// Deepest nesting of `[...]`/`{...}` accepted. No Steward object comes
/// close; the YAML parser reads a whole deeply nested document before its
/// own recursion limit refuses it, which took seconds for 100,000 levels.
const MAX_FLOW_DEPTH: usize = 64;

/// Where flow nesting first exceeds `MAX_FLOW_DEPTH` (1-based line and
/// column), scanning outside quotes and comments; linear in the text.
fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    for (i, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        for (col, c) in line.chars().enumerate() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') if previous.is_whitespace() => break,
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some((i + 1, col + 1));
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            previous = c;
        }
    }
    None
}

fn push(src: &Source, chunk: &[String], first: usize, out: &mut Vec<Document>) -> Result<(), LoadError> {
    let text = chunk.join("\n");
    if text.trim().is_empty() {
        return Ok(());
    }
    if let Some((line, column)) = too_deep(&text) {
        return Err(LoadError::Yaml {
            path: src.path.clone(),
            line: first + line,
            column,
            message: format!("flow collections nested deeper than {MAX_FLOW_DEPTH} levels"),
        });
    }
    let value: Value = serde_yaml_ng::from_str(&text).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
        LoadError::Yaml {
            path: src.path.clone(),
            line: first + line,
            column,
            message: e.to_string().lines().next().unwrap_or_default().to_string(),
        }
    })?;
    let api = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    if !api.starts_with("steward.dev/") || !matches!(kind, "ControlOwnership" | "PolicyException") {
        return Ok(());
    }
    out.push(Document {
        path: src.path.clone(),
        kind: kind.to_string(),
        name: value["metadata"]["name"].as_str().unwrap_or("(unnamed)").to_string(),
        namespace: value["metadata"]["namespace"].as_str().map(str::to_string),
        lines: chunk.to_vec(),
        first_line: first,
        value,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: String) -> Result<Vec<Document>, LoadError> {
        documents(&Source {
            path: "t.yaml".into(),
            text,
        })
    }

    #[test]
    fn deep_flow_nesting_is_refused_at_once_with_its_position() {
        let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        let err = load(deep).expect_err("refused");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(
            err.to_string().contains("t.yaml:1:68") && err.to_string().contains("nested deeper"),
            "{err}"
        );
    }

    #[test]
    fn what_only_looks_deep_is_not() {
        // (case, text, the scan says too deep?)
        let cases = [
            (
                "at the limit",
                format!("a: {}{}", "[".repeat(64), "]".repeat(64)),
                false,
            ),
            ("over it", format!("a: {}{}", "[".repeat(65), "]".repeat(65)), true),
            ("in quotes", format!("a: \"{}\"", "[".repeat(100)), false),
            ("in single quotes", format!("a: '{}'", "{".repeat(100)), false),
            ("in a comment", format!("a: 1 # {}", "[".repeat(100)), false),
            ("siblings, not nesting", format!("a: [{}]", "[1],".repeat(100)), false),
        ];
        for (case, text, deep) in cases {
            assert_eq!(too_deep(&text).is_some(), deep, "{case}");
        }
    }
}
