//! EC2's `MaxResults` and `NextToken`, Auto Scaling's `MaxRecords` and
//! `NextToken`, and KMS's `Limit` and `Marker`: every item once, page by
//! page.

use serde_json::{json, Value};

use crate::support::{Answer, Harness, OWNER_KEY, REGION, TARGET_KEY};

/// Which query service a walk pages through, and as whom.
#[derive(Clone, Copy)]
enum Via {
    /// EC2, with the access key.
    Ec2(&'static str),
    /// Auto Scaling, with the access key.
    AutoScaling(&'static str),
}

/// Every page of `params` at `size` (`MaxResults` or `MaxRecords`) a page:
/// the texts at `path`, per page.
async fn walk(
    server: &Harness,
    via: Via,
    params: &[(&str, &str)],
    size: (&str, &str),
    path: &str,
) -> Vec<Vec<String>> {
    let action = params
        .iter()
        .find(|(name, _)| *name == "Action")
        .map_or("", |(_, action)| *action);
    let next_path = match via {
        Via::Ec2(_) => "nextToken".to_owned(),
        Via::AutoScaling(_) => format!("{action}Result/NextToken"),
    };
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = params.to_vec();
        request.push(size);
        if let Some(token) = &token {
            request.push(("NextToken", token));
        }
        let answer = match via {
            Via::Ec2(key) => server.ec2(key, REGION, &request).await,
            Via::AutoScaling(key) => server.autoscaling(key, REGION, &request).await,
        }
        .ok();
        pages.push(answer.texts(path));
        match answer.text(&next_path) {
            next if next.is_empty() => return pages,
            next => token = Some(next),
        }
        assert!(pages.len() < 100, "the pages never end");
    }
}

#[tokio::test]
async fn describe_calls_page_through_every_item_once() {
    let server = Harness::seed(10_000.0).await;
    let image = server.image_seed_instance().await;
    server.until_available(&image).await;
    let run = server
        .ec2(
            OWNER_KEY,
            REGION,
            &[
                ("Action", "RunInstances"),
                ("ImageId", image.as_str()),
                ("MinCount", "11"),
                ("MaxCount", "11"),
            ],
        )
        .await;
    let launched = run.texts("instancesSet/item/instanceId");
    assert_eq!(launched.len(), 11, "{}", run.body);
    let all = server
        .ec2(OWNER_KEY, REGION, &[("Action", "DescribeInstances")])
        .await
        .ok()
        .texts("reservationSet/item/instancesSet/item/instanceId");
    assert_eq!(all.len(), 12, "the seed's instance and the new ones");
    for (params, max, path, per_page) in [
        (
            &[("Action", "DescribeInstances")][..],
            "5",
            "reservationSet/item/instancesSet/item/instanceId",
            vec![5, 5, 2],
        ),
        (
            &[("Action", "DescribeVolumes")][..],
            "5",
            "volumeSet/item/volumeId",
            vec![5, 5, 2],
        ),
    ] {
        let pages = walk(
            &server,
            Via::Ec2(OWNER_KEY),
            params,
            ("MaxResults", max),
            path,
        )
        .await;
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, per_page, "{params:?}");
        let mut seen: Vec<String> = pages.into_iter().flatten().collect();
        let count = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), count, "{params:?}: an item came twice");
    }
    // A page size EC2 refuses, and paging together with IDs.
    for (params, code) in [
        (
            &[("Action", "DescribeInstances"), ("MaxResults", "4")][..],
            "InvalidParameterValue",
        ),
        (
            &[
                ("Action", "DescribeInstances"),
                ("MaxResults", "5"),
                ("InstanceId.1", launched[0].as_str()),
            ][..],
            "InvalidParameterCombination",
        ),
    ] {
        let answer = server.ec2(OWNER_KEY, REGION, params).await;
        assert_eq!(answer.ec2_code(), code, "{params:?}");
    }
}

