//! The stress scenario (issue 9): many looped-back SIP calls at a steady rate through one
//! voxbridge, every one checked — the caller's outcome, its hangup callback, its CDR —
//! and afterwards none of them left on the switch.
//!
//! The calls cycle through four short flows (refused busy, refused rejected, answered
//! tone then Hangup, answered by the dialplan then end of document), so the stress covers
//! both extensions, both ways of ending and both SIP outcomes. The harness's one inbound
//! ESL session ([`Switchboard`]) places every call and reads every A-leg's end.
//!
//! "Nothing left": on a real switch `show channels as json` lists no channel of ours (by
//! A-leg uuid, voxbridge's CallUUID or our caller number); the simulator has no `show`
//! command, so there every uuid is asked with `uuid_exists`.

use super::app::TagLog;
use super::caller::{LegEnd, Switchboard};
use super::rest::Rest;
use super::scenarios::{Doc, Ext};
use super::Harness;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The stress scenario's name (its live test).
pub const NAME: &str = "stress_200_calls_at_50_per_second_all_called_back_none_left_on_the_switch";

/// How many calls, how fast.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub calls: usize,
    pub per_second: f64,
}

/// The issue's figure, on both backends: the simulator carries it in a few seconds
/// too, so it runs the same plan rather than a smaller one.
pub const PLAN: Plan = Plan {
    calls: 200,
    per_second: 50.0,
};

/// One of the flows the calls cycle through, and what it must end with.
struct Flow {
    ext: Ext,
    doc: &'static str,
    /// `+OK` (answered) or `-ERR <cause>`.
    originate_ok: bool,
    cause: &'static str,
    cause_name: &'static str,
}

const FLOWS: [Flow; 4] = [
    Flow {
        ext: Ext::Ringing,
        doc: r#"<Response><Hangup reason="busy"/></Response>"#,
        originate_ok: false,
        cause: "USER_BUSY",
        cause_name: "Busy Line",
    },
    Flow {
        ext: Ext::Ringing,
        doc: "<Response><Play>tone_stream://%(500,0,350,440)</Play><Hangup/></Response>",
        originate_ok: true,
        cause: "NORMAL_CLEARING",
        cause_name: "Normal Hangup",
    },
    Flow {
        ext: Ext::Ringing,
        doc: "<Response><Hangup/></Response>",
        originate_ok: false,
        cause: "CALL_REJECTED",
        cause_name: "Rejected",
    },
    Flow {
        ext: Ext::Answered,
        doc: "<Response><Play>tone_stream://%(500,0,350,440)</Play></Response>",
        originate_ok: true,
        cause: "NORMAL_CLEARING",
        cause_name: "End Of XML Instructions",
    },
];

/// What happened to one call of the run.
struct Placed {
    flow: usize,
    tag: String,
    a_uuid: String,
    originate: Result<String, String>,
    leg: Result<LegEnd, String>,
}

