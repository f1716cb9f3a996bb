//! A world file as a transaction: [`WorldLock`] holds an advisory lock on
//! the file for a whole read-modify-write, and saves it atomically.
//!
//! The lock is taken on a file beside the world (`world.json.lock`), never
//! on the world itself, which every save replaces with a new file. The lock
//! file is never removed (a removed lock file lets two writers lock two
//! different files); while it is held it names its holder ([`LockHolder`]),
//! so a command that has to wait can say for whom, and a command that meets
//! a server can say how to reach it. A holder that dies (even by SIGKILL)
//! releases the lock with its last file descriptor.
//!
//! A save writes the whole document to a temporary file of its own beside the
//! world, flushes and syncs it, gives it the world file's mode, renames it
//! over the world file and syncs the directory: a reader, or a writer killed
//! at any point, leaves either the old file or the new one. A symlinked
//! world file is written through to its target.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use amishare_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::world::World;

/// How long a command waits for another command's turn on a world file
/// unless told otherwise.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Who holds a world file's lock, as the holder wrote it into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The holder's process ID.
    pub pid: u32,
    /// What it is doing, e.g. `amishare share` or `amishare sim serve`.
    pub command: String,
    /// Where a server that holds the world serves it (`http://127.0.0.1:9566`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl LockHolder {
    /// This process, doing `command`.
    pub fn this_process(command: impl Into<String>) -> LockHolder {
        LockHolder {
            pid: std::process::id(),
            command: command.into(),
            endpoint: None,
        }
    }

    /// The same holder, serving the world at `endpoint`.
    pub fn serving(mut self, endpoint: impl Into<String>) -> LockHolder {
        self.endpoint = Some(endpoint.into());
        self
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.command)
    }
}

/// What a world's ID sequence and call counters stood at, to tell whether
/// anything changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    ids: u64,
    mutating: usize,
}

fn mark(world: &World) -> Mark {
    let state = world.lock();
    Mark {
        ids: state.ids.position(),
        mutating: state.log.mutating,
    }
}

/// An exclusive advisory lock on a world file, held until dropped.
///
/// Every command that opens a world file holds one from before it reads the
/// file until after it writes it back, so commands on one file take turns
/// and none loses another's changes; `amishare sim serve` holds one for as
/// long as it serves.
#[derive(Debug)]
pub struct WorldLock {
    /// The path as given, for messages.
    path: PathBuf,
    /// The world file itself, symlinks resolved.
    target: PathBuf,
    /// The lock file, locked.
    file: File,
    /// Where the world stood when [`WorldLock::load`] read it.
    loaded: std::sync::Mutex<Option<Mark>>,
}

