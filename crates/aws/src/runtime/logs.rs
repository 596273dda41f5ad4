//! The app's output from CloudWatch Logs: the task definition's awslogs
//! group and stream prefix (`app/app/<task>`), the tail read once, then
//! polled every 2 s while following.

use super::{EcsRuntime, CONTAINER};
use crate::error::{aws_error, code_of};
use crate::names;
use easydeploy_core::ports::{BackendResult, LogLine};
use easydeploy_core::AppName;
use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::{HashSet, VecDeque};
use std::time::Duration;

const FOLLOW_INTERVAL: Duration = Duration::from_secs(2);
/// Events read at most when collecting the tail.
const MAX_EVENTS: usize = 50_000;

struct Cursor {
    logs: aws_sdk_cloudwatchlogs::Client,
    group: String,
    since: i64,
    seen: HashSet<String>,
}

impl Cursor {
    /// Events after `since`, oldest first.
    async fn read(&mut self) -> BackendResult<Vec<LogLine>> {
        let mut lines = Vec::new();
        let mut token = None;
        let mut newest = self.since;
        loop {
            let page = self
                .logs
                .filter_log_events()
                .log_group_name(&self.group)
                .log_stream_name_prefix(format!("{CONTAINER}/"))
                .start_time(self.since)
                .set_next_token(token)
                .send()
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e) if code_of(&e) == Some("ResourceNotFoundException") => return Ok(lines),
                Err(e) => return Err(aws_error("read the app's logs", e)),
            };
            // The prefix is also checked here: moto ignores it.
            let ours = |e: &&aws_sdk_cloudwatchlogs::types::FilteredLogEvent| {
                e.log_stream_name()
                    .is_some_and(|s| s.strip_prefix(CONTAINER).is_some_and(|r| r.starts_with('/')))
            };
            for event in page.events().iter().filter(ours) {
                let id = event.event_id().unwrap_or_default().to_owned();
                if !self.seen.insert(id) {
                    continue;
                }
                newest = newest.max(event.timestamp().unwrap_or(0));
                let replica = event
                    .log_stream_name()
                    .and_then(|s| s.rsplit('/').next())
                    .unwrap_or("app")
                    .to_owned();
                for line in event.message().unwrap_or_default().lines() {
                    lines.push(LogLine {
                        replica: replica.clone(),
                        stream: "stdout".into(),
                        line: line.to_owned(),
                    });
                }
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() || lines.len() >= MAX_EVENTS {
                break;
            }
        }
        self.since = newest;
        Ok(lines)
    }
}

pub(crate) async fn stream(
    runtime: &EcsRuntime,
    app: &AppName,
    tail: usize,
    follow: bool,
) -> BackendResult<BoxStream<'static, LogLine>> {
    let mut cursor = Cursor {
        logs: runtime.clients.logs.clone(),
        group: names::app_log_group(&runtime.infra.prefix, app.as_str()),
        since: 0,
        seen: HashSet::new(),
    };
    let all = cursor.read().await?;
    let start = all.len().saturating_sub(tail);
    let first: VecDeque<LogLine> = all.into_iter().skip(start).collect();
    let head = stream::iter(first);
    if !follow {
        return Ok(head.boxed());
    }
    let more = stream::unfold(cursor, |mut cursor| async move {
        tokio::time::sleep(FOLLOW_INTERVAL).await;
        let lines = cursor.read().await.unwrap_or_default();
        Some((stream::iter(lines), cursor))
    })
    .flatten();
    Ok(head.chain(more).boxed())
}
