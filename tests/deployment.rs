//! The deployment files are code too: the Dockerfile, docker-compose.yml and everything under
//! deploy/ (Compose configs, the systemd unit, the Kubernetes manifests).
//!
//! No Docker engine, cluster or systemd instance is at hand in tests, so this proves what can be
//! proved without them: every file parses; Compose and Kubernetes refer only to files that
//! exist; the Compose Prometheus and Alertmanager configs pass `promtool` and `amtool` with the
//! files where Compose mounts them; the PrometheusRule carries exactly the shipped rules; the
//! unit passes `systemd-analyze verify` and is sandboxed; and the real binary accepts the
//! configuration that the Kubernetes Deployment and the systemd unit give it.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::{read, repo_path, require_tool};

const COMPOSE: &str = "docker-compose.yml";
const DOCKERFILE: &str = "Dockerfile";
const DOCKERIGNORE: &str = ".dockerignore";
const RULES: &str = "alerts/saldo.rules.yml";
const EXAMPLE_ALERTMANAGER: &str = "examples/alertmanager.yml";
const KUBERNETES: &str = "deploy/kubernetes";
const PROMETHEUS_RULE: &str = "deploy/kubernetes/prometheusrule.yaml";
const PROMETHEUS_RULE_GENERATOR: &str = "deploy/kubernetes/generate-prometheusrule.sh";
const EXAMPLE_SECRET: &str = "deploy/kubernetes/secret.example.yaml";
const UNIT: &str = "deploy/systemd/saldo_exporter.service";
const UNIT_ENV: &str = "deploy/systemd/saldo_exporter.env";
const BINARY_PATH: &str = "/usr/local/bin/saldo_exporter";

/// The documents of a YAML file, split on `---` lines; documents of only comments are skipped.
fn yaml_documents(relative: &str) -> Vec<Value> {
    let text = format!("\n{}", read(relative));
    text.split("\n---\n")
        .filter(|doc| {
            doc.lines()
                .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        })
        .map(|doc| {
            yaml_serde::from_str(doc)
                .unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"))
        })
        .collect()
}

fn yaml(relative: &str) -> Value {
    let mut documents = yaml_documents(relative);
    assert_eq!(documents.len(), 1, "{relative} should hold one document");
    documents.remove(0)
}

/// Every YAML file under `dir`, relative to the repository, sorted.
fn yaml_files_under(dir: &str) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("readable directory entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yml" || ext == "yaml")
            {
                let relative = path.strip_prefix(root).unwrap();
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let root = repo_path("");
    let mut found = Vec::new();
    walk(&repo_path(dir), &root, &mut found);
    found.sort();
    found
}

fn compose() -> Value {
    yaml(COMPOSE)
}

fn compose_service(name: &str) -> Value {
    let compose = compose();
    let service = &compose["services"][name];
    assert!(service.is_object(), "{COMPOSE} has no service {name:?}");
    service.clone()
}

/// A Compose bind mount: a path in this repository and where the container sees it.
struct Mount {
    host: String,
    container: String,
    read_only: bool,
}

/// The service's bind mounts (short and long syntax); named volumes are left out.
fn bind_mounts(service: &Value) -> Vec<Mount> {
    let is_path = |s: &str| s.starts_with('.') || s.starts_with('/') || s.starts_with('~');
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|volume| match volume {
            Value::String(short) => {
                let mut parts = short.split(':');
                let host = parts.next()?.to_owned();
                let container = parts.next()?.to_owned();
                let read_only = parts
                    .next()
                    .is_some_and(|mode| mode.split(',').any(|m| m == "ro"));
                is_path(&host).then_some(Mount {
                    host,
                    container,
                    read_only,
                })
            }
            long => (long["type"] == "bind").then(|| Mount {
                host: long["source"].as_str().unwrap_or_default().to_owned(),
                container: long["target"].as_str().unwrap_or_default().to_owned(),
                read_only: long["read_only"] == true,
            }),
        })
        .collect()
}

