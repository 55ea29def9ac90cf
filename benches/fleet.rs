//! The benchmark driver behind `bench/run.sh`: fake supplier fleets on loopback, the real
//! exporter binary started fresh for each scenario, and every figure next to its baseline.
//!
//! ```text
//! fleet serve --accounts N [--latency 200ms] [--suppliers 2] [--dir DIR]
//!     start the fakes, write DIR/accounts.yaml for SALDO_CONFIG_FILE, run until Ctrl-C
//! fleet run --exporter BIN --baseline BIN [--nginx BIN] --out DIR [--quick] [--only a,b]
//!     run the scenarios (throughput, cold, suppliers, single_flight, startup, load); print each figure
//!     and write DIR/results.json and DIR/figures.md
//! fleet render-table --criterion DIR
//!     the render-cost table, in Markdown, from criterion's estimates
//! ```
//!
//! A fake supplier is the crate's own [`Simulator`] (it checks signatures as the real API does)
//! behind a TCP proxy that counts accepted connections, so the figures can show whether the
//! exporter reuses its upstream connections. Accounts are spread over two suppliers (one
//! isikuota, one Ayopop), as a reseller with many accounts at few suppliers has them: the case
//! where connections per supplier host would grow with the number of accounts.
//! Under `cargo bench` (no subcommand) this binary does nothing.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use saldo_exporter::demo::{Fault, Simulator};
use saldo_exporter::providers::REGISTRY;
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::PrivatePkcs8KeyDer;

const USAGE: &str =
    "usage: fleet serve|run|render-table ... (see benches/fleet.rs; run by bench/run.sh)";

/// The latency of the fake suppliers in the cold-scrape and single-flight scenarios.
const SLOW_SUPPLIER: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("serve") => {
            let accounts = flag("--accounts").map_or(50, |n| n.parse().expect("--accounts N"));
            let latency = flag("--latency").map_or(Duration::ZERO, |d| {
                humantime::parse_duration(&d).expect("--latency like 200ms")
            });
            let suppliers = flag("--suppliers").map_or(2, |n| n.parse().expect("--suppliers N"));
            let dir = PathBuf::from(flag("--dir").unwrap_or_else(|| ".".into()));
            let https = args.iter().any(|a| a == "--https");
            serve(accounts, latency, suppliers, &dir, https);
            ExitCode::SUCCESS
        }
        Some("run") => {
            let path = |name: &str| PathBuf::from(flag(name).unwrap_or_else(|| panic!("{name}")));
            let options = Options {
                exporter: path("--exporter"),
                baseline: path("--baseline"),
                out: path("--out"),
                nginx: flag("--nginx").map(PathBuf::from),
                quick: args.iter().any(|a| a == "--quick"),
                only: flag("--only").map(|list| list.split(',').map(str::to_owned).collect()),
            };
            std::fs::create_dir_all(&options.out).expect("the output directory can be created");
            run(&options);
            ExitCode::SUCCESS
        }
        Some("render-table") => {
            let dir = PathBuf::from(flag("--criterion").expect("--criterion DIR"));
            print!("{}", render_table(&dir));
            ExitCode::SUCCESS
        }
        // `cargo bench` runs every bench target with `--bench`: nothing to do here.
        _ => {
            eprintln!("{USAGE}");
            ExitCode::SUCCESS
        }
    }
}

struct Options {
    exporter: PathBuf,
    baseline: PathBuf,
    out: PathBuf,
    /// nginx, for the throughput scenario's static-file comparison.
    nginx: Option<PathBuf>,
    quick: bool,
    only: Option<Vec<String>>,
}

impl Options {
    fn wants(&self, scenario: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == scenario))
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

// ---------------------------------------------------------------------------------------------
// The fake suppliers

/// Fake suppliers on loopback, each behind a connection-counting proxy, and the YAML accounts
/// file that points `accounts` exporter accounts at them.
struct Fleet {
    simulators: Vec<Simulator>,
    accepted: Vec<Arc<AtomicU64>>,
    proxies: Vec<JoinHandle<()>>,
    config: PathBuf,
    /// With HTTPS: the test CA the exporter must trust (`SSL_CERT_FILE`).
    ca_file: Option<PathBuf>,
}

impl Fleet {
    async fn start(accounts: usize, latency: Duration, suppliers: usize, dir: &Path) -> Fleet {
        Self::start_with(accounts, latency, suppliers, dir, false).await
    }

    /// With `https`, the proxies terminate TLS (a certificate for `localhost` from a test CA)
    /// and the accounts' base URLs are `https://localhost:…`, as real suppliers are reached:
    /// a name to resolve and a TLS connection to keep in the pool.
    async fn start_with(
        accounts: usize,
        latency: Duration,
        suppliers: usize,
        dir: &Path,
        https: bool,
    ) -> Fleet {
        let suffix = if https { "-https" } else { "" };
        let tls = https.then(|| test_tls(dir));
        let mut fleet = Fleet {
            simulators: Vec::new(),
            accepted: Vec::new(),
            proxies: Vec::new(),
            config: dir.join(format!("accounts-{accounts}{suffix}.yaml")),
            ca_file: tls.as_ref().map(|(_, ca_file)| ca_file.clone()),
        };
        let mut bases = Vec::new();
        for i in 0..suppliers.max(1) {
            let provider = REGISTRY[i % REGISTRY.len()].name;
            let simulator = Simulator::start(provider, Decimal::from(10_000_000 + i as i64))
                .await
                .expect("a simulator starts");
            simulator.set_latency(latency);
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a proxy port");
            let port = listener.local_addr().unwrap().port();
            bases.push(if https {
                format!("https://localhost:{port}")
            } else {
                format!("http://127.0.0.1:{port}")
            });
            let upstream: SocketAddr = simulator
                .base_url()
                .trim_start_matches("http://")
                .parse()
                .expect("the simulator listens on an address");
            let accepted = Arc::new(AtomicU64::new(0));
            fleet.proxies.push(tokio::spawn(proxy(
                listener,
                upstream,
                Arc::clone(&accepted),
                tls.as_ref().map(|(acceptor, _)| acceptor.clone()),
            )));
            fleet.accepted.push(accepted);
            fleet.simulators.push(simulator);
        }
        let mut yaml = String::from("accounts:\n");
        for account in 0..accounts {
            let supplier = account % fleet.simulators.len();
            let simulator = &fleet.simulators[supplier];
            let _ = write!(
                yaml,
                "  - name: toko-{account:04}\n    provider: {}\n    \
                 warning_threshold: 500000\n    critical_threshold: 100000\n",
                simulator.provider(),
            );
            for (field, value) in simulator.account_fields() {
                // Through the connection-counting proxy, not to the simulator directly.
                let value = if field == "base_url" {
                    bases[supplier].clone()
                } else {
                    value
                };
                let _ = writeln!(yaml, "    {field}: {value:?}");
            }
        }
        std::fs::write(&fleet.config, yaml).expect("the accounts file can be written");
        fleet
    }

