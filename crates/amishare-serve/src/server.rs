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
use amishare_sim::{LockHolder, World, WorldLock};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::auth;
use crate::conns::{Admitted, Connections, Limits, Slot};
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
    /// Accept only requests signed (SigV4) with a secret access key of the
    /// world file. Required to listen on an address other than loopback.
    pub authenticate: bool,
    /// How many accounts unmapped 12-digit access key IDs may add to the
    /// world (default 0: such a key acts as the root of an account the
    /// world has, and any other is refused).
    pub new_accounts: usize,
    /// Regions served besides [`amishare_core::KNOWN_REGIONS`].
    pub extra_regions: Vec<Region>,
    /// How long to wait for a command that has the world file before
    /// giving up.
    pub lock_wait: Duration,
    /// How many connections are served at once and how long a client may
    /// take.
    pub limits: Limits,
}

impl ServeOptions {
    /// Options for a world file and address, at [`DEFAULT_TIME_SCALE`],
    /// unauthenticated (loopback only), creating no accounts.
    pub fn new(world_path: impl Into<PathBuf>, listen: SocketAddr) -> ServeOptions {
        ServeOptions {
            world_path: world_path.into(),
            listen,
            time_scale: DEFAULT_TIME_SCALE,
            authenticate: false,
            new_accounts: 0,
            extra_regions: Vec::new(),
            lock_wait: amishare_sim::world_file::DEFAULT_LOCK_WAIT,
            limits: Limits::default(),
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
    /// An address other than loopback without [`ServeOptions::authenticate`]:
    /// anyone who reached it could act as any principal of the world.
    #[error("{0} is not a loopback address: serving it needs authenticated requests")]
    NotLoopback(SocketAddr),
    /// Another command has the world file, or a server serves it.
    #[error("{0}")]
    Locked(#[source] amishare_core::Error),
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
    /// The server has stopped and let go of its world file.
    #[error("the server has stopped: its world file is no longer held")]
    Stopped,
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
    /// Takes the world file's lock (waiting for a command that has it),
    /// loads it and binds the address.
    pub async fn bind(options: ServeOptions) -> Result<Server, ServeError> {
        Server::bind_waiting(options, |_| {}).await
    }

    /// [`Server::bind`], calling `waiting` (once) with the command it waits
    /// for when another command has the world file.
    pub async fn bind_waiting(
        options: ServeOptions,
        waiting: impl FnOnce(Option<&LockHolder>),
    ) -> Result<Server, ServeError> {
        if !(options.time_scale.is_finite() && options.time_scale >= 1.0) {
            return Err(ServeError::TimeScale(options.time_scale));
        }
        if !options.listen.ip().is_loopback() && !options.authenticate {
            return Err(ServeError::NotLoopback(options.listen));
        }
        let holder = LockHolder::this_process("amishare sim serve");
        let lock = WorldLock::acquire(&options.world_path, &holder, options.lock_wait, waiting)
            .map_err(|err| match err.kind() {
                amishare_core::ErrorKind::InvalidInput => ServeError::Load(err),
                _ => ServeError::Locked(err),
            })?;
        let world = lock.load().map_err(ServeError::Load)?;
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
        let endpoint = endpoint(listener.local_addr().map_err(|source| ServeError::Bind {
            addr: options.listen,
            source,
        })?);
        // From now on a command that meets the lock is told where to go.
        lock.set_holder(&holder.serving(endpoint))
            .map_err(ServeError::Locked)?;
        let clock = ScaledClock {
            start: Instant::now(),
            base: world.now(),
            scale: options.time_scale,
            lock: Mutex::new(()),
        };
        let mut regions: Vec<Region> = amishare_core::KNOWN_REGIONS
            .iter()
            .filter_map(|name| Region::parse(name).ok())
            .collect();
        regions.extend(options.extra_regions.iter().cloned());
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                world,
                world_path: options.world_path,
                lock: Mutex::new(Some(lock)),
                clock,
                requests: AtomicU64::new(0),
                callers: auth::Callers::new(options.authenticate, options.new_accounts),
                regions,
                connections: Connections::new(&options.limits),
                limits: options.limits,
            }),
        })
    }

    /// The URL a client on this machine reaches the server at (for an
    /// address that means "every interface", loopback).
    pub fn endpoint(&self) -> String {
        endpoint(self.local_addr())
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
                    Ok((stream, peer)) => {
                        let admitted = shared.connections.admit().await;
                        connections.spawn(connection(shared.clone(), stream, peer, admitted, stopped.clone()));
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
        // Let go of the world file: commands may use it again.
        drop(shared.lock.lock().unwrap_or_else(|e| e.into_inner()).take());
        Ok(())
    }
}

