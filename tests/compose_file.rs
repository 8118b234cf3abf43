//! `examples/docker-compose.yml` read as YAML and checked against what it wires together:
//! the shipped dialplan inside the stock FreeSWITCH image, the voxbridge image built by
//! `examples/Dockerfile`, and `examples/voxbridge.toml`. No Docker engine runs on CI, so
//! this is what keeps the files from drifting apart: the dialplan's `socket` address must
//! be voxbridge's ESL listener, the API must be on 8088, and voxbridge in its container
//! must find its config, its documents and a persistent store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use voxbridge::config::{cidr_allows, Config};
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> PathBuf {
    repo().join("examples")
}

fn compose() -> Yaml {
    let text = std::fs::read_to_string(examples().join("docker-compose.yml")).unwrap();
    let mut docs = YamlLoader::load_from_str(&text).expect("docker-compose.yml is YAML");
    assert_eq!(docs.len(), 1, "one YAML document");
    docs.remove(0)
}

fn service<'a>(compose: &'a Yaml, name: &str) -> &'a Yaml {
    let s = &compose["services"][name];
    assert!(!s.is_badvalue(), "service {name} is missing");
    s
}

/// `source:target[:mode]` short-syntax volumes of a service, as (source, target, read_only).
fn volumes(service: &Yaml) -> Vec<(String, String, bool)> {
    service["volumes"]
        .as_vec()
        .expect("volumes is a list")
        .iter()
        .map(|v| {
            let text = v.as_str().expect("short volume syntax");
            let parts: Vec<&str> = text.split(':').collect();
            assert!(
                (2..=3).contains(&parts.len()),
                "volume {text:?}: expected source:target[:ro]"
            );
            (
                parts[0].to_string(),
                parts[1].to_string(),
                parts.get(2) == Some(&"ro"),
            )
        })
        .collect()
}

/// The service's environment (map syntax), values as strings.
fn environment(service: &Yaml) -> Vec<(String, String)> {
    service["environment"]
        .as_hash()
        .expect("environment is a map")
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                other => panic!("environment value {other:?} is not a string"),
            };
            (k.as_str().unwrap().to_string(), value)
        })
        .collect()
}

/// The `socket` addresses of the shipped dialplan.
fn dialplan_sockets() -> Vec<String> {
    let xml = std::fs::read_to_string(repo().join("dialplan/freeswitch/voxbridge.xml")).unwrap();
    let re = regex::Regex::new(r#"<action\s+application="socket"\s+data="([^"]*)""#).unwrap();
    let sockets: Vec<String> = re.captures_iter(&xml).map(|c| c[1].to_string()).collect();
    assert!(!sockets.is_empty(), "the dialplan has socket actions");
    sockets
}

/// What the final stage of the Dockerfile sets up.
#[derive(Debug, Default)]
struct Image {
    workdir: String,
    /// (source in the build context, destination in the image)
    copies: Vec<(String, String)>,
    env: Vec<(String, String)>,
    volumes: Vec<String>,
    cmd: Vec<String>,
}

fn image() -> Image {
    let text = std::fs::read_to_string(examples().join("Dockerfile")).unwrap();
    let mut image = Image::default();
    for line in text.lines().map(str::trim) {
        let (instr, rest) = line.split_once(' ').unwrap_or((line, ""));
        match instr {
            "FROM" => image = Image::default(), // only the final stage counts
            "WORKDIR" => image.workdir = rest.trim().to_string(),
            "COPY" if !rest.starts_with("--from") => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                if let [src, dst] = parts[..] {
                    image.copies.push((src.to_string(), dst.to_string()));
                }
            }
            "ENV" => {
                let (k, v) = rest.split_once('=').expect("ENV key=value");
                image.env.push((k.trim().to_string(), v.trim().to_string()));
            }
            "VOLUME" => image.volumes.push(rest.trim().to_string()),
            "CMD" => {
                let json: serde_json::Value = serde_json::from_str(rest).expect("CMD [..]");
                image.cmd = json
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
            }
            _ => {}
        }
    }
    image
}

/// Where a path inside the voxbridge container comes from on the host: a compose
/// bind mount (source relative to examples/) wins over a COPY into the image (source
/// relative to the repository root, the build context). `None`: nothing provides it.
fn host_path_of(
    container_path: &str,
    mounts: &[(String, String, bool)],
    image: &Image,
) -> Option<PathBuf> {
    let from = |target: &str, base: &Path, source: &str| {
        let rest = container_path.strip_prefix(target)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let provided = base.join(source);
        Some(match rest.trim_start_matches('/') {
            "" => provided,
            rest => provided.join(rest),
        })
    };
    mounts
        .iter()
        .filter(|(source, _, _)| source.starts_with('.'))
        .find_map(|(source, target, _)| from(target, &examples(), source))
        .or_else(|| {
            image
                .copies
                .iter()
                .find_map(|(source, target)| from(target, &repo(), source))
        })
}

