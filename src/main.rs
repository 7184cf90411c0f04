//! The `switchyard` binary: command line, start-up checks, serving, shutdown, and the API-key
//! administration commands.
//!
//! The flags are the TensorZero Gateway's, so a deployment can swap the binary.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use switchyard::config::LoadedConfig;
use switchyard::lifecycle::ShutdownTimings;
use switchyard::reload::ConfigSource;
use switchyard::{Environment, ServeOptions};

/// The environment variable that may set the bind address.
const BIND_ADDRESS_ENV: &str = "TENSORZERO_GATEWAY_BIND_ADDRESS";
/// Where the gateway listens when nothing says otherwise.
const DEFAULT_BIND_ADDRESS: &str = "0.0.0.0:3000";

/// An LLM gateway that serves the TensorZero Gateway API from tensorzero.toml.
#[derive(Parser, Debug)]
#[command(name = "switchyard", version, about, long_about = None)]
struct Cli {
    /// The configuration file, or a glob matching several files to merge (quote it).
    #[arg(long, value_name = "PATH", conflicts_with = "default_config")]
    config_file: Option<String>,

    /// Run with the built-in empty configuration: shorthand models such as
    /// `openai::gpt-4o-mini` only; no database needed.
    #[arg(long)]
    default_config: bool,

    /// Address to listen on (also TENSORZERO_GATEWAY_BIND_ADDRESS or `gateway.bind_address`;
    /// set only one). Default 0.0.0.0:3000.
    #[arg(long, value_name = "ADDR")]
    bind_address: Option<SocketAddr>,

    /// Also serve `GET /metrics` alone on this address, without API keys: the port to open to
    /// Prometheus (an edge sidecar's main address is localhost only; a relay with API keys
    /// wants one on every route of its main port).
    #[arg(long, value_name = "ADDR", env = "SWITCHYARD_METRICS_BIND_ADDRESS")]
    metrics_bind_address: Option<SocketAddr>,

    /// Load and check the configuration (including provider credentials, and Postgres when auth
    /// is on), print a summary, and exit 0 if it is valid, 1 if not.
    #[arg(long)]
    validate_config: bool,

    /// Log line format. Filter with RUST_LOG (e.g. `RUST_LOG=switchyard=debug`).
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,

    /// Seconds to keep serving after SIGTERM, with /ready failing, before the listener closes
    /// (for load balancers that have not noticed yet; 0 when a preStop hook waits instead).
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SWITCHYARD_SHUTDOWN_DELAY",
        default_value = "0",
        value_parser = seconds,
        help_heading = "Lifecycle"
    )]
    shutdown_delay: Duration,

    /// Seconds in-flight requests and streams get to finish once the listener has closed; what
    /// is still open then is cut.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SWITCHYARD_DRAIN_TIMEOUT",
        default_value = "30",
        value_parser = seconds,
        help_heading = "Lifecycle"
    )]
    drain_timeout: Duration,

    /// Seconds between checks of the configuration files for changes, which are then reloaded
    /// (0: reload only on SIGHUP).
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SWITCHYARD_CONFIG_POLL_INTERVAL",
        default_value = "5",
        value_parser = seconds,
        help_heading = "Lifecycle"
    )]
    config_poll_interval: Duration,

    /// GET this URL (e.g. http://127.0.0.1:3000/ready) and exit 0 if it answers 2xx within two
    /// seconds, 1 if not: a health check for images without a shell or curl (Docker
    /// HEALTHCHECK, Kubernetes exec probes of a sidecar that listens on localhost only).
    #[arg(long, value_name = "URL", help_heading = "Lifecycle")]
    probe: Option<String>,

    /// Create what switchyard keeps in TENSORZERO_POSTGRES_URL if it is missing (API keys,
    /// rate-limit buckets, the observability tables and their partitions), then exit.
    #[arg(long, help_heading = "API keys (TENSORZERO_POSTGRES_URL)")]
    run_postgres_migrations: bool,

    /// Load DICL examples from a JSONL file (one `{"input": ..., "output": ...}` per line) for
    /// --function-name/--variant-name: each input is embedded with the variant's
    /// `embedding_model` and stored in tensorzero.dicl_examples. Needs --config-file and
    /// TENSORZERO_POSTGRES_URL; exits when done.
    #[arg(
        long,
        value_name = "FILE",
        requires_all = ["function_name", "variant_name"],
        help_heading = "Observability (TENSORZERO_POSTGRES_URL)"
    )]
    load_dicl_examples: Option<std::path::PathBuf>,

    /// With --load-dicl-examples: the function.
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "Observability (TENSORZERO_POSTGRES_URL)"
    )]
    function_name: Option<String>,

    /// With --load-dicl-examples: the DICL variant.
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "Observability (TENSORZERO_POSTGRES_URL)"
    )]
    variant_name: Option<String>,

    /// Create an API key and print it (only the key, on stdout), then exit.
    #[arg(long, help_heading = "API keys (TENSORZERO_POSTGRES_URL)")]
    create_api_key: bool,

    /// With --create-api-key: when the key stops working, e.g. 2026-12-20T23:00:00Z.
    #[arg(
        long,
        value_name = "TIME",
        requires = "create_api_key",
        help_heading = "API keys (TENSORZERO_POSTGRES_URL)"
    )]
    expiration: Option<String>,

    /// With --create-api-key: a note stored with the key (who or what it is for).
    #[arg(
        long,
        value_name = "TEXT",
        requires = "create_api_key",
        help_heading = "API keys (TENSORZERO_POSTGRES_URL)"
    )]
    description: Option<String>,

    /// Disable the API key with this public id (the 12 characters after `sk-t0-`), then exit.
    #[arg(
        long,
        value_name = "PUBLIC_ID",
        help_heading = "API keys (TENSORZERO_POSTGRES_URL)"
    )]
    disable_api_key: Option<String>,

    /// List API keys (public id, description, created, expires, disabled; never a secret), then exit.
    #[arg(long, help_heading = "API keys (TENSORZERO_POSTGRES_URL)")]
    list_api_keys: bool,
}

