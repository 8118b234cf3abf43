//! The configured FreeSWITCH switches (SPEC §14): one inbound ESL connection to each,
//! and which one to ask about a call.
//!
//! A call's live row names its switch (`switch_name`, the connect reply's
//! `FreeSWITCH-Switchname`; see [`crate::config::SwitchConfig`] for why by name). The
//! switch asked about it — `uuid_exists` when a fleet node adopts it, the channel list
//! when a restart reconciles it — is the configured switch of that name; with a single
//! switch configured, that one whatever the row says. A row whose name matches no
//! configured switch (a switch renamed or removed, or a row written before the switch
//! was known) is asked of every switch, and a warning names it: a call's uuid is unique,
//! so the union of the switches' answers is still right, only dearer.
//!
//! A call held by this node's socket needs none of this: its socket *is* its switch's
//! connection, so a REST hangup always reaches the right switch. A `POST Call/` call is
//! cancelled by the dialer that placed it, on the same switch
//! ([`crate::call::freeswitch::originate`]).

use crate::call::reconcile::{ChannelList, UuidProbe};
use crate::config::SwitchConfig;
use crate::esl::counters::EslCounters;
use crate::esl::inbound::{InboundClient, InboundOptions};
use crate::store::{BoxFuture, LiveCall};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// One configured switch and this process's inbound connection to it.
#[derive(Clone)]
pub struct SwitchLink {
    /// `[[switch]] name` (may be empty with a single switch).
    pub name: String,
    pub client: InboundClient,
}

/// Every configured switch. Cheap to clone.
#[derive(Clone, Default)]
pub struct Switches {
    links: Arc<Vec<SwitchLink>>,
}

impl Switches {
    /// Connects to each switch (in the background: [`InboundClient`] reconnects).
    pub fn start<'a>(
        configs: impl IntoIterator<Item = &'a SwitchConfig>,
        counters: Arc<EslCounters>,
    ) -> Switches {
        let links = configs
            .into_iter()
            .map(|sw| SwitchLink {
                name: sw.name.clone(),
                client: InboundClient::start(
                    InboundOptions {
                        addr: sw.esl.clone(),
                        password: sw.password.clone(),
                        ..InboundOptions::default()
                    },
                    counters.clone(),
                )
                .0,
            })
            .collect();
        Switches {
            links: Arc::new(links),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    pub fn links(&self) -> &[SwitchLink] {
        &self.links
    }

    /// The switch a live row's `switch_name` names: the configured one of that name,
    /// or the only one; `None` when several are configured and none has that name.
    pub fn of_call(&self, switch_name: &str) -> Option<&SwitchLink> {
        match self.links.as_slice() {
            [only] => Some(only),
            links => links.iter().find(|l| l.name == switch_name),
        }
    }

    /// The switches to ask about a call on `switch_name`: its own, else (unknown name)
    /// every one, with a warning.
    fn to_ask(&self, call_uuid: &str, switch_name: &str) -> Vec<&SwitchLink> {
        match self.of_call(switch_name) {
            Some(link) => vec![link],
            None => {
                tracing::warn!(
                    call_uuid,
                    switch = switch_name,
                    "the call's switch is not configured by that name; asking every switch"
                );
                self.links.iter().collect()
            }
        }
    }

    fn index_of(&self, link: &SwitchLink) -> usize {
        self.links
            .iter()
            .position(|l| std::ptr::eq(l, link))
            .expect("a link of this list")
    }

    /// Waits (bounded) until every switch's connection is up, so a first question is
    /// not answered "cannot tell" only because the connection was still being made.
    pub async fn wait_connected(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.links.iter().any(|l| !l.client.is_connected())
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The channel lists of the switches `calls` are on, one `show channels` per switch
/// asked, each call checked against its own switch's list only (a call another switch
/// has is not "up" on the switch its row names). A switch that cannot answer tells
/// nothing about its calls: they count as gone for a reconciliation, as with one switch,
/// and `None` (cannot tell) comes back only when no switch asked could answer.
impl ChannelList for Switches {
    fn channel_uuids(&self) -> BoxFuture<'_, Option<HashSet<String>>> {
        Box::pin(async move {
            let mut all = HashSet::new();
            let mut any = false;
            for link in self.links.iter() {
                if let Some(uuids) = list_of(link).await {
                    any = true;
                    all.extend(uuids);
                }
            }
            any.then_some(all)
        })
    }

    fn channels_of<'a>(&'a self, calls: &'a [LiveCall]) -> BoxFuture<'a, Option<HashSet<String>>> {
        Box::pin(async move {
            let asked: Vec<(&LiveCall, Vec<usize>)> = calls
                .iter()
                .map(|call| {
                    let links = self
                        .to_ask(&call.call_uuid, &call.switch_name)
                        .into_iter()
                        .map(|l| self.index_of(l))
                        .collect();
                    (call, links)
                })
                .collect();
            let mut lists: Vec<Option<Option<HashSet<String>>>> = vec![None; self.links.len()];
            for (_, links) in &asked {
                for &i in links {
                    if lists[i].is_none() {
                        lists[i] = Some(list_of(&self.links[i]).await);
                    }
                }
            }
            if !lists.iter().flatten().any(Option::is_some) {
                return None;
            }
            let up = asked
                .iter()
                .filter(|(call, links)| {
                    links.iter().any(|&i| {
                        lists[i]
                            .as_ref()
                            .and_then(Option::as_ref)
                            .is_some_and(|list| list.contains(&call.call_uuid))
                    })
                })
                .map(|(call, _)| call.call_uuid.clone())
                .collect();
            Some(up)
        })
    }
}

/// How long a first question waits for a switch's connection to come up (at start the
/// connections are made while the store is opened).
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(2);

async fn list_of(link: &SwitchLink) -> Option<HashSet<String>> {
    let deadline = tokio::time::Instant::now() + FIRST_CONNECT_WAIT;
    while !link.client.is_connected() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list = link.client.channel_uuids().await;
    if list.is_none() {
        tracing::warn!(switch = %link.name, "the switch could not list its channels");
    }
    list
}

/// `uuid_exists` on the call's switch (every switch for an unknown name: up if any
/// says so, gone if every one that answered says so).
impl UuidProbe for Switches {
    fn uuid_exists(&self, call_uuid: &str) -> BoxFuture<'_, Option<bool>> {
        let links: Vec<&SwitchLink> = self.links.iter().collect();
        let call_uuid = call_uuid.to_string();
        Box::pin(async move { exists_on(links, &call_uuid).await })
    }

    fn uuid_exists_on<'a>(
        &'a self,
        switch_name: &'a str,
        call_uuid: &'a str,
    ) -> BoxFuture<'a, Option<bool>> {
        Box::pin(async move { exists_on(self.to_ask(call_uuid, switch_name), call_uuid).await })
    }
}

async fn exists_on(links: Vec<&SwitchLink>, call_uuid: &str) -> Option<bool> {
    let mut answer = None;
    for link in links {
        match link.client.uuid_exists(call_uuid).await {
            Some(true) => return Some(true),
            Some(false) => answer = Some(false),
            None => {}
        }
    }
    answer
}