/// The owner's user, which names itself the retiring principal of its grants.
const OWNER_USER: &str = "arn:aws:iam::111111111111:user/a-admin";

/// A grant of `Decrypt` on the owner's `key` to `grantee` of the target's
/// account, retirable by `retiring` if given.
async fn grant(server: &Harness, key: &str, grantee: &str, retiring: Option<&str>) {
    let mut request = json!({
        "KeyId": key,
        "GranteePrincipal": format!("arn:aws:iam::222222222222:user/{grantee}"),
        "Operations": ["Decrypt"],
    });
    if let Some(retiring) = retiring {
        request["RetiringPrincipal"] = json!(retiring);
    }
    server
        .kms(OWNER_KEY, REGION, "CreateGrant", request)
        .await
        .ok();
}

/// Every page of the KMS list `operation` at `limit` a page: the `field` of
/// each item of `member`, per page. Each page but the last says `Truncated`
/// and gives a `NextMarker`; the last says neither.
async fn kms_pages(
    server: &Harness,
    operation: &str,
    request: &Value,
    limit: u32,
    (member, field): (&str, &str),
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut body = request.clone();
        body["Limit"] = json!(limit);
        if let Some(marker) = &marker {
            body["Marker"] = json!(marker);
        }
        let answer = server
            .kms(OWNER_KEY, REGION, operation, body)
            .await
            .ok()
            .json();
        let items: Vec<String> = answer[member]
            .as_array()
            .unwrap_or_else(|| panic!("{operation}: no {member} in {answer}"))
            .iter()
            .map(|item| item[field].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(items.len() <= limit as usize, "{operation}: {answer}");
        pages.push(items);
        match (&answer["Truncated"], &answer["NextMarker"]) {
            (Value::Bool(false), Value::Null) => return pages,
            (Value::Bool(true), Value::String(next)) => marker = Some(next.clone()),
            _ => panic!("{operation}: Truncated and NextMarker disagree: {answer}"),
        }
        assert!(pages.len() < 100, "{operation}: the pages never end");
    }
}

