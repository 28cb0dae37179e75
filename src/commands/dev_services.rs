//! The private PostgreSQL and Redis that `runeflow dev` starts when no
//! `DATABASE_URL` / `REDIS_URL` is given (like `temporal server start-dev`),
//! from the system binaries, and stops when dropped or on [`stop`].
//!
//! [`stop`]: DevServices::stop

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// Name of the database `dev` creates in its private cluster.
const DATABASE: &str = "runeflow";

/// Child services owned by `runeflow dev`.
pub struct DevServices {
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    postgres: Option<Child>,
    redis: Option<Child>,
}

impl DevServices {
    /// Starts what is missing: PostgreSQL when `need_postgres`, Redis when
    /// `need_redis`, keeping their data under `data_dir`.
    pub async fn start(
        data_dir: &Path,
        need_postgres: bool,
        need_redis: bool,
    ) -> anyhow::Result<Self> {
        let mut services = DevServices {
            database_url: None,
            redis_url: None,
            postgres: None,
            redis: None,
        };
        if need_redis {
            let port = free_port()?;
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start redis-server (install Debian's redis-server package)")?;
            services.redis = Some(child);
            wait_for_port(port, "redis-server").await?;
            services.redis_url = Some(format!("redis://127.0.0.1:{port}/0"));
            tracing::info!(port, "private Redis started");
        }
        if need_postgres {
            let (child, url) = start_postgres(data_dir).await?;
            services.postgres = Some(child);
            services.database_url = Some(url);
        }
        Ok(services)
    }

    /// Stops the children: PostgreSQL with a fast shutdown, Redis at once.
    pub async fn stop(mut self) {
        if let Some(mut pg) = self.postgres.take() {
            if let Some(pid) = pg.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGINT,
                );
            }
            if tokio::time::timeout(Duration::from_secs(10), pg.wait())
                .await
                .is_err()
            {
                let _ = pg.kill().await;
            }
        }
        if let Some(mut redis) = self.redis.take() {
            let _ = redis.kill().await;
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{what} did not start listening on 127.0.0.1:{port}")
}

/// Newest `/usr/lib/postgresql/<version>/bin` (Debian keeps the server
/// binaries off PATH), or PATH when `initdb` is there.
fn postgres_bin() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    bail!(
        "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (install Debian's postgresql package)"
    )
}

/// True when running as root: PostgreSQL refuses that, so its commands run
/// as the `postgres` system user.
fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A PostgreSQL program, run as the `postgres` system user when we are root
/// (it refuses to run as root). The uid is switched in the child itself,
/// not through `runuser`, so the server is our direct child and our signals
/// reach it.
fn pg_command(bin: &Path, program: &str) -> anyhow::Result<Command> {
    let mut command = Command::new(bin.join(program));
    if is_root() {
        let user = nix::unistd::User::from_name("postgres")
            .context("looking up the postgres user")?
            .context("running as root needs the `postgres` system user (Debian's postgresql package creates it)")?;
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        command.env("HOME", &user.dir);
    }
    Ok(command)
}

async fn start_postgres(data_dir: &Path) -> anyhow::Result<(Child, String)> {
    let bin = postgres_bin()?;
    let pgdata = data_dir.join("postgres");
    std::fs::create_dir_all(&pgdata)
        .with_context(|| format!("cannot create {}", pgdata.display()))?;
    let pgdata = pgdata.canonicalize()?;
    if is_root() {
        let status = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&pgdata)
            .status()
            .context("chown of the PostgreSQL data folder")?;
        anyhow::ensure!(status.success(), "chown of {} failed", pgdata.display());
        // The postgres user must be able to reach the folder. We open up
        // only the dev folder itself; a closed ancestor is the user's call.
        use std::os::unix::fs::PermissionsExt;
        if let Some(dev_dir) = pgdata.parent() {
            let mode = std::fs::metadata(dev_dir)?.permissions().mode();
            std::fs::set_permissions(dev_dir, std::fs::Permissions::from_mode(mode | 0o001))?;
            let mut dir = dev_dir.parent();
            while let Some(d) = dir {
                let mode = std::fs::metadata(d)?.permissions().mode();
                anyhow::ensure!(
                    mode & 0o001 != 0,
                    "the postgres user cannot reach {} ({} is not searchable by others); \
                     make it searchable (chmod o+x) or set RUNEFLOW_DEV_DIR elsewhere",
                    pgdata.display(),
                    d.display()
                );
                dir = d.parent();
            }
        }
    }
    if !pgdata.join("PG_VERSION").exists() {
        let out = pg_command(&bin, "initdb")?
            .args(["-D"])
            .arg(&pgdata)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .await
            .context("cannot run initdb")?;
        anyhow::ensure!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let port = free_port()?;
    let child = pg_command(&bin, "postgres")?
        .arg("-D")
        .arg(&pgdata)
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ])
        .arg("-k")
        .arg(&pgdata)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start postgres")?;
    wait_for_port(port, "postgres").await?;
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let url = format!("postgres://postgres@127.0.0.1:{port}/{DATABASE}");
    create_database(&admin).await?;
    tracing::info!(port, data = %pgdata.display(), "private PostgreSQL started");
    Ok((child, url))
}

async fn create_database(admin_url: &str) -> anyhow::Result<()> {
    use sea_orm::{ConnectionTrait, Database};
    let mut last = None;
    for _ in 0..100 {
        match Database::connect(admin_url).await {
            Ok(db) => {
                let exists = db
                    .query_one_raw(sea_orm::Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        format!("SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"),
                    ))
                    .await?
                    .is_some();
                if !exists {
                    db.execute_unprepared(&format!("CREATE DATABASE {DATABASE}"))
                        .await?;
                }
                db.close().await.ok();
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("private PostgreSQL did not accept connections: {last:?}")
}
