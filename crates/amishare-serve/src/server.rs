//! The HTTP server: options, binding, the accept loop, routing each request
//! to its service, the sped-up clock, and saving the world.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amishare_core::Region;
use amishare_sim::World;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::auth;
use crate::query::Params;
use crate::wire::{Reply, Service, WireError, AUTOSCALING_VERSION, STS_VERSION};
use crate::xml::Xml;
use crate::{autoscaling, ec2, kms, sts};

/// The default speed-up of the world's clock: the seed's 8 GiB copy (320 s
/// of simulated time) completes in about 3 s, an image in about 2 s, and a
/// launch in under a second, so a client that polls every second sees every
/// state change.
pub const DEFAULT_TIME_SCALE: f64 = 100.0;

/// `POST` here saves the world file now, without stopping the server.
pub const SAVE_PATH: &str = "/_amishare/save";

/// `GET` here answers 200 once the server is up.
pub const HEALTH_PATH: &str = "/_amishare/health";

/// The largest request body read.
const MAX_BODY_BYTES: usize = 1 << 20;

/// How long shutdown waits for requests in flight before saving.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What `amishare sim serve` is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// The world file, loaded at start and saved back on shutdown and on request.
    pub world_path: PathBuf,
    /// Where to listen; port 0 picks a free port ([`Server::local_addr`] tells which).
    pub listen: SocketAddr,
    /// How much faster than wall time the world's clock runs; at least 1.
    pub time_scale: f64,
}

impl ServeOptions {
    /// Options for a world file and address, at [`DEFAULT_TIME_SCALE`].
    pub fn new(world_path: impl Into<PathBuf>, listen: SocketAddr) -> ServeOptions {
        ServeOptions {
            world_path: world_path.into(),
            listen,
            time_scale: DEFAULT_TIME_SCALE,
        }
    }
}

/// Why the server could not start, or could not save.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The time scale is not a finite number of at least 1.
    #[error("invalid time scale {0}: expected a finite number of at least 1")]
    TimeScale(f64),
    /// The world file could not be read.
    #[error("cannot load the world: {0}")]
    Load(#[source] amishare_core::Error),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// The world file could not be written.
    #[error("cannot save the world: {0}")]
    Save(#[source] amishare_core::Error),
}

/// A server bound to its address, with its world loaded, not yet serving.
///
/// [`Server::bind`], then [`Server::local_addr`] to learn the port, then
/// [`Server::run`] until shutdown; [`serve`] does all three.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr())
            .field("world_path", &self.shared.world_path)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads the world file (`World::load`) and binds the address.
    pub async fn bind(options: ServeOptions) -> Result<Server, ServeError> {
        if !(options.time_scale.is_finite() && options.time_scale >= 1.0) {
            return Err(ServeError::TimeScale(options.time_scale));
        }
        let world = World::load(&options.world_path).map_err(ServeError::Load)?;
        // A server runs for long: keep the counters, not a record of every call.
        let mut knobs = world.knobs();
        knobs.record_calls = false;
        world.set_knobs(knobs);
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: options.listen,
                    source,
                })?;
        let clock = ScaledClock {
            start: Instant::now(),
            base: world.now(),
            scale: options.time_scale,
            lock: Mutex::new(()),
        };
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                world,
                world_path: options.world_path,
                clock,
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// The world served (a handle on the same world).
    pub fn world(&self) -> World {
        self.shared.world.clone()
    }

    /// A handle that saves the world file while the server runs (for a
    /// signal handler, say).
    pub fn save_handle(&self) -> SaveHandle {
        SaveHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish
    /// (for up to 5 seconds) and saves the world file.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Server { listener, shared } = self;
        let (stop, stopped) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(connection(shared.clone(), stream, stopped.clone()));
                    }
                    Err(err) => {
                        // Out of file descriptors, say: keep serving the others.
                        tracing::warn!(%err, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stop.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; saving anyway");
            connections.abort_all();
        }
        shared.save()?;
        tracing::info!(path = %shared.world_path.display(), "saved the world");
        Ok(())
    }
}

/// Loads the world, serves it on `options.listen` until `shutdown`
/// completes, then saves it back.
pub async fn serve(
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    Server::bind(options).await?.run(shutdown).await
}