/// Runs the plan; `Ok` carries the figures line, `Err` the report of what went wrong.
pub async fn run(h: &Harness, plan: Plan) -> Result<String, String> {
    let board = h.board.clone();
    // The switch's own count while the calls run (no `show` on the simulator).
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = (h.backend != "simulator")
        .then(|| tokio::spawn(sample_channels(board.clone(), peak.clone())));
    let interval = Duration::from_secs_f64(1.0 / plan.per_second);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..plan.calls {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let flow = i % FLOWS.len();
        let tag = super::next_tag();
        h.app
            .register(&tag, &[Doc::Xml(FLOWS[flow].doc.to_string())]);
        let board = board.clone();
        set.spawn(async move {
            let a_uuid = uuid::Uuid::new_v4().to_string();
            let ext = FLOWS[flow].ext.number();
            let (originate, leg) = match board.caller(&a_uuid).await {
                Ok(mut caller) => {
                    caller.originate(&tag, ext, 20);
                    let within = Duration::from_secs(40);
                    let originate = caller.originate_result(within).await;
                    let leg = caller.leg_end(within).await;
                    caller.cleanup().await;
                    (originate, leg)
                }
                Err(e) => (Err(e), Err("never placed".into())),
            };
            Placed {
                flow,
                tag,
                a_uuid,
                originate,
                leg,
            }
        });
    }
    let sent_over = start.elapsed();
    let mut placed = Vec::with_capacity(plan.calls);
    while let Some(done) = set.join_next().await {
        match done {
            Ok(p) => placed.push(p),
            Err(e) => return Err(format!("a caller task died: {e}")),
        }
    }
    let calls_over = start.elapsed();
    let peak = sampler.map(|s| {
        s.abort();
        peak.load(Ordering::Relaxed)
    });
    // ---- every call's hangup callback, then its CDR
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut logs: Vec<TagLog> = Vec::with_capacity(placed.len());
    for p in &placed {
        let left = deadline.saturating_duration_since(Instant::now());
        let (_, log) = h
            .app
            .wait_for(&p.tag, left, |l| !l.hangups.is_empty())
            .await;
        logs.push(log);
    }
    let callbacks_over = start.elapsed();
    let rest = Rest::new(h.vb.account_url());
    let mut problems: Vec<String> = Vec::new();
    let (mut answered_right, mut callbacks, mut cdrs) = (0, 0, 0);
    let mut ours: HashSet<String> = HashSet::new();
    let tags: HashSet<&str> = placed.iter().map(|p| p.tag.as_str()).collect();
    for (p, log) in placed.iter().zip(&logs) {
        let flow = &FLOWS[p.flow];
        let who = format!("call {} (A-leg {}, flow {})", p.tag, p.a_uuid, p.flow);
        ours.insert(p.a_uuid.clone());
        let originate_right = match &p.originate {
            Ok(r) if flow.originate_ok => r.starts_with("+OK"),
            Ok(r) => r == &format!("-ERR {}", flow.cause),
            Err(_) => false,
        };
        let leg_cause = p.leg.as_ref().ok().and_then(|l| l.event.hangup_cause());
        if originate_right && leg_cause == Some(flow.cause) {
            answered_right += 1;
        } else {
            problems.push(format!(
                "{who}: originate {:?}, caller's leg {:?}, expected {} / {}",
                p.originate,
                p.leg
                    .as_ref()
                    .map(|l| l.event.hangup_cause().unwrap_or("-")),
                if flow.originate_ok { "+OK" } else { "-ERR" },
                flow.cause
            ));
        }
        let Some(cb) = log.hangups.first() else {
            problems.push(format!("{who}: no hangup callback within 30 s"));
            continue;
        };
        let ids: HashSet<&str> = log
            .hangups
            .iter()
            .filter_map(|c| c.get("DeliveryID"))
            .collect();
        if cb.get("HangupCause") == Some(flow.cause)
            && cb.get("HangupCauseName") == Some(flow.cause_name)
            && cb.get("HangupSource") == Some("Answer XML")
            && ids.len() == 1
        {
            callbacks += 1;
        } else {
            problems.push(format!(
                "{who}: hangup callback HangupCause={:?} HangupCauseName={:?} HangupSource={:?} \
                 ({} DeliveryIDs), expected {} {:?} Answer XML",
                cb.get("HangupCause"),
                cb.get("HangupCauseName"),
                cb.get("HangupSource"),
                ids.len(),
                flow.cause,
                flow.cause_name
            ));
        }
        let Some(uuid) = cb.get("CallUUID") else {
            problems.push(format!("{who}: the hangup callback has no CallUUID"));
            continue;
        };
        ours.insert(uuid.to_string());
        match rest.get(&format!("Call/{uuid}/")).await {
            Ok(r) if r.status == 200 && r.json["hangup_cause"] == flow.cause => cdrs += 1,
            Ok(r) => problems.push(format!(
                "{who}: CDR {uuid}: {} {}, expected 200 with hangup_cause {}",
                r.status, r.text, flow.cause
            )),
            Err(e) => problems.push(format!("{who}: {e}")),
        }
    }
    // ---- nothing of ours left on the switch
    let (left, switch_count) = leftovers(h, &board, &ours, &tags).await;
    if !left.is_empty() {
        problems.push(format!(
            "{} channels of this run still on the switch: {left:?}",
            left.len()
        ));
    }
    let figures = format!(
        "[{}] stress: {} calls at {}/s (originates sent over {:.2} s{}): {} ended as their flow \
         says, {} hangup callbacks, {} CDRs, {} channels left{}; all calls over after {:.1} s, \
         last callback after {:.1} s",
        h.backend,
        plan.calls,
        plan.per_second,
        sent_over.as_secs_f64(),
        peak.map(|p| format!(", at most {p} channels up on the switch"))
            .unwrap_or_default(),
        answered_right,
        callbacks,
        cdrs,
        left.len(),
        switch_count
            .map(|c| format!(" (show channels count: {c})"))
            .unwrap_or_default(),
        calls_over.as_secs_f64(),
        callbacks_over.as_secs_f64(),
    );
    if problems.is_empty() {
        Ok(figures)
    } else {
        let shown = problems.len().min(15);
        Err(format!(
            "[{}] {NAME}\n  {figures}\n  {} problems, the first {shown}:\n   - {}\n  voxbridge log (tail):\n{}",
            h.backend,
            problems.len(),
            problems[..shown].join("\n   - "),
            h.vb.log_tail(30)
        ))
    }
}

