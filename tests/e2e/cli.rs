//! The `switchyard` binary's command line.

use std::process::{Command, Output};

fn switchyard(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.args(args)
        .env_remove("TENSORZERO_GATEWAY_BIND_ADDRESS")
        .env_remove("TENSORZERO_POSTGRES_URL")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensorzero.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

#[test]
fn help_and_version() {
    let o = switchyard(&["--help"], &[]);
    assert!(o.status.success());
    for flag in [
        "--config-file",
        "--default-config",
        "--bind-address",
        "--validate-config",
        "--log-format",
    ] {
        assert!(text(&o).contains(flag), "{flag} missing from --help");
    }
    let o = switchyard(&["--version"], &[]);
    assert!(o.status.success());
    assert!(text(&o).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn exactly_one_config_source_is_required() {
    let o = switchyard(&[], &[]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--config-file"), "{}", text(&o));
    let (_d, path) = write_config("");
    let o = switchyard(&["--config-file", &path, "--default-config"], &[]);
    assert!(!o.status.success());
    assert!(text(&o).contains("cannot be used with"), "{}", text(&o));
}

#[test]
fn validate_config_prints_a_summary() {
    let (_d, path) = write_config(
        "[models.m]\nrouting = [\"p\"]\n[models.m.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"none\"\n\n[functions.f]\ntype = \"chat\"\n[functions.f.variants.v]\ntype = \"chat_completion\"\nmodel = \"m\"\n",
    );
    let o = switchyard(&["--config-file", &path, "--validate-config"], &[]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for expected in [
        "models (1):",
        "m",
        "functions (1):",
        "f [1 variant(s)]",
        "relay:         off",
        "auth:          off",
        "rate limits:   0 rule(s)",
        "configuration is valid",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in {out}");
    }
    let o = switchyard(&["--default-config", "--validate-config"], &[]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn validate_config_fails_with_the_location() {
    let (_d, path) = write_config("[models.x]\nroutng = []\n");
    let o = switchyard(&["--config-file", &path, "--validate-config"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(
        out.contains("tensorzero.toml:2:1") && out.contains("routng"),
        "{out}"
    );
}

#[test]
fn missing_provider_key_stops_start_up_naming_it() {
    let (_d, path) = write_config(
        "[models.m]\nrouting = [\"p\"]\n[models.m.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"env::SWITCHYARD_CLI_TEST_MISSING_KEY\"\n",
    );
    let o = switchyard(&["--config-file", &path, "--validate-config"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(
        out.contains("SWITCHYARD_CLI_TEST_MISSING_KEY")
            && out.contains("provider `p`")
            && out.contains("model `m`"),
        "{out}"
    );
}

#[test]
fn keys_are_read_from_the_environment() {
    let (_d, path) = write_config(
        "[models.m]\nrouting = [\"p\"]\n[models.m.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"env::SWITCHYARD_CLI_TEST_KEY\"\n",
    );
    let o = switchyard(
        &["--config-file", &path, "--validate-config"],
        &[("SWITCHYARD_CLI_TEST_KEY", "sk-test")],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("sk-test"), "the key must not be printed");
}

#[test]
fn bind_address_may_be_set_in_only_one_place() {
    let (_d, path) = write_config("[gateway]\nbind_address = \"127.0.0.1:0\"\n");
    let o = switchyard(
        &[
            "--config-file",
            &path,
            "--bind-address",
            "127.0.0.1:0",
            "--validate-config",
        ],
        &[("TENSORZERO_GATEWAY_BIND_ADDRESS", "127.0.0.1:0")],
    );
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(
        out.contains("--bind-address")
            && out.contains("TENSORZERO_GATEWAY_BIND_ADDRESS")
            && out.contains("gateway.bind_address"),
        "{out}"
    );
    let o = switchyard(&["--config-file", &path, "--validate-config"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("bind address:  127.0.0.1:0"));
}

#[test]
fn auth_without_postgres_refuses_to_start() {
    let (_d, path) = write_config("[gateway]\nauth.enabled = true\n");
    let o = switchyard(&["--config-file", &path, "--validate-config"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("Authentication is enabled")
            && text(&o).contains("TENSORZERO_POSTGRES_URL"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = switchyard(&["--default-config", "--bind-address", &addr], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains(&format!("cannot listen on {addr}")),
        "{}",
        text(&o)
    );
}

#[test]
fn relay_mode_skips_provider_key_checks_but_not_for_skip_relay_models() {
    let relayed = "[gateway.relay]\ngateway_url = \"http://relay:3000\"\n\n[models.m]\nrouting = [\"p\"]\n[models.m.providers.p]\ntype = \"openai\"\nmodel_name = \"x\"\napi_key_location = \"env::SWITCHYARD_CLI_NO_KEY\"\n";
    let (_d, path) = write_config(relayed);
    let o = switchyard(&["--config-file", &path, "--validate-config"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("relay:         on (http://relay:3000)"));

    let (_d, path) = write_config(&relayed.replace(
        "routing = [\"p\"]\n",
        "routing = [\"p\"]\nskip_relay = true\n",
    ));
    let o = switchyard(&["--config-file", &path, "--validate-config"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("SWITCHYARD_CLI_NO_KEY"), "{}", text(&o));
}

#[test]
fn a_missing_relay_key_stops_start_up() {
    let (_d, path) = write_config(
        "[gateway.relay]\ngateway_url = \"http://relay:3000\"\napi_key_location = \"env::SWITCHYARD_CLI_NO_RELAY_KEY\"\n",
    );
    let o = switchyard(&["--config-file", &path, "--validate-config"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(out.contains("API key missing for provider tensorzero::relay: Environment variable `SWITCHYARD_CLI_NO_RELAY_KEY` is missing"), "{out}");
    let o = switchyard(
        &["--config-file", &path, "--validate-config"],
        &[("SWITCHYARD_CLI_NO_RELAY_KEY", "sk-t0-x")],
    );
    assert!(o.status.success(), "{}", text(&o));
    let (_d, path) = write_config(
        "[gateway.relay]\ngateway_url = \"http://relay:3000\"\napi_key_location = \"path::/k\"\n",
    );
    let o = switchyard(&["--config-file", &path, "--validate-config"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("cannot hold the relay key"),
        "{}",
        text(&o)
    );
}

#[test]
fn logs_to_a_file_carry_no_colour_codes() {
    // stderr is a pipe here, as it is for a container runtime or a log collector.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = switchyard(
        &["--default-config", "--bind-address", &addr],
        &[("RUST_LOG", "info")],
    );
    let logs = String::from_utf8_lossy(&o.stderr);
    assert!(logs.contains("cannot listen on"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI escape codes in a log file: {logs:?}"
    );
}
