//! The policy document model.
//!
//! The model is lossless: parsing and serializing a valid policy gives back the
//! same JSON, including single-string versus list forms, unknown keys and the
//! key order of statements that were not changed. That is what lets amishare
//! edit a customer's key policy without rewriting statements it does not own.

use std::borrow::Borrow;
use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Condition block: `operator -> { key -> value | [values] }`.
///
/// Kept as raw JSON so values stay exactly as written (strings, bools or
/// numbers).
pub type Conditions = Map<String, Value>;

/// Whether a statement grants or refuses access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `"Allow"`.
    Allow,
    /// `"Deny"`: wins over every allow.
    Deny,
}

impl Effect {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value written either as a single item or as a list.
///
/// The form is kept so that `"Action": "kms:*"` is not rewritten as
/// `"Action": ["kms:*"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// Written as a single item.
    One(T),
    /// Written as a list (possibly of one item).
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The items, whatever the form.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(item) => std::slice::from_ref(item),
            OneOrMany::Many(items) => items,
        }
    }

    /// Iterates over the items, whatever the form.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// True for an empty list.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// True if one of the items equals `item`.
    pub fn contains<Q>(&self, item: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: PartialEq + ?Sized,
    {
        self.iter().any(|it| it.borrow() == item)
    }

    /// The items as a vector.
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(item) => vec![item],
            OneOrMany::Many(items) => items,
        }
    }
}

impl<T> From<Vec<T>> for OneOrMany<T> {
    /// One item becomes the single form (as the console writes it), anything
    /// else a list.
    fn from(mut items: Vec<T>) -> Self {
        if items.len() == 1 {
            if let Some(item) = items.pop() {
                return OneOrMany::One(item);
            }
        }
        OneOrMany::Many(items)
    }
}

impl<'a, T> IntoIterator for &'a OneOrMany<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The `Principal` / `NotPrincipal` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `"*"`: everyone.
    Any,
    /// `{"AWS": "..." | [...], "Service": ..., ...}`, kept as written.
    Map(Map<String, Value>),
}

impl Principal {
    /// The `AWS` entries; `["*"]` for [`Principal::Any`].
    pub fn aws(&self) -> Vec<&str> {
        self.entries("AWS")
    }

    /// The `AWS` entries as [`Principal::aws`] lists them, without
    /// collecting them.
    pub(crate) fn aws_iter(&self) -> impl Iterator<Item = &str> {
        let (single, list): (Option<&str>, &[Value]) = match self {
            Principal::Any => (Some("*"), &[]),
            // A principal names one or two kinds: a scan beats hashing.
            Principal::Map(map) => match map.iter().find(|(kind, _)| *kind == "AWS") {
                Some((_, Value::String(s))) => (Some(s.as_str()), &[]),
                Some((_, Value::Array(items))) => (None, items.as_slice()),
                _ => (None, &[]),
            },
        };
        single
            .into_iter()
            .chain(list.iter().filter_map(Value::as_str))
    }

    /// The `Service` entries (never matched by a caller of amishare).
    pub fn services(&self) -> Vec<&str> {
        self.entries("Service")
    }

    /// `{"AWS": ...}` with a single string for one entry and a list otherwise.
    pub fn from_aws(entries: Vec<String>) -> Principal {
        let value = match OneOrMany::from(entries) {
            OneOrMany::One(one) => Value::String(one),
            OneOrMany::Many(many) => Value::Array(many.into_iter().map(Value::String).collect()),
        };
        let mut map = Map::new();
        map.insert("AWS".to_owned(), value);
        Principal::Map(map)
    }

    fn entries(&self, key: &str) -> Vec<&str> {
        match self {
            Principal::Any => vec!["*"],
            Principal::Map(map) => match map.get(key) {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            },
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Principal::Any => Value::String("*".to_owned()),
            Principal::Map(map) => Value::Object(map.clone()),
        }
    }
}

impl Serialize for Principal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Field::Principal(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        principal_from_value(value, "Principal").map_err(de::Error::custom)
    }
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// `"Sid"`: amishare identifies its own statements by it.
    pub sid: Option<String>,
    /// `"Effect"`.
    pub effect: Effect,
    /// `"Principal"` (key policies; absent in IAM policies).
    pub principal: Option<Principal>,
    /// `"NotPrincipal"`.
    pub not_principal: Option<Principal>,
    /// `"Action"`.
    pub action: Option<OneOrMany<String>>,
    /// `"NotAction"`.
    pub not_action: Option<OneOrMany<String>>,
    /// `"Resource"` (always `"*"` in key policies).
    pub resource: Option<OneOrMany<String>>,
    /// `"NotResource"`.
    pub not_resource: Option<OneOrMany<String>>,
    /// `"Condition"`.
    pub condition: Option<Conditions>,
    /// Unknown statement keys, kept in order so they survive a round trip.
    pub extra: Map<String, Value>,
}

impl Statement {
    /// An empty statement with this effect, to be filled in field by field.
    pub fn new(effect: Effect) -> Statement {
        Statement {
            sid: None,
            effect,
            principal: None,
            not_principal: None,
            action: None,
            not_action: None,
            resource: None,
            not_resource: None,
            condition: None,
            extra: Map::new(),
        }
    }