/// Copies a Compose service's bind-mounted files into `root`, each at its path in the
/// container, so that a tool run on `root` sees the layout the container sees.
fn mirror_mounts(service: &Value, root: &Path) {
    for mount in bind_mounts(service) {
        let target = root.join(mount.container.trim_start_matches('/'));
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(repo_path(&mount.host), &target)
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", mount.host));
    }
}

/// The value of a `--flag=value` in a Compose service's command.
fn command_flag(service: &Value, flag: &str) -> String {
    let prefix = format!("{flag}=");
    service["command"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|arg| arg.as_str()?.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("the service's command has no {flag}="))
}

fn run_tool(tool: &str, args: &[&str]) -> String {
    let output = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    let text = combined(&output);
    assert!(
        output.status.success(),
        "`{tool} {}` failed with {}:\n{text}",
        args.join(" "),
        output.status
    );
    text
}

fn combined(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The host of an `http://host:port/...` URL.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', ':']).next().unwrap_or_default()
}

/// Every Kubernetes object under deploy/kubernetes, with the file it is in.
fn kubernetes_objects() -> Vec<(String, Value)> {
    yaml_files_under(KUBERNETES)
        .into_iter()
        .flat_map(|file| {
            yaml_documents(&file)
                .into_iter()
                .map(move |doc| (file.clone(), doc))
        })
        .filter(|(_, doc)| doc["kind"] != "Kustomization")
        .collect()
}

fn kubernetes_object(kind: &str) -> Value {
    let mut found: Vec<Value> = kubernetes_objects()
        .into_iter()
        .filter(|(_, doc)| doc["kind"] == kind)
        .map(|(_, doc)| doc)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} in {KUBERNETES}");
    found.remove(0)
}

fn exporter_container(deployment: &Value) -> Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("the Deployment has containers");
    assert_eq!(containers.len(), 1, "the Deployment runs one container");
    containers[0].clone()
}

