//! EC2's `Filter.N` semantics, written once (`docs/spec/ec2.md` §B14): core's
//! [`ImageQuery`](crate::store::ImageQuery), the simulation and the server that
//! speaks for it all match through [`matches_all`].
//!
//! - several filters must all match (AND); several values of one filter
//!   match when any does (OR);
//! - values are patterns: `*` any run of characters, `?` any one, `\`
//!   escapes the next character;
//! - `tag:<key>` matches the value of tag `<key>`; `tag-key` matches a tag's
//!   key;
//! - a filter with no values asks only that the attribute exist (a tag with
//!   that key for `tag:<key>`, any tag for `tag-key`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// One EC2 filter: a name and the values it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// The filter's name, such as `name`, `state`, `tag:Owner` or `tag-key`.
    pub name: String,
    /// Patterns, any of which may match; none means "any value".
    pub values: Vec<String>,
}

/// What a filter asks of a resource: the resource answers for each filter
/// name it has.
pub trait Filterable {
    /// The resource's values for the (non-tag) filter `name`; an empty list
    /// when the resource has no such attribute.
    fn filter_values(&self, name: &str) -> Vec<String>;
    /// The resource's tags, as the caller sees them.
    fn tags(&self) -> &BTreeMap<String, String>;
}

impl Filter {
    /// A filter `name` accepting `values`.
    pub fn new(
        name: impl Into<String>,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Filter {
        Filter {
            name: name.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// The `tag:<key>` filter accepting `values`.
    pub fn tag(key: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
        Filter::new(format!("tag:{key}"), values)
    }

    /// Whether `resource` passes this filter.
    pub fn matches(&self, resource: &impl Filterable) -> bool {
        if self.name == "tag-key" {
            let keys = resource.tags().keys();
            return self.any_of(keys.map(String::as_str));
        }
        if let Some(key) = self.name.strip_prefix("tag:") {
            return tag_matches(key, &self.values, resource.tags());
        }
        let values = resource.filter_values(&self.name);
        self.any_of(values.iter().map(String::as_str))
    }

    /// Whether one of `texts` matches one of the values (any text, when
    /// there are no values).
    fn any_of<'t>(&self, mut texts: impl Iterator<Item = &'t str>) -> bool {
        texts.any(|text| self.values.is_empty() || self.values.iter().any(|p| glob(p, text)))
    }

    /// Whether the filter is one of `known` names or a tag filter.
    fn known(&self, known: &[&str]) -> bool {
        self.name == "tag-key"
            || self.name.starts_with("tag:")
            || known.contains(&self.name.as_str())
    }
}

/// Whether `tags` has `key` with a value matching one of `values` (any
/// value, when there are none): the `tag:<key>` filter.
pub fn tag_matches(key: &str, values: &[String], tags: &BTreeMap<String, String>) -> bool {
    tags.get(key)
        .is_some_and(|value| values.is_empty() || values.iter().any(|p| glob(p, value)))
}

/// Whether `resource` passes every filter.
pub fn matches_all(filters: &[Filter], resource: &impl Filterable) -> bool {
    filters.iter().all(|filter| filter.matches(resource))
}

/// Refuses a filter whose name is neither a tag filter nor one of `known`,
/// as EC2 does, rather than ignoring it.
pub fn check_names(filters: &[Filter], known: &[&str]) -> Result<()> {
    match filters.iter().find(|filter| !filter.known(known)) {
        Some(filter) => Err(Error::service(
            ErrorKind::InvalidInput,
            "InvalidParameterValue",
            format!("The filter '{}' is invalid", filter.name),
        )),
        None => Ok(()),
    }
}

/// EC2's filter patterns: `*` any run of characters, `?` any one, and `\`
/// takes the next character literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Char(char),
        One,
        Any,
    }
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            '*' => Token::Any,
            '?' => Token::One,
            c => Token::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::One) => {
                p += 1;
                t += 1;
            }
            Some(Token::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(Token::Any) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|token| *token == Token::Any)
}

/// Tags of a resource that has none.
static NO_TAGS: BTreeMap<String, String> = BTreeMap::new();

/// The filter names [`Image`](crate::store::Image) answers (beside tag filters).
pub const IMAGE_FILTERS: &[&str] = &["name", "state", "image-id", "owner-id", "is-public"];

/// The filter names [`Instance`](crate::store::Instance) answers.
pub const INSTANCE_FILTERS: &[&str] = &["instance-id", "image-id", "instance-state-name"];

/// The filter names [`Snapshot`](crate::store::Snapshot) answers.
pub const SNAPSHOT_FILTERS: &[&str] = &[
    "snapshot-id",
    "owner-id",
    "status",
    "encrypted",
    "kms-key-id",
];

impl Filterable for crate::store::Image {
    fn filter_values(&self, name: &str) -> Vec<String> {
        match name {
            "name" => vec![self.name.clone()],
            "state" => vec![self.state.to_string()],
            "image-id" => vec![self.id.to_string()],
            "owner-id" => vec![self.owner.to_string()],
            "is-public" => vec![self.public.to_string()],
            _ => Vec::new(),
        }
    }

    fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }
}

impl Filterable for crate::store::Instance {
    fn filter_values(&self, name: &str) -> Vec<String> {
        match name {
            "instance-id" => vec![self.id.to_string()],
            "image-id" => vec![self.image.to_string()],
            "instance-state-name" => vec![self.state.to_string()],
            _ => Vec::new(),
        }
    }

    fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }
}

impl Filterable for crate::store::Snapshot {
    fn filter_values(&self, name: &str) -> Vec<String> {
        match name {
            "snapshot-id" => vec![self.id.to_string()],
            "owner-id" => vec![self.owner.to_string()],
            "status" => vec![snapshot_status(self.state).to_owned()],
            "encrypted" => vec![self.encrypted.to_string()],
            "kms-key-id" => self.kms_key.iter().map(ToString::to_string).collect(),
            _ => Vec::new(),
        }
    }

    fn tags(&self) -> &BTreeMap<String, String> {
        &NO_TAGS
    }
}

/// EC2's name of a snapshot state, as `DescribeSnapshots` prints it.
pub fn snapshot_status(state: crate::store::SnapshotState) -> &'static str {
    match state {
        crate::store::SnapshotState::Pending => "pending",
        crate::store::SnapshotState::Completed => "completed",
        crate::store::SnapshotState::Error => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn patterns_match_like_ec2_filter_values() {
        for (pattern, text, expected) in [
            ("golden*", "golden-copy", true),
            ("*copy", "golden-copy", true),
            ("g?lden-*", "golden-copy", true),
            ("golden", "golden-copy", false),
            ("golden-copy", "golden-copy", true),
            ("*", "", true),
            ("?", "", false),
            ("a*b*c", "abxbc", true),
            ("a*b*c", "abxbd", false),
            (r"\*amazon\?\\", r"*amazon?\", true),
            (r"\*amazon", "xamazon", false),
            ("Golden*", "golden-copy", false),
        ] {
            assert_eq!(glob(pattern, text), expected, "{pattern} ~ {text}");
        }
    }
}