    pub(crate) fn to_map(&self, remembered: Option<&[String]>) -> Map<String, Value> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        if let Some(sid) = &self.sid {
            entries.push(("Sid".to_owned(), Value::String(sid.clone())));
        }
        entries.push((
            "Effect".to_owned(),
            Value::String(self.effect.as_str().to_owned()),
        ));
        if let Some(p) = &self.principal {
            entries.push(("Principal".to_owned(), p.to_value()));
        }
        if let Some(p) = &self.not_principal {
            entries.push(("NotPrincipal".to_owned(), p.to_value()));
        }
        let lists = [
            ("Action", &self.action),
            ("NotAction", &self.not_action),
            ("Resource", &self.resource),
            ("NotResource", &self.not_resource),
        ];
        for (name, list) in lists {
            if let Some(list) = list {
                entries.push((name.to_owned(), strings_to_value(list)));
            }
        }
        if let Some(c) = &self.condition {
            entries.push(("Condition".to_owned(), Value::Object(c.clone())));
        }
        for (k, v) in &self.extra {
            if !STATEMENT_KEYS.contains(&k.as_str()) {
                entries.push((k.clone(), v.clone()));
            }
        }
        ordered(entries, remembered)
    }
}

impl Serialize for Statement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Field::Statement(self, None).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Statement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        statement_from_value(value, &"Statement", None)
            .map(|(st, _)| st)
            .map_err(de::Error::custom)
    }
}

/// How `"Statement"` was written, so it is written back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatementForm {
    Object,
    Array,
}

/// A key policy or IAM policy document.
#[derive(Clone)]
pub struct Policy {
    /// `"Version"`, normally `"2012-10-17"`.
    pub version: Option<String>,
    /// `"Id"`.
    pub id: Option<String>,
    /// `"Statement"`, in document order.
    pub statements: Vec<Statement>,
    /// Unknown top-level keys, kept in order.
    pub extra: Map<String, Value>,
    statement_form: StatementForm,
    /// Top-level key order as parsed.
    top_keys: Vec<String>,
    /// Each parsed statement with its key order: an unchanged statement is
    /// written back with the same key order.
    layouts: Vec<(Statement, Vec<String>)>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            version: None,
            id: None,
            statements: Vec::new(),
            extra: Map::new(),
            statement_form: StatementForm::Array,
            top_keys: Vec::new(),
            layouts: Vec::new(),
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("version", &self.version)
            .field("id", &self.id)
            .field("statements", &self.statements)
            .field("extra", &self.extra)
            .finish()
    }
}

impl PartialEq for Policy {
    /// Equal when they serialize to equal documents (key order aside).
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
            && self.id == other.id
            && self.statements == other.statements
            && self.extra == other.extra
            && self.single_object_form() == other.single_object_form()
    }
}

impl Eq for Policy {}

/// The current IAM policy language version.
const POLICY_VERSION: &str = "2012-10-17";

impl Policy {
    /// Parses a policy document.
    ///
    /// Errors name what is wrong and where: line and column for malformed
    /// JSON, statement index and field for a wrong shape.
    pub fn parse(json: &str) -> Result<Policy, ParseError> {
        // Well-formed documents are read straight from the text; anything the
        // direct reader does not accept goes the general way, which also
        // words the errors.
        match direct::parse(json) {
            Some(policy) => Ok(policy),
            None => Policy::parse_via_value(json),
        }
    }

    /// Everything the policy holds, including what `PartialEq` and `Debug`
    /// leave out (key orders, the `"Statement"` form), with map entries in
    /// order.
    #[cfg(test)]
    pub(crate) fn internals(&self) -> String {
        format!(
            "{:?}",
            (
                &self.version,
                &self.id,
                &self.statements,
                &self.extra,
                self.statement_form,
                &self.top_keys,
                &self.layouts,
            )
        )
    }

    /// [`Policy::parse`] through a JSON value: the general path.
    pub(crate) fn parse_via_value(json: &str) -> Result<Policy, ParseError> {
        let value: Value = serde_json::from_str(json).map_err(ParseError::syntax)?;
        Policy::from_value(value)
    }

    /// Builds a policy from an already parsed JSON value.
    pub fn from_value(value: Value) -> Result<Policy, ParseError> {
        let Value::Object(map) = value else {
            return Err(ParseError::shape(
                None,
                None,
                format!("policy: expected a JSON object, found {}", describe(&value)),
            ));
        };
        let mut policy = Policy {
            top_keys: Vec::with_capacity(map.len()),
            ..Policy::default()
        };
        let mut statement = None;
        for (key, value) in map {
            match key.as_str() {
                "Version" => policy.version = Some(string_field(value, &"Version", None)?),
                "Id" => policy.id = Some(string_field(value, &"Id", None)?),
                "Statement" => statement = Some(value),
                _ => {
                    policy.extra.insert(key.clone(), value);
                }
            }
            policy.top_keys.push(key);
        }
        let Some(statement) = statement else {
            return Err(ParseError::shape(
                None,
                Some("Statement"),
                "policy: missing \"Statement\"".to_owned(),
            ));
        };
        match statement {
            Value::Object(_) => {
                policy.statement_form = StatementForm::Object;
                let read = statement_from_value(statement, &"Statement", Some(0))?;
                policy.remember(vec![read]);
            }
            Value::Array(items) => {
                let mut reads = Vec::with_capacity(items.len());
                for (idx, item) in items.into_iter().enumerate() {
                    reads.push(statement_from_value(item, &Indexed(idx), Some(idx))?);
                }
                policy.remember(reads);
            }
            other => {
                return Err(ParseError::shape(
                    None,
                    Some("Statement"),
                    format!(
                        "Statement: expected an object or an array of objects, found {}",
                        describe(&other)
                    ),
                ))
            }
        }
        Ok(policy)
    }