    /// The exporter's environment for this fleet's accounts file.
    fn env(&self, min_interval: &str) -> Vec<(String, String)> {
        let mut env = account_env(&self.config, min_interval);
        if let Some(ca_file) = &self.ca_file {
            env.push(("SSL_CERT_FILE".into(), ca_file.display().to_string()));
        }
        env
    }

    /// Balance requests the suppliers received.
    fn requests(&self) -> u64 {
        self.simulators.iter().map(Simulator::requests).sum()
    }

    /// TCP connections the suppliers accepted.
    fn connections(&self) -> u64 {
        self.accepted.iter().map(|a| a.load(Ordering::SeqCst)).sum()
    }

    /// The most connections any one supplier accepted.
    fn connections_per_supplier(&self) -> u64 {
        self.accepted
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .max()
            .unwrap_or(0)
    }

    /// The most requests any one supplier was answering at one time.
    fn max_in_flight_per_supplier(&self) -> u64 {
        self.simulators
            .iter()
            .map(Simulator::max_in_flight)
            .max()
            .unwrap_or(0)
    }

    fn set_fault(&self, fault: Option<Fault>) {
        for simulator in &self.simulators {
            simulator.set_fault(fault.clone());
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for proxy in &self.proxies {
            proxy.abort();
        }
    }
}

/// Forwards every connection to `upstream`, counting them; with `tls`, it terminates TLS
/// first.
async fn proxy(
    listener: TcpListener,
    upstream: SocketAddr,
    accepted: Arc<AtomicU64>,
    tls: Option<TlsAcceptor>,
) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let tls = tls.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                return;
            };
            // Without this, Nagle's algorithm on the extra hop adds delayed-ACK stalls.
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            match tls {
                Some(tls) => {
                    let Ok(mut inbound) = tls.accept(inbound).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                None => {
                    let mut inbound = inbound;
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            }
        });
    }
}

/// A test CA, written to `dir/ca.pem`, and an acceptor with its certificate for `localhost`.
fn test_tls(dir: &Path) -> (TlsAcceptor, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
        )
        .expect("the test certificate is usable");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("the test CA can be written");
    (TlsAcceptor::from(Arc::new(config)), ca_file)
}

