//! The command line: exit codes, one-line configuration errors, `--check-config`.

use std::process::{Command, Output};

fn run(env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_saldo_exporter"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

const ISIKUOTA: [(&str, &str); 3] = [
    ("SALDO_ISIKUOTA_API_ID", "id-1"),
    ("SALDO_ISIKUOTA_API_KEY", "sk-live-7d1e0c"),
    ("SALDO_ISIKUOTA_SECRET_KEY", "ss-live-4b9f2a"),
];

#[test]
fn bad_configuration_exits_2_with_one_line_naming_the_setting() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "accounts"),
        (&[("SALDO_MIN_INTERVAL", "sebentar")], "SALDO_MIN_INTERVAL"),
        (&ISIKUOTA[..2], "SALDO_ISIKUOTA_SECRET_KEY"),
        (&[("SALDO_AYOPOP_PARTNER_ID", "p")], "SALDO_AYOPOP_API_KEY"),
        (
            &[("SALDO_CONFIG_FILE", "/nonexistent/saldo.yml")],
            "SALDO_CONFIG_FILE",
        ),
        (
            &[("SALDO_DIGIFLAZ_USERNAME", "u")],
            "SALDO_DIGIFLAZ_USERNAME",
        ),
    ];
    for (env, setting) in cases {
        let mut env = env.to_vec();
        if *setting == "SALDO_MIN_INTERVAL" {
            env.extend(ISIKUOTA);
        }
        let output = run(&env, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{setting}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{setting}: {stderr}");
        assert!(
            stderr.contains(setting),
            "{stderr:?} does not name {setting}"
        );
        assert!(
            !stderr.contains("sk-live-7d1e0c"),
            "the API key was printed"
        );
    }
}

#[test]
fn check_config_validates_without_serving() {
    let output = run(&ISIKUOTA, &["--check-config"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("1 account(s)") && stdout.contains("isikuota isikuota"),
        "{stdout}"
    );
    assert!(!stdout.contains("sk-live-7d1e0c") && !stdout.contains("ss-live-4b9f2a"));
    assert_eq!(
        run(&ISIKUOTA[..1], &["--check-config"]).status.code(),
        Some(2)
    );
}

#[test]
fn help_and_version_work_without_configuration() {
    let help = run(&[], &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--demo"));
    let version = run(&[], &["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    assert_eq!(run(&[], &["--no-such-flag"]).status.code(), Some(2));
}

#[test]
fn the_healthcheck_fails_when_nothing_listens() {
    let output = run(&[("SALDO_LISTEN_ADDRESS", "127.0.0.1:1")], &["healthcheck"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unhealthy"));
}

#[test]
fn the_web_config_flag_overrides_the_variable_instead_of_adding_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("web.yml");
    std::fs::write(&good, "").unwrap();
    let broken = [("SALDO_WEB_CONFIG_FILE", "/nonexistent/web.yml")];
    let mut env = ISIKUOTA.to_vec();
    env.extend(broken);

    let output = run(&env, &["--check-config"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SALDO_WEB_CONFIG_FILE"));

    let flag = format!("--web.config.file={}", good.display());
    let output = run(&env, &["--check-config", &flag]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn help_lists_every_flag_with_the_variable_it_mirrors_and_every_variable() {
    let help = run(&[], &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for (flag, variable) in [
        ("--web.listen-address", "SALDO_LISTEN_ADDRESS"),
        ("--web.telemetry-path", "SALDO_TELEMETRY_PATH"),
        ("--web.config.file", "SALDO_WEB_CONFIG_FILE"),
        ("--config.file", "SALDO_CONFIG_FILE"),
        ("--log.level", "SALDO_LOG_LEVEL"),
        ("--log.format", "SALDO_LOG_FORMAT"),
    ] {
        let line = text
            .lines()
            .position(|line| line.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} missing from --help:\n{text}"));
        // The variable is named in the flag's description, which may wrap.
        let description: String = text.lines().skip(line).take(4).collect();
        assert!(
            description.contains(&format!("[{variable}]")),
            "{flag}: {description}"
        );
    }
    for variable in [
        "SALDO_LISTEN_ADDRESS",
        "SALDO_TELEMETRY_PATH",
        "SALDO_MIN_INTERVAL",
        "SALDO_TIMEOUT",
        "SALDO_MAX_IN_FLIGHT",
        "SALDO_CONFIG_FILE",
        "SALDO_WEB_CONFIG_FILE",
        "SALDO_LOG_LEVEL",
        "SALDO_LOG_FORMAT",
        "SALDO_ISIKUOTA_*",
        "SALDO_AYOPOP_*",
    ] {
        assert!(text.contains(variable), "{variable} missing from --help");
    }
}

#[test]
fn version_names_the_binary_revision_and_rustc_like_prometheus_exporters() {
    let output = run(&[], &["--version"]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "saldo_exporter, version {} (revision: ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains("rustc version:    rustc 1."), "{text}");
    assert!(text.contains("platform:         "), "{text}");
}

#[test]
fn a_flag_wins_over_its_variable_and_its_errors_name_the_flag() {
    let mut env = ISIKUOTA.to_vec();
    env.push(("SALDO_LOG_LEVEL", "verbose"));
    env.push(("SALDO_LISTEN_ADDRESS", "nowhere"));
    // The broken variables are overridden, so the configuration is valid.
    let output = run(
        &env,
        &[
            "--check-config",
            "--log.level=debug",
            "--web.listen-address=127.0.0.1:9866",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (flag, value) in [
        ("--web.listen-address", "nowhere"),
        ("--web.telemetry-path", "/-/healthy"),
        ("--config.file", "/nonexistent/accounts.yml"),
        ("--log.level", "verbose"),
        ("--log.format", "xml"),
        ("--web.config.file", "/nonexistent/web.yml"),
    ] {
        let output = run(&ISIKUOTA, &["--check-config", &format!("{flag}={value}")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag}: {stderr}");
        assert!(
            stderr.starts_with(&format!("saldo_exporter: invalid configuration: {flag}")),
            "{flag}: {stderr}"
        );
    }
}