    /// A policy with `"Version": "2012-10-17"` and these statements.
    pub fn from_statements(statements: Vec<Statement>) -> Policy {
        Policy {
            version: Some(POLICY_VERSION.to_owned()),
            statements,
            ..Policy::default()
        }
    }

    /// The document as a JSON value.
    pub fn to_value(&self) -> Value {
        let mut entries: Vec<(String, Value)> = Vec::new();
        if let Some(v) = &self.version {
            entries.push(("Version".to_owned(), Value::String(v.clone())));
        }
        if let Some(id) = &self.id {
            entries.push(("Id".to_owned(), Value::String(id.clone())));
        }
        let statements: Vec<Value> = self
            .statements
            .iter()
            .enumerate()
            .map(|(idx, st)| Value::Object(st.to_map(self.layout_of(idx, st))))
            .collect();
        let statement = match (self.single_object_form(), statements.len()) {
            (true, 1) => statements.into_iter().next().unwrap_or(Value::Null),
            _ => Value::Array(statements),
        };
        entries.push(("Statement".to_owned(), statement));
        for (k, v) in &self.extra {
            if !POLICY_KEYS.contains(&k.as_str()) {
                entries.push((k.clone(), v.clone()));
            }
        }
        let remembered = if self.top_keys.is_empty() {
            None
        } else {
            Some(self.top_keys.as_slice())
        };
        Value::Object(ordered(entries, remembered))
    }

