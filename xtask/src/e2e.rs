//! `cargo xtask e2e`: amishare-aws and the command against LocalStack,
//! without Docker, then against amishare's own served simulation.
//!
//! 1. Finds a Python of 3.12 or newer (`AMISHARE_PYTHON`, `python3.13`,
//!    `python3.12`, pyenv's versions, `python3`) and fails naming what it tried.
//! 2. Builds the e2e tests (`cargo test -p amishare-aws --features localstack --no-run`).
//! 3. Creates, or reuses when its pins match, a virtual environment in
//!    `target/e2e/venv` with the pinned `localstack-core` (about 90 s, 500 MB).
//! 4. Starts LocalStack in its own process group, bound to 127.0.0.1 on a free
//!    port, with the settings of `shared/docs/localstack.md`, logging to
//!    `target/e2e/localstack.log`, and polls `/_localstack/health` until KMS,
//!    EC2, STS and IAM are up.
//! 5. Runs the tests, in a process group of their own, with
//!    `AMISHARE_LOCALSTACK_URL` set, and prints a summary. A test binary
//!    whose filter matched no test fails the task, as a failed test does.
//! 6. Runs the AWS backend's whole conformance suite against the served
//!    simulation (`amishare-aws`'s `serve::` test), and the stock `aws` CLI
//!    (pinned, in `target/e2e/awscli-venv`) through the seed flow against
//!    `amishare sim serve` (`crates/amishare-serve/tests/awscli-seed.sh`), and an
//!    Auto Scaling group launching the shared image before and after the grant
//!    (`crates/amishare-serve/tests/awscli-autoscaling.sh`), and the shared
//!    image's key through its lifecycle (`awscli-lifecycle.sh`).
//! 7. Always stops LocalStack (SIGTERM to its group, SIGKILL after 10 s), also
//!    when a step fails, on Ctrl-C and on SIGTERM or SIGHUP, checks that its
//!    port is closed, and prints the tail of its log when anything failed.
//!
//! Every subprocess runs through `std::process::Command`, never a shell; this
//! task does not use xshell because it needs process groups.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{format_err, Context};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::cargo;

/// A virtual environment the task installs, and reuses while its pins match.
struct Venv {
    /// Its directory under `target/e2e`.
    name: &'static str,
    /// What pip installs, pinned.
    requirements: &'static [&'static str],
    /// How long installing takes, for the progress line.
    takes: &'static str,
}

/// LocalStack.
const LOCALSTACK_VENV: Venv = Venv {
    name: "venv",
    requirements: REQUIREMENTS,
    takes: "about 90 s",
};

/// The stock aws command line client.
const AWSCLI_VENV: Venv = Venv {
    name: "awscli-venv",
    requirements: &["awscli==1.46.3"],
    takes: "about 20 s",
};

/// What pip installs: LocalStack and the pins it needs on this kind of machine
/// (see `shared/docs/localstack.md` for why each one).
const REQUIREMENTS: &[&str] = &[
    "localstack-core[runtime]==2026.3.0",
    "cbor2<6",
    "pyopenssl<26",
    "cryptography<47",
    "service-identity",
];
/// The oldest Python `localstack-core` 2026.3.0 runs on.
const MIN_PYTHON: (u32, u32) = (3, 12);
/// The services the e2e calls; the health check waits for each.
const SERVICES: &str = "kms,ec2,sts,iam";
/// How long LocalStack may take to answer its health check.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How often the health check polls.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long a process group has after SIGTERM before it gets SIGKILL.
/// LocalStack usually stops in 3 to 6 s, but its interpreter sometimes spins
/// for more than 20 s at exit; it keeps nothing worth a graceful stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of LocalStack's log printed on failure.
const LOG_TAIL_LINES: usize = 80;
/// The file in the virtual environment that records what was installed in it.
const VENV_MARKER: &str = "amishare-e2e-requirements.txt";
/// The cargo arguments of the e2e tests, before `--no-run` or the test filter.
const TEST_ARGS: &[&str] = &[
    "test",
    "-p",
    "amishare-aws",
    "-p",
    "amishare-cli",
    "--features",
    "amishare-aws/localstack,amishare-cli/localstack",
    "--test",
    "it",
];

