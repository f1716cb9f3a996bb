//! A server on 127.0.0.1:0 over a temporary copy of a world file, and a
//! small client that signs requests the way the SDKs do (the signature
//! itself is not checked), sends them and reads the answers.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use amishare_serve::{ServeError, ServeOptions, Server};
use amishare_sim::World;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The seed world the CLI ships.
pub(crate) const SEED_WORLD: &str = include_str!("../../../../testdata/worlds/seed.json");
/// The seed world's access keys.
pub(crate) const OWNER_KEY: &str = "AKIAAADMINEXAMPLE001";
pub(crate) const TARGET_KEY: &str = "AKIABUSEREXAMPLE0001";
pub(crate) const OWNER: &str = "111111111111";
pub(crate) const TARGET: &str = "222222222222";
pub(crate) const REGION: &str = "ap-northeast-1";
pub(crate) const SEED_INSTANCE: &str = "i-0c0ffee0123456789";

/// The repository's `testdata/`.
pub(crate) fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// A running server and the file its world lives in.
pub(crate) struct Harness {
    pub(crate) addr: SocketAddr,
    pub(crate) world: World,
    pub(crate) path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Serves the seed world at this time scale.
    pub(crate) async fn seed(time_scale: f64) -> Harness {
        Harness::start(SEED_WORLD, time_scale).await
    }

    /// Serves a copy of this world file.
    pub(crate) async fn start(world: &str, time_scale: f64) -> Harness {
        Harness::with(world, |options| options.time_scale = time_scale).await
    }

    /// Serves a copy of this world file, with options changed by `change`
    /// (the world path and a free port on 127.0.0.1 are set).
    pub(crate) async fn with(world: &str, change: impl FnOnce(&mut ServeOptions)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("world.json");
        std::fs::write(&path, world).unwrap();
        let mut options = ServeOptions::new(&path, "127.0.0.1:0".parse().unwrap());
        options.time_scale = 1.0;
        change(&mut options);
        let server = Server::bind(options).await.unwrap();
        let addr = server.local_addr();
        let world = server.world();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Harness {
            addr,
            world,
            path,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Stops the server (which saves the world) and returns the saved file's text.
    pub(crate) async fn stop(&mut self) -> String {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        std::fs::read_to_string(&self.path).unwrap()
    }

    /// An EC2 query-protocol request, signed with `key` for `region`.
    pub(crate) async fn ec2(&self, key: &str, region: &str, params: &[(&str, &str)]) -> Answer {
        self.query(key, region, ("ec2", "2016-11-15"), params).await
    }

    /// An STS query-protocol request.
    pub(crate) async fn sts(&self, key: &str, params: &[(&str, &str)]) -> Answer {
        self.query(key, "us-east-1", ("sts", "2011-06-15"), params)
            .await
    }

    /// An Auto Scaling query-protocol request.
    pub(crate) async fn autoscaling(
        &self,
        key: &str,
        region: &str,
        params: &[(&str, &str)],
    ) -> Answer {
        self.query(key, region, ("autoscaling", "2011-01-01"), params)
            .await
    }

    /// A query-protocol request to `(service, API version)`, signed with
    /// `key` for `region`.
    async fn query(
        &self,
        key: &str,
        region: &str,
        (service, version): (&str, &str),
        params: &[(&str, &str)],
    ) -> Answer {
        let body = form(&[("Version", version)], params);
        let headers = [
            ("authorization", signature(key, region, service)),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
        ];
        self.send("POST", "/", &headers, body.into_bytes()).await
    }

    /// A KMS JSON request for `TrentService.<operation>`.
    pub(crate) async fn kms(
        &self,
        key: &str,
        region: &str,
        operation: &str,
        body: Value,
    ) -> Answer {
        let headers = [
            ("authorization", signature(key, region, "kms")),
            ("content-type", "application/x-amz-json-1.1".to_owned()),
            ("x-amz-target", format!("TrentService.{operation}")),
        ];
        self.send("POST", "/", &headers, body.to_string().into_bytes())
            .await
    }

    /// Any request, on a connection of its own.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Answer {
        let mut sender = self.connect().await;
        self.send_on(&mut sender, method, path, headers, body).await
    }

    /// How many connections the server has open, by its health check (on a
    /// connection of its own, counted).
    pub(crate) async fn send_health_on_new(&self) -> usize {
        let health = self
            .send("GET", amishare_serve::HEALTH_PATH, &[], Vec::new())
            .await
            .ok();
        usize::try_from(health.json()["connections"].as_u64().unwrap()).unwrap()
    }

    /// A kept-alive connection to the server, for [`Harness::send_on`].
    pub(crate) async fn connect(&self) -> Connection {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        sender
    }

    /// Any request, on a connection made by [`Harness::connect`].
    pub(crate) async fn send_on(
        &self,
        sender: &mut Connection,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        sender.ready().await.unwrap();
        let response = sender
            .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let content_type = header("content-type");
        let request_id = header("x-amzn-requestid");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            content_type,
            request_id,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    /// Polls an EC2 request until `path` of its answer reads `expected`;
    /// returns every distinct value seen, in order.
    pub(crate) async fn poll(
        &self,
        key: &str,
        params: &[(&str, &str)],
        path: &str,
        expected: &str,
    ) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for _ in 0..500 {
            let answer = self.ec2(key, REGION, params).await.ok();
            let value = answer.text(path);
            if seen.last() != Some(&value) {
                seen.push(value.clone());
            }
            if value == expected {
                return seen;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("{path} never read {expected:?}; seen {seen:?}");
    }

    /// The owner's new key, made with `CreateKey`: its ARN.
    pub(crate) async fn create_key(&self, description: &str) -> String {
        self.kms(
            OWNER_KEY,
            REGION,
            "CreateKey",
            serde_json::json!({ "Description": description }),
        )
        .await
        .ok()
        .json()["KeyMetadata"]["Arn"]
            .as_str()
            .expect("CreateKey answers the key's ARN")
            .to_owned()
    }

    /// An image of the seeded instance named `golden`: its ID, still pending.
    pub(crate) async fn image_seed_instance(&self) -> String {
        self.ec2(
            OWNER_KEY,
            REGION,
            &[
                ("Action", "CreateImage"),
                ("InstanceId", SEED_INSTANCE),
                ("Name", "golden"),
            ],
        )
        .await
        .ok()
        .text("imageId")
    }

    /// Polls an image of the owner's until it is available; returns the states seen.
    pub(crate) async fn until_available(&self, image: &str) -> Vec<String> {
        self.poll(
            OWNER_KEY,
            &[("Action", "DescribeImages"), ("ImageId.1", image)],
            "imagesSet/item/imageState",
            "available",
        )
        .await
    }
}

/// The time now as SigV4's `X-Amz-Date` writes it, `YYYYMMDDTHHMMSSZ`.
pub(crate) fn amz_date_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// A client connection that sends one request after another.
pub(crate) type Connection = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// The headers of an STS `GetCallerIdentity` signed (falsely) as `key`.
pub(crate) fn sts_headers(key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", signature(key, "us-east-1", "sts")),
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        ),
    ]
}

/// The body of an STS `GetCallerIdentity`.
pub(crate) const GET_CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// A fake SigV4 `Authorization` header with this credential scope.
pub(crate) fn signature(key: &str, region: &str, service: &str) -> String {
    signature_on("20261128", key, region, service)
}

/// A fake SigV4 `Authorization` header with this credential scope and date.
pub(crate) fn signature_on(date: &str, key: &str, region: &str, service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={key}/{date}/{region}/{service}/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=0123456789abcdef"
    )
}

