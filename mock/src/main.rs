//! `mock-provider`: the OpenAI-format mock provider as a standalone server, for the README's
//! quick start, examples and the benchmark. See the `switchyard_mock` library for what it does.

use std::net::SocketAddr;

use clap::Parser;

/// A mock LLM provider speaking the OpenAI Chat Completions API (no real model behind it).
#[derive(Parser)]
#[command(name = "mock-provider", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3030")]
    bind: SocketAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mock = switchyard_mock::MockProvider::start_on(args.bind).await?;
    println!(
        "mock provider listening on http://{} (api_base = {})",
        mock.addr,
        mock.api_base()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