/// The container's environment; a value that is not a literal (`valueFrom`) fails the test,
/// since secrets are meant to arrive as files.
fn container_env(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|var| {
            let name = var["name"].as_str().expect("an env entry has a name");
            let value = var["value"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} should be a literal value; secrets are files"));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// A setting whose value would be a secret if written out (rather than a `*_FILE` path).
fn is_secret_setting(name: &str) -> bool {
    ["_KEY", "_SECRET", "_PASSWORD", "_TOKEN"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

/// Runs the exporter's `--check-config` with exactly these variables.
fn check_config(env: &[(String, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_saldo_exporter"))
        .arg("--check-config")
        .env_clear()
        .envs(env.iter().cloned())
        .output()
        .expect("the exporter binary runs")
}

/// The unit's directives as (section, key, value), in order, comments left out.
fn unit_directives(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut directives = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "keep unit directives on one line: {line}"
        );
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a directive: {line}"));
        directives.push((
            section.clone(),
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    directives
}

/// Every value of a `[Service]` key.
fn service_values<'a>(directives: &'a [(String, String, String)], key: &str) -> Vec<&'a str> {
    directives
        .iter()
        .filter(|(section, k, _)| section == "Service" && k == key)
        .map(|(_, _, value)| value.as_str())
        .collect()
}

/// `KEY=value` lines of an environment file (systemd's EnvironmentFile= syntax, unquoted).
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=value: {line}"));
            let value = value.trim().trim_matches('"');
            (key.trim().to_owned(), value.to_owned())
        })
        .collect()
}

/// Dockerfile instructions as (INSTRUCTION, arguments), continuation lines joined.
fn dockerfile_instructions() -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read(DOCKERFILE).lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (instruction, args) = current.split_once(' ').unwrap_or((&current, ""));
                instructions.push((instruction.to_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    instructions
}

/// The instructions of the last build stage: what the shipped image is made of.
fn final_stage(instructions: &[(String, String)]) -> &[(String, String)] {
    let start = instructions
        .iter()
        .rposition(|(instruction, _)| instruction == "FROM")
        .expect("the Dockerfile has a FROM");
    &instructions[start..]
}

/// The JSON array of an exec-form instruction (after an optional `CMD`).
fn exec_form(args: &str) -> Vec<String> {
    let json = args.rsplit_once("CMD ").map_or(args, |(_, json)| json);
    serde_json::from_str(json).unwrap_or_else(|_| panic!("`{args}` is not in exec form"))
}

#[test]
fn every_yaml_file_under_deploy_and_the_compose_file_parses() {
    let mut files = yaml_files_under("deploy");
    files.push(COMPOSE.to_owned());
    assert!(
        files.len() >= 10,
        "fewer YAML files than expected: {files:?}"
    );
    for file in files {
        let documents = yaml_documents(&file);
        assert!(!documents.is_empty(), "{file} holds no document");
        for document in documents {
            assert!(document.is_object(), "{file}: a document is not a mapping");
        }
    }
}

#[test]
fn the_compose_file_mounts_only_repository_files_that_exist_and_only_read_only() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    let mut mounts = 0;
    for (name, service) in services {
        for mount in bind_mounts(service) {
            mounts += 1;
            assert!(
                mount.host.starts_with("./"),
                "{name}: {} is not a path in this repository",
                mount.host
            );
            assert!(
                repo_path(&mount.host).is_file(),
                "{name} mounts {}, which does not exist",
                mount.host
            );
            assert!(mount.read_only, "{name}: mount {} is not :ro", mount.host);
        }
        if let Some(build) = service.get("build") {
            let context = build["context"].as_str().or(build.as_str()).unwrap_or(".");
            let dockerfile = build["dockerfile"].as_str().unwrap_or(DOCKERFILE);
            let path = repo_path(context).join(dockerfile);
            assert!(path.is_file(), "{name} builds from {}", path.display());
        }
    }
    assert!(mounts >= 5, "only {mounts} bind mounts found");
}

#[test]
fn every_compose_image_is_pinned_to_a_version() {
    let compose = compose();
    for (name, service) in compose["services"].as_object().unwrap() {
        if service.get("build").is_some() {
            continue;
        }
        let image = service["image"].as_str().unwrap_or_default();
        let tag = image
            .rsplit_once(':')
            .map(|(_, tag)| tag)
            .unwrap_or_default();
        assert!(
            tag.chars().any(|c| c.is_ascii_digit()) && !tag.contains("latest"),
            "{name}: image {image:?} is not pinned to a version"
        );
    }
}

#[test]
fn the_compose_stack_runs_the_demo_and_its_services_reach_each_other_by_name() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let exporter = compose_service("saldo-exporter");
    assert_eq!(exporter["command"], serde_json::json!(["--demo"]));

    let prometheus = yaml("deploy/compose/prometheus.yml");
    let saldo_job = prometheus["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|job| job["job_name"] == "saldo")
        .expect("a scrape job named saldo");
    assert_eq!(
        saldo_job["static_configs"][0]["targets"],
        serde_json::json!(["saldo-exporter:9866"])
    );
    let alertmanagers = &prometheus["alerting"]["alertmanagers"][0]["static_configs"][0];
    assert_eq!(
        alertmanagers["targets"],
        serde_json::json!(["alertmanager:9093"])
    );

    let alertmanager = yaml("deploy/compose/alertmanager.yml");
    let mut webhook_urls = Vec::new();
    for receiver in alertmanager["receivers"].as_array().unwrap() {
        for webhook in receiver["webhook_configs"].as_array().into_iter().flatten() {
            webhook_urls.push(webhook["url"].as_str().unwrap().to_owned());
        }
    }
    assert!(!webhook_urls.is_empty());
    for url in &webhook_urls {
        assert!(
            services.contains_key(url_host(url)),
            "the webhook {url} is no service of {COMPOSE}"
        );
    }

    let datasource = yaml("deploy/compose/grafana-datasource.yml");
    assert_eq!(
        datasource["datasources"][0]["url"],
        "http://prometheus:9090"
    );
    assert_eq!(datasource["datasources"][0]["type"], "prometheus");
}

#[test]
fn grafana_in_compose_provisions_every_shipped_dashboard() {
    let grafana = compose_service("grafana");
    let mounts = bind_mounts(&grafana);
    let mounted_at = |host: &str| {
        mounts
            .iter()
            .find(|mount| mount.host.trim_start_matches("./") == host)
            .map(|mount| mount.container.clone())
    };
    let provider = yaml("dashboards/provisioning/dashboards.yml");
    let dashboard_dir = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("the dashboard provider has a path")
        .to_owned();
    let provider_at = mounted_at("dashboards/provisioning/dashboards.yml")
        .expect("dashboards/provisioning/dashboards.yml is mounted");
    assert!(provider_at.starts_with("/etc/grafana/provisioning/dashboards/"));
    let datasource_at = mounted_at("deploy/compose/grafana-datasource.yml")
        .expect("deploy/compose/grafana-datasource.yml is mounted");
    assert!(datasource_at.starts_with("/etc/grafana/provisioning/datasources/"));

    let mut dashboards = 0;
    for entry in fs::read_dir(repo_path("dashboards")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") {
            continue;
        }
        dashboards += 1;
        assert_eq!(
            mounted_at(&format!("dashboards/{name}")),
            Some(format!("{dashboard_dir}/{name}")),
            "dashboards/{name} is not provisioned in {COMPOSE}"
        );
    }
    assert!(dashboards >= 2);
}

#[test]
fn the_compose_prometheus_config_passes_promtool_with_the_rules_where_compose_mounts_them() {
    if !require_tool("promtool") {
        return;
    }
    let prometheus = compose_service("prometheus");
    let root = tempfile::tempdir().unwrap();
    mirror_mounts(&prometheus, root.path());
    let config = root
        .path()
        .join(command_flag(&prometheus, "--config.file").trim_start_matches('/'));
    let output = run_tool("promtool", &["check", "config", config.to_str().unwrap()]);
    assert!(
        output.contains("1 rule files found"),
        "the compose Prometheus should load {RULES}:\n{output}"
    );
}

#[test]
fn the_compose_alertmanager_config_passes_amtool() {
    if !require_tool("amtool") {
        return;
    }
    let alertmanager = compose_service("alertmanager");
    let root = tempfile::tempdir().unwrap();
    mirror_mounts(&alertmanager, root.path());
    let config = root
        .path()
        .join(command_flag(&alertmanager, "--config.file").trim_start_matches('/'));
    run_tool("amtool", &["check-config", config.to_str().unwrap()]);
}

#[test]
fn the_compose_alertmanager_routes_exactly_like_the_example() {
    let compose = yaml("deploy/compose/alertmanager.yml");
    let example = yaml(EXAMPLE_ALERTMANAGER);
    assert_eq!(compose["route"], example["route"]);
    assert_eq!(compose["inhibit_rules"], example["inhibit_rules"]);
    let names = |config: &Value| -> Vec<Value> {
        config["receivers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|receiver| receiver["name"].clone())
            .collect()
    };
    assert_eq!(names(&compose), names(&example));
}

#[test]
fn the_prometheus_rule_holds_exactly_the_groups_of_the_rule_file() {
    let rule = yaml(PROMETHEUS_RULE);
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    let spec = rule["spec"]
        .as_object()
        .expect("the PrometheusRule has a spec");
    assert_eq!(
        spec.keys().collect::<Vec<_>>(),
        ["groups"],
        "spec should hold the groups only"
    );
    let rules = yaml(RULES);
    assert!(rules["groups"].as_array().is_some_and(|g| !g.is_empty()));
    assert!(
        spec["groups"] == rules["groups"],
        "{PROMETHEUS_RULE} differs from {RULES}: run \
         {PROMETHEUS_RULE_GENERATOR} > {PROMETHEUS_RULE}"
    );
}

#[test]
fn the_prometheus_rule_is_what_its_generator_makes_from_the_rule_file() {
    let output = Command::new("sh")
        .arg(repo_path(PROMETHEUS_RULE_GENERATOR))
        .output()
        .expect("sh runs the generator");
    assert!(output.status.success(), "{}", combined(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout) == read(PROMETHEUS_RULE),
        "{PROMETHEUS_RULE} is stale: run {PROMETHEUS_RULE_GENERATOR} > {PROMETHEUS_RULE}"
    );
}

#[test]
fn the_kustomization_lists_every_manifest_but_the_example_secret() {
    let kustomization = yaml("deploy/kubernetes/kustomization.yaml");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| format!("{KUBERNETES}/{}", r.as_str().unwrap()))
        .collect();
    for resource in &listed {
        assert!(repo_path(resource).is_file(), "{resource} does not exist");
    }
    let manifests: BTreeSet<String> = kubernetes_objects()
        .into_iter()
        .map(|(file, _)| file)
        .filter(|file| file != EXAMPLE_SECRET)
        .collect();
    assert_eq!(listed, manifests);
}

#[test]
fn the_deployment_runs_one_hardened_replica_with_probes_and_resources() {
    let deployment = kubernetes_object("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["enableServiceLinks"], false);

    let container = exporter_container(&deployment);
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));

    assert_eq!(container["ports"][0]["name"], "metrics");
    assert_eq!(container["ports"][0]["containerPort"], 9866);
    for (probe, path) in [
        ("livenessProbe", "/-/healthy"),
        ("readinessProbe", "/-/ready"),
    ] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    for (kind, resource) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "memory"),
    ] {
        assert!(
            container["resources"][kind][resource].is_string(),
            "no resources.{kind}.{resource}"
        );
    }
}

