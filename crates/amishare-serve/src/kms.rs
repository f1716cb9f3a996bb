//! KMS over JSON 1.1 (`X-Amz-Target: TrentService.<Operation>`): each
//! operation's fields become a call on the caller's [`SimClient`], and its
//! result a JSON answer with KMS's member names.

use std::collections::BTreeMap;

use amishare_core::store::{
    CreateGrantRequest, CreateKeyRequest, KeyManager, KeyMetadata, KeyState, KeyStore,
};
use amishare_core::{AliasName, GrantId, KeyArn, KeyRef, PrincipalArn, Region};
use amishare_sim::api::{self, Page, Paged};
use amishare_sim::SimClient;
use serde_json::{json, Map, Value};

use crate::wire::{Service, WireError};

/// The operations this server answers.
pub(crate) const OPERATIONS: &[&str] = &[
    "CancelKeyDeletion",
    "CreateAlias",
    "CreateGrant",
    "CreateKey",
    "DeleteAlias",
    "DescribeKey",
    "DisableKey",
    "EnableKey",
    "GetKeyPolicy",
    "ListAliases",
    "ListGrants",
    "ListKeys",
    "ListResourceTags",
    "ListRetirableGrants",
    "PutKeyPolicy",
    "RevokeGrant",
    "ScheduleKeyDeletion",
    "TagResource",
    "UntagResource",
    "UpdateAlias",
];

/// The grant operations KMS knows.
const GRANT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
];

/// Runs one KMS operation as `client` in `region`; `None` is an answer
/// without a body.
pub(crate) async fn handle(
    client: &SimClient,
    region: &Region,
    operation: &str,
    body: &[u8],
) -> Result<Option<Value>, WireError> {
    let fields = Fields::parse(body)?;
    let call = Call { client, region };
    match operation {
        "CancelKeyDeletion" => call.cancel_key_deletion(&fields).await,
        "CreateAlias" => call.create_alias(&fields).await,
        "CreateGrant" => call.create_grant(&fields).await,
        "CreateKey" => call.create_key(&fields).await,
        "DeleteAlias" => call.delete_alias(&fields).await,
        "DescribeKey" => call.describe_key(&fields).await,
        "DisableKey" => call.disable_key(&fields).await,
        "EnableKey" => call.enable_key(&fields).await,
        "GetKeyPolicy" => call.get_key_policy(&fields).await,
        "ListAliases" => call.list_aliases(&fields).await,
        "ListGrants" => call.list_grants(&fields).await,
        "ListKeys" => call.list_keys(&fields).await,
        "ListResourceTags" => call.list_resource_tags(&fields).await,
        "ListRetirableGrants" => call.list_retirable_grants(&fields).await,
        "PutKeyPolicy" => call.put_key_policy(&fields).await,
        "RevokeGrant" => call.revoke_grant(&fields).await,
        "ScheduleKeyDeletion" => call.schedule_key_deletion(&fields).await,
        "TagResource" => call.tag_resource(&fields).await,
        "UntagResource" => call.untag_resource(&fields).await,
        "UpdateAlias" => call.update_alias(&fields).await,
        _ => Err(unknown_operation(operation)),
    }
}

/// The error KMS gives for an operation it does not have.
pub(crate) fn unknown_operation(operation: &str) -> WireError {
    WireError::new(
        "UnknownOperationException",
        format!("Unknown operation {operation}"),
    )
}

struct Call<'a> {
    client: &'a SimClient,
    region: &'a Region,
}

fn sim(err: amishare_core::Error) -> WireError {
    WireError::from_sim(Service::Kms, &err)
}

