//! Private PostgreSQL clusters, started from the machine's installed binaries as the
//! `postgres` user when Trove runs as root (PostgreSQL refuses to run as root).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{LocalError, Result};

/// Where `initdb` and `pg_ctl` live.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
}

impl PgBinaries {
    /// PATH first, then the newest `/usr/lib/postgresql/<version>/bin`.
    pub fn find() -> Result<Self> {
        let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
        if let Some(path) = std::env::var_os("PATH") {
            if let Some(dir) = std::env::split_paths(&path).find(|d| has_both(d)) {
                // Where a linked initdb really lives holds the other programs too
                // (pg_basebackup for standbys), which PATH may not link.
                let real = std::fs::canonicalize(dir.join("initdb")).ok();
                let bin_dir = real
                    .and_then(|r| r.parent().map(Path::to_path_buf))
                    .filter(|d| has_both(d))
                    .unwrap_or(dir);
                return Ok(PgBinaries { bin_dir });
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                has_both(&bin).then_some((v, bin))
            })
            .collect();
        versions.sort();
        versions
            .pop()
            .map(|(_, bin_dir)| PgBinaries { bin_dir })
            .ok_or(LocalError::MissingBinaries)
    }
}

pub(super) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// uid and gid of the `postgres` user.
fn postgres_user() -> Result<(u32, u32)> {
    let name = c"postgres";
    // SAFETY: getpwnam takes a NUL-terminated name; the returned record is read at once,
    // before any other call could reuse its static storage.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return Err(LocalError::NoPostgresUser);
        }
        Ok(((*pw).pw_uid, (*pw).pw_gid))
    }
}

/// uid and gid to run PostgreSQL programs as: the `postgres` user's when we are root, none
/// (ourselves) otherwise.
pub(super) fn postgres_ids() -> Result<Option<(u32, u32)>> {
    if is_root() {
        postgres_user().map(Some)
    } else {
        Ok(None)
    }
}

/// Gives `path` to the `postgres` user when we are root.
pub(super) fn chown_to_postgres(path: &Path) -> Result<()> {
    if let Some((uid, gid)) = postgres_ids()? {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| LocalError::Io(format!("chown {}", path.display()), e))?;
    }
    Ok(())
}

/// Settings written into every private cluster's postgresql.conf.
const BASE_SETTINGS: &[&str] = &[
    "listen_addresses = '127.0.0.1'",
    "unix_socket_directories = ''",
    "max_connections = 200",
    "shared_buffers = 128MB",
];

/// Throwaway clusters (tests, benchmarks of the HTTP path) trade durability for speed.
pub const THROWAWAY_SETTINGS: &[&str] = &["fsync = off", "full_page_writes = off"];

/// One private PostgreSQL cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    bins: PgBinaries,
    /// Whether `ensure` started it (and so whoever called it should stop it): a cluster that
    /// was already running, say under another `trove serve`, is left alone.
    pub started_here: bool,
}

impl Cluster {
    /// Initialises `dir` if it holds no cluster yet (on a free port from `first_port` up,
    /// with `settings` added), and starts it unless it is already running.
    pub fn ensure(dir: &Path, first_port: u16, settings: &[&str]) -> Result<Cluster> {
        let bins = PgBinaries::find()?;
        let conf = dir.join("postgresql.conf");
        let port = if conf.is_file() {
            read_port(&conf).unwrap_or(5432)
        } else {
            let port = free_port(first_port);
            std::fs::create_dir_all(dir)
                .map_err(|e| LocalError::Io(format!("creating {}", dir.display()), e))?;
            chown_to_postgres(dir)?;
            let cluster = Cluster {
                dir: dir.to_owned(),
                port,
                bins: bins.clone(),
                started_here: false,
            };
            cluster.pg(
                "initdb",
                &[
                    "-D",
                    &path_str(dir),
                    "-U",
                    "trove",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
            )?;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&conf)
                .map_err(|e| LocalError::Io(format!("opening {}", conf.display()), e))?;
            let mut extra = format!("\n# Added by Trove's local stack\nport = {port}\n");
            for line in BASE_SETTINGS.iter().chain(settings) {
                extra.push_str(line);
                extra.push('\n');
            }
            f.write_all(extra.as_bytes())
                .map_err(|e| LocalError::Io(format!("writing {}", conf.display()), e))?;
            port
        };
        let mut cluster = Cluster {
            dir: dir.to_owned(),
            port,
            bins,
            started_here: false,
        };
        if !cluster.is_running() {
            cluster.start()?;
            cluster.started_here = true;
        }
        Ok(cluster)
    }

