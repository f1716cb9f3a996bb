//! The world's clock follows wall time, sped up by the time scale.

use std::time::{Duration, Instant};

use amishare_serve::{ServeError, ServeOptions, Server};

use crate::support::{Harness, OWNER_KEY, SEED_WORLD};

#[tokio::test]
async fn a_poller_sees_pending_turn_available_at_the_time_scale() {
    // 1000 times faster: the 180 s of CreateImage take 0.18 s.
    let server = Harness::seed(1000.0).await;
    let started = Instant::now();
    let image = server.image_seed_instance().await;
    let seen = server.until_available(&image).await;
    let took = started.elapsed();
    assert_eq!(seen, ["pending", "available"]);
    assert!(
        took >= Duration::from_millis(170),
        "available after {took:?}, before 180 s / 1000"
    );
    assert!(
        took < Duration::from_secs(10),
        "available only after {took:?}"
    );
}

#[tokio::test]
async fn virtual_time_runs_at_the_time_scale() {
    let server = Harness::seed(50.0).await;
    let before = server.world.now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Any request brings the clock up to date.
    server
        .sts(OWNER_KEY, &[("Action", "GetCallerIdentity")])
        .await
        .ok();
    let advanced = server.world.now() - before;
    assert!(
        advanced >= Duration::from_secs(10),
        "advanced {advanced:?} in 0.2 s at 50x"
    );
    assert!(
        advanced < Duration::from_secs(60),
        "advanced {advanced:?} in 0.2 s at 50x"
    );
}

#[tokio::test]
async fn a_time_scale_below_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.json");
    std::fs::write(&path, SEED_WORLD).unwrap();
    for scale in [0.5, 0.0, -1.0, f64::NAN, f64::INFINITY] {
        let mut options = ServeOptions::new(&path, "127.0.0.1:0".parse().unwrap());
        options.time_scale = scale;
        let err = Server::bind(options).await.unwrap_err();
        assert!(matches!(err, ServeError::TimeScale(_)), "{scale}: {err}");
    }
}
