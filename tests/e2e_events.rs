//! SPEC §9: voxbridge subscribes to no event it does not use. `myevents` brings every
//! channel event; the handshake drops the unused ones with `nixevent`, so the switch
//! neither builds nor sends them.

mod e2e_support;

use e2e_support::{report, ringing, App, Server, ServerOptions};
use std::time::Duration;
use voxbridge::call::freeswitch::UNUSED_EVENTS;
use voxbridge_sim::{Sim, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_events_the_driver_reads_are_subscribed() {
    let app = App::start().await;
    let server = Server::start(&app, ServerOptions::default()).await;
    let url = app.xml(
        "/doc/events",
        "<Response><Speak>hello</Speak><Hangup reason=\"busy\"/></Response>",
    );
    // The channel parks at the first sendmsg, after the handshake's nixevent, so its
    // CHANNEL_PARK must be filtered by the switch. With the default park delay the park
    // races the handshake: on the switch, too, the socket app parks as soon as `connect`
    // arrives (reference §2.1), so CHANNEL_PARK may come before the nixevent (the driver
    // ignores it), and a test of the nix must not depend on which one wins.
    let sim = Sim::new(SimConfig {
        speed: 20.0,
        park_delay: Duration::from_secs(3600),
        ..SimConfig::default()
    });
    let r = report(sim.place_call(ringing(&url), server.esl)).await;
    assert!(
        r.commands.iter().position(|c| c.starts_with("nixevent"))
            < r.commands.iter().position(|c| c.starts_with("sendmsg")),
        "the nixevent comes before the first sendmsg (the park): {:?}",
        r.commands
    );

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