fn serve(accounts: usize, latency: Duration, suppliers: usize, dir: &Path, https: bool) {
    let runtime = runtime();
    let fleet = runtime.block_on(Fleet::start_with(accounts, latency, suppliers, dir, https));
    println!(
        "{accounts} accounts at {} fake suppliers answering after {latency:?}; \
         SALDO_CONFIG_FILE={}{}",
        fleet.simulators.len(),
        fleet.config.display(),
        fleet
            .ca_file
            .as_ref()
            .map(|ca| format!(" SSL_CERT_FILE={}", ca.display()))
            .unwrap_or_default()
    );
    runtime.block_on(async {
        let mut report = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = report.tick() => println!(
                    "requests {} connections {}",
                    fleet.requests(),
                    fleet.connections()
                ),
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Processes under test

/// A server process under test, killed on drop.
struct Server {
    child: Child,
    address: SocketAddr,
    /// Stopped with SIGTERM rather than SIGKILL: an nginx master ends its workers only when
    /// asked to.
    gently: bool,
}

impl Server {
    /// Starts the exporter with exactly `env` (plus its listen address) and waits until
    /// `/-/ready` answers 200.
    fn exporter(bin: &Path, env: &[(String, String)], log: &Path) -> (Server, Duration) {
        let address = free_address();
        let mut command = Command::new(bin);
        command
            .env_clear()
            .env("SALDO_LISTEN_ADDRESS", address.to_string())
            .env("SALDO_LOG_LEVEL", "warn")
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("a log file"));
        Self::start(command, address)
    }

    fn baseline(bin: &Path, body: Option<&Path>) -> (Server, Duration) {
        let address = free_address();
        let mut command = Command::new(bin);
        command
            .env_clear()
            .args(["--listen", &address.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(body) = body {
            command.arg("--body").arg(body);
        }
        Self::start(command, address)
    }

    /// nginx serving `body` (and `body.gz`, with `gzip_static`) at `/metrics` from `dir`, with
    /// `workers` worker processes; unprivileged, its pid, logs and temp files all in `dir`.
    /// With `sendfile` off, nginx reads the file into its buffers and copies them into the
    /// socket, as the exporter did before it spliced its text from a pipe.
    fn nginx(bin: &Path, dir: &Path, workers: usize, sendfile: bool) -> Server {
        let address = free_address();
        let config = format!(
            "daemon off;\n\
             master_process on;\n\
             worker_processes {workers};\n\
             pid {dir}/nginx.pid;\n\
             error_log {dir}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             \x20 access_log off;\n\
             \x20 client_body_temp_path {dir}/client_body;\n\
             \x20 proxy_temp_path {dir}/proxy;\n\
             \x20 fastcgi_temp_path {dir}/fastcgi;\n\
             \x20 uwsgi_temp_path {dir}/uwsgi;\n\
             \x20 scgi_temp_path {dir}/scgi;\n\
             \x20 types {{ }}\n\
             \x20 default_type \"{content_type}\";\n\
             \x20 sendfile {sendfile};\n\
             \x20 tcp_nopush on;\n\
             \x20 server_tokens off;\n\
             \x20 etag off;\n\
             \x20 keepalive_requests 1000000;\n\
             \x20 server {{\n\
             \x20   listen {address};\n\
             \x20   root {dir}/www;\n\
             \x20   gzip_static on;\n\
             \x20   gzip_vary on;\n\
             \x20   location = /-/ready {{ return 200 \"Ready\\n\"; }}\n\
             \x20 }}\n\
             }}\n",
            dir = dir.display(),
            content_type = saldo_exporter::metrics::CONTENT_TYPE,
            sendfile = if sendfile { "on" } else { "off" },
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, config).expect("the nginx configuration can be written");
        let mut command = Command::new(bin);
        command
            .env_clear()
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Run as root (as in this VM), nginx would keep a root master: drop to nobody instead.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            use std::os::unix::process::CommandExt as _;
            command.uid(65534).gid(65534);
        }
        let mut server = Self::start(command, address).0;
        server.gently = true;
        server
    }

    /// Spawns `command` and returns with the time from spawning to the first 200 of `/-/ready`.
    fn start(mut command: Command, address: SocketAddr) -> (Server, Duration) {
        let started = Instant::now();
        let mut child = command.spawn().expect("the server binary starts");
        while !ready(address) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{command:?} exited with {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{command:?} never got ready"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let elapsed = started.elapsed();
        let gently = false;
        (
            Server {
                child,
                address,
                gently,
            },
            elapsed,
        )
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// CPU time (user and system) used so far by the server and its child processes (nginx's
    /// workers), in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let pid = self.child.id();
        let children = std::fs::read_dir("/proc")
            .expect("/proc is readable")
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|other| proc_stat(*other).is_some_and(|stat| stat.ppid == pid));
        std::iter::once(pid)
            .chain(children)
            .filter_map(proc_stat)
            .map(|stat| stat.cpu_ticks)
            .sum()
    }

    /// A `/proc/<pid>/status` field in KiB, such as `VmHWM` (peak RSS) or `VmRSS`.
    fn kib(&self, field: &str) -> u64 {
        status_kib(self.child.id(), field).expect("the process is alive")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.gently {
            // SAFETY: signals our own child, which has not been waited for yet.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

struct ProcStat {
    ppid: u32,
    /// utime + stime, of every thread.
    cpu_ticks: u64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name, which may hold spaces: field 3 (state) onwards.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(ProcStat {
        ppid: u32::try_from(field(4)?).ok()?,
        cpu_ticks: field(14)? + field(15)?,
    })
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat`'s CPU times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system setting.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix(" kB")?
            .parse()
            .ok()
    })
}

/// CPU time the process's live threads have used, from the scheduler's nanosecond counters.
fn cpu_time(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process is alive");
    let nanos = tasks
        .filter_map(|task| {
            let schedstat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            schedstat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(nanos)
}

fn free_address() -> SocketAddr {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// One blocking `GET /-/ready`, as cheap as a readiness probe can be.
fn ready(address: SocketAddr) -> bool {
    let Ok(mut stream) = StdStream::connect(address) else {
        return false;
    };
    let request = b"GET /-/ready HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    let mut answer = [0u8; 12];
    stream.write_all(request).is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"HTTP/1.1 200"
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

/// One `/metrics` scrape: its time and body. Panics unless the answer is 200.
async fn scrape(client: &reqwest::Client, server: &Server) -> (Duration, String) {
    let started = Instant::now();
    let response = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200, "a scrape answers 200");
    let body = response.text().await.unwrap();
    (started.elapsed(), body)
}

/// Starts the exporter on `fleet`'s accounts (a min-interval of an hour, so its cache stays
/// warm) and scrapes it twice: the process, its peak memory before any scrape, and the warm
/// answer.
fn warm_exporter(
    runtime: &Runtime,
    options: &Options,
    fleet: &Fleet,
    log: &str,
) -> (Server, u64, String) {
    let (exporter, _) =
        Server::exporter(&options.exporter, &fleet.env("1h"), &options.out.join(log));
    let idle = exporter.kib("VmHWM");
    let client = client();
    let body = runtime.block_on(async {
        scrape(&client, &exporter).await;
        scrape(&client, &exporter).await.1
    });
    (exporter, idle, body)
}

fn balances(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("saldo_balance{"))
        .count()
}

fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn account_env(config: &Path, min_interval: &str) -> Vec<(String, String)> {
    vec![
        ("SALDO_CONFIG_FILE".into(), config.display().to_string()),
        ("SALDO_MIN_INTERVAL".into(), min_interval.into()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Reporting

#[derive(Default)]
struct Report {
    json: Map<String, Value>,
    /// One row per figure, for the summary table.
    summary: String,
    markdown: String,
}

impl Report {
    fn section(&mut self, title: &str, header: &[&str]) {
        let _ = write!(
            self.markdown,
            "\n### {title}\n\n| {} |\n|{}\n",
            header.join(" | "),
            "---|".repeat(header.len())
        );
    }

    fn row(&mut self, cells: &[String]) {
        let _ = writeln!(self.markdown, "| {} |", cells.join(" | "));
    }

    fn note(&mut self, text: &str) {
        let _ = write!(self.markdown, "\n{text}\n");
    }

    /// Prints a figure with its ratio and verdict as soon as it is known.
    fn figure(&mut self, figure: &str, value: &str, ratio: &str, verdict: &str) {
        println!("{figure:<46} {value:<34} {ratio:<28} {verdict}");
        let _ = writeln!(self.summary, "| {figure} | {value} | {ratio} | {verdict} |");
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

// ---------------------------------------------------------------------------------------------
// Scenarios

fn run(options: &Options) {
    let runtime = runtime();
    let mut report = Report::default();
    println!("{:<46} {:<34} {:<28} verdict", "figure", "value", "ratio");
    if options.wants("throughput") {
        throughput(&runtime, options, &mut report);
    }
    if options.wants("cold") {
        cold(&runtime, options, &mut report);
    }
    if options.wants("suppliers") {
        suppliers(&runtime, options, &mut report);
    }
    if options.wants("single_flight") {
        single_flight(&runtime, options, &mut report);
    }
    if options.wants("startup") {
        startup(&runtime, options, &mut report);
    }
    if options.wants("load") {
        load(&runtime, options, &mut report);
    }
    let json = serde_json::to_string_pretty(&Value::Object(report.json)).unwrap();
    std::fs::write(options.out.join("results.json"), json).expect("results can be written");
    let markdown = format!(
        "| figure | value | ratio | target |\n|---|---|---|---|\n{}{}",
        report.summary, report.markdown
    );
    std::fs::write(options.out.join("figures.md"), markdown).expect("figures can be written");
}

#[derive(Clone)]
struct Wrk {
    requests_per_second: f64,
    p50: Duration,
    p99: Duration,
    requests: u64,
    /// Non-2xx answers plus socket errors.
    failures: u64,
    /// The server's CPU time (all its threads and processes) per request during the run: a
    /// figure the other load on the two cores moves much less than requests per second.
    cpu_per_request: Duration,
}

impl Wrk {
    /// The figures of one run, for `results.json`.
    fn json(&self) -> Value {
        json!({"rps": self.requests_per_second, "p50_s": self.p50.as_secs_f64(),
               "p99_s": self.p99.as_secs_f64(), "requests": self.requests,
               "cpu_per_request_s": self.cpu_per_request.as_secs_f64()})
    }
}

/// `wrk` with two threads and 32 keep-alive connections against `url`, asking for gzip when
/// `gzip` is set.
fn wrk(url: &str, gzip: bool, duration: Duration) -> Wrk {
    let mut command = Command::new("wrk");
    command
        .args(["-t2", "-c32", "--latency", "--timeout", "10s"])
        .arg(format!("-d{}s", duration.as_secs()));
    if gzip {
        command.args(["-H", "Accept-Encoding: gzip"]);
    }
    let output = command
        .arg(url)
        .output()
        .expect("wrk is installed (bench/run.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {text}");
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::trim))
    };
    let latency = |percent: &str| {
        let value = field(percent).expect("wrk prints the latency distribution");
        parse_wrk_duration(value)
    };
    let socket_errors: u64 = field("Socket errors:")
        .map(|errors| {
            errors
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Wrk {
        requests_per_second: field("Requests/sec:").unwrap().parse().unwrap(),
        p50: latency("50%"),
        p99: latency("99%"),
        requests: text
            .lines()
            .find(|l| l.contains(" requests in "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap(),
        failures: field("Non-2xx or 3xx responses:").map_or(0, |n| n.parse().unwrap())
            + socket_errors,
        cpu_per_request: Duration::ZERO,
    }
}

/// wrk prints `812.00us`, `1.23ms`, `2.01s` or `1.50m`.
fn parse_wrk_duration(text: &str) -> Duration {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .expect("a unit");
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().expect("a number");
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        other => panic!("unknown wrk unit {other}"),
    };
    Duration::from_secs_f64(seconds)
}

/// Cached scrape throughput and memory, next to a minimal hyper server serving the same bytes.
fn throughput(runtime: &Runtime, options: &Options, report: &mut Report) {
    let duration = Duration::from_secs(if options.quick { 4 } else { 10 });
    let rounds = if options.quick { 1 } else { 2 };
    report.section(
        "Cached scrape throughput and memory",
        &[
            "accounts",
            "body",
            "exporter req/s",
            "exporter p50 / p99",
            "minimal server req/s",
            "minimal p50 / p99",
            "ratio req/s",
            "ratio p99",
            "CPU per request, exporter / minimal",
            "VmHWM idle",
            "VmHWM after load",
            "minimal VmHWM",
        ],
    );
    let mut json = Map::new();
    let mut nginx_rows = Vec::new();
    for accounts in [50, 1000] {
        let fleet = runtime.block_on(Fleet::start(accounts, Duration::ZERO, 2, &options.out));
        let (exporter, idle, body) = warm_exporter(
            runtime,
            options,
            &fleet,
            &format!("exporter-throughput-{accounts}.log"),
        );
        let client = client();
        assert_eq!(balances(&body), accounts, "the cache is warm");
        let requests_before = fleet.requests();
        let body_file = options.out.join(format!("body-{accounts}.txt"));
        std::fs::write(&body_file, &body).unwrap();
        let (baseline, _) = Server::baseline(&options.baseline, Some(&body_file));

        // nginx serving the same bytes from files, plain and (gzip_static) compressed, next to
        // the exporter asked for the same, at 50 accounts.
        let nginx = options
            .nginx
            .as_ref()
            .filter(|_| accounts == 50)
            .map(|bin| {
                let gzip_body = runtime.block_on(async {
                    let response = client
                        .get(exporter.url("/metrics"))
                        .header("accept-encoding", "gzip")
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.headers()["content-encoding"], "gzip");
                    response.bytes().await.unwrap()
                });
                let dir = nginx_dir(&body, &gzip_body);
                let server = Server::nginx(bin, dir.path(), NGINX_WORKERS, true);
                // The same files served without sendfile: what a copy costs nginx.
                let copy_dir = nginx_dir(&body, &gzip_body);
                let copying = Server::nginx(bin, copy_dir.path(), NGINX_WORKERS, false);
                (server, copying, [dir, copy_dir], gzip_body.len())
            });
        let mut contenders = vec![(&exporter, false), (&baseline, false)];
        if let Some((server, copying, _, _)) = &nginx {
            contenders.extend([
                (server, false),
                (&exporter, true),
                (server, true),
                (copying, false),
            ]);
        }
        let best = best_of(&contenders, rounds, duration);
        let (e, b) = (&best[0], &best[1]);
        if let Some((_, _, _, gzip_len)) = &nginx {
            let mut results = vec![best[0].clone()];
            results.extend_from_slice(&best[2..]);
            nginx_rows.push((body.len(), *gzip_len, results));
        }
        assert_eq!(
            fleet.requests(),
            requests_before,
            "a warm cache sends nothing upstream"
        );
        let peak = exporter.kib("VmHWM");
        let baseline_peak = baseline.kib("VmHWM");
        let ratio = e.requests_per_second / b.requests_per_second;
        let p99_ratio = e.p99.as_secs_f64() / b.p99.as_secs_f64();
        report.figure(
            &format!("cached scrape throughput, {accounts} accounts"),
            &format!("{:.0} req/s, p99 {}", e.requests_per_second, ms(e.p99)),
            &format!("{ratio:.2} of minimal ({:.0} req/s)", b.requests_per_second),
            if accounts == 50 {
                verdict(ratio >= 0.8)
            } else {
                "(no target)"
            },
        );
        report.figure(
            &format!("cached scrape p99, {accounts} accounts"),
            &ms(e.p99),
            &format!("{p99_ratio:.2} x minimal ({})", ms(b.p99)),
            "(no target)",
        );
        let cpu_ratio = e.cpu_per_request.as_secs_f64() / b.cpu_per_request.as_secs_f64();
        report.figure(
            &format!("CPU per cached scrape, {accounts} accounts"),
            &us(e.cpu_per_request),
            &format!("{cpu_ratio:.2} x minimal ({})", us(b.cpu_per_request)),
            "(no target)",
        );
        report.figure(
            &format!("peak RSS under load, {accounts} accounts"),
            &format!("{} (idle {})", mib(peak), mib(idle)),
            &format!(
                "{:.1} x minimal ({})",
                peak as f64 / baseline_peak as f64,
                mib(baseline_peak)
            ),
            // Issue 12's targets.
            verdict(peak <= if accounts == 50 { 10 * 1024 } else { 24 * 1024 }),
        );
        report.row(&[
            accounts.to_string(),
            format!(
                "{} KiB ({} B/account)",
                body.len() / 1024,
                body.len() / accounts
            ),
            format!("{:.0}", e.requests_per_second),
            format!("{} / {}", ms(e.p50), ms(e.p99)),
            format!("{:.0}", b.requests_per_second),
            format!("{} / {}", ms(b.p50), ms(b.p99)),
            format!("**{ratio:.2}**"),
            format!("{p99_ratio:.2}"),
            format!("{} / {}", us(e.cpu_per_request), us(b.cpu_per_request)),
            mib(idle),
            format!("**{}**", mib(peak)),
            mib(baseline_peak),
        ]);
        json.insert(
            accounts.to_string(),
            json!({
                "body_bytes": body.len(),
                "exporter": e.json(),
                "minimal": b.json(),
                "ratio_rps": ratio,
                "ratio_p99": p99_ratio,
                "vmhwm_idle_kib": idle,
                "vmhwm_peak_kib": peak,
                "minimal_vmhwm_kib": baseline_peak,
            }),
        );
    }
    https_memory(runtime, options, report, &mut json, rounds, duration);
    report.note(&format!(
        "wrk -t2 -c32 -d{}s --latency, best of {rounds} alternating round(s) per server; \
         targets: ratio ≥ 0.8 at 50 accounts, peak RSS ≤ 10 MiB at 50 accounts and ≤ 24 MiB \
         at 1,000. VmHWM idle is right after `/-/ready`; after load it includes the warm-up \
         scrape and the wrk run. CPU per request is the server's user and system time during \
         the run divided by the requests it answered. The HTTPS row: the same 50 accounts with \
         the fake suppliers behind TLS at `https://localhost:…` (a test CA trusted through \
         `SSL_CERT_FILE`), as real suppliers are reached, and the same wrk runs, plain and \
         gzip, against the exporter alone.",
        duration.as_secs()
    ));
    for (plain_len, gzip_len, results) in nginx_rows {
        nginx_section(report, &mut json, plain_len, gzip_len, &results);
    }
    report.json.insert("throughput".into(), Value::Object(json));
}

/// The throughput scenario's memory at 50 accounts with the suppliers behind TLS: the pooled
/// connections' TLS state and the handshake's code, which plain-HTTP fakes never touch.
fn https_memory(
    runtime: &Runtime,
    options: &Options,
    report: &mut Report,
    json: &mut Map<String, Value>,
    rounds: usize,
    duration: Duration,
) {
    let accounts = 50;
    let fleet = runtime.block_on(Fleet::start_with(
        accounts,
        Duration::ZERO,
        2,
        &options.out,
        true,
    ));
    let (exporter, idle, body) = warm_exporter(
        runtime,
        options,
        &fleet,
        &format!("exporter-throughput-{accounts}-https.log"),
    );
    assert_eq!(
        balances(&body),
        accounts,
        "every account answered over HTTPS"
    );
    let best = best_of(&[(&exporter, false), (&exporter, true)], rounds, duration);
    let peak = exporter.kib("VmHWM");
    let plain_peak = json["50"]["vmhwm_peak_kib"]
        .as_u64()
        .expect("the plain run at 50");
    report.figure(
        &format!("peak RSS under load, {accounts} accounts, HTTPS suppliers"),
        &format!("{} (idle {})", mib(peak), mib(idle)),
        &format!(
            "{:.2} x with plain HTTP ({})",
            peak as f64 / plain_peak as f64,
            mib(plain_peak)
        ),
        verdict(peak <= 10 * 1024),
    );
    let e = &best[0];
    report.row(&[
        format!("{accounts}, HTTPS suppliers"),
        format!("{} KiB", body.len() / 1024),
        format!("{:.0}", e.requests_per_second),
        format!("{} / {}", ms(e.p50), ms(e.p99)),
        "–".into(),
        "–".into(),
        "–".into(),
        "–".into(),
        format!("{} / –", us(e.cpu_per_request)),
        mib(idle),
        format!("**{}**", mib(peak)),
        "–".into(),
    ]);
    json.insert(
        format!("{accounts}_https"),
        json!({"exporter": e.json(), "vmhwm_idle_kib": idle, "vmhwm_peak_kib": peak}),
    );
}

/// nginx's worker processes: as many as the exporter's serving threads (tokio's default, one
/// per core), so neither side gets more of the two cores by construction.
const NGINX_WORKERS: usize = 2;

/// A directory for nginx: `www/metrics` and `www/metrics.gz` hold the bodies; nginx, running
/// as nobody, writes its pid, log and temp files beside them.
fn nginx_dir(plain: &str, gzip: &[u8]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::Builder::new()
        .prefix("fleet-nginx")
        .tempdir()
        .expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("metrics"), plain).unwrap();
    std::fs::write(www.join("metrics.gz"), gzip).unwrap();
    dir
}

/// Runs wrk against each `(server, gzip)` in turn, `rounds` times, reversing the order every
/// other round so that drift in the machine's load favours none; the best run of each.
fn best_of(contenders: &[(&Server, bool)], rounds: usize, duration: Duration) -> Vec<Wrk> {
    let mut best: Vec<Option<Wrk>> = contenders.iter().map(|_| None).collect();
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (server, gzip) = contenders[i];
            let before = server.cpu_ticks();
            let mut result = wrk(&server.url("/metrics"), gzip, duration);
            let seconds = (server.cpu_ticks() - before) as f64 / ticks_per_second();
            result.cpu_per_request = Duration::from_secs_f64(seconds / result.requests as f64);
            assert_eq!(result.failures, 0, "wrk saw failures");
            if best[i]
                .as_ref()
                .is_none_or(|b| result.requests_per_second > b.requests_per_second)
            {
                best[i] = Some(result);
            }
        }
    }
    best.into_iter().map(Option::unwrap).collect()
}

