//! Which application serves a call (SPEC §2 step 2).
//!
//! First match wins, per URL: the channel variable set by the dialplan
//! (`voxbridge_answer_url`, …) → the first `[[route]]` whose `destination` matches the
//! called number (exact, or a regex written `/…/`) → the `[app]` default. The hangup URL
//! falls back to the answer URL. The account is `voxbridge_account`, else the route's
//! `account`, else the first `[[account]]`.

use crate::config::Config;
use regex::Regex;
use std::collections::HashMap;

/// Where a call's documents and callbacks go, and whose call it is.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Resolved {
    pub answer_url: String,
    pub fallback_answer_url: Option<String>,
    pub hangup_url: String,
    pub status_callback_url: Option<String>,
    /// Empty when no account is configured (callbacks then go unsigned).
    pub account_id: String,
    /// The account's token, the signing key of the call's requests.
    pub auth_token: Option<String>,
}

/// Why a call cannot be served (it is refused with CALL_REJECTED, source `Error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no answer URL: set channel variable voxbridge_answer_url, a [[route]] for {destination:?}, or app.default_answer_url")]
    NoAnswerUrl { destination: String },
    #[error("channel variable voxbridge_account names unknown account {0:?}")]
    UnknownAccount(String),
}

/// The routing table, compiled once at start so a regex is not rebuilt per call.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<(Matcher, crate::config::Route)>,
    config: Config,
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Pattern(Regex),
}

impl Router {
    /// Compiles the routes. The regexes were already validated by `Config::load`; one
    /// that still fails to compile (a config built in code) never matches and is logged.
    pub fn new(config: &Config) -> Self {
        let routes = config
            .routes
            .iter()
            .filter_map(|r| {
                let m = match r.destination.strip_prefix('/').and_then(|s| s.strip_suffix('/')) {
                    Some(re) => match Regex::new(re) {
                        Ok(re) => Matcher::Pattern(re),
                        Err(e) => {
                            tracing::error!(destination = %r.destination, error = %e, "route regex does not compile; route ignored");
                            return None;
                        }
                    },
                    None => Matcher::Exact(r.destination.clone()),
                };
                Some((m, r.clone()))
            })
            .collect();
        Self {
            routes,
            config: config.clone(),
        }
    }

    /// Resolves the URLs and account of a call from its channel variables (names
    /// without the `variable_` prefix) and its called number.
    pub fn resolve(
        &self,
        variables: &HashMap<String, String>,
        destination: &str,
    ) -> Result<Resolved, RouteError> {
        let (resolved, account_error) = self.lookup(variables, destination);
        if resolved.answer_url.is_empty() {
            return Err(RouteError::NoAnswerUrl {
                destination: destination.to_string(),
            });
        }
        match account_error {
            Some(e) => Err(e),
            None => Ok(resolved),
        }
    }

    /// Where the callbacks of a call go when [`Router::resolve`] refused it: the call is
    /// still refused and reported (SPEC §2 step 7, §7: no call ends without a hangup
    /// callback), so the hangup and status URLs follow their own chains even without an
    /// answer URL. `answer_url` is empty. An unknown `voxbridge_account` counts as unset
    /// here (route account, else the first account): the refusal is then reported to,
    /// and verifiable by, the application that owns the route or the deployment.
    pub fn callback_targets(
        &self,
        variables: &HashMap<String, String>,
        destination: &str,
    ) -> Resolved {
        self.lookup(variables, destination).0
    }

