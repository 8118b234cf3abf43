//! Records FastAGI transcripts from the bundled Asterisk (`../shared/asterisk/`), in the
//! format of `tests/fixtures/agi/` (see its README), so the Asterisk driver is built on
//! what the switch really sends and the replay tests have ground truth.
//!
//! ```sh
//! ../shared/asterisk/ast start
//! flock /tmp/fs-live.lock cargo run --example agi_capture -- busy     # writes tests/fixtures/agi/busy.txt
//! cargo run --example agi_capture -- --list
//! ```
//!
//! The tool plays both ends the live suite plays: the **caller** is FreeSWITCH (inbound ESL
//! 127.0.0.1:8021, `originate sofia/external/<ext>@127.0.0.1:5070 &park()`), whose A-leg's
//! CHANNEL_HANGUP_COMPLETE shows the SIP status the caller got; the **FastAGI server** listens
//! on 127.0.0.1:4573 (the bundle's AGI target) and runs a fixed script per scenario. The REST
//! hang-up scenario hangs the channel up through ARI (`DELETE /ari/channels/{uniqueid}`), as
//! the driver does.
//!
//! Lines are split on `\n` from the raw bytes (not with voxbridge's decoder, so a decoder bug
//! cannot shape the recording) and written one per transcript line:
//! `S <line>` from Asterisk, `C <line>` from the client, `# …` notes and timing
//! (`# +1.234s`), `! …` what happened outside the socket.

use anyhow::{anyhow, bail, Context, Result};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpListener;
use voxbridge::esl::counters::EslCounters;
use voxbridge::esl::inbound::{InboundOptions, InboundSession, SocketEvent};