/// Whether `POST /_amishare/save` from `peer` is served: always without
/// authentication (loopback only), else from this machine only.
fn saves_on_request(authenticates: bool, peer: SocketAddr) -> bool {
    !authenticates || peer.ip().is_loopback()
}

/// `http://ADDRESS`, loopback for an unspecified address.
fn endpoint(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if !ip.is_unspecified() => ip,
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
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
    /// The world file's lock, held from start until the last save.
    lock: Mutex<Option<WorldLock>>,
    clock: ScaledClock,
    requests: AtomicU64,
    /// Who may call, and how callers are told apart.
    callers: auth::Callers,
    /// The regions served.
    regions: Vec<Region>,
    /// The open connections.
    connections: Arc<Connections>,
    limits: Limits,
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
        let lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let lock = lock.as_ref().ok_or(ServeError::Stopped)?;
        lock.save(&self.world).map_err(ServeError::Save)
    }

    fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        format!("a315e7e0-0000-4000-8000-{n:012x}")
    }

    async fn respond(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        slot: &Slot,
    ) -> Response<Full<Bytes>> {
        slot.touch();
        let request_id = self.request_id();
        let (parts, body) = request.into_parts();
        let body = Limited::new(body, MAX_BODY_BYTES).collect();
        let body = match tokio::time::timeout(self.limits.body_timeout, body).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(err)) => {
                tracing::debug!(%err, "cannot read a request body");
                return plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is too large or broken",
                );
            }
            Err(_) => {
                let mut response = plain(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive in time",
                );
                response
                    .headers_mut()
                    .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                return response;
            }
        };
        slot.set_busy(true);
        let response = self.answer(&parts, &body, peer, &request_id).await;
        slot.set_busy(false);
        response
    }

    /// The answer to a request whose body has arrived.
    async fn answer(
        &self,
        parts: &Parts,
        body: &[u8],
        peer: SocketAddr,
        request_id: &str,
    ) -> Response<Full<Bytes>> {
        if parts.uri.path().starts_with("/_amishare/") {
            return self.control(parts, peer);
        }
        let (service, operation, reply) = self.dispatch(parts, body, request_id).await;
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
                Reply::error(service, request_id, &err)
            }
        };
        let mut response = Response::new(Full::new(Bytes::from(reply.body)));
        *response.status_mut() =
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
        if let Ok(value) = HeaderValue::from_str(request_id) {
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
            let reply = self.kms(parts, credential.as_ref(), &operation, body).await;
            return (Service::Kms, operation, reply);
        }
        let params = match Params::parse(parts.uri.query(), body) {
            Ok(params) => params,
            Err(err) => return (Service::Ec2, String::new(), Err(err)),
        };
        // The query protocol: the API version tells STS and Auto Scaling
        // apart from EC2.
        let service = match params.get("Version") {
            Some(STS_VERSION) => Service::Sts,
            Some(AUTOSCALING_VERSION) => Service::AutoScaling,
            _ => Service::Ec2,
        };
        let Some(action) = params.get("Action").map(str::to_owned) else {
            let err = WireError::new(
                "MissingAction",
                "The request must contain the parameter Action",
            );
            return (service, String::new(), Err(err));
        };
        let reply = self
            .query(
                parts,
                body,
                service,
                credential.as_ref(),
                &action,
                &params,
                request_id,
            )
            .await;
        (service, action, reply)
    }

    /// The caller's client and region, from the request's credential: its
    /// scope must name this service and a region served, and (when the
    /// server authenticates) its signature must be the access key's.
    fn caller(
        &self,
        parts: &Parts,
        body: &[u8],
        service: Service,
        credential: Option<&auth::Credential>,
    ) -> Result<(amishare_sim::SimClient, Region), WireError> {
        let credential = credential.ok_or_else(|| auth::missing_authentication(service))?;
        if credential.service != service.name() {
            return Err(auth::wrong_service(service));
        }
        let region = Region::parse(&credential.region)
            .ok()
            .filter(|region| self.regions.contains(region))
            .ok_or_else(|| auth::bad_region(service, &credential.region))?;
        let principal = self
            .callers
            .principal(&self.world, parts, body, credential)
            .map_err(|refusal| refusal.into_error(service))?;
        let client = self
            .world
            .client(&principal)
            .map_err(|_| auth::unknown_access_key(service))?;
        self.clock.catch_up(&self.world);
        Ok((client, region))
    }

    async fn kms(
        &self,
        parts: &Parts,
        credential: Option<&auth::Credential>,
        operation: &str,
        body: &[u8],
    ) -> Result<Reply, WireError> {
        if !kms::OPERATIONS.contains(&operation) {
            return Err(kms::unknown_operation(operation));
        }
        let (client, region) = self.caller(parts, body, Service::Kms, credential)?;
        let answer = kms::handle(&client, &region, operation, body).await?;
        tracing::info!(
            service = "kms",
            operation,
            caller = client.principal().as_str(),
            "served"
        );
        Ok(Reply::kms(answer))
    }

    #[allow(clippy::too_many_arguments)]
    async fn query(
        &self,
        parts: &Parts,
        body: &[u8],
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
        let (client, region) = self.caller(parts, body, service, credential)?;
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

    /// `/_amishare/…`: saving on request, and a health check. A server
    /// that authenticates saves on request only for a client on this
    /// machine: the request is not signed, and a save writes the whole world.
    fn control(&self, parts: &Parts, peer: SocketAddr) -> Response<Full<Bytes>> {
        match (&parts.method, parts.uri.path()) {
            (&Method::POST, SAVE_PATH) if !saves_on_request(self.callers.authenticates(), peer) => {
                plain(
                    StatusCode::FORBIDDEN,
                    "saving on request is open to clients on the server's machine only",
                )
            }
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
                        "connections": self.connections.count(),
                    }),
                )
            }
            _ => plain(StatusCode::NOT_FOUND, "no such control endpoint"),
        }
    }
}

/// Serves one connection until it closes, times out, is closed to make room,
/// or the server stops.
async fn connection(
    shared: Arc<Shared>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    mut stopped: watch::Receiver<bool>,
) {
    let limits = shared.limits;
    let slot = admitted.slot.clone();
    let service = service_fn(move |request| {
        let shared = shared.clone();
        let slot = slot.clone();
        async move { Ok::<_, Infallible>(shared.respond(request, peer, &slot).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%err, "connection ended with an error");
            }
        }
        () = admitted.slot.closing(limits.idle_timeout) => {
            tracing::debug!("connection closed: idle, or to make room");
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

#[cfg(test)]
mod tests {
    use super::saves_on_request;

    #[test]
    fn only_this_machine_saves_an_authenticating_server_on_request() {
        for (authenticates, peer, saves) in [
            (false, "127.0.0.1:5000", true),
            (true, "127.0.0.1:5000", true),
            (true, "[::1]:5000", true),
            (true, "192.0.2.7:5000", false),
            (true, "[2001:db8::7]:5000", false),
        ] {
            assert_eq!(
                saves_on_request(authenticates, peer.parse().unwrap()),
                saves,
                "{authenticates} {peer}"
            );
        }
    }
}
