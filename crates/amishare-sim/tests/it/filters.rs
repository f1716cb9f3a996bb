//! The filter table (`testdata/filters/images.json`) through the
//! simulation's `DescribeImages`: the same answers as core's engine.

use std::collections::BTreeMap;

use amishare_core::filter::Filter;
use amishare_core::store::{CreateImageRequest, ImageStore};
use amishare_sim::api::{DescribeImages, Owner};
use serde_json::Value;

use crate::fixture::Fx;

#[tokio::test(start_paused = true)]
async fn the_simulation_answers_the_filter_table() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/filters/images.json"
    );
    let table: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let fx = Fx::new();
    for image in table["images"].as_array().unwrap() {
        let tags: BTreeMap<String, String> = serde_json::from_value(image["tags"].clone()).unwrap();
        let instance = fx.plain_instance();
        fx.owner
            .create_image(
                &fx.region,
                &CreateImageRequest {
                    instance,
                    name: image["name"].as_str().unwrap().to_owned(),
                    tags,
                },
            )
            .await
            .unwrap();
    }
    fx.advance(180);
    for case in table["cases"].as_array().unwrap() {
        let filters: Vec<Filter> = serde_json::from_value(case["filters"].clone()).unwrap();
        let expect: Vec<String> = serde_json::from_value(case["expect"].clone()).unwrap();
        let answer = fx
            .owner
            .ec2_describe_images(
                &fx.region,
                &DescribeImages {
                    owners: vec![Owner::Me],
                    filters,
                    ..DescribeImages::default()
                },
            )
            .unwrap();
        let mut kept: Vec<String> = answer.items.into_iter().map(|image| image.name).collect();
        kept.sort();
        assert_eq!(kept, expect, "{}", case["what"]);
    }
}