/// The test filter of the LocalStack tests, in each package of [`TEST_ARGS`].
const LOCALSTACK_FILTER: &str = "localstack::";
/// The test filter of the tests against the served simulation, in each package.
const SERVE_FILTER: &str = "serve::";

/// Runs the whole task from the repository root `root`.
pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = root.join("target").join("e2e");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let running = Running::install()?;
    let mut summary = Vec::new();

    let result = steps(root, &dir, &running, &mut summary);
    let stopped = running.stop_all();
    match &stopped {
        Ok(Some(stop)) => summary.push(format!(
            "LocalStack stopped in {:.1} s ({}); port {} {}",
            stop.took.as_secs_f64(),
            stop.how,
            stop.port,
            if stop.port_closed {
                "closed"
            } else {
                "STILL OPEN"
            }
        )),
        Ok(None) => {}
        Err(err) => summary.push(format!("stopping LocalStack failed: {err:#}")),
    }
    summary.push(format!("total {:.0} s", started.elapsed().as_secs_f64()));

    println!("\n== e2e summary");
    for line in &summary {
        println!("  {line}");
    }
    let failed = result.is_err()
        || stopped.is_err()
        || matches!(&stopped, Ok(Some(stop)) if !stop.port_closed);
    // A log from an earlier run would mislead: only this run's LocalStack counts.
    let started_here = matches!(&stopped, Ok(Some(_)));
    if failed && started_here {
        print_log_tail(&dir.join("localstack.log"));
    }
    result?;
    match stopped? {
        Some(stop) if !stop.port_closed => Err(format_err!(
            "something still listens on 127.0.0.1:{} after LocalStack stopped",
            stop.port
        )),
        _ => Ok(()),
    }
}

/// Everything between installing the interrupt handler and stopping LocalStack.
fn steps(
    root: &Path,
    dir: &Path,
    running: &Running,
    summary: &mut Vec<String>,
) -> anyhow::Result<()> {
    let python = find_python()?;
    summary.push(format!(
        "Python {}.{} at {}",
        python.version.0,
        python.version.1,
        python.path.display()
    ));
    let cargo = cargo();
    eprintln!("e2e: building the LocalStack tests");
    let status = running
        .status(
            Command::new(&cargo)
                .args(TEST_ARGS)
                .arg("--no-run")
                .current_dir(root),
        )
        .context("running cargo test --no-run")?;
    if !status.success() {
        return Err(format_err!(
            "building the e2e tests failed ({status}): cargo {} --no-run",
            TEST_ARGS.join(" ")
        ));
    }

    let venv_started = Instant::now();
    let (venv_python, installed) = ensure_venv(running, dir, &python, &LOCALSTACK_VENV)?;
    summary.push(if installed {
        format!(
            "installed LocalStack in {} in {:.0} s",
            dir.join("venv").display(),
            venv_started.elapsed().as_secs_f64()
        )
    } else {
        format!("reused {}", dir.join("venv").display())
    });

    let port = free_port()?;
    let ready_started = Instant::now();
    running.start_localstack(&venv_python, dir, port)?;
    wait_ready(running, port)?;
    summary.push(format!(
        "LocalStack ready on 127.0.0.1:{port} in {:.1} s",
        ready_started.elapsed().as_secs_f64()
    ));

    let tests_started = Instant::now();
    let outcome = running.run_tests(root, LOCALSTACK_FILTER, Some(port))?;
    summary.push(format!(
        "tests took {:.0} s: {}",
        tests_started.elapsed().as_secs_f64(),
        outcome.results.join(" / ")
    ));
    summary.extend(outcome.report);
    if !outcome.success {
        return Err(format_err!("the LocalStack e2e tests failed"));
    }
    every_binary_ran_tests(LOCALSTACK_FILTER, &outcome.results)?;
    served(root, dir, running, &python, summary)
}