impl Call<'_> {
    async fn create_key(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        for (field, only) in [
            ("KeyUsage", "ENCRYPT_DECRYPT"),
            ("KeySpec", "SYMMETRIC_DEFAULT"),
            ("CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"),
            ("Origin", "AWS_KMS"),
        ] {
            if let Some(value) = fields.string(field)? {
                if value != only {
                    return Err(unsupported(&format!(
                        "the simulation creates only {field} {only} keys, not {value}"
                    )));
                }
            }
        }
        if fields.bool("MultiRegion")? == Some(true) {
            return Err(unsupported("the simulation creates no multi-Region keys"));
        }
        refuse_bypass(fields)?;
        let request = CreateKeyRequest {
            description: fields.string("Description")?.unwrap_or_default().to_owned(),
            policy: fields.string("Policy")?.map(str::to_owned),
            tags: fields.tags()?,
        };
        let metadata = self
            .client
            .create_key(self.region, &request)
            .await
            .map_err(sim)?;
        Ok(Some(json!({ "KeyMetadata": key_metadata(&metadata) })))
    }

    async fn describe_key(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let key = parse_key_ref(fields.required_string("KeyId")?)?;
        let metadata = self
            .client
            .describe_key(self.region, &key)
            .await
            .map_err(sim)?;
        Ok(Some(json!({ "KeyMetadata": key_metadata(&metadata) })))
    }

    async fn create_alias(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let alias = alias_name(fields.required_string("AliasName")?)?;
        let arn = self.key_arn(fields.required_string("TargetKeyId")?)?;
        if arn.account() != self.client.principal().account() {
            return Err(not_found(&arn));
        }
        self.client
            .create_alias(self.region, &alias, arn.key_id())
            .await
            .map_err(sim)?;
        Ok(None)
    }

    async fn get_key_policy(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let arn = self.key_arn(fields.required_string("KeyId")?)?;
        check_policy_name(fields)?;
        let policy = self.client.get_key_policy(&arn).await.map_err(sim)?;
        Ok(Some(json!({ "Policy": policy, "PolicyName": "default" })))
    }

    async fn put_key_policy(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let arn = self.key_arn(fields.required_string("KeyId")?)?;
        check_policy_name(fields)?;
        refuse_bypass(fields)?;
        let policy = fields.required_string("Policy")?;
        self.client
            .put_key_policy(&arn, policy)
            .await
            .map_err(sim)?;
        Ok(None)
    }

    async fn list_grants(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let request = api::ListGrants {
            key: self.key_arn(fields.required_string("KeyId")?)?,
            grant_id: fields.string("GrantId")?.map(str::to_owned),
            grantee: fields.string("GranteePrincipal")?.map(str::to_owned),
            page: page(fields)?,
        };
        let grants = self.client.kms_list_grants(&request).map_err(sim)?;
        Ok(Some(list("Grants", &grants, |grant| {
            grant_entry(&request.key, grant)
        })))
    }

    async fn list_retirable_grants(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let retiring = fields.required_string("RetiringPrincipal")?;
        let retiring = PrincipalArn::parse(retiring).map_err(|_| {
            validation(&format!(
                "the simulation takes an IAM principal ARN as RetiringPrincipal, not {retiring:?}"
            ))
        })?;
        let request = api::ListRetirableGrants {
            retiring,
            page: page(fields)?,
        };
        let grants = self
            .client
            .kms_list_retirable_grants(self.region, &request)
            .map_err(sim)?;
        Ok(Some(list("Grants", &grants, |grant| match &grant.key {
            Some(key) => grant_entry(key, grant),
            None => json!({ "GrantId": grant.id.as_str() }),
        })))
    }

    async fn list_keys(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let keys = self
            .client
            .kms_list_keys(self.region, &page(fields)?)
            .map_err(sim)?;
        Ok(Some(list(
            "Keys",
            &keys,
            |arn| json!({ "KeyId": arn.key_id().as_str(), "KeyArn": arn.to_string() }),
        )))
    }

    async fn list_resource_tags(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let arn = self.key_arn(fields.required_string("KeyId")?)?;
        let tags = self
            .client
            .kms_list_resource_tags(&arn, &page(fields)?)
            .map_err(sim)?;
        Ok(Some(list(
            "Tags",
            &tags,
            |(key, value)| json!({ "TagKey": key, "TagValue": value }),
        )))
    }

    async fn create_grant(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let arn = self.key_arn(fields.required_string("KeyId")?)?;
        let grantee = fields.required_string("GranteePrincipal")?;
        let grantee = PrincipalArn::parse(grantee).map_err(|_| {
            validation(&format!(
                "the simulation grants only to IAM principals (ARNs), not {grantee:?}"
            ))
        })?;
        let operations = fields.required_strings("Operations")?;
        if let Some(bad) = operations
            .iter()
            .find(|op| !GRANT_OPERATIONS.contains(&op.as_str()))
        {
            return Err(validation(&format!(
                "1 validation error detected: Value '[{bad}]' at 'operations' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                GRANT_OPERATIONS.join(", ")
            )));
        }
        if fields.has("Constraints") {
            return Err(unsupported(
                "the simulation does not model grant Constraints",
            ));
        }
        let retiring_principal = fields
            .string("RetiringPrincipal")?
            .map(|retiring| {
                PrincipalArn::parse(retiring).map_err(|_| {
                    validation(&format!(
                        "the simulation takes an IAM principal ARN as RetiringPrincipal, not {retiring:?}"
                    ))
                })
            })
            .transpose()?;
        let request = CreateGrantRequest {
            grantee,
            operations,
            name: fields.string("Name")?.map(str::to_owned),
            retiring_principal,
        };
        let grant = self
            .client
            .create_grant(&arn, &request)
            .await
            .map_err(sim)?;
        Ok(Some(json!({ "GrantId": grant.as_str() })))
    }

    async fn revoke_grant(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let arn = self.key_arn(fields.required_string("KeyId")?)?;
        let grant = fields.required_string("GrantId")?;
        let grant = GrantId::parse(grant).map_err(|_| {
            WireError::new(
                "InvalidGrantIdException",
                format!("Invalid grant ID {grant}"),
            )
        })?;
        self.client.revoke_grant(&arn, &grant).await.map_err(sim)?;
        Ok(None)
    }

    async fn enable_key(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let key = self.key_id_or_arn(fields)?;
        self.client
            .enable_key(self.region, &key)
            .await
            .map_err(sim)?;
        Ok(None)
    }

    async fn disable_key(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let key = self.key_id_or_arn(fields)?;
        self.client
            .disable_key(self.region, &key)
            .await
            .map_err(sim)?;
        Ok(None)
    }

    /// `DeletionDate` is the end of the waiting period on the world's
    /// virtual clock, in epoch seconds as KMS's JSON gives timestamps.
    async fn schedule_key_deletion(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let key = self.key_id_or_arn(fields)?;
        // A negative or oversized value is out of range either way.
        let days = fields
            .integer("PendingWindowInDays")?
            .map(|days| u32::try_from(days).unwrap_or(u32::MAX));
        let scheduled = self
            .client
            .schedule_key_deletion(self.region, &key, days)
            .await
            .map_err(sim)?;
        Ok(Some(json!({
            "KeyId": scheduled.key.to_string(),
            "DeletionDate": scheduled.deletion_at.map(|at| at.as_secs()),
            "KeyState": KeyState::PendingDeletion.to_string(),
            "PendingWindowInDays": scheduled.window_days,
        })))
    }

    async fn cancel_key_deletion(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let key = self.key_id_or_arn(fields)?;
        let arn = self
            .client
            .cancel_key_deletion(self.region, &key)
            .await
            .map_err(sim)?;
        Ok(Some(json!({ "KeyId": arn.to_string() })))
    }

    async fn tag_resource(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let key = self.key_id_or_arn(fields)?;
        let tags = fields.tags()?;
        self.client
            .tag_resource(self.region, &key, &tags)
            .await
            .map_err(sim)?;
        Ok(None)
    }

    async fn untag_resource(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let key = self.key_id_or_arn(fields)?;
        let tag_keys = fields.required_strings("TagKeys")?;
        self.client
            .untag_resource(self.region, &key, &tag_keys)
            .await
            .map_err(sim)?;
        Ok(None)
    }

    async fn list_aliases(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let key = match fields.string("KeyId")? {
            Some(_) => Some(self.key_id_or_arn(fields)?),
            None => None,
        };
        let request = api::ListAliases {
            key,
            page: page(fields)?,
        };
        let aliases = self
            .client
            .kms_list_aliases(self.region, &request)
            .map_err(sim)?;
        Ok(Some(list("Aliases", &aliases, |alias| {
            json!({
                "AliasName": alias.arn.alias().as_str(),
                "AliasArn": alias.arn.to_string(),
                "TargetKeyId": alias.target.as_str(),
            })
        })))
    }

    async fn update_alias(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let alias = alias_name(fields.required_string("AliasName")?)?;
        let target = KeyRef::Arn(self.key_arn(fields.required_string("TargetKeyId")?)?);
        self.client
            .update_alias(self.region, &alias, &target)
            .await
            .map_err(sim)?;
        Ok(None)
    }

    async fn delete_alias(&self, fields: &Fields) -> Result<Option<Value>, WireError> {
        let alias = alias_name(fields.required_string("AliasName")?)?;
        self.client
            .delete_alias(self.region, &alias)
            .await
            .map_err(sim)?;
        Ok(None)
    }

    /// The `KeyId` member of an operation that takes a key ID or key ARN.
    fn key_id_or_arn(&self, fields: &Fields) -> Result<KeyRef, WireError> {
        self.key_arn(fields.required_string("KeyId")?)
            .map(KeyRef::Arn)
    }

    /// The key an operation that takes a key ID or key ARN names: a bare key
    /// ID is in the caller's account and the request's region, as KMS
    /// resolves it; an ARN must be of the request's region.
    fn key_arn(&self, value: &str) -> Result<KeyArn, WireError> {
        match parse_key_ref(value)? {
            KeyRef::Id(id) => Ok(KeyArn::new(
                self.region.clone(),
                self.client.principal().account().clone(),
                id,
            )),
            KeyRef::Arn(arn) if arn.region() == self.region => Ok(arn),
            KeyRef::Arn(_) | KeyRef::AliasArn(_) => Err(WireError::new(
                "NotFoundException",
                format!("Invalid arn {}", self.region),
            )),
            KeyRef::Alias(alias) => Err(WireError::new(
                "NotFoundException",
                format!("Invalid keyId {alias}: this operation takes a key ID or key ARN"),
            )),
        }
    }
}