#[test]
fn freeswitch_runs_the_shipped_dialplan_and_reaches_voxbridge_esl() {
    let compose = compose();
    let fs = service(&compose, "freeswitch");
    let vb = service(&compose, "voxbridge");
    let image = fs["image"].as_str().expect("freeswitch uses a stock image");
    assert!(
        image.contains("freeswitch:") && fs["build"].is_badvalue(),
        "a stock FreeSWITCH image, pinned: {image}"
    );
    // Host networking on both sides is what makes 127.0.0.1 in the dialplan reach voxbridge.
    for (name, s) in [("freeswitch", fs), ("voxbridge", vb)] {
        assert_eq!(s["network_mode"].as_str(), Some("host"), "{name}");
    }

    let dialplan = repo().join("dialplan/freeswitch/voxbridge.xml");
    let mounted: Vec<_> = volumes(fs)
        .into_iter()
        .filter(|(source, _, _)| {
            examples().join(source).canonicalize().ok() == dialplan.canonicalize().ok()
        })
        .collect();
    assert!(
        !mounted.is_empty(),
        "the shipped dialplan is mounted into FreeSWITCH"
    );
    for (_, target, read_only) in &mounted {
        assert!(
            target.starts_with("/etc/freeswitch/dialplan/") && target.ends_with(".xml"),
            "mounted where the vanilla contexts include it: {target}"
        );
        assert!(read_only, "{target} is mounted read-only");
    }
    assert!(
        mounted
            .iter()
            .any(|(_, t, _)| t.starts_with("/etc/freeswitch/dialplan/public/")),
        "the public context (calls from outside) has the extensions"
    );

    // The address the switch connects to is the one voxbridge listens on.
    let env = environment(vb);
    let esl = env
        .iter()
        .find(|(k, _)| k == "VOXBRIDGE_ESL_LISTEN")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    for socket in dialplan_sockets() {
        let address = socket.split_whitespace().next().unwrap();
        assert_eq!(
            address, esl,
            "dialplan `socket {socket}` vs VOXBRIDGE_ESL_LISTEN"
        );
        assert!(
            socket.contains("async full"),
            "socket {socket}: voxbridge needs async full"
        );
        let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(port, 8084);
    }
}

#[test]
fn voxbridge_in_its_container_finds_config_documents_and_store() {
    let compose = compose();
    let vb = service(&compose, "voxbridge");
    assert_eq!(
        vb["build"]["context"].as_str(),
        Some(".."),
        "the repository is the build context"
    );
    let dockerfile = vb["build"]["dockerfile"].as_str().unwrap();
    assert!(repo().join(dockerfile).is_file(), "{dockerfile} exists");
    assert_eq!(
        repo().join(dockerfile).canonicalize().unwrap(),
        examples().join("Dockerfile").canonicalize().unwrap()
    );
    let image = image();
    let mounts = volumes(vb);

    // Every file the image's build COPYs exists in the build context.
    for (source, _) in &image.copies {
        assert!(
            repo().join(source).exists(),
            "COPY {source}: missing in the repository"
        );
    }

    // The config the CMD names is provided (mounted or copied) and loads with the
    // image's and the compose file's environment — so their variable names are real keys.
    let config_at = image
        .cmd
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1].clone())
        .expect("CMD passes --config");
    assert_eq!(image.cmd.first().map(String::as_str), Some("serve"));
    let config_file = host_path_of(&config_at, &mounts, &image)
        .unwrap_or_else(|| panic!("nothing provides {config_at} in the container"));
    assert!(config_file.is_file(), "{}", config_file.display());
    let mut env: Vec<(String, String)> = image.env.clone();
    env.extend(environment(vb));
    let config = Config::load_with_env(Some(&config_file), env.clone())
        .unwrap_or_else(|e| panic!("the container's configuration does not load: {e}"));

    assert_eq!(config.esl.listen.to_string(), "127.0.0.1:8084");
    assert_eq!(config.api.listen.port(), 8088, "REST API on 8088");
    assert!(
        cidr_allows(&config.esl.allow, "127.0.0.1".parse().unwrap()),
        "esl.allow admits the switch on the same host"
    );
    // Without the overrides the file says the same (a tester running it outside Docker).
    let plain = Config::load_with_env(Some(&config_file), Vec::new()).unwrap();
    assert_eq!(plain.esl.listen, config.esl.listen);
    assert_eq!(plain.api.listen, config.api.listen);

    // Every file:// document the config routes to is there, relative to WORKDIR.
    let mut urls: Vec<&str> = config
        .routes
        .iter()
        .map(|r| r.answer_url.as_str())
        .collect();
    urls.push(&config.app.default_answer_url);
    urls.push(&config.app.fallback_answer_url);
    let files: Vec<&str> = urls
        .into_iter()
        .filter_map(|u| u.strip_prefix("file://"))
        .collect();
    assert!(
        !files.is_empty(),
        "the example config serves a document from disk"
    );
    for file in files {
        let in_container = if file.starts_with('/') {
            file.to_string()
        } else {
            format!("{}/{file}", image.workdir.trim_end_matches('/'))
        };
        let host = host_path_of(&in_container, &mounts, &image).unwrap_or_else(|| {
            panic!("file://{file}: nothing provides {in_container} in the container")
        });
        assert!(
            host.is_file(),
            "file://{file} -> {} missing",
            host.display()
        );
        // And from the repository root, as the config's own comment says.
        assert!(
            repo().join(file).is_file(),
            "file://{file} from the repository root"
        );
    }

    // The store is a file inside a volume, so CDRs and pending callbacks survive the
    // container being re-created.
    let store = config
        .store
        .url
        .strip_prefix("sqlite://")
        .expect("an SQLite store")
        .to_string();
    assert!(store.starts_with('/'), "an absolute store path: {store}");
    let named: HashMap<String, String> = mounts
        .iter()
        .filter(|(source, _, _)| !source.starts_with('.') && !source.starts_with('/'))
        .map(|(source, target, _)| (target.clone(), source.clone()))
        .collect();
    let (dir, volume) = named
        .iter()
        .find(|(target, _)| store.starts_with(&format!("{target}/")))
        .unwrap_or_else(|| panic!("the store {store} is not in a named volume: {named:?}"));
    assert!(
        !compose["volumes"][volume.as_str()].is_badvalue(),
        "volume {volume} is declared"
    );
    assert!(
        image.volumes.contains(dir),
        "the image declares VOLUME {dir}"
    );
}