/// The served simulation: the AWS backend's conformance suite through the
/// SDK, and the stock aws CLI through the seed flow against `amishare sim serve`.
fn served(
    root: &Path,
    dir: &Path,
    running: &Running,
    python: &Python,
    summary: &mut Vec<String>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let outcome = running.run_tests(root, SERVE_FILTER, None)?;
    if !outcome.success {
        return Err(format_err!(
            "the conformance suite against the served simulation failed"
        ));
    }
    every_binary_ran_tests(SERVE_FILTER, &outcome.results)?;
    summary.push(format!(
        "the conformance suite ran in full through the SDK against the served simulation in {:.0} s: {}",
        started.elapsed().as_secs_f64(),
        outcome.results.join(" / ")
    ));

    let (venv_python, _) = ensure_venv(running, dir, python, &AWSCLI_VENV)?;
    let aws = venv_python.with_file_name("aws");
    let amishare = root.join("target").join("debug").join("amishare");
    for (script, what) in AWSCLI_SCRIPTS {
        let started = Instant::now();
        let status = running
            .status(
                Command::new("bash")
                    .arg(root.join("crates/amishare-serve/tests").join(script))
                    .env("AWS_CLI", &aws)
                    .env(
                        "AMISHARE_SERVE",
                        format!("{} sim serve", amishare.display()),
                    )
                    .env_remove("AMISHARE_ENDPOINT")
                    .stdin(Stdio::null())
                    .current_dir(root),
            )
            .with_context(|| format!("running the aws CLI {what}"))?;
        if !status.success() {
            return Err(format_err!(
                "the aws CLI {what} against amishare sim serve failed ({status})"
            ));
        }
        summary.push(format!(
            "the aws CLI ({}) ran the {what} against amishare sim serve in {:.0} s",
            AWSCLI_VENV.requirements.join(" "),
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// The stock-aws-CLI scripts run against `amishare sim serve`, in
/// `crates/amishare-serve/tests/`, with what each drives.
const AWSCLI_SCRIPTS: [(&str, &str); 3] = [
    ("awscli-seed.sh", "seed flow"),
    ("awscli-autoscaling.sh", "Auto Scaling flow"),
    ("awscli-lifecycle.sh", "key lifecycle"),
];

// ---------------------------------------------------------------------------
// Python and the virtual environment.
// ---------------------------------------------------------------------------

/// A Python interpreter and its `major.minor` version.
struct Python {
    path: PathBuf,
    version: (u32, u32),
}

/// The first Python ≥ 3.12 among the candidates, or an error listing each one tried.
fn find_python() -> anyhow::Result<Python> {
    if let Some(path) = std::env::var_os("AMISHARE_PYTHON") {
        let path = PathBuf::from(path);
        let version = python_version(&path)
            .with_context(|| format!("AMISHARE_PYTHON={} does not run", path.display()))?;
        if version < MIN_PYTHON {
            return Err(format_err!(
                "AMISHARE_PYTHON={} is Python {}.{}; LocalStack needs {}.{} or newer",
                path.display(),
                version.0,
                version.1,
                MIN_PYTHON.0,
                MIN_PYTHON.1
            ));
        }
        return Ok(Python { path, version });
    }
    let mut tried = Vec::new();
    for path in python_candidates() {
        match python_version(&path) {
            Ok(version) if MIN_PYTHON <= version => return Ok(Python { path, version }),
            Ok(version) => tried.push(format!("{} is {}.{}", path.display(), version.0, version.1)),
            Err(err) => tried.push(format!("{}: {err:#}", path.display())),
        }
    }
    Err(format_err!(
        "LocalStack needs Python {}.{} or newer and none was found; tried:\n  {}\n\
         install one (e.g. `pyenv install 3.12`) or name it in AMISHARE_PYTHON",
        MIN_PYTHON.0,
        MIN_PYTHON.1,
        tried.join("\n  ")
    ))
}

/// `python3.13` and `python3.12` from `PATH`, pyenv's 3.12+ versions (newest
/// first; pyenv's root from `PYENV_ROOT`, `pyenv root` or `~/.pyenv`), then `python3`.
fn python_candidates() -> Vec<PathBuf> {
    let mut res = vec![PathBuf::from("python3.13"), PathBuf::from("python3.12")];
    let mut roots: Vec<PathBuf> = Vec::new();
    roots.extend(
        std::env::var_os("PYENV_ROOT")
            .filter(|root| !root.is_empty())
            .map(PathBuf::from),
    );
    roots.extend(pyenv_root_command());
    roots.extend(std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")));
    roots.dedup();
    for root in roots {
        let mut versions: Vec<((u32, u32, u32), PathBuf)> = fs::read_dir(root.join("versions"))
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let version = parse_version_name(&name)?;
                Some((version, entry.path().join("bin").join("python3")))
            })
            .filter(|((major, minor, _), _)| MIN_PYTHON <= (*major, *minor))
            .collect();
        versions.sort();
        res.extend(versions.into_iter().rev().map(|(_, path)| path));
    }
    res.push(PathBuf::from("python3"));
    res
}

/// What `pyenv root` prints, when pyenv is on `PATH`.
fn pyenv_root_command() -> Option<PathBuf> {
    let output = Command::new("pyenv")
        .arg("root")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let root = String::from_utf8(output.stdout).ok()?;
    let root = root.trim();
    match output.status.success() && !root.is_empty() {
        true => Some(PathBuf::from(root)),
        false => None,
    }
}

/// `3.13.0` as `(3, 13, 0)`; `None` for other names (`pypy3.10`, `3.13-dev`, …).
fn parse_version_name(name: &str) -> Option<(u32, u32, u32)> {
    let mut parts = name.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    match parts.next() {
        None => Some((major, minor, patch)),
        Some(_) => None,
    }
}

/// Runs `python -c` to read its version.
fn python_version(path: &Path) -> anyhow::Result<(u32, u32)> {
    let output = Command::new(path)
        .args([
            "-c",
            "import sys; print(sys.version_info[0], sys.version_info[1])",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format_err!("cannot run it: {err}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(format_err!("exited with {}: {line}", output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse_python_version(&stdout).ok_or_else(|| format_err!("printed {stdout:?}, not a version"))
}

/// `"3 13\n"` as `(3, 13)`.
fn parse_python_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split_whitespace();
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// What the marker file of a virtual environment holds: the interpreter's
/// version and the requirements, one a line.
fn venv_marker(python: &Python, venv: &Venv) -> String {
    let mut text = format!("python {}.{}\n", python.version.0, python.version.1);
    for requirement in venv.requirements {
        text.push_str(requirement);
        text.push('\n');
    }
    text
}

/// The virtual environment's Python, and whether it had to be (re)installed.
fn ensure_venv(
    running: &Running,
    dir: &Path,
    python: &Python,
    spec: &Venv,
) -> anyhow::Result<(PathBuf, bool)> {
    let venv = dir.join(spec.name);
    let venv_python = venv.join("bin").join("python");
    let marker = venv.join(VENV_MARKER);
    let wanted = venv_marker(python, spec);
    if venv_python.exists() && fs::read_to_string(&marker).ok().as_deref() == Some(&wanted) {
        eprintln!("e2e: reusing {}", venv.display());
        return Ok((venv_python, false));
    }
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    eprintln!(
        "e2e: creating {} with Python {}.{}",
        venv.display(),
        python.version.0,
        python.version.1
    );
    let status = running
        .status(
            Command::new(&python.path)
                .args(["-m", "venv"])
                .arg(&venv)
                .stdin(Stdio::null()),
        )
        .with_context(|| format!("running {} -m venv", python.path.display()))?;
    if !status.success() {
        return Err(format_err!(
            "{} -m venv {} failed ({status})",
            python.path.display(),
            venv.display()
        ));
    }
    let log_path = dir.join(format!("{}-pip.log", spec.name));
    eprintln!(
        "e2e: installing {} with pip ({}; log in {})",
        spec.requirements.join(" "),
        spec.takes,
        log_path.display()
    );
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let status = running
        .status(
            Command::new(&venv_python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                ])
                .args(spec.requirements)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
        )
        .context("running pip install")?;
    if !status.success() {
        print_tail(&log_path, 40);
        return Err(format_err!(
            "pip install {} failed ({status}); see {}",
            spec.requirements.join(" "),
            log_path.display()
        ));
    }
    fs::write(&marker, wanted).with_context(|| format!("writing {}", marker.display()))?;
    Ok((venv_python, true))
}

// ---------------------------------------------------------------------------
// LocalStack and the tests, as process groups that are always stopped.
// ---------------------------------------------------------------------------

/// The process groups this task started, shared with the interrupt handler.
#[derive(Clone)]
struct Running {
    inner: Arc<Mutex<Groups>>,
}

/// LocalStack, and the one other command running (a build, pip, the
/// tests), each leading a process group of its own.
#[derive(Default)]
struct Groups {
    localstack: Option<(Child, u16)>,
    foreground: Option<Pid>,
}

/// How LocalStack was stopped.
struct Stopped {
    took: Duration,
    how: &'static str,
    port: u16,
    port_closed: bool,
}

/// What the test run printed that the summary repeats.
struct TestOutcome {
    success: bool,
    /// Each test binary's `test result:` line, in the order they ran.
    results: Vec<String>,
    report: Vec<String>,
}

impl Running {
    /// Installs the handler that stops every group and exits on Ctrl-C, SIGTERM or SIGHUP.
    fn install() -> anyhow::Result<Running> {
        let running = Running {
            inner: Arc::new(Mutex::new(Groups::default())),
        };
        let handler = running.clone();
        ctrlc::set_handler(move || {
            eprintln!("\ne2e: interrupted: stopping the tests and LocalStack");
            let _ = handler.stop_all();
            std::process::exit(130);
        })
        .context("installing the Ctrl-C handler")?;
        Ok(running)
    }

    /// Runs a command to its end in a process group of its own, which an
    /// interrupt stops; spawned under the lock, so that the handler sees it.
    fn status(&self, command: &mut Command) -> std::io::Result<std::process::ExitStatus> {
        let mut child = {
            let mut groups = self.lock();
            let child = command.process_group(0).spawn()?;
            groups.foreground = Some(pid_of(&child));
            child
        };
        let status = child.wait();
        self.lock().foreground = None;
        status
    }

    /// The groups, even after a panic elsewhere: stopping must still work.
    fn lock(&self) -> MutexGuard<'_, Groups> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Starts LocalStack in a new process group, its output in `dir/localstack.log`.
    fn start_localstack(&self, python: &Path, dir: &Path, port: u16) -> anyhow::Result<()> {
        let log_path = dir.join("localstack.log");
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let fs_root = dir.join("localstack-root");
        if fs_root.exists() {
            fs::remove_dir_all(&fs_root)
                .with_context(|| format!("removing {}", fs_root.display()))?;
        }
        fs::create_dir_all(&fs_root).with_context(|| format!("creating {}", fs_root.display()))?;
        let listen = format!("127.0.0.1:{port}");
        eprintln!(
            "e2e: starting LocalStack on {listen} (log in {})",
            log_path.display()
        );
        let mut groups = self.lock();
        let child = Command::new(python)
            .args(["-m", "localstack.runtime.main"])
            // The machine has /.dockerenv: without this LocalStack believes it runs in a container.
            .env("OVERRIDE_IN_DOCKER", "0")
            .env("GATEWAY_LISTEN", &listen)
            // The default server binds 0.0.0.0 whatever GATEWAY_LISTEN says.
            .env("GATEWAY_SERVER", "hypercorn")
            // No DNS server on port 53.
            .env("DNS_ADDRESS", "0")
            .env("SERVICES", SERVICES)
            .env("FILESYSTEM_ROOT", &fs_root)
            .env("DISABLE_EVENTS", "1")
            .env("SKIP_SSL_CERT_DOWNLOAD", "1")
            .env("LOCALSTACK_HOST", &listen)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {} -m localstack.runtime.main", python.display()))?;
        groups.localstack = Some((child, port));
        Ok(())
    }

    /// `Some(status)` once LocalStack's main process has exited.
    fn localstack_exited(&self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let mut groups = self.lock();
        match groups.localstack.as_mut() {
            Some((child, _)) => Ok(child.try_wait()?),
            None => Err(format_err!("LocalStack is not running")),
        }
    }

    /// Runs the tests that `filter` selects, in a process group of their
    /// own, echoing their output and keeping the lines the summary repeats;
    /// with LocalStack's `port`, pointed at it and printing what they check.
    fn run_tests(
        &self,
        root: &Path,
        filter: &str,
        localstack: Option<u16>,
    ) -> anyhow::Result<TestOutcome> {
        let mut command = Command::new(cargo());
        command
            .args(TEST_ARGS)
            .args(["--", filter, "--test-threads=1"])
            .env_remove("AMISHARE_E2E")
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if let Some(port) = localstack {
            command.arg("--nocapture").env(
                "AMISHARE_LOCALSTACK_URL",
                format!("http://127.0.0.1:{port}"),
            );
        }
        let mut child = {
            let mut groups = self.lock();
            let child = command
                .process_group(0)
                .spawn()
                .with_context(|| format!("running the tests {filter}"))?;
            groups.foreground = Some(pid_of(&child));
            child
        };
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut results = Vec::new();
        let mut report = Vec::new();
        let mut out = std::io::stdout();
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading the tests' output")?;
            let _ = writeln!(out, "{line}");
            if line.starts_with("test result:") {
                results.push(line.clone());
            }
            if line.starts_with("scenario ")
                || line.starts_with("    ")
                || line.starts_with("e2e: ")
            {
                report.push(line);
            }
        }
        let status = child.wait().context("waiting for the e2e tests")?;
        self.lock().foreground = None;
        Ok(TestOutcome {
            success: status.success(),
            results,
            report,
        })
    }

    /// Stops the foreground command and LocalStack, whichever run; `None`
    /// when LocalStack never started.
    fn stop_all(&self) -> anyhow::Result<Option<Stopped>> {
        let mut groups = self.lock();
        // Its own caller reaps it.
        if let Some(foreground) = groups.foreground.take() {
            let _ = killpg(foreground, Signal::SIGTERM);
        }
        let Some((mut child, port)) = groups.localstack.take() else {
            return Ok(None);
        };
        let started = Instant::now();
        let how = stop_group(&mut child)?;
        Ok(Some(Stopped {
            took: started.elapsed(),
            how,
            port,
            port_closed: port_closed(port),
        }))
    }
}

/// Fails unless every package of [`TEST_ARGS`] ran a test binary in which
/// `filter` selected at least one test: a filter that matches nothing (a
/// module renamed, a feature not enabled) must not pass for a green run.
fn every_binary_ran_tests(filter: &str, results: &[String]) -> anyhow::Result<()> {
    let packages = TEST_ARGS.iter().filter(|arg| **arg == "-p").count();
    if results.len() != packages {
        return Err(format_err!(
            "the tests {filter} ran {} test binaries, not {packages} (one per package): {results:?}",
            results.len()
        ));
    }
    for line in results {
        match tests_run(line) {
            Some(0) => {
                return Err(format_err!(
                    "the filter {filter} matched no test in one binary: {line}"
                ))
            }
            Some(_) => {}
            None => return Err(format_err!("cannot read the test count in {line:?}")),
        }
    }
    Ok(())
}

/// How many tests a `test result:` line says ran (passed or failed).
fn tests_run(line: &str) -> Option<usize> {
    let count = |what: &str| -> Option<usize> {
        line.split([':', ';', '.'])
            .map(str::trim)
            .find_map(|part| part.strip_suffix(what))
            .and_then(|n| n.trim().parse().ok())
    };
    Some(count("passed")? + count("failed")?)
}

/// A child's process ID, which is its process group's since it leads one.
fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).expect("a process ID fits in an i32"))
}

/// SIGTERM to the child's process group; SIGKILL after [`STOP_TIMEOUT`].
/// Returns once the child is reaped and nothing is left in its group.
fn stop_group(child: &mut Child) -> anyhow::Result<&'static str> {
    let group = pid_of(child);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    let mut how = "SIGTERM";
    loop {
        let leader_gone = child.try_wait()?.is_some();
        // Signal 0 only checks whether any process of the group is left.
        let group_left = killpg(group, None).is_ok();
        if leader_gone && !group_left {
            return Ok(how);
        }
        if deadline < Instant::now() {
            if how == "SIGKILL" {
                return Err(format_err!(
                    "process group {group} survived SIGKILL for {} s",
                    STOP_TIMEOUT.as_secs()
                ));
            }
            let _ = killpg(group, Signal::SIGKILL);
            how = "SIGKILL";
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Whether nothing accepts connections on the port any more.
fn port_closed(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
}

/// A port nothing listens on, from the kernel.
fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// Polls the health endpoint until every service in [`SERVICES`] is up,
/// failing early when LocalStack exits.
fn wait_ready(running: &Running, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last;
    loop {
        if let Some(status) = running.localstack_exited()? {
            return Err(format_err!(
                "LocalStack exited ({status}) before it was ready"
            ));
        }
        match health(port) {
            Ok((200, body)) if services_ready(&body) => return Ok(()),
            Ok((status, body)) => last = format!("HTTP {status}: {body}"),
            Err(err) => last = err.to_string(),
        }
        if deadline < Instant::now() {
            return Err(format_err!(
                "LocalStack was not ready after {} s; last health answer: {last}",
                READY_TIMEOUT.as_secs()
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// `GET /_localstack/health` over plain HTTP/1.1: the status code and the body.
fn health(port: u16) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /_localstack/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = match response.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_owned(),
        None => String::new(),
    };
    Ok((status, body))
}

/// Whether the health document shows every service `available` or `running`.
fn services_ready(body: &str) -> bool {
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    SERVICES.split(',').all(|service| {
        compact.contains(&format!("\"{service}\":\"available\""))
            || compact.contains(&format!("\"{service}\":\"running\""))
    })
}

/// Prints the last [`LOG_TAIL_LINES`] lines of LocalStack's log.
fn print_log_tail(path: &Path) {
    if path.exists() {
        println!(
            "\n== LocalStack log, last {LOG_TAIL_LINES} lines of {}",
            path.display()
        );
        print_tail(path, LOG_TAIL_LINES);
    }
}

/// Prints the last `lines` lines of a file, or why it cannot be read.
fn print_tail(path: &Path, lines: usize) {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            for line in &all[all.len().saturating_sub(lines)..] {
                println!("{line}");
            }
        }
        Err(err) => println!("(cannot read {}: {err})", path.display()),
    }
}

/// Python version names and outputs are read as expected.
#[test]
fn python_versions_parse() {
    assert_eq!(parse_version_name("3.13.0"), Some((3, 13, 0)));
    assert_eq!(parse_version_name("3.12.1"), Some((3, 12, 1)));
    assert_eq!(parse_version_name("3.13-dev"), None);
    assert_eq!(parse_version_name("pypy3.10-7.3.12"), None);
    assert_eq!(parse_version_name("3.11.7.1"), None);
    assert_eq!(parse_python_version("3 13\n"), Some((3, 13)));
    assert_eq!(parse_python_version("garbage"), None);
    assert!((3, 11) < MIN_PYTHON && MIN_PYTHON <= (3, 12) && MIN_PYTHON <= (3, 13));
}

/// The health check needs every service up, however the JSON is spaced.
#[test]
fn health_needs_every_service() {
    let ready = r#"{"services": {"ec2": "available", "iam": "running", "kms": "available", "s3": "disabled", "sts": "available"}, "version": "2026.3.0"}"#;
    assert!(services_ready(ready));
    let compact =
        r#"{"services":{"ec2":"running","iam":"running","kms":"running","sts":"running"}}"#;
    assert!(services_ready(compact));
    let missing = r#"{"services": {"ec2": "available", "iam": "available", "kms": "initializing", "sts": "available"}}"#;
    assert!(!services_ready(missing));
    assert!(!services_ready(""));
}

/// A marker names the interpreter and every pin, so a change reinstalls.
#[test]
fn venv_marker_names_python_and_every_pin() {
    let python = Python {
        path: PathBuf::from("python3.13"),
        version: (3, 13),
    };
    let marker = venv_marker(&python, &LOCALSTACK_VENV);
    assert!(marker.starts_with("python 3.13\n"));
    for requirement in REQUIREMENTS {
        assert!(marker.lines().any(|line| line == *requirement));
    }
    let other = Python {
        path: PathBuf::from("python3.12"),
        version: (3, 12),
    };
    assert_ne!(venv_marker(&other, &LOCALSTACK_VENV), marker);
    assert_ne!(venv_marker(&python, &AWSCLI_VENV), marker);
}

/// A process group is stopped, every process in it.
#[test]
fn stop_group_ends_the_whole_group() {
    // `sleep` as leader of a new group, and a second `sleep` in that group,
    // reaped by a thread as LocalStack reaps its own children.
    let mut leader = Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .expect("sleep runs");
    let mut member = Command::new("sleep")
        .arg("30")
        .process_group(i32::try_from(leader.id()).unwrap())
        .spawn()
        .expect("sleep runs");
    let reaper = thread::spawn(move || member.wait());
    let started = Instant::now();
    assert_eq!(stop_group(&mut leader).expect("stopped"), "SIGTERM");
    assert!(started.elapsed() < STOP_TIMEOUT, "SIGTERM was enough");
    let status = reaper.join().unwrap().expect("the member was reaped");
    assert!(!status.success(), "the member was signalled: {status}");
    assert!(
        killpg(pid_of(&leader), None).is_err(),
        "nothing is left in the group"
    );
}

/// A run where a filter matched nothing in a binary fails, naming the line.
#[test]
fn a_filter_that_matches_no_test_fails_the_run() {
    let ran = "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 40 filtered out; finished in 9.12s";
    let none = "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 43 filtered out; finished in 0.00s";
    let failed = "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 42 filtered out; finished in 0.10s";
    assert_eq!(tests_run(ran), Some(3));
    assert_eq!(tests_run(none), Some(0));
    assert_eq!(tests_run(failed), Some(1));
    assert_eq!(tests_run("test result: garbled"), None);

    let both = [ran.to_owned(), ran.to_owned()];
    every_binary_ran_tests("localstack::", &both).expect("both binaries ran tests");
    let one_empty = [ran.to_owned(), none.to_owned()];
    let err = every_binary_ran_tests("localstack::", &one_empty).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("the filter localstack:: matched no test in one binary: {none}")
    );
    let missing = [ran.to_owned()];
    assert!(every_binary_ran_tests("serve::", &missing)
        .unwrap_err()
        .to_string()
        .starts_with("the tests serve:: ran 1 test binaries, not 2"));
    assert!(every_binary_ran_tests("serve::", &[]).is_err());
}
