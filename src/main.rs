//! The `switchyard` binary: command line, start-up checks, serving, shutdown.
//!
//! The flags are the TensorZero Gateway's, so a deployment can swap the binary.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{ArgGroup, Parser, ValueEnum};
use switchyard::config::LoadedConfig;
use tracing_subscriber::EnvFilter;

/// The environment variable that may set the bind address.
const BIND_ADDRESS_ENV: &str = "TENSORZERO_GATEWAY_BIND_ADDRESS";
/// Where the gateway listens when nothing says otherwise.
const DEFAULT_BIND_ADDRESS: &str = "0.0.0.0:3000";

/// An LLM gateway that serves the TensorZero Gateway API from tensorzero.toml.
#[derive(Parser, Debug)]
#[command(name = "switchyard", version, about, long_about = None)]
#[command(group(ArgGroup::new("config").required(true).args(["config_file", "default_config"])))]
struct Cli {
    /// The configuration file, or a glob matching several files to merge (quote it).
    #[arg(long, value_name = "PATH")]
    config_file: Option<String>,

    /// Run with the built-in empty configuration: shorthand models such as
    /// `openai::gpt-4o-mini` only; no database needed.
    #[arg(long)]
    default_config: bool,

    /// Address to listen on (also TENSORZERO_GATEWAY_BIND_ADDRESS or `gateway.bind_address`;
    /// set only one). Default 0.0.0.0:3000.
    #[arg(long, value_name = "ADDR")]
    bind_address: Option<SocketAddr>,

    /// Load and check the configuration (including provider credentials), print a summary,
    /// and exit 0 if it is valid, 1 if not.
    #[arg(long)]
    validate_config: bool,

    /// Log line format. Filter with RUST_LOG (e.g. `RUST_LOG=switchyard=debug`).
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);

    let loaded = match &cli.config_file {
        Some(pattern) => match LoadedConfig::from_files(pattern) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => {
            tracing::warn!(
                "running with --default-config: no functions are configured; call models by shorthand, e.g. `openai::gpt-4o-mini`"
            );
            LoadedConfig::default_config()
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
        return validate(&loaded, addr);
    }

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
    let result = runtime.block_on(switchyard::run(
        &loaded,
        addr,
        shutdown_signal(),
        switchyard::server::DEFAULT_DRAIN,
    ));
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

fn validate(loaded: &LoadedConfig, addr: SocketAddr) -> ExitCode {
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
    match switchyard::build_state(loaded) {
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
