//! Container output as lines.

use bollard::container::{LogOutput, LogsOptions};
use bollard::Docker;
use easydeploy_core::ports::LogLine;
use futures_util::stream::{self, BoxStream};
use futures_util::StreamExt;
use std::collections::VecDeque;

/// The output of one container, split into lines: the last `tail` lines,
/// then new ones while `follow`.
pub(crate) fn container_lines(
    docker: &Docker,
    name: String,
    tail: usize,
    follow: bool,
) -> BoxStream<'static, LogLine> {
    let options = LogsOptions::<String> {
        follow,
        stdout: true,
        stderr: true,
        timestamps: false,
        tail: tail.to_string(),
        ..Default::default()
    };
    let chunks = docker.logs(&name, Some(options)).boxed();
    let state = Splitter {
        chunks,
        name,
        stdout: Vec::new(),
        stderr: Vec::new(),
        ready: VecDeque::new(),
        done: false,
    };
    stream::unfold(state, |mut state| async move {
        loop {
            if let Some(line) = state.ready.pop_front() {
                return Some((line, state));
            }
            if state.done {
                return None;
            }
            match state.chunks.next().await {
                Some(Ok(chunk)) => state.push(chunk),
                Some(Err(e)) => {
                    tracing::debug!(container = %state.name, error = %e, "the log stream ended");
                    state.finish();
                }
                None => state.finish(),
            }
        }
    })
    .boxed()
}

struct Splitter {
    chunks: BoxStream<'static, Result<LogOutput, bollard::errors::Error>>,
    name: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    ready: VecDeque<LogLine>,
    done: bool,
}

impl Splitter {
    fn push(&mut self, chunk: LogOutput) {
        let (buffer, stream) = match chunk {
            LogOutput::StdErr { message } => {
                self.stderr.extend_from_slice(&message);
                (&mut self.stderr, "stderr")
            }
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                self.stdout.extend_from_slice(&message);
                (&mut self.stdout, "stdout")
            }
            LogOutput::StdIn { .. } => return,
        };
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let rest = buffer.split_off(end + 1);
            let line = std::mem::replace(buffer, rest);
            self.ready.push_back(to_line(&self.name, stream, &line));
        }
    }

    fn finish(&mut self) {
        self.done = true;
        for (buffer, stream) in [(&mut self.stdout, "stdout"), (&mut self.stderr, "stderr")] {
            if !buffer.is_empty() {
                self.ready.push_back(to_line(&self.name, stream, buffer));
                buffer.clear();
            }
        }
    }
}

fn to_line(name: &str, stream: &str, bytes: &[u8]) -> LogLine {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    LogLine {
        replica: name.to_owned(),
        stream: stream.to_owned(),
        line: text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn chunks_become_lines_per_stream() {
        let mut splitter = Splitter {
            chunks: stream::empty().boxed(),
            name: "r1".into(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            ready: VecDeque::new(),
            done: false,
        };
        splitter.push(LogOutput::StdOut {
            message: Bytes::from_static(b"one\ntw"),
        });
        splitter.push(LogOutput::StdErr {
            message: Bytes::from_static(b"err\r\n"),
        });
        splitter.push(LogOutput::StdOut {
            message: Bytes::from_static(b"o\n\nthree"),
        });
        splitter.finish();
        let lines: Vec<(String, String)> = splitter.ready.into_iter().map(|l| (l.stream, l.line)).collect();
        let expected = [
            ("stdout", "one"),
            ("stderr", "err"),
            ("stdout", "two"),
            ("stdout", ""),
            ("stdout", "three"),
        ];
        assert_eq!(lines, expected.map(|(s, l)| (s.to_owned(), l.to_owned())));
    }
}