#[test]
fn the_service_and_service_monitor_scrape_the_metrics_port_every_30_seconds() {
    let deployment = kubernetes_object("Deployment");
    let service = kubernetes_object("Service");
    let monitor = kubernetes_object("ServiceMonitor");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &pod_labels[key], value,
            "the Service does not select the pods"
        );
    }
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["name"], "metrics");
    assert_eq!(port["port"], 9866);
    // The Operator names the job after the Service; SaldoExporterDown wants job=~"saldo.*".
    assert!(
        service["metadata"]["name"]
            .as_str()
            .is_some_and(|name| name.starts_with("saldo"))
    );

    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the ServiceMonitor does not select the Service"
        );
    }
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["interval"], "30s");
    assert_eq!(endpoint["scrapeTimeout"], "15s");
}

#[test]
fn every_secret_file_of_the_deployment_is_a_key_of_its_mounted_secret() {
    let deployment = kubernetes_object("Deployment");
    let secret = kubernetes_object("Secret");
    let container = exporter_container(&deployment);
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let mut files = 0;
    for (name, path) in container_env(&container) {
        if !name.ends_with("_FILE") {
            continue;
        }
        files += 1;
        let (dir, key) = path.rsplit_once('/').unwrap();
        let mount = container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|mount| mount["mountPath"] == dir)
            .unwrap_or_else(|| panic!("{name}: nothing is mounted at {dir}"));
        assert_eq!(mount["readOnly"], true);
        let volume = volumes
            .iter()
            .find(|volume| volume["name"] == mount["name"])
            .expect("the mounted volume exists");
        assert_eq!(
            volume["secret"]["secretName"], secret["metadata"]["name"],
            "{name}: {dir} is not the example Secret"
        );
        assert!(
            secret["stringData"].get(key).is_some(),
            "{name}: the Secret has no key {key}"
        );
    }
    assert!(files >= 2, "the Deployment reads no secret file");
}

