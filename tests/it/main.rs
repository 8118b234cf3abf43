//! One test binary for (almost) every integration test: each `tests/<name>.rs` is a module
//! here, so the suite links once instead of ~40 times (each binary is the whole crate and
//! its dependencies). The files stay where they are and keep their names; a test is
//! addressed as `<file>::<test>`, e.g. `cargo test --test it e2e_rules::rule_1`.
//!
//! Kept apart, each its own binary (see Cargo.toml): the live suite (`live_freeswitch`,
//! which CI runs against the real switch) and the load suites (`e2e_load`, `esl_load`,
//! `sim_load`), so they never share the machine with the rest of the suite.
//!
//! A new test file is added here as a module, or it does not run (`autotests = false`).
//!
//! The support modules (`e2e_support`, `api_support`, …) are modules of this binary,
//! compiled once; a test file uses them as `crate::e2e_support::…`.

// The harnesses, compiled once for the whole binary; test files reach them as
// `crate::<name>_support`. (The live and load binaries declare the ones they use.)
#[path = "../agi_support/mod.rs"]
mod agi_support;
#[path = "../api_support/mod.rs"]
mod api_support;
#[path = "../common/mod.rs"]
mod common;
#[path = "../e2e_support/mod.rs"]
mod e2e_support;
#[path = "../esl_support/mod.rs"]
mod esl_support;
#[path = "../live_support/mod.rs"]
mod live_support;
#[path = "../outbox_support/mod.rs"]
mod outbox_support;
#[path = "../pg_support/mod.rs"]
mod pg_support;
#[path = "../sim_support/mod.rs"]
mod sim_support;
#[path = "../store_support/mod.rs"]
mod store_support;

#[path = "../agi_protocol.rs"]
mod agi_protocol;
#[path = "../ami_client.rs"]
mod ami_client;
#[path = "../api_metrics.rs"]
mod api_metrics;
#[path = "../api_recordings.rs"]
mod api_recordings;
#[path = "../api_rest.rs"]
mod api_rest;
#[path = "../api_shutdown.rs"]
mod api_shutdown;
#[path = "../check_cli.rs"]
mod check_cli;
#[path = "../compose_file.rs"]
mod compose_file;
#[path = "../config_cli.rs"]
mod config_cli;
#[path = "../config_load.rs"]
mod config_load;
#[path = "../demo_cli.rs"]
mod demo_cli;
#[path = "../demo_example_app.rs"]
mod demo_example_app;
#[path = "../document_dial.rs"]
mod document_dial;
#[path = "../document_flows.rs"]
mod document_flows;
#[path = "../document_props.rs"]
mod document_props;
#[path = "../document_voxml.rs"]
mod document_voxml;
#[path = "../document_xml.rs"]
mod document_xml;
#[path = "../e2e_asterisk.rs"]
mod e2e_asterisk;
#[path = "../e2e_bad_input.rs"]
mod e2e_bad_input;
#[path = "../e2e_dial.rs"]
mod e2e_dial;
#[path = "../e2e_events.rs"]
mod e2e_events;
#[path = "../e2e_rules.rs"]
mod e2e_rules;
#[path = "../e2e_voxml.rs"]
mod e2e_voxml;
#[path = "../engine_gather.rs"]
mod engine_gather;
#[path = "../engine_properties.rs"]
mod engine_properties;
#[path = "../engine_record.rs"]
mod engine_record;
#[path = "../engine_rules.rs"]
mod engine_rules;
#[path = "../engine_switch_neutral.rs"]
mod engine_switch_neutral;
#[path = "../esl_inbound.rs"]
mod esl_inbound;
#[path = "../esl_outbound.rs"]
mod esl_outbound;
#[path = "../esl_props.rs"]
mod esl_props;
#[path = "../esl_replay.rs"]
mod esl_replay;
#[path = "../fetch_http.rs"]
mod fetch_http;
#[path = "../fleet_nodes.rs"]
mod fleet_nodes;
#[path = "../fleet_switches.rs"]
mod fleet_switches;
#[path = "../gather_documents.rs"]
mod gather_documents;
#[path = "../gather_rules.rs"]
mod gather_rules;
#[path = "../layers.rs"]
mod layers;
#[path = "../live_caller_leg.rs"]
mod live_caller_leg;
#[path = "../outbound_calls.rs"]
mod outbound_calls;
#[path = "../outbox_delivery.rs"]
mod outbox_delivery;
#[path = "../outbox_kill.rs"]
mod outbox_kill;
#[path = "../postcall_once.rs"]
mod postcall_once;
#[path = "../record_rules.rs"]
mod record_rules;
#[path = "../sim_behaviour.rs"]
mod sim_behaviour;
#[path = "../sim_caller.rs"]
mod sim_caller;
#[path = "../sim_fidelity.rs"]
mod sim_fidelity;
#[path = "../store_behaviour.rs"]
mod store_behaviour;
#[path = "../store_postgres.rs"]
mod store_postgres;
#[path = "../store_reconcile.rs"]
mod store_reconcile;
#[path = "../store_recordings.rs"]
mod store_recordings;
#[path = "../store_retention.rs"]
mod store_retention;
#[path = "../store_safety.rs"]
mod store_safety;
#[path = "../store_sqlite.rs"]
mod store_sqlite;

/// With `autotests = false` a test file that is neither a module here nor its own `[[test]]`
/// would silently never run: this fails instead.
#[test]
fn every_test_file_is_in_a_test_binary() {
    let root = env!("CARGO_MANIFEST_DIR");
    let grouped = include_str!("main.rs");
    let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(format!("{root}/tests")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".rs") else {
            continue;
        };
        let as_module = format!("#[path = \"../{name}\"]\nmod {stem};");
        let as_binary = format!("path = \"tests/{name}\"");
        if !grouped.contains(&as_module) && !manifest.contains(&as_binary) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "test files in no test binary: {missing:?}"
    );
}
