//! The README stays true: its two commands are the ones CI runs, and what it says about the
//! licence, the minimum Rust version and where files go matches the repository.

mod support;

use support::{read, repo_path};

fn cargo_value(key: &str) -> String {
    read("Cargo.toml")
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("Cargo.toml has no {key}"))
        .trim_matches('"')
        .to_owned()
}

#[test]
fn the_readme_names_the_demo_and_test_commands_and_ci_runs_the_test_command() {
    let readme = read("README.md");
    assert!(readme.contains("```sh\ncargo run --release -- --demo\n```"));
    assert!(readme.contains("```sh\ncargo test --locked\n```"));
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|line| line.trim() == "cargo test --locked"),
        ".ci/run must run the README's test command exactly"
    );
}

#[test]
fn the_licence_file_is_the_one_cargo_toml_names() {
    assert_eq!(cargo_value("license"), "Apache-2.0");
    let licence = read("LICENSE");
    assert!(
        licence.trim_start().starts_with("Apache License")
            && licence.contains("Version 2.0, January 2004")
            && licence.contains("END OF TERMS AND CONDITIONS"),
        "LICENSE is not the Apache License 2.0 text"
    );
}

#[test]
fn the_readme_states_the_minimum_rust_version_of_cargo_toml() {
    let version = cargo_value("rust-version");
    assert!(
        read("README.md").contains(&format!("needs Rust {version} or later")),
        "README must say the minimum Rust version, {version}"
    );
}

#[test]
fn the_grafana_provisioning_steps_put_each_file_where_grafana_reads_it() {
    let readme = read("README.md");
    for (file, directory) in [
        (
            "dashboards/provisioning/dashboards.yml",
            "/etc/grafana/provisioning/dashboards/",
        ),
        (
            "dashboards/provisioning/datasource.yml",
            "/etc/grafana/provisioning/datasources/",
        ),
    ] {
        assert!(repo_path(file).is_file(), "{file} is missing");
        assert!(
            readme
                .lines()
                .any(|line| line.contains(file) && line.contains(directory)),
            "README must install {file} into {directory}"
        );
    }
    // The dashboard provider reads the directory the README copies the dashboards to.
    let provider = read("dashboards/provisioning/dashboards.yml");
    assert!(provider.contains("path: /var/lib/grafana/dashboards/saldo"));
    assert!(
        readme.contains("install -m 0644 dashboards/*.json /var/lib/grafana/dashboards/saldo/")
    );
}
