//! The parameters of a query-protocol request (EC2, STS): a form-encoded body
//! (and URL query), with AWS's flattened lists (`ImageId.1`, `Filter.1.Value.2`).

use std::collections::BTreeMap;

use crate::wire::{invalid_value, missing_parameter, WireError};

/// The decoded parameters of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// Decodes `application/x-www-form-urlencoded` text: the URL query, then
    /// the body (whose values win). A bad percent escape or text that is not
    /// UTF-8 is refused as AWS refuses it, with `MalformedQueryString`.
    pub(crate) fn parse(query: Option<&str>, body: &[u8]) -> Result<Params, WireError> {
        let mut map = BTreeMap::new();
        for text in [query.unwrap_or_default().as_bytes(), body] {
            for pair in text.split(|&b| b == b'&').filter(|pair| !pair.is_empty()) {
                let (name, value) = match pair.iter().position(|&b| b == b'=') {
                    Some(at) => (&pair[..at], &pair[at + 1..]),
                    None => (pair, &pair[pair.len()..]),
                };
                map.insert(decode(name)?, decode(value)?);
            }
        }
        Ok(Params { map })
    }

    /// A parameter's value.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// A parameter that must be there.
    pub(crate) fn required(&self, name: &str) -> Result<&str, WireError> {
        self.get(name).ok_or_else(|| missing_parameter(name))
    }

    /// A boolean parameter (`true` or `false`).
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, WireError> {
        match self.get(name) {
            None => Ok(None),
            Some(value) if value.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(value) if value.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(value) => Err(invalid_value(name, value, "Expected true or false.")),
        }
    }

    /// A whole-number parameter.
    pub(crate) fn integer(&self, name: &str) -> Result<Option<u32>, WireError> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value
                .parse()
                .map(Some)
                .map_err(|_| invalid_value(name, value, "Expected a whole number.")),
        }
    }

    /// The values of a flattened list `prefix.1`, `prefix.2`, …, in index order.
    pub(crate) fn list(&self, prefix: &str) -> Vec<&str> {
        let mut items: Vec<(u32, &str)> = self
            .map
            .iter()
            .filter_map(|(name, value)| {
                let index = name.strip_prefix(prefix)?.strip_prefix('.')?.parse().ok()?;
                Some((index, value.as_str()))
            })
            .collect();
        items.sort_by_key(|(index, _)| *index);
        items.into_iter().map(|(_, value)| value).collect()
    }

    /// [`Params::list`], each value owned.
    pub(crate) fn strings(&self, prefix: &str) -> Vec<String> {
        self.list(prefix).into_iter().map(str::to_owned).collect()
    }

    /// The members of a flattened list of structures, `prefix.N.Field…`, in
    /// index order, each with its own fields (`Field…`).
    pub(crate) fn members(&self, prefix: &str) -> Vec<Params> {
        let mut members: BTreeMap<u32, Params> = BTreeMap::new();
        for (name, value) in &self.map {
            let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let Some((index, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(index) = index.parse() else { continue };
            members
                .entry(index)
                .or_default()
                .map
                .insert(field.to_owned(), value.clone());
        }
        members.into_values().collect()
    }
}

/// Decodes one form-encoded name or value.
fn decode(text: &[u8]) -> Result<String, WireError> {
    let malformed = || {
        WireError::new(
            "MalformedQueryString",
            format!(
                "The query string is malformed near {:?}.",
                String::from_utf8_lossy(text)
            ),
        )
    };
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = rest.get(..2).ok_or_else(malformed)?;
                let hex = std::str::from_utf8(hex).map_err(|_| malformed())?;
                bytes.push(u8::from_str_radix(hex, 16).map_err(|_| malformed())?);
                rest = &rest[2..];
            }
            byte => bytes.push(byte),
        }
    }
    String::from_utf8(bytes).map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use crate::query::Params;

    #[test]
    fn lists_and_members_come_in_index_order() {
        let params = Params::parse(
            Some("Action=DescribeImages"),
            b"ImageId.10=ami-b&ImageId.2=ami-a&Filter.1.Name=tag%3Ak&Filter.1.Value.1=a+b&Filter.2.Name=state",
        )
        .unwrap();
        assert_eq!(params.get("Action"), Some("DescribeImages"));
        assert_eq!(params.list("ImageId"), ["ami-a", "ami-b"]);
        let filters = params.members("Filter");
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[0].get("Name"), Some("tag:k"));
        assert_eq!(filters[0].list("Value"), ["a b"]);
    }

    #[test]
    fn bad_escapes_and_bad_utf8_are_malformed() {
        for body in [&b"Action=%zz"[..], b"Action=%4", b"Action=%ff"] {
            let err = Params::parse(None, body).unwrap_err();
            assert_eq!(err.code, "MalformedQueryString", "{body:?}");
        }
    }
}