    /// Compact JSON: what counts against the key policy size limit.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.to_value().to_string())
    }

    /// The length in bytes of [`Policy::to_json`], without building it.
    pub(crate) fn json_len(&self) -> usize {
        /// Counts what is written.
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        match serde_json::to_writer(&mut count, self) {
            Ok(()) => count.0,
            Err(_) => self.to_json().len(),
        }
    }

    /// At least [`Policy::json_len`], from the lengths of the strings
    /// alone: every byte written as a six-byte escape, and room for the
    /// punctuation around every item. Far cheaper than printing.
    pub(crate) fn json_len_bound(&self) -> usize {
        /// Quotes, escapes and the separator after the string.
        fn text(s: &str) -> usize {
            6 * s.len() + 3
        }
        fn value(v: &Value) -> usize {
            match v {
                Value::String(s) => text(s),
                Value::Array(items) => 3 + items.iter().map(value).sum::<usize>(),
                Value::Object(map) => object(map),
                // The longest number, `true`, `false` or `null`, and a separator.
                _ => 32,
            }
        }
        fn object(map: &Map<String, Value>) -> usize {
            3 + map.iter().map(|(k, v)| text(k) + value(v)).sum::<usize>()
        }
        fn strings(list: &Option<OneOrMany<String>>) -> usize {
            list.as_ref()
                .map_or(0, |list| 3 + list.iter().map(|s| text(s)).sum::<usize>())
        }
        fn principal(p: &Option<Principal>) -> usize {
            match p {
                None => 0,
                Some(Principal::Any) => 4,
                Some(Principal::Map(map)) => object(map),
            }
        }
        /// A known key, its quotes, colon and separator.
        const KEY: usize = 16;
        let statement = |st: &Statement| {
            3 + 9 * KEY
                + st.sid.as_deref().map_or(0, text)
                + text(st.effect.as_str())
                + principal(&st.principal)
                + principal(&st.not_principal)
                + strings(&st.action)
                + strings(&st.not_action)
                + strings(&st.resource)
                + strings(&st.not_resource)
                + st.condition.as_ref().map_or(0, object)
                + object(&st.extra)
        };
        3 + 3 * KEY
            + self.version.as_deref().map_or(0, text)
            + self.id.as_deref().map_or(0, text)
            + 3
            + self.statements.iter().map(statement).sum::<usize>()
            + object(&self.extra)
    }

    /// Pretty JSON with two-space indentation: what users see and what is
    /// stored.
    pub fn to_json_pretty(&self) -> String {
        // Room for a typical key policy at once, rather than growing through
        // every size on the way.
        let mut out = Vec::with_capacity(128 + 512 * self.statements.len());
        match serde_json::to_writer_pretty(&mut out, self) {
            // serde_json writes valid UTF-8.
            Ok(()) => String::from_utf8(out).unwrap_or_else(|_| self.to_json()),
            Err(_) => self.to_json(),
        }
    }

    /// The policy KMS gives a key created without one: the owner account's
    /// root gets `kms:*`, which delegates access to the account's IAM
    /// policies.
    pub fn default_key_policy(owner_account: &str) -> Policy {
        let mut st = Statement::new(Effect::Allow);
        st.sid = Some("Enable IAM User Permissions".to_owned());
        st.principal = Some(Principal::from_aws(vec![root_arn(owner_account)]));
        st.action = Some(OneOrMany::One("kms:*".to_owned()));
        st.resource = Some(OneOrMany::One("*".to_owned()));
        let mut policy = Policy::from_statements(vec![st]);
        policy.id = Some("key-default-1".to_owned());
        policy
    }

    /// The immutable policy of the AWS managed `aws/ebs` key: usable only
    /// through EC2 by principals of its own account, which is why images
    /// encrypted with it can never be shared.
    pub fn aws_managed_ebs_key_policy(owner_account: &str, region: &str) -> Policy {
        let mut use_key = Statement::new(Effect::Allow);
        use_key.sid =
            Some("Allow access through EBS for all principals in the account that are authorized to use EBS".to_owned());
        use_key.principal = Some(Principal::from_aws(vec!["*".to_owned()]));
        use_key.action = Some(OneOrMany::Many(
            [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:CreateGrant",
                "kms:DescribeKey",
            ]
            .map(str::to_owned)
            .to_vec(),
        ));
        use_key.resource = Some(OneOrMany::One("*".to_owned()));
        let mut equals = Map::new();
        equals.insert(
            "kms:CallerAccount".to_owned(),
            Value::String(owner_account.to_owned()),
        );
        equals.insert(
            "kms:ViaService".to_owned(),
            Value::String(format!("ec2.{region}.amazonaws.com")),
        );
        let mut condition = Map::new();
        condition.insert("StringEquals".to_owned(), Value::Object(equals));
        use_key.condition = Some(condition);

        let mut metadata = Statement::new(Effect::Allow);
        metadata.sid = Some("Allow direct access to key metadata to the account".to_owned());
        metadata.principal = Some(Principal::from_aws(vec![root_arn(owner_account)]));
        metadata.action = Some(OneOrMany::Many(
            ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"]
                .map(str::to_owned)
                .to_vec(),
        ));
        metadata.resource = Some(OneOrMany::One("*".to_owned()));

        let mut policy = Policy::from_statements(vec![use_key, metadata]);
        policy.id = Some("auto-ebs-2".to_owned());
        policy
    }

    /// The first statement with this Sid.
    pub fn statement_by_sid(&self, sid: &str) -> Option<&Statement> {
        self.statements
            .iter()
            .find(|st| st.sid.as_deref() == Some(sid))
    }

    /// Takes the parsed statements, remembering their key orders when that
    /// matters for printing them back.
    ///
    /// When every statement's keys already come in the order a statement is
    /// printed in without a layout (see [`printed_in_order`]), a remembered
    /// order would change nothing however the statements are later edited,
    /// so none is kept (and no statement copied). Otherwise all are kept.
    fn remember<K: AsRef<str> + Into<String>>(&mut self, reads: Vec<(Statement, Vec<K>)>) {
        let keep = !reads.iter().all(|(_, keys)| printed_in_order(keys));
        #[cfg(test)]
        let keep = keep || KEEP_LAYOUTS.with(std::cell::Cell::get);
        for (st, keys) in reads {
            if keep {
                let keys = keys.into_iter().map(Into::into).collect();
                self.layouts.push((st.clone(), keys));
            }
            self.statements.push(st);
        }
    }

    fn single_object_form(&self) -> bool {
        self.statement_form == StatementForm::Object && self.statements.len() == 1
    }

    fn layout_of(&self, idx: usize, st: &Statement) -> Option<&[String]> {
        if let Some((parsed, keys)) = self.layouts.get(idx) {
            if parsed == st {
                return Some(keys);
            }
        }
        self.layouts
            .iter()
            .find(|(parsed, _)| parsed == st)
            .map(|(_, keys)| keys.as_slice())
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The same entries, in the same order, as `to_value` builds, written
        // from the model without copying it into a JSON value first.
        let known = [
            ("Version", self.version.as_deref().map(Field::Str)),
            ("Id", self.id.as_deref().map(Field::Str)),
            ("Statement", Some(Field::Statements(self))),
        ];
        let remembered = self.top_keys.as_slice();
        write_object(serializer, &known, &self.extra, &POLICY_KEYS, remembered)
    }
}

