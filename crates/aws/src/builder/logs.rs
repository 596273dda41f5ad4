//! Copies a build's log from CloudWatch Logs into the deployment's log.

use super::BuildOutcome;
use crate::clients::AwsClients;
use crate::error::code_of;
use easydeploy_core::ports::LogSink;

/// At most this many lines of a build log are copied.
const MAX_LINES: usize = 100_000;

pub(crate) async fn copy_build_log(clients: &AwsClients, outcome: &BuildOutcome, log: &dyn LogSink) {
    let (Some(group), Some(stream)) = (&outcome.log_group, &outcome.log_stream) else {
        log.line("(CodeBuild gave no CloudWatch log stream for this build)");
        return;
    };
    let mut token: Option<String> = None;
    let mut lines = 0;
    loop {
        let page = clients
            .logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .send()
            .await;
        let page = match page {
            Ok(page) => page,
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => {
                log.line(&format!(
                    "(the build log {group}/{stream} is not in CloudWatch Logs)"
                ));
                return;
            }
            Err(e) => {
                log.line(&format!(
                    "(cannot read the build log: {})",
                    crate::error::aws_error("read the build log", e)
                ));
                return;
            }
        };
        for event in page.events() {
            for line in event.message().unwrap_or_default().lines() {
                log.line(line);
                lines += 1;
            }
        }
        let next = page.next_forward_token().map(str::to_owned);
        if page.events().is_empty() || next.is_none() || next == token || lines >= MAX_LINES {
            return;
        }
        token = next;
    }
}
