//! `easydeploy metrics APP`: current figures and sparklines of an app's
//! requests, errors, latency and resource use.

use crate::client::{urlencode, Client};
use serde_json::Value;

/// `easydeploy metrics` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// App name.
    pub app: String,
    /// How far back: a number with a unit s, m, h or d.
    #[arg(long, default_value = "1h")]
    pub window: String,
    /// Width of one point, same format (default: the window / 60).
    #[arg(long)]
    pub step: Option<String>,
}

/// Most characters of a sparkline.
const WIDTH: usize = 60;
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Runs `easydeploy metrics`.
pub async fn run(client: &Client, args: MetricsArgs) -> anyhow::Result<()> {
    let mut path = format!(
        "/apps/{}/metrics?window={}",
        urlencode(&args.app),
        urlencode(&args.window)
    );
    if let Some(step) = &args.step {
        path.push_str(&format!("&step={}", urlencode(step)));
    }
    let v = client.get(&path).await?;
    print!("{}", render(&v));
    Ok(())
}

/// The whole report for an API answer.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    let points = v["points"].as_array().cloned().unwrap_or_default();
    let series = |key: &str| -> Vec<Option<f64>> {
        points
            .iter()
            .map(|p| {
                if p["samples"].as_u64().unwrap_or(0) == 0 {
                    None
                } else {
                    p[key].as_f64()
                }
            })
            .collect()
    };
    out.push_str(&format!(
        "{}: last {} in {} steps ({} points)\n",
        v["app"].as_str().unwrap_or("-"),
        duration(v["window_secs"].as_i64().unwrap_or(0)),
        duration(v["step_secs"].as_i64().unwrap_or(0)),
        points.len()
    ));
    let t = &v["totals"];
    out.push_str(&format!(
        "totals    {} requests ({} 2xx, {} 3xx, {} 4xx, {} 5xx), {} in, {} out\n",
        t["requests"],
        t["responses_2xx"],
        t["responses_3xx"],
        t["responses_4xx"],
        t["responses_5xx"],
        bytes(t["bytes_in"].as_f64().unwrap_or(0.0)),
        bytes(t["bytes_out"].as_f64().unwrap_or(0.0)),
    ));
    if let Some(p95) = t["latency_p95_ms"].as_f64() {
        out.push_str(&format!(
            "latency   p50 {} ms  p95 {p95:.1} ms  p99 {} ms\n",
            ms(&t["latency_p50_ms"]),
            ms(&t["latency_p99_ms"])
        ));
    }
    out.push('\n');
    type Show = fn(f64) -> String;
    let rows: [(&str, Vec<Option<f64>>, Show); 5] = [
        ("requests/s", series("request_rate"), |x| format!("{x:.2}")),
        ("5xx", series("responses_5xx"), |x| format!("{x:.0}")),
        ("p95 ms", series("latency_p95_ms"), |x| format!("{x:.1}")),
        ("CPU %", series("cpu_percent"), |x| format!("{x:.1}")),
        ("memory", series("memory_bytes"), bytes),
    ];
    out.push_str(&format!(
        "{:<11} {:<width$}  {:>10}  {:>10}\n",
        "",
        "",
        "now",
        "max",
        width = WIDTH.min(points.len())
    ));
    for (name, values, show) in rows {
        let now = values.iter().rev().flatten().next().copied();
        let max = values.iter().flatten().copied().reduce(f64::max);
        let fmt = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), show);
        out.push_str(&format!(
            "{name:<11} {}  {:>10}  {:>10}\n",
            sparkline(&values, WIDTH),
            fmt(now),
            fmt(max)
        ));
    }
    let replicas = v["replicas"].as_array().cloned().unwrap_or_default();
    out.push('\n');
    if replicas.is_empty() {
        out.push_str("no running replica figures yet\n");
        return out;
    }
    out.push_str(&format!(
        "replicas (sampled {})\n",
        v["sampled_at"].as_str().unwrap_or("-")
    ));
    out.push_str(&format!(
        "  {:<32} {:>7} {:>21} {:>10} {:>10} {:>9}\n",
        "NAME", "CPU %", "MEMORY / LIMIT", "NET IN", "NET OUT", "REQUESTS"
    ));
    for r in replicas {
        let limit = r["memory_limit_bytes"].as_f64().unwrap_or(0.0);
        let memory = format!(
            "{} / {}",
            bytes(r["memory_bytes"].as_f64().unwrap_or(0.0)),
            if limit > 0.0 { bytes(limit) } else { "-".into() }
        );
        out.push_str(&format!(
            "  {:<32} {:>7.1} {:>21} {:>10} {:>10} {:>9}\n",
            r["replica"].as_str().unwrap_or("-"),
            r["cpu_percent"].as_f64().unwrap_or(0.0),
            memory,
            bytes(r["net_rx_bytes"].as_f64().unwrap_or(0.0)),
            bytes(r["net_tx_bytes"].as_f64().unwrap_or(0.0)),
            r["requests"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        ));
    }
    out
}

fn ms(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"))
}

/// `1h`, `15m`, `90s`, `7d`.
fn duration(secs: i64) -> String {
    match secs {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Bytes with a binary unit.
fn bytes(n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut n = n.max(0.0);
    let mut unit = 0;
    while n >= 1024.0 && unit < units.len() - 1 {
        n /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n:.0} B")
    } else {
        format!("{n:.1} {}", units[unit])
    }
}

/// A sparkline of at most `width` characters: points are averaged into
/// columns, scaled from zero to the highest; a blank where there is no data.
pub fn sparkline(values: &[Option<f64>], width: usize) -> String {
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let columns = values.len().min(width);
    let cells: Vec<Option<f64>> = (0..columns)
        .map(|c| {
            let (from, to) = (c * values.len() / columns, (c + 1) * values.len() / columns);
            let known: Vec<f64> = values[from..to.max(from + 1)].iter().flatten().copied().collect();
            (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
        })
        .collect();
    let top = cells.iter().flatten().copied().fold(0.0, f64::max);
    cells
        .iter()
        .map(|cell| match cell {
            None => ' ',
            Some(_) if top <= 0.0 => BARS[0],
            Some(x) => {
                let level = (x.max(0.0) / top * (BARS.len() - 1) as f64).round() as usize;
                BARS[level.min(BARS.len() - 1)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_the_highest_point_and_leave_gaps_blank() {
        let values = [Some(0.0), Some(1.0), None, Some(7.0), Some(3.5)];
        assert_eq!(sparkline(&values, 60), "▁▂ █▅");
        assert_eq!(sparkline(&[Some(0.0), Some(0.0)], 60), "▁▁");
        assert_eq!(sparkline(&[], 60), "");
        // Wider series are averaged into columns.
        let long: Vec<Option<f64>> = (0..120).map(|i| Some(if i < 60 { 0.0 } else { 8.0 })).collect();
        let line = sparkline(&long, 60);
        assert_eq!(line.chars().count(), 60);
        assert!(line.starts_with("▁▁▁") && line.ends_with("███"), "{line}");
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
        assert_eq!(duration(3600), "1h");
        assert_eq!(duration(90), "90s");
        assert_eq!(duration(600), "10m");
    }
}