#[test]
fn the_example_secret_holds_placeholders_only() {
    assert!(read(EXAMPLE_SECRET).starts_with("# EXAMPLE ONLY"));
    let secret = kubernetes_object("Secret");
    assert!(secret.get("data").is_none(), "use stringData placeholders");
    for (key, value) in secret["stringData"].as_object().unwrap() {
        assert!(
            value.as_str().is_some_and(|v| v.starts_with("REPLACE-")),
            "{key} is not a REPLACE-... placeholder"
        );
    }
}

#[test]
fn no_secret_value_is_written_into_the_deployment_the_unit_or_its_env_file() {
    let mut settings: Vec<(String, String)> =
        container_env(&exporter_container(&kubernetes_object("Deployment")));
    settings.extend(env_file(&read(UNIT_ENV)));
    for assignment in service_values(&unit_directives(&read(UNIT)), "Environment") {
        let (name, value) = assignment.split_once('=').unwrap();
        settings.push((name.to_owned(), value.to_owned()));
    }
    for (name, _) in settings {
        assert!(
            !is_secret_setting(&name),
            "{name} puts a secret into the environment; use {name}_FILE"
        );
    }
}

#[test]
fn the_binary_accepts_the_configuration_of_the_kubernetes_deployment() {
    let secrets = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> =
        container_env(&exporter_container(&kubernetes_object("Deployment")))
            .into_iter()
            .map(|(name, value)| {
                if !name.ends_with("_FILE") {
                    return (name, value);
                }
                // The same file name, in a directory that exists here.
                let file = secrets.path().join(Path::new(&value).file_name().unwrap());
                fs::write(&file, "placeholder-secret\n").unwrap();
                (name, file.to_string_lossy().into_owned())
            })
            .collect();
    let output = check_config(&env);
    let text = combined(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("2 account(s)") && text.contains("toko-pusat") && text.contains("ppob-utama"),
        "{text}"
    );
}