/// A duration given in (possibly fractional) seconds.
fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("`{text}` is not a valid duration: give 0 or more seconds"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

impl Cli {
    fn administers_keys(&self) -> bool {
        self.run_postgres_migrations
            || self.create_api_key
            || self.disable_api_key.is_some()
            || self.list_api_keys
    }
}

fn init_logging(format: LogFormat) {
    switchyard::logging::init(match format {
        LogFormat::Json => switchyard::logging::LogFormat::Json,
        LogFormat::Pretty => switchyard::logging::LogFormat::Text,
    });
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(url) = &cli.probe {
        return runtime.block_on(probe(url));
    }
    let env = Environment::from_process();
    if cli.administers_keys() {
        return runtime.block_on(administer_keys(&cli, &env));
    }

    let source = match (&cli.config_file, cli.default_config) {
        (Some(pattern), false) => ConfigSource::Files(pattern.clone()),
        (None, true) => {
            tracing::warn!(
                "running with --default-config: no functions are configured; call models by shorthand, e.g. `openai::gpt-4o-mini`"
            );
            ConfigSource::BuiltInDefault
        }
        _ => {
            eprintln!("error: give either --config-file PATH or --default-config (see --help)");
            return ExitCode::from(2);
        }
    };
    let loaded = match source.load() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{}", warning.message);
    }

    let addr = match bind_address(&cli, &loaded) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };

    if cli.validate_config {
        return runtime.block_on(validate(&loaded, &env, addr));
    }
    if let (Some(file), Some(function), Some(variant)) = (
        &cli.load_dicl_examples,
        &cli.function_name,
        &cli.variant_name,
    ) {
        return match runtime.block_on(switchyard::load_dicl_examples(
            &loaded, &env, file, function, variant,
        )) {
            Ok(n) => {
                eprintln!("loaded {n} DICL examples for {function}/{variant}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let options = ServeOptions {
        addr,
        shutdown: ShutdownTimings {
            delay: cli.shutdown_delay,
            drain: cli.drain_timeout,
        },
        config_poll: (!cli.config_poll_interval.is_zero()).then_some(cli.config_poll_interval),
        metrics_addr: cli.metrics_bind_address,
    };
    let result = runtime.block_on(switchyard::run(
        source,
        &loaded,
        &env,
        options,
        shutdown_signal(),
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--probe URL`: one GET; success is a 2xx answer within two seconds.
async fn probe(url: &str) -> ExitCode {
    let request = match http::Request::get(url).body(http_body_util::Full::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: `{url}` is not a valid URL: {e}");
            return ExitCode::from(2);
        }
    };
    let client = switchyard::http_client::build();
    match tokio::time::timeout(Duration::from_secs(2), client.request(request)).await {
        Ok(Ok(response)) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(Ok(response)) => {
            eprintln!("{url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("{url} is unreachable: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("{url} did not answer within 2 s");
            ExitCode::FAILURE
        }
    }
}

/// The API-key commands: they need only TENSORZERO_POSTGRES_URL, no configuration file.
async fn administer_keys(cli: &Cli, env: &Environment) -> ExitCode {
    let Some(url) = env.postgres_url.as_ref().map(switchyard::Secret::expose) else {
        eprintln!("error: set TENSORZERO_POSTGRES_URL to the database that holds the API keys");
        return ExitCode::FAILURE;
    };
    let store = match switchyard::api_keys::PostgresKeyStore::connect(url) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = async {
        if cli.run_postgres_migrations {
            store.migrate().await?;
            switchyard::rate_limit_store::migrate(store.pool()).await?;
            let layout = switchyard::observability::migrate(store.pool()).await?;
            eprintln!("Postgres migrations applied (observability tables: {layout:?})");
        }
        if cli.create_api_key {
            let expiration = cli
                .expiration
                .as_deref()
                .map(switchyard::api_keys::parse_expiration)
                .transpose()?;
            let key = store.create(cli.description.as_deref(), expiration).await?;
            // Only the key goes to stdout, so scripts can capture it.
            println!("{}", key.expose());
        }
        if let Some(public_id) = &cli.disable_api_key {
            if store.disable(public_id).await? {
                eprintln!("API key {public_id} disabled");
            } else {
                eprintln!("API key {public_id} was already disabled");
            }
        }
        if cli.list_api_keys {
            let keys = store.list().await?;
            let show = |t: &Option<chrono::DateTime<chrono::Utc>>| {
                t.as_ref()
                    .map_or("-".to_owned(), switchyard::api_keys::display_time)
            };
            println!(
                "{:<12}  {:<27}  {:<27}  {:<27}  DESCRIPTION",
                "PUBLIC ID", "CREATED", "EXPIRES", "DISABLED"
            );
            for k in keys {
                println!(
                    "{:<12}  {:<27}  {:<27}  {:<27}  {}",
                    k.public_id,
                    show(&k.created_at),
                    show(&k.expires_at),
                    show(&k.disabled_at),
                    k.description.as_deref().unwrap_or("-")
                );
            }
        }
        Ok::<(), String>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The bind address from exactly one of the flag, the environment and the config.
fn bind_address(cli: &Cli, loaded: &LoadedConfig) -> Result<SocketAddr, String> {
    let from_env = match std::env::var(BIND_ADDRESS_ENV) {
        Ok(v) if !v.is_empty() => Some(v.parse::<SocketAddr>().map_err(|e| {
            format!("{BIND_ADDRESS_ENV}=`{v}` is not an address like 0.0.0.0:3000: {e}")
        })?),
        _ => None,
    };
    let sources: Vec<(&str, SocketAddr)> = [
        ("--bind-address", cli.bind_address),
        (BIND_ADDRESS_ENV, from_env),
        ("gateway.bind_address", loaded.config.gateway.bind_address),
    ]
    .into_iter()
    .filter_map(|(name, addr)| addr.map(|a| (name, a)))
    .collect();
    match sources.as_slice() {
        [] => Ok(DEFAULT_BIND_ADDRESS.parse().expect("valid default")),
        [(_, addr)] => Ok(*addr),
        many => Err(format!(
            "the bind address is set in more than one place ({}); set it in exactly one",
            many.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        )),
    }
}

async fn validate(loaded: &LoadedConfig, env: &Environment, addr: SocketAddr) -> ExitCode {
    let c = &loaded.config;
    let files: Vec<String> = loaded
        .sources
        .paths()
        .map(|p| p.display().to_string())
        .collect();
    println!(
        "configuration: {}",
        if files.is_empty() {
            "built-in default".to_owned()
        } else {
            files.join(", ")
        }
    );
    println!("bind address:  {addr}");
    let models: Vec<&str> = c.models.keys().map(String::as_str).collect();
    println!("models ({}):    {}", models.len(), list(&models));
    let functions: Vec<String> = c
        .functions
        .iter()
        .map(|(name, f)| format!("{name} [{} variant(s)]", f.variants().len()))
        .collect();
    println!("functions ({}): {}", functions.len(), list(&functions));
    let relay = c
        .gateway
        .relay
        .as_ref()
        .and_then(|r| r.gateway_url.as_deref());
    println!(
        "relay:         {}",
        relay.map_or("off".to_owned(), |u| format!("on ({u})"))
    );
    println!(
        "auth:          {}",
        if c.gateway.auth.enabled { "on" } else { "off" }
    );
    let rules = &c.rate_limiting.rules;
    println!(
        "rate limits:   {} rule(s){}",
        rules.len(),
        if !rules.is_empty() && !c.rate_limiting.enabled {
            " (disabled)"
        } else {
            ""
        }
    );
    println!("warnings:      {}", loaded.warnings.len());
    match switchyard::build_app(loaded, &switchyard::Resources::new(env.clone())).await {
        Ok(_) => {
            println!("configuration is valid");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn list<T: AsRef<str>>(items: &[T]) -> String {
    if items.is_empty() {
        return "-".to_owned();
    }
    let shown: Vec<&str> = items.iter().take(8).map(AsRef::as_ref).collect();
    let more = items.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