/// The exporter against nginx serving its bytes from files: `results` are the exporter plain,
/// nginx plain, the exporter gzip, nginx gzip and nginx plain without `sendfile`, measured in
/// the same rounds.
fn nginx_section(
    report: &mut Report,
    json: &mut Map<String, Value>,
    plain_len: usize,
    gzip_len: usize,
    results: &[Wrk],
) {
    let [
        exporter_plain,
        nginx_plain,
        exporter_gzip,
        nginx_gzip,
        nginx_copying,
    ] = results
    else {
        panic!("five nginx results");
    };
    report.section(
        "Against nginx serving the same bytes from a file, 50 accounts",
        &[
            "body",
            "exporter req/s",
            "exporter p50 / p99",
            "nginx req/s",
            "nginx p50 / p99",
            "ratio req/s",
            "CPU per request, exporter / nginx",
            "ratio CPU",
        ],
    );
    let mut figures = Map::new();
    // The copying nginx shows what the copy costs; the targets are against sendfile.
    for (what, key, len, e, n, nginx_name, target) in [
        (
            "plain",
            "plain",
            plain_len,
            exporter_plain,
            nginx_plain,
            "nginx",
            true,
        ),
        (
            "gzip",
            "gzip",
            gzip_len,
            exporter_gzip,
            nginx_gzip,
            "nginx gzip_static",
            true,
        ),
        (
            "plain (nginx without sendfile)",
            "plain_without_sendfile",
            plain_len,
            exporter_plain,
            nginx_copying,
            "nginx without sendfile",
            false,
        ),
    ] {
        let ratio = e.requests_per_second / n.requests_per_second;
        let cpu_ratio = e.cpu_per_request.as_secs_f64() / n.cpu_per_request.as_secs_f64();
        report.figure(
            &format!("cached scrape vs {nginx_name}, 50 accounts"),
            &format!("{:.0} req/s, p99 {}", e.requests_per_second, ms(e.p99)),
            &format!(
                "{ratio:.2} of {nginx_name} ({:.0} req/s)",
                n.requests_per_second
            ),
            if target {
                verdict(ratio >= 1.0)
            } else {
                "(no target)"
            },
        );
        report.figure(
            &format!("CPU per request vs {nginx_name}, 50 accounts"),
            &us(e.cpu_per_request),
            &format!("{cpu_ratio:.2} x {nginx_name} ({})", us(n.cpu_per_request)),
            "(no target)",
        );
        report.row(&[
            format!("{what}, {} KiB", len / 1024),
            format!("{:.0}", e.requests_per_second),
            format!("{} / {}", ms(e.p50), ms(e.p99)),
            format!("{:.0}", n.requests_per_second),
            format!("{} / {}", ms(n.p50), ms(n.p99)),
            format!("**{ratio:.2}**"),
            format!("{} / {}", us(e.cpu_per_request), us(n.cpu_per_request)),
            format!("{cpu_ratio:.2}"),
        ]);
        figures.insert(
            key.into(),
            json!({"body_bytes": len, "exporter_rps": e.requests_per_second,
                   "exporter_p50_s": e.p50.as_secs_f64(), "exporter_p99_s": e.p99.as_secs_f64(),
                   "exporter_cpu_per_request_s": e.cpu_per_request.as_secs_f64(),
                   "nginx_rps": n.requests_per_second, "nginx_p50_s": n.p50.as_secs_f64(),
                   "nginx_p99_s": n.p99.as_secs_f64(),
                   "nginx_cpu_per_request_s": n.cpu_per_request.as_secs_f64(),
                   "ratio_rps": ratio, "ratio_cpu": cpu_ratio}),
        );
    }
    report.note(&format!(
        "The exporter's own answers for 50 accounts, plain and gzip-compressed, written to \
         files and served by nginx ({}) with `sendfile on`, `gzip_static on`, access log off, \
         unlimited keep-alive, {NGINX_WORKERS} worker processes as an unprivileged user; the \
         exporter serves on tokio's {NGINX_WORKERS} worker threads. A second nginx serves the \
         plain file with `sendfile off`: it reads the file into its buffers and copies them \
         into the socket. The exporter splices its plain text from a pipe, without a copy \
         (`src/zero_copy.rs`), as `sendfile` does from a file. Alternating with the runs \
         above in the same rounds, the same wrk settings; gzip runs send \
         `Accept-Encoding: gzip`. Target: ratio ≥ 1 against nginx with `sendfile`. CPU per request is the server's user and \
         system time during the run (every thread, and nginx's workers) divided by the requests \
         it answered, from the same run as the requests per second.",
        nginx_version()
    ));
    json.insert("nginx".into(), Value::Object(figures));
}

