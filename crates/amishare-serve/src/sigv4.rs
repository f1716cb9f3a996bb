//! SigV4 signatures, checked as AWS checks them: the canonical request is
//! rebuilt from the request as received, signed with the access key's
//! secret, and compared (in constant time) with the signature sent.
//!
//! The algorithm is AWS's "Create a signed AWS API request"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>):
//! canonical request, string to sign over the credential scope, and the
//! signing key derived from the secret by date, region and service. A
//! request must be signed within 15 minutes of the server's clock either way,
//! as EC2's `RequestExpired` says
//! (<https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html>).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use hyper::header::{HeaderMap, AUTHORIZATION};
use hyper::http::request::Parts;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// How far a request's time may be from the server's.
const SKEW: Duration = Duration::from_secs(15 * 60);

/// Everything but SigV4's unreserved characters is encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The path keeps its slashes.
const ENCODE_PATH: &AsciiSet = &ENCODE.remove(b'/');

/// Why a signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// The request is not signed with an `Authorization` header, or the
    /// header is malformed.
    Malformed(String),
    /// The signature is not the one the secret gives.
    Mismatch,
    /// The request's time is more than 15 minutes from the server's.
    Expired,
}

/// The parts of an `AWS4-HMAC-SHA256` `Authorization` header.
struct Authorization<'a> {
    scope: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn authorization(headers: &HeaderMap) -> Result<Authorization<'_>, Invalid> {
    let malformed = |why: &str| Invalid::Malformed(why.to_owned());
    let header = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| malformed("no Authorization header"))?
        .to_str()
        .map_err(|_| malformed("the Authorization header is not text"))?;
    let rest = header
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| malformed("the algorithm is not AWS4-HMAC-SHA256"))?;
    let (mut scope, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(value) = part.strip_prefix("Credential=") {
            scope = Some(value);
        } else if let Some(value) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(value);
        } else if let Some(value) = part.strip_prefix("Signature=") {
            signature = Some(value);
        }
    }
    Ok(Authorization {
        scope: scope.ok_or_else(|| malformed("no Credential"))?,
        signed_headers: signed_headers.ok_or_else(|| malformed("no SignedHeaders"))?,
        signature: signature.ok_or_else(|| malformed("no Signature"))?,
    })
}

/// Checks the request's signature against `secret`, at time `now`.
pub(crate) fn verify(
    parts: &Parts,
    body: &[u8],
    secret: &str,
    now: SystemTime,
) -> Result<(), Invalid> {
    let auth = authorization(&parts.headers)?;
    let malformed = |why: &str| Invalid::Malformed(why.to_owned());
    // Credential=<key>/<date>/<region>/<service>/aws4_request
    let (_, scope) = auth
        .scope
        .split_once('/')
        .ok_or_else(|| malformed("the credential has no scope"))?;
    let mut fields = scope.split('/');
    let (Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(malformed(
            "the credential scope is not date/region/service/aws4_request",
        ));
    };
    let timestamp = parts
        .headers
        .get("x-amz-date")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| malformed("no X-Amz-Date header"))?;
    let signed_at = parse_timestamp(timestamp)
        .ok_or_else(|| malformed("X-Amz-Date is not YYYYMMDDTHHMMSSZ"))?;
    if !timestamp.starts_with(date) {
        return Err(malformed("the credential scope's date is not X-Amz-Date's"));
    }
    let skew = match now.duration_since(signed_at) {
        Ok(behind) => behind,
        Err(ahead) => ahead.duration(),
    };
    if skew > SKEW {
        return Err(Invalid::Expired);
    }
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    if !signed.contains(&"host") {
        return Err(malformed("the host header is not signed"));
    }
    let canonical = canonical_request(parts, body, &signed)?;
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let sent = hex::decode(auth.signature).map_err(|_| Invalid::Mismatch)?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&sent).map_err(|_| Invalid::Mismatch)
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The canonical request: method, path, query, the signed headers, their
/// names, and the body's hash.
fn canonical_request(parts: &Parts, body: &[u8], signed: &[&str]) -> Result<String, Invalid> {
    let mut headers = String::new();
    for name in signed {
        let values: Vec<String> = parts
            .headers
            .get_all(*name)
            .iter()
            .map(|value| {
                let text = String::from_utf8_lossy(value.as_bytes());
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(Invalid::Malformed(format!(
                "the signed header {name} is not in the request"
            )));
        }
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        parts.method.as_str(),
        canonical_path(parts.uri.path()),
        canonical_query(parts.uri.query().unwrap_or_default()),
        headers,
        signed.join(";"),
        hex::encode(Sha256::digest(body))
    ))
}

/// The path as sent, encoded once more (every service but S3 signs it so).
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    utf8_percent_encode(path, ENCODE_PATH).to_string()
}

/// Every parameter decoded and encoded again SigV4's way, sorted by name and
/// then value.
fn canonical_query(query: &str) -> String {
    let encode = |text: &str| {
        let decoded = percent_decode_str(text).decode_utf8_lossy();
        utf8_percent_encode(&decoded, ENCODE).to_string()
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(name), encode(value))
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDDTHHMMSSZ` as a time.
fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`), for dates from 1970 on.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let year = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use hyper::Request;

    use super::{canonical_query, parse_timestamp, verify, Invalid};

    /// AWS's worked example ("GET /?Action=ListUsers&Version=2010-05-08" to
    /// IAM), with the secret of the documentation's example credentials.
    #[test]
    fn aws_s_example_request_verifies_and_a_changed_one_does_not() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let request = |signature: &str, action: &str| {
            Request::builder()
                .method("GET")
                .uri(format!("https://iam.amazonaws.com/?Action={action}&Version=2010-05-08"))
                .header("host", "iam.amazonaws.com")
                .header(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )
                .header("x-amz-date", "20150830T123600Z")
                .header(
                    "authorization",
                    format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={signature}"),
                )
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let signature = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
        let at = parse_timestamp("20150830T123600Z").unwrap();
        let parts = request(signature, "ListUsers");
        assert_eq!(verify(&parts, b"", secret, at), Ok(()));
        assert_eq!(
            verify(&parts, b"", "another secret", at),
            Err(Invalid::Mismatch)
        );
        assert_eq!(
            verify(&request(signature, "ListRoles"), b"", secret, at),
            Err(Invalid::Mismatch)
        );
        assert_eq!(
            verify(&parts, b"a body", secret, at),
            Err(Invalid::Mismatch)
        );
        assert_eq!(
            verify(&parts, b"", secret, at + Duration::from_secs(16 * 60)),
            Err(Invalid::Expired)
        );
        assert_eq!(
            verify(&parts, b"", secret, at - Duration::from_secs(16 * 60)),
            Err(Invalid::Expired)
        );
    }

    #[test]
    fn timestamps_and_queries_are_read_as_sigv4_writes_them() {
        assert_eq!(parse_timestamp("19700101T000000Z"), Some(UNIX_EPOCH));
        assert_eq!(
            parse_timestamp("20150830T123600Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_440_938_160))
        );
        assert_eq!(parse_timestamp("20151330T123600Z"), None);
        assert_eq!(parse_timestamp("2015-08-30T12:36:00Z"), None);
        assert_eq!(canonical_query("b=2&a=%7e x&a=1&c"), "a=1&a=~%20x&b=2&c=");
    }
}