/// An `AliasName` member, with KMS's answer to one without `alias/`.
fn alias_name(name: &str) -> Result<AliasName, WireError> {
    AliasName::parse(name).map_err(|_| {
        WireError::new(
            "ValidationException",
            "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
        )
    })
}

/// A grant as `ListGrants` and `ListRetirableGrants` list it.
fn grant_entry(key: &KeyArn, grant: &amishare_core::store::Grant) -> Value {
    let mut entry = json!({
        "KeyId": key.to_string(),
        "GrantId": grant.id.as_str(),
        "Name": grant.name.clone().unwrap_or_default(),
        "GranteePrincipal": grant.grantee,
        "IssuingAccount": grant.issuing_account.root_arn().as_str(),
        "Operations": grant.operations,
    });
    if let Some(retiring) = &grant.retiring_principal {
        entry["RetiringPrincipal"] = json!(retiring);
    }
    entry
}

/// A key ID, key ARN, alias name or alias ARN, with KMS's errors for each
/// malformed form.
fn parse_key_ref(value: &str) -> Result<KeyRef, WireError> {
    KeyRef::parse(value).map_err(|_| {
        if value.starts_with("arn:") {
            WireError::new(
                "InvalidArnException",
                format!("{value} is not a valid ARN"),
            )
        } else if value.starts_with("alias/") {
            validation("Alias must start with the prefix \"alias/\" and contain only alphanumeric characters, '/', '_', '-' or ':'")
        } else {
            WireError::new("NotFoundException", format!("Invalid keyId {value}"))
        }
    })
}