fn nginx_version() -> String {
    Command::new("nginx")
        .arg("-v")
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            text.strip_prefix("nginx version: ").map(str::to_owned)
        })
        .unwrap_or_else(|| "nginx".into())
}

/// The first scrape of a fresh exporter whose suppliers answer after 200 ms, then a second
/// one (SALDO_MIN_INTERVAL=0s, so it checks again), with the upstream connections each opened.
fn cold(runtime: &Runtime, options: &Options, report: &mut Report) {
    let repeats = if options.quick { 1 } else { 3 };
    report.section(
        "Cold scrape, suppliers answering after 200 ms",
        &[
            "accounts",
            "first scrape (median)",
            "÷ 200 ms",
            "second scrape",
            "connections, first",
            "new connections, second",
            "most at one supplier host",
            "requests first / second",
            "balances after first",
            "exporter CPU, first",
            "VmHWM",
        ],
    );
    let mut json = Map::new();
    let mut firsts = Vec::new();
    for accounts in [10, 100, 1000] {
        let fleet = runtime.block_on(Fleet::start(accounts, SLOW_SUPPLIER, 2, &options.out));
        let mut runs = Vec::new();
        for _ in 0..repeats {
            let (exporter, _) = Server::exporter(
                &options.exporter,
                &account_env(&fleet.config, "0s"),
                &options.out.join(format!("exporter-cold-{accounts}.log")),
            );
            let client = client();
            let (c0, r0) = (fleet.connections(), fleet.requests());
            let before_per_host = fleet.connections_per_supplier();
            let cpu0 = cpu_time(exporter.child.id());
            let (first, body) = runtime.block_on(scrape(&client, &exporter));
            let cpu = cpu_time(exporter.child.id()) - cpu0;
            let (c1, r1) = (fleet.connections(), fleet.requests());
            let (second, _) = runtime.block_on(scrape(&client, &exporter));
            let (c2, r2) = (fleet.connections(), fleet.requests());
            let per_host = fleet.connections_per_supplier() - before_per_host;
            runs.push((
                first,
                second,
                c1 - c0,
                c2 - c1,
                r1 - r0,
                r2 - r1,
                balances(&body),
                exporter.kib("VmHWM"),
                cpu,
                per_host,
            ));
        }
        runs.sort_by_key(|run| run.0);
        let (first, second, conns1, conns2, req1, req2, seen, hwm, cpu, per_host) =
            runs[runs.len() / 2];
        firsts.push((accounts, first));
        let ratio = first.as_secs_f64() / SLOW_SUPPLIER.as_secs_f64();
        report.figure(
            &format!("cold scrape, {accounts} accounts"),
            &format!("{} (second {})", ms(first), ms(second)),
            &format!("{ratio:.2} x 200 ms"),
            if accounts == 100 {
                verdict(ratio <= 1.5)
            } else {
                "(target at 100)"
            },
        );
        report.figure(
            &format!("exporter CPU for that scrape, {accounts} accounts"),
            &ms(cpu),
            &format!(
                "{:.0} µs per account",
                cpu.as_secs_f64() * 1e6 / accounts as f64
            ),
            "(no target)",
        );
        report.figure(
            &format!("upstream connections, {accounts} accounts"),
            &format!("first {conns1}, second +{conns2}; {per_host} at one host"),
            &format!(
                "{:.2} per account",
                (conns1 + conns2) as f64 / accounts as f64
            ),
            verdict(conns1 + conns2 <= accounts as u64),
        );
        report.row(&[
            accounts.to_string(),
            format!("**{}**", ms(first)),
            format!("{ratio:.2}"),
            ms(second),
            conns1.to_string(),
            conns2.to_string(),
            per_host.to_string(),
            format!("{req1} / {req2}"),
            seen.to_string(),
            ms(cpu),
            mib(hwm),
        ]);
        json.insert(
            accounts.to_string(),
            json!({
                "first_s": first.as_secs_f64(), "second_s": second.as_secs_f64(),
                "connections_first": conns1, "connections_second": conns2,
                "requests_first": req1, "requests_second": req2,
                "balances_after_first": seen, "vmhwm_kib": hwm,
                "exporter_cpu_first_s": cpu.as_secs_f64(), "most_at_one_host": per_host,
                "all_first_s": runs.iter().map(|r| r.0.as_secs_f64()).collect::<Vec<_>>(),
            }),
        );
    }
    let growth = firsts[2].1.as_secs_f64() / firsts[0].1.as_secs_f64();
    report.figure(
        "cold scrape growth, 10 -> 1000 accounts",
        &format!("{growth:.2} x"),
        "(linear would be 100 x)",
        verdict(growth <= 10.0),
    );
    json.insert("growth_10_to_1000".into(), json!(growth));
    report.note(&format!(
        "Median of {repeats} fresh process(es) per size; accounts alternate between two fake \
         suppliers (isikuota, Ayopop) behind connection-counting proxies; SALDO_MIN_INTERVAL=0s \
         so the second scrape checks every account again. Targets: first scrape ≤ 1.5 × 200 ms \
         at 100 accounts; growth from 10 to 1,000 accounts well below linear (here: ≤ 10 ×, \
         linear is 100 ×); upstream connections reused, so that both scrapes together open at \
         most one per account. Growth 10 → 1,000: **{growth:.2} ×**. The fakes and proxies \
         run on the same two cores, so part of the time above 200 ms is theirs; \
         \"exporter CPU\" is the exporter's own share."
    ));
    report.json.insert("cold".into(), Value::Object(json));
}