/// A value of a policy document, borrowed from the model, that serializes
/// exactly as the JSON value `to_value` would build for it.
#[derive(Clone, Copy)]
enum Field<'a> {
    Str(&'a str),
    Strings(&'a OneOrMany<String>),
    Principal(&'a Principal),
    Object(&'a Map<String, Value>),
    /// A statement, with the key order it was parsed with, if any.
    Statement(&'a Statement, Option<&'a [String]>),
    /// The `"Statement"` element of a policy.
    Statements(&'a Policy),
}

impl<'a> Serialize for Field<'a> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Field::Str(text) => serializer.serialize_str(text),
            Field::Strings(OneOrMany::One(text)) => serializer.serialize_str(text),
            Field::Strings(OneOrMany::Many(items)) => items.serialize(serializer),
            Field::Principal(Principal::Any) => serializer.serialize_str("*"),
            Field::Principal(Principal::Map(map)) | Field::Object(map) => map.serialize(serializer),
            Field::Statement(st, remembered) => {
                let list = |name, list: &'a Option<OneOrMany<String>>| {
                    (name, list.as_ref().map(Field::Strings))
                };
                let known = [
                    ("Sid", st.sid.as_deref().map(Field::Str)),
                    ("Effect", Some(Field::Str(st.effect.as_str()))),
                    ("Principal", st.principal.as_ref().map(Field::Principal)),
                    (
                        "NotPrincipal",
                        st.not_principal.as_ref().map(Field::Principal),
                    ),
                    list("Action", &st.action),
                    list("NotAction", &st.not_action),
                    list("Resource", &st.resource),
                    list("NotResource", &st.not_resource),
                    ("Condition", st.condition.as_ref().map(Field::Object)),
                ];
                let remembered = remembered.unwrap_or_default();
                write_object(serializer, &known, &st.extra, &STATEMENT_KEYS, remembered)
            }
            Field::Statements(policy) => {
                let statement = |(idx, st): (usize, &'a Statement)| {
                    Field::Statement(st, policy.layout_of(idx, st))
                };
                match (policy.single_object_form(), policy.statements.as_slice()) {
                    (true, [st]) => statement((0, st)).serialize(serializer),
                    (_, statements) => {
                        serializer.collect_seq(statements.iter().enumerate().map(statement))
                    }
                }
            }
        }
    }
}

/// Writes a JSON object: the `known` entries that are present, in that
/// order, then the `extra` entries whose names are not `reserved`, in
/// theirs; except that names listed in `remembered` come first, in that
/// order (the `ordered` rule).
fn write_object<S: Serializer>(
    serializer: S,
    known: &[(&'static str, Option<Field<'_>>)],
    extra: &Map<String, Value>,
    reserved: &[&str],
    remembered: &[String],
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;

    let is_extra = |name: &str| !reserved.contains(&name);
    let is_remembered = |name: &str| remembered.iter().any(|key| key == name);
    let len = known.iter().filter(|(_, field)| field.is_some()).count()
        + extra.keys().filter(|name| is_extra(name)).count();
    let mut map = serializer.serialize_map(Some(len))?;
    for key in remembered {
        if let Some((name, Some(field))) = known.iter().find(|(name, _)| name == key) {
            map.serialize_entry(name, field)?;
        } else if is_extra(key) {
            if let Some(value) = extra.get(key) {
                map.serialize_entry(key, value)?;
            }
        }
    }
    for (name, field) in known {
        if let (Some(field), false) = (field, is_remembered(name)) {
            map.serialize_entry(name, field)?;
        }
    }
    for (name, value) in extra {
        if is_extra(name) && !is_remembered(name) {
            map.serialize_entry(name, value)?;
        }
    }
    map.end()
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Policy::from_value(value).map_err(de::Error::custom)
    }
}

impl std::str::FromStr for Policy {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::parse(s)
    }
}

/// What kind of problem a [`ParseError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The text is not JSON; line and column say where.
    Syntax,
    /// Valid JSON, but not the shape of a policy (wrong type, unknown Effect,
    /// missing Statement...); statement index and field say where.
    Shape,
}

/// A policy document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    kind: ParseErrorKind,
    message: String,
    line: Option<usize>,
    column: Option<usize>,
    statement: Option<usize>,
    field: Option<String>,
}

impl ParseError {
    /// Syntax error or wrong shape.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// The full message (also the `Display` text).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// One-based line of a syntax error.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// One-based column of a syntax error.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// Zero-based index of the statement at fault.
    pub fn statement(&self) -> Option<usize> {
        self.statement
    }

    /// The element at fault, e.g. `Effect` or `Condition.Bool`.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    fn syntax(err: serde_json::Error) -> ParseError {
        ParseError {
            kind: ParseErrorKind::Syntax,
            message: format!("malformed policy JSON: {err}"),
            line: Some(err.line()),
            column: Some(err.column()),
            statement: None,
            field: None,
        }
    }

    fn shape(statement: Option<usize>, field: Option<&str>, message: String) -> ParseError {
        ParseError {
            kind: ParseErrorKind::Shape,
            message,
            line: None,
            column: None,
            statement,
            field: field.map(str::to_owned),
        }
    }
}

const STATEMENT_KEYS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];
const POLICY_KEYS: [&str; 3] = ["Version", "Id", "Statement"];

/// Whether a statement's keys come in the order it is printed in without a
/// layout: the known keys in the order of [`STATEMENT_KEYS`], then at most
/// one unknown key. (Two unknown keys could be printed in another order:
/// statements compare their unknown keys regardless of order.)
fn printed_in_order<K: AsRef<str>>(keys: &[K]) -> bool {
    let mut last = 0;
    let mut unknown = 0;
    for key in keys {
        let rank = STATEMENT_KEYS
            .iter()
            .position(|known| *known == key.as_ref())
            .unwrap_or(STATEMENT_KEYS.len());
        if rank < last {
            return false;
        }
        if rank == STATEMENT_KEYS.len() {
            unknown += 1;
        }
        last = rank;
    }
    unknown <= 1
}