fn not_found(arn: &KeyArn) -> WireError {
    WireError::new("NotFoundException", format!("Key '{arn}' does not exist"))
}

/// `Limit` and `Marker`. A `Limit` that is no `u32` is out of range either
/// way, and the simulation refuses it as 0 or as the largest `u32`.
fn page(fields: &Fields) -> Result<Page, WireError> {
    let limit = fields
        .integer("Limit")?
        .map(|limit| u32::try_from(limit).unwrap_or(if limit < 0 { 0 } else { u32::MAX }));
    Ok(Page {
        max_results: limit,
        next_token: fields.string("Marker")?.map(str::to_owned),
    })
}

/// A page of a KMS list: its items under `member`, `Truncated`, and
/// `NextMarker` when more follow.
fn list<T>(member: &str, paged: &Paged<T>, entry: impl Fn(&T) -> Value) -> Value {
    let mut answer = json!({
        member: paged.items.iter().map(entry).collect::<Vec<Value>>(),
        "Truncated": paged.truncated(),
    });
    if let Some(marker) = &paged.next_token {
        answer["NextMarker"] = json!(marker);
    }
    answer
}

fn validation(message: &str) -> WireError {
    WireError::new("ValidationException", message)
}

fn unsupported(message: &str) -> WireError {
    WireError::new("UnsupportedOperationException", message)
}

