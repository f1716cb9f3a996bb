//! EC2's `MaxResults` and `NextToken`: every item once, page by page.

use crate::support::{Harness, OWNER_KEY, REGION};

/// Every page of `params` at `max` a page: the texts at `path`, per page.
async fn pages(
    server: &Harness,
    params: &[(&str, &str)],
    max: &str,
    path: &str,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = params.to_vec();
        request.push(("MaxResults", max));
        if let Some(token) = &token {
            request.push(("NextToken", token));
        }
        let answer = server.ec2(OWNER_KEY, REGION, &request).await.ok();
        pages.push(answer.texts(path));
        match answer.text("nextToken") {
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
        let pages = pages(&server, params, max, path).await;
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