    /// Every URL chain and the account; a missing answer URL is left empty (and the
    /// hangup URL then has nothing to fall back to).
    fn lookup(
        &self,
        variables: &HashMap<String, String>,
        destination: &str,
    ) -> (Resolved, Option<RouteError>) {
        let var = |name: &str| {
            variables
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let route = self
            .routes
            .iter()
            .find(|(m, _)| match m {
                Matcher::Exact(d) => d == destination,
                Matcher::Pattern(re) => re.is_match(destination),
            })
            .map(|(_, r)| r);
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let pick = |var_name: &str, from_route: Option<&str>, default: &str| {
            var(var_name)
                .or_else(|| from_route.and_then(non_empty))
                .or_else(|| non_empty(default))
        };
        let app = &self.config.app;
        let answer_url = pick(
            "voxbridge_answer_url",
            route.map(|r| r.answer_url.as_str()),
            &app.default_answer_url,
        )
        .unwrap_or_default();
        let hangup_url = pick(
            "voxbridge_hangup_url",
            route.map(|r| r.hangup_url.as_str()),
            &app.default_hangup_url,
        )
        .unwrap_or_else(|| answer_url.clone());
        let fallback_answer_url = pick(
            "voxbridge_fallback_answer_url",
            route.map(|r| r.fallback_answer_url.as_str()),
            &app.fallback_answer_url,
        );
        let status_callback_url = pick(
            "voxbridge_status_callback_url",
            route.map(|r| r.status_callback_url.as_str()),
            &app.status_callback_url,
        );
        let mut account_error = None;
        let named = match var("voxbridge_account") {
            Some(id) => {
                let found = self.config.accounts.iter().find(|a| a.auth_id == id);
                if found.is_none() {
                    account_error = Some(RouteError::UnknownAccount(id));
                }
                found
            }
            None => None,
        };
        let account = named.or_else(|| {
            route
                .and_then(|r| non_empty(&r.account))
                .and_then(|id| self.config.accounts.iter().find(|a| a.auth_id == id))
                .or_else(|| self.config.accounts.first())
        });
        let resolved = Resolved {
            answer_url,
            fallback_answer_url,
            hangup_url,
            status_callback_url,
            account_id: account.map(|a| a.auth_id.clone()).unwrap_or_default(),
            auth_token: account.map(|a| a.auth_token.clone()),
        };
        (resolved, account_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Account, Route};

    fn config() -> Config {
        let mut c = Config::default();
        c.app.default_answer_url = "http://default/answer".into();
        c.accounts = vec![
            Account {
                auth_id: "MA1".into(),
                auth_token: "t1".into(),
            },
            Account {
                auth_id: "MA2".into(),
                auth_token: "t2".into(),
            },
        ];
        c.routes = vec![
            Route {
                destination: "7000".into(),
                answer_url: "file://examples/documents/hello.xml".into(),
                account: "MA2".into(),
                ..Route::default()
            },
            Route {
                destination: "/^9\\d+$/".into(),
                answer_url: "http://nine/answer".into(),
                hangup_url: "http://nine/hangup".into(),
                ..Route::default()
            },
        ];
        c
    }

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn channel_variable_wins_over_route_and_default() {
        let r = Router::new(&config());
        let got = r
            .resolve(
                &vars(&[("voxbridge_answer_url", "http://var/answer")]),
                "7000",
            )
            .unwrap();
        assert_eq!(got.answer_url, "http://var/answer");
        assert_eq!(
            got.hangup_url, "http://var/answer",
            "hangup falls back to answer"
        );
        assert_eq!(got.account_id, "MA2", "route account still applies");
    }

    #[test]
    fn exact_then_regex_then_default() {
        let r = Router::new(&config());
        assert_eq!(
            r.resolve(&vars(&[]), "7000").unwrap().answer_url,
            "file://examples/documents/hello.xml"
        );
        let nine = r.resolve(&vars(&[]), "9123").unwrap();
        assert_eq!(nine.answer_url, "http://nine/answer");
        assert_eq!(nine.hangup_url, "http://nine/hangup");
        assert_eq!(nine.account_id, "MA1", "first account by default");
        assert_eq!(nine.auth_token.as_deref(), Some("t1"));
        assert_eq!(
            r.resolve(&vars(&[]), "5555").unwrap().answer_url,
            "http://default/answer"
        );
    }

    #[test]
    fn no_url_and_unknown_account_are_errors() {
        let mut c = config();
        c.app.default_answer_url.clear();
        let r = Router::new(&c);
        assert_eq!(
            r.resolve(&vars(&[]), "5555"),
            Err(RouteError::NoAnswerUrl {
                destination: "5555".into()
            })
        );
        assert_eq!(
            r.resolve(&vars(&[("voxbridge_account", "MA9")]), "7000"),
            Err(RouteError::UnknownAccount("MA9".into()))
        );
    }

    #[test]
    fn a_refused_call_still_has_its_callback_targets() {
        let mut c = config();
        c.app.default_answer_url.clear();
        c.app.default_hangup_url = "http://default/hangup".into();
        c.app.status_callback_url = "http://default/status".into();
        let r = Router::new(&c);
        assert!(r.resolve(&vars(&[]), "5555").is_err());
        let t = r.callback_targets(&vars(&[]), "5555");
        assert_eq!(t.answer_url, "");
        assert_eq!(t.hangup_url, "http://default/hangup");
        assert_eq!(
            t.status_callback_url.as_deref(),
            Some("http://default/status")
        );
        assert_eq!(t.account_id, "MA1");
        let t = r.callback_targets(
            &vars(&[
                ("voxbridge_account", "MA9"),
                ("voxbridge_hangup_url", "http://v/h"),
            ]),
            "7000",
        );
        assert_eq!(t.hangup_url, "http://v/h");
        assert_eq!(t.account_id, "MA2", "the route's account signs the refusal");
    }

    #[test]
    fn no_accounts_means_unsigned() {
        let mut c = config();
        c.accounts.clear();
        c.routes.clear();
        let got = Router::new(&c).resolve(&vars(&[]), "1").unwrap();
        assert_eq!(got.account_id, "");
        assert_eq!(got.auth_token, None);
    }
}