/// 1,000 accounts spread over 8 suppliers answering after 200 ms: how long a cold scrape takes,
/// and the most requests any one supplier had in flight.
fn suppliers(runtime: &Runtime, options: &Options, report: &mut Report) {
    const ACCOUNTS: usize = 1000;
    const SUPPLIERS: usize = 8;
    let repeats = if options.quick { 1 } else { 3 };
    report.section(
        "Cold scrape, 1,000 accounts over 8 suppliers answering after 200 ms",
        &[
            "first scrape (median)",
            "÷ 200 ms",
            "most in flight at one supplier",
            "balances after first",
        ],
    );
    let mut runs = Vec::new();
    for _ in 0..repeats {
        // A fresh fleet per run, so the in-flight high-water marks are this run's.
        let fleet = runtime.block_on(Fleet::start(
            ACCOUNTS,
            SLOW_SUPPLIER,
            SUPPLIERS,
            &options.out,
        ));
        let (exporter, _) = Server::exporter(
            &options.exporter,
            &account_env(&fleet.config, "0s"),
            &options.out.join("exporter-suppliers.log"),
        );
        let (first, body) = runtime.block_on(scrape(&client(), &exporter));
        runs.push((first, fleet.max_in_flight_per_supplier(), balances(&body)));
    }
    runs.sort_by_key(|run| run.0);
    let (first, most, seen) = runs[runs.len() / 2];
    let ratio = first.as_secs_f64() / SLOW_SUPPLIER.as_secs_f64();
    report.figure(
        "cold scrape, 1000 accounts over 8 suppliers",
        &format!("{}; at most {most} in flight at one supplier", ms(first)),
        &format!("{ratio:.2} x 200 ms"),
        "(no target)",
    );
    report.row(&[
        format!("**{}**", ms(first)),
        format!("{ratio:.2}"),
        most.to_string(),
        seen.to_string(),
    ]);
    report.note(&format!(
        "Median of {repeats} fresh process(es) and fleets; accounts spread round-robin over 8 \
         fake suppliers (the registered providers in turn), each answering after 200 ms; \
         \"most in flight\" is the high-water mark of requests a supplier was answering at \
         once, counted by the simulator."
    ));
    report.json.insert(
        "suppliers".into(),
        json!({
            "accounts": ACCOUNTS, "suppliers": SUPPLIERS,
            "first_s": first.as_secs_f64(), "most_in_flight_at_one_supplier": most,
            "balances_after_first": seen,
            "all_first_s": runs.iter().map(|r| r.0.as_secs_f64()).collect::<Vec<_>>(),
        }),
    );
}