#[tokio::test]
async fn kms_lists_page_through_every_item_once() {
    let server = Harness::seed(1.0).await;
    let mut keys = Vec::new();
    for n in 0..3 {
        let key = server.create_key(&format!("key {n}")).await;
        server
            .kms(
                OWNER_KEY,
                REGION,
                "CreateAlias",
                json!({ "AliasName": format!("alias/paged-{n}"), "TargetKeyId": key }),
            )
            .await
            .ok();
        keys.push(key);
    }
    for (n, grantee) in ["b-user", "c-user", "d-user", "e-user", "f-user"]
        .iter()
        .enumerate()
    {
        // Three grants on the first key, one on each other key: all five
        // retirable by the owner's user.
        let key = &keys[n.saturating_sub(2).min(2)];
        grant(&server, key, grantee, Some(OWNER_USER)).await;
    }
    server
        .kms(
            OWNER_KEY,
            REGION,
            "TagResource",
            json!({ "KeyId": keys[0], "Tags": [
                { "TagKey": "a", "TagValue": "1" },
                { "TagKey": "b", "TagValue": "2" },
                { "TagKey": "c", "TagValue": "3" },
            ] }),
        )
        .await
        .ok();

    let grants_of = json!({ "KeyId": keys[0] });
    let retirable = json!({ "RetiringPrincipal": OWNER_USER });
    for (operation, request, item, at_least) in [
        ("ListKeys", json!({}), ("Keys", "KeyId"), 3),
        ("ListAliases", json!({}), ("Aliases", "AliasName"), 3),
        ("ListGrants", grants_of, ("Grants", "GrantId"), 3),
        ("ListRetirableGrants", retirable, ("Grants", "GrantId"), 5),
        (
            "ListResourceTags",
            json!({ "KeyId": keys[0] }),
            ("Tags", "TagKey"),
            3,
        ),
    ] {
        // One call without a limit holds every item.
        let whole = server
            .kms(OWNER_KEY, REGION, operation, request.clone())
            .await
            .ok()
            .json();
        assert_eq!(whole["Truncated"], false, "{operation}: {whole}");
        let mut all: Vec<String> = whole[item.0]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry[item.1].as_str().unwrap().to_owned())
            .collect();
        all.sort();
        assert!(all.len() >= at_least, "{operation}: {all:?}");
        for limit in [1, 2] {
            let pages = kms_pages(&server, operation, &request, limit, item).await;
            assert_eq!(
                pages.len(),
                all.len().div_ceil(limit as usize),
                "{operation} at {limit}: {pages:?}"
            );
            let mut seen: Vec<String> = pages.into_iter().flatten().collect();
            seen.sort();
            assert_eq!(seen, all, "{operation} at {limit}: every item exactly once");
        }
        // A marker KMS never gave, and limits outside 1 to 1000.
        for (change, code) in [
            (("Marker", json!("not-a-marker")), "InvalidMarkerException"),
            (("Limit", json!(0)), "ValidationException"),
            (("Limit", json!(1001)), "ValidationException"),
            (("Limit", json!(-1)), "ValidationException"),
        ] {
            let mut body = request.clone();
            body[change.0] = change.1.clone();
            let answer = server.kms(OWNER_KEY, REGION, operation, body).await;
            assert_eq!(
                (
                    answer.status,
                    answer.json()["__type"].as_str().map(str::to_owned)
                ),
                (400, Some(code.to_owned())),
                "{operation} {change:?}: {}",
                answer.body
            );
        }
    }
    // The grants' filters apply before paging: one grantee's grant alone.
    let one = kms_pages(
        &server,
        "ListGrants",
        &json!({ "KeyId": keys[0], "GranteePrincipal": "arn:aws:iam::222222222222:user/c-user" }),
        1,
        ("Grants", "GranteePrincipal"),
    )
    .await;
    assert_eq!(one, [["arn:aws:iam::222222222222:user/c-user"]]);
}

#[tokio::test]
async fn kms_pages_hold_at_most_what_each_list_allows() {
    let server = Harness::seed(1.0).await;
    let key = server.create_key("many grants").await;
    for n in 0..101 {
        grant(&server, &key, &format!("user-{n}"), None).await;
    }
    // 50 without a limit, 100 at most whatever the limit.
    for (limit, per_page) in [(None, vec![50, 50, 1]), (Some(1000), vec![100, 1])] {
        let mut request = json!({ "KeyId": key });
        if let Some(limit) = limit {
            request["Limit"] = json!(limit);
        }
        let mut sizes = Vec::new();
        loop {
            let answer = server
                .kms(OWNER_KEY, REGION, "ListGrants", request.clone())
                .await
                .ok()
                .json();
            sizes.push(answer["Grants"].as_array().unwrap().len());
            match answer["NextMarker"].as_str() {
                Some(marker) => request["Marker"] = json!(marker),
                None => break,
            }
        }
        assert_eq!(sizes, per_page, "Limit {limit:?}");
    }
}

/// Asserts `pages` hold `all`, in order, each item once, `per_page` a page.
fn holds_in_order(pages: Vec<Vec<String>>, all: &[String], per_page: &[usize], what: &str) {
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, per_page, "{what}");
    let walked: Vec<String> = pages.into_iter().flatten().collect();
    assert_eq!(walked, all, "{what}: every item once, in the unpaged order");
}

/// A query answer that is an error with `code`.
fn refused(answer: Answer, code: &str) {
    assert_ne!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains(code), "{}", answer.body);
}

