//! A throwaway PostgreSQL 15 cluster for the tests: initialised in a temp directory,
//! listening on a free loopback port, one per test binary, a fresh database per test.
//!
//! - Binaries: `VOXBRIDGE_TEST_PG_BIN`, else Debian's `/usr/lib/postgresql/15/bin`
//!   (`initdb`, `pg_ctl`). Without them the PostgreSQL half of a test says so on stderr and
//!   is skipped — unless `VOXBRIDGE_TEST_PG_REQUIRED=1` (CI sets it in `.ci/run`), which
//!   turns the skip into a failure.
//! - PostgreSQL refuses to run as root: when the tests run as root (CI containers do), the
//!   cluster is initialised and run as `nobody` through `runuser`, and the directory is
//!   handed to that user. Connections are TCP on 127.0.0.1 with `trust` authentication.
//! - The cluster is started by a small shell watchdog that holds the test process's pipe
//!   on its stdin: when the test process ends (normally, by panic or by SIGKILL), the pipe
//!   closes, and the watchdog stops the server (`pg_ctl -m immediate`) and removes the
//!   directory, so nothing outlives the run.
//! - `fsync=off`: the tests kill voxbridge processes, never the database server.
//! - TLS: when `openssl` is on the machine, the watchdog makes a throwaway CA and a
//!   server certificate for `localhost` and `127.0.0.1` signed by it, and the cluster
//!   runs with `ssl=on` (plain connections still accepted): [`Cluster::tls`] names the
//!   CA file for `sslrootcert`. Without `openssl` it is `None` and the TLS tests skip.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The watchdog script: `$1` directory, `$2` port, `$3` binaries.
const WATCHDOG: &str = r#"
dir=$1; port=$2; bin=$3
run() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
mkdir -p "$dir" || { echo "FAILED mkdir $dir"; exit 1; }
if [ "$(id -u)" = 0 ]; then chown nobody "$dir" || { echo "FAILED chown nobody $dir"; exit 1; }; fi
if ! run "$bin/initdb" -D "$dir/data" -U voxbridge -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1; then
  echo "FAILED initdb: $(tail -n 5 "$dir/initdb.log" | tr '\n' ' ')"; rm -rf "$dir"; exit 1
fi
ssl=""
if command -v openssl >/dev/null 2>&1 && run sh -c '
  set -e; cd "$1"; mkdir tls; cd tls
  printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n" >server.ext
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=voxbridge test CA" -keyout ca.key -out ca.crt \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=localhost" -keyout server.key -out server.csr
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.crt
  chmod 600 server.key' tls "$dir" >"$dir/tls.log" 2>&1; then
  ssl="-c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key"
fi
if ! run "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=400 -c full_page_writes=off $ssl" \
    start >/dev/null 2>&1; then
  echo "FAILED pg_ctl start: $(tail -n 5 "$dir/server.log" | tr '\n' ' ')"; rm -rf "$dir"; exit 1
fi
if [ -n "$ssl" ]; then echo "READY TLS"; else echo READY; fi
cat >/dev/null
run "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
rm -rf "$dir"
"#;

/// The running cluster.
pub struct Cluster {
    pub port: u16,
    /// The CA that signed the cluster's certificate (PEM), when it runs with TLS.
    pub tls: Option<PathBuf>,
    /// Held open for the life of the process; closing it stops the cluster.
    _watchdog: Mutex<ChildStdin>,
}

impl Cluster {
    /// A URL for `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://voxbridge@127.0.0.1:{}/{database}", self.port)
    }
}

fn bin_dir() -> PathBuf {
    std::env::var_os("VOXBRIDGE_TEST_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN))
}

fn required() -> bool {
    std::env::var("VOXBRIDGE_TEST_PG_REQUIRED").is_ok_and(|v| v == "1")
}

/// The cluster of this test process, started on first use; `None` (said loudly) when the
/// PostgreSQL binaries are not installed.
pub fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    CLUSTER.get_or_init(start).as_ref()
}

fn start() -> Option<Cluster> {
    let bin = bin_dir();
    if !bin.join("initdb").exists() || !bin.join("pg_ctl").exists() {
        let msg = format!(
            "PostgreSQL tests SKIPPED: no initdb/pg_ctl in {} (install postgresql-15, or set \
             VOXBRIDGE_TEST_PG_BIN)",
            bin.display()
        );
        assert!(!required(), "{msg}, and VOXBRIDGE_TEST_PG_REQUIRED=1");
        eprintln!("{msg}");
        return None;
    }
    let mut last_error = String::new();
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("voxbridge-pg-{}", uuid::Uuid::new_v4().simple()));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(&dir)
            .arg(port.to_string())
            .arg(&bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sh runs");
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim().starts_with("READY") {
            let tls = (line.trim() == "READY TLS").then(|| dir.join("tls/ca.crt"));
            let stdin = child.stdin.take().expect("piped");
            // The child is reaped by nobody: it lives exactly as long as this process.
            std::mem::forget(child);
            eprintln!(
                "PostgreSQL test cluster on 127.0.0.1:{port} ({})",
                dir.display()
            );
            return Some(Cluster {
                port,
                tls,
                _watchdog: Mutex::new(stdin),
            });
        }
        let _ = child.wait();
        last_error = line.trim().to_string();
    }
    panic!("cannot start the PostgreSQL test cluster: {last_error}");
}

/// A fresh, empty database on the cluster; its URL. `None` when PostgreSQL is not here.
pub async fn fresh_database() -> Option<String> {
    let cluster = tokio::task::spawn_blocking(cluster)
        .await
        .expect("start task")?;
    let name = format!("vb_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) =
        tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the test cluster");
    let conn = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    drop(client);
    let _ = conn.await;
    Some(cluster.url(&name))
}

/// As [`fresh_database`], with the CA file of the cluster's TLS certificate; `None`
/// (said on stderr) without PostgreSQL, or without `openssl` to make the certificate.
pub async fn fresh_database_with_tls() -> Option<(String, PathBuf)> {
    let url = fresh_database().await?;
    let cluster = cluster()?;
    match &cluster.tls {
        Some(ca) => Some((url, ca.clone())),
        None => {
            let msg = "PostgreSQL TLS tests SKIPPED: no openssl to make the test certificate";
            assert!(!required(), "{msg}, and VOXBRIDGE_TEST_PG_REQUIRED=1");
            eprintln!("{msg}");
            None
        }
    }
}