/// 500 concurrent scrapes of a fresh exporter cause exactly one upstream request per account.
fn single_flight(runtime: &Runtime, options: &Options, report: &mut Report) {
    const SCRAPES: usize = 500;
    let accounts = 100;
    let fleet = runtime.block_on(Fleet::start(accounts, SLOW_SUPPLIER, 2, &options.out));
    let (exporter, _) = Server::exporter(
        &options.exporter,
        &account_env(&fleet.config, "1h"),
        &options.out.join("exporter-single-flight.log"),
    );
    let url = exporter.url("/metrics");
    let started = Instant::now();
    let results: Vec<(u16, usize, Duration)> = runtime.block_on(async {
        let client = client();
        let tasks: Vec<_> = (0..SCRAPES)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    let started = Instant::now();
                    let response = client.get(&url).send().await.unwrap();
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap();
                    (status, balances(&body), started.elapsed())
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    });
    let elapsed = started.elapsed();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let complete = results.iter().filter(|r| r.1 == accounts).count();
    let slowest = results.iter().map(|r| r.2).max().unwrap();
    let requests = fleet.requests();
    let counted = runtime.block_on(async {
        let text = scrape(&client(), &exporter).await.1;
        metric_sum(&text, "saldo_upstream_requests_total")
    });
    report.figure(
        &format!("single flight, {SCRAPES} scrapes x {accounts} accounts"),
        &format!("{requests} upstream requests, {ok} x 200"),
        &format!("{:.2} per account", requests as f64 / accounts as f64),
        verdict(requests == accounts as u64 && ok == SCRAPES),
    );
    report.section(
        "Single flight",
        &[
            "concurrent scrapes",
            "accounts",
            "upstream requests (fake)",
            "saldo_upstream_requests_total",
            "answers 200",
            "answers with every balance",
            "slowest scrape",
            "all done in",
        ],
    );
    report.row(&[
        SCRAPES.to_string(),
        accounts.to_string(),
        format!("**{requests}**"),
        format!("{counted:.0}"),
        ok.to_string(),
        complete.to_string(),
        ms(slowest),
        ms(elapsed),
    ]);
    report.note(
        "A fresh exporter, SALDO_MIN_INTERVAL=1h, suppliers answering after 200 ms; all scrapes \
         are sent at once. Target: exactly one upstream request per account.",
    );
    report.json.insert(
        "single_flight".into(),
        json!({"scrapes": SCRAPES, "accounts": accounts, "upstream_requests": requests,
               "exporter_counted": counted, "ok": ok, "complete": complete,
               "slowest_s": slowest.as_secs_f64(), "elapsed_s": elapsed.as_secs_f64()}),
    );
}

/// Process start to the first 200 of `/-/ready`, exporter and minimal server alternately.
fn startup(runtime: &Runtime, options: &Options, report: &mut Report) {
    let iterations = if options.quick { 10 } else { 30 };
    let fleet = runtime.block_on(Fleet::start(1, Duration::ZERO, 1, &options.out));
    let env = account_env(&fleet.config, "30s");
    let (mut exporter, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        let log = options.out.join("exporter-startup.log");
        exporter.push(Server::exporter(&options.exporter, &env, &log).1);
        baseline.push(Server::baseline(&options.baseline, None).1);
    }
    let (e, b) = (median(&mut exporter), median(&mut baseline));
    let (e_max, b_max) = (exporter[exporter.len() - 1], baseline[baseline.len() - 1]);
    let ratio = e.as_secs_f64() / b.as_secs_f64();
    assert_eq!(fleet.requests(), 0, "start-up sends nothing upstream");
    report.figure(
        "start-up to first /-/ready 200 (median)",
        &format!("{} (min {}, max {})", ms(e), ms(exporter[0]), ms(e_max)),
        &format!("{ratio:.2} x minimal ({})", ms(b)),
        verdict(e <= Duration::from_millis(50)),
    );
    report.section(
        "Start-up",
        &["server", "median", "min", "max", "ratio (median)"],
    );
    report.row(&[
        "exporter".into(),
        format!("**{}**", ms(e)),
        ms(exporter[0]),
        ms(e_max),
        format!("**{ratio:.2}**"),
    ]);
    report.row(&[
        "minimal hyper server".into(),
        ms(b),
        ms(baseline[0]),
        ms(b_max),
        "1".into(),
    ]);
    report.note(&format!(
        "{iterations} fresh processes each, alternating; time from spawn to the first HTTP 200 \
         of `/-/ready`, polled every 0.2 ms. One configured account, no upstream request. \
         Target: ≤ 50 ms."
    ));
    report.json.insert(
        "startup".into(),
        json!({"exporter_median_s": e.as_secs_f64(), "minimal_median_s": b.as_secs_f64(),
               "exporter_min_s": exporter[0].as_secs_f64(), "exporter_max_s": e_max.as_secs_f64(),
               "ratio": ratio}),
    );
}