/// The environment the unit gives the exporter: its env file (with `uncomment`ed lines that
/// start with one of those prefixes), the secret files placed where `LoadCredential=` of the
/// credentials directory puts them (`/run/credentials/<unit>/saldo_<file>`), here in `dir`.
fn systemd_environment(dir: &Path, uncomment: &[&str]) -> Vec<(String, String)> {
    let directives = unit_directives(&read(UNIT));
    let loaded = service_values(&directives, "LoadCredential");
    assert_eq!(
        loaded,
        ["saldo:/etc/saldo_exporter/credentials"],
        "one credential directory, so any set of suppliers works"
    );
    const CREDENTIALS: &str = "/run/credentials/saldo_exporter.service/saldo_";
    let text: String = read(UNIT_ENV)
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if uncomment.iter().any(|p| rest.starts_with(p)) => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    env_file(&text)
        .into_iter()
        .map(|(name, value)| {
            if !name.ends_with("_FILE") {
                return (name, value);
            }
            let file = value
                .strip_prefix(CREDENTIALS)
                .unwrap_or_else(|| panic!("{name} should name a credential: {CREDENTIALS}<file>"));
            let path = dir.join(format!("saldo_{file}"));
            fs::write(&path, "placeholder-secret\n").unwrap();
            (name, path.to_string_lossy().into_owned())
        })
        .collect()
}

#[test]
fn the_binary_accepts_the_systemd_configuration_with_one_supplier_or_two() {
    let credentials = tempfile::tempdir().unwrap();
    let env = systemd_environment(credentials.path(), &[]);
    let output = check_config(&env);
    let text = combined(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("1 account(s)") && text.contains("toko-pusat"),
        "{text}"
    );

    let credentials = tempfile::tempdir().unwrap();
    let env = systemd_environment(credentials.path(), &["SALDO_AYOPOP_"]);
    let output = check_config(&env);
    let text = combined(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("2 account(s)") && text.contains("toko-pusat") && text.contains("ppob-utama"),
        "{text}"
    );
}

#[test]
fn the_systemd_unit_is_sandboxed_and_restarts_on_failure() {
    let directives = unit_directives(&read(UNIT));
    let expected = [
        ("ExecStart", BINARY_PATH),
        ("EnvironmentFile", "-/etc/default/saldo_exporter"),
        ("Restart", "on-failure"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("SystemCallArchitectures", "native"),
    ];
    for (key, value) in expected {
        assert_eq!(
            service_values(&directives, key),
            [value],
            "{UNIT}: expected exactly {key}={value}"
        );
    }
    assert_eq!(
        service_values(&directives, "SystemCallFilter").first(),
        Some(&"@system-service")
    );
    assert!(!service_values(&directives, "LoadCredential").is_empty());
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    if !require_tool("systemd-analyze") {
        return;
    }
    // verify insists that ExecStart= exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("saldo_exporter.service");
    let text = read(UNIT).replace(
        &format!("ExecStart={BINARY_PATH}"),
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_saldo_exporter")),
    );
    fs::write(&unit, text).unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", unit.to_str().unwrap()])
        .output()
        .expect("systemd-analyze runs");
    let text = combined(&output);
    // Unknown or misspelt directives are only warnings, on lines naming the unit file.
    let complaints: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("saldo_exporter.service"))
        .collect();
    assert!(
        output.status.success() && complaints.is_empty(),
        "systemd-analyze verify {UNIT}:\n{text}"
    );
}