/// Channels of this run still on the switch (polled for up to 10 s: a channel is
/// destroyed shortly after its HANGUP_COMPLETE), and the switch's `show channels count`
/// line when it has the command.
async fn leftovers(
    h: &Harness,
    board: &Switchboard,
    ours: &HashSet<String>,
    tags: &HashSet<&str>,
) -> (Vec<String>, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (left, count) = if h.backend == "simulator" {
            // No `show` on the simulator: ask for each channel.
            let mut left = Vec::new();
            for uuid in ours {
                match board.api(&format!("uuid_exists {uuid}")).await {
                    Ok(r) if r.trim() == "false" => {}
                    Ok(r) => left.push(format!("{uuid} (uuid_exists: {})", r.trim())),
                    Err(e) => left.push(format!("{uuid} ({e})")),
                }
            }
            (left, None)
        } else {
            let json = board.api("show channels as json").await;
            let count = board
                .api("show channels count")
                .await
                .ok()
                .map(|c| c.trim().to_string());
            let left = match json {
                Err(e) => vec![e],
                Ok(text) => match serde_json::from_str::<serde_json::Value>(text.trim()) {
                    Err(e) => vec![format!("show channels as json: {e}: {text}")],
                    Ok(v) => v["rows"]
                        .as_array()
                        .map(|rows| {
                            rows.iter()
                                .filter(|r| {
                                    let field = |n: &str| r[n].as_str().unwrap_or("");
                                    ours.contains(field("uuid")) || tags.contains(field("cid_num"))
                                })
                                .map(|r| {
                                    format!(
                                        "{} {} {}",
                                        r["uuid"].as_str().unwrap_or("?"),
                                        r["name"].as_str().unwrap_or("?"),
                                        r["callstate"].as_str().unwrap_or("?")
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                },
            };
            (left, count)
        };
        if left.is_empty() || Instant::now() >= deadline {
            return (left, count);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Keeps the highest `show channels count` seen (sampled every 250 ms) in `peak`.
async fn sample_channels(board: Arc<Switchboard>, peak: Arc<AtomicUsize>) {
    loop {
        if let Ok(text) = board.api("show channels count").await {
            let n = text
                .split_whitespace()
                .next()
                .and_then(|w| w.parse::<usize>().ok());
            if let Some(n) = n {
                peak.fetch_max(n, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