#[tokio::test]
async fn launch_templates_groups_and_activities_page_through_every_item_once() {
    let server = Harness::seed(10_000.0).await;
    let image = server.image_seed_instance().await;
    server.until_available(&image).await;
    // B cannot launch A's image: each launch is a cancelled activity, which
    // is all paging needs.
    let names = ["lt-a", "lt-b", "lt-c"];
    for name in names {
        let data = ("LaunchTemplateData.ImageId", image.as_str());
        server
            .ec2(
                TARGET_KEY,
                REGION,
                &[
                    ("Action", "CreateLaunchTemplate"),
                    ("LaunchTemplateName", name),
                    data,
                ],
            )
            .await
            .ok();
        server
            .autoscaling(
                TARGET_KEY,
                REGION,
                &[
                    ("Action", "CreateAutoScalingGroup"),
                    ("AutoScalingGroupName", name),
                    ("LaunchTemplate.LaunchTemplateName", name),
                    ("MinSize", "0"),
                    ("MaxSize", "3"),
                    ("DesiredCapacity", "3"),
                    ("AvailabilityZones.member.1", "ap-northeast-1a"),
                ],
            )
            .await
            .ok();
    }
    let templates = [("Action", "DescribeLaunchTemplates")];
    let all = server.ec2(TARGET_KEY, REGION, &templates).await.ok();
    let all = all.texts("launchTemplates/item/launchTemplateName");
    assert_eq!(all, names, "the target's templates, unpaged");
    let pages = walk(
        &server,
        Via::Ec2(TARGET_KEY),
        &templates,
        ("MaxResults", "2"),
        "launchTemplates/item/launchTemplateName",
    )
    .await;
    holds_in_order(pages, &all, &[2, 1], "DescribeLaunchTemplates");

    let groups = [("Action", "DescribeAutoScalingGroups")];
    let path = "DescribeAutoScalingGroupsResult/AutoScalingGroups/member/AutoScalingGroupName";
    let all = server.autoscaling(TARGET_KEY, REGION, &groups).await.ok();
    assert_eq!(all.texts(path), names, "the target's groups, unpaged");
    let pages = walk(
        &server,
        Via::AutoScaling(TARGET_KEY),
        &groups,
        ("MaxRecords", "1"),
        path,
    )
    .await;
    holds_in_order(
        pages,
        &all.texts(path),
        &[1, 1, 1],
        "DescribeAutoScalingGroups",
    );

    let activities = [
        ("Action", "DescribeScalingActivities"),
        ("AutoScalingGroupName", "lt-b"),
    ];
    let path = "DescribeScalingActivitiesResult/Activities/member/ActivityId";
    let all = server
        .autoscaling(TARGET_KEY, REGION, &activities)
        .await
        .ok();
    let all = all.texts(path);
    assert!(
        2 <= all.len(),
        "several activities to page through: {all:?}"
    );
    let pages = walk(
        &server,
        Via::AutoScaling(TARGET_KEY),
        &activities,
        ("MaxRecords", "1"),
        path,
    )
    .await;
    assert!(pages.iter().all(|page| page.len() == 1), "{pages:?}");
    // The group goes on retrying while the pages are read: activities that
    // start meanwhile come first (newest first), and a page boundary never
    // moves, so no activity is skipped or read twice.
    let walked: Vec<String> = pages.into_iter().flatten().collect();
    let mut once = walked.clone();
    once.sort();
    once.dedup();
    assert_eq!(
        once.len(),
        walked.len(),
        "an activity came twice: {walked:?}"
    );
    assert!(
        walked.ends_with(&all),
        "{walked:?} ends with the earlier {all:?}"
    );

    for (size, code) in [("0", "ValidationError"), ("101", "ValidationError")] {
        let mut request = groups.to_vec();
        request.push(("MaxRecords", size));
        refused(server.autoscaling(TARGET_KEY, REGION, &request).await, code);
    }
    let mut request = templates.to_vec();
    request.push(("MaxResults", "201"));
    refused(
        server.ec2(TARGET_KEY, REGION, &request).await,
        "InvalidParameterValue",
    );
}
