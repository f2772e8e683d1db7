//! Docker events about Director's containers, for status updates without polling.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptions;
use futures::{Stream, StreamExt as _};

use crate::{
    Orchestrator, Result, SiteId,
    names::{LABEL_NAMESPACE, LABEL_ROLE, LABEL_SITE},
};

/// What happened to a site's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteEventKind {
    /// A container started.
    Started,
    /// A container's process ended with this code.
    Died {
        /// Its exit code.
        exit_code: Option<i64>,
    },
    /// The kernel killed a process for exceeding the memory limit.
    OutOfMemory,
}

/// An event about one of a site's containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteEvent {
    /// Whose container.
    pub site: SiteId,
    /// `service` (a task of the site's service) or `terminal`.
    pub role: String,
    /// What happened.
    pub kind: SiteEventKind,
}

impl Orchestrator {
    /// Events of this namespace's containers, from now on, until the stream is dropped.
    pub fn events(&self) -> impl Stream<Item = Result<SiteEvent>> + Send + use<> {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            (
                "event".to_owned(),
                vec!["start".to_owned(), "die".to_owned(), "oom".to_owned()],
            ),
            (
                "label".to_owned(),
                vec![format!("{LABEL_NAMESPACE}={}", self.ns.label())],
            ),
        ]);
        self.docker
            .events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .filter_map(|item| async move {
                let message = match item {
                    Ok(m) => m,
                    Err(e) => return Some(Err(e.into())),
                };
                let attributes = message.actor.and_then(|a| a.attributes).unwrap_or_default();
                let site = attributes.get(LABEL_SITE)?.parse().ok().map(SiteId)?;
                let role = attributes.get(LABEL_ROLE).cloned().unwrap_or_default();
                let kind = match message.action.as_deref()? {
                    "start" => SiteEventKind::Started,
                    "die" => SiteEventKind::Died {
                        exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
                    },
                    "oom" => SiteEventKind::OutOfMemory,
                    _ => return None,
                };
                Some(Ok(SiteEvent { site, role, kind }))
            })
    }

    /// The sites whose service was removed (by anyone), from now on, until the stream is
    /// dropped. Service events carry no labels, so they are matched by this namespace's name.
    pub fn service_removals(&self) -> impl Stream<Item = Result<SiteId>> + Send + use<> {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["service".to_owned()]),
            ("event".to_owned(), vec!["remove".to_owned()]),
        ]);
        let prefix = self.ns.service_prefix();
        self.docker
            .events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .filter_map(move |item| {
                let prefix = prefix.clone();
                async move {
                    let message = match item {
                        Ok(m) => m,
                        Err(e) => return Some(Err(e.into())),
                    };
                    let attributes = message.actor.and_then(|a| a.attributes).unwrap_or_default();
                    let id = attributes.get("name")?.strip_prefix(&prefix)?.parse().ok()?;
                    Some(Ok(SiteId(id)))
                }
            })
    }
}