impl WorldLock {
    /// Locks the world file at `path`, which must exist, for `holder`.
    ///
    /// While another command holds the lock, waits for it for up to `wait`,
    /// calling `waiting` once with the holder (when the lock file names one)
    /// so the caller can say whom it waits for; then fails with
    /// [`ErrorKind::Timeout`]. A server holding the world is refused at once
    /// ([`ErrorKind::Conflict`]), with the endpoint that reaches it: a
    /// server holds its world for as long as it runs. A missing world file
    /// is [`ErrorKind::InvalidInput`].
    pub fn acquire(
        path: &Path,
        holder: &LockHolder,
        wait: Duration,
        waiting: impl FnOnce(Option<&LockHolder>),
    ) -> Result<WorldLock> {
        let target = std::fs::canonicalize(path).map_err(|err| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("cannot read world file {}: {err}", path.display()),
            )
        })?;
        let lock_path = sibling(&target, "", ".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|err| {
                io_error(
                    format!("cannot open the lock file {}", lock_path.display()),
                    err,
                )
            })?;
        let deadline = Instant::now() + wait;
        let mut waiting = Some(waiting);
        let mut pause = Duration::from_millis(5);
        loop {
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => break,
                Err(fs4::TryLockError::WouldBlock) => {}
                Err(fs4::TryLockError::Error(err)) => {
                    return Err(io_error(
                        format!("cannot lock {}", lock_path.display()),
                        err,
                    ))
                }
            }
            let current = read_holder(&file);
            if let Some(endpoint) = current.as_ref().and_then(|h| h.endpoint.as_deref()) {
                let who = current.as_ref().expect("a holder with an endpoint");
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "world file {} is being served by `amishare sim serve` ({who}): reach it with --backend aws --endpoint-url {endpoint} and an access key of the world, or stop the server first",
                        path.display()
                    ),
                ));
            }
            if let Some(waiting) = waiting.take() {
                waiting(current.as_ref());
            }
            let now = Instant::now();
            if now >= deadline {
                let whom = current.map_or_else(|| "another command".to_owned(), |h| h.to_string());
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "world file {} is still in use by {whom} after {} s; try again when it has finished",
                        path.display(),
                        wait.as_secs()
                    ),
                ));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        let lock = WorldLock {
            path: path.to_owned(),
            target,
            file,
            loaded: std::sync::Mutex::new(None),
        };
        lock.set_holder(holder)?;
        lock.remove_stale_temporaries();
        Ok(lock)
    }

    /// The world file as it was named.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes who holds the lock into the lock file (a server adds its
    /// endpoint once it listens).
    pub fn set_holder(&self, holder: &LockHolder) -> Result<()> {
        let text = serde_json::to_string(holder).expect("a lock holder is plain data");
        let failed = |err| io_error("cannot write the lock file".to_owned(), err);
        let mut file = &self.file;
        file.set_len(0).map_err(failed)?;
        file.seek(SeekFrom::Start(0)).map_err(failed)?;
        file.write_all(text.as_bytes()).map_err(failed)
    }

    /// Reads the world, and remembers where it stood, for
    /// [`WorldLock::save_if_changed`].
    pub fn load(&self) -> Result<World> {
        let world = World::load(&self.path)?;
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(mark(&world));
        Ok(world)
    }

    /// Writes `world` to the file, atomically.
    pub fn save(&self, world: &World) -> Result<()> {
        let text = world.to_file().to_json();
        write_atomically(&self.target, text.as_bytes()).map_err(|err| {
            io_error(
                format!("cannot write world file {}", self.path.display()),
                err,
            )
        })?;
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(mark(world));
        Ok(())
    }

    /// Writes `world` back only if it changed since it was loaded or last
    /// saved (a call that may change state was made, or an ID was handed
    /// out), so a command that only read leaves the file as it was. Returns
    /// whether it wrote.
    pub fn save_if_changed(&self, world: &World) -> Result<bool> {
        let loaded = *self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded == Some(mark(world)) {
            return Ok(false);
        }
        self.save(world)?;
        Ok(true)
    }

    /// Removes the temporary files of writers that died before renaming
    /// theirs: while the lock is held, no other writer is at work.
    fn remove_stale_temporaries(&self) {
        let (Some(dir), Some(prefix)) = (self.target.parent(), temporary_prefix(&self.target))
        else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(TEMPORARY_SUFFIX) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

impl Drop for WorldLock {
    fn drop(&mut self) {
        // Forget the holder before the lock goes with the file descriptor,
        // so nobody waits for, or is refused by, a holder that has left.
        let _ = self.file.set_len(0);
    }
}

impl World {
    /// Writes the world to `path`, atomically, holding the file's lock
    /// while it writes (waiting for another holder as a command does); a
    /// new file is created. Commands keep the lock from load to save
    /// instead: see [`WorldLock`].
    pub fn save(&self, path: &Path) -> Result<()> {
        if std::fs::symlink_metadata(path).is_err() {
            let text = self.to_file().to_json();
            return write_atomically(path, text.as_bytes()).map_err(|err| {
                io_error(format!("cannot write world file {}", path.display()), err)
            });
        }
        let lock = WorldLock::acquire(
            path,
            &LockHolder::this_process("amishare (saving a world)"),
            DEFAULT_LOCK_WAIT,
            |_| {},
        )?;
        lock.save(self)
    }
}

/// The holder a lock file names, if it names one (it may be being written).
fn read_holder(file: &File) -> Option<LockHolder> {
    let mut text = String::new();
    let mut file = file;
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

const TEMPORARY_SUFFIX: &str = ".tmp";

/// `.world.json.` for `world.json`: the start of its writers' temporary files.
fn temporary_prefix(target: &Path) -> Option<String> {
    Some(format!(".{}.", target.file_name()?.to_string_lossy()))
}

/// A file beside `target`: its name between `before` and `after`.
fn sibling(target: &Path, before: &str, after: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!("{before}{name}{after}"))
}

/// Replaces `target` with `bytes` so that a reader, or a crash at any
/// point, sees either the old file or the new one, never a mix.
fn write_atomically(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let prefix = temporary_prefix(target).unwrap_or_else(|| ".world.".to_owned());
    let mut temporary = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(TEMPORARY_SUFFIX)
        .tempfile_in(dir)?;
    temporary.write_all(bytes)?;
    temporary.flush()?;
    if let Ok(metadata) = std::fs::metadata(target) {
        temporary
            .as_file()
            .set_permissions(metadata.permissions())?;
        keep_owner(temporary.as_file(), &metadata);
    }
    temporary.as_file().sync_all()?;
    temporary.persist(target).map_err(|err| err.error)?;
    sync_dir(dir)
}

/// Gives the new file the old one's owner, where this process may (as root).
#[cfg(unix)]
fn keep_owner(file: &File, metadata: &std::fs::Metadata) {
    use std::os::unix::fs::MetadataExt as _;
    let _ = std::os::unix::fs::fchown(file, Some(metadata.uid()), Some(metadata.gid()));
}

#[cfg(not(unix))]
fn keep_owner(_file: &File, _metadata: &std::fs::Metadata) {}

/// Makes the rename itself durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

fn io_error(what: String, err: std::io::Error) -> Error {
    Error::new(ErrorKind::Service, format!("{what}: {err}")).with_source(err)
}