    /// Runs a PostgreSQL program, as the `postgres` user when we are root.
    fn pg(&self, program: &str, args: &[&str]) -> Result<Output> {
        let exe = self.bins.bin_dir.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).stdin(std::process::Stdio::null());
        let shown = format!("{} {}", exe.display(), args.join(" "));
        let out = cmd
            .output()
            .map_err(|e| LocalError::Io(format!("running {shown}"), e))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(LocalError::Command {
                command: shown,
                status: out.status.to_string(),
                output: String::from_utf8_lossy(
                    &[out.stdout.as_slice(), out.stderr.as_slice()].concat(),
                )
                .into_owned(),
            })
        }
    }

    pub fn is_running(&self) -> bool {
        self.pg("pg_ctl", &["status", "-D", &path_str(&self.dir)])
            .is_ok()
    }

    pub fn start(&self) -> Result<()> {
        let log = path_str(&self.dir.join("server.log"));
        self.pg(
            "pg_ctl",
            &[
                "start",
                "-D",
                &path_str(&self.dir),
                "-l",
                &log,
                "-w",
                "-t",
                "60",
            ],
        )
        .map(drop)
    }

    /// Fast shutdown: in-flight transactions roll back, committed ones are durable.
    pub fn stop(&self) -> Result<()> {
        self.pg(
            "pg_ctl",
            &[
                "stop",
                "-D",
                &path_str(&self.dir),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
            ],
        )
        .map(drop)
    }

    /// A streaming standby of this (running) cluster in `dir`, on a free port from
    /// `first_port` up, started: a copy by `pg_basebackup` that follows this cluster's WAL.
    pub fn start_standby(&self, dir: &Path, first_port: u16) -> Result<Cluster> {
        let port = free_port(first_port);
        std::fs::create_dir_all(dir)
            .map_err(|e| LocalError::Io(format!("creating {}", dir.display()), e))?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| LocalError::Io(format!("chmod {}", dir.display()), e))?;
        chown_to_postgres(dir)?;
        self.pg(
            "pg_basebackup",
            &[
                "-D",
                &path_str(dir),
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "trove",
                "-X",
                "stream",
                // Not a spread checkpoint first (minutes on an idle server).
                "--checkpoint=fast",
                "--write-recovery-conf",
            ],
        )?;
        let conf = dir.join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|e| LocalError::Io(format!("opening {}", conf.display()), e))?;
        f.write_all(format!("\n# A standby of port {}\nport = {port}\n", self.port).as_bytes())
            .map_err(|e| LocalError::Io(format!("writing {}", conf.display()), e))?;
        let standby = Cluster {
            dir: dir.to_owned(),
            port,
            bins: self.bins.clone(),
            started_here: true,
        };
        standby.start()?;
        Ok(standby)
    }

    /// Promotes a standby to a primary (waits until it accepts writes).
    pub fn promote(&self) -> Result<()> {
        self.pg(
            "pg_ctl",
            &["promote", "-D", &path_str(&self.dir), "-w", "-t", "60"],
        )
        .map(drop)
    }

    /// Connection URL of database `db` in this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://trove@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `db` unless it exists.
    pub async fn create_database(&self, db: &str, template: Option<&str>) -> Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        create_database_on(&mut conn, db, template).await?;
        conn.close().await?;
        Ok(())
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn read_port(conf: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(conf).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| l.trim().strip_prefix("port = "))
        .find_map(|v| v.split_whitespace().next()?.parse().ok())
}

/// The first port from `from` that is free on 127.0.0.1.
pub fn free_port(from: u16) -> u16 {
    (from..u16::MAX)
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        .unwrap_or(from)
}

/// Creates database `db` (from `template`) on `conn`'s server unless it exists.
pub(super) async fn create_database_on(
    conn: &mut sqlx::PgConnection,
    db: &str,
    template: Option<&str>,
) -> Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(db)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        // Identifiers cannot be bound; names here are ours, quoted to be safe.
        let mut sql = format!("CREATE DATABASE \"{}\"", db.replace('"', ""));
        if let Some(t) = template {
            sql.push_str(&format!(" TEMPLATE \"{}\"", t.replace('"', "")));
        }
        sqlx::raw_sql(&sql).execute(&mut *conn).await?;
    }
    Ok(())
}