#[cfg(test)]
thread_local! {
    /// Keeps every parsed statement's layout, as if none were in order: the
    /// tests compare printing with and without the layouts left out.
    pub(crate) static KEEP_LAYOUTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(crate) fn root_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:root")
}

/// Puts `entries` in `remembered` order first, then the rest in their given
/// (canonical) order.
fn ordered(entries: Vec<(String, Value)>, remembered: Option<&[String]>) -> Map<String, Value> {
    let mut slots: Vec<Option<(String, Value)>> = entries.into_iter().map(Some).collect();
    let mut out = Map::new();
    for key in remembered.unwrap_or_default() {
        let slot = slots
            .iter_mut()
            .find(|slot| matches!(slot, Some((name, _)) if name == key));
        if let Some(slot) = slot {
            if let Some((name, value)) = slot.take() {
                out.insert(name, value);
            }
        }
    }
    for (name, value) in slots.into_iter().flatten() {
        out.insert(name, value);
    }
    out
}

fn strings_to_value(list: &OneOrMany<String>) -> Value {
    match list {
        OneOrMany::One(s) => Value::String(s.clone()),
        OneOrMany::Many(items) => Value::Array(items.iter().cloned().map(Value::String).collect()),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// Where a value sits in the document (`Statement[2].Action`, ...),
/// written out only when an error names it.
type Path<'a> = &'a dyn fmt::Display;

/// `<base>.<key>`.
struct Joined<'a>(Path<'a>, &'a str);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// `Statement[<index>]`.
struct Indexed(usize);

impl fmt::Display for Indexed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Statement[{}]", self.0)
    }
}

fn string_field(
    value: Value,
    path: Path<'_>,
    statement: Option<usize>,
) -> Result<String, ParseError> {
    match value {
        Value::String(s) => Ok(s),
        other => {
            let path = path.to_string();
            Err(ParseError::shape(
                statement,
                Some(last_segment(&path)),
                format!("{path}: expected a string, found {}", describe(&other)),
            ))
        }
    }
}

fn last_segment(path: &str) -> &str {
    match path.find("].") {
        Some(pos) => &path[pos + 2..],
        None => path.strip_prefix("Statement.").unwrap_or(path),
    }
}

fn strings_from_value(
    value: Value,
    path: Path<'_>,
    statement: Option<usize>,
) -> Result<OneOrMany<String>, ParseError> {
    let error = |found: &Value| {
        let path = path.to_string();
        ParseError::shape(
            statement,
            Some(last_segment(&path)),
            format!(
                "{path}: expected a string or an array of strings, found {}",
                describe(found)
            ),
        )
    };
    match value {
        Value::String(s) => Ok(OneOrMany::One(s)),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s),
                    other => return Err(error(&other)),
                }
            }
            Ok(OneOrMany::Many(out))
        }
        other => Err(error(&other)),
    }
}

fn principal_from_value(value: Value, path: &str) -> Result<Principal, ParseError> {
    principal_at(value, &path, None)
}

fn principal_at(
    value: Value,
    path: Path<'_>,
    statement: Option<usize>,
) -> Result<Principal, ParseError> {
    match value {
        Value::String(s) if s == "*" => Ok(Principal::Any),
        Value::Object(map) => {
            for (kind, entries) in &map {
                let ok = match entries {
                    Value::String(_) => true,
                    Value::Array(items) => items.iter().all(Value::is_string),
                    _ => false,
                };
                if !ok {
                    let path = path.to_string();
                    return Err(ParseError::shape(
                        statement,
                        Some(last_segment(&path)),
                        format!(
                            "{path}.{kind}: expected a string or an array of strings, found {}",
                            describe(entries)
                        ),
                    ));
                }
            }
            Ok(Principal::Map(map))
        }
        other => {
            let path = path.to_string();
            Err(ParseError::shape(
                statement,
                Some(last_segment(&path)),
                format!(
                    "{path}: expected \"*\" or an object such as {{\"AWS\": \"<arn>\"}}, found {}",
                    describe(&other)
                ),
            ))
        }
    }
}

fn conditions_from_value(
    value: Value,
    path: Path<'_>,
    statement: Option<usize>,
) -> Result<Conditions, ParseError> {
    let Value::Object(map) = value else {
        return Err(ParseError::shape(
            statement,
            Some("Condition"),
            format!(
                "{path}: expected an object of condition operators, found {}",
                describe(&value)
            ),
        ));
    };
    for (operator, block) in &map {
        let field = || format!("Condition.{operator}");
        let Value::Object(keys) = block else {
            return Err(ParseError::shape(
                statement,
                Some(&field()),
                format!(
                    "{path}.{operator}: expected an object of condition keys, found {}",
                    describe(block)
                ),
            ));
        };
        for (key, values) in keys {
            let scalar =
                |v: &Value| matches!(v, Value::String(_) | Value::Bool(_) | Value::Number(_));
            let ok = match values {
                Value::Array(items) => items.iter().all(scalar),
                other => scalar(other),
            };
            if !ok {
                return Err(ParseError::shape(
                    statement,
                    Some(&field()),
                    format!(
                        "{path}.{operator}.{key}: expected a string, boolean or number, or an array of them, found {}",
                        describe(values)
                    ),
                ));
            }
        }
    }
    Ok(map)
}