#[test]
fn the_dockerfile_builds_locked_and_runs_unprivileged_with_an_exec_form_healthcheck() {
    let instructions = dockerfile_instructions();
    let build = instructions
        .iter()
        .find(|(i, args)| i == "RUN" && args.contains("cargo build --release --locked"))
        .map(|(_, args)| args.as_str())
        .expect("the build must use --locked");
    // glibc linked statically (bench/notes.md: 1.3 MiB less resident memory), which works only
    // with an explicit --target; the binary is then under target/<triple>/release. Relative
    // relocations packed: 0.5 MiB less resident.
    const RUSTFLAGS: &str = "-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs";
    assert!(
        build.contains(&format!(r#"RUSTFLAGS="{RUSTFLAGS}""#))
            && build.contains(r#"--target "${triple}""#)
            && build.contains(r#""target/${triple}/release/saldo_exporter""#),
        "the image's binary should be built static, as bench/run.sh builds it: {build}"
    );
    let bench = read("bench/run.sh");
    assert!(
        bench.contains(RUSTFLAGS) && bench.contains(r#"--target "$triple""#),
        "bench/run.sh should measure the binary the image ships"
    );
    let stages: Vec<&str> = instructions
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, args)| args.as_str())
        .collect();
    assert!(stages.len() >= 2, "the Dockerfile should be multi-stage");
    // Name services beyond files and DNS would come from the runtime's glibc: build on the
    // runtime's Debian release, not a newer one.
    assert!(stages[0].contains("bookworm") && stages.last().unwrap().contains("debian12"));

    let last = final_stage(&instructions);
    let values = |name: &str| -> Vec<&str> {
        last.iter()
            .filter(|(i, _)| i == name)
            .map(|(_, args)| args.as_str())
            .collect()
    };
    let user = *values("USER").last().expect("the image sets a USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER {user} should be a numeric non-root id (runAsNonRoot can check only numbers)"
    );
    assert_eq!(values("EXPOSE"), ["9866"]);
    let healthcheck = values("HEALTHCHECK");
    assert_eq!(healthcheck.len(), 1);
    assert_eq!(exec_form(healthcheck[0]), [BINARY_PATH, "healthcheck"]);
    assert_eq!(exec_form(values("ENTRYPOINT")[0]), [BINARY_PATH]);

    let labels = values("LABEL").join(" ");
    for key in ["title", "description", "source", "version", "revision"] {
        assert!(
            labels.contains(&format!("org.opencontainers.image.{key}=")),
            "no {key} label"
        );
    }
    assert!(labels.contains("org.opencontainers.image.licenses=\"Apache-2.0\""));
    assert!(
        values("ARG").contains(&concat!("VERSION=", env!("CARGO_PKG_VERSION"))),
        "the image's default VERSION should be the crate's"
    );
}

#[test]
fn the_docker_build_context_leaves_out_target_and_git() {
    let ignored: Vec<String> = read(DOCKERIGNORE)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('/')
                .trim_end_matches('/')
                .to_owned()
        })
        .collect();
    for needed in ["target", ".git"] {
        assert!(
            ignored.iter().any(|l| l == needed),
            "{needed} is not ignored"
        );
    }
    for kept in ["src", "Cargo.toml", "Cargo.lock", "build.rs"] {
        assert!(
            !ignored.iter().any(|l| l == kept),
            "{kept} must reach the build"
        );
    }
}
