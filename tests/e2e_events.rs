//! SPEC §9: voxbridge subscribes to no event it does not use. `myevents` brings every
//! channel event; the handshake drops the unused ones with `nixevent`, so the switch
//! neither builds nor sends them.

mod e2e_support;

use e2e_support::{report, ringing, sim, App, Server, ServerOptions};
use voxbridge::call::freeswitch::UNUSED_EVENTS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_events_the_driver_reads_are_subscribed() {
    let app = App::start().await;
    let server = Server::start(&app, ServerOptions::default()).await;
    let url = app.xml(
        "/doc/events",
        "<Response><Speak>hello</Speak><Hangup reason=\"busy\"/></Response>",
    );
    let r = report(sim(20.0).place_call(ringing(&url), server.esl)).await;

    let nix = r
        .commands
        .iter()
        .find(|c| c.starts_with("nixevent"))
        .expect("a nixevent command at the handshake");
    for name in UNUSED_EVENTS {
        assert!(
            nix.split_whitespace().any(|w| w == *name),
            "{name} not nixed: {nix}"
        );
    }
    for name in [
        "CHANNEL_EXECUTE",
        "CHANNEL_STATE",
        "CHANNEL_PARK",
        "CHANNEL_UNPARK",
    ] {
        assert!(
            !r.events.iter().any(|e| e == name),
            "{name} still sent: {:?}",
            r.events
        );
    }
    for name in [
        "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
    ] {
        assert!(
            r.events.iter().any(|e| e == name),
            "{name} missing: {:?}",
            r.events
        );
    }
    // And the call still ends as the document says.
    assert_eq!(
        r.bye_cause(),
        Some(voxbridge::cause::HangupCause::USER_BUSY)
    );
    let cb = app.hangup_callback(&r.uuid).await;
    assert_eq!(cb.must("HangupCause"), "USER_BUSY");
}