/// Reads one statement; also returns its key order.
fn statement_from_value(
    value: Value,
    path: Path<'_>,
    statement: Option<usize>,
) -> Result<(Statement, Vec<String>), ParseError> {
    let Value::Object(map) = value else {
        return Err(ParseError::shape(
            statement,
            None,
            format!("{path}: expected an object, found {}", describe(&value)),
        ));
    };
    let mut keys: Vec<String> = Vec::with_capacity(map.len());
    let mut effect = None;
    let mut st = Statement::new(Effect::Allow);
    for (key, value) in map {
        let field_path = &Joined(path, &key);
        match key.as_str() {
            "Sid" => st.sid = Some(string_field(value, field_path, statement)?),
            "Effect" => {
                effect = Some(match value {
                    Value::String(s) if s == "Allow" => Effect::Allow,
                    Value::String(s) if s == "Deny" => Effect::Deny,
                    other => {
                        return Err(ParseError::shape(
                            statement,
                            Some("Effect"),
                            format!(
                                "{field_path}: expected \"Allow\" or \"Deny\", found {}",
                                describe(&other)
                            ),
                        ))
                    }
                })
            }
            "Principal" => st.principal = Some(principal_at(value, field_path, statement)?),
            "NotPrincipal" => st.not_principal = Some(principal_at(value, field_path, statement)?),
            "Action" => st.action = Some(strings_from_value(value, field_path, statement)?),
            "NotAction" => st.not_action = Some(strings_from_value(value, field_path, statement)?),
            "Resource" => st.resource = Some(strings_from_value(value, field_path, statement)?),
            "NotResource" => {
                st.not_resource = Some(strings_from_value(value, field_path, statement)?)
            }
            "Condition" => {
                st.condition = Some(conditions_from_value(value, field_path, statement)?)
            }
            _ => {
                st.extra.insert(key.clone(), value);
            }
        }
        keys.push(key);
    }
    let Some(effect) = effect else {
        return Err(ParseError::shape(
            statement,
            Some("Effect"),
            format!("{path}: missing \"Effect\""),
        ));
    };
    st.effect = effect;
    Ok((st, keys))
}

/// Reads a document straight from its text into the model, without first
/// building a JSON value for the parts the model holds as its own fields.
///
/// It accepts only documents that [`Policy::from_value`] reads without error
/// and gives exactly the policy that path gives (statements, unknown keys,
/// key orders and `"Statement"` form). Anything else (malformed JSON, a wrong
/// shape, a key written twice) makes it give up, and the general path reads
/// the document and words the error.
mod direct {
    use std::fmt;

    use serde::de::{self, Deserializer as _, MapAccess, SeqAccess, Visitor};
    use serde::Deserialize;
    use serde_json::Value;

    use super::{
        conditions_from_value, principal_at, Effect, OneOrMany, Policy, Statement, StatementForm,
        STATEMENT_KEYS,
    };

    /// Why the direct reader gave up; never shown.
    fn give_up<E: de::Error>() -> E {
        E::custom("left to the general path")
    }

    /// An object key or a short string value, borrowed from the text when
    /// it has no escapes: most are only compared, never kept.
    enum Name<'de> {
        Borrowed(&'de str),
        Owned(String),
    }