const AGI_ADDR: &str = "127.0.0.1:4573";
const ARI: &str = "http://127.0.0.1:8090/ari";
const WAIT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy)]
enum Step {
    /// Send one command line and read until its reply (`200 …`/`5xx …`), noting HANGUPs.
    /// `{agi_channel}` in it becomes the caller's channel name (from the environment).
    Cmd(&'static str),
    /// Send a command line without waiting for its reply.
    Send(&'static str),
    /// Read whatever arrives for this long.
    Read(Duration),
    /// Hang the caller (the FreeSWITCH A-leg) up.
    CallerHangsUp,
    /// `DELETE /ari/channels/{agi_uniqueid}?reason_code=N`.
    AriHangup(u8),
    /// `GET /ari/channels/{agi_uniqueid}` (its state) or, with a name,
    /// `GET /ari/channels/{agi_uniqueid}/variable?variable=<name>`: what ARI sees while a
    /// FastAGI command runs.
    AriGet(Option<&'static str>),
    /// The caller (the FreeSWITCH A-leg) sends these DTMF digits (`uuid_send_dtmf`).
    CallerDtmf(&'static str),
    /// Over ARI, every other channel in the dialplan at this extension (the callee of a
    /// `Dial()` to `SIP/<ext>@self`, which loops back into the bundle): the value of this
    /// variable (`SIP_HEADER(<name>)` reads its received INVITE's header).
    AriCalleeVar(&'static str, &'static str),
    /// Close the FastAGI connection.
    Close,
}

/// A 5 s 440 Hz tone (8 kHz, 16-bit mono WAV) the Gather captures stream, since the bundle
/// ships no long sound; written before the call, named without its extension in commands.
const TONE_5S: &str = "/tmp/voxbridge-agi-capture-tone5s";

struct Scenario {
    name: &'static str,
    ext: &'static str,
    what: &'static str,
    steps: &'static [Step],
}

use Step::*;

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "busy",
        ext: "7001",
        what: "unanswered channel; EXEC Hangup 17; the caller gets 486 only once we close",
        steps: &[
            Cmd("EXEC Hangup 17"),
            Read(Duration::from_millis(500)),
            Cmd("GET VARIABLE HANGUPCAUSE"),
            Cmd("GET FULL VARIABLE ${CHANNEL(hangupsource)}"),
            Close,
        ],
    },
    Scenario {
        name: "rejected",
        ext: "7001",
        what: "unanswered channel; EXEC Hangup 21 (CALL_REJECTED): what chan_sip sends",
        steps: &[
            Cmd("EXEC Hangup 21"),
            Read(Duration::from_millis(500)),
            Cmd("GET VARIABLE HANGUPCAUSE"),
            Close,
        ],
    },
    Scenario {
        name: "answer-speak-hangup",
        ext: "7001",
        what: "ANSWER, Flite with commas/quotes/${…} in the text, Hangup 16",
        steps: &[
            Cmd("GET VARIABLE VOXBRIDGE_ANSWER_URL"),
            Cmd("ANSWER"),
            Cmd(r#"EXEC Flite "Hello\\, world. A \"quote\" and ${CHANNEL(name)}""#),
            Cmd("EXEC Hangup 16"),
            Read(Duration::from_millis(500)),
            Cmd("GET VARIABLE HANGUPCAUSE"),
            Cmd("GET FULL VARIABLE ${CHANNEL(hangupsource)}"),
            Close,
        ],
    },
    Scenario {
        name: "caller-hangup-playback",
        ext: "7000",
        what: "answered by the dialplan; Playback of 10 s; the caller hangs up after ~1.5 s",
        steps: &[
            Send("EXEC Playback silence/1&silence/1&silence/1&silence/1&silence/1&silence/1&silence/1&silence/1&silence/1&silence/1"),
            Read(Duration::from_millis(1500)),
            CallerHangsUp,
            Read(Duration::from_millis(1500)),
            Cmd("GET VARIABLE HANGUPCAUSE"),
            Cmd("GET FULL VARIABLE ${CHANNEL(hangupsource)}"),
            Cmd("ANSWER"),
            Close,
        ],
    },
    Scenario {
        name: "rest-hangup-playback",
        ext: "7000",
        what: "answered; Playback of 10 s; ARI DELETE /channels/{id}?reason_code=16 after ~1.5 s",
        steps: &[
            Send("EXEC Playback silence/1&silence/1&silence/1&silence/1&silence/1&silence/1&silence/1&silence/1&silence/1&silence/1"),
            Read(Duration::from_millis(1500)),
            AriHangup(16),
            Read(Duration::from_millis(1500)),
            Cmd("GET VARIABLE HANGUPCAUSE"),
            Cmd("GET FULL VARIABLE ${CHANNEL(hangupsource)}"),
            Close,
        ],
    },
    Scenario {
        name: "progress-wait-timeout",
        ext: "7001",
        what: "Progress (183), then TIMEOUT(absolute)=2 with HANGUPCAUSE preset, Wait 5: what the timeout does",
        steps: &[
            Cmd("EXEC Progress"),
            Cmd("SET VARIABLE TIMEOUT(absolute) 2"),
            Cmd("EXEC Wait 5"),
            Read(Duration::from_millis(500)),
            Cmd("GET VARIABLE HANGUPCAUSE"),
            Cmd("GET FULL VARIABLE ${CHANNEL(hangupsource)}"),
            Close,
        ],
    },
    Scenario {
        name: "gather-flite-barge-in",
        ext: "7000",
        what: "Flite with interrupt keys and a DTMF 1.5 s in; WAIT FOR DIGIT with a digit and without; a digit pressed between commands",
        steps: &[
            Send(r#"EXEC Flite "This prompt is long on purpose. It keeps on speaking for several seconds so that the caller has time to press a key while it plays. One two three four five six seven eight nine ten.,0123456789*#""#),
            Read(Duration::from_millis(1500)),
            CallerDtmf("5"),
            Read(Duration::from_millis(3000)),
            Send("WAIT FOR DIGIT 5000"),
            Read(Duration::from_millis(1000)),
            CallerDtmf("7"),
            Read(Duration::from_millis(2000)),
            Cmd("WAIT FOR DIGIT 500"),
            CallerDtmf("9"),
            Read(Duration::from_millis(1500)),
            Cmd("WAIT FOR DIGIT 1000"),
            Cmd("EXEC Hangup 16"),
            Read(Duration::from_millis(500)),
            Close,
        ],
    },
    Scenario {
        name: "gather-stream-file",
        ext: "7000",
        what: "STREAM FILE of a 5 s tone with escape digits and a DTMF ~1 s in; STREAM FILE to its end; a missing file",
        steps: &[
            Send(r#"STREAM FILE /tmp/voxbridge-agi-capture-tone5s "0123456789*#""#),
            Read(Duration::from_millis(1000)),
            CallerDtmf("#"),
            Read(Duration::from_millis(2000)),
            Cmd(r#"STREAM FILE silence/1 "0123456789*#""#),
            Cmd(r#"STREAM FILE /tmp/no-such-voxbridge-file "0123456789*#""#),
            Cmd("EXEC Hangup 16"),
            Read(Duration::from_millis(500)),
            Close,
        ],
    },
    Scenario {
        name: "dial-answered",
        ext: "7001",
        what: "ringing caller; EXEC Dial of 7004 (rings) and 7002 (answers) with L(3000); what the caller's variables say after",
        steps: &[
            Cmd(r#"SET VARIABLE CALLERID(num) "15550001111""#),
            Cmd(r#"EXEC Dial "SIP/7004@self&SIP/7002@self,10,L(3000)""#),
            Cmd("GET VARIABLE DIALSTATUS"),
            Cmd("GET VARIABLE HANGUPCAUSE"),
            Cmd("GET VARIABLE DIALEDPEERNAME"),
            Cmd("GET VARIABLE DIALEDPEERNUMBER"),
            Cmd("GET VARIABLE ANSWEREDTIME"),
            Cmd("GET VARIABLE DIALEDTIME"),
            Cmd("GET FULL VARIABLE ${HANGUPCAUSE_KEYS()}"),
            Cmd("GET FULL VARIABLE ${CHANNEL(state)}"),
            Cmd("EXEC Hangup 16"),
            Read(Duration::from_millis(500)),
            Close,
        ],
    },
    Scenario {
        name: "dial-busy",
        ext: "7001",
        what: "ringing caller; EXEC Dial of 7003 (Hangup(17) → 486); the caller is not answered",
        steps: &[
            Cmd(r#"EXEC Dial "SIP/7003@self,10""#),
            Cmd("GET VARIABLE DIALSTATUS"),
            Cmd("GET VARIABLE HANGUPCAUSE"),
            Cmd("GET VARIABLE DIALEDPEERNUMBER"),
            Cmd("GET FULL VARIABLE ${HANGUPCAUSE_KEYS()}"),
            Cmd("GET FULL VARIABLE ${CHANNEL(state)}"),
            Cmd("EXEC Hangup 17"),
            Read(Duration::from_millis(500)),
            Close,
        ],
    },
    Scenario {
        name: "dial-no-answer",
        ext: "7001",
        what: "ringing caller; EXEC Dial of 7004 (rings forever) with a 2 s ring timeout",
        steps: &[
            Cmd(r#"EXEC Dial "SIP/7004@self,2""#),
            Cmd("GET VARIABLE DIALSTATUS"),
            Cmd("GET VARIABLE HANGUPCAUSE"),
            Cmd("GET FULL VARIABLE ${HANGUPCAUSE_KEYS()}"),
            Cmd("GET FULL VARIABLE ${CHANNEL(state)}"),
            Cmd("EXEC Hangup 16"),
            Read(Duration::from_millis(500)),
            Close,
        ],
    },
    Scenario {
        name: "dial-caller-hangs-up",
        ext: "7000",
        what: "answered caller; EXEC Dial of 7002 (answers); the caller hangs up 2 s in",
        steps: &[
            Send(r#"EXEC Dial "SIP/7002@self,10""#),
            Read(Duration::from_millis(2000)),
            CallerHangsUp,
            Read(Duration::from_millis(1000)),
            Cmd("GET VARIABLE DIALSTATUS"),
            Cmd("GET VARIABLE HANGUPCAUSE"),
            Cmd("GET VARIABLE DIALEDPEERNUMBER"),
            Cmd("GET VARIABLE ANSWEREDTIME"),
            Cmd("GET FULL VARIABLE ${CHANNEL(hangupsource)}"),
            Close,
        ],
    },
    Scenario {
        name: "record-file",
        ext: "7000",
        what: "RECORD FILE with BEEP, s=2 and # as finish key: the caller presses # after ~1.5 s; then one that hits its 2 s limit; then MixMonitor started and stopped",
        steps: &[
            Send(r##"RECORD FILE /tmp/voxbridge-agi-capture-rec1 wav "#" 10000 BEEP s=2"##),
            Read(Duration::from_millis(1500)),
            CallerDtmf("#"),
            Read(Duration::from_millis(1500)),
            Cmd(r##"RECORD FILE /tmp/voxbridge-agi-capture-rec2 wav "#" 2000"##),
            Cmd(r##"RECORD FILE /tmp/voxbridge-agi-capture-rec3 wav "#" 10000 s=1"##),
            Cmd(r#"EXEC MixMonitor "/tmp/voxbridge-agi-capture-mix.wav""#),
            Cmd("EXEC Wait 1"),
            Cmd("EXEC StopMixMonitor"),
            Cmd(r#"GET FULL VARIABLE "${STAT(s,/tmp/voxbridge-agi-capture-mix.wav)}""#),
            Cmd("EXEC Hangup 16"),
            Read(Duration::from_millis(500)),
            Close,
        ],
    },
    Scenario {
        name: "dial-ari-while-bridged",
        ext: "7001",
        what: "EXEC Dial of 7004 and 7002 with L(4000); while it runs, what ARI says of the caller: state, DIALEDPEERNUMBER, DIALEDPEERNAME",
        steps: &[
            Send(r#"EXEC Dial "SIP/7004@self&SIP/7002@self,10,gL(4000)""#),
            Read(Duration::from_millis(300)),
            AriGet(None),
            AriGet(Some("DIALEDPEERNUMBER")),
            Read(Duration::from_millis(1700)),
            AriGet(None),
            AriGet(Some("DIALEDPEERNUMBER")),
            AriGet(Some("DIALEDPEERNAME")),
            Read(Duration::from_millis(4000)),
            Cmd("GET VARIABLE DIALSTATUS"),
            Cmd("EXEC Hangup 16"),
            Read(Duration::from_millis(500)),
            Close,
        ],
    },
    Scenario {
        name: "dial-sip-headers",
        ext: "7001",
        what: "sipHeaders on chan_sip without dialplan: SET VARIABLE __SIPADDHEADER51 on the caller, Dial of 7002 with H and D(1): does the callee (7002 in the bundle, over SIP/…@self) see X-VH-Team on its INVITE?",
        steps: &[
            Cmd(r#"SET VARIABLE __SIPADDHEADER51 "X-VH-Team: blue""#),
            Send(r#"EXEC Dial "SIP/7002@self,10,gHD(1)L(3000)""#),
            Read(Duration::from_millis(1500)),
            AriCalleeVar("7002", "SIP_HEADER(X-VH-Team)"),
            Read(Duration::from_millis(3000)),
            Cmd("GET VARIABLE DIALSTATUS"),
            Cmd(r#"SET VARIABLE __SIPADDHEADER51 """#),
            Cmd("EXEC Hangup 16"),
            Read(Duration::from_millis(500)),
            Close,
        ],
    },
    Scenario {
        name: "dial-confirm-key",
        ext: "7001",
        what: "confirmKey on Asterisk: Dial of 7007 (answers, sends 1234# ~1 s later) with U(voxbridge-dial-answered) and confirm key 1 (dialplan/asterisk/extensions.conf): ARI sees SHARED(voxbridge_dial) bridged once the callee pressed 1; the Dial bridges, L() ends it",
        steps: &[
            Cmd(r#"SET VARIABLE SHARED(voxbridge_dial) """#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_caller "{agi_channel}""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_legs "1""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg1 "7007@self""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg1_headers "0""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg1_digits """#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_confirm "key""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_confirm_media "beep""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_confirm_key "1""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_ring "8""#),
            Send(r#"EXEC Dial "SIP/7007@self,8,gU(voxbridge-dial-answered)L(4000)""#),
            Read(Duration::from_millis(600)),
            AriGet(Some("SHARED(voxbridge_dial)")),
            AriGet(Some("DIALEDPEERNUMBER")),
            Read(Duration::from_millis(2400)),
            AriGet(Some("SHARED(voxbridge_dial)")),
            Read(Duration::from_millis(4000)),
            Cmd("GET VARIABLE DIALSTATUS"),
            Cmd("GET VARIABLE DIALEDPEERNUMBER"),
            Cmd("GET VARIABLE ANSWEREDTIME"),
            Cmd("GET VARIABLE SHARED(voxbridge_dial)"),
            Cmd("EXEC Hangup 16"),
            Read(Duration::from_millis(500)),
            Close,
        ],
    },
    Scenario {
        name: "dial-confirm-unpressed",
        ext: "7001",
        what: "confirmKey never pressed: Dial of 7007 (presses 1234#, never 9) with U(voxbridge-dial-answered), key 9, ring timeout 5: the routine drops the callee when its channel is 5 s old (GOSUB_RESULT=ABORT) and marks unconfirmed; with g the AGI goes on, the caller never answered",
        steps: &[
            Cmd(r#"SET VARIABLE SHARED(voxbridge_dial) """#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_caller "{agi_channel}""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_legs "1""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg1 "7007@self""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg1_headers "0""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg1_digits """#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_confirm "key""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_confirm_media "beep&silence/1""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_confirm_key "9""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_ring "5""#),
            Cmd(r#"EXEC Dial "SIP/7007@self,5,gU(voxbridge-dial-answered)L(4000)""#),
            Cmd("GET VARIABLE DIALSTATUS"),
            Cmd("GET VARIABLE HANGUPCAUSE"),
            Cmd("GET VARIABLE DIALEDPEERNUMBER"),
            Cmd("GET VARIABLE SHARED(voxbridge_dial)"),
            Cmd("GET FULL VARIABLE ${CHANNEL(state)}"),
            Cmd("EXEC Hangup 17"),
            Read(Duration::from_millis(500)),
            Close,
        ],
    },
    Scenario {
        name: "dial-legs-differ",
        ext: "7001",
        what: "legs with their own sipHeaders and sendDigits: Dial of 7004 (rings) & 7008 (answers after 2 s) with b(voxbridge-dial-leg^s^1) and U(voxbridge-dial-answered): each callee finds its leg by ${DIALEDPEERNUMBER}; 7008's INVITE carries only its own X-VH-Leg, 7004's its own; 7008 gets its digits 55 on answer",
        steps: &[
            Cmd(r#"SET VARIABLE SHARED(voxbridge_dial) """#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_caller "{agi_channel}""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_legs "2""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg1 "7004@self""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg1_headers "1""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg1_h1 "X-VH-Leg: four, (ringing)""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg1_digits "4""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg2 "7008@self""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg2_headers "2""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg2_h1 "X-VH-Leg: two""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg2_h2 "X-VH-Only: ${x}$[1+1]""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_leg2_digits "55""#),
            Cmd(r#"SET VARIABLE __voxbridge_dial_confirm """#),
            Send(r#"EXEC Dial "SIP/7004@self&SIP/7008@self,10,gb(voxbridge-dial-leg^s^1)U(voxbridge-dial-answered)L(3000)""#),
            Read(Duration::from_millis(1000)),
            AriCalleeVar("7004", "SIP_HEADER(X-VH-Leg)"),
            AriCalleeVar("7008", "SIP_HEADER(X-VH-Leg)"),
            AriCalleeVar("7008", "SIP_HEADER(X-VH-Only)"),
            Read(Duration::from_millis(5500)),
            Cmd("GET VARIABLE DIALSTATUS"),
            Cmd("GET VARIABLE DIALEDPEERNUMBER"),
            Cmd("GET VARIABLE SHARED(voxbridge_dial)"),
            Cmd("EXEC Hangup 16"),
            Read(Duration::from_millis(500)),
            Close,
        ],
    },
    Scenario {
        name: "bad-command",
        ext: "7000",
        what: "an unknown command, an unknown application, then the end of the document",
        steps: &[
            Cmd("NO SUCH COMMAND"),
            Cmd("EXEC NoSuchApp x"),
            Cmd("EXEC SendDTMF 12"),
            Cmd("EXEC Hangup 16"),
            Read(Duration::from_millis(500)),
            Close,
        ],
    },
];

struct Log {
    start: Instant,
    out: String,
}

impl Log {
    fn line(&mut self, dir: &str, text: &str) {
        let t = self.start.elapsed().as_secs_f64();
        let _ = writeln!(self.out, "# +{t:.3}s");
        let _ = writeln!(self.out, "{dir} {text}");
    }
    fn note(&mut self, text: &str) {
        let _ = writeln!(self.out, "# {text}");
    }
}

struct Agi {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    eof: bool,
}

impl Agi {
    /// One line, or `None` at EOF / on timeout.
    async fn line(&mut self, log: &mut Log, within: Duration) -> Result<Option<String>> {
        if self.eof {
            return Ok(None);
        }
        let mut buf = Vec::new();
        match tokio::time::timeout(within, self.reader.read_until(b'\n', &mut buf)).await {
            Err(_) => Ok(None),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(0)) => {
                self.eof = true;
                log.line("!", "Asterisk closed the connection (EOF)");
                Ok(None)
            }
            Ok(Ok(_)) => {
                let text = String::from_utf8_lossy(&buf);
                let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
                log.line("S", &text);
                Ok(Some(text))
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--list") || args.is_empty() {
        for s in SCENARIOS {
            println!("{:<24} {}  {}", s.name, s.ext, s.what);
        }
        return Ok(());
    }
    let name = &args[0];
    let scenario = SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| anyhow!("no scenario {name} (--list)"))?;
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| format!("tests/fixtures/agi/{}.txt", scenario.name));
    write_tone(&format!("{TONE_5S}.wav"), 5)?;
    let mut log = Log {
        start: Instant::now(),
        out: String::new(),
    };
    let result = capture(scenario, &mut log).await;
    let path = if result.is_ok() {
        out
    } else {
        format!("{out}.failed")
    };
    std::fs::write(&path, &log.out).with_context(|| format!("writing {path}"))?;
    println!("wrote {path}");
    result
}

async fn capture(scenario: &Scenario, log: &mut Log) -> Result<()> {
    log.note(&format!(
        "FastAGI transcript `{}`: Asterisk 20.20.1 (../shared/asterisk bundle), extension {}",
        scenario.name, scenario.ext
    ));
    log.note(scenario.what);
    log.note("S = from Asterisk, C = sent by the client, ! = outside the socket, # = notes/timing");
    let listener = TcpListener::bind(AGI_ADDR)
        .await
        .context("binding 127.0.0.1:4573 (is voxbridge or the live suite running?)")?;
    let options = InboundOptions {
        events: vec!["CHANNEL_HANGUP_COMPLETE".into()],
        connect_timeout: Duration::from_secs(10),
        ..InboundOptions::default()
    };
    let (fs, mut fs_events) = InboundSession::connect(&options, Arc::new(EslCounters::default()))
        .await
        .context("FreeSWITCH inbound ESL 127.0.0.1:8021")?;
    let a_uuid = uuid::Uuid::new_v4().to_string();
    fs.filter("Unique-ID", &a_uuid).await?;
    let originate = format!(
        "originate {{origination_uuid={a_uuid},origination_caller_id_number=15551230000,\
         origination_caller_id_name=AGI-Capture,originate_timeout=20}}\
         sofia/external/{}@127.0.0.1:5070 &park()",
        scenario.ext
    );
    let fs2 = fs.clone();
    let job = tokio::spawn(async move { fs2.bgapi(&originate).await });
    log.line(
        "!",
        &format!(
            "FreeSWITCH: originate sofia/external/{}@127.0.0.1:5070",
            scenario.ext
        ),
    );
    let outcome = run_script(scenario, log, &listener, &fs, &a_uuid).await;
    if outcome.is_err() {
        let _ = fs.api(&format!("uuid_kill {a_uuid}")).await;
    }
    // The caller's side: what SIP status it got, who hung up.
    let end = tokio::time::timeout(WAIT, async {
        while let Some(item) = fs_events.recv().await {
            if let SocketEvent::Event(ev) = item {
                if ev.is("CHANNEL_HANGUP_COMPLETE") && ev.unique_id() == Some(a_uuid.as_str()) {
                    return Some(ev);
                }
            }
        }
        None
    })
    .await;
    match end {
        Ok(Some(ev)) => {
            let v = |n: &str| ev.variable(n).unwrap_or("-").to_string();
            log.line(
                "!",
                &format!(
                    "caller A-leg ended: hangup_cause={} sip_term_status={} sip_hangup_disposition={} answered_time={} sip_reason={}",
                    ev.hangup_cause().unwrap_or("-"),
                    v("sip_term_status"),
                    v("sip_hangup_disposition"),
                    v("answered_time"),
                    v("sip_reason"),
                ),
            );
        }
        _ => log.line("!", "no CHANNEL_HANGUP_COMPLETE for the caller"),
    }
    if let Ok(Ok(Ok(ev))) = tokio::time::timeout(WAIT, job).await {
        log.line(
            "!",
            &format!("originate result: {}", ev.body().unwrap_or("").trim()),
        );
    }
    let _ = fs.exit().await;
    outcome
}

async fn run_script(
    scenario: &Scenario,
    log: &mut Log,
    listener: &TcpListener,
    fs: &InboundSession,
    a_uuid: &str,
) -> Result<()> {
    let (stream, peer) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .context("no FastAGI connection from Asterisk")??;
    log.line(
        "!",
        &format!("accepted FastAGI connection from {}", peer.ip()),
    );
    let (r, w) = stream.into_split();
    let mut agi = Agi {
        reader: BufReader::new(r),
        writer: w,
        eof: false,
    };
    // The environment, up to the empty line.
    let mut uniqueid = String::new();
    let mut channel = String::new();
    loop {
        let Some(line) = agi.line(log, WAIT).await? else {
            bail!("environment ended early");
        };
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("agi_uniqueid: ") {
            uniqueid = v.to_string();
        }
        if let Some(v) = line.strip_prefix("agi_channel: ") {
            channel = v.to_string();
        }
    }
    for step in scenario.steps {
        match *step {
            Cmd(text) | Send(text) => {
                let text = &text.replace("{agi_channel}", &channel);
                log.line("C", text);
                agi.writer.write_all(format!("{text}\n").as_bytes()).await?;
                if matches!(step, Send(_)) {
                    continue;
                }
                loop {
                    match agi.line(log, WAIT).await? {
                        Some(l) if l.starts_with(|c: char| c.is_ascii_digit()) => break,
                        Some(_) => {}
                        None => break,
                    }
                }
            }
            Read(d) => {
                let until = Instant::now() + d;
                while let Some(left) = until.checked_duration_since(Instant::now()) {
                    if agi.line(log, left).await?.is_none() {
                        break;
                    }
                }
            }
            CallerHangsUp => {
                log.line(
                    "!",
                    "the caller hangs up (FreeSWITCH uuid_kill on the A-leg)",
                );
                fs.api(&format!("uuid_kill {a_uuid}")).await?;
            }
            AriHangup(code) => {
                let url = format!("{ARI}/channels/{uniqueid}?reason_code={code}");
                let client = voxbridge::http_client::builder().build()?;
                let t = Instant::now();
                let resp = client
                    .delete(&url)
                    .basic_auth("voxbridge", Some("voxbridge"))
                    .send()
                    .await?;
                log.line(
                    "!",
                    &format!(
                        "ARI DELETE /channels/<agi_uniqueid>?reason_code={code} -> {} in {} ms",
                        resp.status().as_u16(),
                        t.elapsed().as_millis()
                    ),
                );
            }
            AriGet(variable) => {
                let url = match variable {
                    None => format!("{ARI}/channels/{uniqueid}"),
                    Some(v) => format!("{ARI}/channels/{uniqueid}/variable?variable={v}"),
                };
                let client = voxbridge::http_client::builder().build()?;
                let resp = client
                    .get(&url)
                    .basic_auth("voxbridge", Some("voxbridge"))
                    .send()
                    .await?;
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                let shown = match variable {
                    None => serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .map(|j| format!("state={} name={}", j["state"], j["name"]))
                        .unwrap_or(body),
                    Some(_) => body,
                };
                log.line(
                    "!",
                    &format!(
                        "ARI GET {} -> {status} {shown}",
                        url.trim_start_matches(ARI)
                            .replace(&uniqueid, "<agi_uniqueid>")
                    ),
                );
            }
            CallerDtmf(digits) => {
                log.line(
                    "!",
                    &format!("the caller sends DTMF {digits} (uuid_send_dtmf)"),
                );
                fs.api(&format!("uuid_send_dtmf {a_uuid} {digits}")).await?;
            }
            AriCalleeVar(exten, var) => {
                let client = voxbridge::http_client::builder().build()?;
                let list: serde_json::Value = client
                    .get(format!("{ARI}/channels"))
                    .basic_auth("voxbridge", Some("voxbridge"))
                    .send()
                    .await?
                    .json()
                    .await?;
                let callees: Vec<String> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["dialplan"]["exten"] == exten && c["id"] != uniqueid.as_str())
                    .filter_map(|c| c["id"].as_str().map(str::to_string))
                    .collect();
                if callees.is_empty() {
                    log.line("!", &format!("ARI: no channel at extension {exten}"));
                }
                for id in callees {
                    let resp = client
                        .get(format!("{ARI}/channels/{id}/variable?variable={var}"))
                        .basic_auth("voxbridge", Some("voxbridge"))
                        .send()
                        .await?;
                    let status = resp.status().as_u16();
                    let body = resp.text().await.unwrap_or_default();
                    log.line(
                        "!",
                        &format!("ARI: the callee at {exten}: {var} -> {status} {body}"),
                    );
                }
            }
            Close => {
                log.line("C", "(close)");
                agi.writer.shutdown().await?;
                drop(agi);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Writes `secs` of a 440 Hz tone as 8 kHz 16-bit mono WAV (Asterisk's `wav` format).
fn write_tone(path: &str, secs: u32) -> Result<()> {
    let samples = 8000 * secs;
    let mut wav = Vec::with_capacity(44 + 2 * samples as usize);
    let data_len = 2 * samples;
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let v = (f64::from(i) * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 8000.0;
        wav.extend_from_slice(&(v as i16).to_le_bytes());
    }
    std::fs::write(path, wav).with_context(|| format!("writing {path}"))
}