fn form(first: &[(&str, &str)], params: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    serializer.extend_pairs(params.iter().chain(first));
    serializer.finish()
}

/// An answer: status, content type, request ID header and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) request_id: String,
    pub(crate) body: String,
}

impl Answer {
    /// Asserts a 200 answer.
    #[track_caller]
    pub(crate) fn ok(self) -> Answer {
        assert_eq!(self.status, 200, "{}", self.body);
        self
    }

    /// The texts of the elements at `path` below the root
    /// (`imagesSet/item/imageId`), in document order.
    pub(crate) fn texts(&self, path: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(&self.body).unwrap();
        doc.root_element()
            .descendants()
            .filter(|node| node.is_element() && element_path(*node) == path)
            .map(|node| node.text().unwrap_or_default().to_owned())
            .collect()
    }

    /// The text of the one element at `path`, or "" when there is none.
    #[track_caller]
    pub(crate) fn text(&self, path: &str) -> String {
        let mut texts = self.texts(path);
        assert!(texts.len() <= 1, "{path} occurs {} times", texts.len());
        texts.pop().unwrap_or_default()
    }

    /// The root element's name.
    pub(crate) fn root(&self) -> String {
        let doc = roxmltree::Document::parse(&self.body).unwrap();
        doc.root_element().tag_name().name().to_owned()
    }

    /// Every element path of the document, below the root.
    pub(crate) fn paths(&self) -> BTreeSet<String> {
        xml_paths(&self.body)
    }

    /// The JSON body.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("{err}: {}", self.body))
    }

    /// The code of an EC2 error envelope.
    pub(crate) fn ec2_code(&self) -> String {
        assert_eq!(self.root(), "Response", "{}", self.body);
        self.text("Errors/Error/Code")
    }
}

/// Every element path of an XML document, below the root.
pub(crate) fn xml_paths(text: &str) -> BTreeSet<String> {
    let doc = roxmltree::Document::parse(text).unwrap();
    doc.root_element()
        .descendants()
        .filter(|node| node.is_element() && *node != doc.root_element())
        .map(element_path)
        .collect()
}

fn element_path(node: roxmltree::Node<'_, '_>) -> String {
    let mut names: Vec<&str> = node
        .ancestors()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    names.pop(); // the root
    names.reverse();
    names.join("/")
}

/// The element paths of a recorded AWS answer in `testdata/replay/`.
pub(crate) fn recorded_paths(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(testdata().join("replay").join(file)).unwrap();
    xml_paths(&text)
}

/// The member names of a recorded KMS answer (and of its nested objects,
/// as `Outer.Inner`; list items as `Outer[]`).
pub(crate) fn json_paths(value: &Value) -> BTreeSet<String> {
    fn walk(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    out.insert(path.clone());
                    walk(inner, &path, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(value, "", &mut out);
    out
}

/// The member paths of a recorded KMS answer in `testdata/replay/kms/`.
pub(crate) fn recorded_json_paths(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(testdata().join("replay/kms").join(file)).unwrap();
    json_paths(&serde_json::from_str(&text).unwrap())
}

/// Asserts that every path of `ours` is among `recorded` (or `extra`, names
/// from the API model the recording happens not to carry).
#[track_caller]
pub(crate) fn assert_known_paths(
    what: &str,
    ours: &BTreeSet<String>,
    recorded: &BTreeSet<String>,
    extra: &[&str],
) {
    let unknown: Vec<&String> = ours
        .iter()
        .filter(|path| !recorded.contains(*path) && !extra.contains(&path.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "{what}: element names AWS does not send: {unknown:?}"
    );
}