    impl Name<'_> {
        fn as_str(&self) -> &str {
            match self {
                Name::Borrowed(text) => text,
                Name::Owned(text) => text,
            }
        }
    }

    impl AsRef<str> for Name<'_> {
        fn as_ref(&self) -> &str {
            self.as_str()
        }
    }

    impl From<Name<'_>> for String {
        fn from(name: Name<'_>) -> String {
            match name {
                Name::Borrowed(text) => text.to_owned(),
                Name::Owned(text) => text,
            }
        }
    }

    impl<'de> Deserialize<'de> for Name<'de> {
        fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct NameVisitor;

            impl<'de> Visitor<'de> for NameVisitor {
                type Value = Name<'de>;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string")
                }

                fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Name<'de>, E> {
                    Ok(Name::Borrowed(text))
                }

                fn visit_str<E: de::Error>(self, text: &str) -> Result<Name<'de>, E> {
                    Ok(Name::Owned(text.to_owned()))
                }

                fn visit_string<E: de::Error>(self, text: String) -> Result<Name<'de>, E> {
                    Ok(Name::Owned(text))
                }
            }

            deserializer.deserialize_str(NameVisitor)
        }
    }

    pub(super) fn parse(json: &str) -> Option<Policy> {
        let mut de = serde_json::Deserializer::from_str(json);
        let policy = de.deserialize_map(PolicyVisitor).ok()?;
        de.end().ok()?;
        Some(policy)
    }

    struct PolicyVisitor;

    impl<'de> Visitor<'de> for PolicyVisitor {
        type Value = Policy;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a policy document")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Policy, A::Error> {
            let mut policy = Policy::default();
            let mut statements = None;
            while let Some(key) = map.next_key::<Name<'de>>()? {
                let key = key.as_str();
                if policy.top_keys.iter().any(|seen| seen == key) {
                    return Err(give_up());
                }
                match key {
                    "Version" => policy.version = Some(map.next_value()?),
                    "Id" => policy.id = Some(map.next_value()?),
                    "Statement" => statements = Some(map.next_value::<Statements<'de>>()?),
                    _ => {
                        let value: Value = map.next_value()?;
                        policy.extra.insert(key.to_owned(), value);
                    }
                }
                policy.top_keys.push(key.to_owned());
            }
            let reads = match statements.ok_or_else(give_up)? {
                Statements::Object(read) => {
                    policy.statement_form = StatementForm::Object;
                    vec![*read]
                }
                Statements::Array(reads) => reads,
            };
            policy.remember(
                reads
                    .into_iter()
                    .map(|read| (read.statement, read.keys))
                    .collect(),
            );
            Ok(policy)
        }
    }

    /// The `"Statement"` element, in either form.
    enum Statements<'de> {
        Object(Box<StatementRead<'de>>),
        Array(Vec<StatementRead<'de>>),
    }

    impl<'de> Deserialize<'de> for Statements<'de> {
        fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct StatementsVisitor;

            impl<'de> Visitor<'de> for StatementsVisitor {
                type Value = Statements<'de>;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a statement or a list of statements")
                }

                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Statements<'de>, A::Error> {
                    let read = StatementVisitor.visit_map(map)?;
                    Ok(Statements::Object(Box::new(read)))
                }

                fn visit_seq<A: SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Statements<'de>, A::Error> {
                    let mut reads = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                    while let Some(read) = seq.next_element::<StatementRead<'de>>()? {
                        reads.push(read);
                    }
                    Ok(Statements::Array(reads))
                }
            }

            deserializer.deserialize_any(StatementsVisitor)
        }
    }

    /// One statement and its key order.
    struct StatementRead<'de> {
        statement: Statement,
        keys: Vec<Name<'de>>,
    }

    impl<'de> Deserialize<'de> for StatementRead<'de> {
        fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_map(StatementVisitor)
        }
    }

    struct StatementVisitor;

    impl<'de> Visitor<'de> for StatementVisitor {
        type Value = StatementRead<'de>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a statement")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StatementRead<'de>, A::Error> {
            let mut keys: Vec<Name<'de>> = Vec::with_capacity(STATEMENT_KEYS.len());
            let mut statement = Statement::new(Effect::Allow);
            let mut effect = None;
            while let Some(key) = map.next_key::<Name<'de>>()? {
                if keys.iter().any(|seen| seen.as_str() == key.as_str()) {
                    return Err(give_up());
                }
                let st = &mut statement;
                match key.as_str() {
                    "Sid" => st.sid = Some(map.next_value()?),
                    "Effect" => {
                        effect = Some(match map.next_value::<Name<'de>>()?.as_str() {
                            "Allow" => Effect::Allow,
                            "Deny" => Effect::Deny,
                            _ => return Err(give_up()),
                        })
                    }
                    "Principal" | "NotPrincipal" => {
                        let value: Value = map.next_value()?;
                        let principal =
                            principal_at(value, &"Principal", None).map_err(|_| give_up())?;
                        match key.as_str() {
                            "Principal" => st.principal = Some(principal),
                            _ => st.not_principal = Some(principal),
                        }
                    }
                    "Action" => st.action = Some(map.next_value::<Strings>()?.0),
                    "NotAction" => st.not_action = Some(map.next_value::<Strings>()?.0),
                    "Resource" => st.resource = Some(map.next_value::<Strings>()?.0),
                    "NotResource" => st.not_resource = Some(map.next_value::<Strings>()?.0),
                    "Condition" => {
                        let value: Value = map.next_value()?;
                        let conditions = conditions_from_value(value, &"Condition", None)
                            .map_err(|_| give_up())?;
                        st.condition = Some(conditions);
                    }
                    _ => {
                        let value: Value = map.next_value()?;
                        st.extra.insert(key.as_str().to_owned(), value);
                    }
                }
                keys.push(key);
            }
            statement.effect = effect.ok_or_else(give_up)?;
            Ok(StatementRead { statement, keys })
        }
    }

    /// A string or a list of strings.
    struct Strings(OneOrMany<String>);

    impl<'de> Deserialize<'de> for Strings {
        fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct StringsVisitor;

            impl<'de> Visitor<'de> for StringsVisitor {
                type Value = Strings;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string or a list of strings")
                }

                fn visit_str<E: de::Error>(self, text: &str) -> Result<Strings, E> {
                    Ok(Strings(OneOrMany::One(text.to_owned())))
                }

                fn visit_string<E: de::Error>(self, text: String) -> Result<Strings, E> {
                    Ok(Strings(OneOrMany::One(text)))
                }

                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                    let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                    while let Some(item) = seq.next_element::<String>()? {
                        items.push(item);
                    }
                    Ok(Strings(OneOrMany::Many(items)))
                }
            }

            deserializer.deserialize_any(StringsVisitor)
        }
    }
}
