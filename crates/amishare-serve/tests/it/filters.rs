//! The filter table (`testdata/filters/images.json`) over the wire:
//! `DescribeImages` with `Filter.N` answers as core's engine and the
//! simulation do.

use serde_json::Value;

use crate::support::{testdata, Harness, OWNER_KEY, REGION, SEED_INSTANCE};

#[tokio::test]
async fn the_server_answers_the_filter_table() {
    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("filters/images.json")).unwrap(),
    )
    .unwrap();
    let server = Harness::seed(10_000.0).await;
    let mut made = Vec::new();
    for image in table["images"].as_array().unwrap() {
        let mut params: Vec<(String, String)> = vec![
            ("Action".into(), "CreateImage".into()),
            ("InstanceId".into(), SEED_INSTANCE.into()),
            ("Name".into(), image["name"].as_str().unwrap().into()),
            ("TagSpecification.1.ResourceType".into(), "image".into()),
        ];
        for (n, (key, value)) in image["tags"].as_object().unwrap().iter().enumerate() {
            params.push((format!("TagSpecification.1.Tag.{}.Key", n + 1), key.clone()));
            params.push((
                format!("TagSpecification.1.Tag.{}.Value", n + 1),
                value.as_str().unwrap().to_owned(),
            ));
        }
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        made.push(
            server
                .ec2(OWNER_KEY, REGION, &params)
                .await
                .ok()
                .text("imageId"),
        );
    }
    for image in &made {
        server.until_available(image).await;
    }
    for case in table["cases"].as_array().unwrap() {
        let mut params: Vec<(String, String)> = vec![
            ("Action".into(), "DescribeImages".into()),
            ("Owner.1".into(), "self".into()),
        ];
        for (n, filter) in case["filters"].as_array().unwrap().iter().enumerate() {
            let prefix = format!("Filter.{}", n + 1);
            params.push((
                format!("{prefix}.Name"),
                filter["name"].as_str().unwrap().into(),
            ));
            for (m, value) in filter["values"].as_array().unwrap().iter().enumerate() {
                params.push((
                    format!("{prefix}.Value.{}", m + 1),
                    value.as_str().unwrap().into(),
                ));
            }
        }
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let answer = server.ec2(OWNER_KEY, REGION, &params).await.ok();
        let mut kept = answer.texts("imagesSet/item/name");
        kept.sort();
        let expect: Vec<String> = serde_json::from_value(case["expect"].clone()).unwrap();
        assert_eq!(kept, expect, "{}", case["what"]);
    }
}
