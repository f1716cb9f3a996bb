//! Identifier parsing, driven by `testdata/ids.txt`.

use amishare_core::{
    AccountId, AliasArn, AliasName, ErrorKind, ImageId, InstanceId, KeyArn, KeyId, KeyRef,
    OrganizationArn, OuArn, PrincipalArn, PrincipalKind, Region, SnapshotId,
};

fn parse(kind: &str, input: &str) -> Result<String, amishare_core::Error> {
    Ok(match kind {
        "account" => AccountId::parse(input)?.to_string(),
        "region" => Region::parse(input)?.to_string(),
        "image" => ImageId::parse(input)?.to_string(),
        "snapshot" => SnapshotId::parse(input)?.to_string(),
        "instance" => InstanceId::parse(input)?.to_string(),
        "key-id" => KeyId::parse(input)?.to_string(),
        "key-arn" => KeyArn::parse(input)?.to_string(),
        "alias" => AliasName::parse(input)?.to_string(),
        "alias-arn" => AliasArn::parse(input)?.to_string(),
        "key-ref" => KeyRef::parse(input)?.to_string(),
        "principal" => PrincipalArn::parse(input)?.to_string(),
        "org" => OrganizationArn::parse(input)?.to_string(),
        "ou" => OuArn::parse(input)?.to_string(),
        other => panic!("unknown kind {other}"),
    })
}

#[test]
fn identifiers_parse_as_the_table_says() {
    let table = include_str!("../../../../testdata/ids.txt");
    let mut rows = 0;
    for (number, line) in table.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(3, ' ');
        let (kind, expect, input) = (
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        let got = parse(kind, input);
        match (expect, got) {
            ("ok", Ok(text)) => assert_eq!(
                text,
                input,
                "line {}: {kind} does not round-trip",
                number + 1
            ),
            ("err", Err(err)) => {
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "line {}", number + 1);
                assert!(
                    err.message().contains(input),
                    "line {}: message {:?} does not name the input",
                    number + 1,
                    err.message()
                );
            }
            (expect, got) => panic!(
                "line {}: {kind} {input:?}: expected {expect}, got {got:?}",
                number + 1
            ),
        }
        rows += 1;
    }
    assert!(50 <= rows, "the table has {rows} rows");
}

#[test]
fn principal_kinds_and_role_of_a_session() {
    let session =
        PrincipalArn::parse("arn:aws:sts::222222222222:assumed-role/Launcher/s1").unwrap();
    assert_eq!(session.kind(), PrincipalKind::AssumedRole);
    assert_eq!(session.account().as_str(), "222222222222");
    assert_eq!(
        session.role_arn().unwrap().as_str(),
        "arn:aws:iam::222222222222:role/Launcher"
    );
    let user = PrincipalArn::parse("arn:aws:iam::222222222222:user/b").unwrap();
    assert_eq!(user.kind(), PrincipalKind::User);
    assert!(user.role_arn().is_none());
    let root = AccountId::parse("222222222222").unwrap().root_arn();
    assert_eq!(root.kind(), PrincipalKind::Root);
    assert_eq!(root.as_str(), "arn:aws:iam::222222222222:root");
}

#[test]
fn key_refs_know_their_region() {
    let arn = KeyRef::parse(
        "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    )
    .unwrap();
    assert_eq!(arn.region().map(Region::as_str), Some("eu-west-1"));
    assert!(KeyRef::parse("alias/x").unwrap().region().is_none());
    assert!(AliasName::parse("alias/aws/ebs").unwrap().is_aws_reserved());
    assert!(!AliasName::parse("alias/awsome").unwrap().is_aws_reserved());
}

#[test]
fn identifiers_round_trip_through_serde() {
    let arn: KeyArn = serde_json::from_str(
        "\"arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab\"",
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&arn).unwrap(),
        "\"arn:aws:kms:ap-northeast-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab\""
    );
    let bad = serde_json::from_str::<AccountId>("\"12345\"").unwrap_err();
    assert!(bad.to_string().contains("12345"), "{bad}");
}

#[test]
fn identifiers_debug_as_their_parts() {
    let text = "arn:aws-cn:kms:cn-north-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let arn = KeyArn::parse(text).unwrap();
    assert_eq!(
        format!("{arn:?}"),
        r#"KeyArn { partition: "aws-cn", region: Region("cn-north-1"), account: AccountId("111111111111"), key_id: KeyId("1234abcd-12ab-34cd-56ef-1234567890ab") }"#
    );
    assert_eq!(arn.to_string(), text);
    let built = KeyArn::new(
        arn.region().clone(),
        arn.account().clone(),
        arn.key_id().clone(),
    );
    assert_eq!(
        built.to_string(),
        "arn:aws:kms:cn-north-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    );
    assert_ne!(built, arn);
    assert_eq!(
        format!("{:?}", ImageId::parse("ami-0123456789abcdef0").unwrap()),
        r#"ImageId("ami-0123456789abcdef0")"#
    );
}

#[test]
fn partitions_of_regions_and_arns() {
    let table = [
        ("ap-northeast-1", "aws"),
        ("us-east-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
    ];
    for (region, partition) in table {
        assert_eq!(
            Region::parse(region).unwrap().partition(),
            partition,
            "{region}"
        );
    }
    let user = PrincipalArn::parse("arn:aws-cn:iam::222222222222:user/b").unwrap();
    assert_eq!(user.partition(), "aws-cn");
    assert_eq!(
        AccountId::parse("222222222222")
            .unwrap()
            .root_arn()
            .partition(),
        "aws"
    );
    let key = KeyRef::parse(
        "arn:aws-us-gov:kms:us-gov-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    )
    .unwrap();
    assert_eq!(key.partition(), Some("aws-us-gov"));
    assert_eq!(KeyRef::parse("alias/x").unwrap().partition(), None);
    let org =
        OrganizationArn::parse("arn:aws-cn:organizations::111111111111:organization/o-a1b2c3d4e5")
            .unwrap();
    assert_eq!(org.partition(), "aws-cn");
}