/// Saves the world file of a running server.
#[derive(Clone)]
pub struct SaveHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SaveHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaveHandle")
            .field("world_path", &self.shared.world_path)
            .finish()
    }
}

impl SaveHandle {
    /// Writes the world, as it is now, to its file (atomically).
    pub fn save(&self) -> Result<(), ServeError> {
        self.shared.save()
    }

    /// The world file.
    pub fn world_path(&self) -> &Path {
        &self.shared.world_path
    }
}

/// What every connection shares.
struct Shared {
    world: World,
    world_path: PathBuf,
    clock: ScaledClock,
    requests: AtomicU64,
}

/// The world's clock sped up: virtual time is where it stood at start plus
/// `scale` times the wall time since.
///
/// A loaded world's own clock already follows the runtime's clock at normal
/// speed, so before each request the difference is added with
/// `World::advance`; virtual time never goes back.
struct ScaledClock {
    start: Instant,
    base: Duration,
    scale: f64,
    lock: Mutex<()>,
}

impl ScaledClock {
    fn catch_up(&self, world: &World) {
        let target = self.base + self.start.elapsed().mul_f64(self.scale);
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let now = world.now();
        if target > now {
            world.advance(target - now);
        }
    }
}

impl Shared {
    fn save(&self) -> Result<(), ServeError> {
        self.clock.catch_up(&self.world);
        self.world.save(&self.world_path).map_err(ServeError::Save)
    }

    fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        format!("a315e7e0-0000-4000-8000-{n:012x}")
    }

    async fn respond(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let request_id = self.request_id();
        let (parts, body) = request.into_parts();
        if parts.uri.path().starts_with("/_amishare/") {
            return self.control(&parts);
        }
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                tracing::debug!(%err, "cannot read a request body");
                return plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is too large or broken",
                );
            }
        };
        let (service, operation, reply) = self.dispatch(&parts, &body, &request_id).await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) => {
                tracing::info!(
                    service = service.name(),
                    operation,
                    code = err.code,
                    message = err.message,
                    "refused"
                );
                Reply::error(service, &request_id, &err)
            }
        };
        let mut response = Response::new(Full::new(Bytes::from(reply.body)));
        *response.status_mut() =
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert("x-amzn-requestid", value);
        }
        response
    }

    /// Which service a request is for, its operation, and the answer.
    async fn dispatch(
        &self,
        parts: &Parts,
        body: &[u8],
        request_id: &str,
    ) -> (Service, String, Result<Reply, WireError>) {
        let credential = auth::credential(&parts.headers, parts.uri.query());
        if let Some(target) = parts.headers.get("x-amz-target") {
            let operation = target
                .to_str()
                .ok()
                .and_then(|target| target.strip_prefix("TrentService."))
                .map(str::to_owned);
            let Some(operation) = operation else {
                let target = String::from_utf8_lossy(target.as_bytes()).into_owned();
                return (
                    Service::Kms,
                    target.clone(),
                    Err(kms::unknown_operation(&target)),
                );
            };
            let reply = self.kms(credential.as_ref(), &operation, body).await;
            return (Service::Kms, operation, reply);
        }
        let scoped = match credential.as_ref().map(|c| c.service.as_str()) {
            Some("ec2") => Some(Service::Ec2),
            Some("sts") => Some(Service::Sts),
            Some("autoscaling") => Some(Service::AutoScaling),
            Some("kms") => {
                let err = WireError::new(
                    "UnknownOperationException",
                    "KMS requests name their operation in the X-Amz-Target header",
                );
                return (Service::Kms, String::new(), Err(err));
            }
            _ => None,
        };
        let params = match Params::parse(parts.uri.query(), body) {
            Ok(params) => params,
            Err(err) => return (scoped.unwrap_or(Service::Ec2), String::new(), Err(err)),
        };
        // Unsigned (or oddly scoped) requests: STS's API version tells it apart.
        let service = scoped.unwrap_or(match params.get("Version") {
            Some(STS_VERSION) => Service::Sts,
            Some(AUTOSCALING_VERSION) => Service::AutoScaling,
            _ => Service::Ec2,
        });
        let Some(action) = params.get("Action").map(str::to_owned) else {
            let err = WireError::new(
                "MissingAction",
                "The request must contain the parameter Action",
            );
            return (service, String::new(), Err(err));
        };
        let reply = self
            .query(service, credential.as_ref(), &action, &params, request_id)
            .await;
        (service, action, reply)
    }

    /// The caller's client and region, from the request's credential.
    fn caller(
        &self,
        service: Service,
        credential: Option<&auth::Credential>,
    ) -> Result<(amishare_sim::SimClient, Region), WireError> {
        let credential = credential.ok_or_else(|| auth::missing_authentication(service))?;
        let region = Region::parse(&credential.region)
            .map_err(|_| auth::bad_region(service, &credential.region))?;
        let principal = auth::principal(&self.world, &credential.access_key)
            .ok_or_else(|| auth::unknown_access_key(service))?;
        let client = self
            .world
            .client(&principal)
            .map_err(|_| auth::unknown_access_key(service))?;
        self.clock.catch_up(&self.world);
        Ok((client, region))
    }

    async fn kms(
        &self,
        credential: Option<&auth::Credential>,
        operation: &str,
        body: &[u8],
    ) -> Result<Reply, WireError> {
        if !kms::OPERATIONS.contains(&operation) {
            return Err(kms::unknown_operation(operation));
        }
        let (client, region) = self.caller(Service::Kms, credential)?;
        let answer = kms::handle(&client, &region, operation, body).await?;
        tracing::info!(
            service = "kms",
            operation,
            caller = client.principal().as_str(),
            "served"
        );
        Ok(Reply::kms(answer))
    }

    async fn query(
        &self,
        service: Service,
        credential: Option<&auth::Credential>,
        action: &str,
        params: &Params,
        request_id: &str,
    ) -> Result<Reply, WireError> {
        let known = match service {
            Service::Ec2 => ec2::ACTIONS.contains(&action),
            Service::AutoScaling => autoscaling::ACTIONS.contains(&action),
            _ => action == "GetCallerIdentity",
        };
        if !known {
            let message = match service {
                Service::Ec2 => format!("The action {action} is not valid for this web service."),
                Service::AutoScaling => {
                    format!("Could not find operation {action} for version {AUTOSCALING_VERSION}")
                }
                _ => format!("Could not find operation {action} for version {STS_VERSION}"),
            };
            return Err(WireError::new("InvalidAction", message));
        }
        let (client, region) = self.caller(service, credential)?;
        let mut out = Xml::default();
        match service {
            Service::Ec2 => ec2::handle(&client, &region, action, params, &mut out).await?,
            Service::AutoScaling => {
                autoscaling::handle(&client, &region, action, params, &mut out).await?
            }
            _ => sts::handle(&client, action, &mut out).await?,
        }
        tracing::info!(
            service = service.name(),
            operation = action,
            caller = client.principal().as_str(),
            "served"
        );
        Ok(match service {
            Service::Ec2 => Reply::ec2(action, request_id, out),
            Service::AutoScaling => {
                Reply::autoscaling(action, request_id, out, autoscaling::has_result(action))
            }
            _ => Reply::sts(action, request_id, out),
        })
    }

    /// `/_amishare/…`: saving on request, and a health check.
    fn control(&self, parts: &Parts) -> Response<Full<Bytes>> {
        match (&parts.method, parts.uri.path()) {
            (&Method::POST, SAVE_PATH) => match self.save() {
                Ok(()) => json_response(
                    StatusCode::OK,
                    &json!({
                        "saved": self.world_path.display().to_string(),
                        "now_ms": u64::try_from(self.world.now().as_millis()).unwrap_or(u64::MAX),
                    }),
                ),
                Err(err) => json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({ "error": err.to_string() }),
                ),
            },
            (&Method::GET, HEALTH_PATH) => {
                self.clock.catch_up(&self.world);
                json_response(
                    StatusCode::OK,
                    &json!({
                        "status": "running",
                        "now_ms": u64::try_from(self.world.now().as_millis()).unwrap_or(u64::MAX),
                    }),
                )
            }
            _ => plain(StatusCode::NOT_FOUND, "no such control endpoint"),
        }
    }
}

/// Serves one connection until it closes or the server stops.
async fn connection(
    shared: Arc<Shared>,
    stream: tokio::net::TcpStream,
    mut stopped: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(shared.respond(request).await) }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%err, "connection ended with an error");
            }
        }
        _ = stopped.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.as_mut().await;
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