/// tests/load.rs in a release build: 64 clients, at least 10,000 scrapes and 5 s, both
/// suppliers flapping between good and HTTP 500 every 300 ms, SALDO_MIN_INTERVAL=1s.
fn load(runtime: &Runtime, options: &Options, report: &mut Report) {
    const CLIENTS: usize = 64;
    const SCRAPES: usize = 10_000;
    const MIN_RUN: Duration = Duration::from_secs(5);
    let fleet = runtime.block_on(Fleet::start(2, Duration::ZERO, 2, &options.out));
    let (exporter, _) = Server::exporter(
        &options.exporter,
        &account_env(&fleet.config, "1s"),
        &options.out.join("exporter-load.log"),
    );
    let pid = exporter.child.id();
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, max_rss) = (Arc::clone(&done), Arc::clone(&max_rss));
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if let Some(rss) = status_kib(pid, "VmRSS") {
                    max_rss.fetch_max(rss, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let fleet = Arc::new(fleet);
    let url = exporter.url("/metrics");
    let (latencies, failures, last) = runtime.block_on(async {
        let flapper = {
            let fleet = Arc::clone(&fleet);
            tokio::spawn(async move {
                let mut failing = false;
                loop {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    failing = !failing;
                    fleet.set_fault(failing.then_some(Fault::Status(500)));
                }
            })
        };
        let taken = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(AtomicUsize::new(0));
        let latencies = Arc::new(Mutex::new(Vec::with_capacity(SCRAPES * 2)));
        let client = client();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                let (taken, failures) = (Arc::clone(&taken), Arc::clone(&failures));
                let latencies = Arc::clone(&latencies);
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while taken.fetch_add(1, Ordering::SeqCst) < SCRAPES
                        || started.elapsed() < MIN_RUN
                    {
                        let sent = Instant::now();
                        let ok = match client.get(&url).send().await {
                            Ok(response) => {
                                response.status() == 200 && response.bytes().await.is_ok()
                            }
                            Err(_) => false,
                        };
                        if !ok {
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                        mine.push(sent.elapsed());
                    }
                    latencies.lock().unwrap().extend(mine);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        flapper.abort();
        fleet.set_fault(None);
        let last = scrape(&client, &exporter).await.1;
        let latencies = std::mem::take(&mut *latencies.lock().unwrap());
        (latencies, failures.load(Ordering::SeqCst), last)
    });
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    let mut latencies = latencies;
    latencies.sort();
    let scrapes = latencies.len();
    let rate = scrapes as f64 / elapsed.as_secs_f64();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    // The final scrape above may have started one more check per account.
    let bound = elapsed.as_secs_f64().ceil() as u64 + 1;
    let per_supplier: Vec<u64> = fleet.simulators.iter().map(Simulator::requests).collect();
    let errors = metric_sum(&last, "saldo_upstream_errors_total");
    let max_rss = max_rss.load(Ordering::SeqCst);
    report.figure(
        "load (release): scrapes, non-200",
        &format!(
            "{scrapes} in {:.1} s, {failures} failed",
            elapsed.as_secs_f64()
        ),
        &format!("{rate:.0} scrapes/s"),
        verdict(failures == 0),
    );
    report.figure(
        "load (release): upstream calls per account",
        &format!("{per_supplier:?}, {errors:.0} failed checks"),
        &format!("bound ceil(elapsed/1s)+1 = {bound}"),
        verdict(per_supplier.iter().all(|&n| n <= bound)),
    );
    report.figure(
        "load (release): max VmRSS",
        &mib(max_rss),
        "limit 40 MiB (as tests/load.rs)",
        verdict(max_rss <= 40 * 1024),
    );
    report.section(
        "Load (tests/load.rs scenario, release build)",
        &[
            "scrapes",
            "clients",
            "elapsed",
            "scrapes/s",
            "p50 / p99",
            "non-200",
            "upstream calls per account",
            "bound",
            "failed checks",
            "max VmRSS",
        ],
    );
    report.row(&[
        scrapes.to_string(),
        CLIENTS.to_string(),
        format!("{:.1} s", elapsed.as_secs_f64()),
        format!("{rate:.0}"),
        format!("{} / {}", ms(p50), ms(p99)),
        failures.to_string(),
        format!("{per_supplier:?}"),
        bound.to_string(),
        format!("{errors:.0}"),
        mib(max_rss),
    ]);
    report.note(
        "Two accounts (one per fake supplier), SALDO_MIN_INTERVAL=1s, both suppliers toggling \
         between good answers and HTTP 500 every 300 ms; VmRSS sampled every 50 ms.",
    );
    report.json.insert(
        "load".into(),
        json!({"scrapes": scrapes, "elapsed_s": elapsed.as_secs_f64(), "rate": rate,
               "p50_s": p50.as_secs_f64(), "p99_s": p99.as_secs_f64(), "failures": failures,
               "upstream_per_account": per_supplier, "bound": bound, "failed_checks": errors,
               "max_vmrss_kib": max_rss}),
    );
}

// ---------------------------------------------------------------------------------------------
// Render cost, from criterion's estimates

fn render_table(dir: &Path) -> String {
    let estimate = |id: &str| -> Option<(f64, f64, f64)> {
        let path = dir.join(id).join("new/estimates.json");
        let value: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        // Criterion's headline figure: the slope of time over iterations where it has one.
        let estimate = match &value["slope"] {
            Value::Null => &value["mean"],
            slope => slope,
        };
        Some((
            estimate["point_estimate"].as_f64()?,
            estimate["confidence_interval"]["lower_bound"].as_f64()?,
            estimate["confidence_interval"]["upper_bound"].as_f64()?,
        ))
    };
    let mut out = String::from(
        "| benchmark | accounts | time | 95% interval | per account |\n|---|---|---|---|---|\n",
    );
    let mut slopes = Vec::new();
    for (group, what) in [
        ("render", "`Collector::exposition` (a warm scrape)"),
        ("due", "`Collector::refresh`, nothing due (a warm scrape)"),
        ("encode", "`Metrics::render` (read, copy, write)"),
    ] {
        let mut points = Vec::new();
        for accounts in [1u32, 50, 1000] {
            let Some((time, low, high)) = estimate(&format!("{group}/accounts/{accounts}")) else {
                continue;
            };
            points.push((f64::from(accounts), time));
            let _ = writeln!(
                out,
                "| {what} | {accounts} | **{}** | {} – {} | {} |",
                nanos(time),
                nanos(low),
                nanos(high),
                nanos(time / f64::from(accounts)),
            );
        }
        if let (Some(first), Some(last)) = (points.first(), points.last())
            && points.len() > 1
        {
            let slope = (last.1 - first.1) / (last.0 - first.0);
            slopes.push(format!(
                "{what}: **{}** per account, {} fixed",
                nanos(slope),
                nanos(first.1 - slope * first.0)
            ));
        }
    }
    let _ = write!(
        out,
        "\nMarginal cost from 1 to 1,000 accounts: {}.",
        slopes.join("; ")
    );
    if let Some((mean, _, _)) = estimate("process_collector") {
        let _ = write!(
            out,
            " The `process_*` metrics alone (reading `/proc/self`) cost {} per render.",
            nanos(mean)
        );
    }
    out.push('\n');
    out
}

fn nanos(ns: f64) -> String {
    match ns {
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.1} µs", n / 1e3),
        // A slope within rounding of zero would print as "-0 ns".
        n if n.abs() < 0.5 => "0 ns".to_owned(),
        n => format!("{n:.0} ns"),
    }
}