/// KMS keys have one key policy, named `default`.
fn check_policy_name(fields: &Fields) -> Result<(), WireError> {
    match fields.string("PolicyName")? {
        None | Some("default") => Ok(()),
        Some(other) => Err(WireError::new(
            "NotFoundException",
            format!("No such policy exists: {other}"),
        )),
    }
}

/// The simulation always applies the lockout safety check, so it refuses to
/// be asked to skip it rather than pretend.
fn refuse_bypass(fields: &Fields) -> Result<(), WireError> {
    if fields.bool("BypassPolicyLockoutSafetyCheck")? == Some(true) {
        return Err(unsupported(
            "the simulation always applies the key policy lockout safety check",
        ));
    }
    Ok(())
}

/// `KeyMetadata` as KMS sends it. The simulation keeps no creation dates, so
/// `CreationDate` is left out.
fn key_metadata(metadata: &KeyMetadata) -> Value {
    json!({
        "AWSAccountId": metadata.arn.account().as_str(),
        "KeyId": metadata.key_id().as_str(),
        "Arn": metadata.arn.to_string(),
        "Enabled": metadata.state == KeyState::Enabled,
        "Description": metadata.description,
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": metadata.state.to_string(),
        "Origin": "AWS_KMS",
        "KeyManager": match metadata.manager {
            KeyManager::Customer => "CUSTOMER",
            KeyManager::Aws => "AWS",
        },
        "KeySpec": "SYMMETRIC_DEFAULT",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": false,
    })
}

/// The members of a JSON request, with KMS's errors for missing and
/// mistyped ones.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// The request body: a JSON object (an empty body is an empty object).
    fn parse(body: &[u8]) -> Result<Fields, WireError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields { map: Map::new() });
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(Fields { map }),
            Ok(_) => Err(serialization("the request body must be a JSON object")),
            Err(err) => Err(serialization(&format!(
                "the request body is not JSON: {err}"
            ))),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|value| !value.is_null())
    }

    fn string(&self, name: &str) -> Result<Option<&str>, WireError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(serialization(&format!("{name} must be a string"))),
        }
    }

    fn required_string(&self, name: &str) -> Result<&str, WireError> {
        self.string(name)?.ok_or_else(|| missing(name))
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, WireError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(serialization(&format!("{name} must be a boolean"))),
        }
    }

    fn integer(&self, name: &str) -> Result<Option<i64>, WireError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => number
                .as_i64()
                .map(Some)
                .ok_or_else(|| serialization(&format!("{name} must be an integer"))),
            Some(_) => Err(serialization(&format!("{name} must be an integer"))),
        }
    }

    /// A `Tags` member: `TagKey`/`TagValue` pairs.
    fn tags(&self) -> Result<BTreeMap<String, String>, WireError> {
        let mut tags = BTreeMap::new();
        for tag in self.objects("Tags")? {
            let key = tag.required_string("TagKey")?;
            let value = tag.required_string("TagValue")?;
            tags.insert(key.to_owned(), value.to_owned());
        }
        Ok(tags)
    }

    fn required_strings(&self, name: &str) -> Result<Vec<String>, WireError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Err(missing(name)),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    _ => Err(serialization(&format!("{name} must be a list of strings"))),
                })
                .collect(),
            Some(_) => Err(serialization(&format!("{name} must be a list"))),
        }
    }

    fn objects(&self, name: &str) -> Result<Vec<Fields>, WireError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::Object(map) => Ok(Fields { map: map.clone() }),
                    _ => Err(serialization(&format!("{name} must be a list of objects"))),
                })
                .collect(),
            Some(_) => Err(serialization(&format!("{name} must be a list"))),
        }
    }
}

/// KMS's answer to a body it cannot read.
fn serialization(message: &str) -> WireError {
    WireError::new("SerializationException", message)
}

/// KMS's answer to a missing required member, naming it as KMS does
/// (`keyId` for `KeyId`).
fn missing(name: &str) -> WireError {
    let mut chars = name.chars();
    let camel: String = chars
        .next()
        .map(|first| first.to_ascii_lowercase())
        .into_iter()
        .chain(chars)
        .collect();
    validation(&format!(
        "1 validation error detected: Value null at '{camel}' failed to satisfy constraint: Member must not be null"
    ))
}
