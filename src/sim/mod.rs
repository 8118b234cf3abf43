//! A FreeSWITCH simulator: plays the switch side of outbound and inbound ESL as the
//! real switch does (see the transcripts), for tests, the benchmark and the demo.

pub mod transcript;
