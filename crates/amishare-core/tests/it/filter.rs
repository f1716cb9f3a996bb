//! The filter table (`testdata/filters/images.json`) answered by core's
//! engine; the simulation and `sim serve` answer the same table.

use std::collections::BTreeMap;

use amishare_core::filter::{self, Filter};
use amishare_core::store::{Image, ImageState};
use amishare_core::{AccountId, ImageId};
use serde::Deserialize;

/// The table: images and, for each list of filters, the images it keeps.
#[derive(Deserialize)]
struct Table {
    images: Vec<TableImage>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct TableImage {
    name: String,
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Case {
    what: String,
    filters: Vec<Filter>,
    expect: Vec<String>,
}

#[test]
fn core_answers_the_filter_table() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/filters/images.json"
    );
    let table: Table = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let images: Vec<Image> = table
        .images
        .iter()
        .enumerate()
        .map(|(n, image)| Image {
            id: ImageId::parse(&format!("ami-{n:017x}")).unwrap(),
            owner: AccountId::parse("111111111111").unwrap(),
            name: image.name.clone(),
            state: ImageState::Available,
            state_reason: None,
            failure_cause: None,
            public: false,
            block_devices: Vec::new(),
            tags: image.tags.clone(),
            source_image: None,
            source_region: None,
        })
        .collect();
    for case in &table.cases {
        filter::check_names(&case.filters, filter::IMAGE_FILTERS).unwrap();
        let mut kept: Vec<String> = images
            .iter()
            .filter(|image| filter::matches_all(&case.filters, *image))
            .map(|image| image.name.clone())
            .collect();
        kept.sort();
        assert_eq!(kept, case.expect, "{}", case.what);
    }
}
